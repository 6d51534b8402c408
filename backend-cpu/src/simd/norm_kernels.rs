//! f32 normalisation kernels: the affine normalise of layer norm
//! (`y = (x - mean) * rstd * gamma + beta`) and the per-channel
//! scale-and-shift of batch norm (`y = x * a + b`); generic over
//! [`F32x`], instanced per tier as `<isa>_<op>_f32`, with portable
//! counterparts and the [`NormKernels`] table. The statistics use the
//! reduction kernels (`row_sum`, `row_sq_dev`, f64 accumulation).

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
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::reduce::vec::{Avx2, Avx512, Sse2};

    tier_kernels! { "sse2", Sse2;
        sse2_affine_row_f32 = affine_row::<Sse2, false>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        sse2_scale_shift_row_f32 = scale_shift_row::<Sse2> [x: &[f32], y: &mut [f32], a: f32, b: f32];
    }
    tier_kernels! { "avx2,fma", Avx2;
        avx2_affine_row_f32 = affine_row::<Avx2, false>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        avx2_affine_row_nt_f32 = affine_row::<Avx2, true>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        avx2_scale_shift_row_f32 = scale_shift_row::<Avx2> [x: &[f32], y: &mut [f32], a: f32, b: f32];
    }
    tier_kernels! { "avx512f", Avx512;
        avx512_affine_row_f32 = affine_row::<Avx512, false>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        avx512_affine_row_nt_f32 = affine_row::<Avx512, true>
            [x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: f32, rstd: f32];
        avx512_scale_shift_row_f32 = scale_shift_row::<Avx512> [x: &[f32], y: &mut [f32], a: f32, b: f32];
    }
}

type Affine = unsafe fn(&[f32], &[f32], &[f32], &mut [f32], f32, f32);
type ScaleShift = unsafe fn(&[f32], &mut [f32], f32, f32);

/// The f32 norm kernels of one tier. Every entry runs on this CPU: tables
/// are only built for tiers in [`isa::available_tiers`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormKernels {
    /// The tier the table was built for.
    pub(crate) isa: Isa,
    affine: Affine,
    affine_nt: Affine,
    scale_shift: ScaleShift,
}

impl NormKernels {
    fn portable() -> Self {
        NormKernels {
            isa: Isa::Portable,
            affine: portable::affine_row_f32,
            affine_nt: portable::affine_row_f32,
            scale_shift: portable::scale_shift_row_f32,
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
            // Plain stores: SSE2 rows are compute-bound, and streaming
            // stores stalled them (layer_norm [16384,1024], 1 thread:
            // 0.55-0.58x of memcpy streaming, 0.69-0.71x plain), where the
            // memory-bound AVX2 and AVX-512 rows gain from them.
            t.affine_nt = sse2_affine_row_f32;
        }
        if matches!(isa, Isa::Avx2 | Isa::Avx512) {
            (t.affine, t.scale_shift) = (avx2_affine_row_f32, avx2_scale_shift_row_f32);
            t.affine_nt = avx2_affine_row_nt_f32;
        }
        if isa == Isa::Avx512 {
            (t.affine, t.scale_shift) = (avx512_affine_row_f32, avx512_scale_shift_row_f32);
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
    fn kernels_match_portable_at_every_tier() {
        let p = NormKernels::portable();
        let mut rng = Rng::new(31);
        for t in isa::available_tiers().into_iter().filter_map(table_for) {
            for n in [0usize, 1, 2, 3, 5, 8, 15, 16, 17, 31, 33, 64, 100, 1023] {
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
