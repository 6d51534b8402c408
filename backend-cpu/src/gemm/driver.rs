//! Our packed GEMM: BLIS-style blocking around one micro-kernel.
//!
//! Loops, outermost first: slabs of up to [`MC_BLOCK`] rows of `A` and
//! [`A_PACK_BYTES`] of its columns, packed once (in parallel) into
//! `kc`-deep blocks of `mr`-row panels shared by all threads; then a grid of
//! work units (chunks of columns of at most `nc`, split further along rows
//! when there are fewer column chunks than threads) runs on the pool. For
//! each `kc` block of the slab (the first block of `A` applies the caller's
//! `beta`, later ones accumulate) a unit packs its `kc x nc` block of `B`
//! (sized for L2) into thread-local scratch and sweeps `mr`-row panels of
//! `A` (one in L1) against its `nr`-column panels of `B`. Edge tiles go
//! through a small buffer so kernels only ever see full tiles.

use std::any::TypeId;
use std::cell::RefCell;

use rayon::prelude::*;

use super::kernels::{GemmKernel, MAX_TILE};
use super::{GemmCall, MatRef};
use crate::element::Float;
use crate::{isa, threads, transpose};

/// Rows of `A` packed at once.
const MC_BLOCK: usize = 2048;

/// Bytes of `A` packed at once when threaded: a slab of up to [`MC_BLOCK`]
/// rows and as many `kc` blocks as fit, so the threads meet twice per slab
/// rather than twice per `kc` block.
const A_PACK_BYTES: usize = 8 << 20;

/// Elements of packed `A` from which the threads share its packing (its
/// lines then also start in the cache of the thread that packed them).
const A_PAR_MIN: usize = 16 << 10;

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
    let narrow = kern.narrow.unwrap_or(kern);
    if super::rows::serves(narrow, call) {
        // SAFETY: forwarded; the narrow kernel needs the same tier.
        return unsafe { super::rows::rows_gemm(narrow, call, nthreads) };
    }
    let kc = split_depth(kern.kc, call.k);
    let kern = &GemmKernel {
        kc,
        nc: block_columns(
            kern.nr,
            kern.nc,
            kc * std::mem::size_of::<T>(),
            l2_bytes() / 2,
        ),
        ..*kern
    };
    let plan = Plan::new(kern.nr, kern.nc, call.n, nthreads);
    let mb_max = call.m.min(MC_BLOCK).div_ceil(kern.mr) * kern.mr;
    // Depth of one slab: one kc block on one thread (its A stays in
    // L2), else as many whole blocks as the budget allows.
    let budget = A_PACK_BYTES / std::mem::size_of::<T>() / mb_max;
    let depth = if nthreads > 1 {
        (budget / kern.kc).max(1) * kern.kc
    } else {
        kern.kc
    };
    let len = mb_max * depth.min(call.k.div_ceil(kern.kc) * kern.kc);
    with_call_scratch::<T, _>(len, |apack| {
        for i0 in (0..call.m).step_by(MC_BLOCK) {
            let mb = MC_BLOCK.min(call.m - i0);
            for s0 in (0..call.k).step_by(depth) {
                let kd = depth.min(call.k - s0);
                let panels = mb.div_ceil(kern.mr);
                let a = &mut apack[..panels * kern.mr * kd.div_ceil(kern.kc) * kern.kc];
                // SAFETY: rows i0..i0+mb and columns s0..s0+kd lie inside A.
                unsafe { pack_slab(kern, call.a, (i0, mb), (s0, kd), a, nthreads > 1) };
                let slab = Slab {
                    i0,
                    mb,
                    s0,
                    kd,
                    apack: a,
                };
                // SAFETY: forwarded from the caller.
                unsafe { run_slab(kern, call, &slab, &plan) };
            }
        }
    });
}

