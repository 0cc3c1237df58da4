use std::time::Instant;
use qorch_qaoa::*;
fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let reps: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let g = random_regular_graph(n, 3, 1).unwrap();
    let mut sim = QaoaSimulator::for_max_cut(&g, SimConfig::default()).unwrap();
    let t = Instant::now();
    for _ in 0..reps { sim.layer(0.3, 0.2); }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    println!("n={n} layer {:.3} us, {:.2} amp-qubit/ns", dt * 1e6, (n << n) as f64 / dt / 1e9);
}
