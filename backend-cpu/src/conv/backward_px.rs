//! `conv2d_backward_data` in pixel-major order, for one group and any
//! stride, padding and dilation: per chunk of images, one GEMM
//! `t = dy^T w'` with the images' output pixels as rows and the filter
//! taps `(r, s, c)` as columns (`w'` is `w` reordered to `[K, R S C]`), then
//! every input pixel gathers the `C`-long rows of `t` of the taps that
//! reach it (a vector add per tap, no scatter) into a channels-last image
//! that is transposed into `dx`.
//!
//! Against `col = w^T dy` per image and `col2im` (the path before): one
//! GEMM of `images x OH OW` rows instead of a small one per image, and
//! contiguous `C`-vector adds instead of scatter-adds along rows of `OW`
//! (8 or 4 pixels in the small images of training), which had cost more
//! than the GEMM itself. A 3x32x32 CNN's two stride-2 data gradients
//! (32 images, 32->64 and 64->128 channels, 3x3) went from 1.71 to 0.85 ms
//! per call on one AVX-512 thread.

use std::any::TypeId;

use super::geom::Geom;
use super::im2col::Image;
use super::COL_BYTES;
use crate::gemm::{
    gemm, with_scratch_pair, GemmCall, GemmScalar, MatMut, MatRef, Threads, PAR_MIN_WORK,
};
use crate::strided::View;
use crate::threads;

/// Whether this path serves `g`: one group (the grouped and depthwise
/// gradients keep their own paths) and not a pointwise stride-1
/// convolution (whose data gradient is one GEMM per image already).
pub(super) fn serves(g: &Geom) -> bool {
    g.groups == 1 && !g.is_pointwise()
}

/// The taps along one axis that reach input position `i`: `(tap, output
/// position)` pairs with `o stride + tap dil - pad == i`, `o < count`.
fn taps_at(g: &Geom, axis: usize, i: usize, count: usize) -> Vec<(usize, usize)> {
    let (taps, stride) = ([g.r, g.s][axis], g.stride[axis]);
    (0..taps)
        .filter_map(|t| {
            let num = i as isize - g.tap(axis, t);
            (num >= 0 && (num as usize).is_multiple_of(stride) && (num as usize / stride) < count)
                .then(|| (t, num as usize / stride))
        })
        .collect()
}

/// What every chunk reads.
struct Plan<'a, T> {
    g: &'a Geom,
    dy: Image<T>,
    /// Stride between consecutive pixels of a `dy` plane.
    dy_ps: usize,
    /// `w'`: `[K, R S C]`, row-major.
    wr: Vec<T>,
    /// Per input row `ih`, the `(r, oh)` pairs that reach it.
    rows: Vec<Vec<(usize, usize)>>,
    /// Per input column `iw`, the `(s, ow)` pairs that reach it.
    cols: Vec<Vec<(usize, usize)>>,
    /// Images per chunk.
    per: usize,
}

// SAFETY: only read, from any thread; the images behind `dy` are not
// written during the op.
unsafe impl<T: Sync> Sync for Plan<'_, T> {}

/// Runs the data gradient: input `dy` (any strides) and the contiguous
/// weights `w` (`[K, C, R, S]`), output the contiguous `dx`.
///
/// # Safety
/// `dy` and `dx` are live tensors of `g`'s shapes; `dx` is writable and
/// aliases neither input. [`serves`] holds for `g`.
pub(super) unsafe fn backward_data<T: GemmScalar>(dy: &View<T>, w: &[T], dx: *mut T, g: &Geom) {
    let mut keep = Vec::new();
    // SAFETY: dy is an input, not written during the op.
    let (dy, dy_ps) = unsafe { Image::uniform_planes(dy, &mut keep) };
    let (ohw, rsc) = (g.oh * g.ow, g.r * g.s * g.c);
    let mut wr = vec![T::ZERO; g.k * rsc];
    let rs = g.r * g.s;
    for (wk, out) in w.chunks_exact(g.c * rs).zip(wr.chunks_exact_mut(rsc)) {
        for (c, taps) in wk.chunks_exact(rs).enumerate() {
            for (tap, &v) in taps.iter().enumerate() {
                out[tap * g.c + c] = v;
            }
        }
    }
    let (split, per) = image_chunks::<T>(g, ohw * rsc);
    let plan = Plan {
        g,
        dy,
        dy_ps,
        wr,
        rows: (0..g.h).map(|i| taps_at(g, 0, i, g.oh)).collect(),
        cols: (0..g.w).map(|i| taps_at(g, 1, i, g.ow)).collect(),
        per,
    };
    let count = g.n.div_ceil(plan.per);
    // Shared by the chunks, each writing its own images.
    let dx = Image::dense(dx, g.c, g.h, g.w);
    if split {
        threads::install(|| {
            threads::for_each_index(count, |i| {
                // SAFETY: chunk i writes only its own images of dx.
                unsafe { plan.chunk(i, &dx, Threads::Single) }
            })
        });
    } else {
        for i in 0..count {
            // SAFETY: one chunk at a time.
            unsafe { plan.chunk(i, &dx, Threads::Auto) };
        }
    }
}

/// How the pixel-major gradients split the batch: whether over threads,
/// and the images per chunk, so that a chunk's `per_image` scratch
/// elements stay within [`COL_BYTES`] and the chunks come in a multiple of
/// the threads (so none idles at the end).
pub(super) fn image_chunks<T>(g: &Geom, per_image: usize) -> (bool, usize) {
    let nt = threads::num_threads();
    let split = nt > 1 && g.n >= 2 && g.work() >= PAR_MIN_WORK;
    let most = (COL_BYTES / (per_image * std::mem::size_of::<T>()).max(1)).clamp(1, g.n);
    let mut chunks = g.n.div_ceil(most);
    if split {
        chunks = chunks.div_ceil(nt) * nt;
    }
    (split, g.n.div_ceil(chunks.min(g.n)))
}

