//! `sunrise`: tensors, ops and device backends for deep learning.
//!
//! - [`Tensor`]: shared storage plus a strided [`shape::Layout`]; views
//!   (reshape, transpose, permute, slice, broadcast) never copy.
//! - Ops are methods on [`Tensor`] (`add`, `matmul`, `conv2d`, `softmax`, ...):
//!   each checks shapes, dtypes and devices and returns a typed [`Error`].
//! - [`Device`]: the CPU backend linked into this crate, or a device of a
//!   plugin found at run time ([`plugin`], [`registry`]); `SUNRISE_DEVICE`
//!   chooses. An op a plugin lacks runs on the CPU, counted
//!   ([`registry::fallback_counts`]).
//!
//! **Architecture invariant:** the core never depends on a GPU backend
//! crate; GPU backends reach it only as plugins through
//! `sunrise-backend-api`.

pub mod autograd;
pub mod checkpoint;
pub mod conformance;
pub mod data;
pub mod device;
pub mod element;
pub mod error;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod plugin;
pub mod profile;
pub mod random;
pub mod registry;
pub mod shape;
pub mod storage;
pub mod tensor;
pub mod train;

pub use autograd::{is_grad_enabled, no_grad};
pub use device::Device;
pub use element::Element;
pub use error::{Error, Result};
pub use ops::{BatchNormOutput, Conv2dOptions, LayerNormOutput, Pool2dOptions, UnaryOp};
pub use sunrise_backend_api::abi::{SR_ABI_MAJOR as ABI_MAJOR, SR_ABI_MINOR as ABI_MINOR};
pub use sunrise_backend_api::{DType, OpId};
pub use tensor::Tensor;

/// The version of this crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The CPU backend's ISA choice (tier in use, detected tier, why).
pub fn cpu_isa() -> &'static sunrise_backend_cpu::isa::IsaChoice {
    sunrise_backend_cpu::isa::choice()
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
