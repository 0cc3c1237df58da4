//! Unfused operations: the XY mixer's two-qubit gate and the initial states.

use rayon::prelude::*;

use super::passes::ordered_sum;

/// `exp(-i beta (X_i X_j + Y_i Y_j) / 2)` on one pair of qubits: mixes the amplitudes of
/// states that differ by swapping a 1 on qubit `i` and a 0 on qubit `j` (Hamming weight
/// preserved). With `acc`, first accumulates `Im <l|h|p>` on the pair `(p, l)` and rotates
/// both.
pub(crate) fn xy_gate(
    parallel: bool,
    p: (&mut [f64], &mut [f64]),
    l: Option<(&mut [f64], &mut [f64])>,
    i: usize,
    j: usize,
    (c, s): (f64, f64),
) -> f64 {
    let hi = i.max(j);
    let chunk = 2_usize << hi;
    let m = (1_usize << i) | (1_usize << j);
    let pair_op = |re: &mut [f64], im: &mut [f64], x: usize, y: usize| {
        let (a, b, u, v) = (re[x], im[x], re[y], im[y]);
        re[x] = c * a + s * v;
        im[x] = c * b - s * u;
        re[y] = c * u + s * b;
        im[y] = c * v - s * a;
    };
    let work = |(pr, pi): (&mut [f64], &mut [f64]), lam: Option<(&mut [f64], &mut [f64])>| -> f64 {
        let mut acc = 0.0;
        let mut lam = lam;
        for x in 0..pr.len() {
            if (x >> i) & 1 == 1 && (x >> j) & 1 == 0 {
                let y = x ^ m;
                if let Some((lr, li)) = lam.as_mut() {
                    acc += lr[x] * pi[y] - li[x] * pr[y] + lr[y] * pi[x] - li[y] * pr[x];
                    pair_op(lr, li, x, y);
                }
                pair_op(pr, pi, x, y);
            }
        }
        acc
    };
    match l {
        None if parallel && p.0.len() > chunk => {
            let parts: Vec<f64> =
                p.0.par_chunks_mut(chunk)
                    .zip(p.1.par_chunks_mut(chunk))
                    .map(|x| work(x, None))
                    .collect();
            ordered_sum(parts.into_iter())
        }
        None => ordered_sum(
            p.0.chunks_mut(chunk)
                .zip(p.1.chunks_mut(chunk))
                .map(|x| work(x, None)),
        ),
        Some((lr, li)) if parallel && p.0.len() > chunk => {
            let ps = p.0.par_chunks_mut(chunk).zip(p.1.par_chunks_mut(chunk));
            let ls = lr.par_chunks_mut(chunk).zip(li.par_chunks_mut(chunk));
            let parts: Vec<f64> = ps.zip(ls).map(|(x, y)| work(x, Some(y))).collect();
            ordered_sum(parts.into_iter())
        }
        Some((lr, li)) => {
            let ps = p.0.chunks_mut(chunk).zip(p.1.chunks_mut(chunk));
            let ls = lr.chunks_mut(chunk).zip(li.chunks_mut(chunk));
            ordered_sum(ps.zip(ls).map(|(x, y)| work(x, Some(y))))
        }
    }
}

/// Writes `f(x)` (a real amplitude) into every basis state.
pub(crate) fn fill_real(
    parallel: bool,
    re: &mut [f64],
    im: &mut [f64],
    f: impl Fn(usize) -> f64 + Sync,
) {
    const CHUNK: usize = 1 << 14;
    let work = |(c, (r, i)): (usize, (&mut [f64], &mut [f64]))| {
        for (k, (r, i)) in r.iter_mut().zip(i.iter_mut()).enumerate() {
            *r = f(c * CHUNK + k);
            *i = 0.0;
        }
    };
    if parallel {
        re.par_chunks_mut(CHUNK)
            .zip(im.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(work);
    } else {
        re.chunks_mut(CHUNK)
            .zip(im.chunks_mut(CHUNK))
            .enumerate()
            .for_each(work);
    }
}
