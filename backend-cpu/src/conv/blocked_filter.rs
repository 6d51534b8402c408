//! `conv2d_backward_filter` for f32 on the tiers with blocked kernels: a
//! direct reduction over output pixels, no `im2col`.
//!
//! Per image and band of output rows (as in [`super::blocked`]): the input
//! rows are copied into the channel-blocked band, the band's output
//! gradient is transposed pixel-major (`[pixels][K]`), and tiles of up to
//! six (tap, channel) items by `blocks x lanes` output channels accumulate
//! `sum over pixels of x dy` in registers for the whole band. With no
//! dilation along W the items of one filter row are consecutive elements
//! of a band row, so a tile reads them at one offset. The sums land in the
//! forward pass's packed weight order, `[group][C/cblk][R][S][cblk][ocg]`,
//! one buffer per chunk of images (one chunk per thread, summed in order),
//! and are unpacked into `[K, C, R, S]` at the end.

use rayon::prelude::*;

use super::blocked::{copy_band, tile_width, Plan};
use super::geom::Geom;
use super::im2col::Image;
use super::kernels::GradArgs;
use crate::gemm::with_scratch_pair;
use crate::threads;

/// Whether the blocked filter gradient serves `g` (planned as `plan`):
/// no dilation along W.
pub(super) fn serves(g: &Geom) -> bool {
    g.dil[1] == 1
}

/// Runs `conv2d_backward_filter` into the contiguous `dw`, images split
/// into `chunks` summed in order.
///
/// # Safety
/// `x` and `dy` view an input and an output gradient of `g`'s shapes;
/// `dw` holds `K C R S`.
pub(super) unsafe fn backward_filter(
    plan: &Plan,
    (x, dy): (Image<f32>, Image<f32>),
    dw: &mut [f32],
    g: &Geom,
    chunks: usize,
) {
    let len = plan.groups * g.c * g.r * g.s * plan.ocg;
    let per = g.n.div_ceil(chunks.max(1)).max(1);
    let mut parts: Vec<Vec<f32>> = (0..g.n.div_ceil(per)).map(|_| vec![0f32; len]).collect();
    let run = |(i, part): (usize, &mut Vec<f32>)| {
        for n in i * per..((i + 1) * per).min(g.n) {
            // SAFETY: forwarded; each chunk writes its own sums.
            unsafe { image(plan, (&x, &dy), n, part, g) };
        }
    };
    if parts.len() > 1 {
        threads::install(|| parts.par_iter_mut().enumerate().for_each(run));
    } else {
        parts.iter_mut().enumerate().for_each(run);
    }
    let first = super::sum_in_order(&mut parts);
    unpack(plan, first, dw, g);
}

/// Adds image `n`'s filter gradient to `acc` (packed order), band by band.
///
/// # Safety
/// As [`backward_filter`].
unsafe fn image(
    plan: &Plan,
    (x, dy): (&Image<f32>, &Image<f32>),
    n: usize,
    acc: &mut [f32],
    g: &Geom,
) {
    let kp = plan.groups * plan.ocg;
    let band_len = plan.band_len(g);
    with_scratch_pair::<f32, _>(band_len, plan.rows * g.ow * kp, |xb, dt| {
        for oh0 in (0..g.oh).step_by(plan.rows) {
            let rows = plan.rows.min(g.oh - oh0);
            let in_rows = plan.band_rows(g, rows);
            // SAFETY: x views an input of g's shape; xb holds the band.
            unsafe { copy_band((plan, g), x, (n, oh0, in_rows), xb) };
            // SAFETY: dy views an output gradient of g's shape.
            unsafe { gradient_rows(plan, dy, (n, oh0, rows), dt, g) };
            // SAFETY: the band and its gradient as the tiles read them.
            unsafe { band(plan, (xb, dt), (rows, in_rows), acc, g) };
        }
    });
}

