//! Circuit parameters and the strategies that choose them before (or instead of) optimizing.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// The angles of a depth-`p` QAOA circuit: layer `l` applies `exp(-i gammas[l] D)` (the cost
/// diagonal) and then the mixer `exp(-i betas[l] B)`.
///
/// With the transverse-field mixer `B = sum_j X_j` and the start state `|+>^n`, and `D` the
/// number of cut edges, these are the angles of Wurtz & Lykov's fixed-angle table (see
/// [`QaoaParams::fixed_angles_3_regular`]).
///
/// # Examples
///
/// ```
/// use qorch_qaoa::QaoaParams;
///
/// let p1 = QaoaParams::new(vec![0.5], vec![0.3]).unwrap();
/// let p2 = p1.interp();
/// assert_eq!(p2.p(), 2);
/// let json = serde_json::to_string(&p2).unwrap();
/// assert_eq!(serde_json::from_str::<QaoaParams>(&json).unwrap(), p2);
/// assert!(QaoaParams::new(vec![0.5], vec![]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaoaParams {
    /// Phase angles, one per layer.
    pub gammas: Vec<f64>,
    /// Mixer angles, one per layer.
    pub betas: Vec<f64>,
}

/// Fixed angles for Max-Cut on 3-regular graphs, `p = 1..=11` (Wurtz & Lykov 2021, as
/// tabulated in `../shared/data/qaoa/fixed-angles-3-regular.md`): `(cut fraction on graphs
/// of girth > 2p+1, gammas, betas)`.
const FIXED_3_REGULAR: [(f64, &[f64], &[f64]); 11] = [
    (0.692_450_047_4, &[0.615_533_629_1], &[0.392_672_029_2]),
    (
        0.755_906_291_8,
        &[0.487_709_732_7, 0.897_987_695_6],
        &[0.555_060_340_1, 0.292_507_814_8],
    ),
    (
        0.792_398_007_3,
        &[0.422_084_081_9, 0.798_412_754_1, 0.937_088_796_5],
        &[0.608_757_260_0, 0.459_275_309_0, 0.235_395_622_6],
    ),
    (
        0.816_875_869_8,
        &[
            0.408_763_845_2,
            0.780_584_964_3,
            0.987_728_120_3,
            1.156_313_675_5,
        ],
        &[
            0.599_565_466_5,
            0.434_418_250_8,
            0.296_950_014_9,
            0.159_066_837_3,
        ],
    ),
    (
        0.836_379_126_5,
        &[
            0.359_589_407_0,
            0.706_572_602_6,
            0.822_556_547_6,
            1.004_754_894_9,
            1.154_274_581_8,
        ],
        &[
            0.631_852_029_4,
            0.522_652_441_2,
            0.389_742_061_0,
            0.275_412_163_9,
            0.149_170_049_6,
        ],
    ),
    (
        0.849_893_674_5,
        &[
            0.331_041_809_8,
            0.645_031_006_1,
            0.730_776_916_2,
            0.836_583_144_7,
            1.009_163_540_4,
            1.126_100_373_2,
        ],
        &[
            0.635_558_929_5,
            0.533_962_940_2,
            0.463_109_233_5,
            0.360_255_446_6,
            0.259_152_325_5,
            0.139_025_736_1,
        ],
    ),
    (
        0.859_793_341_1,
        &[
            0.310_089_796_2,
            0.618_218_819_0,
            0.690_247_851_8,
            0.751_222_077_8,
            0.859_085_254_7,
            1.020_390_029_1,
            1.122_066_250_7,
        ],
        &[
            0.648_140_250_7,
            0.553_924_977_8,
            0.489_883_395_7,
            0.445_017_718_5,
            0.340_583_691_7,
            0.243_826_928_3,
            0.130_634_570_6,
        ],
    ),
    (
        0.867_406_648_3,
        &[
            0.294_605_784_0,
            0.586_785_556_4,
            0.654_410_133_9,
            0.707_928_583_1,
            0.764_574_204_8,
            0.864_250_241_5,
            1.025_665_662_9,
            1.116_287_233_5,
        ],
        &[
            0.649_160_465_0,
            0.554_679_948_9,
            0.500_322_245_8,
            0.468_693_884_6,
            0.419_608_949_1,
            0.318_917_131_7,
            0.231_323_789_9,
            0.122_903_922_8,
        ],
    ),
    (
        0.873_521_564_0,
        &[
            0.279_401_192_5,
            0.566_133_244_9,
            0.631_222_591_8,
            0.679_332_519_0,
            0.726_240_650_6,
            0.768_056_419_2,
            0.874_522_005_0,
            1.037_470_921_4,
            1.117_986_650_1,
        ],
        &[
            0.654_473_869_2,
            0.561_863_966_3,
            0.509_011_402_5,
            0.486_776_287_3,
            0.451_435_092_3,
            0.403_211_082_3,
            0.304_730_321_0,
            0.219_832_963_1,
            0.117_181_742_7,
        ],
    ),
    (
        0.878_527_544_7,
        &[
            0.266_716_367_4,
            0.544_822_698_1,
            0.609_981_024_6,
            0.656_260_085_2,
            0.695_708_357_3,
            0.728_757_397_5,
            0.773_877_582_0,
            0.882_111_389_8,
            1.043_801_007_7,
            1.115_259_224_2,
        ],
        &[
            0.655_583_537_2,
            0.563_181_486_5,
            0.513_888_165_3,
            0.495_584_216_8,
            0.468_894_867_2,
            0.435_743_279_9,
            0.388_470_670_1,
            0.291_176_189_7,
            0.210_509_045_4,
            0.112_387_944_9,
        ],
    ),
    (
        0.882_842_540_8,
        &[
            0.257_287_401_3,
            0.528_040_572_5,
            0.591_770_954_5,
            0.639_691_491_4,
            0.677_205_613_8,
            0.702_061_453_5,
            0.737_024_256_8,
            0.775_307_497_4,
            0.883_558_730_4,
            1.046_970_255_4,
            1.115_237_716_5,
        ],
        &[
            0.656_438_795_0,
            0.563_347_128_2,
            0.516_301_428_1,
            0.503_668_250_4,
            0.481_822_995_9,
            0.456_012_558_0,
            0.421_434_626_4,
            0.370_773_271_3,
            0.276_450_174_3,
            0.200_946_980_5,
            0.107_250_701_6,
        ],
    ),
];

