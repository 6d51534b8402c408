//! The pool family on CUDA: `max_pool2d`, `max_pool2d_backward`,
//! `avg_pool2d`, `avg_pool2d_backward` over NCHW, as the NVRTC kernels of
//! `kernels/pool.cu`. (The core's `global_avg_pool2d` is a `mean` over H
//! and W, so it runs in the reduce family; pooling with the window set to
//! the whole image takes the one-warp-per-window path below.)
//!
//! # Why NVRTC kernels and not cuDNN
//!
//! The issue suggests cuDNN pooling "where it has them". These ops must
//! match the CPU backend exactly: the gradient goes to the FIRST maximum in
//! row-major window order, a NaN counts as the maximum, average pooling
//! honours `count_include_pad`, and `max_pool2d_backward` takes `(x, dy)`
//! without the forward output `y`. cuDNN's `cudnnPoolingBackward` wants `y`
//! and documents no tie rule (which of equal maxima receives the gradient)
//! nor NaN handling, so it cannot be shown to agree; these kernels can, line
//! by line against `backend-cpu/src/pool.rs`.
//!
//! # What runs on the GPU
//!
//! - Forward: one thread per output window, scanning it in the CPU's order
//!   and precision (bitwise the CPU's result); windows of at least
//!   [`WARP_WINDOW`] elements (global pooling, say) get one warp each, with
//!   maxima combined by (value, position) so the first maximum still wins,
//!   and sums accumulated in f64 (f32 averages may then differ from the
//!   CPU's f32 running sum in the last bits).
//! - `max_pool2d_backward`, windows not overlapping (stride >= window): one
//!   thread (or warp) per window finds its first maximum and writes its whole
//!   part of `dx` (`dx` is zeroed first, by a kernel, only where windows
//!   leave gaps).
//! - `max_pool2d_backward`, overlapping windows: the forward kernel records
//!   each window's first-maximum position (`i32`) in a temporary, then one
//!   thread per `dx` element sums the `dy` of the windows whose maximum it
//!   is. A gather, not an atomic scatter: deterministic, and the additions
//!   happen in the CPU's order, so `dx` is bitwise the CPU's. (Planes of
//!   more than `i32::MAX` elements skip the temporary and recompute each
//!   window's maximum in the gather.)
//! - `avg_pool2d_backward`: the same gather with `dy / divisor`.
//!
//! Inputs may be any strided views; outputs must be contiguous (as on the
//! CPU). Validation and error texts follow the CPU backend's.

use cudarc::driver::sys::CUdeviceptr;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::Pool2dParams;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::Ctx;
use crate::elementwise::{check_arity, grid, views, BLOCK};
use crate::kernels::POOL;
use crate::launch::{args, View};

/// Largest kernel, stride or padding accepted (the CPU's limit).
const PARAM_MAX: i64 = i32::MAX as i64;

/// Window area (`kh * kw`) from which a warp, not a thread, reduces each
/// window.
const WARP_WINDOW: i64 = 64;

/// The (op, dtype) pairs of this family: the CPU backend's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    crate::pairs(
        &[
            OpId::MaxPool2d,
            OpId::MaxPool2dBackward,
            OpId::AvgPool2d,
            OpId::AvgPool2dBackward,
        ],
        &[DType::F32, DType::F64],
    )
}

/// Validated pooling sizes, passed by value to every kernel. `#[repr(C)]`:
/// the layout must match `struct PoolGeom` in `kernels/pool.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolGeom {
    n: i64,
    c: i64,
    h: i64,
    w: i64,
    oh: i64,
    ow: i64,
    kh: i64,
    kw: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    /// Average pooling divides by `kh * kw` (1) or by the real elements (0).
    include_pad: i32,
    reserved: i32,
}

fn param(op: OpId, what: &str, v: i64, min: i64) -> Result<i64> {
    if v < min || v > PARAM_MAX {
        return Err(BackendError::invalid(format!(
            "{op}: {what} {v} must be in {min}..={PARAM_MAX}"
        )));
    }
    Ok(v)
}

