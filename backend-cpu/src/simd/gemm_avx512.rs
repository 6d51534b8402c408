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

simd_micro_kernel! {
    /// f32, 8 x 32 tile, for GEMMs that read `A` in place.
    avx512_gemm_f32_8x32 / avx512_gemm_f32_8x32_rows / avx512_gemm_f32_8x32_strided: f32, __m512, lanes 16, tile 8 x 2,
    features "avx512f",
    zero _mm512_setzero_ps(), load _mm512_loadu_ps, store _mm512_storeu_ps,
    splat _mm512_set1_ps, fma _mm512_fmadd_ps, mul _mm512_mul_ps
}

simd_micro_kernel! {
    /// f64, 8 x 16 tile, for GEMMs that read `A` in place.
    avx512_gemm_f64_8x16 / avx512_gemm_f64_8x16_rows / avx512_gemm_f64_8x16_strided: f64, __m512d, lanes 8, tile 8 x 2,
    features "avx512f",
    zero _mm512_setzero_pd(), load _mm512_loadu_pd, store _mm512_storeu_pd,
    splat _mm512_set1_pd, fma _mm512_fmadd_pd, mul _mm512_mul_pd
}

/// The f32 kernel of `gemm/rows.rs` on this tier: 8 rows of `A` read in
/// place (the 14-row kernel measured slower there than packing; this one,
/// on 25088x576x64, 95-98 GFLOP/s on 1 thread against 74-76 packed).
static F32_8X32: GemmKernel<f32> = GemmKernel {
    name: "avx512_gemm_f32_8x32",
    isa: Isa::Avx512,
    mr: 8,
    nr: 32,
    kc: 768,
    nc: 512,
    run: avx512_gemm_f32_8x32,
    run_rows: avx512_gemm_f32_8x32_rows,
    narrow: None,
};

/// The f64 counterpart of [`F32_8X32`].
static F64_8X16: GemmKernel<f64> = GemmKernel {
    name: "avx512_gemm_f64_8x16",
    isa: Isa::Avx512,
    mr: 8,
    nr: 16,
    kc: 256,
    nc: 512,
    run: avx512_gemm_f64_8x16,
    run_rows: avx512_gemm_f64_8x16_rows,
    narrow: None,
};

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
        narrow: Some(&F32_8X32),
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
        narrow: Some(&F64_8X16),
    };
}
