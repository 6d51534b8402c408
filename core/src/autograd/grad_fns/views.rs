//! Views and copies: the gradient goes back through the inverse view.

use super::one;
use crate::autograd::{attach, Edges};
use crate::tensor::Tensor;

/// `reshape`, `flatten`, `squeeze`, `unsqueeze`: reshape the gradient back.
pub(crate) fn reshape(x: &Tensor, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let shape = x.shape().to_vec();
    attach(out, "reshape", e, move |g, _| one(g.reshape(&shape)))
}

/// `permute` (and `transpose`, `t`): the inverse permutation.
pub(crate) fn permute(x: &Tensor, perm: &[usize], out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    attach(out, "permute", e, move |g, _| one(g.permute(&inv)))
}

/// `slice` (and `narrow`): the gradient lands in the sliced part of zeros.
pub(crate) fn slice(
    x: &Tensor,
    axis: usize,
    start: usize,
    end: usize,
    step: usize,
    out: Tensor,
) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let shape = x.shape().to_vec();
    attach(out, "slice", e, move |g, _| {
        let dx = Tensor::zeros(&shape, g.dtype(), g.device())?;
        dx.slice(axis as isize, start, end, step)?.assign(g)?;
        one(Ok(dx))
    })
}

/// `broadcast_to` / `expand`: sum over the broadcast dims.
pub(crate) fn broadcast(x: &Tensor, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let shape = x.shape().to_vec();
    attach(out, "broadcast_to", e, move |g, _| {
        one(g.sum_to_shape(&shape))
    })
}

/// `to(device)`: the gradient moves back to the source device.
pub(crate) fn to_device(x: &Tensor, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let device = x.device().clone();
    attach(out, "to", e, move |g, _| one(g.to(&device)))
}
