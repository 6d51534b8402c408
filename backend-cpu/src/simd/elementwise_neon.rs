//! aarch64 NEON elementwise kernels: [`Neon`] lanes and the `neon_*_f32`
//! kernels.
//!
//! Not compiled or tested on the x86-64 machines this crate is developed
//! on; the generic kernels it instantiates are the ones tested there at
//! every x86 tier.

use std::arch::aarch64::*;

use super::simd_vec::{tier_kernels, F32x};
use crate::isa::Isa;

/// Four f32 lanes in a NEON register. Exists only where NEON does (see
/// [`F32x`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neon(float32x4_t);

/// Wraps lane-wise intrinsic calls; a value of [`Neon`] proves the CPU has
/// NEON. Toolchains differ on whether these intrinsics are `unsafe`, hence
/// the allowance.
macro_rules! neon {
    ($e:expr) => {{
        #[allow(
            unused_unsafe,
            reason = "NEON intrinsics are safe on newer toolchains, unsafe on older ones"
        )]
        // SAFETY: a `Neon` value exists only where the CPU supports NEON
        // (its constructors are `unsafe` with that contract).
        let v = unsafe { $e };
        v
    }};
}

impl Neon {
    #[inline(always)]
    fn sign_bit(self) -> uint32x4_t {
        neon!(vdupq_n_u32(0x8000_0000))
    }
}

impl F32x for Neon {
    const LANES: usize = 4;
    type Mask = uint32x4_t;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        Neon(neon!(vdupq_n_f32(v)))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees NEON and 4 readable f32 at `p`.
        Neon(unsafe { vld1q_f32(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `self` proves NEON; the caller guarantees 4 writable f32.
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    fn constant(self, v: f32) -> Self {
        Neon(neon!(vdupq_n_f32(v)))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Neon(neon!(vaddq_f32(self.0, o.0)))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Neon(neon!(vsubq_f32(self.0, o.0)))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Neon(neon!(vmulq_f32(self.0, o.0)))
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        Neon(neon!(vdivq_f32(self.0, o.0)))
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // vfmaq(c, a, b) = c + a * b, fused.
        Neon(neon!(vfmaq_f32(c.0, self.0, b.0)))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        // Not vmaxq (which propagates NaN): the x86 rule `a > b ? a : b`.
        Neon(neon!(vbslq_f32(vcgtq_f32(self.0, o.0), self.0, o.0)))
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Neon(neon!(vbslq_f32(vcltq_f32(self.0, o.0), self.0, o.0)))
    }
    #[inline(always)]
    fn neg(self) -> Self {
        Neon(neon!(vnegq_f32(self.0)))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Neon(neon!(vabsq_f32(self.0)))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Neon(neon!(vsqrtq_f32(self.0)))
    }
    #[inline(always)]
    fn round(self) -> Self {
        Neon(neon!(vrndnq_f32(self.0)))
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        let e = neon!(vaddq_s32(vcvtq_s32_f32(self.0), vdupq_n_s32(127)));
        Neon(neon!(vreinterpretq_f32_s32(vshlq_n_s32::<23>(e))))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        Neon(neon!(vbslq_f32(self.sign_bit(), sign.0, self.0)))
    }
    #[inline(always)]
    fn and_bits(self, mask: u32) -> Self {
        let m = neon!(vdupq_n_u32(mask));
        Neon(neon!(vreinterpretq_f32_u32(vandq_u32(
            vreinterpretq_u32_f32(self.0),
            m
        ))))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> uint32x4_t {
        neon!(vcgtq_f32(self.0, o.0))
    }
    #[inline(always)]
    fn lt(self, o: Self) -> uint32x4_t {
        neon!(vcltq_f32(self.0, o.0))
    }
    #[inline(always)]
    fn is_nan(self) -> uint32x4_t {
        neon!(vmvnq_u32(vceqq_f32(self.0, self.0)))
    }
    #[inline(always)]
    fn select(m: uint32x4_t, a: Self, b: Self) -> Self {
        Neon(neon!(vbslq_f32(m, a.0, b.0)))
    }
}

tier_kernels! {
    tier: Isa::Neon, feature: "neon", vec: Neon;
    binary {
        Add => neon_add_f32, neon_add_f32_vs, neon_add_f32_sv = add;
        Sub => neon_sub_f32, neon_sub_f32_vs, neon_sub_f32_sv = sub;
        Mul => neon_mul_f32, neon_mul_f32_vs, neon_mul_f32_sv = mul;
        Div => neon_div_f32, neon_div_f32_vs, neon_div_f32_sv = div;
        Maximum => neon_maximum_f32, neon_maximum_f32_vs, neon_maximum_f32_sv = maximum;
        Minimum => neon_minimum_f32, neon_minimum_f32_vs, neon_minimum_f32_sv = minimum;
    }
    unary {
        Neg => neon_neg_f32 = neg;
        Abs => neon_abs_f32 = abs;
        Exp => neon_exp_f32 = exp;
        Sqrt => neon_sqrt_f32 = sqrt;
        Rsqrt => neon_rsqrt_f32 = rsqrt;
        Relu => neon_relu_f32 = relu;
        GeluErf => neon_gelu_erf_f32 = gelu_erf;
        GeluTanh => neon_gelu_tanh_f32 = gelu_tanh;
        Sigmoid => neon_sigmoid_f32 = sigmoid;
        Tanh => neon_tanh_f32 = tanh;
        Silu => neon_silu_f32 = silu;
    }
    relu_backward => neon_relu_backward_f32;
}