/// The depth of each packed block: `k` split into as few blocks of at most
/// `max` (plus rounding) as possible, of equal depth rounded up to a multiple
/// of 8 (so panels stay 32-byte aligned), rather than full blocks and a thin
/// remainder: every block costs a pass over `C`, and a thin one does little
/// work for it (25088x576x64 at AVX2 ran at 0.67x OpenBLAS with 256+256+64,
/// 1.06x with one block of 576).
pub(super) fn split_depth(max: usize, k: usize) -> usize {
    let blocks = k.div_ceil(max.max(1)).max(1);
    k.div_ceil(blocks).next_multiple_of(8)
}

/// Columns of one packed block of `B` whose columns take `col_bytes`
/// (`kc` elements): at most `max`, a multiple of `nr`, and few enough that
/// the block fits `budget` (half of L2), where it must stay while every `A`
/// panel sweeps it. With the deeper blocks of [`split_depth`] a fixed 512
/// columns would be 1.4 MB of f32 at `kc = 688`: more than most L2s (on
/// this project's 1 MiB-L2 machine the change measured neutral).
fn block_columns(nr: usize, max: usize, col_bytes: usize, budget: usize) -> usize {
    let cols = budget / col_bytes.max(1) / nr * nr;
    cols.clamp(nr, max.max(nr))
}

/// CPU 0's L2 size, read once (256 KiB where sysfs does not say).
fn l2_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| crate::elementwise::cache_of_level(2).unwrap_or(256 << 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_splits_evenly_and_blocks_fit_the_budget() {
        assert_eq!(split_depth(768, 576), 576);
        assert_eq!(split_depth(768, 1024), 512);
        assert_eq!(split_depth(768, 2048), 688);
        assert_eq!(split_depth(256, 1), 8);
        assert_eq!(block_columns(16, 512, 256 * 4, 512 << 10), 512);
        assert_eq!(block_columns(16, 512, 688 * 4, 512 << 10), 176);
        assert_eq!(block_columns(16, 512, 768 * 4, 1 << 10), 16);
        assert_eq!(block_columns(8, 256, 1, usize::MAX), 256);
    }
}

/// Runs the work units of one packed slab of `A`, on the pool when the plan
/// has several threads.
///
/// # Safety
/// As [`packed_gemm`].
unsafe fn run_slab<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    slab: &Slab<'_, T>,
    plan: &Plan,
) {
    let panels = slab.mb.div_ceil(kern.mr);
    let m_chunks = plan.m_chunks(panels);
    let per_chunk = panels.div_ceil(m_chunks) * kern.mr;
    let unit = |u: usize| {
        let (mi, nj) = (u / plan.n_chunks, u % plan.n_chunks);
        let rows = (mi * per_chunk, ((mi + 1) * per_chunk).min(slab.mb));
        let cols = (nj * plan.nc, ((nj + 1) * plan.nc).min(call.n));
        if rows.0 < rows.1 && cols.0 < cols.1 {
            // SAFETY: units cover disjoint tiles of C; the rest is
            // forwarded from the caller.
            unsafe { run_unit(kern, call, slab, rows, cols) };
        }
    };
    let units = m_chunks * plan.n_chunks;
    if plan.threads > 1 {
        threads::for_each_index(units, unit);
    } else {
        (0..units).for_each(unit);
    }
}

/// Rows `i0..i0+mb` of `A`, columns `s0..s0+kd`, packed as consecutive
/// `kc`-deep blocks of `mr`-row panels; every panel takes `mr kc` elements,
/// of which a shorter last block uses `mr kb`.
struct Slab<'a, T> {
    i0: usize,
    mb: usize,
    s0: usize,
    kd: usize,
    apack: &'a [T],
}

