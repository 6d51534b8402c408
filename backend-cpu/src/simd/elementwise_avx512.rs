//! AVX-512F elementwise kernels: [`Avx512`] lanes and the `avx512_*_f32`
//! kernels.

use std::arch::x86_64::*;

use super::simd_vec::{tier_kernels, F32x};
use crate::isa::Isa;

/// Sixteen f32 lanes in a ZMM register. Exists only where AVX-512F does
/// (see [`F32x`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512(__m512);

/// Wraps one lane-wise intrinsic call; a value of [`Avx512`] proves the
/// CPU has AVX-512F.
macro_rules! avx512 {
    ($e:expr) => {
        // SAFETY: an `Avx512` value exists only where the CPU supports
        // AVX-512F (its constructors are `unsafe` with that contract).
        unsafe { $e }
    };
}

impl Avx512 {
    #[inline(always)]
    fn int(self) -> __m512i {
        avx512!(_mm512_castps_si512(self.0))
    }
    #[inline(always)]
    fn with_bits(self, v: __m512i) -> Self {
        Avx512(avx512!(_mm512_castsi512_ps(v)))
    }
    #[inline(always)]
    fn sign_bit(self) -> __m512i {
        avx512!(_mm512_set1_epi32(i32::MIN))
    }
}

impl F32x for Avx512 {
    const LANES: usize = 16;
    type Mask = __mmask16;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        Avx512(unsafe { _mm512_set1_ps(v) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX-512F and 16 readable f32 at `p`.
        Avx512(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `self` proves AVX-512F; the caller guarantees 16 writable f32.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn stream(self, p: *mut f32) {
        // SAFETY: `self` proves the tier; the caller guarantees 64 writable,
        // 64-byte-aligned bytes at `p`.
        unsafe { _mm512_stream_ps(p, self.0) }
    }
    #[inline(always)]
    fn stream_fence(self) {
        // SAFETY: SSE is part of the x86-64 baseline.
        unsafe { _mm_sfence() }
    }
    #[inline(always)]
    fn constant(self, v: f32) -> Self {
        Avx512(avx512!(_mm512_set1_ps(v)))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Avx512(avx512!(_mm512_add_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Avx512(avx512!(_mm512_sub_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Avx512(avx512!(_mm512_mul_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        Avx512(avx512!(_mm512_div_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Avx512(avx512!(_mm512_fmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Avx512(avx512!(_mm512_max_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Avx512(avx512!(_mm512_min_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn neg(self) -> Self {
        self.with_bits(avx512!(_mm512_xor_si512(self.int(), self.sign_bit())))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Avx512(avx512!(_mm512_abs_ps(self.0)))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Avx512(avx512!(_mm512_sqrt_ps(self.0)))
    }
    #[inline(always)]
    fn round(self) -> Self {
        // cvtps rounds with the MXCSR mode: nearest, ties to even.
        Avx512(avx512!(_mm512_cvtepi32_ps(_mm512_cvtps_epi32(self.0))))
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        let e = avx512!(_mm512_add_epi32(
            _mm512_cvtps_epi32(self.0),
            _mm512_set1_epi32(127)
        ));
        self.with_bits(avx512!(_mm512_slli_epi32::<23>(e)))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        let m = self.sign_bit();
        let v = avx512!(_mm512_or_si512(
            _mm512_and_si512(m, sign.int()),
            _mm512_andnot_si512(m, self.int())
        ));
        self.with_bits(v)
    }
    #[inline(always)]
    fn and_bits(self, mask: u32) -> Self {
        let m = avx512!(_mm512_set1_epi32(mask as i32));
        self.with_bits(avx512!(_mm512_and_si512(self.int(), m)))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __mmask16 {
        avx512!(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __mmask16 {
        avx512!(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn is_nan(self) -> __mmask16 {
        avx512!(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0))
    }
    #[inline(always)]
    fn select(m: __mmask16, a: Self, b: Self) -> Self {
        // blend(k, b, a) takes a where k is set.
        Avx512(avx512!(_mm512_mask_blend_ps(m, b.0, a.0)))
    }
}

tier_kernels! {
    tier: Isa::Avx512, feature: "avx512f", vec: Avx512;
    binary {
        Add => avx512_add_f32, avx512_add_f32_vs, avx512_add_f32_sv = add;
        Sub => avx512_sub_f32, avx512_sub_f32_vs, avx512_sub_f32_sv = sub;
        Mul => avx512_mul_f32, avx512_mul_f32_vs, avx512_mul_f32_sv = mul;
        Div => avx512_div_f32, avx512_div_f32_vs, avx512_div_f32_sv = div;
        Maximum => avx512_maximum_f32, avx512_maximum_f32_vs, avx512_maximum_f32_sv = maximum;
        Minimum => avx512_minimum_f32, avx512_minimum_f32_vs, avx512_minimum_f32_sv = minimum;
    }
    unary {
        Neg => avx512_neg_f32 = neg;
        Abs => avx512_abs_f32 = abs;
        Exp => avx512_exp_f32 = exp;
        Sqrt => avx512_sqrt_f32 = sqrt;
        Rsqrt => avx512_rsqrt_f32 = rsqrt;
        Relu => avx512_relu_f32 = relu;
        GeluErf => avx512_gelu_erf_f32 = gelu_erf;
        GeluTanh => avx512_gelu_tanh_f32 = gelu_tanh;
        Sigmoid => avx512_sigmoid_f32 = sigmoid;
        Tanh => avx512_tanh_f32 = tanh;
        Silu => avx512_silu_f32 = silu;
    }
    relu_backward => avx512_relu_backward_f32;
}
