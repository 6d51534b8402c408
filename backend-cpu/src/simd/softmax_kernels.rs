//! f32 softmax-family row kernels: a vectorised `exp`, softmax and
//! log-softmax rows (max-subtracted), their backward rows and
//! log-sum-exp; generic over [`F32x`], instanced per tier as
//! `<isa>_<op>_f32`, with portable counterparts and the
//! [`SoftmaxKernels`] table.
//!
//! `exp` is Cephes' `expf` (Cody-Waite reduction by ln 2, degree-5
//! polynomial): within 2 ulp of the correctly rounded result on the normal
//! range; results below f32's normal range (x < -87.34) flush to 0, x above
//! 88.72 gives +inf, NaN stays NaN.
//!
//! Row sums of `exp` accumulate in f32 vector lanes (at most `n / LANES`
//! terms per lane, all in (0, 1]) and are combined in f64; the other sums
//! (backward) accumulate in f64 as in `reduce_kernels.rs`.

use std::sync::OnceLock;

use crate::isa::{self, Isa};
use crate::reduce::kernels::{load_tail, row_dot, row_extreme, row_sum, store_tail, tier_kernels};
use crate::reduce::vec::F32x;

const EXP_HI: f32 = 88.722_83;
const EXP_LO: f32 = -87.336_55;

/// `e^x` lane-wise (see the module doc for accuracy and range).
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn exp_v<S: F32x>(x: S::V) -> S::V {
    // SAFETY: the CPU supports `S` (caller).
    unsafe {
        let under = S::lt(x, S::splat(EXP_LO));
        let over = S::gt(x, S::splat(EXP_HI));
        // NaN-preserving clamp: x86 max/min return the second operand on NaN.
        let xc = S::min(S::splat(EXP_HI), S::max(S::splat(EXP_LO), x));
        let n = S::round(S::mul(xc, S::splat(std::f32::consts::LOG2_E)));
        let r = S::fma(n, S::splat(-0.693_359_4), xc);
        let r = S::fma(n, S::splat(2.121_944_4e-4), r);
        let mut p = S::splat(1.987_569_1e-4);
        p = S::fma(p, r, S::splat(1.398_2e-3));
        p = S::fma(p, r, S::splat(8.333_452e-3));
        p = S::fma(p, r, S::splat(4.166_579_6e-2));
        p = S::fma(p, r, S::splat(1.666_666_5e-1));
        p = S::fma(p, r, S::splat(0.5));
        let y = S::fma(p, S::mul(r, r), S::add(r, S::splat(1.0)));
        let y = S::scale2(y, n);
        let y = S::select(under, S::splat(0.0), y);
        S::select(over, S::splat(f32::INFINITY), y)
    }
}

/// `1.5 * 2^23 + 127`: `x + MAGIC` rounds `x` to an integer `n` (for
/// `|x| < 2^22`) and leaves `n + 127`, the biased exponent of `2^n`, in
/// the low bits of its mantissa.
const MAGIC: f32 = 12_583_039.0;

/// [`exp_nonpos_v`]'s floor: `round(-88 log2 e) = -127`, whose biased
/// exponent 0 makes `2^n` exactly 0.
const EXP_FLOOR: f32 = -88.0;

/// `e^x` for `x <= 0` or NaN (a row minus its maximum), with the work that
/// only larger `x` or a separate underflow test need left out:
/// - `n = round(x log2 e)` and `2^n` both come from one `x log2 e + MAGIC`
///   (the integer in the mantissa, shifted into the exponent field);
/// - below [`EXP_FLOOR`] `x` is clamped there, where that field is 0 and
///   so is `2^n`: the result is 0 from `x < -87.68` (`n = -127`), and
///   subnormal just above, with no compare or blend;
/// - `e^r = 1 + r + r^2 P(r)` on `|r| <= ln 2 / 2` with `P` of degree 4
///   (fitted here; 2.5e-9 relative in exact arithmetic, so f32 rounding
///   decides: within 2 ulp of `e^x`), by Horner's rule where multiply-add
///   is fused and in Estrin's scheme where it is not.
///
/// NaN stays NaN. Without a fused multiply-add (SSE2) `n` may differ by
/// one at a tie, which only moves `r` to the other end of its range.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn exp_nonpos_v<S: F32x>(x: S::V) -> S::V {
    // SAFETY: the CPU supports `S` (caller).
    unsafe { exp_nonpos_n::<S, 1>([x])[0] }
}