impl PoolGeom {
    /// Checks params, the image shape `x` `[N, C, H, W]` and the pooled
    /// shape `y` `[N, C, OH, OW]`: the CPU's `Geom::new`, same checks in the
    /// same order, same messages.
    fn new(op: OpId, p: &Pool2dParams, x: &[usize], y: &[usize]) -> Result<PoolGeom> {
        let (Ok([n, c, h, w]), Ok(yshape)) = (<[usize; 4]>::try_from(x), <[usize; 4]>::try_from(y))
        else {
            return Err(BackendError::invalid(format!(
                "{op}: tensors must have rank 4, got {x:?} and {y:?}"
            )));
        };
        let (mut kernel, mut stride, mut pad, mut out) =
            ([0usize; 2], [0usize; 2], [0usize; 2], [0usize; 2]);
        for (a, len) in [h, w].into_iter().enumerate() {
            kernel[a] = param(op, "kernel", p.kernel[a], 1)? as usize;
            stride[a] = param(op, "stride", p.stride[a], 1)? as usize;
            pad[a] = param(op, "padding", p.padding[a], 0)? as usize;
            if 2 * pad[a] > kernel[a] {
                return Err(BackendError::invalid(format!(
                    "{op}: padding {pad:?} must be at most half the window {:?}",
                    p.kernel
                )));
            }
            out[a] = match (len + 2 * pad[a]).checked_sub(kernel[a]) {
                Some(d) => d / stride[a] + 1,
                None => {
                    return Err(BackendError::invalid(format!(
                        "{op}: window {:?} is larger than the padded {h}x{w} input",
                        p.kernel
                    )))
                }
            };
        }
        if p.count_include_pad > 1 {
            return Err(BackendError::invalid(format!(
                "{op}: count_include_pad must be 0 or 1"
            )));
        }
        if yshape != [n, c, out[0], out[1]] {
            return Err(BackendError::invalid(format!(
                "{op}: pooled shape {y:?} must be {:?} for input {x:?}, kernel {kernel:?}, stride {stride:?}, padding {pad:?}",
                [n, c, out[0], out[1]]
            )));
        }
        let i = |v: usize| v as i64;
        Ok(PoolGeom {
            n: i(n),
            c: i(c),
            h: i(h),
            w: i(w),
            oh: i(out[0]),
            ow: i(out[1]),
            kh: i(kernel[0]),
            kw: i(kernel[1]),
            sh: i(stride[0]),
            sw: i(stride[1]),
            ph: i(pad[0]),
            pw: i(pad[1]),
            include_pad: p.count_include_pad as i32,
            reserved: 0,
        })
    }

    /// Number of windows (`N * C * OH * OW`).
    fn windows(&self) -> usize {
        (self.n * self.c * self.oh * self.ow) as usize
    }

    /// Number of image elements (`N * C * H * W`).
    fn pixels(&self) -> usize {
        (self.n * self.c * self.h * self.w) as usize
    }

    /// One warp per window (large windows) rather than one thread.
    fn warp(&self) -> bool {
        self.kh * self.kw >= WARP_WINDOW
    }

    /// Windows never share an image element: on each axis the stride is at
    /// least the window, or there is a single window.
    fn disjoint(&self) -> bool {
        (self.sh >= self.kh || self.oh == 1) && (self.sw >= self.kw || self.ow == 1)
    }

    /// Every image element lies in some window: no gap between windows
    /// (stride <= window, or a single window) and the last window reaches
    /// the image's end, on both axes. (The first starts at `-padding <= 0`.)
    fn covers_image(&self) -> bool {
        let axis = |len: i64, o: i64, k: i64, s: i64, p: i64| {
            (s <= k || o == 1) && (o - 1) * s - p + k >= len
        };
        axis(self.h, self.oh, self.kh, self.sh, self.ph)
            && axis(self.w, self.ow, self.kw, self.sw, self.pw)
    }
}

/// The CUDA grid for `items` windows: one thread each, or one warp each.
fn window_grid(ctx: &Ctx<'_>, items: usize, warp: bool) -> (u32, u32, u32) {
    grid(
        ctx,
        if warp {
            items.saturating_mul(32)
        } else {
            items
        },
    )
}

/// Kernel names by dtype (f32, f64).
const FWD: [&str; 2] = ["pool_fwd_f32", "pool_fwd_f64"];
const MAX_BWD_DISJOINT: [&str; 2] = ["maxpool_bwd_disjoint_f32", "maxpool_bwd_disjoint_f64"];
const MAX_BWD_GATHER: [&str; 2] = ["maxpool_bwd_gather_f32", "maxpool_bwd_gather_f64"];
const AVG_BWD: [&str; 2] = ["avgpool_bwd_f32", "avgpool_bwd_f64"];
const ZERO: [&str; 2] = ["pool_zero_f32", "pool_zero_f64"];

