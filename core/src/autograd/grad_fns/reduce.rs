//! Reductions and matmul.

use sunrise_backend_api::OpId;

use super::{one, when};
use crate::autograd::{attach, Edges};
use crate::error::Result;
use crate::tensor::Tensor;

/// A reduction of `x` over the axes in `mask`; `kept` is the result with
/// the reduced dims kept as 1, `out` what the caller gets. `sum` and
/// `mean` broadcast the gradient back; `max` and `min` divide it evenly
/// among the positions equal to the extreme value.
pub(crate) fn reduce(op: OpId, x: &Tensor, mask: u64, kept: Tensor, out: Tensor) -> Tensor {
    if !matches!(op, OpId::Sum | OpId::Mean | OpId::Max | OpId::Min) {
        return out;
    }
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let x = x.detach();
    let axes: Vec<isize> = (0..x.rank())
        .filter(|k| mask & (1 << k) != 0)
        .map(|k| k as isize)
        .collect();
    attach(out, op.name(), e, move |g, _| {
        let g = g.reshape(kept.shape())?;
        match op {
            OpId::Sum => one(g.broadcast_to(x.shape())),
            OpId::Mean => {
                let count: usize = axes.iter().map(|&a| x.shape()[a as usize]).product();
                one(g.mul_scalar(1.0 / count as f64)?.broadcast_to(x.shape()))
            }
            _ => {
                let hits = x.eq(&kept)?.cast(x.dtype())?;
                let share = g.div(&hits.sum(&axes, true)?)?;
                one(hits.mul(&share))
            }
        }
    })
}

/// `a @ b` with NumPy rules: `da = dc @ b^T`, `db = a^T @ dc`, each summed
/// over the batch dims it was broadcast along; 1-D operands are promoted
/// as in the forward pass and the added dim removed again.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[a, b]) else {
        return out;
    };
    let (a_shape, b_shape) = (a.shape().to_vec(), b.shape().to_vec());
    let (a, b) = (promote(a, 0), promote(b, 1));
    attach(out, "matmul", e, move |g, needs| {
        let (a, b) = (a?, b?);
        let mut s = g.shape().to_vec();
        if a_shape.len() == 1 {
            let at = if b_shape.len() == 1 {
                s.len()
            } else {
                s.len() - 1
            };
            s.insert(at, 1);
        }
        if b_shape.len() == 1 {
            s.push(1);
        }
        let g = g.reshape(&s)?;
        Ok(vec![
            when(needs[0], || {
                g.matmul(&b.t()?)?
                    .sum_to_shape(a.shape())?
                    .reshape(&a_shape)
            })?,
            when(needs[1], || {
                if b.rank() == 2 && b.numel() > 0 {
                    return matrix_grad(&a, &b, &g)?.reshape(&b_shape);
                }
                a.t()?
                    .matmul(&g)?
                    .sum_to_shape(b.shape())?
                    .reshape(&b_shape)
            })?,
        ])
    })
}

/// The gradient of a matrix `b` `[K, N]` in `a @ b` for `a` `[.., M, K]`
/// and output gradient `g` `[.., M, N]`: every batch of `a` met the same
/// `b`, so the batch dims fold into the rows and one GEMM of depth
/// `batch x M` gives `a^T g` (instead of a batched product, then a sum
/// over the batch). When `b` is the transpose of a contiguous matrix (a
/// `Linear` weight `W` used as `W^T`), the product is formed as `(g^T
/// a)^T`: a transposed view of contiguous storage, which the view's own
/// backward turns back into `W`'s layout, so the weight gradient needs no
/// strided copy.
fn matrix_grad(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<Tensor> {
    let [k, n] = [b.shape()[0], b.shape()[1]];
    let rows = a.numel() / k;
    let a2 = a.reshape(&[rows, k])?;
    let g2 = g.reshape(&[rows, n])?;
    if !b.is_contiguous() && b.t()?.is_contiguous() {
        return g2.t()?.matmul(&a2)?.t();
    }
    a2.t()?.matmul(&g2)
}

/// `t` detached, with a 1-D operand made a matrix by a unit dim at `axis`.
fn promote(t: &Tensor, axis: isize) -> Result<Tensor> {
    if t.rank() == 1 {
        t.unsqueeze_untracked(axis)
    } else {
        Ok(t.detach())
    }
}
