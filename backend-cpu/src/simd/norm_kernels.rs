//! f32 normalisation kernels: the affine normalise of layer norm
//! (`y = (x - mean) * rstd * gamma + beta`) and the per-channel
//! scale-and-shift of batch norm (`y = x * a + b`); generic over
//! [`F32x`], instanced per tier as `<isa>_<op>_f32`, with portable
//! counterparts and the [`NormKernels`] table. Layer norm's row statistics
//! (`sum x` and `sum (x - c)^2`) come from [`row_moment`]: f32 partial
//! sums of eight vectors, each added into f64.

use std::sync::OnceLock;

use crate::isa::{self, Isa};
use crate::reduce::kernels::{load_tail, store_tail, tier_kernels};
use crate::reduce::vec::F32x;

/// `y = (x - mean) * rstd * gamma + beta` over the common length. With
/// `NT` the output is written with streaming stores (after a head that
/// aligns it to a vector) and fenced before returning.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn affine_row<S: F32x, const NT: bool>(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    mean: f32,
    rstd: f32,
) {
    let n = x.len().min(gamma.len()).min(beta.len()).min(y.len());
    let (l, xp, gp, bp, yp) = (
        S::LANES,
        x.as_ptr(),
        gamma.as_ptr(),
        beta.as_ptr(),
        y.as_mut_ptr(),
    );
    let (a, c) = (rstd, -mean * rstd);
    // SAFETY: the CPU supports `S`; full pieces need `i + l <= n`, the
    // head and tail move fewer than `l` elements of each slice; after the
    // head `yp + i` is `4 * l`-byte aligned when streaming.
    unsafe {
        let (av, cv) = (S::splat(a), S::splat(c));
        let mut i = if NT { stream_head::<S>(yp, n) } else { 0 };
        if i > 0 {
            affine_part::<S>(xp, gp, bp, yp, i, av, cv);
        }
        while i + l <= n {
            let xh = S::fma(S::load(xp.add(i)), av, cv);
            let v = S::fma(xh, S::load(gp.add(i)), S::load(bp.add(i)));
            if NT {
                S::stream(yp.add(i), v)
            } else {
                S::store(yp.add(i), v)
            }
            i += l;
        }
        if i < n {
            affine_part::<S>(xp.add(i), gp.add(i), bp.add(i), yp.add(i), n - i, av, cv);
        }
        if NT {
            S::stream_fence();
        }
    }
}

/// `sum x` (`SQ` false) or `sum (x - c)^2` (`SQ` true) in f64.
///
/// Each block of eight vectors is summed in f32 as a tree (three
/// additions deep, so each lane's partial is within 3 ulp of the sum of its
/// terms' magnitudes) and added into f64; the rest go into f64 a vector at
/// a time. Widening every vector instead (as the `sum` reduction does)
/// costs SSE2 two conversions and a shuffle per four elements, and bound
/// layer norm's statistics passes there. The added error is of the order of
/// the rounding the f32 inputs already carry: for the squared deviations,
/// all positive, 3 ulp of the variance.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn row_moment<S: F32x, const SQ: bool>(x: &[f32], c: f32) -> f64 {
    let (l, n, p) = (S::LANES, x.len(), x.as_ptr());
    // SAFETY: full loads read `l` elements at `i` with `i + l <= n`; the
    // tail reads `n - i` (its padding holds `c`, or 0 for the plain sum:
    // both add 0); the CPU supports `S` (caller).
    unsafe {
        let cv = S::splat(c);
        let (mut a, mut b) = (S::dzero(), S::dzero());
        let mut i = 0;
        while i + 8 * l <= n {
            let mut t = [cv; 8];
            for (j, tj) in t.iter_mut().enumerate() {
                *tj = S::load(p.add(i + j * l));
            }
            if SQ {
                for tj in t.iter_mut() {
                    *tj = sq_dev::<S>(*tj, cv);
                }
            }
            let s01 = S::add(S::add(t[0], t[1]), S::add(t[2], t[3]));
            let s23 = S::add(S::add(t[4], t[5]), S::add(t[6], t[7]));
            (a, b) = S::dwiden_add(a, b, S::add(s01, s23));
            i += 8 * l;
        }
        while i < n {
            let v = if i + l <= n {
                S::load(p.add(i))
            } else {
                load_tail::<S>(p.add(i), n - i, if SQ { c } else { 0.0 })
            };
            let v = if SQ { sq_dev::<S>(v, cv) } else { v };
            (a, b) = S::dwiden_add(a, b, v);
            i += l;
        }
        S::dhsum(S::dadd(a, b))
    }
}

