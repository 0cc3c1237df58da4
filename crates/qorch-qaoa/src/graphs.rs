//! Graphs for Max-Cut QAOA: seeded random regular graphs, girth, a rudy writer, and the
//! closed-form `p = 1` expectation.

use std::io::{self, Write};

use qorch_qubo::Graph;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::SimError;

/// A uniformly random simple `d`-regular graph on `n` vertices with unit weights: random
/// pairings of the `n d` half-edges (the configuration model), redrawn until no self-loop or
/// double edge remains. The same `(n, d, seed)` always gives the same graph (`ChaCha8`).
///
/// # Errors
///
/// [`SimError::Config`] when `n d` is odd, `d >= n`, or no simple pairing turned up in
/// 10,000 tries (large `d`).
///
/// # Examples
///
/// ```
/// let g = qorch_qaoa::random_regular_graph(10, 3, 7).unwrap();
/// assert_eq!(g.num_edges(), 15);
/// assert_eq!(qorch_qaoa::regular_degree(&g), Some(3));
/// assert_eq!(g, qorch_qaoa::random_regular_graph(10, 3, 7).unwrap());
/// ```
pub fn random_regular_graph(n: usize, d: usize, seed: u64) -> Result<Graph, SimError> {
    if !(n * d).is_multiple_of(2) {
        return Err(SimError::Config(format!(
            "no {d}-regular graph on {n} vertices: n d is odd"
        )));
    }
    if d >= n && n > 0 {
        return Err(SimError::Config(format!(
            "a simple {d}-regular graph needs more than {n} vertices"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stubs: Vec<usize> = (0..n).flat_map(|v| std::iter::repeat_n(v, d)).collect();
    for _ in 0..10_000 {
        // Fisher-Yates with an unbiased bounded draw.
        for i in (1..stubs.len()).rev() {
            let j = below(&mut rng, i as u64 + 1) as usize;
            stubs.swap(i, j);
        }
        let mut seen = std::collections::HashSet::with_capacity(stubs.len() / 2);
        let mut edges = Vec::with_capacity(stubs.len() / 2);
        let simple = stubs.chunks_exact(2).all(|p| {
            let (a, b) = (p[0].min(p[1]), p[0].max(p[1]));
            edges.push((a, b, 1.0));
            a != b && seen.insert((a, b))
        });
        if simple {
            edges.sort_by_key(|x| (x.0, x.1));
            return Graph::new(n, edges).map_err(|e| SimError::Config(e.to_string()));
        }
    }
    Err(SimError::Config(format!(
        "no simple {d}-regular graph on {n} vertices found in 10000 tries"
    )))
}

/// A uniform integer in `0..bound` (Lemire's method, rejection-free in expectation).
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    loop {
        let x = rng.next_u64();
        let m = u128::from(x) * u128::from(bound);
        let low = m as u64;
        if low >= bound.wrapping_neg() % bound {
            return (m >> 64) as u64;
        }
    }
}

/// The common degree of every vertex, counting an edge listed twice twice, or `None` if the
/// degrees differ (or the graph has a self-loop or no vertex).
pub fn regular_degree(g: &Graph) -> Option<usize> {
    let deg = degrees(g)?;
    let d = *deg.first()?;
    deg.iter().all(|&x| x == d).then_some(d)
}

fn degrees(g: &Graph) -> Option<Vec<usize>> {
    let mut deg = vec![0_usize; g.num_vertices()];
    for (i, j, _) in g.edges() {
        if i == j {
            return None;
        }
        deg[i] += 1;
        deg[j] += 1;
    }
    Some(deg)
}

/// Whether every edge has weight 1 and no pair is listed twice.
pub fn is_simple_unweighted(g: &Graph) -> bool {
    let mut seen = std::collections::HashSet::new();
    g.edges()
        .all(|(i, j, w)| w == 1.0 && i != j && seen.insert((i.min(j), i.max(j))))
}

/// The length of the shortest cycle, or `None` for a forest. A pair listed twice counts as a
/// cycle of length 2, a self-loop as 1. Breadth-first search from every vertex:
/// `O(n (n + m))`.
///
/// # Examples
///
/// ```
/// use qorch_qubo::Graph;
///
/// let c5 = Graph::new(5, (0..5).map(|i| (i, (i + 1) % 5, 1.0)).collect()).unwrap();
/// assert_eq!(qorch_qaoa::girth(&c5), Some(5));
/// let path = Graph::new(3, vec![(0, 1, 1.0), (1, 2, 1.0)]).unwrap();
/// assert_eq!(qorch_qaoa::girth(&path), None);
/// ```
pub fn girth(g: &Graph) -> Option<usize> {
    let n = g.num_vertices();
    let mut adj = vec![Vec::new(); n];
    for (k, (i, j, _)) in g.edges().enumerate() {
        if i == j {
            return Some(1);
        }
        adj[i].push((j, k));
        adj[j].push((i, k));
    }
    let mut best = usize::MAX;
    let mut dist = vec![usize::MAX; n];
    let mut via = vec![usize::MAX; n];
    let mut queue = std::collections::VecDeque::new();
    for s in 0..n {
        dist.fill(usize::MAX);
        dist[s] = 0;
        via[s] = usize::MAX;
        queue.clear();
        queue.push_back(s);
        while let Some(u) = queue.pop_front() {
            if 2 * dist[u] + 1 >= best {
                break;
            }
            for &(v, e) in &adj[u] {
                if e == via[u] {
                    continue;
                }
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    via[v] = e;
                    queue.push_back(v);
                } else {
                    best = best.min(dist[u] + dist[v] + 1);
                }
            }
        }
    }
    (best != usize::MAX).then_some(best)
}

/// Writes a graph in the rudy format read by [`qorch_qubo::read_rudy`] and by the peer
/// scripts: `n m`, then `i j w` per edge with 1-based vertices.
///
/// # Errors
///
/// Any error of the writer.
pub fn write_rudy(g: &Graph, mut out: impl Write) -> io::Result<()> {
    writeln!(out, "{} {}", g.num_vertices(), g.num_edges())?;
    for (i, j, w) in g.edges() {
        writeln!(out, "{} {} {}", i + 1, j + 1, w)?;
    }
    out.flush()
}

/// The closed-form `p = 1` QAOA expectation of the cut of an unweighted graph (Wang,
/// Hadfield, Jiang & Rieffel, "Quantum approximate optimization algorithm for `MaxCut`: a
/// fermionic view", PRA 97, 022304, 2018), in this crate's convention (`exp(-i gamma C)` then
/// `exp(-i beta sum X)` from `|+>^n`). Edge `(u, v)` with `d_u = deg(u) - 1`,
/// `d_v = deg(v) - 1` and `t` triangles through it contributes
///
/// ```text
/// 1/2 + 1/4 sin(4b) sin(g) (cos^d_u(g) + cos^d_v(g))
///     - 1/4 sin^2(2b) cos^(d_u + d_v - 2t)(g) (1 - cos^t(2g))
/// ```
///
/// # Errors
///
/// [`SimError::Config`] for a weighted graph, a self-loop or a repeated edge.
pub fn max_cut_p1_expectation(g: &Graph, gamma: f64, beta: f64) -> Result<f64, SimError> {
    if !is_simple_unweighted(g) {
        return Err(SimError::Config(
            "the p = 1 formula is for simple unweighted graphs".into(),
        ));
    }
    let n = g.num_vertices();
    let mut nbrs = vec![std::collections::HashSet::new(); n];
    for (i, j, _) in g.edges() {
        nbrs[i].insert(j);
        nbrs[j].insert(i);
    }
    let (cg, sg) = (gamma.cos(), gamma.sin());
    let (s4b, s2b) = ((4.0 * beta).sin(), (2.0 * beta).sin());
    let mut total = 0.0;
    for (u, v, _) in g.edges() {
        let du = nbrs[u].len() as i32 - 1;
        let dv = nbrs[v].len() as i32 - 1;
        let t = nbrs[u].intersection(&nbrs[v]).count() as i32;
        total += 0.5 + 0.25 * s4b * sg * (cg.powi(du) + cg.powi(dv))
            - 0.25 * s2b * s2b * cg.powi(du + dv - 2 * t) * (1.0 - (2.0 * gamma).cos().powi(t));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_regular_graphs_are_simple_regular_and_seeded() {
        for (n, d) in [(4, 3), (16, 3), (20, 3), (12, 4), (9, 2)] {
            let g = random_regular_graph(n, d, 5).unwrap();
            assert_eq!(regular_degree(&g), Some(d));
            assert!(is_simple_unweighted(&g));
            assert_eq!(g.num_edges(), n * d / 2);
        }
        assert_ne!(
            random_regular_graph(16, 3, 1).unwrap(),
            random_regular_graph(16, 3, 2).unwrap()
        );
        assert!(random_regular_graph(5, 3, 0).is_err());
        assert!(random_regular_graph(3, 3, 0).is_err());
    }

    #[test]
    fn girth_of_known_graphs() {
        let k4 = Graph::new(
            4,
            vec![
                (0, 1, 1.0),
                (0, 2, 1.0),
                (0, 3, 1.0),
                (1, 2, 1.0),
                (1, 3, 1.0),
                (2, 3, 1.0),
            ],
        )
        .unwrap();
        assert_eq!(girth(&k4), Some(3));
        let c8 = Graph::new(8, (0..8).map(|i| (i, (i + 1) % 8, 1.0)).collect()).unwrap();
        assert_eq!(girth(&c8), Some(8));
        let k33 = Graph::new(
            6,
            (0..3)
                .flat_map(|i| (3..6).map(move |j| (i, j, 1.0)))
                .collect(),
        )
        .unwrap();
        assert_eq!(girth(&k33), Some(4));
        let double = Graph::new(2, vec![(0, 1, 1.0), (1, 0, 1.0)]).unwrap();
        assert_eq!(girth(&double), Some(2));
    }

    #[test]
    fn rudy_round_trip() {
        let g = random_regular_graph(12, 3, 9).unwrap();
        let mut buf = Vec::new();
        write_rudy(&g, &mut buf).unwrap();
        assert_eq!(qorch_qubo::read_rudy(buf.as_slice()).unwrap(), g);
    }
}
