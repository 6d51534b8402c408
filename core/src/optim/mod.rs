//! Optimizers ([`Sgd`], [`AdamW`]), learning-rate schedules ([`StepLr`],
//! [`CosineLr`]) and gradient clipping ([`clip_grad_norm`]).
//!
//! Optimizers hold the named parameters (leaves with `requires_grad`, as
//! [`crate::nn::Module::named_parameters`] gives them), read each one's
//! accumulated [`crate::Tensor::grad`], and write the update into the
//! parameter in place under [`crate::autograd::no_grad`]. Their state
//! (momentum buffers, moment estimates) lives on each parameter's device;
//! parameters without a gradient are skipped, as in PyTorch.
//!
//! A step is one call per group of parameters: the parameters that share
//! a device, a dtype and a step count (AdamW) or first step (SGD), stored
//! contiguously with contiguous state, go to `adamw_step_multi` or
//! `sgd_step_multi` together where the device lists it; the others, and
//! the groups of one, take the one-parameter `adamw_step` / `sgd_step`,
//! or on devices without those, the same arithmetic as elementwise ops.

mod adamw;
mod clip;
mod schedule;
mod sgd;

pub use adamw::{AdamW, AdamWOptions};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use schedule::{ConstantLr, CosineLr, LrSchedule, StepLr};
pub use sgd::{Sgd, SgdOptions};

use sunrise_backend_api::{DType, OpId};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Parameters stepped by one multi-tensor call: one device, one dtype,
/// one `key` (the step's shared params), each member an index into the
/// optimizer's parameters with its gradient.
pub(crate) struct Group<K> {
    device: Device,
    dtype: DType,
    pub(crate) key: K,
    pub(crate) members: Vec<(usize, Tensor)>,
}

impl<K: PartialEq> Group<K> {
    /// Adds parameter `index` (tensor `p`, gradient `g`) to the group of
    /// its device, dtype and `key`, opening one when none matches; groups
    /// keep the order of their first members, members the order given.
    pub(crate) fn push(groups: &mut Vec<Group<K>>, p: &Tensor, key: K, index: usize, g: Tensor) {
        let (device, dtype) = (p.device(), p.dtype());
        match groups
            .iter_mut()
            .find(|gr| gr.device == *device && gr.dtype == dtype && gr.key == key)
        {
            Some(gr) => gr.members.push((index, g)),
            None => groups.push(Group {
                device: device.clone(),
                dtype,
                key,
                members: vec![(index, g)],
            }),
        }
    }

    /// Whether one call of `op` steps the group: at least two members on
    /// a device that lists `op` for the dtype.
    pub(crate) fn takes(&self, op: OpId) -> bool {
        self.members.len() >= 2
            && (self.device.is_builtin_cpu() || self.device.supports(op, self.dtype))
    }
}

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
