//! f32 reduction kernels: generic bodies over [`F32x`], their portable
//! counterparts, one `#[target_feature]` instance per tier named
//! `<isa>_<op>_f32`, and the [`ReduceKernels`] table chosen once per
//! process.
//!
//! Accuracy: f32 sums (`row_sum`, `acc_sum`, `row_dot`)
//! accumulate in f64 lanes (each product or square is rounded to f32
//! first), so a row of any length sums with f64 error, not f32 error.
//! `row_max`/`row_min` propagate NaN; `acc_max`/`acc_min` do so per lane.

use std::sync::OnceLock;

use super::vec::F32x;
use crate::isa::{self, Isa};

/// Loads `n < LANES` elements from `p`; the other lanes hold `fill`.
///
/// # Safety
/// `n` elements are readable at `p`; the CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn load_tail<S: F32x>(p: *const f32, n: usize, fill: f32) -> S::V {
    let mut buf = [fill; 16];
    debug_assert!(n < S::LANES && S::LANES <= 16);
    // SAFETY: `n` readable elements at `p` (caller); `n < LANES <= 16` fit
    // the buffer, which then holds LANES readable elements.
    unsafe {
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
        S::load(buf.as_ptr())
    }
}

/// Stores the first `n < LANES` lanes of `v` at `p`.
///
/// # Safety
/// `n` elements are writable at `p`; the CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn store_tail<S: F32x>(p: *mut f32, n: usize, v: S::V) {
    let mut buf = [0f32; 16];
    // SAFETY: the buffer holds 16 >= LANES elements; `n` writable at `p`.
    unsafe {
        S::store(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
    }
}

/// Sum of `x` in f64 lanes.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn row_sum<S: F32x>(x: &[f32]) -> f64 {
    let (l, n, p) = (S::LANES, x.len(), x.as_ptr());
    // SAFETY: every full load reads `l` elements at `i` with `i + l <= n`;
    // the tail reads `n - i` elements; the CPU supports `S` (caller).
    unsafe {
        let z = S::dzero();
        let (mut a0, mut b0, mut a1, mut b1) = (z, z, z, z);
        let mut i = 0;
        while i + 2 * l <= n {
            (a0, b0) = S::dwiden_add(a0, b0, S::load(p.add(i)));
            (a1, b1) = S::dwiden_add(a1, b1, S::load(p.add(i + l)));
            i += 2 * l;
        }
        if i + l <= n {
            (a0, b0) = S::dwiden_add(a0, b0, S::load(p.add(i)));
            i += l;
        }
        if i < n {
            (a1, b1) = S::dwiden_add(a1, b1, load_tail::<S>(p.add(i), n - i, 0.0));
        }
        S::dhsum(S::dadd(S::dadd(a0, b0), S::dadd(a1, b1)))
    }
}

/// Largest (`MAX`) or smallest element of `x`; NaN if any is NaN; -inf
/// (+inf) when empty.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn row_extreme<S: F32x, const MAX: bool>(x: &[f32]) -> f32 {
    let (l, n, p) = (S::LANES, x.len(), x.as_ptr());
    let fill = if MAX {
        f32::NEG_INFINITY
    } else {
        f32::INFINITY
    };
    // SAFETY: as in `row_sum`.
    unsafe {
        let (mut m0, mut m1) = (S::splat(fill), S::splat(fill));
        let mut bad = S::mask_none();
        let mut i = 0;
        while i + 2 * l <= n {
            let (v0, v1) = (S::load(p.add(i)), S::load(p.add(i + l)));
            m0 = pick_v::<S, MAX>(m0, v0);
            m1 = pick_v::<S, MAX>(m1, v1);
            bad = S::or(bad, S::or(S::nan(v0), S::nan(v1)));
            i += 2 * l;
        }
        while i < n {
            let v = if i + l <= n {
                S::load(p.add(i))
            } else {
                load_tail::<S>(p.add(i), n - i, fill)
            };
            m0 = pick_v::<S, MAX>(m0, v);
            bad = S::or(bad, S::nan(v));
            i += l;
        }
        if S::any(bad) {
            f32::NAN
        } else if MAX {
            S::hmax(S::max(m0, m1))
        } else {
            S::hmin(S::min(m0, m1))
        }
    }
}

