//! Ad-hoc timing for tuning (temporary).
use std::time::Instant;
use qorch_qaoa::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args[1].parse().unwrap();
    let bb: usize = args.get(2).map_or(13, |s| s.parse().unwrap());
    let mr: usize = args.get(3).map_or(5, |s| s.parse().unwrap());
    let simd: bool = args.get(4).map_or(true, |s| s == "1");
    let g = random_regular_graph(n, 3, 1).unwrap();
    let t = Instant::now();
    let cfg = SimConfig { kernel: KernelConfig { block_bits: bb, min_run_bits: mr, simd }, ..SimConfig::default() };
    let mut sim = QaoaSimulator::for_max_cut(&g, cfg).unwrap();
    let pre = t.elapsed().as_secs_f64();
    let p1 = QaoaParams::fixed_angles_3_regular(1).unwrap();
    let mut ts = vec![];
    let mut e = 0.0;
    for _ in 0..5 { let t = Instant::now(); e = sim.expectation(&p1).unwrap(); ts.push(t.elapsed().as_secs_f64()); }
    ts.sort_by(f64::total_cmp);
    let mut ls = vec![];
    for _ in 0..5 { let t = Instant::now(); sim.layer(0.3, 0.2); ls.push(t.elapsed().as_secs_f64()); }
    ls.sort_by(f64::total_cmp);
    let mut gs = vec![];
    for _ in 0..3 { let t = Instant::now(); sim.expectation_and_gradient(&p1).unwrap(); gs.push(t.elapsed().as_secs_f64()); }
    gs.sort_by(f64::total_cmp);
    println!("n={n} bb={bb} mr={mr} simd={} passes={} pre={pre:.4} expect={:.5} layer={:.5} grad={:.5} frac={:.7} GB/s(layer)={:.2}",
        sim.uses_simd(), sim.passes_per_layer(), ts[2], ls[2], gs[1], e / g.num_edges() as f64, sim.layer_bytes() as f64 / ls[2] / 1e9);
}
#[allow(dead_code)]
fn unused() {}
