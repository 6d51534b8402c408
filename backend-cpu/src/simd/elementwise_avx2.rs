//! AVX2+FMA elementwise kernels: [`Avx2`] lanes and the `avx2_*_f32`
//! kernels.

use std::arch::x86_64::*;

use super::simd_vec::{tier_kernels, F32x};
use crate::isa::Isa;

/// Eight f32 lanes in an AVX register. Exists only where AVX2 and FMA do
/// (see [`F32x`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(__m256);

/// Wraps one lane-wise intrinsic call; a value of [`Avx2`] proves the CPU
/// has AVX2 and FMA.
macro_rules! avx2 {
    ($e:expr) => {
        // SAFETY: an `Avx2` value exists only where the CPU supports AVX2
        // and FMA (its constructors are `unsafe` with that contract).
        unsafe { $e }
    };
}

impl Avx2 {
    #[inline(always)]
    fn bits(self, v: i32) -> __m256 {
        avx2!(_mm256_castsi256_ps(_mm256_set1_epi32(v)))
    }
}

impl F32x for Avx2 {
    const LANES: usize = 8;
    type Mask = __m256;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        // SAFETY: the caller guarantees AVX2.
        Avx2(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX2 and 8 readable f32 at `p`.
        Avx2(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `self` proves AVX2; the caller guarantees 8 writable f32.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn stream(self, p: *mut f32) {
        // SAFETY: `self` proves the tier; the caller guarantees 32 writable,
        // 32-byte-aligned bytes at `p`.
        unsafe { _mm256_stream_ps(p, self.0) }
    }
    #[inline(always)]
    fn stream_fence(self) {
        // SAFETY: SSE is part of the x86-64 baseline.
        unsafe { _mm_sfence() }
    }
    #[inline(always)]
    fn constant(self, v: f32) -> Self {
        Avx2(avx2!(_mm256_set1_ps(v)))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Avx2(avx2!(_mm256_add_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Avx2(avx2!(_mm256_sub_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Avx2(avx2!(_mm256_mul_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        Avx2(avx2!(_mm256_div_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Avx2(avx2!(_mm256_fmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Avx2(avx2!(_mm256_max_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Avx2(avx2!(_mm256_min_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn neg(self) -> Self {
        Avx2(avx2!(_mm256_xor_ps(self.0, self.bits(i32::MIN))))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Avx2(avx2!(_mm256_andnot_ps(self.bits(i32::MIN), self.0)))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Avx2(avx2!(_mm256_sqrt_ps(self.0)))
    }
    #[inline(always)]
    fn round(self) -> Self {
        // cvtps rounds with the MXCSR mode: nearest, ties to even.
        Avx2(avx2!(_mm256_cvtepi32_ps(_mm256_cvtps_epi32(self.0))))
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        let e = avx2!(_mm256_add_epi32(
            _mm256_cvtps_epi32(self.0),
            _mm256_set1_epi32(127)
        ));
        Avx2(avx2!(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        let m = self.bits(i32::MIN);
        Avx2(avx2!(_mm256_or_ps(
            _mm256_and_ps(m, sign.0),
            _mm256_andnot_ps(m, self.0)
        )))
    }
    #[inline(always)]
    fn and_bits(self, mask: u32) -> Self {
        Avx2(avx2!(_mm256_and_ps(self.0, self.bits(mask as i32))))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __m256 {
        avx2!(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __m256 {
        avx2!(_mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn is_nan(self) -> __m256 {
        avx2!(_mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0))
    }
    #[inline(always)]
    fn select(m: __m256, a: Self, b: Self) -> Self {
        Avx2(avx2!(_mm256_blendv_ps(b.0, a.0, m)))
    }
}

tier_kernels! {
    tier: Isa::Avx2, feature: "avx2,fma", vec: Avx2;
    binary {
        Add => avx2_add_f32, avx2_add_f32_vs, avx2_add_f32_sv = add;
        Sub => avx2_sub_f32, avx2_sub_f32_vs, avx2_sub_f32_sv = sub;
        Mul => avx2_mul_f32, avx2_mul_f32_vs, avx2_mul_f32_sv = mul;
        Div => avx2_div_f32, avx2_div_f32_vs, avx2_div_f32_sv = div;
        Maximum => avx2_maximum_f32, avx2_maximum_f32_vs, avx2_maximum_f32_sv = maximum;
        Minimum => avx2_minimum_f32, avx2_minimum_f32_vs, avx2_minimum_f32_sv = minimum;
    }
    unary {
        Neg => avx2_neg_f32 = neg;
        Abs => avx2_abs_f32 = abs;
        Exp => avx2_exp_f32 = exp;
        Sqrt => avx2_sqrt_f32 = sqrt;
        Rsqrt => avx2_rsqrt_f32 = rsqrt;
        Relu => avx2_relu_f32 = relu;
        GeluErf => avx2_gelu_erf_f32 = gelu_erf;
        GeluTanh => avx2_gelu_tanh_f32 = gelu_tanh;
        Sigmoid => avx2_sigmoid_f32 = sigmoid;
        Tanh => avx2_tanh_f32 = tanh;
        Silu => avx2_silu_f32 = silu;
    }
    relu_backward => avx2_relu_backward_f32;
}
