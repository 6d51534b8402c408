//! 2-D convolution layer.

use super::init::{self, Init};
use super::module::{param, Mode, Module};
use crate::error::{Error, Result};
use crate::ops::Conv2dOptions;
use crate::tensor::Tensor;

/// 2-D convolution over NCHW input (`torch.nn.Conv2d`): `weight` is
/// `[out, in / groups, kh, kw]`, `bias` `[out]`.
#[derive(Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    opts: Conv2dOptions,
    mode: Mode,
}

impl Conv2d {
    /// A square `kernel` x `kernel` convolution with stride 1, no padding,
    /// a bias and PyTorch's default initialisation.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        init: &mut Init,
    ) -> Result<Conv2d> {
        Conv2d::with_options(
            in_channels,
            out_channels,
            [kernel, kernel],
            Conv2dOptions::default(),
            true,
            init,
        )
    }

    /// A convolution with the given kernel, options and bias, initialised
    /// as PyTorch does.
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        opts: Conv2dOptions,
        bias: bool,
        init: &mut Init,
    ) -> Result<Conv2d> {
        let g = opts.groups;
        if g == 0 || !in_channels.is_multiple_of(g) || !out_channels.is_multiple_of(g) {
            return Err(Error::invalid(
                "Conv2d",
                format!(
                    "groups {g} must divide {in_channels} input and {out_channels} output channels"
                ),
            ));
        }
        let shape = [out_channels, in_channels / g, kernel[0], kernel[1]];
        let weight = init::default_weight(init, &shape)?;
        let bias = if bias {
            Some(init::default_bias(init, &shape, out_channels)?)
        } else {
            None
        };
        Conv2d::from_parts(weight, bias, opts)
    }

    /// A layer around given tensors, which become trainable leaves sharing
    /// their storage.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>, opts: Conv2dOptions) -> Result<Conv2d> {
        weight.expect_float("Conv2d")?;
        let w = weight.shape();
        if w.len() != 4 || opts.groups == 0 || !w[0].is_multiple_of(opts.groups) {
            return Err(Error::shape(
                "Conv2d",
                format!(
                    "weight {w:?} must be [out, in / groups, kh, kw] with groups {} dividing out",
                    opts.groups
                ),
            ));
        }
        if let Some(b) = &bias {
            b.expect_dtype("Conv2d", weight.dtype())?;
            if b.shape() != [w[0]] {
                return Err(Error::shape(
                    "Conv2d",
                    format!("bias {:?} must be [{}]", b.shape(), w[0]),
                ));
            }
        }
        Ok(Conv2d {
            weight: param(weight.detach()),
            bias: bias.map(|b| param(b.detach())),
            opts,
            mode: Mode::default(),
        })
    }

    /// The weight `[out, in / groups, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Stride, padding, dilation and groups.
    pub fn options(&self) -> &Conv2dOptions {
        &self.opts
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), &self.opts)
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