/// The tiles of one band: every group, channel block, filter row and run
/// of (tap, channel) items.
///
/// # Safety
/// `xb` holds the band of `in_rows` input rows, `dt` the pixel-major
/// gradient of its `rows` output rows.
unsafe fn band(
    plan: &Plan,
    (xb, dt): (&[f32], &[f32]),
    (rows, in_rows): (usize, usize),
    acc: &mut [f32],
    g: &Geom,
) {
    let (cblk, wp, ocg) = (plan.cblk, plan.wp, plan.ocg);
    let kp = plan.groups * ocg;
    let args = GradArgs {
        rows,
        ow: g.ow,
        x_row: g.stride[0] * wp * cblk,
        x_pix: g.stride[1] * cblk,
        dy_row: g.ow * kp,
        dy_pix: kp,
        out_ld: ocg,
    };
    let items = g.s * cblk;
    let max = plan.kern.grads.len();
    let x_cb = in_rows * wp * cblk;
    for grp in 0..plan.groups {
        let dy0 = dt[grp * ocg..].as_ptr();
        for b in 0..plan.cbn {
            for r in 0..g.r {
                let x0 = xb[b * x_cb + r * g.dil[0] * wp * cblk..].as_ptr();
                let row0 = ((grp * plan.cbn + b) * g.r + r) * items;
                let mut q = 0;
                while q < items {
                    let np = tile_width(items - q, max);
                    let out = acc[(row0 + q) * ocg..(row0 + q + np) * ocg].as_mut_ptr();
                    // SAFETY: items q..q+np of filter row r read the band
                    // at x0 + q (consecutive with no dilation along W) for
                    // every pixel, and dt's group grp; out holds np rows.
                    unsafe { (plan.kern.grads[np - 1])(&args, x0.add(q), dy0, out) };
                    q += np;
                }
            }
        }
    }
}

/// Output rows `oh0..oh0 + rows` of image `n`'s gradient, pixel-major with
/// `groups ocg` channels per pixel (zeros past `K`), into `dt`.
///
/// # Safety
/// `dy` views an output gradient of `g`'s shape; `dt` holds `rows OW kp`.
unsafe fn gradient_rows(
    plan: &Plan,
    dy: &Image<f32>,
    (n, oh0, rows): (usize, usize, usize),
    dt: &mut [f32],
    g: &Geom,
) {
    let kp = plan.groups * plan.ocg;
    if kp > g.k {
        dt[..rows * g.ow * kp].fill(0.0);
    }
    for row in 0..rows {
        // SAFETY: (n, 0, oh0 + row) lies inside dy.
        let src = unsafe { dy.row(n, 0, oh0 + row) };
        let dst = dt[row * g.ow * kp..].as_mut_ptr();
        if dy.st[3] == 1 {
            // SAFETY: K rows of OW contiguous values, planes st[1] apart,
            // into OW pixels of kp >= K channels.
            unsafe { (plan.kern.transpose)(src, dy.st[1], dst, kp, (g.k, g.ow), None) };
            continue;
        }
        for k in 0..g.k {
            for j in 0..g.ow {
                // SAFETY: (n, k, oh0 + row, j) is inside dy; dst holds OW kp.
                unsafe { *dst.add(j * kp + k) = *src.add(k * dy.st[1] + j * dy.st[3]) };
            }
        }
    }
}

