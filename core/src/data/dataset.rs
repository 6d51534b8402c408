//! [`Dataset`]: samples held on the host, with seeded splits, subsets and
//! normalisation.

use std::path::{Path, PathBuf};

use super::{DataError, Location};
use crate::device::Device;
use crate::random::Rng;
use crate::tensor::Tensor;

/// Where each sample's label came from, so a label check long after reading
/// can still name the file and line.
#[derive(Clone)]
pub(crate) struct Origin {
    pub(crate) path: PathBuf,
    pub(crate) locations: Vec<Location>,
}

/// Samples in memory: f32 features of shape `[len, ...feature_shape]` and
/// i64 labels `0..num_classes`, row-major in `Vec`s on the host.
#[derive(Clone)]
pub struct Dataset {
    features: Vec<f32>,
    feature_shape: Vec<usize>,
    labels: Vec<i64>,
    num_classes: usize,
    origin: Option<Origin>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Dataset");
        d.field("len", &self.len())
            .field("feature_shape", &self.feature_shape)
            .field("num_classes", &self.num_classes);
        if let Some(o) = &self.origin {
            d.field("source", &o.path);
        }
        d.finish()
    }
}

/// How much of a data set [`Dataset::split`] holds out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Holdout {
    /// This fraction of the samples (rounded to the nearest count).
    Fraction(f64),
    /// Exactly this many samples.
    Count(usize),
}

impl From<f64> for Holdout {
    fn from(f: f64) -> Self {
        Holdout::Fraction(f)
    }
}

impl From<usize> for Holdout {
    fn from(n: usize) -> Self {
        Holdout::Count(n)
    }
}

impl Holdout {
    /// The number of samples held out of `n`; both parts must be non-empty.
    fn count(self, n: usize) -> Result<usize, DataError> {
        let k = match self {
            Holdout::Fraction(f) if (0.0..=1.0).contains(&f) => (f * n as f64).round() as usize,
            Holdout::Fraction(f) => {
                return Err(DataError::invalid(
                    "split",
                    format!("fraction {f} is not in 0..1"),
                ))
            }
            Holdout::Count(k) => k,
        };
        if k == 0 || k >= n {
            return Err(DataError::invalid(
                "split",
                format!("holding out {self:?} of {n} samples leaves an empty part ({k} held out)"),
            ));
        }
        Ok(k)
    }
}