impl<T: GemmScalar> Plan<'_, T> {
    /// Chunk `i`: images `i per .. (i + 1) per`.
    ///
    /// # Safety
    /// As [`backward_data`]; no other thread writes these images of `dx`.
    unsafe fn chunk(&self, i: usize, dx: &Image<T>, threads: Threads) {
        let g = self.g;
        let (n0, n1) = (i * self.per, ((i + 1) * self.per).min(g.n));
        let (ohw, hw, rsc) = (g.oh * g.ow, g.h * g.w, g.r * g.s * g.c);
        let rows = (n1 - n0) * ohw;
        // `dy` as a row-major [pixels, K] matrix without a copy: one
        // image, or channels-last images one after the other.
        let direct = dy_row_major(g, &self.dy, self.dy_ps, n1 - n0);
        let dyt_len = if direct { 0 } else { rows * g.k };
        with_scratch_pair::<T, _>(rows * rsc, dyt_len + hw * g.c, |t, rest| {
            let (dyt, acc) = rest.split_at_mut(dyt_len);
            // SAFETY: image n0 is in range.
            let first = unsafe { self.dy.row(n0, 0, 0) };
            let a = if direct {
                MatRef {
                    ptr: first,
                    rs: self.dy_ps,
                    cs: 1,
                }
            } else {
                for n in n0..n1 {
                    // SAFETY: image n's [K, OH OW] planes, into its rows of dyt.
                    unsafe {
                        transpose(
                            self.dy.row(n, 0, 0),
                            (self.dy.st[1], self.dy_ps),
                            (dyt[(n - n0) * ohw * g.k..].as_mut_ptr(), g.k),
                            (g.k, ohw),
                        )
                    };
                }
                MatRef {
                    ptr: dyt.as_ptr(),
                    rs: g.k,
                    cs: 1,
                }
            };
            let call = GemmCall {
                m: rows,
                n: rsc,
                k: g.k,
                a,
                b: MatRef {
                    ptr: self.wr.as_ptr(),
                    rs: rsc,
                    cs: 1,
                },
                c: MatMut {
                    ptr: t.as_mut_ptr(),
                    rs: rsc,
                },
                alpha: T::ONE,
                beta: T::ZERO,
            };
            // SAFETY: t holds rows x rsc; the operands are in range.
            unsafe { gemm(&call, threads) };
            for n in n0..n1 {
                self.gather(&t[(n - n0) * ohw * rsc..][..ohw * rsc], acc);
                // SAFETY: image n of the contiguous dx, ours.
                unsafe { transpose(acc.as_ptr(), (g.c, 1), (dx.row(n, 0, 0), hw), (hw, g.c)) };
            }
        })
    }

    /// One image: `acc[(ih W + iw) C + c]` = the sum over the taps `(r, s)`
    /// reaching `(ih, iw)` of `t[(oh OW + ow) R S C + (r S + s) C + c]`.
    fn gather(&self, t: &[T], acc: &mut [T]) {
        let g = self.g;
        let c = g.c;
        for (ih, rows) in self.rows.iter().enumerate() {
            for (iw, cols) in self.cols.iter().enumerate() {
                let out = &mut acc[(ih * g.w + iw) * c..][..c];
                let mut first = true;
                for &(r, oh) in rows {
                    for &(s, ow) in cols {
                        let src = &t[(oh * g.ow + ow) * g.r * g.s * c + (r * g.s + s) * c..][..c];
                        if first {
                            out.copy_from_slice(src);
                            first = false;
                        } else {
                            for (o, v) in out.iter_mut().zip(src) {
                                *o += *v;
                            }
                        }
                    }
                }
                if first {
                    out.fill(T::ZERO);
                }
            }
        }
    }
}

/// Whether `n` consecutive images of `dy` read as one row-major
/// `[n OH OW, K]` matrix with rows `ps` apart: channels-last planes (unit
/// channel stride) that follow one another.
fn dy_row_major<T>(g: &Geom, dy: &Image<T>, ps: usize, n: usize) -> bool {
    dy.st[1] == 1 && (n == 1 || dy.st[0] == g.oh * g.ow * ps)
}

/// `dst[j ds + i] = src[i ss.0 + j ss.1]` for `i < rows`, `j < cols`:
/// `src`'s `[rows, cols]` matrix transposed into `[cols, rows]` rows `ds`
/// apart.
///
/// # Safety
/// Every address named is valid, `src` for reading and `dst` for writing.
pub(super) unsafe fn transpose<T: GemmScalar>(
    src: *const T,
    ss: (usize, usize),
    (dst, ds): (*mut T, usize),
    (rows, cols): (usize, usize),
) {
    if TypeId::of::<T>() == TypeId::of::<f32>() && ss.1 == 1 {
        // SAFETY: T is f32; the tiered transpose takes the same addresses.
        unsafe { crate::transpose::f32()(src.cast(), ss.0, dst.cast(), ds, (rows, cols), None) };
        return;
    }
    for i in 0..rows {
        for j in 0..cols {
            // SAFETY: per the caller.
            unsafe { *dst.add(j * ds + i) = *src.add(i * ss.0 + j * ss.1) };
        }
    }
}
