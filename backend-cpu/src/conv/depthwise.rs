//! Depthwise convolution (`groups == C == K`): direct loops per plane,
//! parallel over the `N C` planes (forward, backward-data) or the channels
//! (backward-filter).

use rayon::prelude::*;

use super::geom::{valid_range, Geom};
use super::im2col::{axpy_from, dot, Image};
use crate::element::Float;
use crate::threads;

/// True when the op is worth waking the pool for.
fn parallel(g: &Geom) -> bool {
    let work = [g.c, g.oh, g.ow, g.r, g.s]
        .iter()
        .fold(g.n, |acc, &d| acc.saturating_mul(d));
    threads::split(work)
}

/// Runs `job` on every `chunk`-long piece of `out`, with its index, on the
/// pool when `par`.
fn for_each_chunk<T: Float>(
    out: &mut [T],
    chunk: usize,
    par: bool,
    job: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if chunk == 0 {
        return;
    }
    if par {
        threads::install(|| {
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| job(i, c))
        });
    } else {
        out.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| job(i, c));
    }
}

/// For each filter tap along `axis`: the valid outputs `lo..hi` and the
/// input position of `lo` (see [`valid_range`]).
fn taps(g: &Geom, axis: usize) -> Vec<(usize, usize, usize)> {
    let (taps, outs, len) = if axis == 0 {
        (g.r, g.oh, g.h)
    } else {
        (g.s, g.ow, g.w)
    };
    (0..taps)
        .map(|t| {
            let off = g.tap(axis, t);
            let (lo, hi) = valid_range(outs, g.stride[axis], off, len);
            let first = if lo < hi {
                ((lo * g.stride[axis]) as isize + off) as usize
            } else {
                0
            };
            (lo, hi, first)
        })
        .collect()
}

/// Forward: `y[n, c] = bias[c] + sum_{r,s} w[c, 0, r, s] x[n, c, shifted]`.
///
/// # Safety
/// `x` views the input, `w` is `[C, 1, R, S]`, `y` is the contiguous output,
/// aliasing nothing else.
pub(super) unsafe fn forward<T: Float>(
    x: &Image<T>,
    w: &[T],
    bias: Option<&[T]>,
    y: *mut T,
    g: &Geom,
) {
    let ohw = g.oh * g.ow;
    // SAFETY: the contiguous output holds N C OH OW elements.
    let ys = unsafe { std::slice::from_raw_parts_mut(y, g.n * g.c * ohw) };
    let (rows, cols) = (taps(g, 0), taps(g, 1));
    let step = g.stride[1] * x.st[3];
    for_each_chunk(ys, ohw, parallel(g), |idx, out| {
        let (n, ch) = (idx / g.c, idx % g.c);
        out.fill(bias.map_or(T::ZERO, |b| b[ch]));
        let wc = &w[ch * g.r * g.s..][..g.r * g.s];
        for (&(lo_h, hi_h, ih0), wr) in rows.iter().zip(wc.chunks_exact(g.s)) {
            for oh in lo_h..hi_h {
                let ih = ih0 + (oh - lo_h) * g.stride[0];
                let orow = &mut out[oh * g.ow..][..g.ow];
                // SAFETY: (n, ch, ih) is a row of x.
                let xrow = unsafe { x.row(n, ch, ih) };
                for (&(lo, hi, iw), &wv) in cols.iter().zip(wr) {
                    // SAFETY: columns iw + j stride, j < hi - lo, are inside the row.
                    unsafe { axpy_from(&mut orow[lo..hi], wv, xrow.add(iw * x.st[3]), step) };
                }
            }
        }
    });
}

/// Backward-data: `dx[n, c, shifted] += w[c, 0, r, s] dy[n, c]`.
///
/// # Safety
/// `dy` views the gradient, `w` is `[C, 1, R, S]`, `dx` is the contiguous
/// zeroed output, aliasing nothing else.
pub(super) unsafe fn backward_data<T: Float>(dy: &Image<T>, w: &[T], dx: &Image<T>, g: &Geom) {
    let hw = g.h * g.w;
    // SAFETY: the contiguous output holds N C H W elements.
    let dxs = unsafe { std::slice::from_raw_parts_mut(dx.ptr, g.n * g.c * hw) };
    let (rows, cols) = (taps(g, 0), taps(g, 1));
    let sw = g.stride[1];
    for_each_chunk(dxs, hw, parallel(g), |idx, plane| {
        let (n, ch) = (idx / g.c, idx % g.c);
        let wc = &w[ch * g.r * g.s..][..g.r * g.s];
        for (&(lo_h, hi_h, ih0), wr) in rows.iter().zip(wc.chunks_exact(g.s)) {
            for oh in lo_h..hi_h {
                let ih = ih0 + (oh - lo_h) * g.stride[0];
                let xrow = &mut plane[ih * g.w..][..g.w];
                // SAFETY: (n, ch, oh) is a row of dy.
                let dyrow = unsafe { dy.row(n, ch, oh) };
                for (&(lo, hi, iw), &wv) in cols.iter().zip(wr) {
                    // SAFETY: columns lo..hi of the dy row are inside dy.
                    let src = unsafe { dyrow.add(lo * dy.st[3]) };
                    if sw == 1 {
                        // SAFETY: as above.
                        unsafe { axpy_from(&mut xrow[iw..iw + hi - lo], wv, src, dy.st[3]) };
                    } else {
                        for (t, o) in xrow[iw..].iter_mut().step_by(sw).take(hi - lo).enumerate() {
                            // SAFETY: as above, t < hi - lo.
                            *o += wv * unsafe { *src.add(t * dy.st[3]) };
                        }
                    }
                }
            }
        }
    });
}

/// Backward-filter: `dw[c, 0, r, s] = sum_{n, oh, ow} dy[n, c, oh, ow] x[n, c, shifted]`.
///
/// # Safety
/// `x` and `dy` view the inputs; `dw` is the `[C, 1, R, S]` output.
pub(super) unsafe fn backward_filter<T: Float>(
    x: &Image<T>,
    dy: &Image<T>,
    dw: &mut [T],
    g: &Geom,
) {
    let (rows, cols) = (taps(g, 0), taps(g, 1));
    for_each_chunk(dw, g.r * g.s, parallel(g), |ch, out| {
        for (t, o) in out.iter_mut().enumerate() {
            let ((lo_h, hi_h, ih0), (lo, hi, iw)) = (rows[t / g.s], cols[t % g.s]);
            let mut acc = T::ZERO;
            for n in 0..g.n {
                for oh in lo_h..hi_h {
                    let ih = ih0 + (oh - lo_h) * g.stride[0];
                    // SAFETY: both strided rows stay inside dy and x for
                    // the hi - lo valid columns.
                    acc += unsafe {
                        let d = dy.row(n, ch, oh).add(lo * dy.st[3]);
                        let xv = x.row(n, ch, ih).add(iw * x.st[3]);
                        dot(hi - lo, d, dy.st[3], xv, g.stride[1] * x.st[3])
                    };
                }
            }
            *o = acc;
        }
    });
}
