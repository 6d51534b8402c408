//! `conv2d` forward as a direct convolution in a channel-blocked layout,
//! for f32 on the tiers that have its kernels (AVX2, AVX-512).
//!
//! Work is split into items of one image and a band of output rows. Each
//! item copies the input rows its band reads into per-thread scratch as
//! `[C/cblk][rows][padded width][cblk]` (channel blocks innermost, the
//! padding written as zeros, so the kernels never test a bound), then
//! runs the micro-kernels of `simd/conv_blocked.rs` over tiles of output
//! pixels and `blocks x lanes` output channels into a pixel-major scratch
//! `[pixels][channels]`, which the tier's transpose writes to the NCHW
//! output with the bias. The weights are repacked once per call to the
//! order the kernels read, `[group][C/cblk][R][S][cblk][blocks lanes]`, with
//! zeros past `K`.
//!
//! No `im2col` matrix is built: the input is copied once per band (with
//! `R - stride` rows of overlap), against `R S` times per pixel for
//! `im2col`.

use std::any::TypeId;

use super::geom::Geom;
use super::im2col::Image;
use super::kernels::{self, ConvKernels, TileArgs};
use crate::gemm::{with_scratch_pair, GemmScalar, PAR_MIN_WORK};
use crate::strided::View;
use crate::threads;

/// Bytes of packed weights the kernels stream per pass over the input
/// channels: more channel blocks are split into passes that add to the
/// output tile, so the weights of a pass stay in L2 while its tiles run.
const WEIGHT_BYTES: usize = 256 << 10;

/// Output pixels per item, about: bounds the pixel-major scratch and the
/// copied input band to a few hundred KiB.
const ITEM_PIXELS: usize = 448;

/// How one convolution runs on this path.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) kern: &'static ConvKernels,
    /// Channels per input block.
    pub(super) cblk: usize,
    /// Input channel blocks (`C / cblk`).
    pub(super) cbn: usize,
    /// Output channels per tile (`blocks lanes`).
    pub(super) ocg: usize,
    /// Tiles of output channels (`ceil(K / ocg)`).
    pub(super) groups: usize,
    /// Channel blocks per pass over the weights.
    pub(super) pass: usize,
    /// Output rows per item.
    pub(super) rows: usize,
    /// Padded input width the band holds.
    pub(super) wp: usize,
}

impl Plan {
    /// The plan for `g` with `kern`, or `None` where this path does not
    /// serve: grouped convolutions, and output channel counts that would
    /// leave more than a quarter of the tiles' lanes idle.
    pub(super) fn new(g: &Geom, kern: &'static ConvKernels) -> Option<Plan> {
        let ocg = kern.blocks * kern.lanes;
        let groups = g.k.div_ceil(ocg);
        if g.groups != 1 || g.k == 0 || 4 * (groups * ocg - g.k) > groups * ocg {
            return None;
        }
        let cblk = channel_block(g.c, kern.lanes);
        let per_block = cblk * g.r * g.s * ocg * 4;
        Some(Plan {
            kern,
            cblk,
            cbn: g.c / cblk,
            ocg,
            groups,
            pass: (WEIGHT_BYTES / per_block.max(1)).max(1),
            rows: ITEM_PIXELS.div_ceil(g.ow.max(1)).clamp(1, g.oh.max(1)),
            wp: (g.ow - 1) * g.stride[1] + (g.s - 1) * g.dil[1] + 1,
        })
    }

    /// Elements of the blocked input band of a full item (see
    /// [`copy_band`]).
    pub(super) fn band_len(&self, g: &Geom) -> usize {
        self.cbn * self.band_rows(g, self.rows) * self.wp * self.cblk
    }

    /// Input rows a band of `rows` output rows reads.
    pub(super) fn band_rows(&self, g: &Geom, rows: usize) -> usize {
        (rows - 1) * g.stride[0] + (g.r - 1) * g.dil[0] + 1
    }
}