/// [`exp_nonpos_v`] of `U` vectors, each step taken for all of them before
/// the next, so that their dependent chains overlap in the out-of-order
/// window instead of one chain filling it (cache-resident softmax
/// [256,1024], 1 thread, against one vector's chain after another: SSE2
/// 229 -> 190 us, AVX2 98 -> 81 us).
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
unsafe fn exp_nonpos_n<S: F32x, const U: usize>(x: [S::V; U]) -> [S::V; U] {
    // SAFETY: the CPU supports `S` (caller). Plain loops, not closures or
    // `array::map`: a closure does not inherit the caller's target
    // features, and its intrinsics would become calls (10x slower).
    unsafe {
        let (mut xc, mut t, mut r, mut r2, mut p) = (x, x, x, x, x);
        // One loop per step: merging steps measured slower (AVX2 84 us).
        for j in 0..U {
            // NaN passes (x86 max returns its second operand on NaN).
            xc[j] = S::max(S::splat(EXP_FLOOR), x[j]);
        }
        for j in 0..U {
            t[j] = S::fma(xc[j], S::splat(std::f32::consts::LOG2_E), S::splat(MAGIC));
        }
        for j in 0..U {
            let n = S::sub(t[j], S::splat(MAGIC));
            r[j] = S::fma(n, S::splat(-0.693_359_4), xc[j]);
            r[j] = S::fma(n, S::splat(2.121_944_4e-4), r[j]);
        }
        for j in 0..U {
            r2[j] = S::mul(r[j], r[j]);
        }
        if S::FUSED {
            // Horner: one multiply-add fewer than Estrin, on the two
            // pipes that bound this loop where FMA exists (cache-resident
            // softmax [256,1024], 1 thread: AVX-512 77 -> 72 us, AVX2
            // 99-101 -> 97-98 us, one vector at a time).
            for j in 0..U {
                p[j] = S::fma(S::splat(1.375_285e-3), r[j], S::splat(8.366_169e-3));
            }
            for c in [4.166_921_2e-2, 0.166_665_42, 0.499_999_9] {
                for j in 0..U {
                    p[j] = S::fma(p[j], r[j], S::splat(c));
                }
            }
        } else {
            // Estrin: half the dependent steps, which SSE2's separate
            // multiplies and adds need (one vector at a time: 228 us
            // against Horner's 244; interleaved 8 wide they are equal).
            for j in 0..U {
                let a = S::fma(S::splat(0.166_665_42), r[j], S::splat(0.499_999_9));
                let b = S::fma(S::splat(8.366_169e-3), r[j], S::splat(4.166_921_2e-2));
                p[j] = S::fma(b, r2[j], a);
            }
            for j in 0..U {
                p[j] = S::fma(S::splat(1.375_285e-3), S::mul(r2[j], r2[j]), p[j]);
            }
        }
        for j in 0..U {
            xc[j] = S::fma(p[j], r2[j], S::add(r[j], S::splat(1.0)));
        }
        for j in 0..U {
            xc[j] = S::mul(xc[j], S::shl23(t[j]));
        }
        xc
    }
}

/// A lane-wise map applied by [`map`] (a trait rather than a closure, so
/// that it inlines into each tier's `#[target_feature]` instance).
trait LaneOp<S: F32x> {
    /// The mapped lanes.
    ///
    /// # Safety
    /// The CPU supports `S`.
    unsafe fn apply(&self, v: S::V) -> S::V;
}

/// `e^v`.
struct ExpOp;

impl<S: F32x> LaneOp<S> for ExpOp {
    #[inline(always)]
    unsafe fn apply(&self, v: S::V) -> S::V {
        // SAFETY: per the caller.
        unsafe { exp_v::<S>(v) }
    }
}

/// `e^v` for `v <= 0`.
struct ExpNonposOp;

impl<S: F32x> LaneOp<S> for ExpNonposOp {
    #[inline(always)]
    unsafe fn apply(&self, v: S::V) -> S::V {
        // SAFETY: per the caller.
        unsafe { exp_nonpos_v::<S>(v) }
    }
}

/// `(v - a) - b`.
struct SubSubOp<V>(V, V);

impl<S: F32x> LaneOp<S> for SubSubOp<S::V> {
    #[inline(always)]
    unsafe fn apply(&self, v: S::V) -> S::V {
        // SAFETY: per the caller.
        unsafe { S::sub(S::sub(v, self.0), self.1) }
    }
}

