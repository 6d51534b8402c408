//! `conv2d` gradients: backward-data (`col = w_g^T dy_g`, then `col2im`)
//! and backward-filter (`dw_g += dy_g col^T` over the batch).

use rayon::prelude::*;

use super::backward_px;
use super::blocked::{self, as_f32, as_f32_mut};
use super::blocked_filter;
use super::depthwise;
use super::filter_px;
use super::forward::transpose_into;
use super::geom::Geom;
use super::im2col::{col2im, im2col, Image};
use super::COL_BYTES;
use crate::gemm::{
    gemm, uses_crate, with_scratch_pair, GemmCall, GemmScalar, MatMut, MatRef, Threads,
    PAR_MIN_WORK,
};
use crate::strided::View;
use crate::threads;

/// Whether to split the batch over threads, and over how many.
fn batch_split(g: &Geom) -> Option<usize> {
    let nt = threads::num_threads();
    let work = g.work();
    (nt > 1 && g.n >= 2 && work >= PAR_MIN_WORK).then_some(nt)
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
    // SAFETY: inputs are not written during the op.
    let wc = unsafe { w.contiguous() };
    if let Some((t, plan)) = transposed(g).and_then(|t| Some((t, blocked::plan::<T>(dy, &t)?))) {
        // SAFETY: a plan exists only for f32, so the buffers are f32; dx is
        // the contiguous output of `t`.
        unsafe {
            let wf = flipped(as_f32(&wc), g);
            blocked::forward(
                &plan,
                Image::of(dy).cast(),
                (&wf, None),
                dx.ptr.cast(),
                false,
                &t,
            );
        }
        return;
    }
    if backward_px::serves(g) {
        // SAFETY: forwarded; wc is the contiguous [K, C, R, S] filter.
        unsafe { backward_px::backward_data(dy, &wc, dx.ptr, g) };
        return;
    }
    let dxi = Image::dense(dx.ptr, g.c, g.h, g.w);
    // SAFETY: dx is contiguous with n c h w elements, exclusively ours.
    unsafe { std::slice::from_raw_parts_mut(dx.ptr, g.n * g.c * g.h * g.w) }.fill(T::ZERO);
    if g.is_depthwise() {
        // SAFETY: forwarded.
        unsafe { depthwise::backward_data(&Image::of(dy), &wc, &dxi, g) };
        return;
    }
    let mut keep = Vec::new();
    // SAFETY: dy is an input, not written during the op.
    let b = unsafe { Bwd::new(dy, &mut keep, &wc, g) };
    match batch_split(g) {
        Some(nt) if g.n >= nt => threads::install(|| {
            (0..g.n).into_par_iter().for_each(|n| {
                // SAFETY: image n of dx is written by this task only.
                unsafe { b.data_image(n, &dxi, Threads::Single) }
            })
        }),
        _ => {
            for n in 0..g.n {
                // SAFETY: one image at a time.
                unsafe { b.data_image(n, &dxi, Threads::Auto) };
            }
        }
    }
}

/// The geometry of backward-data as a forward convolution, for stride 1
/// and one group: `dx = conv(dy, w')` with `w'[c, k, r, s] = w[k, c, R-1-r,
/// S-1-s]`, the same dilation, and padding `dil (R - 1) - pad` (which must
/// not be negative).
fn transposed(g: &Geom) -> Option<Geom> {
    let pad = |a: usize, win: usize| (g.dil[a] * (win - 1)).checked_sub(g.pad[a]);
    if g.stride != [1, 1] || g.groups != 1 {
        return None;
    }
    Some(Geom {
        n: g.n,
        c: g.k,
        h: g.oh,
        w: g.ow,
        k: g.c,
        r: g.r,
        s: g.s,
        oh: g.h,
        ow: g.w,
        stride: [1, 1],
        pad: [pad(0, g.r)?, pad(1, g.s)?],
        dil: g.dil,
        groups: 1,
        cg: g.k,
        kg: g.c,
    })
}

