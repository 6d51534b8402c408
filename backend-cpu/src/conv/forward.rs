//! `conv2d` forward: per image and group, `y_g = w_g col + bias`.

use rayon::prelude::*;

use super::depthwise;
use super::geom::{plane_stride, Geom};
use super::im2col::{im2col, Image};
use super::COL_BYTES;
use crate::gemm::{gemm, GemmCall, GemmScalar, MatMut, MatRef, Threads, PAR_MIN_WORK};
use crate::strided::View;
use crate::threads;

/// Everything one image's forward pass reads and writes.
struct Fwd<'a, T> {
    x: Image<T>,
    /// Contiguous weights `[K, C/g R S]`.
    w: &'a [T],
    bias: Option<&'a [T]>,
    /// Contiguous output `[N, K, OH, OW]`.
    y: *mut T,
    g: &'a Geom,
}

// SAFETY: `y` is written one image per thread, disjointly; the rest is read.
unsafe impl<T: Sync> Sync for Fwd<'_, T> {}

/// Runs `conv2d` (geometry, bias shape and output layout checked).
///
/// # Safety
/// The views are live for the call; `y` is contiguous and aliases no input.
pub(super) unsafe fn forward<T: GemmScalar>(
    x: &View<T>,
    w: &View<T>,
    bias: Option<&View<T>>,
    y: &View<T>,
    g: &Geom,
) {
    // SAFETY: inputs are not written during the op.
    let (wc, bias) = unsafe { (w.contiguous(), bias.map(|b| b.to_vec())) };
    if g.is_depthwise() {
        // SAFETY: forwarded.
        unsafe { depthwise::forward(&Image::of(x), &wc, bias.as_deref(), y.ptr, g) };
        return;
    }
    let f = Fwd {
        x: Image::of(x),
        w: &wc,
        bias: bias.as_deref(),
        y: y.ptr,
        g,
    };
    let nt = threads::num_threads();
    let work = g.work();
    if nt > 1 && g.n >= nt && work >= PAR_MIN_WORK {
        threads::install(|| {
            (0..g.n).into_par_iter().for_each_init(Vec::new, |col, n| {
                // SAFETY: each image's output block is written by one task.
                unsafe { f.image(n, col, Threads::Single, COL_BYTES / nt) }
            })
        });
    } else {
        let mut col = Vec::new();
        for n in 0..g.n {
            // SAFETY: as above, one image at a time.
            unsafe { f.image(n, &mut col, Threads::Auto, COL_BYTES) };
        }
    }
}

impl<T: GemmScalar> Fwd<'_, T> {
    /// Fills the group's output block at `yg` with the bias and returns the
    /// GEMM's `beta` (1 with a bias, else 0: the block is not read).
    ///
    /// # Safety
    /// `yg` is the writable `[kg, OH OW]` block of group `grp`.
    unsafe fn fill_bias(&self, yg: *mut T, grp: usize) -> T {
        let g = self.g;
        let Some(b) = self.bias else { return T::ZERO };
        let ohw = g.oh * g.ow;
        // SAFETY: per the caller.
        let block = unsafe { std::slice::from_raw_parts_mut(yg, g.kg * ohw) };
        for (row, &bv) in block.chunks_exact_mut(ohw).zip(&b[grp * g.kg..]) {
            row.fill(bv);
        }
        T::ONE
    }

    /// Computes image `n`, using `col` as `im2col` scratch of at most
    /// `budget` bytes.
    ///
    /// # Safety
    /// No other thread writes image `n` of `y`.
    unsafe fn image(&self, n: usize, col: &mut Vec<T>, threads: Threads, budget: usize) {
        let g = self.g;
        let (ohw, crs) = (g.oh * g.ow, g.crs());
        for grp in 0..g.groups {
            // SAFETY: image n, channel block grp of the contiguous output.
            let yg = unsafe { self.y.add((n * g.k + grp * g.kg) * ohw) };
            // SAFETY: per the caller, image n of y is ours.
            let beta = unsafe { self.fill_bias(yg, grp) };
            let mut call = GemmCall {
                m: g.kg,
                n: ohw,
                k: crs,
                a: MatRef {
                    ptr: self.w[grp * g.kg * crs..].as_ptr(),
                    rs: crs,
                    cs: 1,
                },
                b: MatRef {
                    ptr: col.as_ptr(),
                    rs: ohw,
                    cs: 1,
                },
                c: MatMut { ptr: yg, rs: ohw },
                alpha: T::ONE,
                beta,
            };
            let x = &self.x;
            if let (true, Some(ps)) = (g.is_pointwise(), plane_stride(g.h, g.w, x.st[2], x.st[3])) {
                call.b = MatRef {
                    // SAFETY: channel grp cg of image n starts inside x.
                    ptr: unsafe { x.row(n, grp * g.cg, 0) },
                    rs: x.st[1],
                    cs: ps,
                };
                // SAFETY: the planes of the group are [cg x ohw] at those strides.
                unsafe { gemm(&call, threads) };
                continue;
            }
            let rows = g.chunk_rows(budget, std::mem::size_of::<T>());
            col.resize(col.len().max(crs * rows * g.ow), T::ZERO);
            for oh0 in (0..g.oh).step_by(rows) {
                let oh1 = (oh0 + rows).min(g.oh);
                let ncols = (oh1 - oh0) * g.ow;
                // SAFETY: x views the input image; col is large enough.
                unsafe { im2col(x, g, n, grp * g.cg, (oh0, oh1), &mut col[..crs * ncols]) };
                call.n = ncols;
                call.b = MatRef {
                    ptr: col.as_ptr(),
                    rs: ncols,
                    cs: 1,
                };
                // SAFETY: output rows oh0..oh1 of the group's block.
                call.c.ptr = unsafe { yg.add(oh0 * g.ow) };
                // SAFETY: A is [kg x crs], B [crs x ncols], C inside image n.
                unsafe { gemm(&call, threads) };
            }
        }
    }
}
