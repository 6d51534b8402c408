//! Op family `pool`: 2-D max and average pooling over NCHW, and their
//! gradients.
//!
//! Direct row-pointer loops per `(n, c)` plane (any strides; a unit column
//! stride gets its own instance), parallel over the planes when the op is
//! large. Windows are `kernel` wide, `stride` apart, over the input padded
//! by `padding` (at most half the window, so every window holds at least
//! one real element). Max pooling ignores padding, takes the first maximum
//! in row-major window order (a NaN counts as the maximum), and its
//! gradient recomputes that position from `x`. Average pooling divides by
//! the whole window with `count_include_pad`, else by the real elements in
//! it.
//!
//! Max pooling with 2x2 windows 2 apart and no padding, the usual CNN pool,
//! has a fast path with the same results: each window is reduced as (top
//! pair, bottom pair) with selects, not branches (random data mispredicts
//! them); the windows do not overlap, so the gradient is stored cell by
//! cell; and when the planes' rows are evenly spaced (NCHW, any column
//! stride) all planes run as one, so small planes cost no per-plane work.

use rayon::prelude::*;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::Pool2dParams;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Float;
use crate::strided::{check_arity, View};
use crate::threads;

/// Largest kernel, stride or padding accepted.
const PARAM_MAX: i64 = i32::MAX as i64;

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    let ops = [
        OpId::MaxPool2d,
        OpId::MaxPool2dBackward,
        OpId::AvgPool2d,
        OpId::AvgPool2dBackward,
    ];
    let mut v = Vec::new();
    for op in ops {
        for dtype in [DType::F32, DType::F64] {
            v.push(SrOpSupport {
                op: op as u32,
                dtype: dtype as u32,
            });
        }
    }
    v
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let name = call.op.name();
    let inputs = match call.op {
        OpId::MaxPool2d | OpId::AvgPool2d | OpId::AvgPool2dBackward => 1,
        OpId::MaxPool2dBackward => 2,
        op => {
            return Err(BackendError::unsupported(format!(
                "cpu pool: {op} is not a pool op"
            )))
        }
    };
    let Params::Pool2d(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{name}: expected Pool2dParams"
        )));
    };
    check_arity(name, call.inputs.len(), call.outputs.len(), inputs, 1)?;
    // SAFETY: forwarded from the caller for each dtype.
    unsafe {
        match call.inputs[0].dtype() {
            Some(DType::F32) => run::<f32>(call, &p),
            Some(DType::F64) => run::<f64>(call, &p),
            other => Err(BackendError::unsupported(format!(
                "{name}: dtype {} is not supported (f32, f64)",
                other.map_or("unknown", |d| d.name())
            ))),
        }
    }
}