fn same_dtype(op: OpId, what: &str, v: &View<'_>, want: DType) -> Result<()> {
    if v.dtype != want {
        return Err(BackendError::invalid(format!(
            "{op}: {what} is {}, expected {want}",
            v.dtype
        )));
    }
    Ok(())
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let inputs = match op {
        OpId::MaxPool2d | OpId::AvgPool2d | OpId::AvgPool2dBackward => 1,
        OpId::MaxPool2dBackward => 2,
        _ => {
            return Err(BackendError::unsupported(format!(
                "cuda pool: {op} is not a pool op"
            )))
        }
    };
    let Params::Pool2d(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{op}: expected Pool2dParams"
        )));
    };
    check_arity(call, inputs, 1)?;
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { views(call, device)? };
    let dtype = ins[0].dtype;
    let k = match dtype {
        DType::F32 => 0,
        DType::F64 => 1,
        d => {
            return Err(BackendError::unsupported(format!(
                "{op}: dtype {d} is not supported (f32, f64)"
            )))
        }
    };
    let out = &outs[0];
    same_dtype(op, "the output", out, dtype)?;
    if !out.is_contiguous() {
        return Err(BackendError::invalid(format!(
            "{op}: the output must be contiguous row-major"
        )));
    }
    match op {
        OpId::MaxPool2d | OpId::AvgPool2d => {
            let g = PoolGeom::new(op, &p, &ins[0].dims(), &out.dims())?;
            forward(ctx, k, &ins[0], out, &g, op == OpId::MaxPool2d)
        }
        OpId::AvgPool2dBackward => {
            let g = PoolGeom::new(op, &p, &out.dims(), &ins[0].dims())?;
            avg_backward(ctx, k, &ins[0], out, &g)
        }
        _ => {
            let (x, dy) = (&ins[0], &ins[1]);
            same_dtype(op, "dy", dy, dtype)?;
            if x.dims() != out.dims() {
                return Err(BackendError::invalid(format!(
                    "{op}: x {:?} and dx {:?} must have the same shape",
                    x.dims(),
                    out.dims()
                )));
            }
            let g = PoolGeom::new(op, &p, &out.dims(), &dy.dims())?;
            max_backward(ctx, k, x, dy, out, &g)
        }
    }
}

/// `max_pool2d` / `avg_pool2d` into the contiguous `y`.
fn forward(
    ctx: &mut Ctx<'_>,
    k: usize,
    x: &View<'_>,
    y: &View<'_>,
    g: &PoolGeom,
    max: bool,
) -> Result<()> {
    if g.windows() == 0 {
        return Ok(());
    }
    let f = ctx.function(&POOL, FWD[k])?;
    let warp = g.warp();
    let grid = window_grid(ctx, g.windows(), warp);
    let no_argmax: CUdeviceptr = 0;
    // SAFETY: x is a checked rank-4 view, y a checked contiguous view of
    // `windows()` elements; matches `pool_fwd_{t}(x, sx, y, am, g, is_max, warp)`
    // (am null: no positions recorded).
    unsafe {
        ctx.launch(
            f,
            grid,
            (BLOCK, 1, 1),
            0,
            args![
                x.ptr,
                x.strided(),
                y.ptr,
                no_argmax,
                *g,
                i32::from(max),
                i32::from(warp)
            ],
        )
    }
}

/// `avg_pool2d_backward`: `dy` into the contiguous `dx`.
fn avg_backward(
    ctx: &mut Ctx<'_>,
    k: usize,
    dy: &View<'_>,
    dx: &View<'_>,
    g: &PoolGeom,
) -> Result<()> {
    if g.pixels() == 0 {
        return Ok(());
    }
    let f = ctx.function(&POOL, AVG_BWD[k])?;
    let grid = grid(ctx, g.pixels());
    // SAFETY: dy is a checked rank-4 view of the pooled shape, dx a checked
    // contiguous view of `pixels()` elements; matches `avgpool_bwd_{t}(dy, sdy, dx, g)`.
    unsafe {
        ctx.launch(
            f,
            grid,
            (BLOCK, 1, 1),
            0,
            args![dy.ptr, dy.strided(), dx.ptr, *g],
        )
    }
}