/// `max(a, b)` (`MAX`) or `min(a, b)` lane-wise.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
unsafe fn pick_v<S: F32x, const MAX: bool>(a: S::V, b: S::V) -> S::V {
    // SAFETY: per the caller.
    unsafe {
        if MAX {
            S::max(a, b)
        } else {
            S::min(a, b)
        }
    }
}

/// `acc[i] += x[i]` (widened to f64) over the common length.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn acc_sum<S: F32x>(acc: &mut [f64], x: &[f32]) {
    let (l, h, n) = (S::LANES, S::LANES / 2, acc.len().min(x.len()));
    let (ap, xp) = (acc.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    // SAFETY: `i + l <= n` bounds every access to both slices.
    unsafe {
        while i + l <= n {
            let v = S::load(xp.add(i));
            let (a, b) = S::dwiden_add(S::dload(ap.add(i)), S::dload(ap.add(i + h)), v);
            S::dstore(ap.add(i), a);
            S::dstore(ap.add(i + h), b);
            i += l;
        }
    }
    for j in i..n {
        acc[j] += x[j] as f64;
    }
}

/// `acc[i] = max(acc[i], x[i])` (`MAX`) or min, NaN-propagating per lane.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn acc_extreme<S: F32x, const MAX: bool>(acc: &mut [f32], x: &[f32]) {
    let (l, n) = (S::LANES, acc.len().min(x.len()));
    let (ap, xp) = (acc.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    // SAFETY: `i + l <= n` bounds every access to both slices.
    unsafe {
        while i + l <= n {
            let (a, v) = (S::load(ap.add(i)), S::load(xp.add(i)));
            let better = if MAX { S::gt(v, a) } else { S::lt(v, a) };
            S::store(ap.add(i), S::select(S::or(better, S::nan(v)), v, a));
            i += l;
        }
    }
    for j in i..n {
        acc[j] = pick_scalar::<MAX>(acc[j], x[j]);
    }
}

/// The scalar step of `acc_extreme`: `v` replaces `a` when better or NaN.
#[inline(always)]
fn pick_scalar<const MAX: bool>(a: f32, v: f32) -> f32 {
    let better = if MAX { v > a } else { v < a };
    if better || v.is_nan() {
        v
    } else {
        a
    }
}

/// `sum a[i] * b[i]` over the common length; products rounded to f32,
/// summed in f64.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn row_dot<S: F32x>(a: &[f32], b: &[f32]) -> f64 {
    let (l, n) = (S::LANES, a.len().min(b.len()));
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: full loads need `i + l <= n`; the tail reads `n - i`.
    unsafe {
        let z = S::dzero();
        let (mut a0, mut b0, mut a1, mut b1) = (z, z, z, z);
        let mut i = 0;
        while i + 2 * l <= n {
            let p0 = S::mul(S::load(pa.add(i)), S::load(pb.add(i)));
            let p1 = S::mul(S::load(pa.add(i + l)), S::load(pb.add(i + l)));
            (a0, b0) = S::dwiden_add(a0, b0, p0);
            (a1, b1) = S::dwiden_add(a1, b1, p1);
            i += 2 * l;
        }
        while i < n {
            let k = (n - i).min(l);
            let p = S::mul(
                load_tail_or_full::<S>(pa.add(i), k),
                load_tail_or_full::<S>(pb.add(i), k),
            );
            (a0, b0) = S::dwiden_add(a0, b0, p);
            i += k;
        }
        S::dhsum(S::dadd(S::dadd(a0, b0), S::dadd(a1, b1)))
    }
}

/// A full load when `k == LANES`, else a zero-padded tail load.
///
/// # Safety
/// `k <= LANES` elements are readable at `p`; the CPU supports `S`.
#[inline(always)]
unsafe fn load_tail_or_full<S: F32x>(p: *const f32, k: usize) -> S::V {
    // SAFETY: per the caller.
    unsafe {
        if k == S::LANES {
            S::load(p)
        } else {
            load_tail::<S>(p, k, 0.0)
        }
    }
}

