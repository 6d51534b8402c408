//! A small f32 vector vocabulary ([`F32x`]) implemented once per x86 tier
//! (SSE2, AVX2+FMA, AVX-512F). The reduction, softmax and norm kernels are
//! written once, generically over it, as `#[inline(always)]` functions, and
//! instantiated inside one `#[target_feature]` wrapper per tier (see
//! `reduce_kernels.rs`), so every method below inlines into code compiled
//! for that tier.
//!
//! Every method is `unsafe`: it may only run on a CPU that has the tier's
//! features (the kernel tables guarantee this). Pointer methods also need
//! `LANES` readable or writable elements.

/// One x86 tier's f32 vectors (`V`), f64 vectors of half the lanes (`D`),
/// and lane masks (`M`).
///
/// # Safety
/// Every method requires the CPU to support the implementing tier.
pub(crate) trait F32x: Copy {
    /// `LANES` f32.
    type V: Copy;
    /// `LANES / 2` f64.
    type D: Copy;
    /// One bit (or lane) per f32 lane.
    type M: Copy;
    /// f32 lanes per vector.
    const LANES: usize;
    /// Whether [`F32x::fma`] is one fused instruction (else a multiply and
    /// an add).
    const FUSED: bool;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// Unaligned load of `LANES` elements.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned store of `LANES` elements.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Streaming (non-temporal) store of `LANES` elements at `p`, which is
    /// aligned to `4 * LANES` bytes; [`F32x::stream_fence`] orders it.
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: Self::V) {
        // SAFETY: per the caller.
        unsafe { Self::store(p, v) }
    }
    /// Orders earlier [`F32x::stream`] stores before later stores.
    #[inline(always)]
    unsafe fn stream_fence() {}
    /// Hints the cache line holding `p` into the cache (a hint: any address
    /// will do, it never faults). x86 only; elsewhere nothing.
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of the x86-64 baseline; a prefetch reads nothing.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }
    /// `a + b`
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c` (fused where the tier has FMA).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// x86 `max`: `a > b ? a : b` (so `b` when either is NaN).
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// x86 `min`: `a < b ? a : b` (so `b` when either is NaN).
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// Sum of the lanes.
    unsafe fn hsum(v: Self::V) -> f32;
    /// Largest lane (NaN-free input).
    unsafe fn hmax(v: Self::V) -> f32;
    /// Smallest lane (NaN-free input).
    unsafe fn hmin(v: Self::V) -> f32;
    /// Lanes where `a > b` (false with NaN).
    unsafe fn gt(a: Self::V, b: Self::V) -> Self::M;
    /// Lanes where `a < b` (false with NaN).
    unsafe fn lt(a: Self::V, b: Self::V) -> Self::M;
    /// Lanes where `a` is NaN.
    unsafe fn nan(a: Self::V) -> Self::M;
    /// No lane set.
    unsafe fn mask_none() -> Self::M;
    /// Lanes set in either.
    unsafe fn or(a: Self::M, b: Self::M) -> Self::M;
    /// Any lane set?
    unsafe fn any(m: Self::M) -> bool;
    /// `m ? t : f` per lane.
    unsafe fn select(m: Self::M, t: Self::V, f: Self::V) -> Self::V;
    /// Round to the nearest integer, ties to even (`|v| < 2^31`).
    unsafe fn round(v: Self::V) -> Self::V;
    /// `y * 2^n` for integral `n` in `[-250, 250]`.
    unsafe fn scale2(y: Self::V, n: Self::V) -> Self::V;
    /// The f32 whose bits are `v`'s shifted left by 23 (the exponent field
    /// of an f32 from the low bits of `v`'s mantissa).
    unsafe fn shl23(v: Self::V) -> Self::V;
    /// All f64 lanes zero.
    unsafe fn dzero() -> Self::D;
    /// `(a + low half of v, b + high half of v)`, widened to f64.
    unsafe fn dwiden_add(a: Self::D, b: Self::D, v: Self::V) -> (Self::D, Self::D);
    /// `a + b` on f64 lanes.
    unsafe fn dadd(a: Self::D, b: Self::D) -> Self::D;
    /// Unaligned load of `LANES / 2` f64.
    unsafe fn dload(p: *const f64) -> Self::D;
    /// Unaligned store of `LANES / 2` f64.
    unsafe fn dstore(p: *mut f64, d: Self::D);
    /// Sum of the f64 lanes.
    unsafe fn dhsum(d: Self::D) -> f64;
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512, Sse2};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::F32x;

    /// The SSE2 tier (x86-64 baseline), 4 lanes.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Sse2;

    /// The AVX2+FMA tier, 8 lanes.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx2;

    /// The AVX-512F tier, 16 lanes.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx512;

    #[inline]
    #[target_feature(enable = "sse2")]
    fn sse_hsum(v: __m128) -> f32 {
        let t = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps::<1>(t, t)))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn sse_hmax(v: __m128) -> f32 {
        let t = _mm_max_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_max_ss(t, _mm_shuffle_ps::<1>(t, t)))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn sse_hmin(v: __m128) -> f32 {
        let t = _mm_min_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_min_ss(t, _mm_shuffle_ps::<1>(t, t)))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn sse_dhsum(d: __m128d) -> f64 {
        _mm_cvtsd_f64(_mm_add_sd(d, _mm_unpackhi_pd(d, d)))
    }

    /// `2^n` for integer lanes `n` in `[-126, 127]`.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn sse_pow2i(n: __m128i) -> __m128 {
        _mm_castsi128_ps(_mm_slli_epi32::<23>(_mm_add_epi32(n, _mm_set1_epi32(127))))
    }

    impl F32x for Sse2 {
        type V = __m128;
        type D = __m128d;
        type M = __m128;
        const LANES: usize = 4;
        const FUSED: bool = false;

        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn splat(x: f32) -> __m128 {
            _mm_set1_ps(x)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn load(p: *const f32) -> __m128 {
            // SAFETY: the caller provides 4 readable f32 at `p`.
            unsafe { _mm_loadu_ps(p) }
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn store(p: *mut f32, v: __m128) {
            // SAFETY: the caller provides 4 writable f32 at `p`.
            unsafe { _mm_storeu_ps(p, v) }
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn stream(p: *mut f32, v: __m128) {
            // SAFETY: the caller provides 4 writable, 16-byte aligned f32 at `p`.
            unsafe { _mm_stream_ps(p, v) }
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn stream_fence() {
            _mm_sfence()
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn add(a: __m128, b: __m128) -> __m128 {
            _mm_add_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn sub(a: __m128, b: __m128) -> __m128 {
            _mm_sub_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn mul(a: __m128, b: __m128) -> __m128 {
            _mm_mul_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn fma(a: __m128, b: __m128, c: __m128) -> __m128 {
            _mm_add_ps(_mm_mul_ps(a, b), c)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn max(a: __m128, b: __m128) -> __m128 {
            _mm_max_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn min(a: __m128, b: __m128) -> __m128 {
            _mm_min_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn hsum(v: __m128) -> f32 {
            sse_hsum(v)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn hmax(v: __m128) -> f32 {
            sse_hmax(v)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn hmin(v: __m128) -> f32 {
            sse_hmin(v)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn gt(a: __m128, b: __m128) -> __m128 {
            _mm_cmpgt_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn lt(a: __m128, b: __m128) -> __m128 {
            _mm_cmplt_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn nan(a: __m128) -> __m128 {
            _mm_cmpunord_ps(a, a)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn mask_none() -> __m128 {
            _mm_setzero_ps()
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn or(a: __m128, b: __m128) -> __m128 {
            _mm_or_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn any(m: __m128) -> bool {
            _mm_movemask_ps(m) != 0
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn select(m: __m128, t: __m128, f: __m128) -> __m128 {
            _mm_or_ps(_mm_and_ps(m, t), _mm_andnot_ps(m, f))
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn round(v: __m128) -> __m128 {
            _mm_cvtepi32_ps(_mm_cvtps_epi32(v))
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn scale2(y: __m128, n: __m128) -> __m128 {
            let n = _mm_cvtps_epi32(n);
            let n1 = _mm_srai_epi32::<1>(n);
            let n2 = _mm_sub_epi32(n, n1);
            _mm_mul_ps(_mm_mul_ps(y, sse_pow2i(n1)), sse_pow2i(n2))
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn shl23(v: __m128) -> __m128 {
            _mm_castsi128_ps(_mm_slli_epi32::<23>(_mm_castps_si128(v)))
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn dzero() -> __m128d {
            _mm_setzero_pd()
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn dwiden_add(a: __m128d, b: __m128d, v: __m128) -> (__m128d, __m128d) {
            let lo = _mm_cvtps_pd(v);
            let hi = _mm_cvtps_pd(_mm_movehl_ps(v, v));
            (_mm_add_pd(a, lo), _mm_add_pd(b, hi))
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn dadd(a: __m128d, b: __m128d) -> __m128d {
            _mm_add_pd(a, b)
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn dload(p: *const f64) -> __m128d {
            // SAFETY: the caller provides 2 readable f64 at `p`.
            unsafe { _mm_loadu_pd(p) }
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn dstore(p: *mut f64, d: __m128d) {
            // SAFETY: the caller provides 2 writable f64 at `p`.
            unsafe { _mm_storeu_pd(p, d) }
        }
        #[inline]
        #[target_feature(enable = "sse2")]
        unsafe fn dhsum(d: __m128d) -> f64 {
            sse_dhsum(d)
        }
    }

    /// `2^n` for integer lanes `n` in `[-126, 127]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn avx2_pow2i(n: __m256i) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            n,
            _mm256_set1_epi32(127),
        )))
    }

    impl F32x for Avx2 {
        type V = __m256;
        type D = __m256d;
        type M = __m256;
        const LANES: usize = 8;
        const FUSED: bool = true;

        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: the caller provides 8 readable f32 at `p`.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: the caller provides 8 writable f32 at `p`.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn stream(p: *mut f32, v: __m256) {
            // SAFETY: the caller provides 8 writable, 32-byte aligned f32 at `p`.
            unsafe { _mm256_stream_ps(p, v) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn stream_fence() {
            _mm_sfence()
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn sub(a: __m256, b: __m256) -> __m256 {
            _mm256_sub_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            _mm256_mul_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn max(a: __m256, b: __m256) -> __m256 {
            _mm256_max_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn min(a: __m256, b: __m256) -> __m256 {
            _mm256_min_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn hsum(v: __m256) -> f32 {
            sse_hsum(_mm_add_ps(
                _mm256_castps256_ps128(v),
                _mm256_extractf128_ps::<1>(v),
            ))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn hmax(v: __m256) -> f32 {
            sse_hmax(_mm_max_ps(
                _mm256_castps256_ps128(v),
                _mm256_extractf128_ps::<1>(v),
            ))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn hmin(v: __m256) -> f32 {
            sse_hmin(_mm_min_ps(
                _mm256_castps256_ps128(v),
                _mm256_extractf128_ps::<1>(v),
            ))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn gt(a: __m256, b: __m256) -> __m256 {
            _mm256_cmp_ps::<_CMP_GT_OQ>(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn lt(a: __m256, b: __m256) -> __m256 {
            _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn nan(a: __m256) -> __m256 {
            _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn mask_none() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn or(a: __m256, b: __m256) -> __m256 {
            _mm256_or_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn any(m: __m256) -> bool {
            _mm256_movemask_ps(m) != 0
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn select(m: __m256, t: __m256, f: __m256) -> __m256 {
            _mm256_blendv_ps(f, t, m)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn round(v: __m256) -> __m256 {
            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn scale2(y: __m256, n: __m256) -> __m256 {
            let n = _mm256_cvtps_epi32(n);
            let n1 = _mm256_srai_epi32::<1>(n);
            let n2 = _mm256_sub_epi32(n, n1);
            _mm256_mul_ps(_mm256_mul_ps(y, avx2_pow2i(n1)), avx2_pow2i(n2))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn shl23(v: __m256) -> __m256 {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(v)))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn dzero() -> __m256d {
            _mm256_setzero_pd()
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn dwiden_add(a: __m256d, b: __m256d, v: __m256) -> (__m256d, __m256d) {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
            (_mm256_add_pd(a, lo), _mm256_add_pd(b, hi))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn dadd(a: __m256d, b: __m256d) -> __m256d {
            _mm256_add_pd(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn dload(p: *const f64) -> __m256d {
            // SAFETY: the caller provides 4 readable f64 at `p`.
            unsafe { _mm256_loadu_pd(p) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn dstore(p: *mut f64, d: __m256d) {
            // SAFETY: the caller provides 4 writable f64 at `p`.
            unsafe { _mm256_storeu_pd(p, d) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn dhsum(d: __m256d) -> f64 {
            sse_dhsum(_mm_add_pd(
                _mm256_castpd256_pd128(d),
                _mm256_extractf128_pd::<1>(d),
            ))
        }
    }

    impl F32x for Avx512 {
        type V = __m512;
        type D = __m512d;
        type M = __mmask16;
        const LANES: usize = 16;
        const FUSED: bool = true;

        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: the caller provides 16 readable f32 at `p`.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: the caller provides 16 writable f32 at `p`.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn stream(p: *mut f32, v: __m512) {
            // SAFETY: the caller provides 16 writable, 64-byte aligned f32 at `p`.
            unsafe { _mm512_stream_ps(p, v) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn stream_fence() {
            _mm_sfence()
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn sub(a: __m512, b: __m512) -> __m512 {
            _mm512_sub_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            _mm512_mul_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            _mm512_max_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn min(a: __m512, b: __m512) -> __m512 {
            _mm512_min_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn hsum(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn hmax(v: __m512) -> f32 {
            _mm512_reduce_max_ps(v)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn hmin(v: __m512) -> f32 {
            _mm512_reduce_min_ps(v)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn gt(a: __m512, b: __m512) -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn lt(a: __m512, b: __m512) -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn nan(a: __m512) -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn mask_none() -> __mmask16 {
            0
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn or(a: __mmask16, b: __mmask16) -> __mmask16 {
            a | b
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn any(m: __mmask16) -> bool {
            m != 0
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn select(m: __mmask16, t: __m512, f: __m512) -> __m512 {
            _mm512_mask_blend_ps(m, f, t)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn round(v: __m512) -> __m512 {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn scale2(y: __m512, n: __m512) -> __m512 {
            _mm512_scalef_ps(y, n)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn shl23(v: __m512) -> __m512 {
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(v)))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn dzero() -> __m512d {
            _mm512_setzero_pd()
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn dwiden_add(a: __m512d, b: __m512d, v: __m512) -> (__m512d, __m512d) {
            let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            let hi256 = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            (
                _mm512_add_pd(a, lo),
                _mm512_add_pd(b, _mm512_cvtps_pd(hi256)),
            )
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn dadd(a: __m512d, b: __m512d) -> __m512d {
            _mm512_add_pd(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn dload(p: *const f64) -> __m512d {
            // SAFETY: the caller provides 8 readable f64 at `p`.
            unsafe { _mm512_loadu_pd(p) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn dstore(p: *mut f64, d: __m512d) {
            // SAFETY: the caller provides 8 writable f64 at `p`.
            unsafe { _mm512_storeu_pd(p, d) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn dhsum(d: __m512d) -> f64 {
            _mm512_reduce_add_pd(d)
        }
    }
}
