//! AVX-512 GEMM micro-kernels: 14 rows of `A` broadcast against two zmm
//! vectors of `B` (28 accumulators of the 32 zmm registers).

use std::arch::x86_64::*;

use super::kernels::{prefetch, simd_micro_kernel, GemmKernel, KernelTable};
use crate::isa::Isa;

simd_micro_kernel! {
    /// f32, 14 x 32 tile.
    avx512_gemm_f32_14x32 / avx512_gemm_f32_14x32_rows / avx512_gemm_f32_14x32_strided: f32, __m512, lanes 16, tile 14 x 2,
    features "avx512f",
    zero _mm512_setzero_ps(), load _mm512_loadu_ps, store _mm512_storeu_ps,
    splat _mm512_set1_ps, fma _mm512_fmadd_ps, mul _mm512_mul_ps
}

simd_micro_kernel! {
    /// f64, 14 x 16 tile.
    avx512_gemm_f64_14x16 / avx512_gemm_f64_14x16_rows / avx512_gemm_f64_14x16_strided: f64, __m512d, lanes 8, tile 14 x 2,
    features "avx512f",
    zero _mm512_setzero_pd(), load _mm512_loadu_pd, store _mm512_storeu_pd,
    splat _mm512_set1_pd, fma _mm512_fmadd_pd, mul _mm512_mul_pd
}

/// Installs this tier's kernels. Only called when the CPU runs AVX-512 F.
pub(crate) fn plug(table: &mut KernelTable) {
    table.f32 = GemmKernel {
        name: "avx512_gemm_f32_14x32",
        isa: Isa::Avx512,
        mr: 14,
        nr: 32,
        kc: 256,
        nc: 512,
        run: avx512_gemm_f32_14x32,
        run_rows: avx512_gemm_f32_14x32_rows,
    };
    table.f64 = GemmKernel {
        name: "avx512_gemm_f64_14x16",
        isa: Isa::Avx512,
        mr: 14,
        nr: 16,
        kc: 128,
        nc: 512,
        run: avx512_gemm_f64_14x16,
        run_rows: avx512_gemm_f64_14x16_rows,
    };
}
