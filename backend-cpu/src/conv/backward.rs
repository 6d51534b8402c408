//! `conv2d` gradients: backward-data (`col = w_g^T dy_g`, then `col2im`)
//! and backward-filter (`dw_g += dy_g col^T` over the batch).

use rayon::prelude::*;

use super::depthwise;
use super::geom::{plane_stride, Geom};
use super::im2col::{col2im, im2col, Image};
use super::COL_BYTES;
use crate::gemm::{gemm, GemmCall, GemmScalar, MatMut, MatRef, Threads, PAR_MIN_WORK};
use crate::strided::View;
use crate::threads;

/// Whether to split the batch over threads, and the per-task `im2col` budget.
fn batch_split(g: &Geom) -> Option<(usize, usize)> {
    let nt = threads::num_threads();
    let work = g.work();
    (nt > 1 && g.n >= 2 && work >= PAR_MIN_WORK).then_some((nt, COL_BYTES / nt))
}

/// Runs `conv2d_backward_data`: inputs `dy`, `w`; output `dx`.
///
/// # Safety
/// The views are live for the call; `dx` is contiguous and aliases no input.
pub(super) unsafe fn backward_data<T: GemmScalar>(
    dy: &View<T>,
    w: &View<T>,
    dx: &View<T>,
    g: &Geom,
) {
    let dxi = Image::dense(dx.ptr, g.c, g.h, g.w);
    // SAFETY: dx is contiguous with n c h w elements, exclusively ours.
    unsafe { std::slice::from_raw_parts_mut(dx.ptr, g.n * g.c * g.h * g.w) }.fill(T::ZERO);
    // SAFETY: inputs are not written during the op.
    let wc = unsafe { w.contiguous() };
    if g.is_depthwise() {
        // SAFETY: forwarded.
        unsafe { depthwise::backward_data(&Image::of(dy), &wc, &dxi, g) };
        return;
    }
    let mut keep = Vec::new();
    // SAFETY: dy is an input, not written during the op.
    let b = unsafe { Bwd::new(dy, &mut keep, &wc, g) };
    match batch_split(g) {
        Some((nt, budget)) if g.n >= nt => threads::install(|| {
            (0..g.n).into_par_iter().for_each_init(Vec::new, |col, n| {
                // SAFETY: image n of dx is written by this task only.
                unsafe { b.data_image(n, &dxi, col, Threads::Single, budget) }
            })
        }),
        _ => {
            let mut col = Vec::new();
            for n in 0..g.n {
                // SAFETY: one image at a time.
                unsafe { b.data_image(n, &dxi, &mut col, Threads::Auto, COL_BYTES) };
            }
        }
    }
}

/// Runs `conv2d_backward_filter`: inputs `x`, `dy`; output `dw`.
///
/// # Safety
/// The views are live for the call; `dw` is contiguous and aliases no input.
pub(super) unsafe fn backward_filter<T: GemmScalar>(
    x: &View<T>,
    dy: &View<T>,
    dw: &View<T>,
    g: &Geom,
) {
    let len = g.k * g.crs();
    // SAFETY: dw is contiguous with k crs elements, exclusively ours.
    let dw = unsafe { std::slice::from_raw_parts_mut(dw.ptr, len) };
    if g.is_depthwise() {
        // SAFETY: forwarded.
        unsafe { depthwise::backward_filter(&Image::of(x), &Image::of(dy), dw, g) };
        return;
    }
    let mut keep = Vec::new();
    // SAFETY: dy is an input, not written during the op.
    let b = unsafe { Bwd::new(dy, &mut keep, &[], g) };
    let x = Image::of(x);
    match batch_split(g) {
        Some((nt, budget)) => {
            let per = g.n.div_ceil(nt);
            let mut parts: Vec<Vec<T>> =
                (0..g.n.div_ceil(per)).map(|_| vec![T::ZERO; len]).collect();
            threads::install(|| {
                parts.par_iter_mut().enumerate().for_each(|(i, part)| {
                    let images = (i * per, ((i + 1) * per).min(g.n));
                    // SAFETY: each task writes its own partial sum.
                    unsafe { b.filter_images(&x, images, part, Threads::Single, budget) }
                })
            });
            for (j, out) in dw.iter_mut().enumerate() {
                *out = parts.iter().fold(T::ZERO, |s, p| s + p[j]);
            }
        }
        // SAFETY: dw is exclusively ours.
        None => unsafe { b.filter_images(&x, (0, g.n), dw, Threads::Auto, COL_BYTES) },
    }
}

