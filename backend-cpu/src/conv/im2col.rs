//! `im2col`, its adjoint `col2im`, and the strided row helpers the direct
//! (depthwise) kernels share.

use super::geom::{valid_range, Geom};
use crate::element::Float;
use crate::strided::View;

/// A strided NCHW image: element `(n, c, h, w)` at
/// `ptr + n s0 + c s1 + h s2 + w s3`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Image<T> {
    /// Element `(0, 0, 0, 0)`.
    pub ptr: *mut T,
    /// Strides in elements.
    pub st: [usize; 4],
}

// SAFETY: a raw window into a buffer that outlives the op; kernels sharing
// one across threads read it, or write disjoint planes of it.
unsafe impl<T: Send> Send for Image<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Image<T> {}

impl<T> Image<T> {
    /// A rank-4 view (rank checked by the geometry).
    pub fn of(v: &View<T>) -> Self {
        Image {
            ptr: v.ptr,
            st: [v.strides[0], v.strides[1], v.strides[2], v.strides[3]],
        }
    }

    /// A contiguous `[n, c, h, w]` tensor at `ptr`.
    pub fn dense(ptr: *mut T, c: usize, h: usize, w: usize) -> Self {
        Image {
            ptr,
            st: [c * h * w, h * w, w, 1],
        }
    }

    /// The same window read as elements of type `U` (for a `T` that is
    /// `U`, as the f32-only paths check before they read it).
    pub fn cast<U>(&self) -> Image<U> {
        Image {
            ptr: self.ptr.cast::<U>(),
            st: self.st,
        }
    }

    /// A rank-4 view whose planes read as one row of `H W` uniformly
    /// strided pixels, and that pixel stride: the view itself where its
    /// strides allow, else a dense copy kept in `keep`.
    ///
    /// # Safety
    /// `v` is live and not written during the op.
    pub unsafe fn uniform_planes(v: &View<T>, keep: &mut Vec<T>) -> (Image<T>, usize)
    where
        T: crate::element::Element,
    {
        let img = Image::of(v);
        let (c, h, w) = (v.shape[1], v.shape[2], v.shape[3]);
        match super::geom::plane_stride(h, w, img.st[2], img.st[3]) {
            Some(ps) => (img, ps),
            None => {
                // SAFETY: per the caller.
                *keep = unsafe { v.to_vec() };
                (Image::dense(keep.as_mut_ptr(), c, h, w), 1)
            }
        }
    }

    /// Address of `(n, c, h, 0)`.
    ///
    /// # Safety
    /// The index lies inside the viewed tensor.
    pub unsafe fn row(&self, n: usize, c: usize, h: usize) -> *mut T {
        // SAFETY: per the caller.
        unsafe {
            self.ptr
                .add(n * self.st[0] + c * self.st[1] + h * self.st[2])
        }
    }
}

