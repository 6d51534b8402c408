//! GEMM micro-kernels and the table that picks one per dtype.
//!
//! A micro-kernel computes one `MR x NR` tile of `C` from two packed
//! panels. The table starts with the portable kernels and is overwritten
//! tier by tier (`plug` in each `simd/gemm_*.rs`) up to the tier asked for,
//! never above what the CPU and OS support. Kernel names say ISA, op, dtype
//! and tile: `avx512_gemm_f32_14x32`.

use std::sync::OnceLock;

use crate::element::Float;
use crate::isa::{self, Isa};

/// A micro-kernel: `C = alpha (A_panel B_panel) + beta C` on one tile.
///
/// `a` is a packed `k x MR` panel (for each `p`, the `MR` values of column
/// `p` of the tile's rows of `A`), `b` a packed `k x NR` panel (for each `p`,
/// the `NR` values of row `p` of the tile's columns of `B`), `c` the tile's
/// element `(0, 0)` with row stride `ldc` and unit column stride. With
/// `beta == 0`, `C` is not read.
///
/// Callers guarantee: `a` holds `k MR` readable elements, `b` holds `k NR`,
/// the `MR x NR` tile at `c` is writable (and readable when `beta != 0`),
/// and the CPU supports the kernel's ISA.
pub(crate) type MicroKernelFn<T> =
    unsafe fn(k: usize, a: *const T, b: *const T, c: *mut T, ldc: usize, alpha: T, beta: T);

/// A micro-kernel reading `A` in place instead of from a packed panel:
/// element `(i, p)` of the tile's rows at `a + i lda + p` (row-major, as
/// the caller's `A`). The rest as [`MicroKernelFn`], which it equals on
/// the same values; `A`'s `MR` rows of `k` elements must be readable.
pub(crate) type RowsKernelFn<T> = unsafe fn(
    k: usize,
    a: *const T,
    lda: usize,
    b: *const T,
    c: *mut T,
    ldc: usize,
    alpha: T,
    beta: T,
);

/// A micro-kernel with its tile and cache blocking.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GemmKernel<T: 'static> {
    /// e.g. `avx2_gemm_f32_6x16`.
    pub name: &'static str,
    /// The tier it needs.
    pub isa: Isa,
    /// Tile rows (broadcast from packed `A`).
    pub mr: usize,
    /// Tile columns (vector loads from packed `B`).
    pub nr: usize,
    /// Depth of one packed block (keeps an `A` micro-panel in L1).
    pub kc: usize,
    /// Columns of one packed `B` block (keeps it in L2).
    pub nc: usize,
    /// The kernel.
    pub run: MicroKernelFn<T>,
    /// The same kernel on row-major `A` in place.
    pub run_rows: RowsKernelFn<T>,
    /// The kernel for GEMMs that read `A` in place (`gemm/rows.rs`), where
    /// a shorter tile suits them better than this one; `None`: this one.
    pub narrow: Option<&'static GemmKernel<T>>,
}

/// The micro-kernel for each dtype.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KernelTable {
    /// f32 kernel.
    pub f32: GemmKernel<f32>,
    /// f64 kernel.
    pub f64: GemmKernel<f64>,
}

/// Largest tile any kernel uses (`MR NR`), for edge-tile scratch.
pub(crate) const MAX_TILE: usize = 14 * 32;

