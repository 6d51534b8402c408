//! Fully connected layer.

use super::init::{self, Init};
use super::module::{param, Mode, Module};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `y = x W^T + b` over the last dim of `x` (`torch.nn.Linear`): `weight`
/// is `[out, in]`, `bias` `[out]`.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    mode: Mode,
}

impl Linear {
    /// A layer with PyTorch's default initialisation and a bias.
    pub fn new(in_features: usize, out_features: usize, init: &mut Init) -> Result<Linear> {
        Linear::with_bias(in_features, out_features, true, init)
    }

    /// A layer with PyTorch's default initialisation, with or without bias.
    pub fn with_bias(
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: &mut Init,
    ) -> Result<Linear> {
        let shape = [out_features, in_features];
        let weight = init::default_weight(init, &shape)?;
        let bias = if bias {
            Some(init::default_bias(init, &shape, out_features)?)
        } else {
            None
        };
        Linear::from_parts(weight, bias)
    }

    /// A layer around given tensors (`weight` `[out, in]`, `bias` `[out]`),
    /// which become trainable leaves sharing their storage.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        weight.expect_float("Linear")?;
        if weight.rank() != 2 {
            return Err(Error::shape(
                "Linear",
                format!("weight {:?} must be [out, in]", weight.shape()),
            ));
        }
        if let Some(b) = &bias {
            b.expect_dtype("Linear", weight.dtype())?;
            if b.shape() != [weight.shape()[0]] {
                return Err(Error::shape(
                    "Linear",
                    format!("bias {:?} must be [{}]", b.shape(), weight.shape()[0]),
                ));
            }
        }
        Ok(Linear {
            weight: param(weight.detach()),
            bias: bias.map(|b| param(b.detach())),
            mode: Mode::default(),
        })
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() == 0 || x.shape()[x.rank() - 1] != self.in_features() {
            return Err(Error::shape(
                "Linear",
                format!(
                    "input {:?} must end with {} features",
                    x.shape(),
                    self.in_features()
                ),
            ));
        }
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}
