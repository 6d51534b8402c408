//! Parameter initialisation: the [`Init`] context (seeded generator, dtype,
//! device) and the standard schemes with PyTorch's formulas
//! (`torch.nn.init`): Kaiming (He), Xavier (Glorot), uniform, normal,
//! zeros, ones.
//!
//! Values are drawn on the host from the seeded [`Rng`] and uploaded, so a
//! given seed gives the same parameters on every device.

use sunrise_backend_api::DType;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::random::Rng;
use crate::shape::numel;
use crate::tensor::Tensor;

/// What layers are built with: a seeded generator for their initial values,
/// the dtype of their parameters and the device they live on.
#[derive(Debug, Clone)]
pub struct Init {
    rng: Rng,
    dtype: DType,
    device: Device,
}

impl Init {
    /// A context seeded with `seed`, building parameters of `dtype` (f32 or
    /// f64) on `device`.
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Result<Init> {
        Init::from_rng(Rng::new(seed), dtype, device)
    }

    /// f32 parameters on the CPU, seeded with `seed`.
    pub fn cpu(seed: u64) -> Init {
        Init {
            rng: Rng::new(seed),
            dtype: DType::F32,
            device: Device::cpu(),
        }
    }

    /// A context drawing from an existing generator.
    pub fn from_rng(rng: Rng, dtype: DType, device: &Device) -> Result<Init> {
        if !dtype.is_float() {
            return Err(Error::DType {
                op: "nn::Init",
                expected: "f32 or f64".into(),
                got: dtype,
            });
        }
        Ok(Init {
            rng,
            dtype,
            device: device.clone(),
        })
    }

    /// The dtype of the parameters built.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The generator.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// A fresh seed from the generator (for layers with their own stream,
    /// such as [`super::Dropout`]).
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A tensor of this context's dtype and device from host values.
    pub fn tensor(&self, values: &[f64], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(values, shape, &Device::cpu())?
            .cast(self.dtype)?
            .to(&self.device)
    }

    fn draw(&mut self, shape: &[usize], mut f: impl FnMut(&mut Rng) -> f64) -> Result<Tensor> {
        let v: Vec<f64> = (0..numel(shape)).map(|_| f(&mut self.rng)).collect();
        self.tensor(&v, shape)
    }
}

/// Which fan a Kaiming initialisation preserves the variance of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Inputs: keeps the forward activations' variance.
    FanIn,
    /// Outputs: keeps the backward gradients' variance.
    FanOut,
}

/// The nonlinearity a gain is computed for (`torch.nn.init.calculate_gain`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nonlinearity {
    /// Identity (gain 1).
    Linear,
    /// A convolution with no nonlinearity (gain 1).
    Conv,
    /// Logistic sigmoid (gain 1).
    Sigmoid,
    /// `tanh` (gain 5/3).
    Tanh,
    /// ReLU (gain sqrt 2).
    Relu,
    /// Leaky ReLU with this negative slope (gain `sqrt(2 / (1 + a^2))`).
    LeakyRelu(f64),
    /// SELU (gain 3/4).
    Selu,
}

impl Nonlinearity {
    /// The recommended gain.
    pub fn gain(self) -> f64 {
        match self {
            Nonlinearity::Linear | Nonlinearity::Conv | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => std::f64::consts::SQRT_2,
            Nonlinearity::LeakyRelu(a) => (2.0 / (1.0 + a * a)).sqrt(),
            Nonlinearity::Selu => 0.75,
        }
    }
}

/// `(fan_in, fan_out)` of a weight shaped `[out, in, k...]`, as PyTorch
/// computes them (the receptive field multiplies both).
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::invalid(
            "nn::init",
            format!("fans need a weight of rank >= 2, got shape {shape:?}"),
        ));
    }
    let receptive = numel(&shape[2..]);
    Ok((shape[1] * receptive, shape[0] * receptive))
}

