//! Seeded inputs: the same values on every device and machine, odd sizes,
//! views that are not contiguous.

pub(crate) use crate::shape::numel;
use crate::{DType, Device, Tensor};

/// SplitMix64: seeded, the same on every machine.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// A tensor of `dtype` on `dev` from f64 values (rounded for integers).
pub(crate) fn tensor_of(
    vals: &[f64],
    shape: &[usize],
    dtype: DType,
    dev: &Device,
) -> crate::Result<Tensor> {
    match dtype {
        DType::F32 => Tensor::from_slice(
            &vals.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            shape,
            dev,
        ),
        DType::F64 => Tensor::from_slice(vals, shape, dev),
        DType::I64 => Tensor::from_slice(
            &vals.iter().map(|&v| v.floor() as i64).collect::<Vec<_>>(),
            shape,
            dev,
        ),
        DType::U8 => Tensor::from_slice(
            &vals
                .iter()
                .map(|&v| v.floor().clamp(0.0, 255.0) as u8)
                .collect::<Vec<_>>(),
            shape,
            dev,
        ),
    }
}

/// Uniform values in `[lo, hi)` (integer dtypes: their floors).
pub(crate) fn uni(
    shape: &[usize],
    lo: f64,
    hi: f64,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> crate::Result<Tensor> {
    let mut rng = Rng(seed);
    let v: Vec<f64> = (0..numel(shape)).map(|_| rng.uniform(lo, hi)).collect();
    tensor_of(&v, shape, dtype, dev)
}

/// Integer values in `[lo, hi)` in any dtype (floats too: ties on purpose).
pub(crate) fn ints(
    shape: &[usize],
    lo: i64,
    hi: i64,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> crate::Result<Tensor> {
    let mut rng = Rng(seed);
    let v: Vec<f64> = (0..numel(shape))
        .map(|_| rng.uniform(lo as f64, hi as f64).floor())
        .collect();
    tensor_of(&v, shape, dtype, dev)
}

/// Values of the dtype's natural range: floats in [-2, 2), i64 in
/// [-1000, 1000), u8 over all of 0..=255.
pub(crate) fn any(shape: &[usize], seed: u64, dtype: DType, dev: &Device) -> crate::Result<Tensor> {
    match dtype {
        DType::F32 | DType::F64 => uni(shape, -2.0, 2.0, seed, dtype, dev),
        DType::I64 => ints(shape, -1000, 1000, seed, dtype, dev),
        DType::U8 => ints(shape, 0, 256, seed, dtype, dev),
    }
}

/// A leaf that gradients flow to (a no-op for integer dtypes).
pub(crate) fn leaf(t: Tensor) -> Tensor {
    t.set_requires_grad(true)
}

/// A non-contiguous view of logical `shape` over a tensor `make` builds:
/// the last two dims transposed (rank >= 2), or every other element
/// (rank 1). The tensor `make` returns is the leaf gradients reach.
pub(crate) fn strided_view(
    shape: &[usize],
    make: impl FnOnce(&[usize]) -> crate::Result<Tensor>,
) -> crate::Result<(Tensor, Tensor)> {
    match shape.len() {
        0 => {
            let t = make(shape)?;
            Ok((t.clone(), t))
        }
        1 => {
            let base = make(&[2 * shape[0]])?;
            let v = base.slice(0, 0, 2 * shape[0], 2)?;
            Ok((base, v))
        }
        r => {
            let mut s = shape.to_vec();
            s.swap(r - 1, r - 2);
            let base = make(&s)?;
            let v = base.transpose(-1, -2)?;
            Ok((base, v))
        }
    }
}

/// `make(shape)` as a leaf, itself or (`view`) reached through a
/// non-contiguous view: `(leaf, what to compute with)`.
pub(crate) fn maybe_view(
    shape: &[usize],
    view: bool,
    make: impl FnOnce(&[usize]) -> crate::Result<Tensor>,
) -> crate::Result<(Tensor, Tensor)> {
    if view {
        strided_view(shape, |s| Ok(leaf(make(s)?)))
    } else {
        let t = leaf(make(shape)?);
        Ok((t.clone(), t))
    }
}
