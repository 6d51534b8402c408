//! Our packed GEMM: BLIS-style blocking around one micro-kernel.
//!
//! Loops, outermost first: blocks of up to [`MC_BLOCK`] rows of `A`; blocks
//! of `kc` along `k` (the first applies the caller's `beta`, later ones
//! accumulate); the `A` block is packed once into `mr`-row panels shared by
//! all threads; then a grid of work units (chunks of columns of at most `nc`,
//! split further along rows when there are fewer column chunks than
//! threads) runs on the pool. Each unit packs its `kc x nc` block of `B`
//! (sized for L2) into thread-local scratch and sweeps `mr`-row panels of
//! `A` (one in L1) against its `nr`-column panels of `B`. Edge tiles go
//! through a small buffer so kernels only ever see full tiles.

use std::cell::RefCell;

use rayon::prelude::*;

use super::kernels::{GemmKernel, MAX_TILE};
use super::{GemmCall, MatRef};
use crate::element::Float;
use crate::{isa, threads};

/// Rows of `A` packed at once (bounds the shared packing buffer).
const MC_BLOCK: usize = 2048;

/// How one `A` block and the columns split into work units.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Columns per unit (a multiple of `nr`, at most `nc` unless `n` is smaller).
    nc: usize,
    /// Column chunks.
    n_chunks: usize,
    /// Threads available.
    threads: usize,
}

impl Plan {
    fn new(nr: usize, nc: usize, n: usize, threads: usize) -> Plan {
        let mut n_chunks = n.div_ceil(nc);
        if threads > 1 {
            n_chunks = n_chunks.div_ceil(threads) * threads;
        }
        let nc = n.div_ceil(n_chunks).div_ceil(nr) * nr;
        Plan {
            nc,
            n_chunks: n.div_ceil(nc),
            threads,
        }
    }

    /// Row chunks (in panels) for a block of `panels` panels.
    fn m_chunks(&self, panels: usize) -> usize {
        if self.n_chunks >= self.threads {
            1
        } else {
            self.threads.div_ceil(self.n_chunks).min(panels)
        }
    }
}

/// Runs `call` with micro-kernel `kern` (`m, n, k > 0`).
///
/// # Safety
/// As [`super::gemm`]; `kern` runs on this CPU.
pub(crate) unsafe fn packed_gemm<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    parallel: bool,
) {
    debug_assert!(
        isa::capped(isa::detect().0, Some(kern.isa)) == kern.isa,
        "{} needs {}, which this CPU lacks",
        kern.name,
        kern.isa
    );
    let nthreads = if parallel { threads::num_threads() } else { 1 };
    let body = || {
        let plan = Plan::new(kern.nr, kern.nc, call.n, nthreads);
        let mb_max = call.m.min(MC_BLOCK).div_ceil(kern.mr) * kern.mr;
        let kb_max = call.k.min(kern.kc);
        let mut apack = AlignedVec::<T>::new(mb_max * kb_max);
        for i0 in (0..call.m).step_by(MC_BLOCK) {
            let mb = MC_BLOCK.min(call.m - i0);
            for p0 in (0..call.k).step_by(kern.kc) {
                let kb = kern.kc.min(call.k - p0);
                let beta = if p0 == 0 { call.beta } else { T::ONE };
                let panels = mb.div_ceil(kern.mr);
                let a = &mut apack.as_mut_slice()[..panels * kern.mr * kb];
                // SAFETY: rows i0..i0+mb and columns p0..p0+kb lie inside A.
                unsafe { pack_a(call.a, (i0, mb), (p0, kb), kern.mr, a, nthreads > 1) };
                let block = Block {
                    i0,
                    mb,
                    p0,
                    kb,
                    beta,
                    apack: a,
                };
                // SAFETY: forwarded from the caller.
                unsafe { run_block(kern, call, &block, &plan) };
            }
        }
    };
    if nthreads > 1 {
        threads::install(body);
    } else {
        body();
    }
}

/// Runs the work units of one packed block of `A`, on the pool when the
/// plan has several threads.
///
/// # Safety
/// As [`packed_gemm`].
unsafe fn run_block<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    blk: &Block<'_, T>,
    plan: &Plan,
) {
    let panels = blk.mb.div_ceil(kern.mr);
    let m_chunks = plan.m_chunks(panels);
    let per_chunk = panels.div_ceil(m_chunks) * kern.mr;
    let unit = |u: usize| {
        let (mi, nj) = (u / plan.n_chunks, u % plan.n_chunks);
        let rows = (mi * per_chunk, ((mi + 1) * per_chunk).min(blk.mb));
        let cols = (nj * plan.nc, ((nj + 1) * plan.nc).min(call.n));
        if rows.0 < rows.1 && cols.0 < cols.1 {
            // SAFETY: units cover disjoint tiles of C; the rest is
            // forwarded from the caller.
            unsafe { run_unit(kern, call, blk, rows, cols) };
        }
    };
    let units = m_chunks * plan.n_chunks;
    if plan.threads > 1 && units > 1 {
        (0..units).into_par_iter().for_each(unit);
    } else {
        (0..units).for_each(unit);
    }
}

