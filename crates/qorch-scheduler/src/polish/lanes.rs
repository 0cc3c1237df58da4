//! Lanes: one pool and one kind of a polish, the members' minimums and their flexible parts
//! sorted by weight (sums per weight class, or sorted blocks with prefix sums), so that the
//! value of a lane with one part added and one removed is a few binary searches.

use crate::assign::within;

/// One agent's flexible part in a lane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flex {
    pub(crate) weight: f64,
    pub(crate) amount: f64,
    pub(crate) agent: u32,
}

/// Orders flexible parts: heaviest first, then by agent.
fn before(a: (f64, u32), b: (f64, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Parts per block of a lane (a block splits at twice this).
const BLOCK: usize = 128;

/// At most this many distinct weights: lanes keep one sum per weight class.
pub(crate) const MAX_CLASSES: usize = 64;

/// One agent's share of a lane: weight, minimum, flexible amount, agent and weight class.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    pub(crate) w: f64,
    pub(crate) lo: f64,
    pub(crate) f: f64,
    pub(crate) agent: u32,
    pub(crate) class: u32,
}

/// A run of consecutive parts of a lane, with prefix sums of their flexible amounts and
/// values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Block {
    items: Vec<Flex>,
    pf: Vec<f64>,
    pwf: Vec<f64>,
}

impl Block {
    fn new(items: Vec<Flex>) -> Self {
        let mut b = Block {
            items,
            pf: Vec::new(),
            pwf: Vec::new(),
        };
        b.sums();
        b
    }

    fn sums(&mut self) {
        self.pf.clear();
        self.pwf.clear();
        self.pf.push(0.0);
        self.pwf.push(0.0);
        let (mut f, mut wf) = (0.0, 0.0);
        for it in &self.items {
            f += it.amount;
            wf += it.weight * it.amount;
            self.pf.push(f);
            self.pwf.push(wf);
        }
    }

    fn last_key(&self) -> (f64, u32) {
        self.items
            .last()
            .map_or((f64::NEG_INFINITY, u32::MAX), |x| (x.weight, x.agent))
    }

    /// Index of the first part not ordered before `key`.
    fn position(&self, key: (f64, u32)) -> usize {
        self.items
            .partition_point(|x| before((x.weight, x.agent), key))
    }
}

/// The flexible parts of a lane, heaviest first, in one of two forms with the same
/// answers: the value of a fill depends only on how much flexible amount each weight has
/// (parts of equal weight are interchangeable), so with few distinct weights a lane keeps
/// one sum per weight class; otherwise the parts themselves, in sorted blocks.
#[derive(Debug, Clone)]
pub(crate) enum Parts {
    Classes {
        /// The class weights, heaviest first (shared by every lane of a polish).
        w: Vec<f64>,
        /// Flexible amount per class.
        f: Vec<f64>,
        /// Members per class (a class that empties is reset to exactly zero).
        count: Vec<u32>,
        /// Prefix sums over the classes of amount and value (`len + 1` entries).
        pf: Vec<f64>,
        pwf: Vec<f64>,
    },
    Blocks {
        blocks: Vec<Block>,
        /// `pre_f[b]`: flexible amount of the blocks before `b`; `pre_wf[b]`: their value.
        pre_f: Vec<f64>,
        pre_wf: Vec<f64>,
        /// Each block's last key, for finding blocks without visiting them.
        last: Vec<(f64, u32)>,
    },
}

impl Parts {
    pub(crate) fn classes(w: Vec<f64>) -> Self {
        let d = w.len();
        Parts::Classes {
            w,
            f: vec![0.0; d],
            count: vec![0; d],
            pf: vec![0.0; d + 1],
            pwf: vec![0.0; d + 1],
        }
    }

