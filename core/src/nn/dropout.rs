//! Dropout.

use std::sync::Mutex;

use super::module::{Mode, Module};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::random::Rng;
use crate::tensor::Tensor;

/// Zeroes each element with probability `p` in training mode and scales the
/// rest by `1 / (1 - p)` (`torch.nn.Dropout`); the identity in evaluation
/// mode. The mask comes from the layer's own seeded generator on the host,
/// so a seed gives the same masks on every device.
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    rng: Mutex<Rng>,
    mode: Mode,
}

impl Dropout {
    /// Dropout with probability `p` (`0..=1`), masks drawn from `seed`.
    pub fn new(p: f64, seed: u64) -> Result<Dropout> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "Dropout",
                format!("probability {p} must be in [0, 1]"),
            ));
        }
        Ok(Dropout {
            p,
            rng: Mutex::new(Rng::new(seed)),
            mode: Mode::default(),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// A mask shaped `shape`: 0 with probability `p`, else `1 / (1 - p)`.
    fn mask(&self, shape: &[usize]) -> Result<Tensor> {
        let keep = 1.0 - self.p;
        let scale = if keep > 0.0 { 1.0 / keep } else { 0.0 };
        let n = crate::shape::numel(shape);
        // A poisoned lock only means another thread panicked mid-draw; the
        // generator state is still a valid state.
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let v: Vec<f64> = (0..n)
            .map(|_| if rng.next_f64() < keep { scale } else { 0.0 })
            .collect();
        Tensor::from_slice(&v, shape, &Device::cpu())
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.expect_float("Dropout")?;
        if !self.mode.get() || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mask = self.mask(x.shape())?.cast(x.dtype())?.to(x.device())?;
        x.mul(&mask)
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