/// Applies `op` to every `LANES`-wide piece of `x` (tails padded with
/// `fill`) and stores the result into `y`.
///
/// # Safety
/// The CPU supports `S`; `y.len() >= x.len()`.
#[inline(always)]
unsafe fn map<S: F32x>(x: &[f32], y: &mut [f32], fill: f32, op: impl LaneOp<S>) {
    let (l, n, xp, yp) = (S::LANES, x.len(), x.as_ptr(), y.as_mut_ptr());
    debug_assert!(y.len() >= n);
    let mut i = 0;
    // SAFETY: full pieces need `i + l <= n`; the tail moves `n - i`.
    unsafe {
        while i + l <= n {
            S::store(yp.add(i), op.apply(S::load(xp.add(i))));
            i += l;
        }
        if i < n {
            store_tail::<S>(
                yp.add(i),
                n - i,
                op.apply(load_tail::<S>(xp.add(i), n - i, fill)),
            );
        }
    }
}

/// `y = e^x`.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn exp_row<S: F32x>(x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    // SAFETY: the CPU supports `S` (caller); `y` is cut to `x`'s length.
    unsafe { map::<S>(&x[..n], &mut y[..n], 0.0, ExpOp) }
}

/// `y = e^x` for `x <= 0`, as softmax rows compute it.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn exp_nonpos_row<S: F32x>(x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    // SAFETY: the CPU supports `S` (caller); `y` is cut to `x`'s length.
    unsafe { map::<S>(&x[..n], &mut y[..n], 0.0, ExpNonposOp) }
}

/// `y = e^(x - m)`, returning `sum y` (`y` = None: only the sum).
///
/// While it computes, it prefetches the row that follows `x` in memory
/// (the next row of a softmax over the last axis, or nothing useful for
/// the last one: a prefetch is a hint and never faults), so that the next
/// row's first, memory-bound pass finds it cached instead of leaving
/// memory idle during this compute-bound one.
///
/// # Safety
/// The CPU supports `S`; `y`, if given, is at least as long as `x`.
#[inline(always)]
unsafe fn exp_sum<S: F32x>(x: &[f32], y: Option<&mut [f32]>, m: f32) -> f64 {
    // Vectors per step (measured best, cache-resident softmax [256,1024],
    // 1 thread): 4 for AVX2 (8: 84 against 81 us); 8 for 4-lane vectors
    // (SSE2: 4 took 215 against 190 us) and AVX-512 (4: 73 against 71 us).
    // SAFETY: per the caller.
    unsafe {
        if S::LANES == 8 {
            exp_sum_n::<S, 4>(x, y, m)
        } else {
            exp_sum_n::<S, 8>(x, y, m)
        }
    }
}

/// [`exp_sum`], `U` vectors per step.
///
/// # Safety
/// As for [`exp_sum`]; `U` is even.
#[inline(always)]
unsafe fn exp_sum_n<S: F32x, const U: usize>(x: &[f32], y: Option<&mut [f32]>, m: f32) -> f64 {
    let (l, n, xp) = (S::LANES, x.len(), x.as_ptr());
    let next = xp.wrapping_add(n);
    let yp = y.map(|y| y.as_mut_ptr());
    // SAFETY: full pieces need `i + l <= n`; the tail moves `n - i`
    // elements (padding lanes hold -inf, whose exp adds 0).
    unsafe {
        let mv = S::splat(m);
        let (mut s0, mut s1) = (S::splat(0.0), S::splat(0.0));
        let mut i = 0;
        while i + U * l <= n {
            // One 64-byte line of the next row per 16 elements done.
            let mut line = 0;
            while line < U * l {
                S::prefetch(next.wrapping_add(i + line));
                line += 16;
            }
            let mut e = [mv; U];
            for (j, ej) in e.iter_mut().enumerate() {
                *ej = S::sub(S::load(xp.add(i + j * l)), mv);
            }
            let e = exp_nonpos_n::<S, U>(e);
            if let Some(yp) = yp {
                for (j, ej) in e.iter().enumerate() {
                    S::store(yp.add(i + j * l), *ej);
                }
            }
            for pair in e.chunks_exact(2) {
                (s0, s1) = (S::add(s0, pair[0]), S::add(s1, pair[1]));
            }
            i += U * l;
        }
        while i < n {
            let k = (n - i).min(l);
            let v = if k == l {
                S::load(xp.add(i))
            } else {
                load_tail::<S>(xp.add(i), k, f32::NEG_INFINITY)
            };
            let e = exp_nonpos_v::<S>(S::sub(v, mv));
            match (yp, k == l) {
                (Some(yp), true) => S::store(yp.add(i), e),
                (Some(yp), false) => store_tail::<S>(yp.add(i), k, e),
                (None, _) => {}
            }
            s0 = S::add(s0, e);
            i += k;
        }
        S::hsum(s0) as f64 + S::hsum(s1) as f64
    }
}

