//! Op family `pool`: 2-D max and average pooling over NCHW, and their
//! gradients.
//!
//! Direct loops per `(n, c)` plane, parallel over the planes when the op is
//! large. Windows are `kernel` wide, `stride` apart, over the input padded by
//! `padding` (at most half the window, so every window holds at least one
//! real element). Max pooling ignores padding, takes the first maximum in
//! row-major window order (a NaN counts as the maximum), and its gradient
//! recomputes that position from `x`. Average pooling divides by the whole
//! window with `count_include_pad`, else by the real elements in it.

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

    /// The input rows and columns `(h0..h1, w0..w1)` window `(oh, ow)` covers.
    fn window(&self, oh: usize, ow: usize) -> ([usize; 2], [usize; 2]) {
        let span = |o: usize, a: usize, len: usize| {
            let start = (o * self.stride[a]) as isize - self.pad[a] as isize;
            let end = (start + self.kernel[a] as isize).min(len as isize);
            [start.max(0) as usize, end.max(0) as usize]
        };
        (span(oh, 0, self.h), span(ow, 1, self.w))
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

    /// Element `(n, c, h, w)`.
    ///
    /// # Safety
    /// The index is inside the viewed tensor.
    unsafe fn at(&self, n: usize, c: usize, h: usize, w: usize) -> T {
        // SAFETY: per the caller.
        unsafe {
            *self
                .ptr
                .add(n * self.st[0] + c * self.st[1] + h * self.st[2] + w * self.st[3])
        }
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

/// The first maximum of window `(oh, ow)` of plane `(n, c)`: its position
/// and value (a NaN wins over numbers).
///
/// # Safety
/// `x` views an input of `g`'s shape.
unsafe fn argmax<T: Float>(
    x: &Src<T>,
    g: &Geom,
    (n, c): (usize, usize),
    oh: usize,
    ow: usize,
) -> Option<((usize, usize), T)> {
    let (hs, ws) = g.window(oh, ow);
    let mut best: Option<((usize, usize), T)> = None;
    for ih in hs[0]..hs[1] {
        for iw in ws[0]..ws[1] {
            // SAFETY: inside the input, per the window.
            let v = unsafe { x.at(n, c, ih, iw) };
            let better = match best {
                None => true,
                Some((_, b)) => v > b || (v.is_nan() && !b.is_nan()),
            };
            if better {
                best = Some(((ih, iw), v));
            }
        }
    }
    best
}

/// Max or average pooling forward into the contiguous `y`.
///
/// # Safety
/// `x` views an input of `g`'s shape.
unsafe fn forward<T: Float>(x: &Src<T>, y: &mut [T], g: &Geom, max: bool) {
    planes(y, g.oh * g.ow, g.parallel(), |idx, plane| {
        let nc = (idx / g.c, idx % g.c);
        for (o, out) in plane.iter_mut().enumerate() {
            let (oh, ow) = (o / g.ow, o % g.ow);
            *out = if max {
                // SAFETY: forwarded.
                unsafe { argmax(x, g, nc, oh, ow) }.map_or(T::NEG_INFINITY, |(_, v)| v)
            } else {
                let (hs, ws) = g.window(oh, ow);
                let mut s = T::ZERO;
                for ih in hs[0]..hs[1] {
                    for iw in ws[0]..ws[1] {
                        // SAFETY: inside the input, per the window.
                        s += unsafe { x.at(nc.0, nc.1, ih, iw) };
                    }
                }
                s / T::from_f64(g.divisor(hs, ws))
            };
        }
    });
}

/// Max pooling backward: each `dy` goes to its window's first maximum.
///
/// # Safety
/// `x` views an input of `g`'s shape, `dy` one of the pooled shape.
unsafe fn max_backward<T: Float>(x: &Src<T>, dy: &Src<T>, dx: &mut [T], g: &Geom) {
    planes(dx, g.h * g.w, g.parallel(), |idx, plane| {
        let (n, c) = (idx / g.c, idx % g.c);
        plane.fill(T::ZERO);
        for oh in 0..g.oh {
            for ow in 0..g.ow {
                // SAFETY: forwarded.
                if let Some(((ih, iw), _)) = unsafe { argmax(x, g, (n, c), oh, ow) } {
                    // SAFETY: (n, c, oh, ow) is inside dy.
                    plane[ih * g.w + iw] += unsafe { dy.at(n, c, oh, ow) };
                }
            }
        }
    });
}

/// Average pooling backward: each `dy / divisor` spreads over its window.
///
/// # Safety
/// `dy` views a tensor of the pooled shape.
unsafe fn avg_backward<T: Float>(dy: &Src<T>, dx: &mut [T], g: &Geom) {
    planes(dx, g.h * g.w, g.parallel(), |idx, plane| {
        let (n, c) = (idx / g.c, idx % g.c);
        plane.fill(T::ZERO);
        for oh in 0..g.oh {
            for ow in 0..g.ow {
                let (hs, ws) = g.window(oh, ow);
                // SAFETY: (n, c, oh, ow) is inside dy.
                let share = unsafe { dy.at(n, c, oh, ow) } / T::from_f64(g.divisor(hs, ws));
                for ih in hs[0]..hs[1] {
                    for v in &mut plane[ih * g.w + ws[0]..ih * g.w + ws[1]] {
                        *v += share;
                    }
                }
            }
        }
    });
}