/// What both gradients read.
struct Bwd<'a, T> {
    /// `dy`, with uniformly strided planes.
    dy: Image<T>,
    /// Stride between consecutive pixels of a `dy` plane.
    dy_ps: usize,
    /// Contiguous weights `[K, C/g R S]` (backward-data only).
    w: &'a [T],
    g: &'a Geom,
}

// SAFETY: only read, from any thread.
unsafe impl<T: Sync> Sync for Bwd<'_, T> {}

impl<'a, T: GemmScalar> Bwd<'a, T> {
    /// Views `dy`, through a dense copy in `keep` when its planes are not
    /// uniformly strided.
    ///
    /// # Safety
    /// `dy` is live and not written during the op.
    unsafe fn new(dy: &View<T>, keep: &'a mut Vec<T>, w: &'a [T], g: &'a Geom) -> Self {
        let img = Image::of(dy);
        let (dy, dy_ps) = match plane_stride(g.oh, g.ow, img.st[2], img.st[3]) {
            Some(ps) => (img, ps),
            None => {
                // SAFETY: per the caller.
                *keep = unsafe { dy.to_vec() };
                (Image::dense(keep.as_mut_ptr(), g.k, g.oh, g.ow), 1)
            }
        };
        Bwd { dy, dy_ps, w, g }
    }

    /// `dy_g` of image `n` from output row `oh0` on, as a `[kg x pixels]` matrix.
    ///
    /// # Safety
    /// `n < N`, `grp < groups`, `oh0 < OH`.
    unsafe fn dy_block(&self, n: usize, grp: usize, oh0: usize) -> MatRef<T> {
        MatRef {
            // SAFETY: per the caller.
            ptr: unsafe { self.dy.row(n, grp * self.g.kg, oh0) },
            rs: self.dy.st[1],
            cs: self.dy_ps,
        }
    }

    /// Backward-data of image `n` into `dx` (zeroed beforehand).
    ///
    /// # Safety
    /// `n < N`; no other thread writes image `n` of `dx`.
    unsafe fn data_image(
        &self,
        n: usize,
        dx: &Image<T>,
        col: &mut Vec<T>,
        threads: Threads,
        budget: usize,
    ) {
        let g = self.g;
        let (ohw, crs) = (g.oh * g.ow, g.crs());
        let rows = g.chunk_rows(budget, std::mem::size_of::<T>());
        for grp in 0..g.groups {
            let mut call = GemmCall {
                m: crs,
                n: ohw,
                k: g.kg,
                a: MatRef {
                    ptr: self.w[grp * g.kg * crs..].as_ptr(),
                    rs: 1,
                    cs: crs,
                },
                // SAFETY: in range.
                b: unsafe { self.dy_block(n, grp, 0) },
                c: MatMut {
                    // SAFETY: channel block grp of image n of dx.
                    ptr: unsafe { dx.row(n, grp * g.cg, 0) },
                    rs: g.h * g.w,
                },
                alpha: T::ONE,
                beta: T::ZERO,
            };
            if g.is_pointwise() {
                // SAFETY: dx_g is [cg x hw] with hw == ohw here.
                unsafe { gemm(&call, threads) };
                continue;
            }
            col.resize(col.len().max(crs * rows * g.ow), T::ZERO);
            for oh0 in (0..g.oh).step_by(rows) {
                let oh1 = (oh0 + rows).min(g.oh);
                call.n = (oh1 - oh0) * g.ow;
                // SAFETY: in range.
                call.b = unsafe { self.dy_block(n, grp, oh0) };
                call.c = MatMut {
                    ptr: col.as_mut_ptr(),
                    rs: call.n,
                };
                // SAFETY: C is the col buffer, crs x ncols.
                unsafe { gemm(&call, threads) };
                // SAFETY: image n of dx is ours.
                unsafe { col2im(dx, g, n, grp * g.cg, (oh0, oh1), &col[..crs * call.n]) };
            }
        }
    }

