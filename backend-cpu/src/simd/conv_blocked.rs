//! The direct-convolution micro-kernels of the channel-blocked path
//! (`conv/blocked.rs`): one output tile of `P` pixels by `OB` blocks of
//! `LANES` output channels, accumulated in `P OB` vector registers over
//! every input channel and filter tap, with no `im2col` in between.
//!
//! Per input channel and tap the kernel loads `OB` weight vectors and
//! broadcasts one input value per pixel: `P + OB` loads for `P OB`
//! multiply-adds. Generic over [`F32x`], instanced per tier as
//! `<isa>_conv_tile_f32_<P>x<OB>` (`avx512_conv_tile_f32_6x4` is 6 pixels
//! by 64 channels); the tier's table ([`ConvKernels`]) holds every pixel
//! count from 1 to its widest tile, so a row's tail runs in one call.

use crate::isa::{self, Isa};
use crate::reduce::kernels::tier_kernels;
use crate::reduce::vec::F32x;
use crate::transpose::{self, TransposeFn};

/// Sizes and strides (in f32 elements) of one tile call.
///
/// The input is read at `x + b x_cb + r x_row + s x_tap + p x_pix + i`
/// for channel block `b < cbn`, filter tap `(r, s)`, output pixel `p` and
/// channel `i < cblk` inside the block; weights are read in that order
/// (`[cbn][r][s][cblk][OB LANES]`); output pixel `p` is the `OB LANES`
/// values at `out + p out_pix`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TileArgs {
    /// Channel blocks.
    pub cbn: usize,
    /// Channels per block.
    pub cblk: usize,
    /// Filter height.
    pub r: usize,
    /// Filter width.
    pub s: usize,
    /// Input stride between channel blocks.
    pub x_cb: usize,
    /// Input stride between filter rows (dilation included).
    pub x_row: usize,
    /// Input stride between filter columns (dilation included).
    pub x_tap: usize,
    /// Input stride between output pixels (the convolution's stride).
    pub x_pix: usize,
    /// Output stride between pixels.
    pub out_pix: usize,
}

/// One tile: `out[p] (+)= sum over b, r, s, i of x[..] w[..]`, adding to
/// what `out` holds when `acc` is true.
///
/// # Safety
/// The CPU supports `S`; every address described by [`TileArgs`] is valid
/// (`x` and `w` for reading, `out` for reading and writing).
#[inline(always)]
unsafe fn conv_tile<S: F32x, const P: usize, const OB: usize>(
    a: &TileArgs,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    acc: bool,
) {
    let l = S::LANES;
    // SAFETY: the CPU supports `S` and the addresses are valid (caller).
    unsafe {
        let mut sum = [[S::splat(0.0); OB]; P];
        if acc {
            for (p, row) in sum.iter_mut().enumerate() {
                for (ob, v) in row.iter_mut().enumerate() {
                    *v = S::load(out.add(p * a.out_pix + ob * l));
                }
            }
        }
        let mut wp = w;
        for b in 0..a.cbn {
            for r in 0..a.r {
                for s in 0..a.s {
                    let xp = x.add(b * a.x_cb + r * a.x_row + s * a.x_tap);
                    for i in 0..a.cblk {
                        let mut wv = [S::splat(0.0); OB];
                        for (ob, v) in wv.iter_mut().enumerate() {
                            *v = S::load(wp.add(ob * l));
                        }
                        for (p, row) in sum.iter_mut().enumerate() {
                            let xv = S::splat(*xp.add(p * a.x_pix + i));
                            for (v, &wo) in row.iter_mut().zip(&wv) {
                                *v = S::fma(xv, wo, *v);
                            }
                        }
                        wp = wp.add(OB * l);
                    }
                }
            }
        }
        for (p, row) in sum.iter().enumerate() {
            for (ob, &v) in row.iter().enumerate() {
                S::store(out.add(p * a.out_pix + ob * l), v);
            }
        }
    }
}

/// Sizes and strides (in f32 elements) of one filter-gradient tile call.
///
/// Item `i < P` of the tile reads the input at `x + row x_row + j x_pix + i`
/// for each output pixel `(row < rows, j < ow)` of a band, and adds its
/// product with the `OB LANES` output-channel gradients at
/// `dy + row dy_row + j dy_pix` to `out + i out_ld`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GradArgs {
    /// Output rows of the band.
    pub rows: usize,
    /// Output pixels per row.
    pub ow: usize,
    /// Input stride between output rows.
    pub x_row: usize,
    /// Input stride between output pixels.
    pub x_pix: usize,
    /// Gradient stride between output rows.
    pub dy_row: usize,
    /// Gradient stride between output pixels.
    pub dy_pix: usize,
    /// Output stride between items.
    pub out_ld: usize,
}

