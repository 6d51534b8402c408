//! The backward rule of each differentiable op. Each `record` function
//! takes the op's inputs and its freshly computed output, and returns the
//! output with a node attached when the op is to be recorded (grad
//! enabled, some input requiring grad), or unchanged otherwise; that check
//! allocates nothing. Backward closures hold detached tensors only, so a
//! node never keeps its own output alive.

mod elementwise;
mod nn;
mod reduce;
mod views;

pub(crate) use elementwise::{binary, cast, concat, identity, unary, where_};
pub(crate) use nn::{
    batch_norm_infer, batch_norm_train, conv2d, cross_entropy, index_select, layer_norm, pool2d,
    softmax_like, NormSaved,
};
pub(crate) use reduce::{matmul, reduce};
pub(crate) use views::{broadcast, permute, reshape, slice, to_device};

use crate::error::Result;
use crate::tensor::Tensor;

/// The gradient list of a one-input op.
fn one(g: Result<Tensor>) -> Result<Vec<Option<Tensor>>> {
    Ok(vec![Some(g?)])
}

/// `f()` when `need`, else `None`.
fn when(need: bool, f: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    if need {
        f().map(Some)
    } else {
        Ok(None)
    }
}
