//! Reverse-mode automatic differentiation over [`Tensor`].
//!
//! A float tensor marked with [`Tensor::set_requires_grad`] is a *leaf*.
//! While grad is enabled ([`is_grad_enabled`]), every differentiable op
//! with an input that requires grad records a node on its output: the
//! inputs' nodes plus a backward function holding what it needs (detached
//! tensors, shapes, options). [`Tensor::backward`] walks the graph from
//! its root in reverse topological order (iteratively, so deep graphs are
//! fine), sums the gradients a tensor receives from each of its uses, and
//! adds the result into each leaf's [`Tensor::grad`]. The backward
//! functions are freed as they run: a second backward through the same
//! graph is an [`Error::InvalidArgument`] saying so, like PyTorch without
//! `retain_graph`.
//!
//! Backward formulas use the op set v1 backward kernels and the public
//! [`Tensor`] ops, so they run on whichever device holds the tensors.
//!
//! Semantics worth knowing:
//! - Views (reshape, permute, transpose, slice, narrow, broadcast/expand,
//!   unsqueeze, squeeze), `contiguous`, `deep_copy`, float-to-float `cast`,
//!   `to(device)` and `concat` are differentiable.
//! - `maximum`/`minimum` send the gradient to the larger/smaller operand
//!   and split it evenly on ties; `max`/`min` reductions divide it evenly
//!   among the positions that equal the extreme value (both as PyTorch).
//!   `max_pool2d` gives it to the first maximum of each window (the kernel).
//! - `layer_norm` and `batch_norm_train` are differentiable in `x`,
//!   `gamma` and `beta` through `y`; their `mean` and `rstd` outputs carry
//!   no history. `batch_norm_infer` treats the running statistics as
//!   constants.
//! - Comparisons, `argmax`, integer ops and the explicit `*_backward` ops
//!   record nothing (no higher-order gradients).
//! - Gradients are only for float tensors: `set_requires_grad(true)` on an
//!   integer or u8 tensor is ignored (the tensor keeps `requires_grad() ==
//!   false`).
//! - In-place [`Tensor::assign`] and [`Tensor::index_add_`] are not
//!   recorded; while grad is enabled they refuse a source that requires
//!   grad or a target made by a recorded op.

mod engine;
pub(crate) mod grad_fns;
mod node;

use std::cell::Cell;
use std::sync::Arc;

pub(crate) use node::{attach, Edges, Node};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// True unless the current thread is inside [`no_grad`].
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Restores the previous grad mode when dropped (also on unwinding).
struct ModeGuard(bool);

impl ModeGuard {
    fn set(enabled: bool) -> ModeGuard {
        ModeGuard(GRAD_ENABLED.with(|c| c.replace(enabled)))
    }
}

impl Drop for ModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|c| c.set(self.0));
    }
}

/// Runs `f` with gradient recording off on this thread: ops inside record
/// nothing. Nests; the previous mode comes back when `f` returns.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = ModeGuard::set(false);
    f()
}

/// Errors when an in-place write of `src` into `target` would silently
/// lose gradient: `src` requires grad, or `target` came from a recorded op.
pub(crate) fn check_in_place(op: &'static str, target: &Tensor, src: &Tensor) -> Result<()> {
    if !is_grad_enabled() {
        return Ok(());
    }
    if src.requires_grad() {
        return Err(Error::invalid(
            op,
            "the source requires grad, but in-place writes are not differentiable \
             (use an op that returns a new tensor, or detach the source)",
        ));
    }
    if target.node().is_some_and(|n| !n.is_leaf()) {
        return Err(Error::invalid(
            op,
            "the target was made by a recorded op; writing into it would corrupt its \
             gradient (write inside sunrise::no_grad, or into a detached tensor)",
        ));
    }
    Ok(())
}

impl Tensor {
    /// True when gradients flow to this tensor: a leaf marked with
    /// [`Tensor::set_requires_grad`], or the result of a recorded op.
    pub fn requires_grad(&self) -> bool {
        self.node().is_some()
    }

    /// True unless this tensor is the result of a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.node().is_none_or(|n| n.is_leaf())
    }

    /// Marks this tensor as a leaf whose gradient [`Tensor::backward`]
    /// accumulates (`on`), or returns it without any history (`!on`). The
    /// result shares this tensor's storage. A tensor that already requires
    /// grad keeps its identity, so clones of a leaf share one gradient.
    /// Ignored for non-float dtypes, which have no gradient.
    pub fn set_requires_grad(self, on: bool) -> Tensor {
        if !on {
            return self.with_node(None);
        }
        if self.node().is_some() || !self.dtype().is_float() {
            return self;
        }
        self.with_node(Some(Arc::new(Node::leaf())))
    }

    /// The gradient accumulated into this leaf by [`Tensor::backward`]
    /// (`None` before any, after [`Tensor::zero_grad`], and for tensors
    /// that are not leaves requiring grad). Its storage is its own.
    pub fn grad(&self) -> Option<Tensor> {
        self.node().and_then(|n| n.grad())
    }

    /// Clears this leaf's accumulated gradient (no-op for other tensors).
    pub fn zero_grad(&self) {
        if let Some(n) = self.node() {
            n.set_grad(None);
        }
    }

    /// The same storage and layout without any autograd history.
    pub fn detach(&self) -> Tensor {
        self.with_layout(self.layout().clone())
    }

    /// Back-propagates from this one-element tensor (seeded with 1) and
    /// adds the gradients into the leaves it depends on.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "backward",
                format!(
                    "the tensor has shape {:?} ({} elements); backward() needs one element, \
                     use backward_with(grad) otherwise",
                    self.shape(),
                    self.numel()
                ),
            ));
        }
        self.expect_float("backward")?;
        let seed = Tensor::ones(self.shape(), self.dtype(), self.device())?;
        engine::backward(self, seed)
    }

    /// Back-propagates `grad` (shaped, typed and placed like this tensor)
    /// as the gradient of this tensor.
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        grad.expect_dtype("backward", self.dtype())?;
        if grad.shape() != self.shape() {
            return Err(Error::shape(
                "backward",
                format!(
                    "grad {:?} must have the tensor's shape {:?}",
                    grad.shape(),
                    self.shape()
                ),
            ));
        }
        crate::ops::same_device("backward", &[self, grad])?;
        engine::backward(self, grad.detach())
    }
}