/// `w'` of [`transposed`]: `[C, K, R, S]`, taps reversed.
fn flipped(w: &[f32], g: &Geom) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for (i, v) in out.iter_mut().enumerate() {
        let (s, r) = (i % g.s, i / g.s % g.r);
        let (k, c) = (i / (g.s * g.r) % g.k, i / (g.s * g.r * g.k));
        *v = w[((k * g.c + c) * g.r + (g.r - 1 - r)) * g.s + (g.s - 1 - s)];
    }
    out
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
    // The blocked gradient splits images over threads: with fewer images
    // than threads the GEMM below (split inside) keeps every thread busy.
    let nt = threads::num_threads();
    let images_fill = nt == 1 || g.n >= nt || g.work() < PAR_MIN_WORK;
    let plan = blocked::plan::<T>(x, g).filter(|_| images_fill && blocked_filter::serves(g));
    if filter_px::serves(g) && (plan.is_none() || g.oh * g.ow <= filter_px::SMALL_OUTPUT) {
        // SAFETY: forwarded.
        unsafe { filter_px::backward_filter(x, dy, dw, g) };
        return;
    }
    if let Some(plan) = plan {
        let xy = (Image::of(x).cast(), Image::of(dy).cast());
        let chunks = batch_split(g).unwrap_or(1);
        // SAFETY: a plan exists only for f32, so the buffers are f32; the
        // rest is the caller's.
        unsafe { blocked_filter::backward_filter(&plan, xy, as_f32_mut(dw), g, chunks) };
        return;
    }
    let mut keep = Vec::new();
    // SAFETY: dy is an input, not written during the op.
    let b = unsafe { Bwd::new(dy, &mut keep, &[], g) };
    let x = Image::of(x);
    match batch_split(g) {
        Some(nt) => {
            let per = g.n.div_ceil(nt);
            let mut parts: Vec<Vec<T>> =
                (0..g.n.div_ceil(per)).map(|_| vec![T::ZERO; len]).collect();
            threads::install(|| {
                parts.par_iter_mut().enumerate().for_each(|(i, part)| {
                    let images = (i * per, ((i + 1) * per).min(g.n));
                    // SAFETY: each task writes its own partial sum.
                    unsafe { b.filter_images(&x, images, part, Threads::Single) }
                })
            });
            dw.copy_from_slice(super::sum_in_order(&mut parts));
        }
        // SAFETY: dw is exclusively ours.
        None => unsafe { b.filter_images(&x, (0, g.n), dw, Threads::Auto) },
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
        // SAFETY: per the caller.
        let (dy, dy_ps) = unsafe { Image::uniform_planes(dy, keep) };
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
    unsafe fn data_image(&self, n: usize, dx: &Image<T>, threads: Threads) {
        let g = self.g;
        let (rows, len) = g.col_chunk(COL_BYTES, std::mem::size_of::<T>(), g.is_pointwise());
        // SAFETY: forwarded.
        with_scratch_pair::<T, _>(len, 0, |col, _| unsafe {
            self.data_image_with(n, dx, col, rows, threads)
        })
    }

    /// [`Self::data_image`] with its scratch: `col` holds `crs rows OW`.
    ///
    /// # Safety
    /// As [`Self::data_image`].
    unsafe fn data_image_with(
        &self,
        n: usize,
        dx: &Image<T>,
        col: &mut [T],
        rows: usize,
        threads: Threads,
    ) {
        let g = self.g;
        let (ohw, crs) = (g.oh * g.ow, g.crs());
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
    ) {
        let g = self.g;
        if images.0 >= images.1 {
            out.fill(T::ZERO);
            return;
        }
        let direct = g.direct_stride(&x.st).is_some();
        let (rows, len) = g.col_chunk(COL_BYTES, std::mem::size_of::<T>(), direct);
        // Where the gemm crate serves, dw_g^T = col dy_g^T accumulates in
        // scratch (the crate runs that orientation ~1.4x faster here: 147 x
        // 12544 x 64 at ~85 GFLOP/s against ~60 for 64 x 12544 x 147), then
        // is transposed into `out`.
        let transposed = uses_crate();
        let tlen = if transposed { out.len() } else { 0 };
        with_scratch_pair::<T, _>(len, tlen, |col, t| {
            let per = g.kg * g.crs();
            for n in images.0..images.1 {
                for grp in 0..g.groups {
                    let dst = if transposed {
                        Dst::Transposed(t[grp * per..][..per].as_mut_ptr())
                    } else {
                        Dst::Direct(out[grp * per..][..per].as_mut_ptr())
                    };
                    let first = n == images.0;
                    // SAFETY: in range; forwarded.
                    unsafe { self.filter_group(x, (n, grp), first, dst, col, threads, rows) };
                }
            }
            if transposed {
                for (tg, og) in t.chunks_exact(per).zip(out.chunks_exact_mut(per)) {
                    // SAFETY: og is kg rows of crs, tg crs rows of kg.
                    unsafe { transpose_into(tg, g.kg, g.kg, og.as_mut_ptr(), g.crs(), None) };
                }
            }
        })
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
        dst: Dst<T>,
        col: &mut [T],
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
                ptr: std::ptr::null_mut(),
                rs: crs,
            },
            alpha: T::ONE,
            beta: if first { T::ZERO } else { T::ONE },
        };
        if let Some(ps) = g.direct_stride(&x.st) {
            call.b = MatRef {
                // SAFETY: channel block grp of image n of x.
                ptr: unsafe { x.row(n, grp * g.cg, 0) },
                rs: ps,
                cs: x.st[1],
            };
            // SAFETY: x_g^T is [hw x cg] at those strides, hw == ohw.
            unsafe { dst.run(&call, threads) };
            return;
        }
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
            // SAFETY: A [kg x ncols], B = col^T [ncols x crs], C = dst.
            unsafe { dst.run(&call, threads) };
            call.beta = T::ONE;
        }
    }
}

/// Where backward-filter's `dw_g = dy_g col^T` of one group goes.
#[derive(Debug, Clone, Copy)]
enum Dst<T> {
    /// `dw_g` itself, `[kg, crs]`.
    Direct(*mut T),
    /// Its transpose `[crs, kg]`, computed as `col dy_g^T`.
    Transposed(*mut T),
}

impl<T: GemmScalar> Dst<T> {
    /// Runs `call` (whose `c` this replaces) into the destination.
    ///
    /// # Safety
    /// As [`gemm`] for `call` with `c` set to the destination, which holds
    /// `m n` elements no other thread touches.
    unsafe fn run(self, call: &GemmCall<T>, threads: Threads) {
        let t = match self {
            Dst::Direct(ptr) => GemmCall {
                c: MatMut { ptr, rs: call.n },
                ..*call
            },
            Dst::Transposed(ptr) => GemmCall {
                m: call.n,
                n: call.m,
                a: MatRef {
                    ptr: call.b.ptr,
                    rs: call.b.cs,
                    cs: call.b.rs,
                },
                b: MatRef {
                    ptr: call.a.ptr,
                    rs: call.a.cs,
                    cs: call.a.rs,
                },
                c: MatMut { ptr, rs: call.m },
                ..*call
            },
        };
        // SAFETY: per the caller.
        unsafe { gemm(&t, threads) };
    }
}