    pub(crate) fn blocks(mut items: Vec<Flex>) -> Self {
        items.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.agent.cmp(&b.agent)));
        let blocks = items
            .chunks(BLOCK)
            .map(|c| Block::new(c.to_vec()))
            .collect();
        let mut p = Parts::Blocks {
            blocks,
            pre_f: Vec::new(),
            pre_wf: Vec::new(),
            last: Vec::new(),
        };
        p.rebuild_from(0);
        p
    }

    /// Recomputes the prefix sums from class or block `from` on.
    pub(crate) fn rebuild_from(&mut self, from: usize) {
        match self {
            Parts::Classes { w, f, pf, pwf, .. } => {
                for c in from..w.len() {
                    pf[c + 1] = pf[c] + f[c];
                    pwf[c + 1] = pwf[c] + w[c] * f[c];
                }
            }
            Parts::Blocks {
                blocks,
                pre_f,
                pre_wf,
                last,
            } => {
                let nb = blocks.len();
                last.resize(nb, (0.0, 0));
                pre_f.resize(nb + 1, 0.0);
                pre_wf.resize(nb + 1, 0.0);
                for b in from..nb {
                    let blk = &blocks[b];
                    let m = blk.items.len();
                    last[b] = blk.last_key();
                    pre_f[b + 1] = pre_f[b] + blk.pf[m];
                    pre_wf[b + 1] = pre_wf[b] + blk.pwf[m];
                }
            }
        }
    }

    /// Value of filling `room` of flexible amount in order: concave, piecewise linear.
    fn fill(&self, room: f64) -> f64 {
        if room <= 0.0 {
            return 0.0;
        }
        match self {
            Parts::Classes { w, pf, pwf, .. } => {
                let d = w.len();
                if room >= pf[d] {
                    return pwf[d];
                }
                let c = pf[..d].partition_point(|&x| x <= room) - 1;
                pwf[c] + w[c] * (room - pf[c])
            }
            Parts::Blocks {
                blocks,
                pre_f,
                pre_wf,
                ..
            } => {
                let nb = blocks.len();
                if nb == 0 {
                    return 0.0;
                }
                if room >= pre_f[nb] {
                    return pre_wf[nb];
                }
                // The block the room ends in, then the part.
                let b = pre_f[..nb].partition_point(|&x| x <= room) - 1;
                let blk = &blocks[b];
                let t = room - pre_f[b];
                let i = blk.pf[..blk.items.len()].partition_point(|&x| x <= t) - 1;
                pre_wf[b] + blk.pwf[i] + blk.items[i].weight * (t - blk.pf[i])
            }
        }
    }

    /// The block a part of `key` belongs in (the first whose last part is not before it).
    fn block_of(last: &[(f64, u32)], key: (f64, u32)) -> usize {
        let b = last.partition_point(|&k| before(k, key));
        b.min(last.len().saturating_sub(1))
    }

    /// Flexible amount ordered before `p` (with classes: before its class).
    fn flex_before(&self, p: &Part) -> f64 {
        match self {
            Parts::Classes { pf, .. } => pf[p.class as usize],
            Parts::Blocks {
                blocks,
                pre_f,
                last,
                ..
            } => {
                if blocks.is_empty() {
                    return 0.0;
                }
                let key = (p.w, p.agent);
                let b = Self::block_of(last, key);
                let blk = &blocks[b];
                pre_f[b] + blk.pf[blk.position(key)]
            }
        }
    }

    /// Whether `a` is ordered before `b` (consistently with [`Parts::flex_before`]).
    fn orders_before(&self, a: &Part, b: &Part) -> bool {
        match self {
            Parts::Classes { .. } => a.class < b.class,
            Parts::Blocks { .. } => before((a.w, a.agent), (b.w, b.agent)),
        }
    }

    pub(crate) fn insert(&mut self, p: &Part) {
        match self {
            Parts::Classes { f, count, .. } => {
                let c = p.class as usize;
                f[c] += p.f;
                count[c] += 1;
                self.rebuild_from(c);
            }
            Parts::Blocks { blocks, last, .. } => {
                let part = Flex {
                    weight: p.w,
                    amount: p.f,
                    agent: p.agent,
                };
                if blocks.is_empty() {
                    blocks.push(Block::new(vec![part]));
                    self.rebuild_from(0);
                    return;
                }
                let key = (p.w, p.agent);
                let b = Self::block_of(last, key);
                let blk = &mut blocks[b];
                let pos = blk.position(key);
                blk.items.insert(pos, part);
                if blk.items.len() > 2 * BLOCK {
                    let tail = blk.items.split_off(BLOCK);
                    blk.sums();
                    blocks.insert(b + 1, Block::new(tail));
                } else {
                    blk.sums();
                }
                self.rebuild_from(b);
            }
        }
    }

    pub(crate) fn remove(&mut self, p: &Part) {
        match self {
            Parts::Classes { f, count, .. } => {
                let c = p.class as usize;
                count[c] -= 1;
                f[c] = if count[c] == 0 {
                    0.0
                } else {
                    (f[c] - p.f).max(0.0)
                };
                self.rebuild_from(c);
            }
            Parts::Blocks { blocks, last, .. } => {
                let key = (p.w, p.agent);
                let b = Self::block_of(last, key);
                let blk = &mut blocks[b];
                let pos = blk.position(key);
                debug_assert!(blk.items.get(pos).is_some_and(|x| x.agent == p.agent));
                blk.items.remove(pos);
                let from = if blk.items.is_empty() {
                    blocks.remove(b);
                    b.min(blocks.len())
                } else {
                    blk.sums();
                    b
                };
                self.rebuild_from(from);
            }
        }
    }
}

