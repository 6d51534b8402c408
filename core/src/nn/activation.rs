//! Activation layers and [`Flatten`].

use super::module::{Mode, Module};
use crate::error::{Error, Result};
use crate::ops::UnaryOp;
use crate::tensor::Tensor;

/// The activation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationKind {
    /// `max(x, 0)` (`torch.nn.ReLU`).
    Relu,
    /// GELU, exact erf form (`torch.nn.GELU()`).
    Gelu,
    /// GELU, tanh approximation (`torch.nn.GELU(approximate="tanh")`).
    GeluTanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// `tanh`.
    Tanh,
    /// `x sigmoid(x)` (`torch.nn.SiLU`).
    Silu,
}

impl ActivationKind {
    /// The elementwise op.
    pub fn op(self) -> UnaryOp {
        match self {
            ActivationKind::Relu => UnaryOp::Relu,
            ActivationKind::Gelu => UnaryOp::GeluErf,
            ActivationKind::GeluTanh => UnaryOp::GeluTanh,
            ActivationKind::Sigmoid => UnaryOp::Sigmoid,
            ActivationKind::Tanh => UnaryOp::Tanh,
            ActivationKind::Silu => UnaryOp::Silu,
        }
    }
}

/// An elementwise activation as a layer (no parameters).
#[derive(Debug)]
pub struct Activation {
    kind: ActivationKind,
    mode: Mode,
}

impl Activation {
    /// The activation `kind`.
    pub fn new(kind: ActivationKind) -> Activation {
        Activation {
            kind,
            mode: Mode::default(),
        }
    }

    /// ReLU.
    pub fn relu() -> Activation {
        Activation::new(ActivationKind::Relu)
    }

    /// GELU (erf form).
    pub fn gelu() -> Activation {
        Activation::new(ActivationKind::Gelu)
    }

    /// Sigmoid.
    pub fn sigmoid() -> Activation {
        Activation::new(ActivationKind::Sigmoid)
    }

    /// Tanh.
    pub fn tanh() -> Activation {
        Activation::new(ActivationKind::Tanh)
    }

    /// SiLU.
    pub fn silu() -> Activation {
        Activation::new(ActivationKind::Silu)
    }

    /// Which activation.
    pub fn kind(&self) -> ActivationKind {
        self.kind
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.unary(self.kind.op())
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}

/// Flattens dims `start..=end` into one (`torch.nn.Flatten`, by default
/// `start = 1`, `end = -1`: `[N, C, H, W]` becomes `[N, C H W]`).
#[derive(Debug)]
pub struct Flatten {
    start: isize,
    end: isize,
    mode: Mode,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new(1, -1)
    }
}

impl Flatten {
    /// Flattens dims `start..=end` (negative counts from the end).
    pub fn new(start: isize, end: isize) -> Flatten {
        Flatten {
            start,
            end,
            mode: Mode::default(),
        }
    }
}

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.axis("Flatten", self.start)?;
        let e = x.axis("Flatten", self.end)?;
        if s > e {
            return Err(Error::invalid(
                "Flatten",
                format!("start dim {s} is after end dim {e}"),
            ));
        }
        let shape = x.shape();
        let merged: usize = shape[s..=e].iter().product();
        let out: Vec<usize> = shape[..s]
            .iter()
            .copied()
            .chain(std::iter::once(merged))
            .chain(shape[e + 1..].iter().copied())
            .collect();
        x.reshape(&out)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}
