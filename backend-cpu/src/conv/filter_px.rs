//! `conv2d_backward_filter` in pixel-major order, for one group: the
//! output gradient as a `[K, N OH OW]` matrix, the receptive fields of a
//! chunk of images gathered pixel-major from a channels-last copy of the
//! input (`[pixels, R S C]`, runs of `S C` contiguous values where there
//! is no dilation along W), and one GEMM per chunk, `dw' += dy col`, whose
//! depth is the chunk's pixels. Chunks are split over threads in a fixed
//! order, so results do not depend on scheduling. `dw'` (`[K, R S C]`) is
//! reordered into `[K, C, R, S]` at the end.
//!
//! Where the output images are tiny the blocked direct kernels spend their
//! time on per-band set-up and the read-modify-write of the packed sums per
//! image; here the per-image work is a gather, and the GEMM runs at depth
//! `images x OH OW`.

use rayon::prelude::*;

use super::backward_px::{image_chunks, transpose};
use super::geom::Geom;
use super::im2col::Image;
use crate::gemm::{gemm, with_scratch_pair, GemmCall, GemmScalar, MatMut, MatRef, Threads};
use crate::strided::View;
use crate::threads;

/// Whether this path can serve `g`: one group, not pointwise stride 1
/// (one GEMM per image already). It serves wherever the blocked kernels do
/// not (f64, the lower tiers: on SSE2, a 3x32x32 CNN's 32->64 and 64->128
/// stride-2 gradients at 32 images went from 4.6-5.6 to 2.6 ms and 5.4-5.9
/// to 2.5-4.7 ms on one thread), and beside them on outputs of at most
/// [`SMALL_OUTPUT`] pixels (AVX-512, the 64->128 layer's 4x4 output: 0.92-1.21
/// -> 0.80-0.90 ms on one thread, 0.60-0.79 -> 0.59-0.62 ms on two; on the
/// 8x8 and 16x16 outputs before it the blocked kernels stay faster).
pub(super) fn serves(g: &Geom) -> bool {
    g.groups == 1 && !g.is_pointwise()
}

/// Output pixels up to which this path beats the blocked kernels.
pub(super) const SMALL_OUTPUT: usize = 16;

/// Runs the filter gradient: inputs `x` and `dy` (any strides), output the
/// contiguous `dw` (`[K, C, R, S]`, overwritten).
///
/// # Safety
/// `x` and `dy` are live tensors of `g`'s shapes; [`serves`] holds.
pub(super) unsafe fn backward_filter<T: GemmScalar>(
    x: &View<T>,
    dy: &View<T>,
    dw: &mut [T],
    g: &Geom,
) {
    let (hw, ohw, rsc) = (g.h * g.w, g.oh * g.ow, g.r * g.s * g.c);
    let np = g.n * ohw;
    let mut keep = Vec::new();
    // SAFETY: x is an input, not written during the op.
    let (x, ps) = unsafe { Image::uniform_planes(x, &mut keep) };
    // The input channels-last: `[N, H, W, C]`, dense.
    let dense_cl = x.st[1] == 1 && ps == g.c && x.st[0] == hw * g.c;
    let mut xh_own = Vec::new();
    let xh: *const T = if dense_cl {
        x.ptr
    } else {
        xh_own.resize(g.n * hw * g.c, T::ZERO);
        for n in 0..g.n {
            // SAFETY: image n's [C, H W] planes into its [H W, C] rows.
            unsafe {
                transpose(
                    x.row(n, 0, 0),
                    (x.st[1], ps),
                    (xh_own[n * hw * g.c..].as_mut_ptr(), g.c),
                    (g.c, hw),
                )
            };
        }
        xh_own.as_ptr()
    };
    // The output gradient as `[K, N OH OW]`.
    let mut keep_dy = Vec::new();
    // SAFETY: dy is an input, not written during the op.
    let dyk = unsafe { dy_by_channel(Image::uniform_planes(dy, &mut keep_dy), g) };
    let (split, per) = image_chunks::<T>(g, ohw * rsc);
    let count = g.n.div_ceil(per);
    let parts_n = if split {
        threads::num_threads().min(count)
    } else {
        1
    };
    let mut parts: Vec<Vec<T>> = (0..parts_n).map(|_| vec![T::ZERO; g.k * rsc]).collect();
    let src = Src { xh, dyk: &dyk, np };
    let run = |(p, part): (usize, &mut Vec<T>)| {
        let (c0, c1) = (p * count / parts_n, (p + 1) * count / parts_n);
        let threads = if split {
            Threads::Single
        } else {
            Threads::Auto
        };
        for (i, chunk) in (c0..c1).enumerate() {
            let images = (chunk * per, ((chunk + 1) * per).min(g.n));
            // SAFETY: forwarded; each part is its own.
            unsafe { src.chunk(g, images, part, i > 0, threads) };
        }
    };
    if parts_n > 1 {
        threads::install(|| parts.par_iter_mut().enumerate().for_each(run));
    } else {
        parts.iter_mut().enumerate().for_each(run);
    }
    let first = super::sum_in_order(&mut parts);
    let rs = g.r * g.s;
    for (wk, sums) in dw.chunks_exact_mut(g.c * rs).zip(first.chunks_exact(rsc)) {
        for (c, taps) in wk.chunks_exact_mut(rs).enumerate() {
            for (tap, v) in taps.iter_mut().enumerate() {
                *v = sums[tap * g.c + c];
            }
        }
    }
}

