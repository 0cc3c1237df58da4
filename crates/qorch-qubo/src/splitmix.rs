//! [`splitmix64`]: `SplitMix64`'s finalizer, the one hash of a 64-bit value that seeds and
//! mixes across the workspace.

/// `SplitMix64`'s step and finalizer: a well-mixed hash of a 64-bit value (the first output
/// of a `SplitMix64` generator seeded with `x`).
///
/// ```
/// assert_eq!(qorch_qubo::splitmix64(0), 0xE220_A839_7B1D_CDAF);
/// ```
#[must_use]
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::SplitMix64;

    use super::splitmix64;

    #[test]
    fn is_the_first_output_of_rand_xoshiros_splitmix64() {
        let mut x = 0x0123_4567_89AB_CDEF_u64;
        for probe in [0, 1, u64::MAX, 0x9E37_79B9_7F4A_7C15] {
            assert_eq!(
                splitmix64(probe),
                SplitMix64::seed_from_u64(probe).next_u64()
            );
        }
        for _ in 0..1000 {
            x = splitmix64(x);
            assert_eq!(splitmix64(x), SplitMix64::seed_from_u64(x).next_u64());
        }
    }
}