/// One filter-gradient tile: `out[i] += sum over the band's pixels of
/// x[pixel, i] dy[pixel]`, `P` items by `OB` blocks of output channels in
/// registers for the whole band.
///
/// # Safety
/// The CPU supports `S`; every address described by [`GradArgs`] is valid
/// (`x` and `dy` for reading, `out` for reading and writing).
#[inline(always)]
unsafe fn grad_tile<S: F32x, const P: usize, const OB: usize>(
    a: &GradArgs,
    x: *const f32,
    dy: *const f32,
    out: *mut f32,
) {
    let l = S::LANES;
    // SAFETY: the CPU supports `S` and the addresses are valid (caller).
    unsafe {
        let mut sum = [[S::splat(0.0); OB]; P];
        for (i, row) in sum.iter_mut().enumerate() {
            for (ob, v) in row.iter_mut().enumerate() {
                *v = S::load(out.add(i * a.out_ld + ob * l));
            }
        }
        for r in 0..a.rows {
            let (xr, dr) = (x.add(r * a.x_row), dy.add(r * a.dy_row));
            for j in 0..a.ow {
                let mut g = [S::splat(0.0); OB];
                for (ob, v) in g.iter_mut().enumerate() {
                    *v = S::load(dr.add(j * a.dy_pix + ob * l));
                }
                let xp = xr.add(j * a.x_pix);
                for (i, row) in sum.iter_mut().enumerate() {
                    let xv = S::splat(*xp.add(i));
                    for (v, &gv) in row.iter_mut().zip(&g) {
                        *v = S::fma(xv, gv, *v);
                    }
                }
            }
        }
        for (i, row) in sum.iter().enumerate() {
            for (ob, &v) in row.iter().enumerate() {
                S::store(out.add(i * a.out_ld + ob * l), v);
            }
        }
    }
}

/// A filter-gradient tile kernel: `(args, x, dy, out)`.
pub(crate) type GradFn = unsafe fn(&GradArgs, *const f32, *const f32, *mut f32);

/// A tile kernel: `(args, x, w, out, accumulate)`.
pub(crate) type TileFn = unsafe fn(&TileArgs, *const f32, *const f32, *mut f32, bool);

/// The blocked-convolution kernels of one tier.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvKernels {
    /// Output channels per block (the tier's f32 lanes).
    pub lanes: usize,
    /// Blocks of output channels per tile.
    pub blocks: usize,
    /// `tiles[p - 1]` computes `p` pixels, `1 <= p <= tiles.len()`.
    pub tiles: &'static [TileFn],
    /// The tier's transpose (see [`transpose::scalar`]).
    pub transpose: TransposeFn,
    /// `grads[p - 1]` computes `p` filter-gradient items, as `tiles`.
    pub grads: &'static [GradFn],
}

impl ConvKernels {
    /// Pixels of the widest tile.
    pub fn max_pixels(&self) -> usize {
        self.tiles.len()
    }

