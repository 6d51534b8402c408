//! The training recipe behind `sunrise train` and `sunrise eval`: a small
//! CNN for image data (or an MLP for flat features), a fit loop with a
//! per-batch callback for progress, evaluation, and checkpoints that carry
//! the architecture and normalisation in their metadata so `eval` can
//! rebuild the model from the file alone.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use crate::data::{DataLoader, Dataset, Normalization};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{
    Activation, ActivationKind, BatchNorm2d, Conv2d, Flatten, Init, Linear, MaxPool2d, Module,
    Sequential,
};
use crate::optim::{AdamW, AdamWOptions, CosineLr, LrSchedule, Optimizer};
use crate::{Conv2dOptions, DType, Tensor};

/// Which network a [`ModelSpec`] builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arch {
    /// Two conv-BN-ReLU-maxpool stages then two linear layers, for
    /// `[C, H, W]` features.
    Cnn {
        /// Input channels, height, width.
        input: [usize; 3],
    },
    /// Two linear layers for flat features.
    Mlp {
        /// Input features.
        features: usize,
    },
}

/// A model: architecture, classes, and the normalisation its inputs need.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The network.
    pub arch: Arch,
    /// Output classes.
    pub classes: usize,
    /// Input normalisation, `x = (x - offset) / scale`.
    pub norm: Normalization,
}

const HIDDEN: usize = 64;

fn metadata_err(detail: impl Into<String>) -> Error {
    Error::invalid("checkpoint metadata", detail)
}

impl ModelSpec {
    /// The model for a data set: a CNN for `[C, H, W]` samples at least 4x4,
    /// else an MLP on the flattened features.
    pub fn for_dataset(data: &Dataset, norm: Normalization) -> Result<ModelSpec> {
        let fs = data.feature_shape();
        let arch = match fs {
            [c, h, w] if *h >= 4 && *w >= 4 => Arch::Cnn {
                input: [*c, *h, *w],
            },
            _ => Arch::Mlp {
                features: data.sample_len(),
            },
        };
        if data.num_classes() < 2 {
            return Err(Error::invalid(
                "train",
                format!("{} class(es): need at least 2", data.num_classes()),
            ));
        }
        Ok(ModelSpec {
            arch,
            classes: data.num_classes(),
            norm,
        })
    }

    /// Builds the network with seeded initialisation.
    pub fn build(&self, init: &mut Init) -> Result<Sequential> {
        match self.arch {
            Arch::Cnn { input: [c, h, w] } => {
                let pad = Conv2dOptions {
                    padding: [1, 1],
                    ..Default::default()
                };
                let flat = 32 * (h / 4) * (w / 4);
                Ok(Sequential::new()
                    .with(Conv2d::with_options(c, 16, [3, 3], pad, false, init)?)
                    .with(BatchNorm2d::new(16, init)?)
                    .with(Activation::new(ActivationKind::Relu))
                    .with(MaxPool2d::square(2))
                    .with(Conv2d::with_options(16, 32, [3, 3], pad, false, init)?)
                    .with(BatchNorm2d::new(32, init)?)
                    .with(Activation::new(ActivationKind::Relu))
                    .with(MaxPool2d::square(2))
                    .with(Flatten::new(1, -1))
                    .with(Linear::new(flat, HIDDEN, init)?)
                    .with(Activation::new(ActivationKind::Relu))
                    .with(Linear::new(HIDDEN, self.classes, init)?))
            }
            Arch::Mlp { features } => Ok(Sequential::new()
                .with(Flatten::new(1, -1))
                .with(Linear::new(features, 128, init)?)
                .with(Activation::new(ActivationKind::Relu))
                .with(Linear::new(128, self.classes, init)?)),
        }
    }

    /// The spec as checkpoint metadata.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let (arch, shape) = match &self.arch {
            Arch::Cnn { input } => ("cnn", format!("{},{},{}", input[0], input[1], input[2])),
            Arch::Mlp { features } => ("mlp", features.to_string()),
        };
        m.insert("sunrise.arch".into(), arch.into());
        m.insert("sunrise.input".into(), shape);
        m.insert("sunrise.classes".into(), self.classes.to_string());
        m.insert("sunrise.norm.offset".into(), self.norm.offset.to_string());
        m.insert("sunrise.norm.scale".into(), self.norm.scale.to_string());
        m
    }

    /// Reads a spec back from checkpoint metadata.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Result<ModelSpec> {
        let get = |k: &str| {
            m.get(k).ok_or_else(|| {
                metadata_err(format!("missing key {k:?}: not a sunrise train checkpoint"))
            })
        };
        let num = |k: &str| -> Result<usize> {
            get(k)?
                .parse()
                .map_err(|_| metadata_err(format!("{k:?} is not a number")))
        };
        let float = |k: &str| -> Result<f32> {
            get(k)?
                .parse()
                .map_err(|_| metadata_err(format!("{k:?} is not a number")))
        };
        let dims: Vec<usize> = get("sunrise.input")?
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| metadata_err("sunrise.input is not a list of numbers"))?;
        let arch = match (get("sunrise.arch")?.as_str(), dims.as_slice()) {
            ("cnn", &[c, h, w]) => Arch::Cnn { input: [c, h, w] },
            ("mlp", &[f]) => Arch::Mlp { features: f },
            (a, d) => {
                return Err(metadata_err(format!(
                    "unknown architecture {a:?} with input {d:?}"
                )))
            }
        };
        let norm = Normalization::new(float("sunrise.norm.offset")?, float("sunrise.norm.scale")?)
            .map_err(|e| metadata_err(e.to_string()))?;
        Ok(ModelSpec {
            arch,
            classes: num("sunrise.classes")?,
            norm,
        })
    }
}