/// The largest element of a non-empty row, or any of its elements when one
/// is NaN (x86 `max` passes its second operand on NaN): good enough where
/// a NaN element makes the row's sum of `e^(x - max)` NaN anyway, as in
/// softmax, and half the work of [`row_extreme`]'s NaN tracking.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
unsafe fn row_max_loose<S: F32x>(x: &[f32]) -> f32 {
    let (l, n, p) = (S::LANES, x.len(), x.as_ptr());
    // SAFETY: full pieces need `i + l <= n`; the tail reads `n - i`.
    unsafe {
        let mut m = [S::splat(f32::NEG_INFINITY); 4];
        let mut i = 0;
        while i + 4 * l <= n {
            for (j, mj) in m.iter_mut().enumerate() {
                *mj = S::max(*mj, S::load(p.add(i + j * l)));
            }
            i += 4 * l;
        }
        while i < n {
            let v = if i + l <= n {
                S::load(p.add(i))
            } else {
                load_tail::<S>(p.add(i), n - i, f32::NEG_INFINITY)
            };
            m[0] = S::max(m[0], v);
            i += l;
        }
        S::hmax(S::max(S::max(m[0], m[1]), S::max(m[2], m[3])))
    }
}

/// `y = softmax(x)` over the row.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn softmax_row<S: F32x>(x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &mut y[..n]);
    // SAFETY: the CPU supports `S` (caller); lengths match.
    unsafe {
        let m = row_max_loose::<S>(x);
        let inv = S::splat((1.0 / exp_sum::<S>(x, Some(&mut *y), m)) as f32);
        scale_in_place::<S>(y, inv);
    }
}

/// `y *= s` lane-wise, in place.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
unsafe fn scale_in_place<S: F32x>(y: &mut [f32], s: S::V) {
    let (l, n, p) = (S::LANES, y.len(), y.as_mut_ptr());
    let mut i = 0;
    // SAFETY: full pieces need `i + l <= n`; the tail moves `n - i`.
    unsafe {
        while i + l <= n {
            S::store(p.add(i), S::mul(S::load(p.add(i)), s));
            i += l;
        }
        if i < n {
            store_tail::<S>(
                p.add(i),
                n - i,
                S::mul(load_tail::<S>(p.add(i), n - i, 0.0), s),
            );
        }
    }
}

/// `log sum e^x` over the row (`-inf` when empty or all `-inf`).
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn log_sum_exp<S: F32x>(x: &[f32]) -> f32 {
    // SAFETY: the CPU supports `S` (caller).
    unsafe {
        let m = row_extreme::<S, true>(x);
        if m.is_infinite() {
            return m;
        }
        (m as f64 + exp_sum::<S>(x, None, m).ln()) as f32
    }
}

/// `y = x - log sum e^x` over the row, as `(x - max) - log sum e^(x - max)`:
/// subtracting the small logarithm last keeps the result within an ulp of
/// its own size, where folding `max` into it first would round to the ulp
/// of `max`.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn log_softmax_row<S: F32x>(x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    // SAFETY: the CPU supports `S` (caller).
    unsafe {
        let m = row_max_loose::<S>(&x[..n]);
        let lse = S::splat(exp_sum::<S>(&x[..n], None, m).ln() as f32);
        map::<S>(
            &x[..n],
            &mut y[..n],
            0.0,
            SubSubOp::<S::V>(S::splat(m), lse),
        );
    }
}

/// Softmax backward: `dx = y * (dy - sum(dy * y))`.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn softmax_bwd_row<S: F32x>(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let n = y.len().min(dy.len()).min(dx.len());
    let (l, yp, gp, dp) = (S::LANES, y.as_ptr(), dy.as_ptr(), dx.as_mut_ptr());
    // SAFETY: the CPU supports `S`; full pieces need `i + l <= n`.
    unsafe {
        let d = row_dot::<S>(&y[..n], &dy[..n]) as f32;
        let dv = S::splat(d);
        let mut i = 0;
        while i + l <= n {
            let (yv, gv) = (S::load(yp.add(i)), S::load(gp.add(i)));
            S::store(dp.add(i), S::mul(yv, S::sub(gv, dv)));
            i += l;
        }
        for j in i..n {
            dx[j] = y[j] * (dy[j] - d);
        }
    }
}

/// Log-softmax backward: `dx = dy - e^y * sum(dy)`.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn log_softmax_bwd_row<S: F32x>(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let n = y.len().min(dy.len()).min(dx.len());
    let (l, yp, gp, dp) = (S::LANES, y.as_ptr(), dy.as_ptr(), dx.as_mut_ptr());
    // SAFETY: the CPU supports `S`; full pieces need `i + l <= n`.
    unsafe {
        let s = row_sum::<S>(&dy[..n]) as f32;
        let ns = S::splat(-s);
        let mut i = 0;
        while i + l <= n {
            let (yv, gv) = (S::load(yp.add(i)), S::load(gp.add(i)));
            S::store(dp.add(i), S::fma(exp_v::<S>(yv), ns, gv));
            i += l;
        }
        for j in i..n {
            dx[j] = dy[j] - y[j].exp() * s;
        }
    }
}