/// `max_pool2d_backward`: `(x, dy)` into the contiguous `dx`.
fn max_backward(
    ctx: &mut Ctx<'_>,
    k: usize,
    x: &View<'_>,
    dy: &View<'_>,
    dx: &View<'_>,
    g: &PoolGeom,
) -> Result<()> {
    if g.pixels() == 0 {
        return Ok(());
    }
    let warp = g.warp();
    if g.disjoint() {
        if !g.covers_image() {
            let f = ctx.function(&POOL, ZERO[k])?;
            let grid = grid(ctx, g.pixels());
            // SAFETY: dx is a checked contiguous view of `pixels()`
            // elements; matches `pool_zero_{t}(p, n)`.
            unsafe { ctx.launch(f, grid, (BLOCK, 1, 1), 0, args![dx.ptr, g.pixels() as i64])? };
        }
        let f = ctx.function(&POOL, MAX_BWD_DISJOINT[k])?;
        let grid = window_grid(ctx, g.windows(), warp);
        // SAFETY: checked views (x rank 4 like dx, dy pooled, dx contiguous);
        // matches `maxpool_bwd_disjoint_{t}(x, sx, dy, sdy, dx, g, warp)`.
        return unsafe {
            ctx.launch(
                f,
                grid,
                (BLOCK, 1, 1),
                0,
                args![
                    x.ptr,
                    x.strided(),
                    dy.ptr,
                    dy.strided(),
                    dx.ptr,
                    *g,
                    i32::from(warp)
                ],
            )
        };
    }
    // Overlapping windows: first-maximum positions (plane offsets, i32) into
    // a temporary, then the gather. A plane too large for i32 positions
    // makes the gather recompute each maximum instead (null positions).
    let positions = if g.h * g.w <= i64::from(i32::MAX) {
        Some(ctx.temp(g.windows() * 4)?)
    } else {
        None
    };
    let r = gather(ctx, k, x, dy, dx, g, warp, positions.map_or(0, |b| b.0));
    if let Some(b) = positions {
        // Stream order makes reuse safe once the work is queued.
        ctx.free_temp(b);
    }
    r
}