/// The table for tier `isa`: portable kernels, overwritten by each tier up
/// to the lower of `isa` and what this CPU supports.
pub(crate) fn table_for(isa: Isa) -> KernelTable {
    let mut table = KernelTable {
        f32: GemmKernel {
            name: "portable_gemm_f32_4x8",
            isa: Isa::Portable,
            mr: 4,
            nr: 8,
            kc: 256,
            nc: 512,
            run: portable_kernel::<f32, 4, 8>,
            run_rows: portable_rows_kernel::<f32, 4, 8>,
            narrow: None,
        },
        f64: GemmKernel {
            name: "portable_gemm_f64_4x4",
            isa: Isa::Portable,
            mr: 4,
            nr: 4,
            kc: 256,
            nc: 256,
            run: portable_kernel::<f64, 4, 4>,
            run_rows: portable_rows_kernel::<f64, 4, 4>,
            narrow: None,
        },
    };
    let usable = isa::capped(isa::detect().0, Some(isa));
    #[cfg(target_arch = "x86_64")]
    {
        if usable >= Isa::Sse2 && usable != Isa::Neon {
            super::gemm_sse2::plug(&mut table);
        }
        if usable >= Isa::Avx2 && usable != Isa::Neon {
            super::gemm_avx2::plug(&mut table);
        }
        if usable == Isa::Avx512 {
            super::gemm_avx512::plug(&mut table);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = usable;
    table
}

/// The table for the tier in use, built once.
pub(crate) fn table() -> &'static KernelTable {
    static TABLE: OnceLock<KernelTable> = OnceLock::new();
    TABLE.get_or_init(|| table_for(isa::tier()))
}

/// Portable register-blocked micro-kernel: an `MR x NR` accumulator block
/// the compiler keeps in registers (and vectorises for the baseline ISA).
///
/// # Safety
/// As [`MicroKernelFn`].
unsafe fn portable_kernel<T: Float, const MR: usize, const NR: usize>(
    k: usize,
    a: *const T,
    b: *const T,
    c: *mut T,
    ldc: usize,
    alpha: T,
    beta: T,
) {
    // SAFETY: forwarded; the packed panel is `A` with strides (1, MR).
    unsafe { portable_strided::<T, MR, NR>(k, (a, 1, MR), b, c, ldc, alpha, beta) }
}

/// [`portable_kernel`] on row-major `A` in place.
///
/// # Safety
/// As [`RowsKernelFn`].
#[allow(
    clippy::too_many_arguments,
    reason = "the RowsKernelFn contract: a micro-kernel's scalar operands"
)]
unsafe fn portable_rows_kernel<T: Float, const MR: usize, const NR: usize>(
    k: usize,
    a: *const T,
    lda: usize,
    b: *const T,
    c: *mut T,
    ldc: usize,
    alpha: T,
    beta: T,
) {
    // SAFETY: forwarded; row-major `A` has strides (lda, 1).
    unsafe { portable_strided::<T, MR, NR>(k, (a, lda, 1), b, c, ldc, alpha, beta) }
}

