//! Unary, broadcasting binary, `where`, copies, casts and concat.

use sunrise_backend_api::OpId;

use super::{one, when};
use crate::autograd::{attach, Edges};
use crate::error::{Error, Result};
use crate::ops::UnaryOp;
use crate::tensor::Tensor;

/// A unary op: `dx = dy * f'(x)` by the `unary_backward` kernel.
pub(crate) fn unary(x: &Tensor, op: UnaryOp, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let x = x.detach();
    attach(out, op.op_id().name(), e, move |g, _| {
        one(x.unary_backward(op, g))
    })
}

/// An op whose gradient passes through unchanged (copies).
pub(crate) fn identity(x: &Tensor, name: &'static str, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    attach(out, name, e, |g, _| one(Ok(g.clone())))
}

/// A float-to-float cast: the gradient is cast back.
pub(crate) fn cast(x: &Tensor, out: Tensor) -> Tensor {
    if !x.dtype().is_float() || !out.dtype().is_float() {
        return out;
    }
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let dtype = x.dtype();
    attach(out, "cast", e, move |g, _| one(g.cast(dtype)))
}

/// `concat` along `axis`: each input gets its slice of the gradient.
pub(crate) fn concat(tensors: &[&Tensor], axis: usize, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(tensors) else {
        return out;
    };
    let lens: Vec<usize> = tensors.iter().map(|t| t.shape()[axis]).collect();
    attach(out, "concat", e, move |g, needs| {
        let mut start = 0;
        let mut grads = Vec::with_capacity(lens.len());
        for (&len, &need) in lens.iter().zip(needs) {
            grads.push(when(need, || g.narrow(axis as isize, start, len))?);
            start += len;
        }
        Ok(grads)
    })
}

/// `where(mask, a, b)`: the mask routes the gradient to `a` or `b`.
pub(crate) fn where_(mask: &Tensor, a: &Tensor, b: &Tensor, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[a, b]) else {
        return out;
    };
    let (mask, sa, sb) = (mask.detach(), a.shape().to_vec(), b.shape().to_vec());
    attach(out, "where", e, move |g, needs| {
        let zero = g.scalar_like(0.0)?;
        Ok(vec![
            when(needs[0], || {
                Tensor::where_(&mask, g, &zero)?.sum_to_shape(&sa)
            })?,
            when(needs[1], || {
                Tensor::where_(&mask, &zero, g)?.sum_to_shape(&sb)
            })?,
        ])
    })
}

/// Saved operands of a binary op.
struct Operands {
    op: OpId,
    a: Tensor,
    b: Tensor,
    /// The forward output, kept for `div` and `pow` only.
    out: Option<Tensor>,
}

/// A broadcasting arithmetic op: the full-shape gradient of each side,
/// summed back to that side's shape.
pub(crate) fn binary(op: OpId, a: &Tensor, b: &Tensor, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[a, b]) else {
        return out;
    };
    let saved = Operands {
        op,
        a: a.detach(),
        b: b.detach(),
        out: matches!(op, OpId::Div | OpId::Pow).then(|| out.clone()),
    };
    attach(out, op.name(), e, move |g, needs| {
        let (sa, sb) = (saved.a.shape(), saved.b.shape());
        Ok(vec![
            when(needs[0], || saved.grad_a(g)?.sum_to_shape(sa))?,
            when(needs[1], || saved.grad_b(g)?.sum_to_shape(sb))?,
        ])
    })
}

/// The share of the gradient `x` gets from `max(x, y)` (`pick` = `gt`) or
/// `min(x, y)` (`pick` = `lt`): 1 where it wins, 1/2 on ties, else 0.
fn winner_share(x: &Tensor, y: &Tensor, pick: OpId) -> Result<Tensor> {
    let wins = if pick == OpId::Gt { x.gt(y)? } else { x.lt(y)? };
    let ties = x.eq(y)?.cast(x.dtype())?.mul_scalar(0.5)?;
    wins.cast(x.dtype())?.add(&ties)
}

impl Operands {
    fn out(&self) -> Result<&Tensor> {
        self.out
            .as_ref()
            .ok_or_else(|| Error::invalid("backward", "the forward output was not saved"))
    }

    fn grad_a(&self, g: &Tensor) -> Result<Tensor> {
        let (a, b) = (&self.a, &self.b);
        match self.op {
            OpId::Mul => g.mul(b),
            OpId::Div => g.div(b),
            OpId::Pow => {
                // d/da a^b = b a^(b-1), taken as 0 where b == 0 (PyTorch).
                let zero = g.scalar_like(0.0)?;
                let d = g.mul(b)?.mul(&a.pow(&b.add_scalar(-1.0)?)?)?;
                Tensor::where_(&b.eq(&zero)?, &zero, &d)
            }
            OpId::Maximum => g.mul(&winner_share(a, b, OpId::Gt)?),
            OpId::Minimum => g.mul(&winner_share(a, b, OpId::Lt)?),
            _ => Ok(g.clone()),
        }
    }

    fn grad_b(&self, g: &Tensor) -> Result<Tensor> {
        let (a, b) = (&self.a, &self.b);
        match self.op {
            OpId::Sub => g.neg(),
            OpId::Mul => g.mul(a),
            // d/db a/b = -a/b^2 = -out/b
            OpId::Div => g.mul(self.out()?)?.div(b)?.neg(),
            OpId::Pow => {
                // d/db a^b = a^b ln a, taken as 0 where a == 0 and b >= 0.
                let zero = g.scalar_like(0.0)?;
                let d = g.mul(self.out()?)?.mul(&a.log()?)?;
                let d0 = Tensor::where_(&b.ge(&zero)?, &zero, &d)?;
                Tensor::where_(&a.eq(&zero)?, &d0, &d)
            }
            OpId::Maximum => g.mul(&winner_share(b, a, OpId::Gt)?),
            OpId::Minimum => g.mul(&winner_share(b, a, OpId::Lt)?),
            _ => Ok(g.clone()),
        }
    }
}