/// Views the tensors, checks the geometry and runs the op on dtype `T`.
///
/// # Safety
/// As [`execute`].
unsafe fn run<T: Float>(call: &OpCall<'_>, p: &Pool2dParams) -> Result<()> {
    let name = call.op.name();
    // SAFETY: the descriptors name live buffers, per the caller.
    let (in0, out) = unsafe {
        (
            View::<T>::new(&call.inputs[0])?,
            View::<T>::new(&call.outputs[0])?,
        )
    };
    if !out.is_contiguous() {
        return Err(BackendError::invalid(format!(
            "{name}: the output must be contiguous row-major"
        )));
    }
    let out_len = out.numel();
    if out_len == 0 {
        // Nothing to write; the shapes are still checked.
        return match call.op {
            OpId::MaxPool2d | OpId::AvgPool2d => {
                Geom::new(name, p, &in0.shape, &out.shape).map(drop)
            }
            OpId::AvgPool2dBackward => Geom::new(name, p, &out.shape, &in0.shape).map(drop),
            _ => {
                // max_pool2d_backward: inputs (x, dy), output dx.
                // SAFETY: as above.
                let dy = unsafe { View::<T>::new(&call.inputs[1])? };
                if in0.shape != out.shape {
                    return Err(BackendError::invalid(format!(
                        "{name}: x {:?} and dx {:?} must have the same shape",
                        in0.shape, out.shape
                    )));
                }
                Geom::new(name, p, &out.shape, &dy.shape).map(drop)
            }
        };
    }
    // SAFETY: contiguous output of `out_len` elements that aliases no input.
    let dst = unsafe { std::slice::from_raw_parts_mut(out.ptr, out_len) };
    match call.op {
        OpId::MaxPool2d | OpId::AvgPool2d => {
            let g = Geom::new(name, p, &in0.shape, &out.shape)?;
            let max = call.op == OpId::MaxPool2d;
            // SAFETY: x views the checked input.
            unsafe { forward(&Src::of(&in0), dst, &g, max) };
        }
        OpId::AvgPool2dBackward => {
            let g = Geom::new(name, p, &out.shape, &in0.shape)?;
            // SAFETY: dy views the checked gradient.
            unsafe { avg_backward(&Src::of(&in0), dst, &g) };
        }
        _ => {
            // SAFETY: as above.
            let dy = unsafe { View::<T>::new(&call.inputs[1])? };
            if in0.shape != out.shape {
                return Err(BackendError::invalid(format!(
                    "{name}: x {:?} and dx {:?} must have the same shape",
                    in0.shape, out.shape
                )));
            }
            let g = Geom::new(name, p, &out.shape, &dy.shape)?;
            // SAFETY: x and dy view the checked inputs.
            unsafe { max_backward(&Src::of(&in0), &Src::of(&dy), dst, &g) };
        }
    }
    Ok(())
}

/// Validated pooling sizes.
#[derive(Debug, Clone, Copy)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    include_pad: bool,
}

fn param(op: &str, what: &str, v: i64, min: i64) -> Result<usize> {
    if v < min || v > PARAM_MAX {
        return Err(BackendError::invalid(format!(
            "{op}: {what} {v} must be in {min}..={PARAM_MAX}"
        )));
    }
    Ok(v as usize)
}

impl Geom {
    /// Checks params, the image shape `x` `[N, C, H, W]` and the pooled
    /// shape `y` `[N, C, OH, OW]`.
    fn new(op: &str, p: &Pool2dParams, x: &[usize], y: &[usize]) -> Result<Geom> {
        let (Ok([n, c, h, w]), Ok(yshape)) = (<[usize; 4]>::try_from(x), <[usize; 4]>::try_from(y))
        else {
            return Err(BackendError::invalid(format!(
                "{op}: tensors must have rank 4, got {x:?} and {y:?}"
            )));
        };
        let mut kernel = [0; 2];
        let (mut stride, mut pad, mut out) = ([0; 2], [0; 2], [0; 2]);
        for (a, len) in [h, w].into_iter().enumerate() {
            kernel[a] = param(op, "kernel", p.kernel[a], 1)?;
            stride[a] = param(op, "stride", p.stride[a], 1)?;
            pad[a] = param(op, "padding", p.padding[a], 0)?;
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
        Ok(Geom {
            n,
            c,
            h,
            w,
            oh: out[0],
            ow: out[1],
            kernel,
            stride,
            pad,
            include_pad: p.count_include_pad == 1,
        })
    }

    /// The input rows (`axis` 0) or columns (1) `[start, end)` that window
    /// `o` covers along `axis`; never empty (see `Geom::new`).
    #[inline(always)]
    fn span(&self, o: usize, axis: usize) -> [usize; 2] {
        let len = if axis == 0 { self.h } else { self.w };
        let start = o * self.stride[axis];
        let end = (start + self.kernel[axis]).saturating_sub(self.pad[axis]);
        [start.saturating_sub(self.pad[axis]), end.min(len)]
    }

    /// Windows 2x2, 2 apart, without padding: they tile the input without
    /// overlap (the last row or column of an odd size is left out).
    fn is_2x2(&self) -> bool {
        self.kernel == [2, 2] && self.stride == [2, 2] && self.pad == [0, 0]
    }

    /// For 2x2 windows run on one thread over an even height: the op as
    /// one plane of `N * C * H` rows when every tensor in `rows` (strides,
    /// rows per plane) has its rows evenly spaced across planes, so that no
    /// per-plane work is left (small planes are mostly that).
    fn merged(&self, rows: &[([usize; 4], usize)]) -> Option<Geom> {
        let even = |&(st, r): &([usize; 4], usize)| {
            (self.c == 1 || st[1] == r * st[2]) && (self.n == 1 || st[0] == self.c * r * st[2])
        };
        let planes = self.n * self.c;
        (self.is_2x2() && self.h.is_multiple_of(2) && !self.parallel() && rows.iter().all(even))
            .then(|| Geom {
                n: 1,
                c: 1,
                h: planes * self.h,
                oh: planes * self.oh,
                ..*self
            })
    }

    /// The average's divisor for a window.
    fn divisor(&self, hs: [usize; 2], ws: [usize; 2]) -> f64 {
        if self.include_pad {
            (self.kernel[0] * self.kernel[1]) as f64
        } else {
            ((hs[1] - hs[0]) * (ws[1] - ws[0])).max(1) as f64
        }
    }

    /// Whether the op is worth waking the pool for.
    fn parallel(&self) -> bool {
        let work = [self.c, self.oh, self.ow, self.kernel[0], self.kernel[1]]
            .iter()
            .fold(self.n, |acc, &d| acc.saturating_mul(d));
        threads::split(work)
    }
}

/// A strided NCHW tensor read by the kernels.
#[derive(Debug, Clone, Copy)]
struct Src<T> {
    ptr: *const T,
    st: [usize; 4],
}

// SAFETY: a read-only window into a buffer that outlives the op.
unsafe impl<T: Sync> Send for Src<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Src<T> {}

impl<T: Copy> Src<T> {
    fn of(v: &View<T>) -> Self {
        Src {
            ptr: v.ptr,
            st: [v.strides[0], v.strides[1], v.strides[2], v.strides[3]],
        }
    }

