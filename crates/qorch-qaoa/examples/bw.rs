use std::time::Instant;
use rayon::prelude::*;
fn main() {
    let n = 1usize << 27; // 1 GiB f64
    let mut a = vec![1.0f64; n];
    for t in 0..3 {
        let s = Instant::now();
        a.par_chunks_mut(1 << 16).for_each(|c| for x in c.iter_mut() { *x *= 1.0000001; });
        let dt = s.elapsed().as_secs_f64();
        let s2 = Instant::now();
        let sum: f64 = a.par_chunks(1 << 16).map(|c| c.iter().sum::<f64>()).sum();
        let dt2 = s2.elapsed().as_secs_f64();
        let s3 = Instant::now();
        a.chunks_mut(1 << 16).for_each(|c| for x in c.iter_mut() { *x *= 1.0000001; });
        let dt3 = s3.elapsed().as_secs_f64();
        println!("{t}: rmw 2thr {:.2} GB/s, read 2thr {:.2} GB/s, rmw 1thr {:.2} GB/s ({sum})", 2.0 * 8.0 * n as f64 / dt / 1e9, 8.0 * n as f64 / dt2 / 1e9, 16.0 * n as f64 / dt3 / 1e9);
    }
}