fn fan(shape: &[usize], mode: FanMode) -> Result<f64> {
    let (fan_in, fan_out) = fans(shape)?;
    let f = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    if f == 0 {
        return Err(Error::invalid(
            "nn::init",
            format!("shape {shape:?} has a zero fan"),
        ));
    }
    Ok(f as f64)
}

fn check_finite(what: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(
            "nn::init",
            format!("{what} {v} is not finite"),
        ))
    }
}

/// Uniform in `[lo, hi)`.
pub fn uniform(init: &mut Init, shape: &[usize], lo: f64, hi: f64) -> Result<Tensor> {
    check_finite("lo", lo)?;
    check_finite("hi", hi)?;
    if lo > hi {
        return Err(Error::invalid(
            "nn::init",
            format!("uniform range [{lo}, {hi}) is empty"),
        ));
    }
    init.draw(shape, |r| r.uniform(lo, hi))
}

/// Normal with `mean` and standard deviation `std`.
pub fn normal(init: &mut Init, shape: &[usize], mean: f64, std: f64) -> Result<Tensor> {
    check_finite("mean", mean)?;
    check_finite("std", std)?;
    if std < 0.0 {
        return Err(Error::invalid("nn::init", format!("std {std} is negative")));
    }
    init.draw(shape, |r| mean + std * r.normal())
}

/// Zeros.
pub fn zeros(init: &Init, shape: &[usize]) -> Result<Tensor> {
    Tensor::zeros(shape, init.dtype, &init.device)
}

/// Ones.
pub fn ones(init: &Init, shape: &[usize]) -> Result<Tensor> {
    Tensor::ones(shape, init.dtype, &init.device)
}

/// Kaiming (He) uniform: `U(-b, b)` with `b = gain * sqrt(3 / fan)`, the
/// gain that of `nonlinearity`. PyTorch's default for `Linear` and `Conv2d`
/// weights is `a = sqrt 5` with [`Nonlinearity::LeakyRelu`], fan in.
pub fn kaiming_uniform(
    init: &mut Init,
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
) -> Result<Tensor> {
    let bound = nonlinearity.gain() * (3.0 / fan(shape, mode)?).sqrt();
    uniform(init, shape, -bound, bound)
}

/// Kaiming (He) normal: `N(0, std^2)` with `std = gain / sqrt(fan)`.
pub fn kaiming_normal(
    init: &mut Init,
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
) -> Result<Tensor> {
    let std = nonlinearity.gain() / fan(shape, mode)?.sqrt();
    normal(init, shape, 0.0, std)
}

/// Xavier (Glorot) uniform: `U(-b, b)` with
/// `b = gain * sqrt(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(init: &mut Init, shape: &[usize], gain: f64) -> Result<Tensor> {
    let (fi, fo) = fans(shape)?;
    let bound = gain * (6.0 / (fi + fo).max(1) as f64).sqrt();
    uniform(init, shape, -bound, bound)
}

/// Xavier (Glorot) normal: `N(0, std^2)` with
/// `std = gain * sqrt(2 / (fan_in + fan_out))`.
pub fn xavier_normal(init: &mut Init, shape: &[usize], gain: f64) -> Result<Tensor> {
    let (fi, fo) = fans(shape)?;
    normal(
        init,
        shape,
        0.0,
        gain * (2.0 / (fi + fo).max(1) as f64).sqrt(),
    )
}

/// PyTorch's default weight of `Linear` and `Conv2d`:
/// `kaiming_uniform(a = sqrt 5)`, i.e. `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn default_weight(init: &mut Init, shape: &[usize]) -> Result<Tensor> {
    kaiming_uniform(
        init,
        shape,
        FanMode::FanIn,
        Nonlinearity::LeakyRelu(5f64.sqrt()),
    )
}

/// PyTorch's default bias of `Linear` and `Conv2d` for a weight of
/// `weight_shape`: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn default_bias(init: &mut Init, weight_shape: &[usize], len: usize) -> Result<Tensor> {
    let (fan_in, _) = fans(weight_shape)?;
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    };
    uniform(init, &[len], -bound, bound)
}