    /// Plane `(n, c)`, with `UNIT` asserting a unit column stride.
    ///
    /// # Safety
    /// `(n, c)` is inside the viewed tensor.
    unsafe fn plane<const UNIT: bool>(&self, n: usize, c: usize) -> Plane<T, UNIT> {
        debug_assert!(!UNIT || self.st[3] == 1);
        Plane {
            // SAFETY: per the caller, the plane's first element is inside.
            ptr: unsafe { self.ptr.add(n * self.st[0] + c * self.st[1]) },
            sh: self.st[2],
            sw: if UNIT { 1 } else { self.st[3] },
        }
    }
}

/// One `(n, c)` plane of a [`Src`]: element `(h, w)` lies at `ptr + h * sh
/// + w * sw`. `UNIT` fixes `sw` at 1 so that the compiler sees dense rows.
#[derive(Debug, Clone, Copy)]
struct Plane<T, const UNIT: bool> {
    ptr: *const T,
    sh: usize,
    sw: usize,
}

impl<T: Copy, const UNIT: bool> Plane<T, UNIT> {
    /// Row `h`.
    ///
    /// # Safety
    /// `h` is a row of the plane.
    #[inline(always)]
    unsafe fn row(&self, h: usize) -> Row<T, UNIT> {
        Row {
            // SAFETY: per the caller.
            ptr: unsafe { self.ptr.add(h * self.sh) },
            sw: self.sw,
        }
    }
}

/// One row of a [`Plane`].
#[derive(Debug, Clone, Copy)]
struct Row<T, const UNIT: bool> {
    ptr: *const T,
    sw: usize,
}

impl<T: Copy, const UNIT: bool> Row<T, UNIT> {
    /// Element `w`.
    ///
    /// # Safety
    /// `w` is a column of the plane.
    #[inline(always)]
    unsafe fn at(&self, w: usize) -> T {
        let step = if UNIT { w } else { w * self.sw };
        // SAFETY: per the caller.
        unsafe { *self.ptr.add(step) }
    }
}

/// Runs `job(plane index, plane)` over the `len`-long planes of `out`.
fn planes<T: Float>(
    out: &mut [T],
    len: usize,
    par: bool,
    job: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if len == 0 {
        return;
    }
    if par {
        threads::install(|| {
            out.par_chunks_mut(len)
                .enumerate()
                .for_each(|(i, p)| job(i, p))
        });
    } else {
        out.chunks_mut(len).enumerate().for_each(|(i, p)| job(i, p));
    }
}

/// Whether `v`, met after `best` in window order, replaces it: a larger
/// number, or a NaN over a number (a NaN is never replaced). Choosing by
/// this rule is associative, so pairwise trees give the first maximum too.
/// Written without short circuits so that it compiles to compares and
/// selects, not to branches that random data mispredicts.
#[inline(always)]
fn better<T: Float>(v: T, best: T) -> bool {
    (v > best) | (v.is_nan() & !best.is_nan())
}

/// `b` if `take`, else `a`, without a branch: `take` comes from data and
/// follows no pattern (a mispredicted branch costs more than the window).
#[inline(always)]
fn pick<T: Copy>(take: bool, a: T, b: T) -> T {
    std::hint::select_unpredictable(take, b, a)
}

/// The first maximum of the window over rows `hs` and columns `ws` (never
/// empty): its position and value.
///
/// # Safety
/// The window lies inside `x`.
#[inline(always)]
unsafe fn argmax<T: Float, const UNIT: bool>(
    x: &Plane<T, UNIT>,
    hs: [usize; 2],
    ws: [usize; 2],
) -> ((usize, usize), T) {
    // SAFETY: the window's first element is inside, per the caller.
    let mut best = ((hs[0], ws[0]), unsafe { x.row(hs[0]).at(ws[0]) });
    for ih in hs[0]..hs[1] {
        // SAFETY: per the caller (every row and column below).
        let r = unsafe { x.row(ih) };
        for iw in ws[0]..ws[1] {
            // SAFETY: as above.
            let v = unsafe { r.at(iw) };
            let t = better(v, best.1);
            best = (
                (pick(t, best.0 .0, ih), pick(t, best.0 .1, iw)),
                pick(t, best.1, v),
            );
        }
    }
    best
}

/// Max or average pooling forward into the contiguous `y`.
///
/// # Safety
/// `x` views an input of `g`'s shape.
unsafe fn forward<T: Float>(x: &Src<T>, y: &mut [T], g: &Geom, max: bool) {
    if x.st[3] == 1 {
        // SAFETY: forwarded, with the unit column stride just checked.
        unsafe { forward_in::<T, true>(x, y, g, max) }
    } else {
        // SAFETY: forwarded.
        unsafe { forward_in::<T, false>(x, y, g, max) }
    }
}

/// [`forward`] for one kind of column stride.
///
/// # Safety
/// As [`forward`], and `UNIT` only for a unit column stride.
unsafe fn forward_in<T: Float, const UNIT: bool>(x: &Src<T>, y: &mut [T], g: &Geom, max: bool) {
    let two = g.is_2x2();
    let merged = if max { g.merged(&[(x.st, g.h)]) } else { None };
    let g = &merged.unwrap_or(*g);
    planes(y, g.oh * g.ow, g.parallel(), |idx, out| {
        // SAFETY: plane `idx` of the input, per the caller.
        let p = unsafe { x.plane::<UNIT>(idx / g.c, idx % g.c) };
        // SAFETY: `p` is a plane of `g`'s input; `out` one of its output.
        unsafe {
            match (max, two) {
                (true, true) => max_2x2(&p, out, g),
                (true, false) => max_plane(&p, out, g),
                _ => avg_plane(&p, out, g),
            }
        }
    });
}

/// Max pooling of one plane, any window.
///
/// # Safety
/// `x` is a plane of `g`'s input, `out` is `oh * ow` long.
unsafe fn max_plane<T: Float, const UNIT: bool>(x: &Plane<T, UNIT>, out: &mut [T], g: &Geom) {
    for (oh, orow) in out.chunks_exact_mut(g.ow).enumerate() {
        let hs = g.span(oh, 0);
        for (ow, o) in orow.iter_mut().enumerate() {
            // SAFETY: windows lie inside the plane.
            *o = unsafe { argmax(x, hs, g.span(ow, 1)) }.1;
        }
    }
}

/// Max pooling of one plane with 2x2 windows 2 apart and no padding: each
/// window is reduced as (top pair, bottom pair), the first maximum by the
/// associativity of [`better`].
///
/// # Safety
/// As [`max_plane`], and `g.is_2x2()`.
unsafe fn max_2x2<T: Float, const UNIT: bool>(x: &Plane<T, UNIT>, out: &mut [T], g: &Geom) {
    let first = |a: T, b: T| pick(better(b, a), a, b);
    for (oh, orow) in out.chunks_exact_mut(g.ow).enumerate() {
        // SAFETY: rows 2 * oh and 2 * oh + 1 < h since oh < h / 2.
        let (r0, r1) = unsafe { (x.row(2 * oh), x.row(2 * oh + 1)) };
        for (ow, o) in orow.iter_mut().enumerate() {
            // SAFETY: columns 2 * ow and 2 * ow + 1 < w likewise.
            let (a, b, c, d) = unsafe {
                (
                    r0.at(2 * ow),
                    r0.at(2 * ow + 1),
                    r1.at(2 * ow),
                    r1.at(2 * ow + 1),
                )
            };
            *o = first(first(a, b), first(c, d));
        }
    }
}

/// Average pooling of one plane.
///
/// # Safety
/// As [`max_plane`].
unsafe fn avg_plane<T: Float, const UNIT: bool>(x: &Plane<T, UNIT>, out: &mut [T], g: &Geom) {
    for (oh, orow) in out.chunks_exact_mut(g.ow).enumerate() {
        let hs = g.span(oh, 0);
        for (ow, o) in orow.iter_mut().enumerate() {
            let ws = g.span(ow, 1);
            let mut s = T::ZERO;
            for ih in hs[0]..hs[1] {
                // SAFETY: windows lie inside the plane.
                let r = unsafe { x.row(ih) };
                for iw in ws[0]..ws[1] {
                    // SAFETY: as above.
                    s += unsafe { r.at(iw) };
                }
            }
            *o = s / T::from_f64(g.divisor(hs, ws));
        }
    }
}

/// Max pooling backward: each `dy` goes to its window's first maximum.
///
/// # Safety
/// `x` views an input of `g`'s shape, `dy` one of the pooled shape.
unsafe fn max_backward<T: Float>(x: &Src<T>, dy: &Src<T>, dx: &mut [T], g: &Geom) {
    if x.st[3] == 1 {
        // SAFETY: forwarded, with the unit column stride just checked.
        unsafe { max_backward_in::<T, true>(x, dy, dx, g) }
    } else {
        // SAFETY: forwarded.
        unsafe { max_backward_in::<T, false>(x, dy, dx, g) }
    }
}

/// [`max_backward`] for one kind of column stride of `x`.
///
/// # Safety
/// As [`max_backward`], and `UNIT` only for a unit column stride of `x`.
unsafe fn max_backward_in<T: Float, const UNIT: bool>(
    x: &Src<T>,
    dy: &Src<T>,
    dx: &mut [T],
    g: &Geom,
) {
    let two = g.is_2x2();
    let g = &g.merged(&[(x.st, g.h), (dy.st, g.oh)]).unwrap_or(*g);
    planes(dx, g.h * g.w, g.parallel(), |idx, plane| {
        let (n, c) = (idx / g.c, idx % g.c);
        // SAFETY: plane (n, c) of x and of dy, per the caller.
        let (xp, dp) = unsafe { (x.plane::<UNIT>(n, c), dy.plane::<false>(n, c)) };
        // The 2x2 path writes every cell its windows cover.
        if !two || !g.h.is_multiple_of(2) || !g.w.is_multiple_of(2) {
            plane.fill(T::ZERO);
        }
        // SAFETY: `xp` and `dp` are planes of `g`'s input and output.
        unsafe {
            if two {
                max_2x2_backward(&xp, &dp, plane, g)
            } else {
                max_plane_backward(&xp, &dp, plane, g)
            }
        }
    });
}

/// Max pooling backward of one plane, any window, into the zeroed `dx`.
///
/// # Safety
/// `x` is a plane of `g`'s input, `dy` one of its output; `dx` is `h * w`
/// long.
unsafe fn max_plane_backward<T: Float, const UNIT: bool>(
    x: &Plane<T, UNIT>,
    dy: &Plane<T, false>,
    dx: &mut [T],
    g: &Geom,
) {
    for oh in 0..g.oh {
        let hs = g.span(oh, 0);
        // SAFETY: oh < oh of `g`.
        let d = unsafe { dy.row(oh) };
        for ow in 0..g.ow {
            // SAFETY: windows lie inside the plane; ow is a column of dy.
            let (((ih, iw), _), v) = unsafe { (argmax(x, hs, g.span(ow, 1)), d.at(ow)) };
            dx[ih * g.w + iw] += v;
        }
    }
}

/// [`max_plane_backward`] for 2x2 windows 2 apart without padding: the
/// windows do not overlap, so each cell they cover is written once (the
/// rest of `dx` must be zeroed already).
///
/// # Safety
/// As [`max_plane_backward`], and `g.is_2x2()`.
unsafe fn max_2x2_backward<T: Float, const UNIT: bool>(
    x: &Plane<T, UNIT>,
    dy: &Plane<T, false>,
    dx: &mut [T],
    g: &Geom,
) {
    for oh in 0..g.oh {
        // SAFETY: as in `max_2x2`; oh is a row of dy.
        let (r0, r1, d) = unsafe { (x.row(2 * oh), x.row(2 * oh + 1), dy.row(oh)) };
        let rows = &mut dx[2 * oh * g.w..(2 * oh + 2) * g.w];
        for ow in 0..g.ow {
            let w = 2 * ow;
            // SAFETY: as in `max_2x2`; ow is a column of dy.
            let (x0, x1, x2, x3, v) =
                unsafe { (r0.at(w), r0.at(w + 1), r1.at(w), r1.at(w + 1), d.at(ow)) };
            // The first maximum of (x0, x1), of (x2, x3), then of the two.
            let (right0, right1) = (better(x1, x0), better(x3, x2));
            let lower = better(pick(right1, x2, x3), pick(right0, x0, x1));
            let right = pick(lower, right0, right1) as usize;
            // Zeros, then the zeroed plane plus `v` where the maximum is, as
            // the general path adds it; a computed index, not a branch
            // (random data would mispredict it).
            for r in [w, w + 1, g.w + w, g.w + w + 1] {
                rows[r] = T::ZERO;
            }
            rows[pick(lower, 0, g.w) + w + right] = T::ZERO + v;
        }
    }
}

/// Average pooling backward: each `dy / divisor` spreads over its window.
///
/// # Safety
/// `dy` views a tensor of the pooled shape.
unsafe fn avg_backward<T: Float>(dy: &Src<T>, dx: &mut [T], g: &Geom) {
    planes(dx, g.h * g.w, g.parallel(), |idx, plane| {
        // SAFETY: plane `idx` of dy, per the caller.
        let dp = unsafe { dy.plane::<false>(idx / g.c, idx % g.c) };
        plane.fill(T::ZERO);
        for oh in 0..g.oh {
            let hs = g.span(oh, 0);
            // SAFETY: oh is a row of dy.
            let d = unsafe { dp.row(oh) };
            for ow in 0..g.ow {
                let ws = g.span(ow, 1);
                // SAFETY: ow is a column of dy.
                let share = unsafe { d.at(ow) } / T::from_f64(g.divisor(hs, ws));
                for ih in hs[0]..hs[1] {
                    for v in &mut plane[ih * g.w + ws[0]..ih * g.w + ws[1]] {
                        *v += share;
                    }
                }
            }
        }
    });
}
