//! AVX2 + FMA GEMM micro-kernels: 6 rows of `A` broadcast against two ymm
//! vectors of `B` (12 accumulators of the 16 ymm registers).

use std::arch::x86_64::*;

use super::kernels::{prefetch, simd_micro_kernel, GemmKernel, KernelTable};
use crate::isa::Isa;

simd_micro_kernel! {
    /// f32, 6 x 16 tile.
    avx2_gemm_f32_6x16 / avx2_gemm_f32_6x16_rows / avx2_gemm_f32_6x16_strided: f32, __m256, lanes 8, tile 6 x 2,
    features "avx2,fma",
    zero _mm256_setzero_ps(), load _mm256_loadu_ps, store _mm256_storeu_ps,
    splat _mm256_set1_ps, fma _mm256_fmadd_ps, mul _mm256_mul_ps
}

simd_micro_kernel! {
    /// f64, 6 x 8 tile.
    avx2_gemm_f64_6x8 / avx2_gemm_f64_6x8_rows / avx2_gemm_f64_6x8_strided: f64, __m256d, lanes 4, tile 6 x 2,
    features "avx2,fma",
    zero _mm256_setzero_pd(), load _mm256_loadu_pd, store _mm256_storeu_pd,
    splat _mm256_set1_pd, fma _mm256_fmadd_pd, mul _mm256_mul_pd
}

/// Installs this tier's kernels. Only called when the CPU runs AVX2 and FMA.
pub(crate) fn plug(table: &mut KernelTable) {
    table.f32 = GemmKernel {
        name: "avx2_gemm_f32_6x16",
        isa: Isa::Avx2,
        mr: 6,
        nr: 16,
        kc: 768,
        nc: 512,
        run: avx2_gemm_f32_6x16,
        run_rows: avx2_gemm_f32_6x16_rows,
        narrow: None,
    };
    table.f64 = GemmKernel {
        name: "avx2_gemm_f64_6x8",
        isa: Isa::Avx2,
        mr: 6,
        nr: 8,
        kc: 256,
        nc: 256,
        run: avx2_gemm_f64_6x8,
        run_rows: avx2_gemm_f64_6x8_rows,
        narrow: None,
    };
}