impl Dataset {
    /// A data set from features (`labels.len() * prod(feature_shape)` values,
    /// row-major) and labels (non-negative). `num_classes` starts as the
    /// largest label plus one; see [`Dataset::with_num_classes`].
    pub fn new(
        features: Vec<f32>,
        feature_shape: Vec<usize>,
        labels: Vec<i64>,
    ) -> Result<Dataset, DataError> {
        let sample: usize = feature_shape.iter().product();
        if feature_shape.is_empty() || sample == 0 {
            return Err(DataError::invalid(
                "Dataset::new",
                format!("feature shape {feature_shape:?} holds no values"),
            ));
        }
        if labels.len().checked_mul(sample) != Some(features.len()) {
            return Err(DataError::invalid(
                "Dataset::new",
                format!(
                    "{} feature values do not make {} samples of shape {feature_shape:?}",
                    features.len(),
                    labels.len()
                ),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| l < 0) {
            return Err(DataError::invalid(
                "Dataset::new",
                format!("label {} of row {i} is negative", labels[i]),
            ));
        }
        Ok(Dataset::from_parts(features, feature_shape, labels, None))
    }

    /// Assembles checked parts; `origin` has one location per label.
    pub(crate) fn from_parts(
        features: Vec<f32>,
        feature_shape: Vec<usize>,
        labels: Vec<i64>,
        origin: Option<Origin>,
    ) -> Dataset {
        let num_classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        Dataset {
            features,
            feature_shape,
            labels,
            num_classes,
            origin,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one sample's features (e.g. `[1, 8, 8]`).
    pub fn feature_shape(&self) -> &[usize] {
        &self.feature_shape
    }

    /// Values per sample (the product of [`Dataset::feature_shape`]).
    pub fn sample_len(&self) -> usize {
        self.feature_shape.iter().product()
    }

    /// The number of classes: the largest label plus one, or what
    /// [`Dataset::with_num_classes`] set.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// All features, row-major.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// All labels.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// The file the samples were read from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.origin.as_ref().map(|o| o.path.as_path())
    }

    /// Sample `i`: its features and label.
    pub fn sample(&self, i: usize) -> Option<(&[f32], i64)> {
        let n = self.sample_len();
        let label = *self.labels.get(i)?;
        Some((&self.features[i * n..(i + 1) * n], label))
    }

    /// Samples per class, indexed by label (`num_classes` entries).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Declares `num_classes`, checking every label is below it. A label at
    /// or above it is a [`DataError::LabelOutOfRange`] naming the file and
    /// line (or record) it was read from.
    pub fn with_num_classes(mut self, num_classes: usize) -> Result<Dataset, DataError> {
        if let Some(i) = self
            .labels
            .iter()
            .position(|&l| l as u64 >= num_classes as u64)
        {
            let (path, location) = match &self.origin {
                Some(o) => (o.path.clone(), o.locations[i]),
                None => (PathBuf::from("<in-memory data set>"), Location::Row(i)),
            };
            return Err(DataError::LabelOutOfRange {
                path,
                location,
                label: self.labels[i],
                num_classes,
            });
        }
        self.num_classes = num_classes;
        Ok(self)
    }

    /// The same samples with another feature shape of the same size (e.g.
    /// `[64]` to `[1, 8, 8]`).
    pub fn reshape(mut self, feature_shape: &[usize]) -> Result<Dataset, DataError> {
        let n: usize = feature_shape.iter().product();
        if feature_shape.is_empty() || n != self.sample_len() {
            return Err(DataError::invalid(
                "reshape",
                format!(
                    "feature shape {:?} cannot become {feature_shape:?}",
                    self.feature_shape
                ),
            ));
        }
        self.feature_shape = feature_shape.to_vec();
        Ok(self)
    }

    /// The samples at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::invalid(
                "subset",
                format!("index {bad} is out of range for {} samples", self.len()),
            ));
        }
        let n = self.sample_len();
        let mut features = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            features.extend_from_slice(&self.features[i * n..(i + 1) * n]);
        }
        let origin = self.origin.as_ref().map(|o| Origin {
            path: o.path.clone(),
            locations: indices.iter().map(|&i| o.locations[i]).collect(),
        });
        Ok(Dataset {
            features,
            feature_shape: self.feature_shape.clone(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
            origin,
        })
    }

    /// Splits into `(train, test)`, holding out `test` of the samples chosen
    /// at random with `seed` (the same seed gives the same split). Both parts
    /// keep the original order and `num_classes`.
    pub fn split(
        &self,
        test: impl Into<Holdout>,
        seed: u64,
    ) -> Result<(Dataset, Dataset), DataError> {
        let k = test.into().count(self.len())?;
        let mut order: Vec<usize> = (0..self.len()).collect();
        shuffle(&mut order, &mut Rng::new(seed));
        self.split_at_indices(order.split_off(order.len() - k))
    }

    /// As [`Dataset::split`], but each class is held out in proportion to
    /// its size (largest-remainder rounding), so both parts keep the class
    /// balance.
    pub fn split_stratified(
        &self,
        test: impl Into<Holdout>,
        seed: u64,
    ) -> Result<(Dataset, Dataset), DataError> {
        let n = self.len();
        let k = test.into().count(n)?;
        let counts = self.class_counts();
        // Quota per class: floor of the exact share, then the remainders
        // go to the classes with the largest fractional parts.
        let exact: Vec<(usize, u128)> = counts
            .iter()
            .map(|&c| {
                let num = (k as u128) * (c as u128);
                ((num / n as u128) as usize, num % n as u128)
            })
            .collect();
        let mut quota: Vec<usize> = exact.iter().map(|e| e.0).collect();
        let mut by_rem: Vec<usize> = (0..counts.len()).collect();
        by_rem.sort_by(|&a, &b| exact[b].1.cmp(&exact[a].1).then(a.cmp(&b)));
        let short = k - quota.iter().sum::<usize>();
        for &c in by_rem.iter().take(short) {
            quota[c] += 1;
        }
        let mut rng = Rng::new(seed);
        let mut held = Vec::with_capacity(k);
        for (class, &q) in quota.iter().enumerate() {
            let mut members: Vec<usize> = (0..n)
                .filter(|&i| self.labels[i] as usize == class)
                .collect();
            shuffle(&mut members, &mut rng);
            held.extend_from_slice(&members[..q]);
        }
        self.split_at_indices(held)
    }

    /// `(rest, held)` with both in the original order.
    fn split_at_indices(&self, mut held: Vec<usize>) -> Result<(Dataset, Dataset), DataError> {
        held.sort_unstable();
        let mut is_held = vec![false; self.len()];
        for &i in &held {
            is_held[i] = true;
        }
        let rest: Vec<usize> = (0..self.len()).filter(|&i| !is_held[i]).collect();
        Ok((self.subset(&rest)?, self.subset(&held)?))
    }

    /// Applies `norm` to every feature value: `x = (x - offset) / scale`.
    pub fn normalize(&mut self, norm: &Normalization) {
        for x in &mut self.features {
            *x = (*x - norm.offset) / norm.scale;
        }
    }

    /// All samples as tensors on `device`: features `[len, ...feature_shape]`
    /// (f32) and labels `[len]` (i64).
    pub fn to_tensors(&self, device: &Device) -> crate::Result<(Tensor, Tensor)> {
        let mut shape = vec![self.len()];
        shape.extend_from_slice(&self.feature_shape);
        Ok((
            Tensor::from_slice(&self.features, &shape, device)?,
            Tensor::from_slice(&self.labels, &[self.len()], device)?,
        ))
    }
}

