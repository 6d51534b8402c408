//! Neural-network layers built from [`crate::Tensor`] ops, so autograd and
//! every device work through them unchanged.
//!
//! - [`Module`]: `forward`, named parameters and buffers, a PyTorch-named
//!   [`Module::state_dict`], train/eval mode.
//! - Layers: [`Linear`], [`Conv2d`], [`BatchNorm2d`], [`LayerNorm`],
//!   [`Dropout`], [`Embedding`], [`MaxPool2d`], [`AvgPool2d`],
//!   [`Activation`], [`Flatten`], [`Sequential`], [`MultiheadAttention`]
//!   and [`TransformerEncoderBlock`].
//! - [`Init`]: the seed, dtype and device layers are built with;
//!   [`init`] holds the initialisation schemes (Kaiming, Xavier, ...).
//!
//! Parameters are leaves with `requires_grad`; buffers (BatchNorm running
//! statistics) are not. Both are shared tensors: writing into one with
//! [`crate::Tensor::assign`] updates the layer, which is how optimizers and
//! [`Module::load_state_dict`] work.

mod activation;
mod conv;
mod dropout;
mod embedding;
pub mod init;
mod linear;
mod module;
mod norm;
mod pool;
mod sequential;
mod transformer;

pub use activation::{Activation, ActivationKind, Flatten};
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use init::Init;
pub use linear::Linear;
pub use module::{Mode, Module};
pub use norm::{BatchNorm2d, LayerNorm};
pub use pool::{AvgPool2d, MaxPool2d};
pub use sequential::Sequential;
pub use transformer::{MultiheadAttention, TransformerConfig, TransformerEncoderBlock};
