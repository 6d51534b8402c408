//! Embedding lookup table.

use super::init::{self, Init};
use super::module::{param, Mode, Module};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A table of `num_embeddings` vectors of `embedding_dim`
/// (`torch.nn.Embedding`): input i64 indices of any shape `S` give
/// `S + [embedding_dim]`. `weight` is `[num_embeddings, embedding_dim]`,
/// initialised `N(0, 1)` as in PyTorch.
#[derive(Debug)]
pub struct Embedding {
    weight: Tensor,
    mode: Mode,
}

impl Embedding {
    /// A table initialised from `N(0, 1)`.
    pub fn new(num_embeddings: usize, embedding_dim: usize, init: &mut Init) -> Result<Embedding> {
        let w = init::normal(init, &[num_embeddings, embedding_dim], 0.0, 1.0)?;
        Embedding::from_weight(w)
    }

    /// A table around a given `[num_embeddings, embedding_dim]` tensor,
    /// which becomes a trainable leaf sharing its storage.
    pub fn from_weight(weight: Tensor) -> Result<Embedding> {
        weight.expect_float("Embedding")?;
        if weight.rank() != 2 {
            return Err(Error::shape(
                "Embedding",
                format!(
                    "weight {:?} must be [num_embeddings, embedding_dim]",
                    weight.shape()
                ),
            ));
        }
        Ok(Embedding {
            weight: param(weight.detach()),
            mode: Mode::default(),
        })
    }

    /// The table.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Embedding {
    /// `x`: i64 indices in `0..num_embeddings` (out-of-range indices are an
    /// error from the backend, never a read out of bounds).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.weight.index_select(0, x)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".to_string(), self.weight.clone())]
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}