/// For each `kc` block of a unit's slab: packs columns `cols` of `B` and
/// computes rows `rows` (relative to the slab) of `C` against them.
///
/// # Safety
/// As [`packed_gemm`]; no other thread writes these tiles of `C`.
unsafe fn run_unit<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    slab: &Slab<'_, T>,
    rows: (usize, usize),
    cols: (usize, usize),
) {
    let (mr, nr, kc) = (kern.mr, kern.nr, kern.kc);
    let width = cols.1 - cols.0;
    let bpanels = width.div_ceil(nr);
    let panels = slab.mb.div_ceil(mr);
    with_scratch::<T, _>(bpanels * nr * kc, |scratch| {
        for (blk, p0) in (slab.s0..slab.s0 + slab.kd).step_by(kc).enumerate() {
            let kb = kc.min(slab.s0 + slab.kd - p0);
            let bpack = &mut scratch[..bpanels * nr * kb];
            // SAFETY: rows p0..p0+kb and columns `cols` lie inside B.
            unsafe { pack_b(call.b, p0, kb, cols.0, width, nr, bpack) };
            let beta = if p0 == 0 { call.beta } else { T::ONE };
            let tiles = (rows.1 - rows.0).div_ceil(mr) * bpanels;
            let mut warm = Warm::next_block(call, slab, (p0, kb), cols, tiles);
            for ir in (rows.0..rows.1).step_by(mr) {
                let apanel = &slab.apack[(blk * panels + ir / mr) * mr * kc..][..mr * kb];
                let h = mr.min(slab.mb - ir);
                for (q, bpanel) in bpack.chunks_exact(nr * kb).enumerate() {
                    let at = (slab.i0 + ir, cols.0 + q * nr);
                    // SAFETY: the tile's corner is inside C, per the unit.
                    unsafe { tile(kern, call, (apanel, bpanel), at, h, beta) };
                    warm.step();
                }
            }
        }
    });
}

/// Hints the next block of a row-major `B` (the next depth block of these
/// columns, else the same depth of the next columns) into L2 while this
/// block's tiles compute, a few cache lines per tile, so that its packing
/// finds it there instead of waiting on memory for `kb` rows at once.
/// For the 7x7 stem's backward-data GEMM (147 x 1680 x 64 per band, B the
/// gradient's 64 channel rows) on AVX2, 1 thread, `perf` put `pack_b` at
/// 14.6% of the time before and 7.5% after.
struct Warm<T> {
    /// Row `p` of the block starts at `base + p rs`.
    base: *const T,
    rs: usize,
    /// Rows of the block, and cache lines per row (0: nothing to hint).
    rows: usize,
    per_row: usize,
    /// Lines hinted per tile.
    per_tile: usize,
    /// The next line to hint: row `p`, line `l`.
    p: usize,
    l: usize,
}

impl<T> Warm<T> {
    /// The block after rows `p0..p0+kb`, columns `cols` of `call.b`, hinted
    /// over `tiles` steps; nothing unless `B` is row-major.
    fn next_block(
        call: &GemmCall<T>,
        slab: &Slab<'_, T>,
        (p0, kb): (usize, usize),
        cols: (usize, usize),
        tiles: usize,
    ) -> Self {
        let end = slab.s0 + slab.kd;
        let (q0, rows, c0, width) = if p0 + kb < end {
            (p0 + kb, kb.min(end - p0 - kb), cols.0, cols.1 - cols.0)
        } else {
            (
                slab.s0,
                kb.min(slab.kd),
                cols.1,
                (cols.1 - cols.0).min(call.n - cols.1),
            )
        };
        let line = (64 / std::mem::size_of::<T>()).max(1);
        // Only blocks small beside L2 (the conv GEMMs' `kb` of 64): a
        // square GEMM's blocks take half of it, and the next would evict
        // the one in use.
        let small = rows * width * std::mem::size_of::<T>() <= l2_bytes() / 4;
        let per_row = if call.b.cs == 1 && small {
            width.div_ceil(line)
        } else {
            0
        };
        Warm {
            base: call.b.ptr.wrapping_add(q0 * call.b.rs + c0),
            rs: call.b.rs,
            rows: if per_row == 0 { 0 } else { rows },
            per_row,
            per_tile: (per_row * rows).div_ceil(tiles.max(1)),
            p: 0,
            l: 0,
        }
    }

