use super::*;

#[test]
fn layouts_cover_every_qubit_once_with_cache_sized_steps() {
    for cfg in [
        KernelConfig::default(),
        KernelConfig { block_bits: 3, min_run_bits: 1, simd: false },
        KernelConfig { block_bits: 14, min_run_bits: 8, simd: true },
    ] {
        for n in 0..=30 {
            let l = Layout::new(n, &cfg, false);
            let mut covered = l.low_mask();
            for g in &l.groups {
                assert!(g.k >= 1 && g.q0 >= l.block_bits);
                assert!(g.run_bits >= cfg.min_run_bits.min(l.block_bits - 1), "{cfg:?} n={n} {g:?}");
                assert_eq!(g.k + g.run_bits, l.block_bits, "the working set is one cache block");
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
    let group = Group { q0: 4, k: 3, run_bits: 1 };
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
    rot(&mut r0, &mut i0, &mut r1, &mut i1, c, s);
    assert_eq!((r0[0], i0[0], r1[0], i1[0]), (c, 0.0, 0.0, -s));
    // rot_low2 agrees with rot_qubit on qubits 0 and 1.
    let mut a: Vec<f64> = (0..16).map(|x| f64::from(x) * 0.1).collect();
    let mut b: Vec<f64> = (0..16).map(|x| 1.0 - f64::from(x) * 0.05).collect();
    let (mut a2, mut b2) = (a.clone(), b.clone());
    rot_low2(&mut a, &mut b, true, true, c, s);
    rot_qubit(&mut a2, &mut b2, 0, c, s);
    rot_qubit(&mut a2, &mut b2, 1, c, s);
    for k in 0..16 {
        assert!((a[k] - a2[k]).abs() < 1e-15 && (b[k] - b2[k]).abs() < 1e-15);
    }
}
