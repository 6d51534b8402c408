//! Op family `softmax`: `softmax`, `log_softmax` along one axis and their
//! backward ops (inputs `(y, dy)`, `y` the forward output):
//! `softmax`: `dx = y * (dy - sum(dy * y))`; `log_softmax`:
//! `dx = dy - exp(y) * sum(dy)`.
//!
//! Every row is max-subtracted before `exp`. A row whose maximum is NaN or
//! infinite (all `-inf`, or containing `+inf`) gives NaN, as `0/0` or
//! `inf - inf`. f32 along the last axis runs the SIMD row kernels of
//! `simd/softmax_kernels.rs`; other axes (and f64) run portable code whose
//! inner loop walks contiguous columns, with all sums in f64. Independent
//! rows (or outer blocks) run on the pool above `PAR_THRESHOLD` elements.

#[path = "simd/softmax_kernels.rs"]
pub(crate) mod kernels;

use rayon::prelude::*;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{DType, OpCall, OpId, Result};

use crate::element::Float;
use crate::reduce::{axis_param, expect_shape, in_view, out_view, pairs, unsupported_dtype};
use crate::strided::check_arity;
use crate::threads;

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use OpId::*;
    pairs(
        &[Softmax, SoftmaxBackward, LogSoftmax, LogSoftmaxBackward],
        &[DType::F32, DType::F64],
    )
}

/// Which of the four ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `softmax`
    Softmax,
    /// `log_softmax`
    LogSoftmax,
    /// `softmax_backward`
    SoftmaxBwd,
    /// `log_softmax_backward`
    LogSoftmaxBwd,
}

/// Element types with softmax rows: f32 through the SIMD table, f64
/// through the portable column code.
pub(crate) trait SoftmaxElem: Float {
    /// One contiguous row: `x` (forward input or `y`), `g` (`dy` for the
    /// backward kinds), output `out`; all the same length.
    fn row(kind: Kind, x: &[Self], g: Option<&[Self]>, out: &mut [Self]);
}

impl SoftmaxElem for f32 {
    fn row(kind: Kind, x: &[f32], g: Option<&[f32]>, out: &mut [f32]) {
        let k = kernels::table();
        match (kind, g) {
            (Kind::Softmax, _) => k.softmax(x, out),
            (Kind::LogSoftmax, _) => k.log_softmax(x, out),
            (Kind::SoftmaxBwd, Some(g)) => k.softmax_bwd(x, g, out),
            (Kind::LogSoftmaxBwd, Some(g)) => k.log_softmax_bwd(x, g, out),
            _ => cols(kind, x, g, out, x.len(), 1),
        }
    }
}

impl SoftmaxElem for f64 {
    fn row(kind: Kind, x: &[f64], g: Option<&[f64]>, out: &mut [f64]) {
        cols(kind, x, g, out, x.len(), 1)
    }
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let kind = match op {
        OpId::Softmax => Kind::Softmax,
        OpId::LogSoftmax => Kind::LogSoftmax,
        OpId::SoftmaxBackward => Kind::SoftmaxBwd,
        _ => Kind::LogSoftmaxBwd,
    };
    let backward = matches!(kind, Kind::SoftmaxBwd | Kind::LogSoftmaxBwd);
    check_arity(
        op.name(),
        call.inputs.len(),
        call.outputs.len(),
        1 + backward as usize,
        1,
    )?;
    let dtype = crate::reduce::dtype_of(op, "input", &call.inputs[0])?;
    // SAFETY: per the caller.
    unsafe {
        match dtype {
            DType::F32 => run::<f32>(call, kind),
            DType::F64 => run::<f64>(call, kind),
            d => Err(unsupported_dtype(op, d)),
        }
    }
}