/// One pool and one kind: capacity, the sum of the members' minimums and their value, and
/// the members' flexible parts (desired minus minimum).
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    cap: f64,
    min_sum: f64,
    /// Sum of weight times minimum (the value of the minimums, before the kind's scale).
    min_value: f64,
    parts: Parts,
    /// The lane's current value, [`Lane::compute_value`].
    pub(crate) value: f64,
}

impl Lane {
    pub(crate) fn new(cap: f64, min_sum: f64, min_value: f64, parts: Parts) -> Self {
        let mut lane = Lane {
            cap,
            min_sum,
            min_value,
            parts,
            value: 0.0,
        };
        lane.value = lane.compute_value();
        lane
    }

    /// The lane's value (before the kind's scale) with `out` removed and `inn` added;
    /// `None` if the minimums no longer fit.
    pub(crate) fn value_with(&self, out: Option<Part>, inn: Option<Part>) -> Option<f64> {
        let mut min_sum = self.min_sum;
        let mut min_value = self.min_value;
        if let Some(p) = out {
            min_sum -= p.lo;
            min_value -= p.w * p.lo;
        }
        if let Some(p) = inn {
            min_sum += p.lo;
            min_value += p.w * p.lo;
            if p.lo > 0.0 && !within(min_sum, self.cap) {
                return None;
            }
        }
        let room = (self.cap - min_sum).max(0.0);
        let fill = |t: f64| self.parts.fill(t);
        // Removal of a part with flex f and weight w, behind s_d of flex:
        // D(t) = F(t) for t <= s_d, else F(t + f) - w f.
        let del = out
            .filter(|o| o.f > 0.0)
            .map(|o| (self.parts.flex_before(&o), o));
        let f_del = |t: f64| -> f64 {
            match del {
                Some((sd, o)) if t > sd => fill(t + o.f) - o.w * o.f,
                _ => fill(t),
            }
        };
        let filled = match inn.filter(|x| x.f > 0.0) {
            None => f_del(room),
            Some(p) => {
                // Insertion behind s of flex (in the sequence without the removed part):
                // G(t) = D(t) up to s, then the part, then D(t - f) + w f.
                let s = self.parts.flex_before(&p)
                    - del
                        .filter(|d| self.parts.orders_before(&d.1, &p))
                        .map_or(0.0, |d| d.1.f);
                if room <= s {
                    f_del(room)
                } else if room <= s + p.f {
                    f_del(s) + p.w * (room - s)
                } else {
                    p.w * p.f + f_del(room - p.f)
                }
            }
        };
        Some(min_value + filled)
    }

    fn compute_value(&self) -> f64 {
        self.min_value + self.parts.fill((self.cap - self.min_sum).max(0.0))
    }

    pub(crate) fn insert(&mut self, p: &Part) {
        self.min_sum += p.lo;
        self.min_value += p.w * p.lo;
        if p.f > 0.0 {
            self.parts.insert(p);
        }
        self.value = self.compute_value();
    }

