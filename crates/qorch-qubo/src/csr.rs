//! [`symmetric_csr`]: compressed rows of a symmetric sparse matrix from its upper triangle.

use crate::Coupling;

/// Compressed rows of the symmetric `n x n` matrix whose upper-triangle entries are `upper`:
/// `(i, j, w)` with `i < j < n`, sorted by `(i, j)`, no pair twice. Returns `start` (row `v`
/// is `adj[start[v]..start[v + 1]]`, `n + 1` entries) and `adj`, where row `v` lists every
/// entry on `v`'s row or column as `(other variable, w)`.
///
/// Rows come out sorted by the other variable: row `v` first gets the pairs `(u, v)`, `u < v`,
/// in increasing `u`, then the pairs `(v, u)`, `u > v`, in increasing `u`.
///
/// ```
/// let (start, adj) = qorch_qubo::symmetric_csr(3, &[(0, 1, 2.0), (1, 2, -1.0)]);
/// assert_eq!(start, [0, 1, 3, 4]);
/// let row1: Vec<(u32, f64)> = adj[start[1]..start[2]].iter().map(|c| (c.var, c.weight)).collect();
/// assert_eq!(row1, [(0, 2.0), (2, -1.0)]);
/// ```
#[must_use]
pub fn symmetric_csr(n: usize, upper: &[(u32, u32, f64)]) -> (Vec<usize>, Vec<Coupling>) {
    let mut degree = vec![0_usize; n + 1];
    for &(i, j, _) in upper {
        degree[i as usize] += 1;
        degree[j as usize] += 1;
    }
    let mut start = vec![0_usize; n + 1];
    for i in 0..n {
        start[i + 1] = start[i] + degree[i];
    }
    let mut fill = start.clone();
    let mut adj = vec![
        Coupling {
            var: 0,
            weight: 0.0
        };
        start[n]
    ];
    for &(i, j, w) in upper {
        adj[fill[i as usize]] = Coupling { var: j, weight: w };
        fill[i as usize] += 1;
        adj[fill[j as usize]] = Coupling { var: i, weight: w };
        fill[j as usize] += 1;
    }
    (start, adj)
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::symmetric_csr;

    #[test]
    fn rows_come_out_sorted_without_a_sort() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for _ in 0..200 {
            let n = rng.random_range(1..40_usize);
            let mut upper: Vec<(u32, u32, f64)> = Vec::new();
            for i in 0..n as u32 {
                for j in i + 1..n as u32 {
                    if rng.random_range(0..4_u32) == 0 {
                        upper.push((i, j, f64::from(rng.random_range(1..9_u32))));
                    }
                }
            }
            let (start, adj) = symmetric_csr(n, &upper);
            assert_eq!(start[n], 2 * upper.len());
            for v in 0..n {
                let row = &adj[start[v]..start[v + 1]];
                assert!(
                    row.windows(2).all(|w| w[0].var < w[1].var),
                    "row {v}: {row:?}"
                );
                for c in row {
                    let (a, b) = (v.min(c.var as usize), v.max(c.var as usize));
                    assert!(upper.contains(&(a as u32, b as u32, c.weight)));
                }
            }
        }
    }
}
