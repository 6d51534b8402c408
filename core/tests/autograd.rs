//! Autograd: the gradient of every differentiable op against central
//! finite differences in f64, plus the engine's semantics (accumulation,
//! no_grad, detach, freed graphs, typed errors).

#[path = "autograd/check.rs"]
mod check;
#[path = "autograd/engine.rs"]
mod engine;
#[path = "autograd/nn.rs"]
mod nn;
#[path = "autograd/ops.rs"]
mod ops;
#[path = "autograd/views.rs"]
mod views;
