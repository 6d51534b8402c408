//! The [`Module`] trait and the train/eval [`Mode`] flag.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Train/eval flag with interior mutability, so a `&self` forward can read
/// it and a shared module can be switched. New modules are in training
/// mode, as in PyTorch.
#[derive(Debug)]
pub struct Mode(AtomicBool);

impl Default for Mode {
    fn default() -> Self {
        Mode(AtomicBool::new(true))
    }
}

impl Mode {
    /// Sets training (`true`) or evaluation (`false`) mode.
    pub fn set(&self, training: bool) {
        self.0.store(training, Ordering::Relaxed);
    }

    /// True in training mode.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A layer or a network of layers.
///
/// Names follow PyTorch's `state_dict`: a layer's own tensors by their
/// attribute names (`weight`, `bias`, `running_mean`, ...), children
/// prefixed with their name and a dot (`0.weight`, `self_attn.out_proj.bias`).
///
/// Modules are `Send + Sync` (tensors are), so a model can be shared with
/// or moved to other threads.
pub trait Module: std::fmt::Debug + Send + Sync {
    /// Applies the module.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Trainable parameters (leaves with `requires_grad`) with their names.
    fn named_parameters(&self) -> Vec<(String, Tensor)>;

    /// Non-trainable state (such as BatchNorm's running statistics).
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Parameters and buffers in PyTorch's `state_dict` order: each
    /// module's own parameters, then its own buffers, then its children's
    /// in turn. The tensors share storage with the module.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut v = self.named_parameters();
        v.extend(self.named_buffers());
        v
    }

    /// Switches training (`true`) or evaluation mode, children included.
    fn set_training(&self, training: bool);

    /// True in training mode.
    fn is_training(&self) -> bool;

    /// Training mode (`model.train()`).
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode (`model.eval()`).
    fn eval(&self) {
        self.set_training(false);
    }

    /// The parameters without names.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.named_parameters().iter().map(|(_, t)| t.numel()).sum()
    }

    /// Overwrites every parameter and buffer with the tensor of the same
    /// name in `state` (moved to the module's device), in place. Every name
    /// must be present with the same shape and dtype, and `state` must hold
    /// no other names; otherwise nothing is written and a typed error says
    /// which name is wrong.
    fn load_state_dict(&self, state: &HashMap<String, Tensor>) -> Result<()> {
        load_state(&self.state_dict(), state)
    }
}

const LOAD: &str = "load_state_dict";

/// Checks then writes `state` into `targets` (see [`Module::load_state_dict`]).
pub(crate) fn load_state(
    targets: &[(String, Tensor)],
    state: &HashMap<String, Tensor>,
) -> Result<()> {
    let names: HashSet<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
    let mut unexpected: Vec<&str> = state
        .keys()
        .map(String::as_str)
        .filter(|k| !names.contains(k))
        .collect();
    if !unexpected.is_empty() {
        unexpected.sort_unstable();
        return Err(Error::invalid(
            LOAD,
            format!("unexpected keys {unexpected:?}"),
        ));
    }
    let mut pairs = Vec::with_capacity(targets.len());
    for (name, dst) in targets {
        let src = state
            .get(name)
            .ok_or_else(|| Error::invalid(LOAD, format!("missing key {name:?}")))?;
        if src.shape() != dst.shape() {
            return Err(Error::shape(
                LOAD,
                format!(
                    "{name:?} is {:?} in the state but {:?} in the module",
                    src.shape(),
                    dst.shape()
                ),
            ));
        }
        if src.dtype() != dst.dtype() {
            return Err(Error::DType {
                op: LOAD,
                expected: format!("{} for {name:?}", dst.dtype()),
                got: src.dtype(),
            });
        }
        pairs.push((dst, src.to(dst.device())?));
    }
    crate::autograd::no_grad(|| pairs.iter().try_for_each(|(dst, src)| dst.assign(src)))
}

/// `items` with `prefix.` before each name.
pub(crate) fn prefixed(prefix: &str, items: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    items
        .into_iter()
        .map(|(n, t)| (format!("{prefix}.{n}"), t))
        .collect()
}

/// Marks a freshly built tensor as a trainable leaf.
pub(crate) fn param(t: Tensor) -> Tensor {
    t.set_requires_grad(true)
}
