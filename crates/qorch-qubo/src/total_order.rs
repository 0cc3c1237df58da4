//! [`TotalF64`]: an `f64` ordered by [`f64::total_cmp`], a key for heaps and sorts.

use std::cmp::Ordering;

/// An `f64` with the total order of [`f64::total_cmp`], so that it can key a
/// [`BinaryHeap`](std::collections::BinaryHeap) or a priority queue (larger key first in a
/// max-heap).
///
/// Equality (`==`) stays that of `f64`; only [`Ord`] and [`PartialOrd`] use the total order.
///
/// ```
/// use qorch_qubo::TotalF64;
///
/// let mut keys = vec![TotalF64(2.0), TotalF64(-1.0), TotalF64(0.5)];
/// keys.sort();
/// assert_eq!(keys, [TotalF64(-1.0), TotalF64(0.5), TotalF64(2.0)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TotalF64(pub f64);

impl Eq for TotalF64 {}

impl PartialOrd for TotalF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TotalF64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
