//! Creation: zeros, ones, full, arange, and seeded random tensors.

use sunrise_backend_api::ops::FillParams;
use sunrise_backend_api::{DType, OpId, Params};

use super::run;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::random::Rng;
use crate::tensor::Tensor;

impl Tensor {
    /// Every element `value` (converted to `dtype`).
    pub fn full(shape: &[usize], value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        let out = Tensor::alloc(shape, dtype, device)?;
        let p = Params::Fill(FillParams {
            struct_size: FillParams::SIZE,
            value,
        });
        run(OpId::Fill, p, &[], &[&out])?;
        Ok(out)
    }

    /// Zeros.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype, device)
    }

    /// Ones.
    pub fn ones(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype, device)
    }

    /// Zeros shaped like `self`.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape(), self.dtype(), self.device())
    }

    /// `start, start + step, ...` below `end` (above, for a negative step).
    pub fn arange(
        start: f64,
        end: f64,
        step: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid(
                "arange",
                format!("start {start}, end {end}, step {step}"),
            ));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + step * i as f64).collect();
        Tensor::from_slice(&v, &[n], &Device::cpu())?
            .cast(dtype)?
            .to(device)
    }

    /// Uniform in `[lo, hi)` from a seeded generator (same values on every device).
    pub fn rand_uniform(
        shape: &[usize],
        lo: f64,
        hi: f64,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !dtype.is_float() || lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
            return Err(Error::invalid(
                "rand_uniform",
                format!("range [{lo}, {hi}) of {dtype}"),
            ));
        }
        let mut rng = Rng::new(seed);
        let v: Vec<f64> = (0..crate::shape::numel(shape))
            .map(|_| rng.uniform(lo, hi))
            .collect();
        Tensor::from_slice(&v, shape, &Device::cpu())?
            .cast(dtype)?
            .to(device)
    }

    /// Normal with `mean` and `std` from a seeded generator.
    pub fn rand_normal(
        shape: &[usize],
        mean: f64,
        std: f64,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !dtype.is_float() || std.is_nan() || std < 0.0 {
            return Err(Error::invalid(
                "rand_normal",
                format!("std {std} of {dtype}"),
            ));
        }
        let mut rng = Rng::new(seed);
        let v: Vec<f64> = (0..crate::shape::numel(shape))
            .map(|_| mean + std * rng.normal())
            .collect();
        Tensor::from_slice(&v, shape, &Device::cpu())?
            .cast(dtype)?
            .to(device)
    }
}
