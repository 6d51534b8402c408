//! Op family `loss`: the fused cross-entropy pair.
//!
//! - `cross_entropy(logits [N, C], labels i64 [N])` gives the per-sample
//!   loss `[N]`: `logsumexp(logits_i) - logits_i[label_i]`, and 0 where
//!   `label == ignore_index`.
//! - `cross_entropy_backward(logits, labels, dloss [N])` gives `dlogits
//!   [N, C] = (softmax(logits_i) - onehot(label_i)) * dloss_i`, a zero row
//!   where the label is ignored.
//!
//! Labels outside `[0, C)` other than `ignore_index` are `InvalidArgument`,
//! checked before anything is written. f32 rows use the SIMD softmax
//! kernels (max-subtracted); rows run on the pool above `PAR_THRESHOLD`.

use rayon::prelude::*;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Float;
use crate::reduce::{dtype_of, expect_shape, in_view, out_view, pairs, unsupported_dtype};
use crate::softmax::{cols, Kind};
use crate::strided::check_arity;
use crate::threads;

/// The (op, dtype) pairs this family implements (the logits' dtype).
pub(crate) fn supported() -> Vec<SrOpSupport> {
    pairs(
        &[OpId::CrossEntropy, OpId::CrossEntropyBackward],
        &[DType::F32, DType::F64],
    )
}

/// Element types with the two row operations the losses need.
trait LossElem: Float {
    /// `log sum e^x`, in f64.
    fn log_sum_exp(x: &[Self]) -> f64;
    /// `y = softmax(x)`.
    fn softmax(x: &[Self], y: &mut [Self]);
}

impl LossElem for f32 {
    fn log_sum_exp(x: &[f32]) -> f64 {
        crate::softmax::kernels::table().log_sum_exp(x) as f64
    }
    fn softmax(x: &[f32], y: &mut [f32]) {
        crate::softmax::kernels::table().softmax(x, y)
    }
}

impl LossElem for f64 {
    fn log_sum_exp(x: &[f64]) -> f64 {
        let m = x.iter().fold(
            f64::NEG_INFINITY,
            |a, &v| if v > a || v.is_nan() { v } else { a },
        );
        if m.is_infinite() {
            return m;
        }
        m + x.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
    }
    fn softmax(x: &[f64], y: &mut [f64]) {
        cols(Kind::Softmax, x, None, y, x.len(), 1)
    }
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let backward = op == OpId::CrossEntropyBackward;
    check_arity(
        op.name(),
        call.inputs.len(),
        call.outputs.len(),
        2 + backward as usize,
        1,
    )?;
    let Params::CrossEntropy(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{op}: expected cross-entropy params"
        )));
    };
    // SAFETY: per the caller.
    unsafe {
        match dtype_of(op, "logits", &call.inputs[0])? {
            DType::F32 => run::<f32>(call, p.ignore_index),
            DType::F64 => run::<f64>(call, p.ignore_index),
            d => Err(unsupported_dtype(op, d)),
        }
    }
}

/// # Safety
/// As [`execute`].
unsafe fn run<T: LossElem>(call: &OpCall<'_>, ignore: i64) -> Result<()> {
    let op = call.op;
    // SAFETY: per the caller (every view below).
    let logits = unsafe { in_view::<T>(op, "logits", &call.inputs[0]) }?;
    let &[n, c] = logits.shape.as_slice() else {
        return Err(BackendError::invalid(format!(
            "{op}: logits must be [N, C], got {:?}",
            logits.shape
        )));
    };
    // SAFETY: as above.
    let labels = unsafe { in_view::<i64>(op, "labels", &call.inputs[1]) }?;
    expect_shape(op, "labels", &labels.shape, &[n])?;
    // SAFETY: inputs are not written during the call.
    let labels = unsafe { labels.to_vec() };
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l != ignore && !(0..c as i64).contains(&l))
    {
        return Err(BackendError::invalid(format!(
            "{op}: label {l} of sample {i} is outside [0, {c}) and is not ignore_index {ignore}"
        )));
    }
    let big = threads::split(n * c);
    if op == OpId::CrossEntropy {
        // SAFETY: as above.
        let out = unsafe { out_view::<T>(op, "loss", &call.outputs[0], &[n]) }?;
        // SAFETY: inputs are not written; the output is checked contiguous,
        // distinct, and only touched here.
        let (xs, o) = unsafe {
            (
                logits.contiguous(),
                out.as_mut_slice().expect("checked contiguous"),
            )
        };
        let one = |(i, dst): (usize, &mut T)| {
            *dst = if labels[i] == ignore {
                T::from_f64(0.0)
            } else {
                let row = &xs[i * c..(i + 1) * c];
                T::from_f64(T::log_sum_exp(row) - row[labels[i] as usize].to_f64())
            };
        };
        if big {
            threads::install(|| o.par_iter_mut().enumerate().with_min_len(64).for_each(one));
        } else {
            o.iter_mut().enumerate().for_each(one);
        }
        return Ok(());
    }
    // SAFETY: as above.
    let dloss = unsafe { in_view::<T>(op, "dloss", &call.inputs[2]) }?;
    expect_shape(op, "dloss", &dloss.shape, &[n])?;
    // SAFETY: as above.
    let out = unsafe { out_view::<T>(op, "dlogits", &call.outputs[0], &[n, c]) }?;
    if n * c == 0 {
        return Ok(());
    }
    // SAFETY: as for the forward.
    let (xs, dl, o) = unsafe {
        (
            logits.contiguous(),
            dloss.to_vec(),
            out.as_mut_slice().expect("checked contiguous"),
        )
    };
    let one = |(i, dst): (usize, &mut [T])| {
        if labels[i] == ignore {
            dst.fill(T::from_f64(0.0));
            return;
        }
        T::softmax(&xs[i * c..(i + 1) * c], dst);
        let g = dl[i];
        dst.iter_mut().for_each(|v| *v = *v * g);
        let l = labels[i] as usize;
        dst[l] = dst[l] - g;
    };
    if big {
        threads::install(|| {
            o.par_chunks_mut(c)
                .enumerate()
                .with_min_len((4096 / c).max(1))
                .for_each(one)
        });
    } else {
        o.chunks_mut(c).enumerate().for_each(one);
    }
    Ok(())
}