/// The portable kernels: plain Rust with `f32::exp`, sums in f64.
pub(crate) mod portable {
    fn max(x: &[f32]) -> f32 {
        crate::reduce::kernels::portable::row_max_f32(x)
    }

    fn exp_sum(x: &[f32], m: f32) -> f64 {
        x.iter().map(|&v| (v - m).exp() as f64).sum()
    }

    /// `y = e^x`.
    pub(crate) fn exp_f32(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v.exp();
        }
    }

    /// `y = softmax(x)`.
    pub(crate) fn softmax_row_f32(x: &[f32], y: &mut [f32]) {
        let m = max(x);
        let mut s = 0f64;
        for (o, &v) in y.iter_mut().zip(x) {
            *o = (v - m).exp();
            s += *o as f64;
        }
        let inv = (1.0 / s) as f32;
        y.iter_mut().for_each(|o| *o *= inv);
    }

    /// `log sum e^x`.
    pub(crate) fn log_sum_exp_f32(x: &[f32]) -> f32 {
        let m = max(x);
        if m.is_infinite() {
            return m;
        }
        (m as f64 + exp_sum(x, m).ln()) as f32
    }

    /// `y = log_softmax(x)`.
    pub(crate) fn log_softmax_row_f32(x: &[f32], y: &mut [f32]) {
        let m = max(x);
        let lse = exp_sum(x, m).ln() as f32;
        for (o, &v) in y.iter_mut().zip(x) {
            *o = (v - m) - lse;
        }
    }

    /// `dx = y * (dy - sum(dy * y))`.
    pub(crate) fn softmax_bwd_row_f32(y: &[f32], dy: &[f32], dx: &mut [f32]) {
        let d: f64 = y.iter().zip(dy).map(|(&a, &b)| (a * b) as f64).sum();
        let d = d as f32;
        for ((o, &a), &b) in dx.iter_mut().zip(y).zip(dy) {
            *o = a * (b - d);
        }
    }

    /// `dx = dy - e^y * sum(dy)`.
    pub(crate) fn log_softmax_bwd_row_f32(y: &[f32], dy: &[f32], dx: &mut [f32]) {
        let s = dy.iter().map(|&v| v as f64).sum::<f64>() as f32;
        for ((o, &a), &b) in dx.iter_mut().zip(y).zip(dy) {
            *o = b - a.exp() * s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::reduce::vec::{Avx2, Avx512, Sse2};

    tier_kernels! { "sse2", Sse2;
        sse2_exp_f32 = exp_row::<Sse2> [x: &[f32], y: &mut [f32]];
        sse2_exp_nonpos_f32 = exp_nonpos_row::<Sse2> [x: &[f32], y: &mut [f32]];
        sse2_softmax_row_f32 = softmax_row::<Sse2> [x: &[f32], y: &mut [f32]];
        sse2_log_softmax_row_f32 = log_softmax_row::<Sse2> [x: &[f32], y: &mut [f32]];
        sse2_log_sum_exp_f32 = log_sum_exp::<Sse2> [x: &[f32]] -> f32;
        sse2_softmax_bwd_row_f32 = softmax_bwd_row::<Sse2> [y: &[f32], dy: &[f32], dx: &mut [f32]];
        sse2_log_softmax_bwd_row_f32 = log_softmax_bwd_row::<Sse2> [y: &[f32], dy: &[f32], dx: &mut [f32]];
    }
    tier_kernels! { "avx2,fma", Avx2;
        avx2_exp_f32 = exp_row::<Avx2> [x: &[f32], y: &mut [f32]];
        avx2_exp_nonpos_f32 = exp_nonpos_row::<Avx2> [x: &[f32], y: &mut [f32]];
        avx2_softmax_row_f32 = softmax_row::<Avx2> [x: &[f32], y: &mut [f32]];
        avx2_log_softmax_row_f32 = log_softmax_row::<Avx2> [x: &[f32], y: &mut [f32]];
        avx2_log_sum_exp_f32 = log_sum_exp::<Avx2> [x: &[f32]] -> f32;
        avx2_softmax_bwd_row_f32 = softmax_bwd_row::<Avx2> [y: &[f32], dy: &[f32], dx: &mut [f32]];
        avx2_log_softmax_bwd_row_f32 = log_softmax_bwd_row::<Avx2> [y: &[f32], dy: &[f32], dx: &mut [f32]];
    }
    tier_kernels! { "avx512f", Avx512;
        avx512_exp_f32 = exp_row::<Avx512> [x: &[f32], y: &mut [f32]];
        avx512_exp_nonpos_f32 = exp_nonpos_row::<Avx512> [x: &[f32], y: &mut [f32]];
        avx512_softmax_row_f32 = softmax_row::<Avx512> [x: &[f32], y: &mut [f32]];
        avx512_log_softmax_row_f32 = log_softmax_row::<Avx512> [x: &[f32], y: &mut [f32]];
        avx512_log_sum_exp_f32 = log_sum_exp::<Avx512> [x: &[f32]] -> f32;
        avx512_softmax_bwd_row_f32 = softmax_bwd_row::<Avx512> [y: &[f32], dy: &[f32], dx: &mut [f32]];
        avx512_log_softmax_bwd_row_f32 =
            log_softmax_bwd_row::<Avx512> [y: &[f32], dy: &[f32], dx: &mut [f32]];
    }
}

type Map = unsafe fn(&[f32], &mut [f32]);
type Bwd = unsafe fn(&[f32], &[f32], &mut [f32]);

/// The f32 softmax-family kernels of one tier. Every entry runs on this
/// CPU: tables are only built for tiers in [`isa::available_tiers`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SoftmaxKernels {
    /// The tier the table was built for.
    pub(crate) isa: Isa,
    exp: Map,
    exp_nonpos: Map,
    softmax: Map,
    log_softmax: Map,
    log_sum_exp: unsafe fn(&[f32]) -> f32,
    softmax_bwd: Bwd,
    log_softmax_bwd: Bwd,
}

