//! Adam with decoupled weight decay.

use sunrise_backend_api::ops::AdamWParams;
use sunrise_backend_api::{OpId, Params};

use super::{check_nonneg, grad_of, Group, Optimizer};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Settings of [`AdamW`] (PyTorch's `torch.optim.AdamW` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWOptions {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates of the first and second moment estimates
    /// (default 0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay (default 0.01).
    pub weight_decay: f64,
}

impl Default for AdamWOptions {
    fn default() -> Self {
        AdamWOptions {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

impl AdamWOptions {
    /// The defaults with learning rate `lr`.
    pub fn new(lr: f64) -> AdamWOptions {
        AdamWOptions {
            lr,
            ..AdamWOptions::default()
        }
    }
}

#[derive(Debug)]
struct State {
    step: i32,
    m: Tensor,
    v: Tensor,
}

/// AdamW: `p -= lr wd p`, then with `m = b1 m + (1 - b1) g`,
/// `v = b2 v + (1 - b2) g^2` and step count `t`,
/// `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
#[derive(Debug)]
pub struct AdamW {
    params: Vec<(String, Tensor)>,
    opts: AdamWOptions,
    state: Vec<Option<State>>,
}

const OP: &str = "AdamW";

impl AdamW {
    /// An optimizer over `params` with `opts`.
    pub fn new(params: Vec<(String, Tensor)>, opts: AdamWOptions) -> Result<AdamW> {
        check_nonneg(OP, "lr", opts.lr)?;
        check_nonneg(OP, "eps", opts.eps)?;
        check_nonneg(OP, "weight decay", opts.weight_decay)?;
        let (b1, b2) = opts.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return Err(Error::invalid(
                OP,
                format!("betas ({b1}, {b2}) must be in [0, 1)"),
            ));
        }
        let state = (0..params.len()).map(|_| None).collect();
        Ok(AdamW {
            params,
            opts,
            state,
        })
    }

    /// The settings.
    pub fn options(&self) -> &AdamWOptions {
        &self.opts
    }

    /// Writes the update into `p` and returns the new state: one fused
    /// `adamw_step` where the device lists it and `p` is contiguous, else
    /// the same arithmetic as a sequence of elementwise ops (the same bits
    /// on the CPU).
    fn update(&self, p: &Tensor, g: &Tensor, st: Option<&State>) -> Result<State> {
        let dev = p.device();
        let fused = p.is_contiguous()
            && (dev.is_builtin_cpu() || dev.supports(OpId::AdamwStep, p.dtype()))
            && st.is_none_or(|s| s.m.is_contiguous() && s.v.is_contiguous());
        if fused {
            self.fused(p, g, st)
        } else {
            self.composite(p, g, st)
        }
    }

    /// One `adamw_step` over `p` and its moments, in place.
    fn fused(&self, p: &Tensor, g: &Tensor, st: Option<&State>) -> Result<State> {
        let (step, m, v) = match st {
            Some(s) => (s.step.saturating_add(1), s.m.clone(), s.v.clone()),
            None => (1, p.zeros_like()?, p.zeros_like()?),
        };
        let params = Params::AdamW(self.op_params(step));
        crate::ops::run(OpId::AdamwStep, params, &[g], &[p, &m, &v])?;
        Ok(State { step, m, v })
    }

    /// The params of step `step`.
    fn op_params(&self, step: i32) -> AdamWParams {
        let o = &self.opts;
        let (b1, b2) = o.betas;
        AdamWParams {
            struct_size: AdamWParams::SIZE,
            lr: o.lr,
            beta1: b1,
            beta2: b2,
            eps: o.eps,
            weight_decay: o.weight_decay,
            bias_correction1: 1.0 - b1.powi(step),
            bias_correction2: 1.0 - b2.powi(step),
        }
    }

    /// One `adamw_step_multi` over the group (one step count), in place.
    fn fused_multi(&mut self, group: &Group<i32>) -> Result<()> {
        let step = group.key;
        let mut states = Vec::with_capacity(group.members.len());
        for (i, _) in &group.members {
            let p = &self.params[*i].1;
            states.push(match &self.state[*i] {
                Some(s) => (s.m.clone(), s.v.clone()),
                None => (p.zeros_like()?, p.zeros_like()?),
            });
        }
        let grads: Vec<&Tensor> = group.members.iter().map(|(_, g)| g).collect();
        let outs: Vec<&Tensor> = group
            .members
            .iter()
            .zip(&states)
            .flat_map(|((i, _), (m, v))| [&self.params[*i].1, m, v])
            .collect();
        let params = Params::AdamW(self.op_params(step));
        crate::ops::run(OpId::AdamwStepMulti, params, &grads, &outs)?;
        for ((i, _), (m, v)) in group.members.iter().zip(states) {
            self.state[*i] = Some(State { step, m, v });
        }
        Ok(())
    }

    /// The update as elementwise ops (devices without `adamw_step`).
    fn composite(&self, p: &Tensor, g: &Tensor, st: Option<&State>) -> Result<State> {
        let o = &self.opts;
        let (b1, b2) = o.betas;
        let (step, m, v) = match st {
            Some(s) => (
                s.step.saturating_add(1),
                s.m.mul_scalar(b1)?.add(&g.mul_scalar(1.0 - b1)?)?,
                s.v.mul_scalar(b2)?.add(&g.mul(g)?.mul_scalar(1.0 - b2)?)?,
            ),
            // Zero moments: the first step's are (1 - b) g and (1 - b) g^2.
            None => (1, g.mul_scalar(1.0 - b1)?, g.mul(g)?.mul_scalar(1.0 - b2)?),
        };
        let bc1 = 1.0 - b1.powi(step);
        let bc2 = 1.0 - b2.powi(step);
        let denom = v.sqrt()?.mul_scalar(1.0 / bc2.sqrt())?.add_scalar(o.eps)?;
        let decayed = p.mul_scalar(1.0 - o.lr * o.weight_decay)?;
        let upd = m.div(&denom)?.mul_scalar(o.lr / bc1)?;
        p.assign(&decayed.sub(&upd)?)?;
        Ok(State { step, m, v })
    }
}

impl Optimizer for AdamW {
    fn step(&mut self) -> Result<()> {
        crate::autograd::no_grad(|| {
            let mut groups = Vec::new();
            for i in 0..self.params.len() {
                let (name, p) = &self.params[i];
                let Some(g) = grad_of(OP, name, p)? else {
                    continue;
                };
                let st = self.state[i].as_ref();
                if p.is_contiguous()
                    && st.is_none_or(|s| s.m.is_contiguous() && s.v.is_contiguous())
                {
                    let step = st.map_or(1, |s| s.step.saturating_add(1));
                    Group::push(&mut groups, p, step, i, g);
                } else {
                    self.state[i] = Some(self.update(p, &g, st)?);
                }
            }
            for group in groups {
                if group.takes(OpId::AdamwStepMulti) {
                    self.fused_multi(&group)?;
                } else {
                    for (i, g) in &group.members {
                        let st = self.update(&self.params[*i].1, g, self.state[*i].as_ref())?;
                        self.state[*i] = Some(st);
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
