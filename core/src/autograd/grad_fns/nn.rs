//! Convolution, pooling, softmax, normalisation, index_select and
//! cross-entropy: the op set's backward kernels.

use sunrise_backend_api::OpId;

use super::{one, when};
use crate::autograd::{attach, Edges};
use crate::ops::{Conv2dOptions, Pool2dOptions};
use crate::tensor::Tensor;

/// `conv2d(x, w, bias)`: backward-data, backward-filter, and the bias
/// gradient summed over N, H and W.
pub(crate) fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: &Conv2dOptions,
    out: Tensor,
) -> Tensor {
    let edges = match bias {
        Some(b) => Edges::of(&[x, w, b]),
        None => Edges::of(&[x, w]),
    };
    let Some(e) = edges else {
        return out;
    };
    let (x, w, opts) = (x.detach(), w.detach(), *opts);
    attach(out, "conv2d", e, move |g, needs| {
        let mut grads = vec![
            when(needs[0], || {
                Tensor::conv2d_backward_data(g, &w, x.shape(), &opts)
            })?,
            when(needs[1], || {
                Tensor::conv2d_backward_filter(&x, g, w.shape(), &opts)
            })?,
        ];
        if needs.len() == 3 {
            grads.push(when(needs[2], || g.sum(&[0, 2, 3], false))?);
        }
        Ok(grads)
    })
}

/// Max pooling (gradient to each window's first maximum) and average
/// pooling.
pub(crate) fn pool2d(op: OpId, x: &Tensor, opts: &Pool2dOptions, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let (x, opts) = (x.detach(), *opts);
    attach(out, op.name(), e, move |g, _| {
        if op == OpId::MaxPool2d {
            one(Tensor::max_pool2d_backward(&x, g, &opts))
        } else {
            one(Tensor::avg_pool2d_backward(g, x.shape(), &opts))
        }
    })
}

/// Softmax or log-softmax along `axis`, from the saved output.
pub(crate) fn softmax_like(op: OpId, x: &Tensor, axis: usize, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[x]) else {
        return out;
    };
    let y = out.clone();
    attach(out, op.name(), e, move |g, _| {
        if op == OpId::Softmax {
            one(Tensor::softmax_backward(&y, g, axis as isize))
        } else {
            one(Tensor::log_softmax_backward(&y, g, axis as isize))
        }
    })
}

/// What a normalisation's backward needs.
pub(crate) struct NormSaved<'a> {
    /// The input.
    pub x: &'a Tensor,
    /// Scale.
    pub gamma: &'a Tensor,
    /// Shift.
    pub beta: &'a Tensor,
    /// Saved means.
    pub mean: &'a Tensor,
    /// Saved reciprocal standard deviations.
    pub rstd: &'a Tensor,
    /// Epsilon.
    pub eps: f64,
}

type NormBackward =
    fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor, f64) -> crate::Result<(Tensor, Tensor, Tensor)>;

fn norm(name: &'static str, s: NormSaved<'_>, kernel: NormBackward, y: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[s.x, s.gamma, s.beta]) else {
        return y;
    };
    let (x, gamma, mean, rstd, eps) = (
        s.x.detach(),
        s.gamma.detach(),
        s.mean.detach(),
        s.rstd.detach(),
        s.eps,
    );
    attach(y, name, e, move |g, needs| {
        let (dx, dg, db) = kernel(&x, &gamma, &mean, &rstd, g, eps)?;
        let keep = |t: Tensor, need: bool| need.then_some(t);
        Ok(vec![
            keep(dx, needs[0]),
            keep(dg, needs[1]),
            keep(db, needs[2]),
        ])
    })
}

/// Layer normalisation, through its backward kernel.
pub(crate) fn layer_norm(s: NormSaved<'_>, y: Tensor) -> Tensor {
    norm("layer_norm", s, Tensor::layer_norm_backward, y)
}

/// Training-mode batch normalisation, through its backward kernel.
pub(crate) fn batch_norm_train(s: NormSaved<'_>, y: Tensor) -> Tensor {
    norm("batch_norm", s, Tensor::batch_norm_backward, y)
}

/// Inference-mode batch normalisation `y = gamma (x - m) r + beta` with
/// `r = 1/sqrt(v + eps)` from the running statistics (constants).
pub(crate) fn batch_norm_infer(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    [mean, var]: [&Tensor; 2],
    eps: f64,
    y: Tensor,
) -> Tensor {
    let Some(e) = Edges::of(&[x, gamma, beta]) else {
        return y;
    };
    let (x, gamma, mean, var) = (x.detach(), gamma.detach(), mean.detach(), var.detach());
    attach(y, "batch_norm", e, move |g, needs| {
        let mut shape = vec![1; x.rank()];
        shape[1] = x.shape()[1];
        let rstd = var.add_scalar(eps)?.rsqrt()?.reshape(&shape)?;
        let others: Vec<isize> = (0..x.rank() as isize).filter(|&k| k != 1).collect();
        Ok(vec![
            when(needs[0], || g.mul(&gamma.reshape(&shape)?.mul(&rstd)?))?,
            when(needs[1], || {
                let xhat = x.sub(&mean.reshape(&shape)?)?.mul(&rstd)?;
                g.mul(&xhat)?.sum(&others, false)
            })?,
            when(needs[2], || g.sum(&others, false))?,
        ])
    })
}

/// `index_select` along `axis`: the gradient is added into zeros at the
/// selected slices (repeated indices accumulate).
pub(crate) fn index_select(table: &Tensor, axis: usize, index: &Tensor, out: Tensor) -> Tensor {
    let Some(e) = Edges::of(&[table]) else {
        return out;
    };
    let (index, shape) = (index.detach(), table.shape().to_vec());
    attach(out, "index_select", e, move |g, _| {
        let dt = Tensor::zeros(&shape, g.dtype(), g.device())?;
        dt.index_add_(axis as isize, &index, g)?;
        one(Ok(dt))
    })
}

/// Per-sample cross-entropy, through its backward kernel.
pub(crate) fn cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    ignore_index: i64,
    loss: Tensor,
) -> Tensor {
    let Some(e) = Edges::of(&[logits]) else {
        return loss;
    };
    let (logits, labels) = (logits.detach(), labels.detach());
    attach(loss, "cross_entropy", e, move |g, _| {
        one(Tensor::cross_entropy_backward(
            &logits,
            &labels,
            g,
            ignore_index,
        ))
    })
}