/// `dy` (planes of pixel stride `ps`) as a dense `[K, N OH OW]` matrix.
///
/// # Safety
/// `dy` views a live tensor of `g`'s output shape.
unsafe fn dy_by_channel<T: GemmScalar>((dy, ps): (Image<T>, usize), g: &Geom) -> Vec<T> {
    let ohw = g.oh * g.ow;
    let np = g.n * ohw;
    let mut out = vec![T::ZERO; g.k * np];
    for n in 0..g.n {
        if ps == 1 {
            for k in 0..g.k {
                // SAFETY: plane (n, k) is ohw contiguous elements.
                let plane = unsafe { std::slice::from_raw_parts(dy.row(n, k, 0), ohw) };
                out[k * np + n * ohw..][..ohw].copy_from_slice(plane);
            }
        } else {
            // SAFETY: image n's [OH OW, K] (pixel stride ps, channel stride
            // st1) into columns n OH OW.. of the K rows.
            unsafe {
                transpose(
                    dy.row(n, 0, 0),
                    (ps, dy.st[1]),
                    (out[n * ohw..].as_mut_ptr(), np),
                    (ohw, g.k),
                )
            };
        }
    }
    out
}

/// What every chunk reads.
struct Src<'a, T> {
    /// The input, dense channels-last.
    xh: *const T,
    /// `dy` as `[K, N OH OW]`.
    dyk: &'a [T],
    /// `N OH OW`.
    np: usize,
}

// SAFETY: only read, from any thread.
unsafe impl<T: Sync> Sync for Src<'_, T> {}

impl<T: GemmScalar> Src<'_, T> {
    /// Adds (`accumulate`) or writes the gradient of `images` into `part`
    /// (`[K, R S C]`).
    ///
    /// # Safety
    /// As [`backward_filter`]; the images are in range.
    unsafe fn chunk(
        &self,
        g: &Geom,
        (n0, n1): (usize, usize),
        part: &mut [T],
        accumulate: bool,
        threads: Threads,
    ) {
        let (ohw, rsc) = (g.oh * g.ow, g.r * g.s * g.c);
        let rows = (n1 - n0) * ohw;
        with_scratch_pair::<T, _>(rows * rsc, 0, |col, _| {
            for n in n0..n1 {
                // SAFETY: image n is in range.
                unsafe { self.gather(g, n, &mut col[(n - n0) * ohw * rsc..][..ohw * rsc]) };
            }
            let call = GemmCall {
                m: g.k,
                n: rsc,
                k: rows,
                a: MatRef {
                    ptr: self.dyk[n0 * ohw..].as_ptr(),
                    rs: self.np,
                    cs: 1,
                },
                b: MatRef {
                    ptr: col.as_ptr(),
                    rs: rsc,
                    cs: 1,
                },
                c: MatMut {
                    ptr: part.as_mut_ptr(),
                    rs: rsc,
                },
                alpha: T::ONE,
                beta: if accumulate { T::ONE } else { T::ZERO },
            };
            // SAFETY: part holds K x rsc; the operands are in range.
            unsafe { gemm(&call, threads) };
        })
    }

    /// Image `n`'s receptive fields: `col[(oh OW + ow) R S C + (r S + s) C
    /// + c] = x[n, c, oh sh + r dh - ph, ow sw + s dw - pw]`, 0 outside.
    ///
    /// # Safety
    /// `n` is in range.
    unsafe fn gather(&self, g: &Geom, n: usize, col: &mut [T]) {
        let (c, sc) = (g.c, g.s * g.c);
        // SAFETY: image n of the dense channels-last input.
        let img =
            unsafe { std::slice::from_raw_parts(self.xh.add(n * g.h * g.w * c), g.h * g.w * c) };
        for (px, out) in col.chunks_exact_mut(g.r * sc).enumerate() {
            let (oh, ow) = (px / g.ow, px % g.ow);
            for (r, seg) in out.chunks_exact_mut(sc).enumerate() {
                let ih = (oh * g.stride[0]) as isize + g.tap(0, r);
                if ih < 0 || ih >= g.h as isize {
                    seg.fill(T::ZERO);
                    continue;
                }
                let row = &img[ih as usize * g.w * c..][..g.w * c];
                let iw0 = (ow * g.stride[1]) as isize + g.tap(1, 0);
                if g.dil[1] == 1 && iw0 >= 0 && iw0 as usize + g.s <= g.w {
                    seg.copy_from_slice(&row[iw0 as usize * c..][..sc]);
                    continue;
                }
                for (s, v) in seg.chunks_exact_mut(c).enumerate() {
                    let iw = (ow * g.stride[1]) as isize + g.tap(1, s);
                    if iw < 0 || iw >= g.w as isize {
                        v.fill(T::ZERO);
                    } else {
                        v.copy_from_slice(&row[iw as usize * c..][..c]);
                    }
                }
            }
        }
    }
}
