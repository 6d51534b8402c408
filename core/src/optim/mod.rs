//! Optimizers ([`Sgd`], [`AdamW`]), learning-rate schedules ([`StepLr`],
//! [`CosineLr`]) and gradient clipping ([`clip_grad_norm`]).
//!
//! Optimizers hold the named parameters (leaves with `requires_grad`, as
//! [`crate::nn::Module::named_parameters`] gives them), read each one's
//! accumulated [`crate::Tensor::grad`], and write the update into the
//! parameter in place under [`crate::autograd::no_grad`]. Their state
//! (momentum buffers, moment estimates) lives on each parameter's device;
//! parameters without a gradient are skipped, as in PyTorch.

mod adamw;
mod clip;
mod schedule;
mod sgd;

pub use adamw::{AdamW, AdamWOptions};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use schedule::{ConstantLr, CosineLr, LrSchedule, StepLr};
pub use sgd::{Sgd, SgdOptions};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// An optimizer over a fixed list of named parameters.
pub trait Optimizer: std::fmt::Debug {
    /// Applies one update from the current gradients.
    fn step(&mut self) -> Result<()>;

    /// The learning rate of the next step.
    fn lr(&self) -> f64;

    /// Sets the learning rate (finite, >= 0).
    fn set_lr(&mut self, lr: f64) -> Result<()>;

    /// The parameters, with their names.
    fn params(&self) -> &[(String, Tensor)];

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for (_, p) in self.params() {
            p.zero_grad();
        }
    }
}

/// Errors unless `v` is finite and `>= 0`.
pub(crate) fn check_nonneg(op: &'static str, what: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("{what} {v} must be finite and >= 0"),
        ))
    }
}

/// The gradient of `p` as a plain tensor, checked against `p`.
pub(crate) fn grad_of(op: &'static str, name: &str, p: &Tensor) -> Result<Option<Tensor>> {
    let Some(g) = p.grad() else {
        return Ok(None);
    };
    if g.shape() != p.shape() || g.dtype() != p.dtype() {
        return Err(Error::shape(
            op,
            format!(
                "gradient of {name:?} is {}{:?} but the parameter is {}{:?}",
                g.dtype(),
                g.shape(),
                p.dtype(),
                p.shape()
            ),
        ));
    }
    Ok(Some(g.detach()))
}