/// One packed block of `A` and where it sits.
struct Block<'a, T> {
    i0: usize,
    mb: usize,
    p0: usize,
    kb: usize,
    beta: T,
    apack: &'a [T],
}

/// Packs columns `cols` of `B` for the block and computes rows `rows`
/// (relative to the block) of `C` against them.
///
/// # Safety
/// As [`packed_gemm`]; no other thread writes these tiles of `C`.
unsafe fn run_unit<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    blk: &Block<'_, T>,
    rows: (usize, usize),
    cols: (usize, usize),
) {
    let (mr, nr, kb) = (kern.mr, kern.nr, blk.kb);
    let width = cols.1 - cols.0;
    let bpanels = width.div_ceil(nr);
    with_scratch::<T, _>(bpanels * nr * kb, |bpack| {
        // SAFETY: rows p0..p0+kb and columns `cols` lie inside B.
        unsafe { pack_b(call.b, blk.p0, kb, cols.0, width, nr, bpack) };
        for ir in (rows.0..rows.1).step_by(mr) {
            let apanel = &blk.apack[(ir / mr) * mr * kb..][..mr * kb];
            for (q, bpanel) in bpack.chunks_exact(nr * kb).enumerate() {
                // SAFETY: the tile's corner is inside C, per the unit.
                unsafe { tile(kern, call, blk, (apanel, bpanel), (ir, cols.0 + q * nr)) };
            }
        }
    });
}

/// Computes the tile at block row `ir`, column `jr` of `C` from its packed
/// panels, through an edge buffer when it sticks out of `C`.
///
/// # Safety
/// As [`run_unit`]; `(ir, jr)` lies inside the block and `C`.
unsafe fn tile<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    blk: &Block<'_, T>,
    (apanel, bpanel): (&[T], &[T]),
    (ir, jr): (usize, usize),
) {
    let (mr, nr, kb) = (kern.mr, kern.nr, blk.kb);
    let (h, w) = (mr.min(blk.mb - ir), nr.min(call.n - jr));
    // SAFETY: (i0 + ir, jr) is inside C's m x n extent.
    let c = unsafe { call.c.ptr.add((blk.i0 + ir) * call.c.rs + jr) };
    let (a, b) = (apanel.as_ptr(), bpanel.as_ptr());
    if h == mr && w == nr {
        // SAFETY: a full tile inside C; panels of kb mr and kb nr elements.
        unsafe { (kern.run)(kb, a, b, c, call.c.rs, call.alpha, blk.beta) };
    } else {
        let mut edge = [T::ZERO; MAX_TILE];
        // SAFETY: `edge` holds MAX_TILE >= mr nr elements.
        unsafe { (kern.run)(kb, a, b, edge.as_mut_ptr(), nr, T::ONE, T::ZERO) };
        // SAFETY: the h x w corner at c lies inside C.
        unsafe {
            merge_edge(
                &edge[..mr * nr],
                nr,
                c,
                call.c.rs,
                (h, w),
                call.alpha,
                blk.beta,
            )
        };
    }
}

/// `C[h x w] = alpha T + beta C` from the `nr`-wide edge buffer `t`.
///
/// # Safety
/// The `h x w` block at `c` (row stride `ldc`) is writable.
unsafe fn merge_edge<T: Float>(
    t: &[T],
    nr: usize,
    c: *mut T,
    ldc: usize,
    hw: (usize, usize),
    alpha: T,
    beta: T,
) {
    for (i, trow) in t.chunks_exact(nr).take(hw.0).enumerate() {
        // SAFETY: row i of the block is w writable elements.
        let crow = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), hw.1) };
        for (cv, &tv) in crow.iter_mut().zip(trow) {
            *cv = if beta == T::ZERO {
                alpha * tv
            } else {
                alpha * tv + beta * *cv
            };
        }
    }
}

/// Packs rows `i0..i0+rows`, columns `p0..p0+kb` of `A` into `mr`-row
/// panels (`kb x mr` each, column by column), zero-padding the last.
///
/// # Safety
/// That block of `A` is readable; `dst` holds `ceil(rows/mr) mr kb` elements.
unsafe fn pack_a<T: Float>(
    a: MatRef<T>,
    (i0, rows): (usize, usize),
    (p0, kb): (usize, usize),
    mr: usize,
    dst: &mut [T],
    par: bool,
) {
    let job = |(q, panel): (usize, &mut [T])| {
        let r0 = q * mr;
        let h = mr.min(rows - r0);
        // SAFETY: panel q covers rows i0+r0..i0+r0+h of the readable block.
        unsafe { pack_a_panel(a, i0 + r0, h, p0, kb, mr, panel) };
    };
    if par && dst.len() >= threads::PAR_THRESHOLD {
        dst.par_chunks_mut(mr * kb).enumerate().for_each(job);
    } else {
        dst.chunks_mut(mr * kb).enumerate().for_each(job);
    }
}

