//! Batched matmul with NumPy-style batch broadcasting; transposes are views.

use sunrise_backend_api::ops::MatmulParams;
use sunrise_backend_api::{OpId, Params};

use super::run;
use crate::autograd::grad_fns;
use crate::error::{Error, Result};
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

impl Tensor {
    /// Matrix product `self @ other` (NumPy `matmul` rules: 1-D operands are
    /// promoted and the added dim removed; batch dims broadcast).
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        if self.rank() == 0 || other.rank() == 0 {
            return Err(Error::invalid("matmul", "operands must have rank >= 1"));
        }
        self.expect_float("matmul")?;
        other.expect_dtype("matmul", self.dtype())?;
        let a = if self.rank() == 1 {
            self.unsqueeze_untracked(0)?
        } else {
            self.clone()
        };
        let b = if other.rank() == 1 {
            other.unsqueeze_untracked(1)?
        } else {
            other.clone()
        };
        let (m, k) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
        let (k2, n) = (b.shape()[b.rank() - 2], b.shape()[b.rank() - 1]);
        if k != k2 {
            return Err(Error::shape(
                "matmul",
                format!(
                    "{:?} @ {:?}: inner dimensions {k} and {k2} differ",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        let batch = broadcast_shapes(
            "matmul",
            &a.shape()[..a.rank() - 2],
            &b.shape()[..b.rank() - 2],
        )?;
        let with = |tail: [usize; 2]| -> Vec<usize> { batch.iter().copied().chain(tail).collect() };
        let a = a.broadcast_untracked(&with([m, k]))?;
        let b = b.broadcast_untracked(&with([k, n]))?;
        crate::shape::check_rank("matmul", batch.len() + 2)?;
        let out = Tensor::alloc(&with([m, n]), self.dtype(), self.device())?;
        let p = Params::Matmul(MatmulParams {
            struct_size: MatmulParams::SIZE,
            alpha: 1.0,
            beta: 0.0,
        });
        run(OpId::Matmul, p, &[&a, &b], &[&out])?;
        let mut shape = out.shape().to_vec();
        if other.rank() == 1 {
            shape.pop();
        }
        if self.rank() == 1 {
            shape.remove(shape.len() - if other.rank() == 1 { 1 } else { 2 });
        }
        Ok(grad_fns::matmul(
            self,
            other,
            out.reshape_untracked(&shape)?,
        ))
    }
}
