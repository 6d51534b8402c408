//! Gradient clipping.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

use super::check_nonneg;

/// Scales every gradient in place so that their global L2 norm is at most
/// `max_norm` (`torch.nn.utils.clip_grad_norm_`: the factor is
/// `max_norm / (norm + 1e-6)` when below 1). Returns the norm before
/// clipping. Parameters without a gradient are skipped; a non-finite norm
/// is an error and leaves the gradients unchanged.
pub fn clip_grad_norm(params: &[(String, Tensor)], max_norm: f64) -> Result<f64> {
    check_nonneg("clip_grad_norm", "max_norm", max_norm)?;
    crate::autograd::no_grad(|| {
        let grads: Vec<Tensor> = params.iter().filter_map(|(_, p)| p.grad()).collect();
        let mut sq = 0.0;
        for g in &grads {
            sq += g.mul(g)?.sum_all()?.item()?;
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Err(Error::invalid(
                "clip_grad_norm",
                format!("the gradients' norm is {norm}"),
            ));
        }
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in &grads {
                g.assign(&g.mul_scalar(coef)?)?;
            }
        }
        Ok(norm)
    })
}

/// Clamps every gradient element to `[-clip, clip]` in place
/// (`torch.nn.utils.clip_grad_value_`).
pub fn clip_grad_value(params: &[(String, Tensor)], clip: f64) -> Result<()> {
    check_nonneg("clip_grad_value", "clip", clip)?;
    crate::autograd::no_grad(|| {
        for (_, p) in params {
            if let Some(g) = p.grad() {
                let hi = g.scalar_like(clip)?;
                let lo = g.scalar_like(-clip)?;
                g.assign(&g.minimum(&hi)?.maximum(&lo)?)?;
            }
        }
        Ok(())
    })
}