/// Whether the cost is to be made small or large. The phase operator is always
/// `exp(-i gamma D)` with `D` as given; only the optimizer's direction and the sign of the
/// linear ramp's `gamma` depend on the sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sense {
    /// Minimize `<D>` (QUBO and Ising energies).
    Minimize,
    /// Maximize `<D>` (cut weights).
    Maximize,
}

impl Sense {
    /// `+1` to minimize, `-1` to maximize: the optimizers minimize `sign * <D>`.
    pub fn sign(self) -> f64 {
        match self {
            Sense::Minimize => 1.0,
            Sense::Maximize => -1.0,
        }
    }

    /// Whether `a` is better than `b` in this sense.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Sense::Minimize => a < b,
            Sense::Maximize => a > b,
        }
    }
}

impl QaoaParams {
    /// Parameters from their angles.
    ///
    /// # Errors
    ///
    /// [`SimError::Params`] if the lengths differ or an angle is not finite.
    pub fn new(gammas: Vec<f64>, betas: Vec<f64>) -> Result<Self, SimError> {
        let params = QaoaParams { gammas, betas };
        params.validate()?;
        Ok(params)
    }

    /// The depth `p` (number of layers).
    pub fn p(&self) -> usize {
        self.gammas.len()
    }

    /// Checks that both lists have the same length and every angle is finite.
    ///
    /// # Errors
    ///
    /// [`SimError::Params`] naming the problem.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.gammas.len() != self.betas.len() {
            return Err(SimError::Params(format!(
                "{} gammas but {} betas: give one of each per layer",
                self.gammas.len(),
                self.betas.len()
            )));
        }
        for (name, list) in [("gamma", &self.gammas), ("beta", &self.betas)] {
            if let Some((l, v)) = list.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(SimError::Params(format!(
                    "{name} of layer {} is {v}",
                    l + 1
                )));
            }
        }
        Ok(())
    }

    /// The angles as one vector `[gamma_1..gamma_p, beta_1..beta_p]`, the optimizers' layout.
    pub fn to_vec(&self) -> Vec<f64> {
        self.gammas.iter().chain(&self.betas).copied().collect()
    }

    /// The inverse of [`to_vec`](Self::to_vec).
    ///
    /// # Panics
    ///
    /// If `theta` has odd length.
    pub fn from_slice(theta: &[f64]) -> Self {
        assert!(
            theta.len().is_multiple_of(2),
            "a parameter vector holds 2p angles"
        );
        let p = theta.len() / 2;
        QaoaParams {
            gammas: theta[..p].to_vec(),
            betas: theta[p..].to_vec(),
        }
    }

    /// The fixed angles for Max-Cut on 3-regular graphs at depth `p` (1 to 11), from Wurtz &
    /// Lykov, "The fixed angle conjecture for QAOA on regular `MaxCut` graphs" (2021), in this
    /// crate's convention (cost = number of cut edges). `None` for other depths.
    ///
    /// # Examples
    ///
    /// ```
    /// let p1 = qorch_qaoa::QaoaParams::fixed_angles_3_regular(1).unwrap();
    /// assert_eq!(p1.gammas, [0.6155336291]);
    /// assert!(qorch_qaoa::QaoaParams::fixed_angles_3_regular(12).is_none());
    /// ```
    pub fn fixed_angles_3_regular(p: usize) -> Option<Self> {
        let (_, g, b) = FIXED_3_REGULAR.get(p.checked_sub(1)?)?;
        Some(QaoaParams {
            gammas: g.to_vec(),
            betas: b.to_vec(),
        })
    }

    /// The expected cut fraction `<C>/m` the fixed angles reach on 3-regular graphs whose
    /// girth exceeds `2p + 1` (the table's "AR" column). `None` outside `1..=11`.
    pub fn fixed_angle_cut_fraction_3_regular(p: usize) -> Option<f64> {
        FIXED_3_REGULAR.get(p.checked_sub(1)?).map(|t| t.0)
    }

    /// A linear ramp, the Trotterized anneal from the mixer's ground state to the cost's:
    /// layer `l = 1..p` has `beta_l = delta (1 - t_l)` and `gamma_l = +-delta t_l / scale` with
    /// `t_l = (l - 1/2) / p`; the sign is `+` to maximize and `-` to minimize.
    ///
    /// `scale` normalizes the cost: it is [`CostDiagonal::energy_scale`] of the cost divided
    /// by that of unweighted 3-regular Max-Cut (`sqrt(3)/2`), so that `delta` means the same
    /// on every problem. With `delta = 0.75` and scale 1, the `p = 1` ramp is
    /// `gamma = beta = 0.375`, near the fixed angles `(0.616, 0.393)`.
    ///
    /// [`CostDiagonal::energy_scale`]: crate::CostDiagonal::energy_scale
    ///
    /// # Panics
    ///
    /// If `scale` is not positive.
    pub fn linear_ramp(p: usize, delta: f64, sense: Sense, scale: f64) -> Self {
        assert!(scale > 0.0, "the ramp's scale must be positive");
        let sign = -sense.sign();
        let t = |l: usize| (l as f64 + 0.5) / p as f64;
        QaoaParams {
            gammas: (0..p).map(|l| sign * delta * t(l) / scale).collect(),
            betas: (0..p).map(|l| delta * (1.0 - t(l))).collect(),
        }
    }

    /// INTERP (Zhou et al., "Quantum approximate optimization algorithm: performance,
    /// mechanism, and implementation on near-term devices", 2020): parameters for depth
    /// `p + 1` from optimized ones for depth `p`, by linear interpolation of each angle
    /// schedule:
    /// `x'_i = (i - 1)/p * x_{i-1} + (p - i + 1)/p * x_i` for `i = 1..p+1`, with
    /// `x_0 = x_{p+1} = 0`.
    ///
    /// # Examples
    ///
    /// ```
    /// use qorch_qaoa::QaoaParams;
    ///
    /// let p1 = QaoaParams::new(vec![0.6], vec![0.4]).unwrap();
    /// let p2 = p1.interp();
    /// assert_eq!(p2.gammas, [0.6, 0.6]);
    /// assert_eq!(p2.betas, [0.4, 0.4]);
    /// ```
    #[must_use]
    pub fn interp(&self) -> Self {
        QaoaParams {
            gammas: interp(&self.gammas),
            betas: interp(&self.betas),
        }
    }
}