/// The portable kernels: plain Rust, the reference for every tier.
pub(crate) mod portable {
    /// Sum in f64 (eight independent accumulators).
    pub(crate) fn row_sum_f32(x: &[f32]) -> f64 {
        let mut acc = [0f64; 8];
        let mut chunks = x.chunks_exact(8);
        for c in &mut chunks {
            for k in 0..8 {
                acc[k] += c[k] as f64;
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
        acc.iter().sum::<f64>() + tail
    }

    /// Largest element; NaN if any; -inf when empty.
    pub(crate) fn row_max_f32(x: &[f32]) -> f32 {
        extreme::<true>(x)
    }

    /// Smallest element; NaN if any; +inf when empty.
    pub(crate) fn row_min_f32(x: &[f32]) -> f32 {
        extreme::<false>(x)
    }

    fn extreme<const MAX: bool>(x: &[f32]) -> f32 {
        let init = if MAX {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        };
        x.iter().fold(init, |a, &v| super::pick_scalar::<MAX>(a, v))
    }

    /// `acc += x` in f64.
    pub(crate) fn acc_sum_f32(acc: &mut [f64], x: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += v as f64;
        }
    }

    /// `acc = max(acc, x)`, NaN-propagating.
    pub(crate) fn acc_max_f32(acc: &mut [f32], x: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a = super::pick_scalar::<true>(*a, v);
        }
    }

    /// `acc = min(acc, x)`, NaN-propagating.
    pub(crate) fn acc_min_f32(acc: &mut [f32], x: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a = super::pick_scalar::<false>(*a, v);
        }
    }
}

/// Defines `#[target_feature]` instances of generic kernels for one tier.
macro_rules! tier_kernels {
    ($feat:literal, $S:ty; $($name:ident = $generic:path [$($arg:ident: $ty:ty),*] $(-> $ret:ty)?;)*) => {$(
        #[doc = concat!("`", stringify!($generic), "` compiled for `", $feat, "`.")]
        ///
        /// # Safety
        /// The CPU must support the features named above.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: this function is compiled for the tier's features,
            // which the caller guarantees the CPU has.
            unsafe { $generic($($arg),*) }
        }
    )*};
}
pub(crate) use tier_kernels;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::vec::{Avx2, Avx512, Sse2};
    use super::*;

    tier_kernels! { "sse2", Sse2;
        sse2_row_sum_f32 = row_sum::<Sse2> [x: &[f32]] -> f64;
        sse2_row_max_f32 = row_extreme::<Sse2, true> [x: &[f32]] -> f32;
        sse2_row_min_f32 = row_extreme::<Sse2, false> [x: &[f32]] -> f32;
        sse2_acc_sum_f32 = acc_sum::<Sse2> [acc: &mut [f64], x: &[f32]];
        sse2_acc_max_f32 = acc_extreme::<Sse2, true> [acc: &mut [f32], x: &[f32]];
        sse2_acc_min_f32 = acc_extreme::<Sse2, false> [acc: &mut [f32], x: &[f32]];
    }
    tier_kernels! { "avx2,fma", Avx2;
        avx2_row_sum_f32 = row_sum::<Avx2> [x: &[f32]] -> f64;
        avx2_row_max_f32 = row_extreme::<Avx2, true> [x: &[f32]] -> f32;
        avx2_row_min_f32 = row_extreme::<Avx2, false> [x: &[f32]] -> f32;
        avx2_acc_sum_f32 = acc_sum::<Avx2> [acc: &mut [f64], x: &[f32]];
        avx2_acc_max_f32 = acc_extreme::<Avx2, true> [acc: &mut [f32], x: &[f32]];
        avx2_acc_min_f32 = acc_extreme::<Avx2, false> [acc: &mut [f32], x: &[f32]];
    }
    tier_kernels! { "avx512f", Avx512;
        avx512_row_sum_f32 = row_sum::<Avx512> [x: &[f32]] -> f64;
        avx512_row_max_f32 = row_extreme::<Avx512, true> [x: &[f32]] -> f32;
        avx512_row_min_f32 = row_extreme::<Avx512, false> [x: &[f32]] -> f32;
        avx512_acc_sum_f32 = acc_sum::<Avx512> [acc: &mut [f64], x: &[f32]];
        avx512_acc_max_f32 = acc_extreme::<Avx512, true> [acc: &mut [f32], x: &[f32]];
        avx512_acc_min_f32 = acc_extreme::<Avx512, false> [acc: &mut [f32], x: &[f32]];
    }
}