/// The two launches of the overlapping max-pool backward; `am` is a
/// temporary of `windows()` i32, or 0 to recompute.
#[allow(clippy::too_many_arguments)]
fn gather(
    ctx: &mut Ctx<'_>,
    k: usize,
    x: &View<'_>,
    dy: &View<'_>,
    dx: &View<'_>,
    g: &PoolGeom,
    warp: bool,
    am: CUdeviceptr,
) -> Result<()> {
    if am != 0 {
        let f = ctx.function(&POOL, FWD[k])?;
        let grid = window_grid(ctx, g.windows(), warp);
        let no_y: CUdeviceptr = 0;
        // SAFETY: x is a checked rank-4 view, `am` holds `windows()` i32;
        // matches `pool_fwd_{t}(x, sx, y, am, g, is_max, warp)` (y null).
        unsafe {
            ctx.launch(
                f,
                grid,
                (BLOCK, 1, 1),
                0,
                args![x.ptr, x.strided(), no_y, am, *g, 1i32, i32::from(warp)],
            )?;
        }
    }
    let f = ctx.function(&POOL, MAX_BWD_GATHER[k])?;
    let grid = grid(ctx, g.pixels());
    // SAFETY: checked views, `am` null or as above; matches
    // `maxpool_bwd_gather_{t}(x, sx, am, dy, sdy, dx, g)`.
    unsafe {
        ctx.launch(
            f,
            grid,
            (BLOCK, 1, 1),
            0,
            args![x.ptr, x.strided(), am, dy.ptr, dy.strided(), dx.ptr, *g],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kernel: [i64; 2], stride: [i64; 2], padding: [i64; 2], include: u32) -> Pool2dParams {
        Pool2dParams {
            struct_size: Pool2dParams::SIZE,
            kernel,
            stride,
            padding,
            count_include_pad: include,
            reserved: 0,
        }
    }

    #[test]
    fn geom_layout_matches_the_c_struct() {
        // struct PoolGeom { long long n..pw (12); int include_pad; int reserved; }
        assert_eq!(std::mem::size_of::<PoolGeom>(), 104);
        assert_eq!(std::mem::align_of::<PoolGeom>(), 8);
        assert_eq!(std::mem::offset_of!(PoolGeom, oh), 32);
        assert_eq!(std::mem::offset_of!(PoolGeom, kh), 48);
        assert_eq!(std::mem::offset_of!(PoolGeom, ph), 80);
        assert_eq!(std::mem::offset_of!(PoolGeom, include_pad), 96);
        let c = POOL.code;
        let body = &c[c.find("struct PoolGeom {").expect("C struct")..];
        let body = &body[..body.find("};").expect("end")];
        let fields: Vec<&str> = body
            .lines()
            .skip(1)
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            fields,
            [
                "i64 n, c, h, w;",
                "i64 oh, ow;",
                "i64 kh, kw;",
                "i64 sh, sw;",
                "i64 ph, pw;",
                "int include_pad;",
                "int reserved;"
            ]
        );
    }

    #[test]
    fn geometry_as_on_the_cpu() {
        let op = OpId::MaxPool2d;
        let g = PoolGeom::new(
            op,
            &params([3, 3], [2, 2], [1, 1], 0),
            &[2, 3, 7, 8],
            &[2, 3, 4, 4],
        )
        .unwrap();
        assert_eq!((g.oh, g.ow, g.kh, g.sw, g.pw), (4, 4, 3, 2, 1));
        assert_eq!((g.windows(), g.pixels()), (2 * 3 * 16, 2 * 3 * 56));
        let err = |p: Pool2dParams, x: &[usize], y: &[usize]| {
            PoolGeom::new(op, &p, x, y).unwrap_err().message
        };
        let e = err(
            params([3, 3], [2, 2], [1, 1], 0),
            &[2, 3, 7, 8],
            &[2, 3, 4, 5],
        );
        assert!(
            e.contains("pooled shape [2, 3, 4, 5] must be [2, 3, 4, 4]"),
            "{e}"
        );
        let e = err(
            params([2, 3], [1, 1], [1, 2], 0),
            &[1, 1, 4, 4],
            &[1, 1, 5, 4],
        );
        assert!(
            e.contains("padding [1, 2] must be at most half the window [2, 3]"),
            "{e}"
        );
        let e = err(
            params([5, 1], [1, 1], [0, 0], 0),
            &[1, 1, 4, 4],
            &[1, 1, 1, 4],
        );
        assert!(
            e.contains("window [5, 1] is larger than the padded 4x4 input"),
            "{e}"
        );
        let e = err(
            params([0, 1], [1, 1], [0, 0], 0),
            &[1, 1, 4, 4],
            &[1, 1, 1, 4],
        );
        assert!(e.contains("kernel 0 must be in 1..=2147483647"), "{e}");
        let e = err(
            params([1, 1], [1, 1], [0, 0], 2),
            &[1, 1, 4, 4],
            &[1, 1, 4, 4],
        );
        assert!(e.contains("count_include_pad must be 0 or 1"), "{e}");
        let e = err(params([1, 1], [1, 1], [0, 0], 0), &[1, 4, 4], &[1, 4, 4]);
        assert!(e.contains("rank 4"), "{e}");
        // An empty image with a window of twice the padding still pools.
        let g = PoolGeom::new(
            op,
            &params([2, 2], [1, 1], [1, 1], 0),
            &[1, 1, 0, 0],
            &[1, 1, 1, 1],
        )
        .unwrap();
        assert_eq!((g.windows(), g.pixels()), (1, 0));
    }

    #[test]
    fn path_choice() {
        let op = OpId::MaxPool2d;
        let g = |k: [i64; 2], s: [i64; 2], p: [i64; 2], x: [usize; 2]| {
            let oh = (x[0] + 2 * p[0] as usize - k[0] as usize) / s[0] as usize + 1;
            let ow = (x[1] + 2 * p[1] as usize - k[1] as usize) / s[1] as usize + 1;
            PoolGeom::new(
                op,
                &params(k, s, p, 0),
                &[1, 1, x[0], x[1]],
                &[1, 1, oh, ow],
            )
            .unwrap()
        };
        // 2x2 stride 2 over 4x4: disjoint, covers everything.
        let a = g([2, 2], [2, 2], [0, 0], [4, 4]);
        assert!(a.disjoint() && a.covers_image() && !a.warp());
        // Over 5x5 the last row and column are under no window.
        let b = g([2, 2], [2, 2], [0, 0], [5, 5]);
        assert!(b.disjoint() && !b.covers_image());
        // Stride beyond the window leaves gaps.
        let c = g([2, 2], [3, 3], [0, 0], [8, 8]);
        assert!(c.disjoint() && !c.covers_image());
        // 3x3 stride 2: overlapping.
        assert!(!g([3, 3], [2, 2], [1, 1], [8, 8]).disjoint());
        // Global pooling of 56x56: one warp per window, disjoint, covering.
        let d = g([56, 56], [1, 1], [0, 0], [56, 56]);
        assert!(d.warp() && d.disjoint() && d.covers_image());
        // Global pooling with stride 1 too: a single window per plane.
        let f = g([7, 9], [1, 1], [0, 0], [7, 9]);
        assert!(f.disjoint() && f.covers_image() && f.oh == 1 && f.ow == 1);
        // A single window that misses the last row (stride 5 > window 4 is
        // irrelevant with one window): not covering.
        let h = g([4, 4], [5, 5], [0, 0], [5, 4]);
        assert!(h.disjoint() && !h.covers_image());
        // 7x7 global pooling stays on the bitwise-exact thread path.
        assert!(!g([7, 7], [7, 7], [0, 0], [7, 7]).warp());
        // Padding: windows start at -1 and the last reaches the end.
        let e = g([2, 2], [2, 2], [1, 1], [4, 4]);
        assert!(e.disjoint() && e.covers_image());
    }

    /// The CPU's window rule, for the gather check below.
    fn window(o: i64, k: i64, s: i64, p: i64, len: i64) -> (i64, i64) {
        let start = o * s - p;
        (start.max(0), (start + k).min(len).max(0))
    }

    /// Rust twin of `pool_covering` in pool.cu.
    fn covering(i: i64, k: i64, s: i64, p: i64, nout: i64) -> (i64, i64) {
        let a = i + p - k + 1;
        let lo = if a <= 0 { 0 } else { (a + s - 1) / s };
        (lo, ((i + p) / s).min(nout - 1))
    }

    #[test]
    fn covering_windows_are_exactly_those_containing_the_element() {
        let c = POOL.code;
        assert!(
            c.contains("i64 a = i + p - k + 1;")
                && c.contains("lo = a <= 0 ? 0 : pool_div(a + s - 1, s);")
        );
        assert!(
            c.contains("hi = pool_div(i + p, s);")
                && c.contains("if (hi > nout - 1) hi = nout - 1;")
        );
        for len in 1..9 {
            for k in 1..6 {
                for s in 1..5 {
                    for p in 0..=k / 2 {
                        if len + 2 * p < k {
                            continue;
                        }
                        let nout = (len + 2 * p - k) / s + 1;
                        for i in 0..len {
                            let want: Vec<i64> = (0..nout)
                                .filter(|&o| {
                                    let (a, b) = window(o, k, s, p, len);
                                    a <= i && i < b
                                })
                                .collect();
                            let (lo, hi) = covering(i, k, s, p, nout);
                            let got: Vec<i64> = (lo..=hi).collect();
                            assert_eq!(got, want, "len {len} k {k} s {s} p {p} i {i}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_kernel_name_exists_in_the_source() {
        for name in FWD
            .iter()
            .chain(&MAX_BWD_DISJOINT)
            .chain(&MAX_BWD_GATHER)
            .chain(&AVG_BWD)
            .chain(&ZERO)
        {
            let (base, suffix) = name.rsplit_once('_').unwrap();
            assert!(POOL.code.contains(&format!("void {base}_##S(")), "{name}");
            assert!(
                POOL.code.contains(&format!(
                    "POOL_KERNELS({}, {suffix})",
                    ["float", "double"][usize::from(suffix == "f64")]
                )),
                "{name}"
            );
        }
    }

    #[test]
    fn supported_is_the_cpu_list() {
        let s = supported();
        assert_eq!(s.len(), 8);
        for op in [
            OpId::MaxPool2d,
            OpId::MaxPool2dBackward,
            OpId::AvgPool2d,
            OpId::AvgPool2dBackward,
        ] {
            for d in DType::ALL {
                let listed = s.iter().any(|p| p.op == op as u32 && p.dtype == d as u32);
                assert_eq!(listed, d.is_float(), "{op} {d}");
            }
        }
    }
}
