//! SSE2 GEMM micro-kernels (x86-64 baseline, no FMA): 4 rows of `A`
//! broadcast against two xmm vectors of `B` (8 accumulators, leaving room
//! for the products in the 16 xmm registers).

use std::arch::x86_64::*;

use super::kernels::{prefetch, simd_micro_kernel, GemmKernel, KernelTable};
use crate::isa::Isa;

/// `a b + c` as a multiply and an add (SSE2 has no fused multiply-add).
#[inline]
#[target_feature(enable = "sse2")]
fn mul_add_ps(a: __m128, b: __m128, c: __m128) -> __m128 {
    _mm_add_ps(_mm_mul_ps(a, b), c)
}

/// `a b + c` in f64.
#[inline]
#[target_feature(enable = "sse2")]
fn mul_add_pd(a: __m128d, b: __m128d, c: __m128d) -> __m128d {
    _mm_add_pd(_mm_mul_pd(a, b), c)
}

simd_micro_kernel! {
    /// f32, 4 x 8 tile.
    sse2_gemm_f32_4x8 / sse2_gemm_f32_4x8_rows / sse2_gemm_f32_4x8_strided: f32, __m128, lanes 4, tile 4 x 2,
    features "sse2",
    zero _mm_setzero_ps(), load _mm_loadu_ps, store _mm_storeu_ps,
    splat _mm_set1_ps, fma mul_add_ps, mul _mm_mul_ps
}

simd_micro_kernel! {
    /// f64, 4 x 4 tile.
    sse2_gemm_f64_4x4 / sse2_gemm_f64_4x4_rows / sse2_gemm_f64_4x4_strided: f64, __m128d, lanes 2, tile 4 x 2,
    features "sse2",
    zero _mm_setzero_pd(), load _mm_loadu_pd, store _mm_storeu_pd,
    splat _mm_set1_pd, fma mul_add_pd, mul _mm_mul_pd
}

/// Installs this tier's kernels (SSE2 is the x86-64 baseline).
pub(crate) fn plug(table: &mut KernelTable) {
    table.f32 = GemmKernel {
        name: "sse2_gemm_f32_4x8",
        isa: Isa::Sse2,
        mr: 4,
        nr: 8,
        kc: 768,
        nc: 512,
        run: sse2_gemm_f32_4x8,
        run_rows: sse2_gemm_f32_4x8_rows,
        narrow: None,
    };
    table.f64 = GemmKernel {
        name: "sse2_gemm_f64_4x4",
        isa: Isa::Sse2,
        mr: 4,
        nr: 4,
        kc: 256,
        nc: 256,
        run: sse2_gemm_f64_4x4,
        run_rows: sse2_gemm_f64_4x4_rows,
        narrow: None,
    };
}
