//! Softmax, normalisation, index ops and the fused cross-entropy loss.

use sunrise_backend_api::ops::{AxisParams, CrossEntropyParams, NormParams};
use sunrise_backend_api::{DType, OpId, Params};

use super::run;
use crate::autograd::{self, grad_fns};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Outputs of [`Tensor::layer_norm`].
#[derive(Debug, Clone)]
pub struct LayerNormOutput {
    /// The normalised, scaled and shifted tensor.
    pub y: Tensor,
    /// Means, shaped like x with the normalised dims set to 1.
    pub mean: Tensor,
    /// Reciprocal standard deviations, shaped like `mean`.
    pub rstd: Tensor,
}

/// Outputs of [`Tensor::batch_norm_train`].
#[derive(Debug, Clone)]
pub struct BatchNormOutput {
    /// The normalised tensor.
    pub y: Tensor,
    /// Batch means per channel `[C]`.
    pub mean: Tensor,
    /// Reciprocal batch standard deviations per channel `[C]`.
    pub rstd: Tensor,
}

fn axis_params(axis: usize) -> Params {
    Params::Axis(AxisParams {
        struct_size: AxisParams::SIZE,
        axis: axis as u32,
        reserved: 0,
    })
}

fn norm_params(eps: f64, axis: usize, training: bool) -> Result<Params> {
    if !eps.is_finite() || eps < 0.0 {
        return Err(Error::invalid(
            "norm",
            format!("eps {eps} must be finite and >= 0"),
        ));
    }
    Ok(Params::Norm(NormParams {
        struct_size: NormParams::SIZE,
        eps,
        axis: axis as u32,
        training: training as u32,
    }))
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    b.expect_dtype(op, a.dtype())?;
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!("{:?} and {:?} differ", a.shape(), b.shape()),
        ));
    }
    Ok(())
}

impl Tensor {
    fn softmax_like(&self, op: OpId, axis: isize) -> Result<Tensor> {
        self.expect_float(op.name())?;
        let a = self.axis(op.name(), axis)?;
        let out = Tensor::alloc(self.shape(), self.dtype(), self.device())?;
        run(op, axis_params(a), &[self], &[&out])?;
        Ok(grad_fns::softmax_like(op, self, a, out))
    }