impl SoftmaxKernels {
    fn portable() -> Self {
        use portable::*;
        SoftmaxKernels {
            isa: Isa::Portable,
            exp: exp_f32,
            exp_nonpos: exp_f32,
            softmax: softmax_row_f32,
            log_softmax: log_softmax_row_f32,
            log_sum_exp: log_sum_exp_f32,
            softmax_bwd: softmax_bwd_row_f32,
            log_softmax_bwd: log_softmax_bwd_row_f32,
        }
    }

    /// `y = e^x` (over the common length).
    #[allow(
        dead_code,
        reason = "the ops use exp inside fused rows; kept as the entry the accuracy tests measure"
    )]
    pub(crate) fn exp(&self, x: &[f32], y: &mut [f32]) {
        // SAFETY: the entry is for a tier this CPU supports (see the type).
        unsafe { (self.exp)(x, y) }
    }

    /// `y = e^x` for `x <= 0`, as the softmax rows compute it.
    #[allow(
        dead_code,
        reason = "the ops use it inside fused rows; kept as the entry the accuracy tests measure"
    )]
    pub(crate) fn exp_nonpos(&self, x: &[f32], y: &mut [f32]) {
        // SAFETY: the entry is for a tier this CPU supports (see the type).
        unsafe { (self.exp_nonpos)(x, y) }
    }

    /// `y = softmax(x)`; `y` as long as `x`.
    pub(crate) fn softmax(&self, x: &[f32], y: &mut [f32]) {
        // SAFETY: as `exp`.
        unsafe { (self.softmax)(x, y) }
    }

    /// `y = log_softmax(x)`; `y` as long as `x`.
    pub(crate) fn log_softmax(&self, x: &[f32], y: &mut [f32]) {
        // SAFETY: as `exp`.
        unsafe { (self.log_softmax)(x, y) }
    }

    /// `log sum e^x`.
    pub(crate) fn log_sum_exp(&self, x: &[f32]) -> f32 {
        // SAFETY: as `exp`.
        unsafe { (self.log_sum_exp)(x) }
    }

    /// `dx = y * (dy - sum(dy * y))`.
    pub(crate) fn softmax_bwd(&self, y: &[f32], dy: &[f32], dx: &mut [f32]) {
        // SAFETY: as `exp`.
        unsafe { (self.softmax_bwd)(y, dy, dx) }
    }

    /// `dx = dy - e^y * sum(dy)`.
    pub(crate) fn log_softmax_bwd(&self, y: &[f32], dy: &[f32], dx: &mut [f32]) {
        // SAFETY: as `exp`.
        unsafe { (self.log_softmax_bwd)(y, dy, dx) }
    }
}

