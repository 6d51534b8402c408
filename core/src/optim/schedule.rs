//! Learning-rate schedules: the rate for a step (or epoch) from the base
//! rate, in closed form.

use crate::error::{Error, Result};

/// A learning-rate schedule.
pub trait LrSchedule: std::fmt::Debug {
    /// The learning rate at `step` (0-based step or epoch) for base rate `base`.
    fn lr(&self, base: f64, step: usize) -> f64;
}

/// The base rate throughout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConstantLr;

impl LrSchedule for ConstantLr {
    fn lr(&self, base: f64, _step: usize) -> f64 {
        base
    }
}

/// `base * gamma^(step / step_size)` (`torch.optim.lr_scheduler.StepLR`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLr {
    step_size: usize,
    gamma: f64,
}

impl StepLr {
    /// Decays by `gamma` every `step_size` (> 0) steps.
    pub fn new(step_size: usize, gamma: f64) -> Result<StepLr> {
        if step_size == 0 || !gamma.is_finite() || gamma < 0.0 {
            return Err(Error::invalid(
                "StepLr",
                format!("step size {step_size} must be > 0 and gamma {gamma} finite and >= 0"),
            ));
        }
        Ok(StepLr { step_size, gamma })
    }
}

impl LrSchedule for StepLr {
    fn lr(&self, base: f64, step: usize) -> f64 {
        let k = i32::try_from(step / self.step_size).unwrap_or(i32::MAX);
        base * self.gamma.powi(k)
    }
}

/// Cosine annealing from the base rate to `eta_min` over `t_max` steps
/// (`torch.optim.lr_scheduler.CosineAnnealingLR` in closed form), staying
/// at `eta_min` afterwards; optionally after a linear warmup of `warmup`
/// steps rising to the base rate (`base (step + 1) / warmup`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineLr {
    t_max: usize,
    eta_min: f64,
    warmup: usize,
}

impl CosineLr {
    /// Anneals over `t_max` (> 0) steps down to `eta_min`.
    pub fn new(t_max: usize, eta_min: f64) -> Result<CosineLr> {
        if t_max == 0 || !eta_min.is_finite() || eta_min < 0.0 {
            return Err(Error::invalid(
                "CosineLr",
                format!("t_max {t_max} must be > 0 and eta_min {eta_min} finite and >= 0"),
            ));
        }
        Ok(CosineLr {
            t_max,
            eta_min,
            warmup: 0,
        })
    }

    /// The same schedule after `warmup` steps of linear warmup (the cosine
    /// phase then starts at step `warmup`).
    pub fn with_warmup(self, warmup: usize) -> CosineLr {
        CosineLr { warmup, ..self }
    }
}

impl LrSchedule for CosineLr {
    fn lr(&self, base: f64, step: usize) -> f64 {
        if step < self.warmup {
            return base * (step + 1) as f64 / self.warmup as f64;
        }
        let t = (step - self.warmup).min(self.t_max) as f64;
        let c = (std::f64::consts::PI * t / self.t_max as f64).cos();
        self.eta_min + (base - self.eta_min) * (1.0 + c) / 2.0
    }
}
