//! Reductions over any set of axes.

use sunrise_backend_api::ops::ReduceParams;
use sunrise_backend_api::{DType, OpId, Params};

use super::run;
use crate::autograd::grad_fns;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl Tensor {
    fn reduce(&self, op: OpId, axes: &[isize], keepdim: bool, out_dtype: DType) -> Result<Tensor> {
        let mut mask = 0u64;
        for &a in axes {
            let k = self.axis(op.name(), a)?;
            if mask & (1 << k) != 0 {
                return Err(Error::invalid(op.name(), format!("axis {a} given twice")));
            }
            mask |= 1 << k;
        }
        if matches!(op, OpId::Max | OpId::Min | OpId::Argmax)
            && (0..self.rank()).any(|k| mask & (1 << k) != 0 && self.shape()[k] == 0)
        {
            return Err(Error::invalid(
                op.name(),
                "reduction over an empty dimension",
            ));
        }
        let kept: Vec<usize> = (0..self.rank())
            .map(|k| {
                if mask & (1 << k) != 0 {
                    1
                } else {
                    self.shape()[k]
                }
            })
            .collect();
        let out = Tensor::alloc(&kept, out_dtype, self.device())?;
        let p = Params::Reduce(ReduceParams {
            struct_size: ReduceParams::SIZE,
            axes_mask: mask,
        });
        run(op, p, &[self], &[&out])?;
        let result = if keepdim {
            out.clone()
        } else {
            let squeezed: Vec<usize> = (0..self.rank())
                .filter(|k| mask & (1 << k) == 0)
                .map(|k| self.shape()[k])
                .collect();
            out.reshape_untracked(&squeezed)?
        };
        Ok(grad_fns::reduce(op, self, mask, out, result))
    }

    /// Sum over `axes` (an empty list reduces nothing).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(OpId::Sum, axes, keepdim, self.dtype())
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_float("mean")?;
        self.reduce(OpId::Mean, axes, keepdim, self.dtype())
    }

    /// Maximum over `axes`.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(OpId::Max, axes, keepdim, self.dtype())
    }

    /// Minimum over `axes`.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(OpId::Min, axes, keepdim, self.dtype())
    }

    /// Index (i64) of the first maximum along `axis`.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce(OpId::Argmax, &[axis], keepdim, DType::I64)
    }

    fn all_axes(&self) -> Vec<isize> {
        (0..self.rank() as isize).collect()
    }

    /// Sum of every element, as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&self.all_axes(), false)
    }

    /// Mean of every element, as a rank-0 tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&self.all_axes(), false)
    }

    /// Sums `self` (shaped like a broadcast result) down to `shape`: the
    /// gradient of a broadcast.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.len()).ok_or_else(|| {
            Error::shape("sum_to_shape", format!("{:?} to {shape:?}", self.shape()))
        })?;
        let mut axes = Vec::new();
        for k in 0..self.rank() {
            if k < lead || (shape[k - lead] == 1 && self.shape()[k] != 1) {
                axes.push(k as isize);
            } else if shape[k - lead] != self.shape()[k] {
                return Err(Error::shape(
                    "sum_to_shape",
                    format!("{:?} to {shape:?}", self.shape()),
                ));
            }
        }
        self.sum(&axes, true)?.reshape(shape)
    }
}