    /// Hints the next few lines (a cursor, no division on the tile loop).
    #[inline]
    fn step(&mut self) {
        let line = (64 / std::mem::size_of::<T>()).max(1);
        for _ in 0..self.per_tile {
            if self.p >= self.rows {
                return;
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE is part of the x86-64 baseline; a prefetch never
            // faults, whatever the address.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                    self.base
                        .wrapping_add(self.p * self.rs + self.l * line)
                        .cast(),
                )
            };
            self.l += 1;
            if self.l == self.per_row {
                (self.p, self.l) = (self.p + 1, 0);
            }
        }
    }
}

/// Computes the tile at row `i`, column `j` of `C` (`h` rows of it belong
/// to this slab) from its packed panels, through an edge buffer when it
/// sticks out of `C` or the slab.
///
/// # Safety
/// As [`run_unit`]; `(i, j)` lies inside `C`, and so do `h` rows from `i`.
pub(super) unsafe fn tile<T: Float>(
    kern: &GemmKernel<T>,
    call: &GemmCall<T>,
    (apanel, bpanel): (&[T], &[T]),
    (i, j): (usize, usize),
    h: usize,
    beta: T,
) {
    let (mr, nr) = (kern.mr, kern.nr);
    let kb = apanel.len() / mr;
    let w = nr.min(call.n - j);
    // SAFETY: (i, j) is inside C's m x n extent.
    let c = unsafe { call.c.ptr.add(i * call.c.rs + j) };
    let (a, b) = (apanel.as_ptr(), bpanel.as_ptr());
    if h == mr && w == nr {
        // SAFETY: a full tile inside C; panels of kb mr and kb nr elements.
        unsafe { (kern.run)(kb, a, b, c, call.c.rs, call.alpha, beta) };
    } else {
        let mut edge = [T::ZERO; MAX_TILE];
        // SAFETY: `edge` holds MAX_TILE >= mr nr elements.
        unsafe { (kern.run)(kb, a, b, edge.as_mut_ptr(), nr, T::ONE, T::ZERO) };
        // SAFETY: the h x w corner at c lies inside C.
        unsafe { merge_edge(&edge[..mr * nr], nr, c, call.c.rs, (h, w), call.alpha, beta) };
    }
}

