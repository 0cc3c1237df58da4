use super::passes::strips;
use super::rotations::{Cot, Exact, Rot, Tan, rot, rot_low2, rot_qubit};
use super::*;

#[test]
fn layouts_cover_every_qubit_once_with_cache_sized_steps() {
    for cfg in [
        KernelConfig::default(),
        KernelConfig {
            block_bits: 3,
            min_run_bits: 1,
            simd: false,
        },
        KernelConfig {
            block_bits: 14,
            min_run_bits: 8,
            simd: true,
        },
    ] {
        for n in 0..=30 {
            let l = Layout::new(n, &cfg, false, 1);
            let mut covered = l.low_mask();
            for g in &l.groups {
                assert!(g.k >= 1 && g.q0 >= l.block_bits);
                assert!(
                    g.run_bits >= cfg.min_run_bits.min(l.block_bits - 1),
                    "{cfg:?} n={n} {g:?}"
                );
                assert_eq!(
                    g.k + g.run_bits,
                    l.block_bits,
                    "the working set is one cache block"
                );
                let mask = ((1_u64 << g.k) - 1) << g.q0;
                assert_eq!(covered & mask, 0, "qubits in one pass only");
                covered |= mask;
            }
            assert_eq!(covered, (1_u64 << n) - 1, "{cfg:?} n={n}");
        }
    }
}

#[test]
fn strips_partition_the_state() {
    let n = 9;
    let group = Group {
        q0: 4,
        k: 3,
        run_bits: 1,
    };
    let mut re: Vec<f64> = (0..1 << n).map(f64::from).collect();
    let mut im = re.clone();
    let strips = strips([&mut re[..], &mut im[..]], n, group);
    let mut seen = vec![0_u32; 1 << n];
    for s in &strips {
        assert_eq!(s.rows[0].len(), 1 << group.k);
        for (g, row) in s.rows[0].iter().enumerate() {
            for (k, &v) in row.iter().enumerate() {
                // Each element sits where the strip's base says.
                assert_eq!(v as usize, s.base + (g << group.q0) + k);
                seen[v as usize] += 1;
            }
        }
    }
    assert!(seen.iter().all(|&c| c == 1));
}

#[test]
fn rotation_of_a_pair_is_exp_minus_i_beta_x() {
    let beta = 0.37_f64;
    let (s, c) = beta.sin_cos();
    // |0> -> cos b |0> - i sin b |1>
    let (mut r0, mut i0, mut r1, mut i1) = ([1.0], [0.0], [0.0], [0.0]);
    rot(&mut r0, &mut i0, &mut r1, &mut i1, Exact::<false> { c, s });
    assert_eq!((r0[0], i0[0], r1[0], i1[0]), (c, 0.0, 0.0, -s));
    // rot_low2 agrees with rot_qubit on qubits 0 and 1.
    let mut a: Vec<f64> = (0..16).map(|x| f64::from(x) * 0.1).collect();
    let mut b: Vec<f64> = (0..16).map(|x| 1.0 - f64::from(x) * 0.05).collect();
    let (mut a2, mut b2) = (a.clone(), b.clone());
    rot_low2(&mut a, &mut b, true, true, Exact::<false> { c, s });
    rot_qubit(&mut a2, &mut b2, 0, Exact::<false> { c, s });
    rot_qubit(&mut a2, &mut b2, 1, Exact::<false> { c, s });
    for k in 0..16 {
        assert!((a[k] - a2[k]).abs() < 1e-15 && (b[k] - b2[k]).abs() < 1e-15);
    }
}

#[test]
fn scaled_rotations_times_their_factor_are_exact() {
    for beta in [0.3_f64, -0.2, 1.2, 2.0, -1.0, 3.0] {
        let (s, c) = beta.sin_cos();
        let (mix, g) = Mix::for_beta(beta);
        let v = (0.3, -0.7, 0.5, 0.1);
        let want = Exact::<false> { c, s }.pair(v.0, v.1, v.2, v.3);
        let got = match mix {
            Mix::Tan(t) => Tan::<false> { t }.pair(v.0, v.1, v.2, v.3),
            Mix::Cot(u) => Cot::<true> { u }.pair(v.0, v.1, v.2, v.3),
        };
        let mul = |(r, i): (f64, f64)| (g.0 * r - g.1 * i, g.0 * i + g.1 * r);
        let (a, b) = mul((got.0, got.1));
        let (x, y) = mul((got.2, got.3));
        for (p, q) in [(a, want.0), (b, want.1), (x, want.2), (y, want.3)] {
            assert!((p - q).abs() < 1e-15, "beta {beta}: {p} vs {q}");
        }
    }
    assert_eq!(cpow((0.0, -1.0), 3), (0.0, 1.0));
    let (r, i) = cpow((0.6, 0.8), 5);
    let theta = 5.0 * 0.8_f64.atan2(0.6);
    assert!((r - theta.cos()).abs() < 1e-14 && (i - theta.sin()).abs() < 1e-14);
}