/// `dw[k, c, r, s]` from the packed sums.
fn unpack(plan: &Plan, acc: &[f32], dw: &mut [f32], g: &Geom) {
    let (cblk, ocg) = (plan.cblk, plan.ocg);
    for (k, dk) in dw.chunks_exact_mut(g.c * g.r * g.s).enumerate() {
        let (grp, o) = (k / ocg, k % ocg);
        for (c, dc) in dk.chunks_exact_mut(g.r * g.s).enumerate() {
            let (b, ci) = (c / cblk, c % cblk);
            for (rs, v) in dc.iter_mut().enumerate() {
                let row =
                    ((grp * plan.cbn + b) * g.r + rs / g.s) * g.s * cblk + (rs % g.s) * cblk + ci;
                *v = acc[row * ocg + o];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernels::table_for;
    use super::*;
    use crate::isa::Isa;
    use crate::testing::Rng;
    use sunrise_backend_api::ops::Conv2dParams;

    /// `dw` of dense `x` and `dy` in f64, the reference.
    fn naive(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f64> {
        let mut dw = vec![0f64; g.k * g.c * g.r * g.s];
        g.for_each_tap(|yi, xi, wi| dw[wi] += dy[yi] as f64 * x[xi] as f64);
        dw
    }

    #[test]
    fn every_tier_matches_the_reference() {
        // (x [N, C, H, W], w [K, R, S], stride, pad, dilation (h, w))
        let cases = [
            ([3, 3, 15, 13], [64, 7, 7], 2, 3, [1, 1]),
            ([1, 32, 9, 11], [48, 3, 3], 1, 1, [1, 1]),
            ([2, 24, 7, 10], [64, 3, 3], 1, 2, [2, 1]),
            ([1, 17, 5, 23], [80, 2, 3], 2, 1, [1, 1]),
            ([2, 16, 9, 9], [64, 1, 1], 2, 0, [1, 1]),
            ([1, 128, 6, 7], [64, 3, 3], 1, 1, [1, 1]),
            ([1, 512, 4, 5], [16, 3, 3], 1, 1, [1, 1]),
            ([1, 8, 1, 1], [16, 1, 1], 1, 0, [1, 1]),
        ];
        let mut rng = Rng::new(11);
        for isa in [Isa::Avx2, Isa::Avx512] {
            let Some(t) = table_for(isa) else { continue };
            let t: &'static _ = Box::leak(Box::new(t));
            let mut ran = 0;
            for ([n, c, h, wd], [k, r, s], st, pad, dil) in cases {
                let oh = (h + 2 * pad - dil[0] * (r - 1) - 1) / st + 1;
                let ow = (wd + 2 * pad - dil[1] * (s - 1) - 1) / st + 1;
                let p = Conv2dParams {
                    struct_size: std::mem::size_of::<Conv2dParams>() as u64,
                    stride: [st as i64; 2],
                    padding: [pad as i64; 2],
                    dilation: [dil[0] as i64, dil[1] as i64],
                    groups: 1,
                };
                let g =
                    Geom::new("test", &p, &[n, c, h, wd], &[k, c, r, s], &[n, k, oh, ow]).unwrap();
                let Some(plan) = Plan::new(&g, t).filter(|_| serves(&g)) else {
                    continue;
                };
                ran += 1;
                let x: Vec<f32> = rng.vec(n * c * h * wd, -1.0, 1.0);
                let dy: Vec<f32> = rng.vec(n * k * oh * ow, -1.0, 1.0);
                let want = naive(&g, &x, &dy);
                let tol = (n * oh * ow + 2) as f64 * f32::EPSILON as f64 * 4.0;
                for chunks in [1, 2] {
                    let mut dw = vec![f32::NAN; k * c * r * s];
                    let xi = Image::dense(x.as_ptr().cast_mut(), c, h, wd);
                    let di = Image::dense(dy.as_ptr().cast_mut(), k, oh, ow);
                    // SAFETY: dense buffers of the geometry's shapes.
                    unsafe { backward_filter(&plan, (xi, di), &mut dw, &g, chunks) };
                    for (i, (&got, &want)) in dw.iter().zip(&want).enumerate() {
                        assert!(
                            (got as f64 - want).abs() <= tol * (1.0 + want.abs()),
                            "{isa} chunks {chunks} {:?} at {i}: {got} vs {want}",
                            (n, c, h, wd, k, r, s)
                        );
                    }
                }
            }
            assert!(ran >= 5, "{isa}: only {ran} cases took the blocked path");
        }
    }
}