/// The plan for convolving `x` with geometry `g` on this path, where it
/// serves: `T` is f32 (so a plan's existence proves it), the tier has
/// blocked kernels, and it is not a pointwise convolution that multiplies
/// the input planes in place.
pub(super) fn plan<T: GemmScalar>(x: &View<T>, g: &Geom) -> Option<Plan> {
    if TypeId::of::<T>() != TypeId::of::<f32>() || g.direct_stride(&Image::of(x).st).is_some() {
        return None;
    }
    kernels::table().and_then(|k| Plan::new(g, k))
}

/// `s` read as f32.
///
/// # Safety
/// `T` is f32 (as a [`plan`] for it shows).
pub(super) unsafe fn as_f32<T: 'static>(s: &[T]) -> &[f32] {
    debug_assert_eq!(TypeId::of::<T>(), TypeId::of::<f32>());
    // SAFETY: the same type, per the caller.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
}

/// [`as_f32`] for a writable slice.
///
/// # Safety
/// As [`as_f32`].
pub(super) unsafe fn as_f32_mut<T: 'static>(s: &mut [T]) -> &mut [f32] {
    debug_assert_eq!(TypeId::of::<T>(), TypeId::of::<f32>());
    // SAFETY: the same type, per the caller.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
}

/// Pixels of the next tile with `left` pixels of a row to go and tiles of
/// at most `max`: the widest, except that a tail narrower than half a tile
/// is balanced with the tile before it (6 + 2 runs as 4 + 4: narrow tiles
/// load as many weights for fewer multiply-adds).
pub(super) fn tile_width(left: usize, max: usize) -> usize {
    if left > max && 2 * (left - max) < max {
        left.div_ceil(2)
    } else {
        left.min(max)
    }
}

/// How the last pass over the weights warms the output lines a row's
/// tiles are about to be written to, while the kernels compute.
#[derive(Debug, Clone, Copy)]
enum Warm {
    /// An NCHW row the transpose writes after the band: channel `k < kg`
    /// of it at `y + k ohw`, one 16-pixel line per channel at a time.
    Planes {
        y: *const f32,
        ohw: usize,
        kg: usize,
    },
    /// Tiles stored straight into a channels-last output: the next tile's
    /// contiguous outputs.
    NextTile,
}

/// Asks for the cache line at `p` (a hint: any address is allowed).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86-64 baseline; a prefetch never faults.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Channels per input block: the lanes when they divide `c`, all of `c`
/// when it is smaller, else the largest divisor of `c` below the lanes.
fn channel_block(c: usize, lanes: usize) -> usize {
    if c <= lanes {
        return c.max(1);
    }
    (1..=lanes)
        .rev()
        .find(|&d| c.is_multiple_of(d))
        .unwrap_or(1)
}

/// Everything the items of one call share.
struct Call<'a> {
    plan: &'a Plan,
    g: &'a Geom,
    x: Image<f32>,
    /// Packed weights, `[group][C/cblk][R][S][cblk][ocg]`.
    w: Vec<f32>,
    bias: Option<&'a [f32]>,
    y: *mut f32,
    /// `y` is channels-last (`[N, OH, OW, K]` in memory), else NCHW.
    nhwc: bool,
}

// SAFETY: items write disjoint bands of `y`; everything else is read.
unsafe impl Sync for Call<'_> {}