/// `(v - c)^2` lane-wise.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
unsafe fn sq_dev<S: F32x>(v: S::V, c: S::V) -> S::V {
    // SAFETY: per the caller.
    unsafe {
        let d = S::sub(v, c);
        S::mul(d, d)
    }
}

/// Elements before the first `4 * LANES`-byte aligned address at or after
/// `p`, capped at `n`.
#[inline(always)]
fn stream_head<S: F32x>(p: *mut f32, n: usize) -> usize {
    let align = 4 * S::LANES;
    let mis = p as usize % align;
    let pad = if mis == 0 { 0 } else { (align - mis) / 4 };
    pad.min(n)
}

/// [`affine_row`] on `k < LANES` elements through padded vectors.
///
/// # Safety
/// The CPU supports `S`; `k` elements are readable at `x`, `g`, `b` and
/// writable at `y`.
#[inline(always)]
unsafe fn affine_part<S: F32x>(
    x: *const f32,
    g: *const f32,
    b: *const f32,
    y: *mut f32,
    k: usize,
    a: S::V,
    c: S::V,
) {
    // SAFETY: per the caller.
    unsafe {
        let xh = S::fma(load_tail::<S>(x, k, 0.0), a, c);
        let v = S::fma(xh, load_tail::<S>(g, k, 0.0), load_tail::<S>(b, k, 0.0));
        store_tail::<S>(y, k, v);
    }
}

/// `y = x * a + b` over the common length.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn scale_shift_row<S: F32x>(x: &[f32], y: &mut [f32], a: f32, b: f32) {
    let n = x.len().min(y.len());
    let (l, xp, yp) = (S::LANES, x.as_ptr(), y.as_mut_ptr());
    // SAFETY: as in `affine_row`.
    unsafe {
        let (av, bv) = (S::splat(a), S::splat(b));
        let mut i = 0;
        while i + l <= n {
            S::store(yp.add(i), S::fma(S::load(xp.add(i)), av, bv));
            i += l;
        }
        if i < n {
            store_tail::<S>(
                yp.add(i),
                n - i,
                S::fma(load_tail::<S>(xp.add(i), n - i, 0.0), av, bv),
            );
        }
    }
}

/// The portable kernels.
pub(crate) mod portable {
    /// `y = (x - mean) * rstd * gamma + beta`.
    pub(crate) fn affine_row_f32(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        y: &mut [f32],
        mean: f32,
        rstd: f32,
    ) {
        let c = -mean * rstd;
        for (((o, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = (v * rstd + c) * g + b;
        }
    }

    /// `y = x * a + b`.
    pub(crate) fn scale_shift_row_f32(x: &[f32], y: &mut [f32], a: f32, b: f32) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v * a + b;
        }
    }

    /// `sum x` in f64 (every element widened: the reference).
    pub(crate) fn row_sum_f32(x: &[f32], _: f32) -> f64 {
        x.iter().map(|&v| v as f64).sum()
    }

    /// `sum (x - c)^2` in f64, each deviation rounded to f32 as the SIMD
    /// kernels round it.
    pub(crate) fn row_sq_dev_f32(x: &[f32], c: f32) -> f64 {
        x.iter().map(|&v| ((v - c) * (v - c)) as f64).sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::reduce::vec::{Avx2, Avx512, Sse2};

    tier_kernels! { "sse2", Sse2;
        sse2_affine_row_f32 = affine_row::<Sse2, false>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        sse2_scale_shift_row_f32 = scale_shift_row::<Sse2> [x: &[f32], y: &mut [f32], a: f32, b: f32];
        sse2_row_sum_f32 = row_moment::<Sse2, false> [x: &[f32], c: f32] -> f64;
        sse2_row_sq_dev_f32 = row_moment::<Sse2, true> [x: &[f32], c: f32] -> f64;
    }
    tier_kernels! { "avx2,fma", Avx2;
        avx2_affine_row_f32 = affine_row::<Avx2, false>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        avx2_affine_row_nt_f32 = affine_row::<Avx2, true>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        avx2_scale_shift_row_f32 = scale_shift_row::<Avx2> [x: &[f32], y: &mut [f32], a: f32, b: f32];
        avx2_row_sum_f32 = row_moment::<Avx2, false> [x: &[f32], c: f32] -> f64;
        avx2_row_sq_dev_f32 = row_moment::<Avx2, true> [x: &[f32], c: f32] -> f64;
    }
    tier_kernels! { "avx512f", Avx512;
        avx512_affine_row_f32 = affine_row::<Avx512, false>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        avx512_affine_row_nt_f32 = affine_row::<Avx512, true>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        avx512_scale_shift_row_f32 = scale_shift_row::<Avx512> [x: &[f32], y: &mut [f32], a: f32, b: f32];
        avx512_row_sum_f32 = row_moment::<Avx512, false> [x: &[f32], c: f32] -> f64;
        avx512_row_sq_dev_f32 = row_moment::<Avx512, true> [x: &[f32], c: f32] -> f64;
    }
}

type Affine = unsafe fn(&[f32], &[f32], &[f32], &mut [f32], f32, f32);
type ScaleShift = unsafe fn(&[f32], &mut [f32], f32, f32);
type Moment = unsafe fn(&[f32], f32) -> f64;

/// The f32 norm kernels of one tier. Every entry runs on this CPU: tables
/// are only built for tiers in [`isa::available_tiers`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormKernels {
    /// The tier the table was built for.
    pub(crate) isa: Isa,
    affine: Affine,
    affine_nt: Affine,
    scale_shift: ScaleShift,
    sum: Moment,
    sq_dev: Moment,
}

