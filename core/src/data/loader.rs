//! [`DataLoader`]: batches of a [`Dataset`] as tensors, shuffled with a seed
//! that differs per epoch but repeats across runs.

use super::dataset::shuffle;
use super::{DataError, Dataset};
use crate::device::Device;
use crate::random::Rng;
use crate::tensor::Tensor;

/// Batches over a [`Dataset`]: `(features [B, ...feature_shape] f32,
/// labels [B] i64)` on a device. Without [`DataLoader::shuffle`] the samples
/// come in order; with it, each epoch has its own permutation derived from
/// the seed and the epoch number.
#[derive(Debug, Clone)]
pub struct DataLoader<'a> {
    dataset: &'a Dataset,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    device: Device,
}

impl<'a> DataLoader<'a> {
    /// Batches of `batch_size` (at least 1) samples of `dataset` on `device`,
    /// in order, keeping a smaller last batch.
    pub fn new(
        dataset: &'a Dataset,
        batch_size: usize,
        device: &Device,
    ) -> Result<DataLoader<'a>, DataError> {
        if batch_size == 0 {
            return Err(DataError::invalid(
                "DataLoader",
                "batch size must be at least 1",
            ));
        }
        Ok(DataLoader {
            dataset,
            batch_size,
            seed: None,
            drop_last: false,
            device: device.clone(),
        })
    }

    /// Shuffles every epoch, seeded by `seed` mixed with the epoch number.
    pub fn shuffle(mut self, seed: u64) -> DataLoader<'a> {
        self.seed = Some(seed);
        self
    }

    /// Drops the last batch when it would be smaller than the batch size.
    pub fn drop_last(mut self, on: bool) -> DataLoader<'a> {
        self.drop_last = on;
        self
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// True when an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The data set.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }

    /// The device batches are made on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The order in which epoch `epoch` visits the samples (all of them,
    /// including any that `drop_last` leaves out).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if let Some(seed) = self.seed {
            shuffle(&mut order, &mut Rng::new(epoch_seed(seed, epoch)));
        }
        order
    }

    /// The batches of epoch `epoch` (0-based).
    pub fn epoch(&self, epoch: u64) -> Batches<'a> {
        Batches {
            dataset: self.dataset,
            device: self.device.clone(),
            order: self.order(epoch),
            batch_size: self.batch_size,
            next: 0,
            remaining: self.len(),
        }
    }
}

/// Mixes the epoch into the seed so that (seed, epoch) pairs do not collide
/// the way `seed + epoch` would.
fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    let base = Rng::new(seed).next_u64();
    Rng::new(base ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// The batches of one epoch; each item is `(features, labels)` or the error
/// making the tensors on the device.
#[derive(Debug)]
pub struct Batches<'a> {
    dataset: &'a Dataset,
    device: Device,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    remaining: usize,
}

impl Batches<'_> {
    fn make(&self, indices: &[usize]) -> crate::Result<(Tensor, Tensor)> {
        let n = self.dataset.sample_len();
        let feats = self.dataset.features();
        let labs = self.dataset.labels();
        let mut x = Vec::with_capacity(indices.len() * n);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            x.extend_from_slice(&feats[i * n..(i + 1) * n]);
            y.push(labs[i]);
        }
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(self.dataset.feature_shape());
        Ok((
            Tensor::from_slice(&x, &shape, &self.device)?,
            Tensor::from_slice(&y, &[indices.len()], &self.device)?,
        ))
    }
}

impl Iterator for Batches<'_> {
    type Item = crate::Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let start = self.next;
        let end = (start + self.batch_size).min(self.order.len());
        self.next = end;
        Some(self.make(&self.order[start..end]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches<'_> {}