/// `C[h x w] = alpha T + beta C` from the `nr`-wide edge buffer `t`.
///
/// # Safety
/// The `h x w` block at `c` (row stride `ldc`) is writable.
pub(super) unsafe fn merge_edge<T: Float>(
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

/// Packs rows `i0..i0+rows`, columns `s0..s0+kd` of `A` into `dst` as
/// [`Slab`] lays it out, zero-padding the last panel of each block.
///
/// # Safety
/// That block of `A` is readable; `dst` holds `ceil(rows/mr) mr ceil(kd/kc) kc`
/// elements.
unsafe fn pack_slab<T: Float>(
    kern: &GemmKernel<T>,
    a: MatRef<T>,
    (i0, rows): (usize, usize),
    (s0, kd): (usize, usize),
    dst: &mut [T],
    par: bool,
) {
    let (mr, kc) = (kern.mr, kern.kc);
    let panels = rows.div_ceil(mr);
    let job = |(u, panel): (usize, &mut [T])| {
        let (blk, q) = (u / panels, u % panels);
        let p0 = s0 + blk * kc;
        let kb = kc.min(s0 + kd - p0);
        let r0 = q * mr;
        // SAFETY: panel q of block blk covers rows i0+r0.., columns p0..p0+kb
        // of the readable block.
        unsafe {
            pack_a_panel(
                a,
                i0 + r0,
                mr.min(rows - r0),
                p0,
                kb,
                mr,
                &mut panel[..mr * kb],
            )
        };
    };
    if par && dst.len() >= threads::PAR_THRESHOLD {
        // Large enough that handing the packing to the pool costs little
        // (the caller taking part, as below, made 2048^3 on 2 threads
        // bimodal: 140-150 or 195-200 GFLOP/s by run, against 191-203).
        threads::install(|| dst.par_chunks_mut(mr * kc).enumerate().for_each(job));
    } else if par && dst.len() >= A_PAR_MIN {
        // The caller and a worker, woken here rather than for the tiles
        // (256^3 on 2 threads: the serial packing took 21 of 210 us).
        let per = dst
            .len()
            .div_ceil(mr * kc)
            .div_ceil(2 * threads::num_threads());
        threads::for_each_chunk_mut(dst, per * mr * kc, |u, run| {
            for (q, panel) in run.chunks_mut(mr * kc).enumerate() {
                job((u * per + q, panel));
            }
        });
    } else {
        dst.chunks_mut(mr * kc).enumerate().for_each(job);
    }
}

/// Packs one `h`-row panel of `A` (`h <= mr`).
///
/// # Safety
/// Rows `i0..i0+h`, columns `p0..p0+kb` of `A` are readable.
pub(super) unsafe fn pack_a_panel<T: Float>(
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
        if let Some((src, dst)) = f32_pair(a.ptr, panel) {
            // SAFETY: rows i0..i0+h of kb readable elements, rs apart, into
            // kb columns of mr (the panel holds kb mr, h <= mr).
            unsafe { transpose::f32()(src.add(i0 * a.rs + p0), a.rs, dst, mr, (h, kb), None) };
            return;
        }
        for ii in 0..h {
            // SAFETY: row i0+ii, columns p0..p0+kb are contiguous and readable.
            let src = unsafe { std::slice::from_raw_parts(a.ptr.add((i0 + ii) * a.rs + p0), kb) };
            for (col, &v) in panel.chunks_exact_mut(mr).zip(src) {
                col[ii] = v;
            }
        }
    } else if a.rs == 1 {
        for (p, col) in panel.chunks_exact_mut(mr).enumerate() {
            // SAFETY: column p0+p, rows i0..i0+h are contiguous and readable.
            let src = unsafe { std::slice::from_raw_parts(a.ptr.add(i0 + (p0 + p) * a.cs), h) };
            col[..h].copy_from_slice(src);
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
pub(super) unsafe fn pack_b<T: Float>(
    b: MatRef<T>,
    p0: usize,
    kb: usize,
    j0: usize,
    width: usize,
    nr: usize,
    dst: &mut [T],
) {
    if b.cs == 1 {
        // Row by row of B, each read from start to end: one stream at a
        // time for the prefetchers, where panel by panel reads `kb` rows
        // `nr` elements at a time.
        let line = 64 / std::mem::size_of::<T>();
        for p in 0..kb {
            // Two rows ahead, one hint per cache line (never a fault).
            #[cfg(target_arch = "x86_64")]
            for j in (0..width).step_by(line) {
                // SAFETY: SSE is part of the x86-64 baseline.
                unsafe {
                    super::kernels::prefetch(b.ptr.wrapping_add((p0 + p + 2) * b.rs + j0 + j))
                };
            }
            // SAFETY: row p0+p, columns j0..j0+width are contiguous and readable.
            let src = unsafe { std::slice::from_raw_parts(b.ptr.add((p0 + p) * b.rs + j0), width) };
            for (q, panel) in dst.chunks_exact_mut(nr * kb).enumerate() {
                let row = &mut panel[p * nr..][..nr];
                let part = &src[q * nr..width.min((q + 1) * nr)];
                copy_row(part, row);
            }
        }
        return;
    }
    for (q, panel) in dst.chunks_exact_mut(nr * kb).enumerate() {
        let c0 = j0 + q * nr;
        let w = nr.min(width - q * nr);
        if w < nr {
            for row in panel.chunks_exact_mut(nr) {
                row[w..].fill(T::ZERO);
            }
        }
        if b.rs == 1 {
            if let Some((src, dst)) = f32_pair(b.ptr, panel) {
                // SAFETY: columns c0..c0+w of kb contiguous readable
                // rows, cs apart, into kb rows of nr (w <= nr).
                unsafe { transpose::f32()(src.add(c0 * b.cs + p0), b.cs, dst, nr, (w, kb), None) };
                continue;
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

/// `dst = src` followed by zeros, with the copy inlined for the panel
/// widths in use (a `memcpy` call per 64 bytes cost more than the copy).
#[inline(always)]
fn copy_row<T: Float>(src: &[T], dst: &mut [T]) {
    fn fixed<T: Copy, const N: usize>(src: &[T], dst: &mut [T]) {
        let s: &[T; N] = src.try_into().expect("N elements");
        let d: &mut [T; N] = dst.try_into().expect("N elements");
        *d = *s;
    }
    match (src.len(), dst.len()) {
        (4, 4) => fixed::<T, 4>(src, dst),
        (8, 8) => fixed::<T, 8>(src, dst),
        (16, 16) => fixed::<T, 16>(src, dst),
        (32, 32) => fixed::<T, 32>(src, dst),
        (w, _) => {
            dst[..w].copy_from_slice(src);
            dst[w..].fill(T::ZERO);
        }
    }
}

/// `src` and `dst` as f32 pointers when `T` is f32 (the packing of
/// transposed f32 operands runs through the tier's transpose).
fn f32_pair<T: Float>(src: *const T, dst: &mut [T]) -> Option<(*const f32, *mut f32)> {
    (TypeId::of::<T>() == TypeId::of::<f32>()).then(|| (src.cast(), dst.as_mut_ptr().cast()))
}

thread_local! {
    /// Per-thread packing scratch of `B`, reused across calls (grows, never
    /// shrinks).
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// The calling thread's buffer for one GEMM: its packed slab of `A`
    /// (at most [`A_PACK_BYTES`]), or the packed `B` of `rows.rs`; kept
    /// like [`SCRATCH`]: a fresh 256 KiB buffer per call took 28 us of a
    /// 2-thread 256^3 GEMM of 210-260 us (3 us on one thread).
    static CALL_SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte-aligned scratch slice of `len` elements with
/// unspecified (but initialised) contents: the thread's buffer, or a fresh
/// one if that is already in use further up the stack.
fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    with_local(&SCRATCH, len, f)
}

/// [`with_scratch`] on the calling thread's [`CALL_SCRATCH`].
pub(super) fn with_call_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    with_local(&CALL_SCRATCH, len, f)
}

/// [`with_scratch`] on the thread's buffer `key`.
fn with_local<T: Float, R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<u64>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(aligned_slice(&mut buf, len)),
        Err(_) => f(aligned_slice(&mut Vec::new(), len)),
    })
}

thread_local! {
    /// Per-thread scratch of the callers around a GEMM (the pixel-major
    /// convolution's `im2col` matrix and product), apart from [`SCRATCH`] so
    /// the GEMM inside still finds its own.
    static PAIR: RefCell<(Vec<u64>, Vec<u64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` on two 64-byte-aligned scratch slices of `a` and `b` elements
/// with unspecified (but initialised) contents: the thread's pair of
/// buffers, kept between calls, or fresh ones if those are in use further
/// up the stack.
pub(crate) fn with_scratch_pair<T: Float, R>(
    a: usize,
    b: usize,
    f: impl FnOnce(&mut [T], &mut [T]) -> R,
) -> R {
    PAIR.with(|cell| match cell.try_borrow_mut() {
        Ok(mut pair) => {
            let (x, y) = &mut *pair;
            f(aligned_slice(x, a), aligned_slice(y, b))
        }
        Err(_) => f(
            aligned_slice(&mut Vec::new(), a),
            aligned_slice(&mut Vec::new(), b),
        ),
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