impl NormKernels {
    fn portable() -> Self {
        NormKernels {
            isa: Isa::Portable,
            affine: portable::affine_row_f32,
            affine_nt: portable::affine_row_f32,
            scale_shift: portable::scale_shift_row_f32,
            sum: portable::row_sum_f32,
            sq_dev: portable::row_sq_dev_f32,
        }
    }

    /// `y = (x - mean) * rstd * gamma + beta` over the common length.
    pub(crate) fn affine(
        &self,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        y: &mut [f32],
        mean: f32,
        rstd: f32,
    ) {
        // SAFETY: the entry is for a tier this CPU supports (see the type).
        unsafe { (self.affine)(x, gamma, beta, y, mean, rstd) }
    }

    /// [`NormKernels::affine`] writing `y` with streaming stores (for
    /// outputs too large to stay cached); the same values.
    pub(crate) fn affine_stream(
        &self,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        y: &mut [f32],
        mean: f32,
        rstd: f32,
    ) {
        // SAFETY: as `affine`.
        unsafe { (self.affine_nt)(x, gamma, beta, y, mean, rstd) }
    }

    /// `y = x * a + b` over the common length.
    pub(crate) fn scale_shift(&self, x: &[f32], y: &mut [f32], a: f32, b: f32) {
        // SAFETY: as `affine`.
        unsafe { (self.scale_shift)(x, y, a, b) }
    }

    /// `sum x` in f64 (see [`row_moment`] for the accuracy).
    pub(crate) fn sum(&self, x: &[f32]) -> f64 {
        // SAFETY: as `affine`.
        unsafe { (self.sum)(x, 0.0) }
    }

    /// `sum (x - c)^2` in f64 (see [`row_moment`] for the accuracy).
    pub(crate) fn sq_dev(&self, x: &[f32], c: f32) -> f64 {
        // SAFETY: as `affine`.
        unsafe { (self.sq_dev)(x, c) }
    }
}

/// The table for `isa` (portable, overwritten tier by tier up to `isa`);
/// `None` when this machine cannot run `isa`.
pub(crate) fn table_for(isa: Isa) -> Option<NormKernels> {
    if !isa::available_tiers().contains(&isa) {
        return None;
    }
    let mut t = NormKernels::portable();
    t.isa = isa;
    #[cfg(target_arch = "x86_64")]
    {
        use x86::*;
        if matches!(isa, Isa::Sse2 | Isa::Avx2 | Isa::Avx512) {
            (t.affine, t.scale_shift) = (sse2_affine_row_f32, sse2_scale_shift_row_f32);
            (t.sum, t.sq_dev) = (sse2_row_sum_f32, sse2_row_sq_dev_f32);
            // Plain stores: SSE2 rows are compute-bound, and streaming
            // stores stalled them (layer_norm [16384,1024], 1 thread:
            // 0.55-0.58x of memcpy streaming, 0.69-0.71x plain), where the
            // memory-bound AVX2 and AVX-512 rows gain from them.
            t.affine_nt = sse2_affine_row_f32;
        }
        if matches!(isa, Isa::Avx2 | Isa::Avx512) {
            (t.affine, t.scale_shift) = (avx2_affine_row_f32, avx2_scale_shift_row_f32);
            (t.sum, t.sq_dev) = (avx2_row_sum_f32, avx2_row_sq_dev_f32);
            t.affine_nt = avx2_affine_row_nt_f32;
        }
        if isa == Isa::Avx512 {
            (t.affine, t.scale_shift) = (avx512_affine_row_f32, avx512_scale_shift_row_f32);
            (t.sum, t.sq_dev) = (avx512_row_sum_f32, avx512_row_sq_dev_f32);
            t.affine_nt = avx512_affine_row_nt_f32;
        }
    }
    Some(t)
}