/// Packs one `h`-row panel of `A` (`h <= mr`).
///
/// # Safety
/// Rows `i0..i0+h`, columns `p0..p0+kb` of `A` are readable.
unsafe fn pack_a_panel<T: Float>(
    a: MatRef<T>,
    i0: usize,
    h: usize,
    p0: usize,
    kb: usize,
    mr: usize,
    panel: &mut [T],
) {
    if h < mr {
        for col in panel.chunks_exact_mut(mr) {
            col[h..].fill(T::ZERO);
        }
    }
    if a.cs == 1 {
        for ii in 0..h {
            // SAFETY: row i0+ii, columns p0..p0+kb are contiguous and readable.
            let src = unsafe { std::slice::from_raw_parts(a.ptr.add((i0 + ii) * a.rs + p0), kb) };
            for (col, &v) in panel.chunks_exact_mut(mr).zip(src) {
                col[ii] = v;
            }
        }
    } else {
        for (p, col) in panel.chunks_exact_mut(mr).enumerate() {
            for (ii, v) in col[..h].iter_mut().enumerate() {
                // SAFETY: (i0+ii, p0+p) is inside the readable block.
                *v = unsafe { *a.ptr.add((i0 + ii) * a.rs + (p0 + p) * a.cs) };
            }
        }
    }
}

/// Packs rows `p0..p0+kb`, columns `j0..j0+width` of `B` into `nr`-column
/// panels (`kb x nr` each, row by row), zero-padding the last.
///
/// # Safety
/// That block of `B` is readable; `dst` holds `ceil(width/nr) nr kb` elements.
unsafe fn pack_b<T: Float>(
    b: MatRef<T>,
    p0: usize,
    kb: usize,
    j0: usize,
    width: usize,
    nr: usize,
    dst: &mut [T],
) {
    for (q, panel) in dst.chunks_exact_mut(nr * kb).enumerate() {
        let c0 = j0 + q * nr;
        let w = nr.min(width - q * nr);
        if b.cs == 1 {
            for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                // SAFETY: row p0+p, columns c0..c0+w are contiguous and readable.
                let src = unsafe { std::slice::from_raw_parts(b.ptr.add((p0 + p) * b.rs + c0), w) };
                row[..w].copy_from_slice(src);
                row[w..].fill(T::ZERO);
            }
        } else {
            if w < nr {
                for row in panel.chunks_exact_mut(nr) {
                    row[w..].fill(T::ZERO);
                }
            }
            for jj in 0..w {
                // SAFETY: column c0+jj, rows p0.. start inside the block.
                let col = unsafe { b.ptr.add((c0 + jj) * b.cs + p0 * b.rs) };
                for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                    // SAFETY: (p0+p, c0+jj) is inside the readable block.
                    row[jj] = unsafe { *col.add(p * b.rs) };
                }
            }
        }
    }
}

/// A heap buffer whose slice starts on a 64-byte boundary.
struct AlignedVec<T> {
    buf: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Float> AlignedVec<T> {
    fn new(len: usize) -> Self {
        let pad = 64 / std::mem::size_of::<T>();
        let buf = vec![T::ZERO; len + pad];
        let off = buf.as_ptr().align_offset(64).min(pad);
        AlignedVec { buf, off, len }
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

thread_local! {
    /// Per-thread packing scratch, reused across calls (grows, never shrinks).
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte-aligned scratch slice of `len` elements with
/// unspecified (but initialised) contents: the thread's buffer, or a fresh
/// one if that is already in use further up the stack.
fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(aligned_slice(&mut buf, len)),
        Err(_) => f(aligned_slice(&mut Vec::new(), len)),
    })
}

/// `len` elements of `T` carved from `buf` at a 64-byte boundary.
fn aligned_slice<T: Float>(buf: &mut Vec<u64>, len: usize) -> &mut [T] {
    let words = (len * std::mem::size_of::<T>()).div_ceil(8) + 8;
    if buf.len() < words {
        buf.resize(words, 0);
    }
    let off = buf.as_ptr().align_offset(64).min(7);
    // SAFETY: `off + len size_of::<T>()/8 <= words <= buf.len()`; the
    // bytes are initialised; f32 and f64 (the only `Float`s) accept every
    // bit pattern and need at most the 8-byte alignment `u64` gives.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().add(off) as *mut T, len) }
}