/// The table for `isa` (portable, overwritten tier by tier up to `isa`);
/// `None` when this machine cannot run `isa`.
pub(crate) fn table_for(isa: Isa) -> Option<SoftmaxKernels> {
    if !isa::available_tiers().contains(&isa) {
        return None;
    }
    let mut t = SoftmaxKernels::portable();
    t.isa = isa;
    #[cfg(target_arch = "x86_64")]
    {
        use x86::*;
        if matches!(isa, Isa::Sse2 | Isa::Avx2 | Isa::Avx512) {
            t.exp_nonpos = sse2_exp_nonpos_f32;
            (t.exp, t.softmax, t.log_softmax) =
                (sse2_exp_f32, sse2_softmax_row_f32, sse2_log_softmax_row_f32);
            t.log_sum_exp = sse2_log_sum_exp_f32;
            (t.softmax_bwd, t.log_softmax_bwd) =
                (sse2_softmax_bwd_row_f32, sse2_log_softmax_bwd_row_f32);
        }
        if matches!(isa, Isa::Avx2 | Isa::Avx512) {
            t.exp_nonpos = avx2_exp_nonpos_f32;
            (t.exp, t.softmax, t.log_softmax) =
                (avx2_exp_f32, avx2_softmax_row_f32, avx2_log_softmax_row_f32);
            t.log_sum_exp = avx2_log_sum_exp_f32;
            (t.softmax_bwd, t.log_softmax_bwd) =
                (avx2_softmax_bwd_row_f32, avx2_log_softmax_bwd_row_f32);
        }
        if isa == Isa::Avx512 {
            t.exp_nonpos = avx512_exp_nonpos_f32;
            (t.exp, t.softmax, t.log_softmax) = (
                avx512_exp_f32,
                avx512_softmax_row_f32,
                avx512_log_softmax_row_f32,
            );
            t.log_sum_exp = avx512_log_sum_exp_f32;
            (t.softmax_bwd, t.log_softmax_bwd) =
                (avx512_softmax_bwd_row_f32, avx512_log_softmax_bwd_row_f32);
        }
    }
    Some(t)
}