/// The table for the tier in use, built once.
pub(crate) fn table() -> &'static NormKernels {
    static TABLE: OnceLock<NormKernels> = OnceLock::new();
    TABLE.get_or_init(|| table_for(isa::tier()).unwrap_or_else(NormKernels::portable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    #[test]
    fn row_moments_stay_within_their_bound_at_every_tier() {
        // Bound (see `row_moment`): 3 ulp of each block's sum of term
        // magnitudes, so 3 * 2^-24 of the whole row's; the portable
        // kernels sum every term in f64.
        let p = NormKernels::portable();
        let mut rng = Rng::new(37);
        let bound =
            |terms: &[f64]| 3.0 * f64::powi(2.0, -24) * terms.iter().map(|t| t.abs()).sum::<f64>();
        for t in isa::available_tiers().into_iter().filter_map(table_for) {
            for n in [0usize, 1, 7, 31, 33, 100, 1023, 4101] {
                // An offset from zero, as activations have, and a start
                // that is not vector-aligned.
                let buf: Vec<f32> = rng.vec(n + 3, 2.0, 9.0);
                let x = &buf[3..];
                let tag = format!("{} n={n}", t.isa);
                let exact: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                let want = p.sum(x);
                assert_eq!(want, exact.iter().sum::<f64>(), "portable sum {tag}");
                let err = (t.sum(x) - want).abs();
                assert!(err <= bound(&exact) + 1e-300, "sum {tag}: off by {err}");
                let c = 5.5f32;
                let sq: Vec<f64> = x.iter().map(|&v| ((v - c) * (v - c)) as f64).collect();
                let want = p.sq_dev(x, c);
                let err = (t.sq_dev(x, c) - want).abs();
                assert!(err <= bound(&sq) + 1e-300, "sq_dev {tag}: off by {err}");
            }
        }
    }

    #[test]
    fn kernels_match_portable_at_every_tier() {
        let p = NormKernels::portable();
        let mut rng = Rng::new(31);
        for t in isa::available_tiers().into_iter().filter_map(table_for) {
            for n in [0usize, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 64, 100, 1023] {
                let x: Vec<f32> = rng.vec(n, -4.0, 4.0);
                let g: Vec<f32> = rng.vec(n, 0.5, 1.5);
                let b: Vec<f32> = rng.vec(n, -1.0, 1.0);
                let (mut y1, mut y2) = (vec![0f32; n], vec![0f32; n]);
                t.affine(&x, &g, &b, &mut y1, 0.3, 1.7);
                p.affine(&x, &g, &b, &mut y2, 0.3, 1.7);
                let close = |a: &[f32], b: &[f32]| {
                    a.iter()
                        .zip(b)
                        .all(|(u, v)| (u - v).abs() <= 2e-6 * (1.0 + v.abs()))
                };
                assert!(close(&y1, &y2), "affine {} n={n}", t.isa);
                for off in 0..n.min(17) {
                    let mut y3 = vec![0f32; n];
                    let r = off..n;
                    t.affine_stream(
                        &x[r.clone()],
                        &g[r.clone()],
                        &b[r.clone()],
                        &mut y3[r.clone()],
                        0.3,
                        1.7,
                    );
                    t.affine(
                        &x[r.clone()],
                        &g[r.clone()],
                        &b[r.clone()],
                        &mut y1[r.clone()],
                        0.3,
                        1.7,
                    );
                    assert_eq!(
                        y1[r.clone()],
                        y3[r],
                        "affine_stream {} n={n} off={off}",
                        t.isa
                    );
                }
                t.scale_shift(&x, &mut y1, -0.7, 0.25);
                p.scale_shift(&x, &mut y2, -0.7, 0.25);
                assert!(close(&y1, &y2), "scale_shift {} n={n}", t.isa);
            }
        }
    }
}
