//! A chain of modules.

use super::module::{prefixed, Mode, Module};
use crate::error::Result;
use crate::tensor::Tensor;

/// Modules applied in order (`torch.nn.Sequential`); child `i`'s names are
/// prefixed `i.`.
#[derive(Debug, Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
    mode: Mode,
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// A chain of `layers`.
    pub fn from_layers(layers: Vec<Box<dyn Module>>) -> Sequential {
        Sequential {
            layers,
            mode: Mode::default(),
        }
    }

    /// Appends a layer (builder style).
    pub fn with(mut self, layer: impl Module + 'static) -> Sequential {
        self.push(Box::new(layer));
        self
    }

    /// Appends a layer, which takes this chain's mode.
    pub fn push(&mut self, layer: Box<dyn Module>) {
        layer.set_training(self.mode.get());
        self.layers.push(layer);
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Layer `i`.
    pub fn get(&self, i: usize) -> Option<&dyn Module> {
        self.layers.get(i).map(|b| b.as_ref())
    }

    /// The layers.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        for layer in &self.layers {
            y = layer.forward(&y)?;
        }
        Ok(y)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.named_parameters()))
            .collect()
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.named_buffers()))
            .collect()
    }

    fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.state_dict()))
            .collect()
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
        for l in &self.layers {
            l.set_training(training);
        }
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}