    /// Runs the `p`-pixel tile, `1 <= p <= max_pixels()`.
    ///
    /// # Safety
    /// As [`conv_tile`] with this table's lanes and blocks.
    pub unsafe fn tile(
        &self,
        p: usize,
        a: &TileArgs,
        x: *const f32,
        w: *const f32,
        out: *mut f32,
        acc: bool,
    ) {
        // SAFETY: the table exists only for a tier this CPU runs; the rest
        // is the caller's.
        unsafe { (self.tiles[p - 1])(a, x, w, out, acc) }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::reduce::vec::{Avx2, Avx512};

    tier_kernels! { "avx512f", Avx512;
        avx512_conv_tile_f32_1x4 = conv_tile::<Avx512, 1, 4> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx512_conv_tile_f32_2x4 = conv_tile::<Avx512, 2, 4> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx512_conv_tile_f32_3x4 = conv_tile::<Avx512, 3, 4> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx512_conv_tile_f32_4x4 = conv_tile::<Avx512, 4, 4> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx512_conv_tile_f32_5x4 = conv_tile::<Avx512, 5, 4> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx512_conv_tile_f32_6x4 = conv_tile::<Avx512, 6, 4> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
    }
    tier_kernels! { "avx2,fma", Avx2;
        avx2_conv_tile_f32_1x2 = conv_tile::<Avx2, 1, 2> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx2_conv_tile_f32_2x2 = conv_tile::<Avx2, 2, 2> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx2_conv_tile_f32_3x2 = conv_tile::<Avx2, 3, 2> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx2_conv_tile_f32_4x2 = conv_tile::<Avx2, 4, 2> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx2_conv_tile_f32_5x2 = conv_tile::<Avx2, 5, 2> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
        avx2_conv_tile_f32_6x2 = conv_tile::<Avx2, 6, 2> [a: &TileArgs, x: *const f32, w: *const f32, o: *mut f32, acc: bool];
    }

    tier_kernels! { "avx512f", Avx512;
        avx512_conv_grad_f32_1x4 = grad_tile::<Avx512, 1, 4> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx512_conv_grad_f32_2x4 = grad_tile::<Avx512, 2, 4> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx512_conv_grad_f32_3x4 = grad_tile::<Avx512, 3, 4> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx512_conv_grad_f32_4x4 = grad_tile::<Avx512, 4, 4> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx512_conv_grad_f32_5x4 = grad_tile::<Avx512, 5, 4> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx512_conv_grad_f32_6x4 = grad_tile::<Avx512, 6, 4> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
    }
    tier_kernels! { "avx2,fma", Avx2;
        avx2_conv_grad_f32_1x2 = grad_tile::<Avx2, 1, 2> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx2_conv_grad_f32_2x2 = grad_tile::<Avx2, 2, 2> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx2_conv_grad_f32_3x2 = grad_tile::<Avx2, 3, 2> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx2_conv_grad_f32_4x2 = grad_tile::<Avx2, 4, 2> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx2_conv_grad_f32_5x2 = grad_tile::<Avx2, 5, 2> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
        avx2_conv_grad_f32_6x2 = grad_tile::<Avx2, 6, 2> [a: &GradArgs, x: *const f32, dy: *const f32, o: *mut f32];
    }

    pub(super) static AVX512_GRAD: [GradFn; 6] = [
        avx512_conv_grad_f32_1x4,
        avx512_conv_grad_f32_2x4,
        avx512_conv_grad_f32_3x4,
        avx512_conv_grad_f32_4x4,
        avx512_conv_grad_f32_5x4,
        avx512_conv_grad_f32_6x4,
    ];
    pub(super) static AVX2_GRAD: [GradFn; 6] = [
        avx2_conv_grad_f32_1x2,
        avx2_conv_grad_f32_2x2,
        avx2_conv_grad_f32_3x2,
        avx2_conv_grad_f32_4x2,
        avx2_conv_grad_f32_5x2,
        avx2_conv_grad_f32_6x2,
    ];

    pub(super) static AVX512: [TileFn; 6] = [
        avx512_conv_tile_f32_1x4,
        avx512_conv_tile_f32_2x4,
        avx512_conv_tile_f32_3x4,
        avx512_conv_tile_f32_4x4,
        avx512_conv_tile_f32_5x4,
        avx512_conv_tile_f32_6x4,
    ];
    pub(super) static AVX2: [TileFn; 6] = [
        avx2_conv_tile_f32_1x2,
        avx2_conv_tile_f32_2x2,
        avx2_conv_tile_f32_3x2,
        avx2_conv_tile_f32_4x2,
        avx2_conv_tile_f32_5x2,
        avx2_conv_tile_f32_6x2,
    ];
}

/// The kernels for `isa`, if that tier has them and this machine runs it.
pub(crate) fn table_for(isa: Isa) -> Option<ConvKernels> {
    if !isa::available_tiers().contains(&isa) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            Isa::Avx512 => {
                return Some(ConvKernels {
                    lanes: 16,
                    blocks: 4,
                    tiles: &x86::AVX512,
                    transpose: transpose::f32_for(isa),
                    grads: &x86::AVX512_GRAD,
                })
            }
            Isa::Avx2 => {
                return Some(ConvKernels {
                    lanes: 8,
                    blocks: 2,
                    tiles: &x86::AVX2,
                    transpose: transpose::f32_for(isa),
                    grads: &x86::AVX2_GRAD,
                })
            }
            _ => {}
        }
    }
    None
}

/// The kernels for the tier in use, if it has them.
pub(crate) fn table() -> Option<&'static ConvKernels> {
    static TABLE: std::sync::OnceLock<Option<ConvKernels>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| table_for(isa::tier())).as_ref()
}