/// Runs `conv2d` on this path.
///
/// # Safety
/// `x` views an input of `g`'s shape, `w` is the contiguous `[K, C, R, S]`
/// filter, `bias` has `K` entries, and `y` is the writable `[N, K, OH,
/// OW]` output aliasing no input: contiguous, or channels-last (dense
/// `[N, OH, OW, K]` memory) when `nhwc`.
pub(super) unsafe fn forward(
    plan: &Plan,
    x: Image<f32>,
    (w, bias): (&[f32], Option<&[f32]>),
    y: *mut f32,
    nhwc: bool,
    g: &Geom,
) {
    let call = Call {
        plan,
        g,
        x,
        w: pack_weights(plan, w, g),
        bias,
        y,
        nhwc,
    };
    let bands = g.oh.div_ceil(plan.rows);
    let items = g.n * bands;
    let band_len = plan.band_len(g);
    let t_len = plan.rows * g.ow * plan.ocg;
    let run = |i: usize| {
        with_scratch_pair::<f32, _>(band_len, t_len, |band, t| {
            // SAFETY: item i writes only its own band of y.
            unsafe { call.item(i / bands, i % bands, band, t) }
        })
    };
    if threads::num_threads() > 1 && g.work() >= PAR_MIN_WORK {
        threads::for_each_index(items, run);
    } else {
        (0..items).for_each(run);
    }
}

/// The filter `[K, C, R, S]` in the kernels' order, zero past `K`.
fn pack_weights(plan: &Plan, w: &[f32], g: &Geom) -> Vec<f32> {
    let (ocg, cblk) = (plan.ocg, plan.cblk);
    let mut out = vec![0f32; plan.groups * g.c * g.r * g.s * ocg];
    let mut i = 0;
    for grp in 0..plan.groups {
        for b in 0..plan.cbn {
            for r in 0..g.r {
                for s in 0..g.s {
                    for ci in 0..cblk {
                        let c = b * cblk + ci;
                        for o in 0..ocg {
                            let k = grp * ocg + o;
                            if k < g.k {
                                out[i + o] = w[((k * g.c + c) * g.r + r) * g.s + s];
                            }
                        }
                        i += ocg;
                    }
                }
            }
        }
    }
    out
}

