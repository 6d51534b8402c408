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
    threads::num_threads() > 1 && work >= threads::PAR_THRESHOLD
}

/// Runs `job` on every `chunk`-long piece of `out`, with its index, on the
/// pool when `par`.
fn for_each_chunk<T: Float>(
    out: &mut [T],
    chunk: usize,
    par: bool,
    job: impl Fn(usize, &mut [T]) + Sync + Send,
) {
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
    let rs = g.r * g.s;
    for_each_chunk(ys, ohw, parallel(g), |idx, out| {
        let (n, ch) = (idx / g.c, idx % g.c);
        out.fill(bias.map_or(T::ZERO, |b| b[ch]));
        for r in 0..g.r {
            let offh = g.tap(0, r);
            let (lo_h, hi_h) = valid_range(g.oh, g.stride[0], offh, g.h);
            for oh in lo_h..hi_h {
                let ih = ((oh * g.stride[0]) as isize + offh) as usize;
                let orow = &mut out[oh * g.ow..][..g.ow];
                for s in 0..g.s {
                    let offw = g.tap(1, s);
                    let (lo, hi) = valid_range(g.ow, g.stride[1], offw, g.w);
                    if lo < hi {
                        let iw = ((lo * g.stride[1]) as isize + offw) as usize;
                        // SAFETY: (n, ch, ih, iw + j stride) is inside x for j < hi - lo.
                        unsafe {
                            let src = x.row(n, ch, ih).add(iw * x.st[3]);
                            axpy_from(
                                &mut orow[lo..hi],
                                w[ch * rs + r * g.s + s],
                                src,
                                g.stride[1] * x.st[3],
                            );
                        }
                    }
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
    let rs = g.r * g.s;
    for_each_chunk(dxs, hw, parallel(g), |idx, plane| {
        let (n, ch) = (idx / g.c, idx % g.c);
        for r in 0..g.r {
            let offh = g.tap(0, r);
            let (lo_h, hi_h) = valid_range(g.oh, g.stride[0], offh, g.h);
            for oh in lo_h..hi_h {
                let ih = ((oh * g.stride[0]) as isize + offh) as usize;
                let xrow = &mut plane[ih * g.w..][..g.w];
                // SAFETY: (n, ch, oh, 0) is inside dy.
                let dyrow = unsafe { dy.row(n, ch, oh) };
                for s in 0..g.s {
                    let wv = w[ch * rs + r * g.s + s];
                    let offw = g.tap(1, s);
                    let (lo, hi) = valid_range(g.ow, g.stride[1], offw, g.w);
                    for j in lo..hi {
                        let iw = ((j * g.stride[1]) as isize + offw) as usize;
                        // SAFETY: column j < OW of the dy row.
                        xrow[iw] += wv * unsafe { *dyrow.add(j * dy.st[3]) };
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
    let rs = g.r * g.s;
    if rs == 0 {
        return;
    }
    for_each_chunk(dw, rs, parallel(g), |ch, taps| {
        for (t, out) in taps.iter_mut().enumerate() {
            let (r, s) = (t / g.s, t % g.s);
            let (offh, offw) = (g.tap(0, r), g.tap(1, s));
            let (lo_h, hi_h) = valid_range(g.oh, g.stride[0], offh, g.h);
            let (lo, hi) = valid_range(g.ow, g.stride[1], offw, g.w);
            let mut acc = T::ZERO;
            if lo < hi {
                let iw = ((lo * g.stride[1]) as isize + offw) as usize;
                for n in 0..g.n {
                    for oh in lo_h..hi_h {
                        let ih = ((oh * g.stride[0]) as isize + offh) as usize;
                        // SAFETY: both strided rows stay inside dy and x for
                        // the hi - lo valid columns.
                        acc += unsafe {
                            let d = dy.row(n, ch, oh).add(lo * dy.st[3]);
                            let xv = x.row(n, ch, ih).add(iw * x.st[3]);
                            dot(hi - lo, d, dy.st[3], xv, g.stride[1] * x.st[3])
                        };
                    }
                }
            }
            *out = acc;
        }
    });
}