/// The portable kernel with `A`'s element `(i, p)` at `a + i rs + p cs`.
///
/// # Safety
/// Those `MR x k` elements are readable; the rest as [`MicroKernelFn`].
#[inline(always)]
unsafe fn portable_strided<T: Float, const MR: usize, const NR: usize>(
    k: usize,
    (a, rs, cs): (*const T, usize, usize),
    b: *const T,
    c: *mut T,
    ldc: usize,
    alpha: T,
    beta: T,
) {
    // SAFETY: the B panel holds k NR elements, per the contract.
    let b = unsafe { std::slice::from_raw_parts(b, k * NR) };
    let mut acc = [[T::ZERO; NR]; MR];
    for (p, bp) in b.chunks_exact(NR).enumerate() {
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: (i, p) is inside A's tile, per the contract.
            let ai = unsafe { *a.add(i * rs + p * cs) };
            for (r, &bj) in row.iter_mut().zip(bp) {
                *r += ai * bj;
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row i of the tile is NR writable elements, per the contract.
        let out = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        if beta == T::ZERO {
            for (o, &r) in out.iter_mut().zip(row) {
                *o = alpha * r;
            }
        } else {
            for (o, &r) in out.iter_mut().zip(row) {
                *o = alpha * r + beta * *o;
            }
        }
    }
}

/// Defines a SIMD micro-kernel from a vector type and its intrinsics: an
/// `MR x NV` block of vector accumulators, one broadcast of `A` per row and
/// `NV` vector loads of `B` per step of `k`.
macro_rules! simd_micro_kernel {
    (
        $(#[$meta:meta])*
        $name:ident / $rows:ident / $strided:ident: $t:ty, $v:ty, lanes $lanes:literal,
        tile $mr:literal x $nv:literal,
        features $feat:literal,
        zero $zero:expr, load $load:path, store $store:path, splat $splat:path,
        fma $fma:path, mul $mul:path
    ) => {
        $(#[$meta])*
        ///
        /// # Safety
        /// The CPU supports the enabled features, and the arguments obey
        /// [`MicroKernelFn`]'s contract.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $name(
            k: usize,
            a: *const $t,
            b: *const $t,
            c: *mut $t,
            ldc: usize,
            alpha: $t,
            beta: $t,
        ) {
            // SAFETY: forwarded; the packed panel is `A` with strides (1, MR).
            unsafe { $strided(k, (a, 1, $mr), b, c, ldc, alpha, beta) }
        }

        #[doc = concat!("[`", stringify!($name), "`] on row-major `A` in place.")]
        ///
        /// # Safety
        /// The CPU supports the enabled features, and the arguments obey
        /// [`RowsKernelFn`](crate::gemm::kernels::RowsKernelFn)'s contract.
        #[allow(
            clippy::too_many_arguments,
            reason = "the RowsKernelFn contract: a micro-kernel's scalar operands"
        )]
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $rows(
            k: usize,
            a: *const $t,
            lda: usize,
            b: *const $t,
            c: *mut $t,
            ldc: usize,
            alpha: $t,
            beta: $t,
        ) {
            // SAFETY: forwarded; row-major `A` has strides (lda, 1).
            unsafe { $strided(k, (a, lda, 1), b, c, ldc, alpha, beta) }
        }

        /// The kernel body, `A`'s element `(i, p)` at `a + i rs + p cs`;
        /// inlined into both entries (whose target features its intrinsics
        /// then take), so that the packed entry's strides are constants.
        ///
        /// # Safety
        /// As the entries.
        #[inline(always)]
        unsafe fn $strided(
            k: usize,
            (a, rs, cs): (*const $t, usize, usize),
            b: *const $t,
            c: *mut $t,
            ldc: usize,
            alpha: $t,
            beta: $t,
        ) {
            // SAFETY: inlined only into the entries, which enable the
            // features these intrinsics need; the pointers as the contract.
            unsafe {
                let mut acc: [[$v; $nv]; $mr] = [[$zero; $nv]; $mr];
                for i in 0..$mr {
                    // Warm the tile's first and last line for the final update.
                    prefetch(c.wrapping_add(i * ldc));
                    prefetch(c.wrapping_add(i * ldc + $nv * $lanes - 1));
                }
                for p in 0..k {
                    // Column p < k of A's tile.
                    let ap = a.add(p * cs);
                    // The B panel holds k NR elements, p < k.
                    let bp = b.add(p * $nv * $lanes);
                    // Stream the B panel 8 steps ahead, one hint per cache line
                    // of a step (a hint never faults).
                    let ahead = bp.wrapping_add(8 * $nv * $lanes);
                    let mut line = 0;
                    while line < $nv * $lanes * std::mem::size_of::<$t>() {
                        prefetch(ahead.wrapping_byte_add(line));
                        line += 64;
                    }
                    let mut bv: [$v; $nv] = [$zero; $nv];
                    for (j, v) in bv.iter_mut().enumerate() {
                        // Lanes j*L..(j+1)*L of row p of the B panel.
                        *v = $load(bp.add(j * $lanes));
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        // Element i < MR of column p of A's tile.
                        let av = $splat(*ap.add(i * rs));
                        for (r, &bj) in row.iter_mut().zip(&bv) {
                            *r = $fma(av, bj, *r);
                        }
                    }
                }
                let alpha_v = $splat(alpha);
                let beta_v = $splat(beta);
                for (i, row) in acc.iter().enumerate() {
                    for (j, &r) in row.iter().enumerate() {
                        // (i, j L) lies in the writable MR x NR tile.
                        let dst = c.add(i * ldc + j * $lanes);
                        let v = if beta == 0.0 {
                            $mul(alpha_v, r)
                        } else {
                            // The tile is readable when beta != 0.
                            $fma(alpha_v, r, $mul(beta_v, $load(dst)))
                        };
                        $store(dst, v);
                    }
                }
            }
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use simd_micro_kernel;

/// Hints the cache line holding `p` into L1. A prefetch never faults, so
/// any address is fine.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse")]
pub(crate) fn prefetch<T>(p: *const T) {
    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
}
