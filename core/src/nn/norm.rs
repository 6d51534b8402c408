//! Normalisation layers: [`BatchNorm2d`] and [`LayerNorm`].

use sunrise_backend_api::DType;

use super::init::{self, Init};
use super::module::{param, Mode, Module};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Batch normalisation over the channels of NCHW input
/// (`torch.nn.BatchNorm2d`).
///
/// Training mode normalises with the batch statistics and updates the
/// running ones (`running = (1 - momentum) running + momentum batch`, the
/// variance unbiased, as PyTorch does); evaluation mode normalises with the
/// running statistics.
#[derive(Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
    eps: f64,
    momentum: f64,
    mode: Mode,
}

impl BatchNorm2d {
    /// `num_features` channels, `eps = 1e-5`, `momentum = 0.1`.
    pub fn new(num_features: usize, init: &Init) -> Result<BatchNorm2d> {
        BatchNorm2d::with_options(num_features, 1e-5, 0.1, init)
    }

    /// With explicit `eps` and `momentum` (`0..=1`).
    pub fn with_options(
        num_features: usize,
        eps: f64,
        momentum: f64,
        init: &Init,
    ) -> Result<BatchNorm2d> {
        if !(eps.is_finite() && eps >= 0.0 && (0.0..=1.0).contains(&momentum)) {
            return Err(Error::invalid(
                "BatchNorm2d",
                format!("eps {eps} must be finite and >= 0, momentum {momentum} in [0, 1]"),
            ));
        }
        let c = [num_features];
        Ok(BatchNorm2d {
            weight: param(init::ones(init, &c)?),
            bias: param(init::zeros(init, &c)?),
            running_mean: init::zeros(init, &c)?,
            running_var: init::ones(init, &c)?,
            num_batches_tracked: Tensor::zeros(&[], DType::I64, init.device())?,
            eps,
            momentum,
            mode: Mode::default(),
        })
    }

    /// The running mean `[C]`.
    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }

    /// The running (unbiased) variance `[C]`.
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    /// Training batches seen (i64, rank 0).
    pub fn num_batches_tracked(&self) -> &Tensor {
        &self.num_batches_tracked
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        if x.rank() != 4 || x.shape()[1] != self.weight.numel() {
            return Err(Error::shape(
                "BatchNorm2d",
                format!(
                    "input {:?} must be [N, {}, H, W]",
                    x.shape(),
                    self.weight.numel()
                ),
            ));
        }
        Ok(())
    }

    /// Folds the batch statistics into the running ones (no autograd).
    fn update_running(&self, mean: &Tensor, rstd: &Tensor, n: usize) -> Result<()> {
        crate::autograd::no_grad(|| {
            let (mean, rstd) = (mean.detach(), rstd.detach());
            let m = self.momentum;
            // var = 1 / rstd^2 - eps (biased), times n / (n - 1).
            let var = rstd
                .mul(&rstd)?
                .pow_scalar(-1.0)?
                .add_scalar(-self.eps)?
                .mul_scalar(n as f64 / (n - 1) as f64)?;
            let rm = self
                .running_mean
                .mul_scalar(1.0 - m)?
                .add(&mean.mul_scalar(m)?)?;
            let rv = self
                .running_var
                .mul_scalar(1.0 - m)?
                .add(&var.mul_scalar(m)?)?;
            self.running_mean.assign(&rm)?;
            self.running_var.assign(&rv)?;
            let seen = self.num_batches_tracked.add_scalar(1.0)?;
            self.num_batches_tracked.assign(&seen)
        })
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        if !self.mode.get() {
            return x.batch_norm_infer(
                &self.weight,
                &self.bias,
                &self.running_mean,
                &self.running_var,
                self.eps,
            );
        }
        let n = x.numel() / x.shape()[1].max(1);
        if n < 2 {
            return Err(Error::invalid(
                "BatchNorm2d",
                format!(
                    "training needs more than one value per channel, input is {:?}",
                    x.shape()
                ),
            ));
        }
        let out = x.batch_norm_train(&self.weight, &self.bias, self.eps)?;
        self.update_running(&out.mean, &out.rstd, n)?;
        Ok(out.y)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        vec![
            ("running_mean".to_string(), self.running_mean.clone()),
            ("running_var".to_string(), self.running_var.clone()),
            (
                "num_batches_tracked".to_string(),
                self.num_batches_tracked.clone(),
            ),
        ]
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}

/// Layer normalisation over the trailing `normalized_shape` dims
/// (`torch.nn.LayerNorm`), with a learnt elementwise `weight` and `bias`.
#[derive(Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    affine: bool,
    eps: f64,
    mode: Mode,
}

impl LayerNorm {
    /// Over the trailing dims `normalized_shape`, `eps = 1e-5`, learnt
    /// weight (ones) and bias (zeros).
    pub fn new(normalized_shape: &[usize], init: &Init) -> Result<LayerNorm> {
        LayerNorm::with_options(normalized_shape, 1e-5, true, init)
    }

    /// With explicit `eps`; without `elementwise_affine` the scale and
    /// shift are fixed at 1 and 0 and are not parameters.
    pub fn with_options(
        normalized_shape: &[usize],
        eps: f64,
        elementwise_affine: bool,
        init: &Init,
    ) -> Result<LayerNorm> {
        if normalized_shape.is_empty() || !eps.is_finite() || eps < 0.0 {
            return Err(Error::invalid(
                "LayerNorm",
                format!("normalized shape {normalized_shape:?} must be non-empty and eps {eps} finite and >= 0"),
            ));
        }
        let (w, b) = (
            init::ones(init, normalized_shape)?,
            init::zeros(init, normalized_shape)?,
        );
        let (weight, bias) = if elementwise_affine {
            (param(w), param(b))
        } else {
            (w, b)
        };
        Ok(LayerNorm {
            weight,
            bias,
            affine: elementwise_affine,
            eps,
            mode: Mode::default(),
        })
    }

    /// The normalised trailing shape.
    pub fn normalized_shape(&self) -> &[usize] {
        self.weight.shape()
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.layer_norm(&self.weight, &self.bias, self.eps)?.y)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        if !self.affine {
            return Vec::new();
        }
        vec![
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}
