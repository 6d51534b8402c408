//! The cases of each (op, dtype) pair of op set v1: inputs, outputs, and
//! the tolerance family each output is held to.

mod dense;
mod elementwise;
mod nn;
mod reduce;

use crate::{DType, Device, OpId, Tensor};

use super::compare::Family;
use super::inputs::uni;

/// Why a case could not run.
#[derive(Debug)]
pub(crate) struct Fail(pub(crate) String);

impl From<crate::Error> for Fail {
    fn from(e: crate::Error) -> Fail {
        Fail(e.to_string())
    }
}

pub(crate) type Res<T> = Result<T, Fail>;

/// One output of a case.
pub(crate) struct Out {
    pub(crate) name: String,
    pub(crate) t: Tensor,
    pub(crate) grad: bool,
}

pub(crate) fn out(name: impl Into<String>, t: Tensor) -> Out {
    Out {
        name: name.into(),
        t,
        grad: false,
    }
}

pub(crate) type Run = Box<dyn Fn(&Device) -> Res<Vec<Out>>>;

/// One input configuration of one (op, dtype) pair.
pub(crate) struct Case {
    pub(crate) what: String,
    pub(crate) family: Family,
    pub(crate) run: Run,
}

pub(crate) fn case(
    what: impl Into<String>,
    family: Family,
    run: impl Fn(&Device) -> Res<Vec<Out>> + 'static,
) -> Case {
    Case {
        what: what.into(),
        family,
        run: Box::new(run),
    }
}

/// `y`, then (float `y` only) the gradients of `sum(y * w)`, `w` seeded
/// random, with respect to each named leaf.
pub(crate) fn with_grads(
    name: &str,
    y: Tensor,
    leaves: &[(&str, &Tensor)],
    seed: u64,
) -> Res<Vec<Out>> {
    let mut outs = vec![out(name, y.detach())];
    if y.dtype().is_float() && leaves.iter().any(|(_, l)| l.requires_grad()) {
        let w = uni(y.shape(), -1.0, 1.0, seed, y.dtype(), y.device())?;
        y.mul(&w)?.sum_all()?.backward()?;
        for (n, l) in leaves {
            if !l.requires_grad() {
                continue;
            }
            let g = l
                .grad()
                .ok_or_else(|| Fail(format!("no gradient reached {n}")))?;
            outs.push(Out {
                name: format!("d{n}"),
                t: g,
                grad: true,
            });
        }
    }
    Ok(outs)
}

/// The cases of one (op, dtype) pair; `None` for a pair this test does not
/// know (a failure: every listed pair must be compared).
pub(crate) fn cases_for(op: OpId, d: DType) -> Option<Vec<Case>> {
    use OpId::*;
    Some(match op {
        _ if op.is_unary() => elementwise::unary_cases(op, d),
        _ if op.is_binary() => elementwise::binary_cases(op, d),
        _ if op.is_comparison() => elementwise::comparison_cases(op, d),
        UnaryBackward if d.is_float() => elementwise::unary_backward_cases(d),
        Where if d == DType::U8 => elementwise::where_cases(),
        Fill => elementwise::fill_cases(d),
        Copy => elementwise::copy_cases(d),
        Cast => elementwise::cast_cases(d),
        Concat => elementwise::concat_cases(d),
        Sum | Mean | Max | Min | Argmax => reduce::reduce_cases(op, d),
        Matmul if d.is_float() => dense::matmul_cases(d),
        Conv2d | Conv2dBackwardData | Conv2dBackwardFilter if d.is_float() => {
            dense::conv_cases(op, d)
        }
        MaxPool2d | MaxPool2dBackward | AvgPool2d | AvgPool2dBackward if d.is_float() => {
            dense::pool_cases(op, d)
        }
        Softmax | SoftmaxBackward | LogSoftmax | LogSoftmaxBackward if d.is_float() => {
            nn::softmax_cases(op, d)
        }
        LayerNorm | LayerNormBackward if d.is_float() => nn::layer_norm_cases(op, d),
        BatchNorm | BatchNormBackward if d.is_float() => nn::batch_norm_cases(op, d),
        IndexSelect | IndexAdd => nn::index_cases(op, d),
        CrossEntropy | CrossEntropyBackward if d.is_float() => nn::cross_entropy_cases(op, d),
        AdamwStep if d.is_float() => nn::adamw_cases(d),
        SgdStep if d.is_float() => nn::sgd_cases(d),
        AdamwStepMulti if d.is_float() => nn::adamw_multi_cases(d),
        SgdStepMulti if d.is_float() => nn::sgd_multi_cases(d),
        _ => return None,
    })
}