    /// Softmax along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        self.softmax_like(OpId::Softmax, axis)
    }

    /// Log-softmax along `axis`.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        self.softmax_like(OpId::LogSoftmax, axis)
    }

    fn softmax_like_backward(op: OpId, y: &Tensor, dy: &Tensor, axis: isize) -> Result<Tensor> {
        y.expect_float(op.name())?;
        same_shape(op.name(), y, dy)?;
        let a = y.axis(op.name(), axis)?;
        let dx = Tensor::alloc(y.shape(), y.dtype(), y.device())?;
        run(op, axis_params(a), &[y, dy], &[&dx])?;
        Ok(dx)
    }

    /// Gradient of softmax given its output `y`.
    pub fn softmax_backward(y: &Tensor, dy: &Tensor, axis: isize) -> Result<Tensor> {
        Self::softmax_like_backward(OpId::SoftmaxBackward, y, dy, axis)
    }

    /// Gradient of log-softmax given its output `y`.
    pub fn log_softmax_backward(y: &Tensor, dy: &Tensor, axis: isize) -> Result<Tensor> {
        Self::softmax_like_backward(OpId::LogSoftmaxBackward, y, dy, axis)
    }

    fn layer_norm_stats_shape(
        &self,
        op: &'static str,
        gamma: &Tensor,
    ) -> Result<(usize, Vec<usize>)> {
        let k = gamma.rank();
        if k == 0 || k > self.rank() || self.shape()[self.rank() - k..] != *gamma.shape() {
            return Err(Error::shape(
                op,
                format!(
                    "gamma {:?} must equal the trailing dims of x {:?}",
                    gamma.shape(),
                    self.shape()
                ),
            ));
        }
        let mut stats = self.shape().to_vec();
        let r = stats.len();
        stats[r - k..].iter_mut().for_each(|d| *d = 1);
        Ok((k, stats))
    }

    /// Layer normalisation over the trailing dims that `gamma` and `beta` span.
    /// Differentiable in `x`, `gamma` and `beta` through `y` (the returned
    /// statistics carry no history).
    pub fn layer_norm(&self, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<LayerNormOutput> {
        self.expect_float("layer_norm")?;
        same_shape("layer_norm", gamma, beta)?;
        gamma.expect_dtype("layer_norm", self.dtype())?;
        let (k, stats) = self.layer_norm_stats_shape("layer_norm", gamma)?;
        let y = Tensor::alloc(self.shape(), self.dtype(), self.device())?;
        let mean = Tensor::alloc(&stats, self.dtype(), self.device())?;
        let rstd = Tensor::alloc(&stats, self.dtype(), self.device())?;
        run(
            OpId::LayerNorm,
            norm_params(eps, k, true)?,
            &[self, gamma, beta],
            &[&y, &mean, &rstd],
        )?;
        let saved = grad_fns::NormSaved {
            x: self,
            gamma,
            beta,
            mean: &mean,
            rstd: &rstd,
            eps,
        };
        let y = grad_fns::layer_norm(saved, y);
        Ok(LayerNormOutput { y, mean, rstd })
    }

    /// Gradients `(dx, dgamma, dbeta)` of layer normalisation.
    pub fn layer_norm_backward(
        x: &Tensor,
        gamma: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        dy: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        same_shape("layer_norm_backward", x, dy)?;
        same_shape("layer_norm_backward", mean, rstd)?;
        gamma.expect_dtype("layer_norm_backward", x.dtype())?;
        let (k, stats) = x.layer_norm_stats_shape("layer_norm_backward", gamma)?;
        if mean.shape() != stats.as_slice() {
            return Err(Error::shape(
                "layer_norm_backward",
                format!("mean {:?} must be {stats:?}", mean.shape()),
            ));
        }
        let dx = Tensor::alloc(x.shape(), x.dtype(), x.device())?;
        let dg = Tensor::alloc(gamma.shape(), x.dtype(), x.device())?;
        let db = Tensor::alloc(gamma.shape(), x.dtype(), x.device())?;
        let p = norm_params(eps, k, true)?;
        run(
            OpId::LayerNormBackward,
            p,
            &[x, gamma, mean, rstd, dy],
            &[&dx, &dg, &db],
        )?;
        Ok((dx, dg, db))
    }

    fn check_channels(&self, op: &'static str, per_channel: &[&Tensor]) -> Result<()> {
        self.expect_float(op)?;
        if self.rank() < 2 {
            return Err(Error::shape(
                op,
                format!("x {:?} must be [N, C, ...]", self.shape()),
            ));
        }
        for t in per_channel {
            t.expect_dtype(op, self.dtype())?;
            if t.shape() != [self.shape()[1]] {
                return Err(Error::shape(
                    op,
                    format!("{:?} must be [{}]", t.shape(), self.shape()[1]),
                ));
            }
        }
        Ok(())
    }

    /// Batch normalisation with batch statistics (training mode).
    /// Differentiable in `x`, `gamma` and `beta` through `y` (the returned
    /// statistics carry no history).
    pub fn batch_norm_train(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
    ) -> Result<BatchNormOutput> {
        self.check_channels("batch_norm", &[gamma, beta])?;
        let c = [self.shape()[1]];
        let y = Tensor::alloc(self.shape(), self.dtype(), self.device())?;
        let mean = Tensor::alloc(&c, self.dtype(), self.device())?;
        let rstd = Tensor::alloc(&c, self.dtype(), self.device())?;
        run(
            OpId::BatchNorm,
            norm_params(eps, 1, true)?,
            &[self, gamma, beta],
            &[&y, &mean, &rstd],
        )?;
        let saved = grad_fns::NormSaved {
            x: self,
            gamma,
            beta,
            mean: &mean,
            rstd: &rstd,
            eps,
        };
        let y = grad_fns::batch_norm_train(saved, y);
        Ok(BatchNormOutput { y, mean, rstd })
    }

    /// Batch normalisation with running statistics (inference mode).
    /// Differentiable in `x`, `gamma` and `beta`; the running statistics
    /// are constants.
    pub fn batch_norm_infer(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        self.check_channels("batch_norm", &[gamma, beta, running_mean, running_var])?;
        let y = Tensor::alloc(self.shape(), self.dtype(), self.device())?;
        let p = norm_params(eps, 1, false)?;
        run(
            OpId::BatchNorm,
            p,
            &[self, gamma, beta, running_mean, running_var],
            &[&y],
        )?;
        let stats = [running_mean, running_var];
        Ok(grad_fns::batch_norm_infer(self, gamma, beta, stats, eps, y))
    }

    /// Gradients `(dx, dgamma, dbeta)` of training-mode batch normalisation.
    pub fn batch_norm_backward(
        x: &Tensor,
        gamma: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        dy: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        x.check_channels("batch_norm_backward", &[gamma, mean, rstd])?;
        same_shape("batch_norm_backward", x, dy)?;
        let c = [x.shape()[1]];
        let dx = Tensor::alloc(x.shape(), x.dtype(), x.device())?;
        let dg = Tensor::alloc(&c, x.dtype(), x.device())?;
        let db = Tensor::alloc(&c, x.dtype(), x.device())?;
        let p = norm_params(eps, 1, true)?;
        run(
            OpId::BatchNormBackward,
            p,
            &[x, gamma, mean, rstd, dy],
            &[&dx, &dg, &db],
        )?;
        Ok((dx, dg, db))
    }

    fn index_shape(
        op: &'static str,
        table: &[usize],
        axis: usize,
        index: &Tensor,
    ) -> Result<Vec<usize>> {
        index.expect_dtype(op, DType::I64)?;
        let shape: Vec<usize> = table[..axis]
            .iter()
            .chain(index.shape())
            .chain(&table[axis + 1..])
            .copied()
            .collect();
        crate::shape::check_rank(op, shape.len())?;
        Ok(shape)
    }

    /// Slices of `self` along `axis` named by the i64 `index` (embedding lookup).
    pub fn index_select(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        let a = self.axis("index_select", axis)?;
        let shape = Self::index_shape("index_select", self.shape(), a, index)?;
        let out = Tensor::alloc(&shape, self.dtype(), self.device())?;
        run(OpId::IndexSelect, axis_params(a), &[self, index], &[&out])?;
        Ok(grad_fns::index_select(self, a, index, out))
    }

    /// Accumulates `src` into `self` (in place) at the slices along `axis`
    /// named by `index`: the gradient of [`Tensor::index_select`].
    pub fn index_add_(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<()> {
        let a = self.axis("index_add", axis)?;
        src.expect_dtype("index_add", self.dtype())?;
        let shape = Self::index_shape("index_add", self.shape(), a, index)?;
        if src.shape() != shape.as_slice() {
            return Err(Error::shape(
                "index_add",
                format!("src {:?} must be {shape:?}", src.shape()),
            ));
        }
        if !self.is_contiguous() {
            return Err(Error::invalid("index_add", "the target must be contiguous"));
        }
        autograd::check_in_place("index_add", self, src)?;
        run(OpId::IndexAdd, axis_params(a), &[index, src], &[self])
    }

    fn check_ce(op: &'static str, logits: &Tensor, labels: &Tensor) -> Result<()> {
        logits.expect_float(op)?;
        labels.expect_dtype(op, DType::I64)?;
        if logits.rank() != 2 || labels.shape() != [logits.shape()[0]] {
            return Err(Error::shape(
                op,
                format!(
                    "logits {:?} must be [N, C] and labels {:?} [N]",
                    logits.shape(),
                    labels.shape()
                ),
            ));
        }
        Ok(())
    }

    /// Per-sample cross-entropy `-log_softmax(logits)[label]` (`[N]`), zero
    /// where the label equals `ignore_index`.
    pub fn cross_entropy(logits: &Tensor, labels: &Tensor, ignore_index: i64) -> Result<Tensor> {
        Self::check_ce("cross_entropy", logits, labels)?;
        let loss = Tensor::alloc(&[logits.shape()[0]], logits.dtype(), logits.device())?;
        let p = Params::CrossEntropy(CrossEntropyParams {
            struct_size: CrossEntropyParams::SIZE,
            ignore_index,
        });
        run(OpId::CrossEntropy, p, &[logits, labels], &[&loss])?;
        Ok(grad_fns::cross_entropy(logits, labels, ignore_index, loss))
    }

    /// Gradient of [`Tensor::cross_entropy`] given the per-sample `dloss`.
    pub fn cross_entropy_backward(
        logits: &Tensor,
        labels: &Tensor,
        dloss: &Tensor,
        ignore_index: i64,
    ) -> Result<Tensor> {
        Self::check_ce("cross_entropy_backward", logits, labels)?;
        dloss.expect_dtype("cross_entropy_backward", logits.dtype())?;
        if dloss.shape() != [logits.shape()[0]] {
            return Err(Error::shape(
                "cross_entropy_backward",
                format!("dloss {:?} must be [N]", dloss.shape()),
            ));
        }
        let dx = Tensor::alloc(logits.shape(), logits.dtype(), logits.device())?;
        let p = Params::CrossEntropy(CrossEntropyParams {
            struct_size: CrossEntropyParams::SIZE,
            ignore_index,
        });
        run(
            OpId::CrossEntropyBackward,
            p,
            &[logits, labels, dloss],
            &[&dx],
        )?;
        Ok(dx)
    }
}