    pub(crate) fn remove(&mut self, p: &Part) {
        self.min_sum -= p.lo;
        self.min_value -= p.w * p.lo;
        if p.f > 0.0 {
            self.parts.remove(p);
        }
        self.value = self.compute_value();
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;

    const WEIGHTS: [f64; 4] = [4.0, 3.0, 2.0, 1.0];

    fn random_part(rng: &mut Xoshiro256PlusPlus, agent: u32) -> Part {
        let class = rng.random_range(0..WEIGHTS.len());
        Part {
            w: WEIGHTS[class],
            lo: f64::from(rng.random_range(0..4_u32)),
            f: f64::from(rng.random_range(0..4_u32)),
            agent,
            class: class as u32,
        }
    }

    /// Value by brute force: minimums (infeasible ones included), then the room to the
    /// heaviest first.
    fn direct(cap: f64, parts: &[Part]) -> f64 {
        let min: f64 = parts.iter().map(|p| p.lo).sum();
        let mut v: f64 = parts.iter().map(|p| p.w * p.lo).sum();
        let mut sorted = parts.to_vec();
        sorted.sort_by(|a, b| b.w.total_cmp(&a.w));
        let mut room = (cap - min).max(0.0);
        for p in sorted {
            let g = p.f.min(room);
            v += p.w * g;
            room -= g;
        }
        v
    }

    fn fits(cap: f64, parts: &[Part]) -> bool {
        within(parts.iter().map(|p| p.lo).sum(), cap)
    }

    fn lane(cap: f64, parts: &[Part], classes: bool) -> Lane {
        let flex: Vec<Flex> = parts
            .iter()
            .filter(|p| p.f > 0.0)
            .map(|p| Flex {
                weight: p.w,
                amount: p.f,
                agent: p.agent,
            })
            .collect();
        let form = if classes {
            let mut c = Parts::classes(WEIGHTS.to_vec());
            for p in parts.iter().filter(|p| p.f > 0.0) {
                c.insert(p);
            }
            c
        } else {
            Parts::blocks(flex)
        };
        Lane::new(
            cap,
            parts.iter().map(|p| p.lo).sum(),
            parts.iter().map(|p| p.w * p.lo).sum(),
            form,
        )
    }

    #[test]
    fn lane_values_with_a_part_added_and_removed_match_brute_force() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        for round in 0..3000 {
            let classes = round % 2 == 0;
            // Small lanes mostly, some over several blocks.
            let m = if round % 10 < 2 {
                rng.random_range(200..900_usize)
            } else {
                rng.random_range(0..8_usize)
            };
            let mut parts: Vec<Part> = (0..m).map(|a| random_part(&mut rng, a as u32)).collect();
            let total_min: f64 = parts.iter().map(|p| p.lo).sum();
            let cap = f64::from(rng.random_range(0..30_u32)) + total_min * 0.9;
            let mut l = lane(cap, &parts, classes);
            let mut next = m as u32;
            // A few real insertions and removals first.
            for _ in 0..rng.random_range(0..6_usize) {
                if !parts.is_empty() && rng.random_range(0..2_u32) == 0 {
                    let p = parts.swap_remove(rng.random_range(0..parts.len()));
                    l.remove(&p);
                } else {
                    let p = random_part(&mut rng, next);
                    next += 1;
                    l.insert(&p);
                    parts.push(p);
                }
            }
            let now = direct(cap, &parts);
            assert!((now - l.value).abs() < 1e-6, "cached {} vs {now}", l.value);
            let out = (!parts.is_empty() && rng.random_range(0..2_u32) == 0)
                .then(|| parts[rng.random_range(0..parts.len())]);
            let inn = (rng.random_range(0..2_u32) == 0).then(|| random_part(&mut rng, 1 << 30));
            let mut after: Vec<Part> = parts
                .iter()
                .copied()
                .filter(|p| Some(p.agent) != out.map(|o| o.agent))
                .collect();
            after.extend(inn);
            let got = l.value_with(out, inn);
            // Infeasible minimums are only reported when something with a minimum joins.
            if inn.is_some_and(|p| p.lo > 0.0) && !fits(cap, &after) {
                assert!(got.is_none());
            } else {
                let e = direct(cap, &after);
                let g = got.expect("feasible");
                assert!(
                    (e - g).abs() < 1e-6,
                    "{e} vs {g}: cap {cap} out {out:?} in {inn:?}"
                );
            }
        }
    }
}
