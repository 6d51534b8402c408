//! Stochastic gradient descent with momentum, Nesterov and weight decay.

use sunrise_backend_api::ops::SgdParams;
use sunrise_backend_api::{OpId, Params};

use super::{check_nonneg, grad_of, Group, Optimizer};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Settings of [`Sgd`] (PyTorch's `torch.optim.SGD`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdOptions {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: plain SGD).
    pub momentum: f64,
    /// Dampening of the momentum (0 for Nesterov).
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl SgdOptions {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> SgdOptions {
        SgdOptions {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// SGD: with `g = grad + weight_decay p`, momentum buffer
/// `b = momentum b + (1 - dampening) g` (`b = g` on the first step), the
/// step is `p -= lr (g + momentum b)` with Nesterov, `p -= lr b` without,
/// `p -= lr g` without momentum (PyTorch's formulation).
#[derive(Debug)]
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    opts: SgdOptions,
    buffers: Vec<Option<Tensor>>,
}

const OP: &str = "Sgd";

impl Sgd {
    /// An optimizer over `params` with `opts`.
    pub fn new(params: Vec<(String, Tensor)>, opts: SgdOptions) -> Result<Sgd> {
        check_nonneg(OP, "lr", opts.lr)?;
        check_nonneg(OP, "momentum", opts.momentum)?;
        check_nonneg(OP, "dampening", opts.dampening)?;
        check_nonneg(OP, "weight decay", opts.weight_decay)?;
        if opts.nesterov && (opts.momentum == 0.0 || opts.dampening != 0.0) {
            return Err(Error::invalid(
                OP,
                "Nesterov momentum needs momentum > 0 and dampening 0",
            ));
        }
        let buffers = vec![None; params.len()];
        Ok(Sgd {
            params,
            opts,
            buffers,
        })
    }

    /// The settings.
    pub fn options(&self) -> &SgdOptions {
        &self.opts
    }

    fn update(&self, p: &Tensor, g: Tensor, buf: Option<&Tensor>) -> Result<Option<Tensor>> {
        let dev = p.device();
        // With momentum, one fused `sgd_step` where the device lists it;
        // without, the update is two or three elementwise ops anyway.
        if self.opts.momentum != 0.0
            && p.is_contiguous()
            && (dev.is_builtin_cpu() || dev.supports(OpId::SgdStep, p.dtype()))
            && buf.is_none_or(Tensor::is_contiguous)
        {
            return self.fused(p, &g, buf).map(Some);
        }
        self.composite(p, g, buf)
    }

    /// The params of a step (`first`: the momentum buffers start now).
    fn op_params(&self, first: bool) -> SgdParams {
        let o = &self.opts;
        SgdParams {
            struct_size: SgdParams::SIZE,
            lr: o.lr,
            momentum: o.momentum,
            dampening: o.dampening,
            weight_decay: o.weight_decay,
            nesterov: u32::from(o.nesterov),
            first_step: u32::from(first),
        }
    }

    /// One `sgd_step` over `p` and its momentum buffer, in place; returns
    /// the buffer.
    fn fused(&self, p: &Tensor, g: &Tensor, buf: Option<&Tensor>) -> Result<Tensor> {
        let (b, first) = match buf {
            Some(b) => (b.clone(), false),
            None => (p.zeros_like()?, true),
        };
        let params = Params::Sgd(self.op_params(first));
        crate::ops::run(OpId::SgdStep, params, &[g], &[p, &b])?;
        Ok(b)
    }

    /// One `sgd_step_multi` over the group (one first-step flag), in
    /// place. Without momentum each buffer is an empty tensor, which the
    /// op neither reads nor writes.
    fn fused_multi(&mut self, group: &Group<bool>) -> Result<()> {
        let momentum = self.opts.momentum != 0.0;
        let mut bufs = Vec::with_capacity(group.members.len());
        let mut empty = None;
        for (i, _) in &group.members {
            let p = &self.params[*i].1;
            bufs.push(match (&self.buffers[*i], momentum) {
                (Some(b), true) => b.clone(),
                (None, true) => p.zeros_like()?,
                (_, false) => match &empty {
                    Some(e) => Tensor::clone(e),
                    None => empty
                        .insert(Tensor::zeros(&[0], p.dtype(), p.device())?)
                        .clone(),
                },
            });
        }
        let grads: Vec<&Tensor> = group.members.iter().map(|(_, g)| g).collect();
        let outs: Vec<&Tensor> = group
            .members
            .iter()
            .zip(&bufs)
            .flat_map(|((i, _), b)| [&self.params[*i].1, b])
            .collect();
        let params = Params::Sgd(self.op_params(group.key));
        crate::ops::run(OpId::SgdStepMulti, params, &grads, &outs)?;
        if momentum {
            for ((i, _), b) in group.members.iter().zip(bufs) {
                self.buffers[*i] = Some(b);
            }
        }
        Ok(())
    }

    /// The update as elementwise ops (no momentum, or a device without
    /// `sgd_step`); the same bits as the fused op on the CPU.
    fn composite(&self, p: &Tensor, g: Tensor, buf: Option<&Tensor>) -> Result<Option<Tensor>> {
        let o = &self.opts;
        let mut d = g;
        if o.weight_decay != 0.0 {
            d = d.add(&p.mul_scalar(o.weight_decay)?)?;
        }
        let mut new_buf = None;
        if o.momentum != 0.0 {
            let b = match buf {
                None => d.deep_copy()?,
                Some(b) => b
                    .mul_scalar(o.momentum)?
                    .add(&d.mul_scalar(1.0 - o.dampening)?)?,
            };
            d = if o.nesterov {
                d.add(&b.mul_scalar(o.momentum)?)?
            } else {
                b.clone()
            };
            new_buf = Some(b);
        }
        p.assign(&p.sub(&d.mul_scalar(o.lr)?)?)?;
        Ok(new_buf)
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        crate::autograd::no_grad(|| {
            let momentum = self.opts.momentum != 0.0;
            let mut groups = Vec::new();
            for i in 0..self.params.len() {
                let (name, p) = &self.params[i];
                let Some(g) = grad_of(OP, name, p)? else {
                    continue;
                };
                let buf = self.buffers[i].as_ref();
                if p.is_contiguous() && buf.is_none_or(Tensor::is_contiguous) {
                    let first = momentum && buf.is_none();
                    Group::push(&mut groups, p, first, i, g);
                } else if let Some(b) = self.update(p, g, buf)? {
                    self.buffers[i] = Some(b);
                }
            }
            for group in groups {
                if group.takes(OpId::SgdStepMulti) {
                    self.fused_multi(&group)?;
                    continue;
                }
                for (i, g) in group.members {
                    let b = self.update(&self.params[i].1, g, self.buffers[i].as_ref())?;
                    if b.is_some() {
                        self.buffers[i] = b;
                    }
                }
            }
            Ok(())
        })
    }

    fn lr(&self) -> f64 {
        self.opts.lr
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_nonneg(OP, "lr", lr)?;
        self.opts.lr = lr;
        Ok(())
    }

    fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }
}