/// Checks and runs one call on `T`.
///
/// # Safety
/// As [`execute`].
unsafe fn run<T: SoftmaxElem>(call: &OpCall<'_>, kind: Kind) -> Result<()> {
    let op = call.op;
    // SAFETY: per the caller (for every view below).
    let x = unsafe { in_view::<T>(op, "input", &call.inputs[0]) }?;
    let axis = axis_param(call, x.rank())?;
    let dy = match call.inputs.get(1) {
        Some(d) => {
            // SAFETY: as above.
            let v = unsafe { in_view::<T>(op, "dy", d) }?;
            expect_shape(op, "dy", &v.shape, &x.shape)?;
            Some(v)
        }
        None => None,
    };
    // SAFETY: as above.
    let out = unsafe { out_view::<T>(op, "output", &call.outputs[0], &x.shape) }?;
    if out.numel() == 0 {
        return Ok(());
    }
    let (n, inner) = (x.shape[axis], x.shape[axis + 1..].iter().product::<usize>());
    // SAFETY: inputs are not written during the call.
    let xs = unsafe { x.contiguous() };
    // SAFETY: as above.
    let gs = dy.map(|v| unsafe { v.contiguous() });
    // SAFETY: the output is contiguous, does not overlap the inputs, and
    // only this call touches it.
    let o = unsafe { out.as_mut_slice() }.expect("checked contiguous");
    let block = n * inner;
    let one = |b: usize, dst: &mut [T]| {
        let src = &xs[b * block..(b + 1) * block];
        let g = gs.as_ref().map(|g| &g[b * block..(b + 1) * block]);
        if inner == 1 {
            T::row(kind, src, g, dst)
        } else {
            cols(kind, src, g, dst, n, inner)
        }
    };
    if threads::split(o.len()) && o.len() > block {
        let min_len = (4096 / block).max(1);
        threads::install(|| {
            o.par_chunks_mut(block)
                .with_min_len(min_len)
                .enumerate()
                .for_each(|(b, d)| one(b, d))
        });
    } else {
        o.chunks_mut(block).enumerate().for_each(|(b, d)| one(b, d));
    }
    Ok(())
}

/// NaN-propagating maximum step.
fn max_step(a: f64, v: f64) -> f64 {
    if v > a || v.is_nan() {
        v
    } else {
        a
    }
}

/// One `[n, inner]` block along its first axis, columns walked
/// contiguously; all arithmetic in f64.
pub(crate) fn cols<T: Float>(
    kind: Kind,
    x: &[T],
    g: Option<&[T]>,
    out: &mut [T],
    n: usize,
    inner: usize,
) {
    let at = |j: usize, c: usize| x[j * inner + c].to_f64();
    let gt = |j: usize, c: usize| g.map_or(0.0, |g| g[j * inner + c].to_f64());
    let mut acc = vec![0f64; inner];
    match kind {
        Kind::Softmax | Kind::LogSoftmax => {
            let mut m = vec![f64::NEG_INFINITY; inner];
            for j in 0..n {
                for (c, mc) in m.iter_mut().enumerate() {
                    *mc = max_step(*mc, at(j, c));
                }
            }
            for j in 0..n {
                for c in 0..inner {
                    acc[c] += (at(j, c) - m[c]).exp();
                }
            }
            for j in 0..n {
                for c in 0..inner {
                    let v = if kind == Kind::Softmax {
                        (at(j, c) - m[c]).exp() / acc[c]
                    } else {
                        (at(j, c) - m[c]) - acc[c].ln()
                    };
                    out[j * inner + c] = T::from_f64(v);
                }
            }
        }
        Kind::SoftmaxBwd | Kind::LogSoftmaxBwd => {
            for j in 0..n {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a += if kind == Kind::SoftmaxBwd {
                        at(j, c) * gt(j, c)
                    } else {
                        gt(j, c)
                    };
                }
            }
            for j in 0..n {
                for c in 0..inner {
                    let (y, d) = (at(j, c), gt(j, c));
                    let v = if kind == Kind::SoftmaxBwd {
                        y * (d - acc[c])
                    } else {
                        d - y.exp() * acc[c]
                    };
                    out[j * inner + c] = T::from_f64(v);
                }
            }
        }
    }
}