/// Fisher-Yates with the crate's seeded generator.
pub(crate) fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// An affine map of feature values, `x = (x - offset) / scale`, computed
/// from one data set (the training split) and applied to others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Subtracted first.
    pub offset: f32,
    /// Then divided by (never zero).
    pub scale: f32,
}

impl Normalization {
    /// Maps `[min, max]` of `data`'s features onto `[0, 1]` (a constant data
    /// set maps onto 0).
    pub fn min_max(data: &Dataset) -> Result<Normalization, DataError> {
        let (lo, hi) = data
            .features
            .iter()
            .fold(None, |acc: Option<(f32, f32)>, &x| match acc {
                None => Some((x, x)),
                Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
            })
            .ok_or_else(|| DataError::invalid("Normalization::min_max", "empty data set"))?;
        Normalization::new(lo, hi - lo)
    }

    /// Zero mean and unit standard deviation over all of `data`'s feature
    /// values (one scalar mean and std, as is usual for grey images).
    pub fn mean_std(data: &Dataset) -> Result<Normalization, DataError> {
        let n = data.features.len();
        if n == 0 {
            return Err(DataError::invalid(
                "Normalization::mean_std",
                "empty data set",
            ));
        }
        let mean = data.features.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = data
            .features
            .iter()
            .map(|&x| (x as f64 - mean) * (x as f64 - mean))
            .sum::<f64>()
            / n as f64;
        Normalization::new(mean as f32, var.sqrt() as f32)
    }

    /// A fixed map (e.g. `offset 0, scale 16` for the digits' 0..16 pixels).
    /// A zero scale becomes 1 (the values only shift); a non-finite offset
    /// or scale is an error.
    pub fn new(offset: f32, scale: f32) -> Result<Normalization, DataError> {
        if !offset.is_finite() || !scale.is_finite() {
            return Err(DataError::invalid(
                "Normalization",
                format!("offset {offset} and scale {scale} must be finite"),
            ));
        }
        Ok(Normalization {
            offset,
            scale: if scale == 0.0 { 1.0 } else { scale },
        })
    }
}