/// The table for the tier in use, built once.
pub(crate) fn table() -> &'static SoftmaxKernels {
    static TABLE: OnceLock<SoftmaxKernels> = OnceLock::new();
    TABLE.get_or_init(|| table_for(isa::tier()).unwrap_or_else(SoftmaxKernels::portable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    const LENGTHS: &[usize] = &[
        0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 100, 1000, 4099,
    ];

    fn tables() -> Vec<SoftmaxKernels> {
        isa::available_tiers()
            .into_iter()
            .filter_map(table_for)
            .collect()
    }

    /// Distance in units in the last place (0 for equal, incl. both NaN).
    fn ulps(a: f32, b: f32) -> u32 {
        if a == b || (a.is_nan() && b.is_nan()) {
            return 0;
        }
        let key = |v: f32| {
            let i = v.to_bits() as i32;
            if i < 0 {
                i32::MIN.wrapping_sub(i)
            } else {
                i
            }
        };
        key(a).abs_diff(key(b))
    }

    #[test]
    fn exp_is_within_two_ulp_at_every_tier() {
        let mut x: Vec<f32> = (0..200_001)
            .map(|i| -87.3 + 175.9 * i as f32 / 200_000.0)
            .collect();
        x.extend([0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 88.7, -87.33]);
        for t in tables() {
            let mut y = vec![0f32; x.len()];
            t.exp(&x, &mut y);
            let worst = x
                .iter()
                .zip(&y)
                .map(|(&v, &e)| ulps(e, (v as f64).exp() as f32))
                .max();
            assert!(worst <= Some(2), "{}: worst exp error {worst:?} ulp", t.isa);
            let special = [f32::NEG_INFINITY, -200.0, 89.0, f32::INFINITY, f32::NAN];
            let mut e = [1f32; 5];
            t.exp(&special, &mut e);
            assert_eq!(
                &e[..4],
                &[0.0, 0.0, f32::INFINITY, f32::INFINITY],
                "{}",
                t.isa
            );
            assert!(e[4].is_nan(), "{}", t.isa);
        }
    }

    #[test]
    fn exp_of_nonpositive_is_within_two_ulp_and_flushes_below_the_floor() {
        let mut x: Vec<f32> = (0..200_001)
            .map(|i| -100.0 * i as f32 / 200_000.0)
            .collect();
        x.extend([
            0.0, -0.0, -1e-30, -87.33, -87.68, -87.69, -87.7, -88.0, -1e30,
        ]);
        for t in tables() {
            let mut y = vec![1f32; x.len()];
            t.exp_nonpos(&x, &mut y);
            for (&v, &e) in x.iter().zip(&y) {
                let want = (v as f64).exp();
                let tag = format!("{} e^{v} = {e}, want {want}", t.isa);
                if want >= f32::MIN_POSITIVE as f64 {
                    assert!(ulps(e, want as f32) <= 2, "{tag}");
                } else if v >= -87.6831 || t.isa == Isa::Portable {
                    // Subnormal: one rounding of a product (libm's `expf`
                    // for the portable kernels all the way down).
                    assert!((e as f64 - want).abs() <= 2.0 * 2f64.powi(-149), "{tag}");
                } else if v < -87.6833 {
                    // round(x log2 e) = -127, the floor.
                    assert_eq!(e, 0.0, "{tag}");
                }
            }
            let mut e = [1f32; 2];
            t.exp_nonpos(&[f32::NEG_INFINITY, f32::NAN], &mut e);
            assert_eq!(e[0], 0.0, "{}", t.isa);
            assert!(e[1].is_nan(), "{}", t.isa);
        }
    }

    #[test]
    fn log_softmax_keeps_its_own_precision_beside_a_large_maximum() {
        // Rows near 1000: log sum e^x rounded to f32 there is off by up to
        // 3e-5, which `x - (max + lse)` would pass on to outputs near -4.
        let mut all = tables();
        all.push(SoftmaxKernels::portable());
        for t in all {
            for n in [1, 7, 33, 100, 1023] {
                let x: Vec<f32> = (0..n).map(|i| 1000.0 + (i % 17) as f32 * 0.125).collect();
                let m = x.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
                let lse = x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
                let mut y = vec![0f32; n];
                t.log_softmax(&x, &mut y);
                for (i, (&v, &o)) in x.iter().zip(&y).enumerate() {
                    let want = (v as f64 - m) - lse;
                    let err = (o as f64 - want).abs();
                    assert!(
                        err <= 4e-7 * want.abs().max(1.0),
                        "{} n={n} at {i}: {o} against {want}",
                        t.isa
                    );
                }
            }
        }
    }

    #[test]
    fn a_nan_or_infinity_makes_the_whole_row_nan() {
        for t in tables() {
            for n in [3, 40, 100] {
                for bad in [f32::NAN, f32::INFINITY] {
                    for at in [0, n / 2, n - 1] {
                        let mut x: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
                        x[at] = bad;
                        let (mut y, mut z) = (vec![0f32; n], vec![0f32; n]);
                        t.softmax(&x, &mut y);
                        t.log_softmax(&x, &mut z);
                        let tag = format!("{} n={n} {bad} at {at}", t.isa);
                        assert!(y.iter().chain(&z).all(|v| v.is_nan()), "{tag}");
                    }
                }
            }
        }
    }

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    #[test]
    fn rows_match_portable_at_every_tier() {
        let p = SoftmaxKernels::portable();
        let mut rng = Rng::new(21);
        for t in tables() {
            for &n in LENGTHS {
                let x: Vec<f32> = rng.vec(n, -20.0, 20.0);
                let dy: Vec<f32> = rng.vec(n, -1.0, 1.0);
                let tag = format!("{} n={n}", t.isa);
                let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
                t.softmax(&x, &mut a);
                p.softmax(&x, &mut b);
                assert!(close(&a, &b, 1e-6), "softmax {tag}");
                t.softmax(&x, &mut a);
                let (mut c, mut d) = (vec![0f32; n], vec![0f32; n]);
                t.log_softmax(&x, &mut c);
                p.log_softmax(&x, &mut d);
                assert!(close(&c, &d, 1e-6), "log_softmax {tag}");
                let (lt, lp) = (t.log_sum_exp(&x), p.log_sum_exp(&x));
                assert!(
                    lt == lp || (lt - lp).abs() <= 1e-6 * (1.0 + lp.abs()),
                    "lse {tag}"
                );
                let (mut g, mut h) = (vec![0f32; n], vec![0f32; n]);
                t.softmax_bwd(&b, &dy, &mut g);
                p.softmax_bwd(&b, &dy, &mut h);
                assert!(close(&g, &h, 1e-6), "softmax_bwd {tag}");
                t.log_softmax_bwd(&d, &dy, &mut g);
                p.log_softmax_bwd(&d, &dy, &mut h);
                assert!(close(&g, &h, 2e-6), "log_softmax_bwd {tag}");
            }
        }
    }

    #[test]
    fn softmax_rows_are_stable_for_huge_inputs() {
        for t in tables() {
            let x = [1e30f32, 1e30, -1e30, 0.0, 3e38];
            let mut y = [0f32; 5];
            t.softmax(&x, &mut y);
            assert_eq!(y, [0.0, 0.0, 0.0, 0.0, 1.0], "{}", t.isa);
            assert_eq!(t.log_sum_exp(&x), 3e38, "{}", t.isa);
            assert_eq!(t.log_sum_exp(&[]), f32::NEG_INFINITY, "{}", t.isa);
        }
    }
}