fn interp(x: &[f64]) -> Vec<f64> {
    let p = x.len();
    if p == 0 {
        return Vec::new();
    }
    let at = |i: usize| if i == 0 || i > p { 0.0 } else { x[i - 1] };
    (1..=p + 1)
        .map(|i| {
            let (i_f, p_f) = (i as f64, p as f64);
            (i_f - 1.0) / p_f * at(i - 1) + (p_f - i_f + 1.0) / p_f * at(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_matches_the_shared_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/qaoa/fixed-angles-3-regular.md"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipped: {path} not found (the table is checked where ../shared exists)");
            return;
        };
        let mut rows = 0;
        for line in text.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | p | AR | gammas | betas |
            if cells.len() != 6 {
                continue;
            }
            let Ok(p) = cells[1].parse::<usize>() else {
                continue;
            };
            let list = |s: &str| -> Vec<f64> {
                s.split(',')
                    .map(|x| x.trim().parse::<f64>().unwrap())
                    .collect()
            };
            let params = QaoaParams::fixed_angles_3_regular(p).unwrap();
            assert_eq!(params.gammas, list(cells[3]), "gammas at p={p}");
            assert_eq!(params.betas, list(cells[4]), "betas at p={p}");
            let ar: f64 = cells[2].parse().unwrap();
            assert_eq!(QaoaParams::fixed_angle_cut_fraction_3_regular(p), Some(ar));
            rows += 1;
        }
        assert_eq!(rows, 11, "all eleven rows checked");
    }

    #[test]
    fn interp_keeps_endpoints_shape() {
        let p3 = QaoaParams::new(vec![0.1, 0.2, 0.3], vec![0.6, 0.4, 0.2]).unwrap();
        let p4 = p3.interp();
        assert_eq!(p4.p(), 4);
        let want_g = [
            0.1,
            0.1 / 3.0 + 0.2 * 2.0 / 3.0,
            0.2 * 2.0 / 3.0 + 0.3 / 3.0,
            0.3,
        ];
        for (a, b) in p4.gammas.iter().zip(want_g) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn ramp_signs_follow_the_sense() {
        let max = QaoaParams::linear_ramp(4, 0.8, Sense::Maximize, 1.0);
        let min = QaoaParams::linear_ramp(4, 0.8, Sense::Minimize, 2.0);
        assert!(max.gammas.iter().all(|&g| g > 0.0));
        assert!(min.gammas.iter().all(|&g| g < 0.0));
        assert!((max.gammas[0] + 2.0 * min.gammas[0]).abs() < 1e-15);
        assert!(max.betas.windows(2).all(|w| w[0] > w[1]));
        assert!(max.gammas.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn vector_layout_round_trips() {
        let p = QaoaParams::new(vec![1.0, 2.0], vec![3.0, 4.0]).unwrap();
        assert_eq!(p.to_vec(), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(QaoaParams::from_slice(&p.to_vec()), p);
        assert!(QaoaParams::new(vec![f64::NAN], vec![0.0]).is_err());
    }
}