/// The f32 reduction kernels of one tier. Every entry runs on this CPU:
/// tables are only built for tiers in [`isa::available_tiers`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReduceKernels {
    /// The tier the table was built for.
    pub(crate) isa: Isa,
    row_sum: unsafe fn(&[f32]) -> f64,
    row_max: unsafe fn(&[f32]) -> f32,
    row_min: unsafe fn(&[f32]) -> f32,
    acc_sum: unsafe fn(&mut [f64], &[f32]),
    acc_max: unsafe fn(&mut [f32], &[f32]),
    acc_min: unsafe fn(&mut [f32], &[f32]),
}

impl ReduceKernels {
    fn portable() -> Self {
        ReduceKernels {
            isa: Isa::Portable,
            row_sum: portable::row_sum_f32,
            row_max: portable::row_max_f32,
            row_min: portable::row_min_f32,
            acc_sum: portable::acc_sum_f32,
            acc_max: portable::acc_max_f32,
            acc_min: portable::acc_min_f32,
        }
    }

    /// Sum of `x`, accumulated in f64.
    pub(crate) fn row_sum(&self, x: &[f32]) -> f64 {
        // SAFETY: the entry is for a tier this CPU supports (see the type).
        unsafe { (self.row_sum)(x) }
    }

    /// Largest element (NaN if any is NaN; -inf when empty).
    pub(crate) fn row_max(&self, x: &[f32]) -> f32 {
        // SAFETY: as `row_sum`.
        unsafe { (self.row_max)(x) }
    }

    /// Smallest element (NaN if any is NaN; +inf when empty).
    pub(crate) fn row_min(&self, x: &[f32]) -> f32 {
        // SAFETY: as `row_sum`.
        unsafe { (self.row_min)(x) }
    }

    /// `acc += x` elementwise (f64 accumulators).
    pub(crate) fn acc_sum(&self, acc: &mut [f64], x: &[f32]) {
        // SAFETY: as `row_sum`.
        unsafe { (self.acc_sum)(acc, x) }
    }

    /// `acc = max(acc, x)` elementwise, NaN-propagating.
    pub(crate) fn acc_max(&self, acc: &mut [f32], x: &[f32]) {
        // SAFETY: as `row_sum`.
        unsafe { (self.acc_max)(acc, x) }
    }

    /// `acc = min(acc, x)` elementwise, NaN-propagating.
    pub(crate) fn acc_min(&self, acc: &mut [f32], x: &[f32]) {
        // SAFETY: as `row_sum`.
        unsafe { (self.acc_min)(acc, x) }
    }
}

/// The table for `isa`: portable entries overwritten tier by tier up to
/// `isa`. `None` when this machine cannot run `isa`.
pub(crate) fn table_for(isa: Isa) -> Option<ReduceKernels> {
    if !isa::available_tiers().contains(&isa) {
        return None;
    }
    let mut t = ReduceKernels::portable();
    t.isa = isa;
    #[cfg(target_arch = "x86_64")]
    {
        use x86::*;
        if matches!(isa, Isa::Sse2 | Isa::Avx2 | Isa::Avx512) {
            (t.row_sum, t.row_max, t.row_min) =
                (sse2_row_sum_f32, sse2_row_max_f32, sse2_row_min_f32);
            (t.acc_sum, t.acc_max, t.acc_min) =
                (sse2_acc_sum_f32, sse2_acc_max_f32, sse2_acc_min_f32);
        }
        if matches!(isa, Isa::Avx2 | Isa::Avx512) {
            (t.row_sum, t.row_max, t.row_min) =
                (avx2_row_sum_f32, avx2_row_max_f32, avx2_row_min_f32);
            (t.acc_sum, t.acc_max, t.acc_min) =
                (avx2_acc_sum_f32, avx2_acc_max_f32, avx2_acc_min_f32);
        }
        if isa == Isa::Avx512 {
            (t.row_sum, t.row_max, t.row_min) =
                (avx512_row_sum_f32, avx512_row_max_f32, avx512_row_min_f32);
            (t.acc_sum, t.acc_max, t.acc_min) =
                (avx512_acc_sum_f32, avx512_acc_max_f32, avx512_acc_min_f32);
        }
    }
    #[cfg(target_arch = "aarch64")]
    if isa == Isa::Neon {
        use super::neon::{neon_row_max_f32, neon_row_sum_f32};
        (t.row_sum, t.row_max) = (neon_row_sum_f32, neon_row_max_f32);
    }
    Some(t)
}