/// Gathers output rows `oh0..oh1` of image `n`, channels `c0..c0+cg`, into
/// `col`: row `(c R + r) S + s`, column `(oh - oh0) OW + ow` holds
/// `x[n, c0 + c, oh sh + r dh - ph, ow sw + s dw - pw]` (0 in the padding).
///
/// # Safety
/// `x` views an image of `g`'s input shape; `col` holds `crs (oh1 - oh0) OW`.
pub(super) unsafe fn im2col<T: Float>(
    x: &Image<T>,
    g: &Geom,
    n: usize,
    c0: usize,
    oh: (usize, usize),
    col: &mut [T],
) {
    let ncols = (oh.1 - oh.0) * g.ow;
    let mut rows = col.chunks_exact_mut(ncols.max(1));
    for c in 0..g.cg {
        for r in 0..g.r {
            for s in 0..g.s {
                let Some(dst) = rows.next() else { return };
                let offw = g.tap(1, s);
                let (lo, hi) = valid_range(g.ow, g.stride[1], offw, g.w);
                for (out, o) in dst.chunks_exact_mut(g.ow).zip(oh.0..oh.1) {
                    let ih = (o * g.stride[0]) as isize + g.tap(0, r);
                    if ih < 0 || ih >= g.h as isize || lo == hi {
                        out.fill(T::ZERO);
                        continue;
                    }
                    out[..lo].fill(T::ZERO);
                    out[hi..].fill(T::ZERO);
                    let iw = (lo * g.stride[1]) as isize + offw;
                    // SAFETY: (n, c0 + c, ih, iw..) is inside x for every
                    // valid column, per `valid_range`.
                    unsafe {
                        let src = x.row(n, c0 + c, ih as usize).add(iw as usize * x.st[3]);
                        gather(&mut out[lo..hi], src, g.stride[1] * x.st[3]);
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every element of `col` into the input
/// position it was gathered from.
///
/// # Safety
/// `dx` views a writable image of `g`'s input shape no other thread touches
/// at image `n`; `col` holds `crs (oh1 - oh0) OW`.
pub(super) unsafe fn col2im<T: Float>(
    dx: &Image<T>,
    g: &Geom,
    n: usize,
    c0: usize,
    oh: (usize, usize),
    col: &[T],
) {
    let ncols = (oh.1 - oh.0) * g.ow;
    if ncols == 0 || col.len() < g.crs() * ncols {
        return;
    }
    // Stride 2, no dilation, contiguous rows: taps s and s + 1 fill
    // neighbouring columns, so they are added as interleaved pairs.
    let paired = g.stride[1] == 2 && g.dil[1] == 1 && dx.st[3] == 1;
    // An odd last tap pairs with zeros: one vector loop instead of a
    // scalar one with stride 2 (which took a quarter of col2im's time for
    // the 7x7 stem with 1 of its 7 taps).
    let zeros = if paired && g.s % 2 == 1 {
        vec![T::ZERO; ncols]
    } else {
        Vec::new()
    };
    for c in 0..g.cg {
        for r in 0..g.r {
            let mut s = 0;
            while s < g.s {
                let at = |s: usize| &col[((c * g.r + r) * g.s + s) * ncols..][..ncols];
                if paired {
                    let b = if s + 1 < g.s { at(s + 1) } else { &zeros };
                    // SAFETY: as in `im2col`, on the writable dx.
                    unsafe { col2im_pair(dx, g, (n, c0 + c), (r, s), oh, (at(s), b)) };
                    s += 2;
                    continue;
                }
                let offw = g.tap(1, s);
                let (lo, hi) = valid_range(g.ow, g.stride[1], offw, g.w);
                for (row, o) in at(s).chunks_exact(g.ow).zip(oh.0..oh.1) {
                    let ih = (o * g.stride[0]) as isize + g.tap(0, r);
                    if ih < 0 || ih >= g.h as isize || lo == hi {
                        continue;
                    }
                    let iw = (lo * g.stride[1]) as isize + offw;
                    // SAFETY: as in `im2col`, on the writable dx.
                    unsafe {
                        let dst = dx.row(n, c0 + c, ih as usize).add(iw as usize * dx.st[3]);
                        scatter_add(dst, g.stride[1] * dx.st[3], &row[lo..hi], T::ONE);
                    }
                }
                s += 1;
            }
        }
    }
}

/// [`col2im`] of taps `s` and `s + 1` of filter row `r` (rows `a` and `b`
/// of `col`; `b` is zeros where `s` is the last tap, and `s + 1` then
/// only places them) into channel `c` of image `n`, for stride 2 with no dilation
/// and contiguous rows: output column `ow` adds `a` at `iw = 2 ow + s - pw`
/// and `b` at `iw + 1`, so where both are inside the row they are one
/// contiguous run of pairs.
///
/// # Safety
/// As [`col2im`].
unsafe fn col2im_pair<T: Float>(
    dx: &Image<T>,
    g: &Geom,
    (n, c): (usize, usize),
    (r, s): (usize, usize),
    oh: (usize, usize),
    (a, b): (&[T], &[T]),
) {
    let (offa, offb) = (g.tap(1, s), g.tap(1, s + 1));
    let (la, ha) = valid_range(g.ow, 2, offa, g.w);
    let (lb, hb) = valid_range(g.ow, 2, offb, g.w);
    let (lo, hi) = (la.max(lb), ha.min(hb).max(la.max(lb)));
    for ((ra, rb), o) in a
        .chunks_exact(g.ow)
        .zip(b.chunks_exact(g.ow))
        .zip(oh.0..oh.1)
    {
        let ih = (o * g.stride[0]) as isize + g.tap(0, r);
        if ih < 0 || ih >= g.h as isize {
            continue;
        }
        // SAFETY: (n, c, ih) is inside dx (checked above, caller).
        let row = unsafe { dx.row(n, c, ih as usize) };
        let at = |ow: usize, off: isize| (2 * ow) as isize + off;
        // The columns where only one of the two taps lands, one by one.
        for (l, h, off, vals) in [(la, lo.min(ha), offa, ra), (lb, lo.min(hb), offb, rb)]
            .into_iter()
            .chain([(hi.max(la), ha, offa, ra), (hi.max(lb), hb, offb, rb)])
        {
            for (ow, &v) in vals.iter().enumerate().take(h).skip(l) {
                // SAFETY: ow is in the tap's valid range: iw inside the row.
                unsafe { *row.add(at(ow, off) as usize) += v };
            }
        }
        if lo < hi {
            // SAFETY: columns 2 lo + offa .. 2 hi + offa are inside the row
            // (both taps valid on lo..hi), exclusive to this thread.
            let d = unsafe {
                std::slice::from_raw_parts_mut(row.add(at(lo, offa) as usize), 2 * (hi - lo))
            };
            for ((p, &x), &y) in d.chunks_exact_mut(2).zip(&ra[lo..hi]).zip(&rb[lo..hi]) {
                p[0] += x;
                p[1] += y;
            }
        }
    }
}

/// `out[i] = src[i step]`.
///
/// # Safety
/// `src + i step` is readable for every `i < out.len()`.
pub(super) unsafe fn gather<T: Float>(out: &mut [T], src: *const T, step: usize) {
    if step == 1 {
        // SAFETY: contiguous and readable, per the caller.
        out.copy_from_slice(unsafe { std::slice::from_raw_parts(src, out.len()) });
    } else if step == 2 && !out.is_empty() {
        // Stride 2 (the stem convolutions of most CNNs), written so the
        // compiler vectorises it with shuffles: pairs, then the last one.
        let n = out.len();
        // SAFETY: elements 0, 2, .., 2 (n - 1) are readable, per the caller.
        let src = unsafe { std::slice::from_raw_parts(src, 2 * n - 1) };
        let (head, last) = out.split_at_mut(n - 1);
        for (o, pair) in head.iter_mut().zip(src.chunks_exact(2)) {
            *o = pair[0];
        }
        last[0] = src[2 * (n - 1)];
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: per the caller.
            *o = unsafe { *src.add(i * step) };
        }
    }
}

/// `dst[i step] += a vals[i]`.
///
/// # Safety
/// `dst + i step` is writable and untouched by other threads for every
/// `i < vals.len()`, and does not overlap `vals`.
pub(super) unsafe fn scatter_add<T: Float>(dst: *mut T, step: usize, vals: &[T], a: T) {
    if step == 1 {
        // SAFETY: contiguous and exclusive, per the caller.
        let d = unsafe { std::slice::from_raw_parts_mut(dst, vals.len()) };
        for (o, &v) in d.iter_mut().zip(vals) {
            *o += a * v;
        }
    } else {
        for (i, &v) in vals.iter().enumerate() {
            // SAFETY: per the caller.
            unsafe { *dst.add(i * step) += a * v };
        }
    }
}

/// `out[i] += a src[i step]`.
///
/// # Safety
/// `src + i step` is readable for every `i < out.len()`.
pub(super) unsafe fn axpy_from<T: Float>(out: &mut [T], a: T, src: *const T, step: usize) {
    if step == 1 {
        // SAFETY: contiguous and readable, per the caller.
        let s = unsafe { std::slice::from_raw_parts(src, out.len()) };
        for (o, &v) in out.iter_mut().zip(s) {
            *o += a * v;
        }
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: per the caller.
            *o += a * unsafe { *src.add(i * step) };
        }
    }
}

/// `sum_i x[i sx] y[i sy]` over `len` elements.
///
/// # Safety
/// Both strided ranges are readable.
pub(super) unsafe fn dot<T: Float>(
    len: usize,
    x: *const T,
    sx: usize,
    y: *const T,
    sy: usize,
) -> T {
    if sx == 1 && sy == 1 {
        // SAFETY: contiguous and readable, per the caller.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(x, len),
                std::slice::from_raw_parts(y, len),
            )
        };
        let mut acc = [T::ZERO; 8];
        let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: T = ac
            .remainder()
            .iter()
            .zip(bc.remainder())
            .fold(T::ZERO, |s, (&p, &q)| s + p * q);
        for (pa, pb) in ac.zip(bc) {
            for ((s, &p), &q) in acc.iter_mut().zip(pa).zip(pb) {
                *s += p * q;
            }
        }
        acc.iter().fold(tail, |s, &v| s + v)
    } else {
        let mut s = T::ZERO;
        for i in 0..len {
            // SAFETY: per the caller.
            s += unsafe { *x.add(i * sx) * *y.add(i * sy) };
        }
        s
    }
}
