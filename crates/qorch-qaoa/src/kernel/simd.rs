//! Dispatch to the AVX2+FMA builds of the work units, when the CPU has them (the kernel's
//! only `unsafe`: calls of `#[target_feature]` functions, guarded by CPU detection).

use super::diag::Diag;
use super::work_units::{PassA, PassAPair, PassB, PassBPair, Strip};

macro_rules! units {
    ($( $name:ident, $avx:ident => $generic:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {$(
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx<D: Diag>($($arg: $ty),*) -> $ret {
            super::work_units::$generic::<D, true>($($arg),*)
        }

        /// The work unit, in its AVX2+FMA build when `simd` is set.
        #[inline]
        pub(super) fn $name<D: Diag>(simd: bool, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: `simd` is only set by `Layout::new` when `simd_available()`
                // detected AVX2 and FMA on this CPU, which is all the target-feature
                // function requires; it has no other preconditions.
                return unsafe { $avx::<D>($($arg),*) };
            }
            let _ = simd;
            super::work_units::$generic::<D, false>($($arg),*)
        }
    )*};
}

units! {
    a_block, a_block_avx2 => a_block(d: &D, op: &PassA<'_>, start: usize, re: &mut [f64], im: &mut [f64]) -> f64;
    a_block_pair, a_block_pair_avx2 => a_block_pair(d: &D, op: &PassAPair<'_>, start: usize, p: (&mut [f64], &mut [f64]), l: (&mut [f64], &mut [f64])) -> (f64, f64);
    b_strip, b_strip_avx2 => b_strip(d: &D, op: &PassB, strip: &mut Strip<'_, 2>, buf: &mut [f64]) -> f64;
    b_strip_pair, b_strip_pair_avx2 => b_strip_pair(d: &D, op: &PassBPair, strip: &mut Strip<'_, 4>, buf: &mut [f64]) -> f64;
}