/// The table for the tier in use ([`isa::tier`]), built once.
pub(crate) fn table() -> &'static ReduceKernels {
    static TABLE: OnceLock<ReduceKernels> = OnceLock::new();
    TABLE.get_or_init(|| table_for(isa::tier()).unwrap_or_else(ReduceKernels::portable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    pub(crate) const LENGTHS: &[usize] = &[
        0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 257, 1000, 4099,
    ];

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
    }

    fn tables() -> Vec<ReduceKernels> {
        isa::available_tiers()
            .into_iter()
            .filter_map(table_for)
            .collect()
    }

    #[test]
    fn row_kernels_match_portable_at_every_tier() {
        let p = ReduceKernels::portable();
        let mut rng = Rng::new(11);
        for t in tables() {
            for &n in LENGTHS {
                let x: Vec<f32> = rng.vec(n, -3.0, 5.0);
                let tag = format!("{} n={n}", t.isa);
                assert!(close(t.row_sum(&x), p.row_sum(&x), 1e-12), "row_sum {tag}");
                assert_eq!(t.row_max(&x), p.row_max(&x), "row_max {tag}");
                assert_eq!(t.row_min(&x), p.row_min(&x), "row_min {tag}");
            }
        }
    }

    #[test]
    fn extremes_propagate_nan_at_every_tier() {
        for t in tables() {
            for &n in &[1usize, 5, 16, 33, 100] {
                for pos in [0, n / 2, n - 1] {
                    let mut x = vec![1.0f32; n];
                    x[pos] = f32::NAN;
                    assert!(t.row_max(&x).is_nan(), "{} n={n} pos={pos}", t.isa);
                    assert!(t.row_min(&x).is_nan(), "{} n={n} pos={pos}", t.isa);
                    let mut acc = vec![0.5f32; n];
                    t.acc_max(&mut acc, &x);
                    assert!(acc[pos].is_nan() && acc.iter().filter(|v| v.is_nan()).count() == 1);
                    t.acc_max(&mut acc, &vec![9.0; n]);
                    assert!(acc[pos].is_nan(), "NaN must stick in the accumulator");
                }
            }
            assert_eq!(t.row_max(&[]), f32::NEG_INFINITY);
            assert_eq!(t.row_min(&[]), f32::INFINITY);
        }
    }

    #[test]
    fn accumulators_match_portable_at_every_tier() {
        let p = ReduceKernels::portable();
        let mut rng = Rng::new(12);
        for t in tables() {
            for &n in LENGTHS {
                let x: Vec<f32> = rng.vec(n, -3.0, 5.0);
                let a64: Vec<f64> = rng.vec(n, -1.0, 1.0);
                let a32: Vec<f32> = rng.vec(n, -1.0, 1.0);
                let (mut s1, mut s2) = (a64.clone(), a64.clone());
                t.acc_sum(&mut s1, &x);
                p.acc_sum(&mut s2, &x);
                assert_eq!(s1, s2, "acc_sum {} n={n}", t.isa);
                let (mut m1, mut m2) = (a32.clone(), a32.clone());
                t.acc_max(&mut m1, &x);
                p.acc_max(&mut m2, &x);
                assert_eq!(m1, m2, "acc_max {} n={n}", t.isa);
                let (mut m1, mut m2) = (a32.clone(), a32);
                t.acc_min(&mut m1, &x);
                p.acc_min(&mut m2, &x);
                assert_eq!(m1, m2, "acc_min {} n={n}", t.isa);
            }
        }
    }

    #[test]
    fn f32_sum_is_accurate_for_long_rows() {
        // 2^24 + many small values: an f32 accumulator would drop them all.
        let mut x = vec![1.0f32; 1 << 20];
        x[0] = 16_777_216.0;
        for t in tables() {
            assert_eq!(
                t.row_sum(&x),
                16_777_216.0 + ((1 << 20) - 1) as f64,
                "{}",
                t.isa
            );
        }
    }
}