    /// Backward-filter over images `images.0..images.1` into `out`
    /// (`[K, C/g R S]`, overwritten).
    ///
    /// # Safety
    /// `x` views the input; the images are in range.
    unsafe fn filter_images(
        &self,
        x: &Image<T>,
        images: (usize, usize),
        out: &mut [T],
        threads: Threads,
        budget: usize,
    ) {
        let g = self.g;
        if images.0 >= images.1 {
            out.fill(T::ZERO);
            return;
        }
        let mut col = Vec::new();
        let rows = g.chunk_rows(budget, std::mem::size_of::<T>());
        for n in images.0..images.1 {
            for grp in 0..g.groups {
                let outg = &mut out[grp * g.kg * g.crs()..][..g.kg * g.crs()];
                let first = n == images.0;
                // SAFETY: in range; forwarded.
                unsafe { self.filter_group(x, (n, grp), first, outg, &mut col, threads, rows) };
            }
        }
    }

    /// `dw_g (+)= dy_g col^T` for image `n`, group `grp` (overwriting when
    /// `first`), in chunks of `rows` output rows.
    ///
    /// # Safety
    /// As [`Self::filter_images`].
    #[allow(
        clippy::too_many_arguments,
        reason = "one GEMM step with its scratch and policy"
    )]
    unsafe fn filter_group(
        &self,
        x: &Image<T>,
        (n, grp): (usize, usize),
        first: bool,
        outg: &mut [T],
        col: &mut Vec<T>,
        threads: Threads,
        rows: usize,
    ) {
        let g = self.g;
        let crs = g.crs();
        let mut call = GemmCall {
            m: g.kg,
            n: crs,
            k: g.oh * g.ow,
            // SAFETY: in range.
            a: unsafe { self.dy_block(n, grp, 0) },
            b: MatRef {
                ptr: col.as_ptr(),
                rs: 1,
                cs: 0,
            },
            c: MatMut {
                ptr: outg.as_mut_ptr(),
                rs: crs,
            },
            alpha: T::ONE,
            beta: if first { T::ZERO } else { T::ONE },
        };
        if let (true, Some(ps)) = (g.is_pointwise(), plane_stride(g.h, g.w, x.st[2], x.st[3])) {
            call.b = MatRef {
                // SAFETY: channel block grp of image n of x.
                ptr: unsafe { x.row(n, grp * g.cg, 0) },
                rs: ps,
                cs: x.st[1],
            };
            // SAFETY: x_g^T is [hw x cg] at those strides, hw == ohw.
            unsafe { gemm(&call, threads) };
            return;
        }
        col.resize(col.len().max(crs * rows * g.ow), T::ZERO);
        for oh0 in (0..g.oh).step_by(rows) {
            let oh1 = (oh0 + rows).min(g.oh);
            let ncols = (oh1 - oh0) * g.ow;
            // SAFETY: x views the input image; col is large enough.
            unsafe { im2col(x, g, n, grp * g.cg, (oh0, oh1), &mut col[..crs * ncols]) };
            call.k = ncols;
            // SAFETY: in range.
            call.a = unsafe { self.dy_block(n, grp, oh0) };
            call.b = MatRef {
                ptr: col.as_ptr(),
                rs: 1,
                cs: ncols,
            };
            // SAFETY: A [kg x ncols], B = col^T [ncols x crs], C = outg.
            unsafe { gemm(&call, threads) };
            call.beta = T::ONE;
        }
    }
}
