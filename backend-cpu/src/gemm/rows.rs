//! GEMM with row-major `A` read in place: no packing of `A`.
//!
//! Packing `A` costs one pass over it, which the packed driver repays over
//! the columns of `C` that each packed panel meets. With few columns (the
//! im2col GEMM of a 64-channel convolution, `25088x576x64`, or a linear
//! layer with few outputs) that pass is a large share of the time: perf put
//! the packing (`A` through 8x8 transposes) at a third of the AVX2 time on
//! that shape. Here the micro-kernels broadcast `A` straight from its `mr`
//! rows (contiguous along `k`, so `mr` prefetchable streams) against one
//! packed block of `B`, which stays in L2 for the whole pass.

use super::driver::{merge_edge, pack_a_panel, pack_b, split_depth, tile, with_call_scratch};
use super::kernels::{GemmKernel, MAX_TILE};
use super::GemmCall;
use crate::element::Float;
use crate::threads;

/// Columns of `C`, in micro-tiles, up to which `A` is read in place.
const MAX_PANELS: usize = 4;

/// Most bytes of `A` in one strip (`mr` rows of one depth block), which
/// every panel of `B` reads again, so it stays in a 32 KiB L1: 20 KiB lets
/// 8 rows of the 576-deep conv-shaped GEMM run as one block (AVX-512,
/// 25088x576x64, 1 thread: 81 GFLOP/s in three blocks at 16 KiB, 95-98 in
/// one).
const STRIP_BYTES: usize = 20 << 10;

/// Row strips (of `mr` rows) per unit of work on the pool.
const STRIPS_PER_UNIT: usize = 32;

/// Tallest tile whose rows are read in place. The AVX-512 kernel's 14 rows
/// gained nothing this way on 25088x576x64 (67-81 GFLOP/s on 1 thread
/// against 74-77 packed; 85-96 on 2 against 87-122), hence its 8-row
/// `narrow` kernel (95-98 and 166-184); the 6 of AVX2 gained (95 against
/// 72 on 1 thread, 183 against 101 on 2).
const MAX_ROWS: usize = 8;

/// Whether [`rows_gemm`] serves `call`: `A` row-major, at most
/// [`MAX_PANELS`] micro-tiles of columns, a tile of at most [`MAX_ROWS`]
/// rows, and at least one full strip.
pub(super) fn serves<T>(kern: &GemmKernel<T>, call: &GemmCall<T>) -> bool {
    call.a.cs == 1
        && call.n <= MAX_PANELS * kern.nr
        && kern.mr <= MAX_ROWS
        && call.m >= kern.mr
        && call.k > 0
}

/// Runs `call` (which [`serves`] accepts) on `nthreads` threads.
///
/// # Safety
/// As [`super::driver::packed_gemm`].
pub(super) unsafe fn rows_gemm<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    nthreads: usize,
) {
    let (mr, nr) = (kern.mr, kern.nr);
    // A strip (mr rows of kc) is read once per panel of B: keep it in L1.
    let kc = split_depth(
        kern.kc.min(STRIP_BYTES / std::mem::size_of::<T>() / mr),
        call.k,
    );
    let bpanels = call.n.div_ceil(nr);
    let strips = call.m / mr;
    with_call_scratch::<T, _>(bpanels * nr * kc, |bpack| {
        for p0 in (0..call.k).step_by(kc) {
            let kb = kc.min(call.k - p0);
            let b = &mut bpack[..bpanels * nr * kb];
            // SAFETY: rows p0..p0+kb and all columns of B are readable.
            unsafe { pack_b(call.b, p0, kb, 0, call.n, nr, b) };
            let b: &[T] = b;
            let beta = if p0 == 0 { call.beta } else { T::ONE };
            let unit = |u: usize| {
                let first = u * STRIPS_PER_UNIT;
                for s in first..(first + STRIPS_PER_UNIT).min(strips) {
                    // SAFETY: strip s is mr full rows of A and C; units write
                    // disjoint rows of C.
                    unsafe { strip(kern, call, (s * mr, p0, kb), b, beta) };
                }
            };
            let units = strips.div_ceil(STRIPS_PER_UNIT);
            if nthreads > 1 {
                threads::for_each_index(units, unit);
            } else {
                (0..units).for_each(unit);
            }
            let i0 = strips * mr;
            if i0 < call.m {
                // The last rows (fewer than mr) through a packed panel.
                let mut panel = vec![T::ZERO; mr * kb];
                // SAFETY: rows i0..m, columns p0..p0+kb of A are readable.
                unsafe { pack_a_panel(call.a, i0, call.m - i0, p0, kb, mr, &mut panel) };
                for (q, bpanel) in b.chunks_exact(nr * kb).enumerate() {
                    // SAFETY: the tile's corner is inside C; `tile` clips it.
                    unsafe {
                        tile(
                            kern,
                            call,
                            (&panel, bpanel),
                            (i0, q * nr),
                            call.m - i0,
                            beta,
                        )
                    };
                }
            }
        }
    });
}

/// One strip: rows `i0..i0+mr` of `C` from the same rows of `A` (columns
/// `p0..p0+kb`) against every packed panel of `B`.
///
/// # Safety
/// Those rows of `A` are readable and of `C` writable by this thread only.
unsafe fn strip<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    (i0, p0, kb): (usize, usize, usize),
    bpack: &[T],
    beta: T,
) {
    let nr = kern.nr;
    // SAFETY: (i0, p0) is inside A.
    let a = unsafe { call.a.ptr.add(i0 * call.a.rs + p0) };
    for (q, bpanel) in bpack.chunks_exact(nr * kb).enumerate() {
        let j = q * nr;
        let w = nr.min(call.n - j);
        // SAFETY: (i0, j) is inside C.
        let c = unsafe { call.c.ptr.add(i0 * call.c.rs + j) };
        let (lda, ldc, b) = (call.a.rs, call.c.rs, bpanel.as_ptr());
        if w == nr {
            // SAFETY: a full tile; mr rows of kb elements of A at `a`.
            unsafe { (kern.run_rows)(kb, a, lda, b, c, ldc, call.alpha, beta) };
        } else {
            let mut edge = [T::ZERO; MAX_TILE];
            // SAFETY: `edge` holds MAX_TILE >= mr nr elements.
            unsafe { (kern.run_rows)(kb, a, lda, b, edge.as_mut_ptr(), nr, T::ONE, T::ZERO) };
            // SAFETY: the mr x w corner at c lies inside C.
            unsafe {
                merge_edge(
                    &edge[..kern.mr * nr],
                    nr,
                    c,
                    ldc,
                    (kern.mr, w),
                    call.alpha,
                    beta,
                )
            };
        }
    }
}