impl Call<'_> {
    /// Output rows `band rows..` of image `n`, every channel.
    ///
    /// # Safety
    /// No other item writes this band of `y`; `band` and `t` hold the
    /// lengths [`forward`] gives them.
    unsafe fn item(&self, n: usize, band: usize, xb: &mut [f32], t: &mut [f32]) {
        let (p, g) = (self.plan, self.g);
        let oh0 = band * p.rows;
        let oh1 = (oh0 + p.rows).min(g.oh);
        let in_rows = p.band_rows(g, oh1 - oh0);
        // SAFETY: x views an input of g's shape (caller).
        unsafe { copy_band((p, g), &self.x, (n, oh0, in_rows), xb) };
        let pixels = (oh1 - oh0) * g.ow;
        let ohw = g.oh * g.ow;
        let per_block = p.cblk * g.r * g.s * p.ocg;
        // Channels-last output with whole tiles: the kernels write it.
        let direct = self.nhwc && g.k.is_multiple_of(p.ocg);
        // Pixel 0 of the band, channel 0.
        let band_nhwc = (n * ohw + oh0 * g.ow) * g.k;
        for grp in 0..p.groups {
            let k0 = grp * p.ocg;
            let kg = p.ocg.min(g.k - k0);
            let bias = self.bias.map(|b| &b[k0..k0 + kg]);
            // Where the tiles go: straight into y, or the pixel-major t.
            let (out, out_pix) = if direct {
                // SAFETY: pixels of the band, channels k0.. of image n are ours.
                (unsafe { self.y.add(band_nhwc + k0) }, g.k)
            } else {
                (t.as_mut_ptr(), p.ocg)
            };
            let mut acc = false;
            if let (true, Some(b)) = (direct, bias) {
                for px in 0..pixels {
                    // SAFETY: pixel px of the band, kg = ocg channels from k0.
                    let o = unsafe { std::slice::from_raw_parts_mut(out.add(px * g.k), kg) };
                    o.copy_from_slice(b);
                }
                acc = true;
            }
            let warm = |row: usize| match (self.nhwc, direct) {
                (false, _) => Some(Warm::Planes {
                    y: self
                        .y
                        .wrapping_add((n * g.k + k0) * ohw + (oh0 + row) * g.ow),
                    ohw,
                    kg,
                }),
                (true, true) => Some(Warm::NextTile),
                // The tiles go to t, which stays in cache.
                (true, false) => None,
            };
            let wg = &self.w[grp * p.cbn * per_block..];
            for b0 in (0..p.cbn).step_by(p.pass) {
                let args = self.args(b0, in_rows, out_pix);
                let x0 = xb[b0 * args.x_cb..].as_ptr();
                let w0 = wg[b0 * per_block..].as_ptr();
                let last = b0 + p.pass >= p.cbn;
                for row in 0..oh1 - oh0 {
                    let o = out.wrapping_add(row * g.ow * out_pix);
                    let pf = if last { warm(row) } else { None };
                    // SAFETY: the band holds rows row sh .. + R dh of every
                    // block, wp wide; the tiles stay inside row `row` of
                    // the output block.
                    unsafe { self.row(&args, (x0, w0), row, o, acc || b0 > 0, pf) };
                }
            }
            // SAFETY: t holds the band's tiles (pixels rows of ocg >= kg);
            // channels k0..k0+kg of the band's pixels are this item's.
            unsafe {
                if self.nhwc && !direct {
                    let y0 = self.y.add(band_nhwc + k0);
                    for (px, tp) in t.chunks_exact(p.ocg).take(pixels).enumerate() {
                        for (k, &v) in tp[..kg].iter().enumerate() {
                            *y0.add(px * g.k + k) = v + bias.map_or(0.0, |b| b[k]);
                        }
                    }
                } else if !self.nhwc {
                    let y0 = self.y.add((n * g.k + k0) * ohw + oh0 * g.ow);
                    (p.kern.transpose)(t.as_ptr(), p.ocg, y0, ohw, (pixels, kg), bias);
                }
            }
        }
    }

    /// The tile arguments of the pass from channel block `b0`, for a band
    /// of `in_rows` input rows and outputs `out_pix` apart.
    fn args(&self, b0: usize, in_rows: usize, out_pix: usize) -> TileArgs {
        let (p, g) = (self.plan, self.g);
        TileArgs {
            cbn: (b0 + p.pass).min(p.cbn) - b0,
            cblk: p.cblk,
            r: g.r,
            s: g.s,
            x_cb: in_rows * p.wp * p.cblk,
            x_row: g.dil[0] * p.wp * p.cblk,
            x_tap: g.dil[1] * p.cblk,
            x_pix: g.stride[1] * p.cblk,
            out_pix,
        }
    }

    /// One output row of one channel tile: tiles of the widest kernel, then
    /// one call for the rest.
    ///
    /// # Safety
    /// As in [`Self::item`]: `x0` and `w0` start the pass's input band and
    /// weights, `out_row` holds `OW` pixels `a.out_pix` apart.
    unsafe fn row(
        &self,
        a: &TileArgs,
        (x0, w0): (*const f32, *const f32),
        row: usize,
        out_row: *mut f32,
        acc: bool,
        warm: Option<Warm>,
    ) {
        let (p, g) = (self.plan, self.g);
        let max = p.kern.max_pixels();
        let xr = row * g.stride[0] * p.wp * p.cblk;
        let (mut ow, mut warmed) = (0, 0);
        while ow < g.ow {
            let np = tile_width(g.ow - ow, max);
            match warm {
                Some(Warm::Planes { y, ohw, kg }) => {
                    while warmed < ow + np {
                        for k in 0..kg {
                            prefetch(y.wrapping_add(k * ohw + warmed));
                        }
                        warmed += 16;
                    }
                }
                Some(Warm::NextTile) => {
                    let next = out_row.wrapping_add((ow + np) * a.out_pix);
                    for line in (0..np * a.out_pix).step_by(16) {
                        prefetch(next.wrapping_add(line));
                    }
                }
                None => {}
            }
            // SAFETY: pixels ow..ow+np of the row: the band holds their
            // receptive fields and out_row their outputs (caller).
            unsafe {
                p.kern.tile(
                    np,
                    a,
                    x0.add(xr + ow * a.x_pix),
                    w0,
                    out_row.add(ow * a.out_pix),
                    acc,
                )
            };
            ow += np;
        }
    }
}

