//! SSE2 (the x86-64 baseline) elementwise kernels: [`Sse2`] lanes and the
//! `sse2_*_f32` kernels. SSE2 is part of every x86-64 CPU.

use std::arch::x86_64::*;

use super::simd_vec::{tier_kernels, F32x};
use crate::isa::Isa;

/// Four f32 lanes in an SSE register.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sse2(__m128);

/// Wraps one lane-wise intrinsic call.
macro_rules! sse2 {
    ($e:expr) => {
        // SAFETY: SSE2 is part of the x86-64 baseline: every CPU this code
        // runs on has it.
        unsafe { $e }
    };
}

impl Sse2 {
    #[inline(always)]
    fn bits(v: i32) -> __m128 {
        sse2!(_mm_castsi128_ps(_mm_set1_epi32(v)))
    }
}

impl F32x for Sse2 {
    const LANES: usize = 4;
    type Mask = __m128;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        Sse2(sse2!(_mm_set1_ps(v)))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `p` is readable for 4 f32 (the caller's contract).
        Sse2(unsafe { _mm_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `p` is writable for 4 f32 (the caller's contract).
        unsafe { _mm_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn stream(self, p: *mut f32) {
        // SAFETY: `self` proves the tier; the caller guarantees 16 writable,
        // 16-byte-aligned bytes at `p`.
        unsafe { _mm_stream_ps(p, self.0) }
    }
    #[inline(always)]
    fn stream_fence(self) {
        // SAFETY: SSE is part of the x86-64 baseline.
        unsafe { _mm_sfence() }
    }
    #[inline(always)]
    fn constant(self, v: f32) -> Self {
        Sse2(sse2!(_mm_set1_ps(v)))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Sse2(sse2!(_mm_add_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Sse2(sse2!(_mm_sub_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Sse2(sse2!(_mm_mul_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        Sse2(sse2!(_mm_div_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Sse2(sse2!(_mm_add_ps(_mm_mul_ps(self.0, b.0), c.0)))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Sse2(sse2!(_mm_max_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Sse2(sse2!(_mm_min_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn neg(self) -> Self {
        Sse2(sse2!(_mm_xor_ps(self.0, Self::bits(i32::MIN))))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Sse2(sse2!(_mm_andnot_ps(Self::bits(i32::MIN), self.0)))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Sse2(sse2!(_mm_sqrt_ps(self.0)))
    }
    #[inline(always)]
    fn round(self) -> Self {
        // cvtps rounds with the MXCSR mode: nearest, ties to even.
        Sse2(sse2!(_mm_cvtepi32_ps(_mm_cvtps_epi32(self.0))))
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        let e = sse2!(_mm_add_epi32(_mm_cvtps_epi32(self.0), _mm_set1_epi32(127)));
        Sse2(sse2!(_mm_castsi128_ps(_mm_slli_epi32::<23>(e))))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        let m = Self::bits(i32::MIN);
        Sse2(sse2!(_mm_or_ps(
            _mm_and_ps(m, sign.0),
            _mm_andnot_ps(m, self.0)
        )))
    }
    #[inline(always)]
    fn and_bits(self, mask: u32) -> Self {
        Sse2(sse2!(_mm_and_ps(self.0, Self::bits(mask as i32))))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __m128 {
        sse2!(_mm_cmpgt_ps(self.0, o.0))
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __m128 {
        sse2!(_mm_cmplt_ps(self.0, o.0))
    }
    #[inline(always)]
    fn is_nan(self) -> __m128 {
        sse2!(_mm_cmpunord_ps(self.0, self.0))
    }
    #[inline(always)]
    fn select(m: __m128, a: Self, b: Self) -> Self {
        Sse2(sse2!(_mm_or_ps(_mm_and_ps(m, a.0), _mm_andnot_ps(m, b.0))))
    }
}

tier_kernels! {
    tier: Isa::Sse2, feature: "sse2", vec: Sse2;
    binary {
        Add => sse2_add_f32, sse2_add_f32_vs, sse2_add_f32_sv = add;
        Sub => sse2_sub_f32, sse2_sub_f32_vs, sse2_sub_f32_sv = sub;
        Mul => sse2_mul_f32, sse2_mul_f32_vs, sse2_mul_f32_sv = mul;
        Div => sse2_div_f32, sse2_div_f32_vs, sse2_div_f32_sv = div;
        Maximum => sse2_maximum_f32, sse2_maximum_f32_vs, sse2_maximum_f32_sv = maximum;
        Minimum => sse2_minimum_f32, sse2_minimum_f32_vs, sse2_minimum_f32_sv = minimum;
    }
    unary {
        Neg => sse2_neg_f32 = neg;
        Abs => sse2_abs_f32 = abs;
        Exp => sse2_exp_f32 = exp;
        Sqrt => sse2_sqrt_f32 = sqrt;
        Rsqrt => sse2_rsqrt_f32 = rsqrt;
        Relu => sse2_relu_f32 = relu;
        GeluErf => sse2_gelu_erf_f32 = gelu_erf;
        GeluTanh => sse2_gelu_tanh_f32 = gelu_tanh;
        Sigmoid => sse2_sigmoid_f32 = sigmoid;
        Tanh => sse2_tanh_f32 = tanh;
        Silu => sse2_silu_f32 = silu;
    }
    relu_backward => sse2_relu_backward_f32;
}