/// Settings of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Peak learning rate (AdamW, cosine decay over all steps).
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 12,
            batch_size: 32,
            lr: 3e-3,
            weight_decay: 1e-4,
            seed: 42,
        }
    }
}

/// Where a fit is, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Batch within the epoch, from 1.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean loss of the epoch so far.
    pub loss: f64,
}

/// What one epoch achieved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Accuracy on the training batches as they were seen (train mode).
    pub train_accuracy: f64,
    /// Held-out accuracy after the epoch (eval mode).
    pub test_accuracy: f64,
    /// Wall time of the training part of the epoch.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
}

/// Loss and accuracy over a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Samples classified correctly.
    pub correct: usize,
    /// Samples seen.
    pub total: usize,
}

fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(-1, false)?;
    let hits = pred.eq(labels)?.cast(DType::I64)?.sum_all()?;
    Ok(hits.item()? as usize)
}

/// Evaluates `model` (in eval mode, without recording gradients).
pub fn evaluate(
    model: &dyn Module,
    data: &Dataset,
    device: &Device,
    batch: usize,
) -> Result<Evaluation> {
    let was = model.is_training();
    model.set_training(false);
    let out = crate::autograd::no_grad(|| -> Result<Evaluation> {
        let loader = DataLoader::new(data, batch, device)?;
        let (mut loss, mut hits) = (0.0, 0usize);
        for b in loader.epoch(0) {
            let (x, y) = b?;
            let logits = model.forward(&x)?;
            loss += Tensor::cross_entropy(&logits, &y, -100)?
                .sum_all()?
                .item()?;
            hits += correct(&logits, &y)?;
        }
        let n = data.len().max(1);
        Ok(Evaluation {
            loss: loss / n as f64,
            accuracy: hits as f64 / n as f64,
            correct: hits,
            total: data.len(),
        })
    });
    model.set_training(was);
    out
}

/// Trains `model` on `train` with AdamW and a cosine schedule, evaluating
/// on `test` after every epoch. `on_batch` sees every step.
pub fn fit(
    model: &dyn Module,
    train: &Dataset,
    test: &Dataset,
    device: &Device,
    opts: &TrainOptions,
    on_batch: &mut dyn FnMut(&Progress),
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> Result<Vec<EpochStats>> {
    let loader = DataLoader::new(train, opts.batch_size, device)?.shuffle(opts.seed);
    let mut optim = AdamW::new(
        model.named_parameters(),
        AdamWOptions {
            weight_decay: opts.weight_decay,
            ..AdamWOptions::new(opts.lr)
        },
    )?;
    let total = (opts.epochs * loader.len()).max(1);
    let schedule = CosineLr::new(total, opts.lr * 0.01)?;
    let mut stats = Vec::new();
    let mut step = 0;
    for epoch in 1..=opts.epochs {
        model.set_training(true);
        let start = Instant::now();
        let (mut loss_sum, mut hits, mut seen) = (0.0, 0usize, 0usize);
        for (i, b) in loader.epoch(epoch as u64).enumerate() {
            let (x, y) = b?;
            optim.set_lr(schedule.lr(opts.lr, step))?;
            optim.zero_grad();
            let logits = model.forward(&x)?;
            let loss = Tensor::cross_entropy(&logits, &y, -100)?.mean_all()?;
            loss.backward()?;
            optim.step()?;
            step += 1;
            let n = y.numel();
            loss_sum += loss.item()? * n as f64;
            hits += crate::autograd::no_grad(|| correct(&logits.detach(), &y))?;
            seen += n;
            on_batch(&Progress {
                epoch,
                batch: i + 1,
                batches: loader.len(),
                loss: loss_sum / seen as f64,
            });
        }
        let seconds = start.elapsed().as_secs_f64();
        let eval = evaluate(model, test, device, 256)?;
        let s = EpochStats {
            epoch,
            loss: loss_sum / seen.max(1) as f64,
            train_accuracy: hits as f64 / seen.max(1) as f64,
            test_accuracy: eval.accuracy,
            seconds,
            samples_per_second: seen as f64 / seconds.max(1e-9),
        };
        on_epoch(&s);
        stats.push(s);
    }
    Ok(stats)
}

/// Saves `model`'s state dict with `spec` (and any `extra` entries, e.g.
/// how the data was split) in the metadata.
pub fn save(
    path: &Path,
    model: &dyn Module,
    spec: &ModelSpec,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let mut meta = spec.to_metadata();
    meta.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    crate::checkpoint::save_with_metadata(path, &model.state_dict(), &meta)?;
    Ok(())
}

/// Loads a checkpoint written by [`save`]: rebuilds the model from its
/// metadata and loads every tensor (names, shapes and dtypes checked).
pub fn load(path: &Path, device: &Device) -> Result<(Sequential, ModelSpec)> {
    let meta = crate::checkpoint::load_metadata(path)?;
    let spec = ModelSpec::from_metadata(&meta)?;
    let mut init = Init::new(0, DType::F32, device)?;
    let model = spec.build(&mut init)?;
    let tensors: HashMap<String, Tensor> =
        crate::checkpoint::load(path, device)?.into_iter().collect();
    model.load_state_dict(&tensors)?;
    model.set_training(false);
    Ok((model, spec))
}