/// Copies input rows `oh0 sh - ph ..` (`in_rows` of them) of image `n`
/// into `xb` as `[C/cblk][in_rows][wp][cblk]`, zeros outside the input.
///
/// # Safety
/// `x` views an input of `g`'s shape; `xb` holds `cbn in_rows wp cblk`.
pub(super) unsafe fn copy_band(
    (p, g): (&Plan, &Geom),
    x: &Image<f32>,
    (n, oh0, in_rows): (usize, usize, usize),
    xb: &mut [f32],
) {
    let (cblk, wp) = (p.cblk, p.wp);
    let ih0 = (oh0 * g.stride[0]) as isize - g.pad[0] as isize;
    let pw = g.pad[1];
    // Columns of the band that hold input: iw = col - pw in 0..W.
    let (c0, c1) = (pw.min(wp), (pw + g.w).min(wp));
    for b in 0..p.cbn {
        for r in 0..in_rows {
            let dst = &mut xb[((b * in_rows) + r) * wp * cblk..][..wp * cblk];
            let ih = ih0 + r as isize;
            if ih < 0 || ih >= g.h as isize {
                dst.fill(0.0);
                continue;
            }
            dst[..c0 * cblk].fill(0.0);
            dst[c1 * cblk..].fill(0.0);
            let (sw, d) = (x.st[3], dst[c0 * cblk..c1 * cblk].as_mut_ptr());
            // SAFETY: (n, b cblk, ih) lies inside the input.
            let src = unsafe { x.row(n, b * cblk, ih as usize) };
            if x.st[1] == 1 {
                // Channels contiguous (channels-last): cblk values per pixel.
                for (j, px) in dst[c0 * cblk..c1 * cblk].chunks_exact_mut(cblk).enumerate() {
                    // SAFETY: pixel j < W of the row, channels b cblk.. of it.
                    let from = unsafe { std::slice::from_raw_parts(src.add(j * sw), cblk) };
                    px.copy_from_slice(from);
                }
                continue;
            }
            if sw == 1 {
                let shape = (cblk, c1 - c0);
                // SAFETY: cblk rows of c1 - c0 columns, planes st[1]
                // apart, into (c1 - c0) pixels of cblk channels.
                unsafe { (p.kern.transpose)(src, x.st[1], d, cblk, shape, None) };
                continue;
            }
            for ci in 0..cblk {
                // SAFETY: (n, b cblk + ci, ih) lies inside the input.
                let src = unsafe { x.row(n, b * cblk + ci, ih as usize) };
                for j in 0..c1 - c0 {
                    // SAFETY: column j < W of that row; d holds (c1 - c0) cblk.
                    unsafe { *d.add(j * cblk + ci) = *src.add(j * sw) };
                }
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

    /// Every tier's blocked tables this machine runs, with the tier.
    fn tables() -> Vec<(Isa, &'static ConvKernels)> {
        [Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter_map(|isa| Some((isa, &*Box::leak(Box::new(table_for(isa)?)))))
            .collect()
    }

    /// `conv2d` of a dense input in f64, the reference.
    fn naive(g: &Geom, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
        let ohw = g.oh * g.ow;
        let mut y: Vec<f64> = (0..g.n * g.k * ohw)
            .map(|i| b[i / ohw % g.k] as f64)
            .collect();
        g.for_each_tap(|yi, xi, wi| y[yi] += x[xi] as f64 * w[wi] as f64);
        y
    }

    #[test]
    fn every_tier_matches_the_reference() {
        // (x [N, C, H, W], w [K, R, S], stride, pad, dilation)
        let cases = [
            ([2, 3, 15, 13], [64, 7, 7], 2, 3, 1),
            ([1, 32, 9, 11], [48, 3, 3], 1, 1, 1),
            ([2, 24, 7, 10], [64, 3, 3], 1, 2, 2),
            ([1, 17, 5, 23], [80, 2, 3], 2, 1, 1),
            ([2, 16, 9, 9], [64, 1, 1], 2, 0, 1),
            ([1, 128, 6, 7], [64, 3, 3], 1, 1, 1),
            ([1, 512, 4, 5], [16, 3, 3], 1, 1, 1),
            ([1, 8, 1, 1], [16, 1, 1], 1, 0, 1),
        ];
        let mut rng = Rng::new(9);
        for (isa, t) in tables() {
            let mut ran = 0;
            for ([n, c, h, wd], [k, r, s], st, pad, dil) in cases {
                let oh = (h + 2 * pad - dil * (r - 1) - 1) / st + 1;
                let ow = (wd + 2 * pad - dil * (s - 1) - 1) / st + 1;
                let p = Conv2dParams {
                    struct_size: std::mem::size_of::<Conv2dParams>() as u64,
                    stride: [st as i64; 2],
                    padding: [pad as i64; 2],
                    dilation: [dil as i64; 2],
                    groups: 1,
                };
                let g =
                    Geom::new("test", &p, &[n, c, h, wd], &[k, c, r, s], &[n, k, oh, ow]).unwrap();
                let Some(plan) = Plan::new(&g, t) else {
                    continue;
                };
                ran += 1;
                let x: Vec<f32> = rng.vec(n * c * h * wd, -1.0, 1.0);
                let w: Vec<f32> = rng.vec(k * c * r * s, -1.0, 1.0);
                let b: Vec<f32> = rng.vec(k, -1.0, 1.0);
                let xi = Image::dense(x.as_ptr().cast_mut(), c, h, wd);
                let want = naive(&g, &x, &w, &b);
                let tol = (c * r * s + 2) as f64 * f32::EPSILON as f64 * 4.0;
                for nhwc in [false, true] {
                    let mut y = vec![f32::NAN; n * k * oh * ow];
                    // SAFETY: dense buffers of the geometry's shapes.
                    unsafe { forward(&plan, xi, (&w, Some(&b)), y.as_mut_ptr(), nhwc, &g) };
                    for (i, &want) in want.iter().enumerate() {
                        // Element i is (img, ch, pixel) in NCHW order.
                        let (img, ch, px) = (i / (k * oh * ow), i / (oh * ow) % k, i % (oh * ow));
                        let got = if nhwc {
                            y[(img * oh * ow + px) * k + ch]
                        } else {
                            y[i]
                        };
                        assert!(
                            (got as f64 - want).abs() <= tol * (1.0 + want.abs()),
                            "{isa} nhwc {nhwc} {:?} at {i}: {got} vs {want}",
                            (n, c, h, wd, k, r, s)
                        );
                    }
                }
            }
            assert!(ran >= 5, "{isa}: only {ran} cases took the blocked path");
        }
    }

    #[test]
    fn tiles_cover_the_row_without_narrow_tails() {
        for max in 1..=8 {
            for ow in 1..40 {
                let (mut left, mut widths) = (ow, Vec::new());
                while left > 0 {
                    let w = tile_width(left, max);
                    assert!((1..=max).contains(&w), "max {max} ow {ow}: {w}");
                    widths.push(w);
                    left -= w;
                }
                if ow >= max {
                    let narrowest = *widths.iter().min().unwrap();
                    assert!(2 * narrowest >= max, "max {max} ow {ow}: {widths:?}");
                }
            }
        }
    }

    #[test]
    fn channel_blocks_divide_the_channels() {
        assert_eq!(channel_block(64, 16), 16);
        assert_eq!(channel_block(3, 16), 3);
        assert_eq!(channel_block(24, 16), 12);
        assert_eq!(channel_block(17, 8), 1);
        assert_eq!(channel_block(0, 8), 1);
    }
}
