//! Elementwise ops: unary and their backward, broadcasting binary ops,
//! comparisons, `where`, copy, cast and concat.

use sunrise_backend_api::ops::{AxisParams, UnaryBackwardParams};
use sunrise_backend_api::{DType, OpId, Params};

use super::run;
use crate::autograd::{self, grad_fns};
use crate::error::{Error, Result};
use crate::shape::{broadcast_shapes, check_rank};
use crate::tensor::Tensor;

/// The unary ops of op set v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `e^x`
    Exp,
    /// `ln x`
    Log,
    /// `sqrt x`
    Sqrt,
    /// `1/sqrt x`
    Rsqrt,
    /// `max(x, 0)`
    Relu,
    /// GELU, exact (erf) form.
    GeluErf,
    /// GELU, tanh approximation.
    GeluTanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// `tanh x`
    Tanh,
    /// `x sigmoid(x)`
    Silu,
}

impl UnaryOp {
    /// Every unary op.
    pub const ALL: [UnaryOp; 12] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Relu,
        UnaryOp::GeluErf,
        UnaryOp::GeluTanh,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Silu,
    ];

    /// The ABI op.
    pub const fn op_id(self) -> OpId {
        match self {
            UnaryOp::Neg => OpId::Neg,
            UnaryOp::Abs => OpId::Abs,
            UnaryOp::Exp => OpId::Exp,
            UnaryOp::Log => OpId::Log,
            UnaryOp::Sqrt => OpId::Sqrt,
            UnaryOp::Rsqrt => OpId::Rsqrt,
            UnaryOp::Relu => OpId::Relu,
            UnaryOp::GeluErf => OpId::GeluErf,
            UnaryOp::GeluTanh => OpId::GeluTanh,
            UnaryOp::Sigmoid => OpId::Sigmoid,
            UnaryOp::Tanh => OpId::Tanh,
            UnaryOp::Silu => OpId::Silu,
        }
    }
}

/// The ABI op of a binary arithmetic op (private helper for the methods).
fn binary(op: OpId, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dtype() != b.dtype() {
        return Err(Error::DType {
            op: op.name(),
            expected: a.dtype().name().into(),
            got: b.dtype(),
        });
    }
    let shape = broadcast_shapes(op.name(), a.shape(), b.shape())?;
    let out_dtype = if op.is_comparison() {
        DType::U8
    } else {
        a.dtype()
    };
    let (ab, bb) = (
        a.broadcast_untracked(&shape)?,
        b.broadcast_untracked(&shape)?,
    );
    // The output is channels-last when every operand of its full shape is.
    let full: Vec<&Tensor> = [a, b].into_iter().filter(|t| t.shape() == shape).collect();
    let cl = !full.is_empty() && full.iter().all(|t| t.is_channels_last());
    let out = Tensor::alloc_format(&shape, out_dtype, a.device(), cl)?;
    run(op, Params::None, &[&ab, &bb], &[&out])?;
    if op.is_comparison() {
        return Ok(out);
    }
    Ok(grad_fns::binary(op, a, b, out))
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self, other: &Tensor) -> Result<Tensor> {
                    binary(OpId::$op, self, other)
                }
            )*
        }
    };
}

binary_methods! {
    /// `self + other`, broadcasting.
    add => Add;
    /// `self - other`, broadcasting.
    sub => Sub;
    /// `self * other`, broadcasting.
    mul => Mul;
    /// `self / other`, broadcasting.
    div => Div;
    /// `self ^ other`, broadcasting.
    pow => Pow;
    /// Elementwise maximum, broadcasting.
    maximum => Maximum;
    /// Elementwise minimum, broadcasting.
    minimum => Minimum;
    /// `self == other` as a u8 mask.
    eq => Eq;
    /// `self != other` as a u8 mask.
    ne => Ne;
    /// `self < other` as a u8 mask.
    lt => Lt;
    /// `self <= other` as a u8 mask.
    le => Le;
    /// `self > other` as a u8 mask.
    gt => Gt;
    /// `self >= other` as a u8 mask.
    ge => Ge;
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Result<Tensor> {
                    self.unary(UnaryOp::$op)
                }
            )*
        }
    };
}

unary_methods! {
    /// `-x`
    neg => Neg;
    /// `|x|`
    abs => Abs;
    /// `e^x`
    exp => Exp;
    /// `ln x`
    log => Log;
    /// `sqrt x`
    sqrt => Sqrt;
    /// `1 / sqrt x`
    rsqrt => Rsqrt;
    /// `max(x, 0)`
    relu => Relu;
    /// GELU (erf form).
    gelu => GeluErf;
    /// GELU (tanh approximation).
    gelu_tanh => GeluTanh;
    /// Logistic sigmoid.
    sigmoid => Sigmoid;
    /// `tanh x`
    tanh => Tanh;
    /// SiLU (swish).
    silu => Silu;
}

impl Tensor {
    /// Applies a unary op.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        self.expect_float(op.op_id().name())?;
        let cl = self.is_channels_last();
        let out = Tensor::alloc_format(self.shape(), self.dtype(), self.device(), cl)?;
        run(op.op_id(), Params::None, &[self], &[&out])?;
        Ok(grad_fns::unary(self, op, out))
    }

    /// `dy * f'(x)` for the unary op `op`, where `x` (self) was its input.
    pub fn unary_backward(&self, op: UnaryOp, dy: &Tensor) -> Result<Tensor> {
        self.expect_float("unary_backward")?;
        dy.expect_dtype("unary_backward", self.dtype())?;
        if dy.shape() != self.shape() {
            return Err(Error::shape(
                "unary_backward",
                format!("x is {:?} but dy is {:?}", self.shape(), dy.shape()),
            ));
        }
        let out = Tensor::alloc(self.shape(), self.dtype(), self.device())?;
        let p = Params::UnaryBackward(UnaryBackwardParams {
            struct_size: UnaryBackwardParams::SIZE,
            op: op.op_id() as u32,
            reserved: 0,
        });
        run(OpId::UnaryBackward, p, &[self, dy], &[&out])?;
        Ok(out)
    }

    /// A scalar of this tensor's dtype on its device.
    pub fn scalar_like(&self, value: f64) -> Result<Tensor> {
        Tensor::full(&[], value, self.dtype(), self.device())
    }

    /// `self + value`.
    pub fn add_scalar(&self, value: f64) -> Result<Tensor> {
        self.add(&self.scalar_like(value)?)
    }

    /// `self * value`.
    pub fn mul_scalar(&self, value: f64) -> Result<Tensor> {
        self.mul(&self.scalar_like(value)?)
    }

    /// `self ^ value`.
    pub fn pow_scalar(&self, value: f64) -> Result<Tensor> {
        self.pow(&self.scalar_like(value)?)
    }

    /// `mask ? a : b`, broadcasting all three; `mask` is u8. Differentiable
    /// in `a` and `b` (the mask routes the gradient).
    pub fn where_(mask: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        mask.expect_dtype("where", DType::U8)?;
        b.expect_dtype("where", a.dtype())?;
        let s = broadcast_shapes("where", a.shape(), b.shape())?;
        let s = broadcast_shapes("where", mask.shape(), &s)?;
        let (mb, ab, bb) = (
            mask.broadcast_untracked(&s)?,
            a.broadcast_untracked(&s)?,
            b.broadcast_untracked(&s)?,
        );
        let out = Tensor::alloc(&s, a.dtype(), a.device())?;
        run(OpId::Where, Params::None, &[&mb, &ab, &bb], &[&out])?;
        Ok(grad_fns::where_(mask, a, b, out))
    }

    /// A contiguous copy (this tensor itself when already contiguous and
    /// starting at its storage's first element).
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        self.deep_copy()
    }

    /// The same `[N, C, H, W]` values stored channels-last (`[N, H, W, C]`
    /// in memory): the memory format convolutions run fastest in on the CPU
    /// backend. The shape, indexing and every op stay those of NCHW;
    /// `conv2d` of a channels-last input writes a channels-last output where
    /// the device can, and elementwise ops keep the format of their inputs,
    /// so a network converts once at its input and once (with
    /// [`Tensor::contiguous`]) at its output. Differentiable.
    pub fn to_channels_last(&self) -> Result<Tensor> {
        if self.rank() != 4 {
            return Err(Error::shape(
                "to_channels_last",
                format!("needs a rank-4 [N, C, H, W] tensor, got {:?}", self.shape()),
            ));
        }
        if self.is_channels_last() {
            return Ok(self.clone());
        }
        let out = Tensor::alloc_format(self.shape(), self.dtype(), self.device(), true)?;
        run(OpId::Copy, Params::None, &[self], &[&out])?;
        Ok(grad_fns::identity(self, "to_channels_last", out))
    }

    /// [`Tensor::contiguous`] without recording autograd history.
    pub(crate) fn contiguous_untracked(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = Tensor::alloc(self.shape(), self.dtype(), self.device())?;
        run(OpId::Copy, Params::None, &[self], &[&out])?;
        Ok(out)
    }

    /// A contiguous copy, always a new storage.
    pub fn deep_copy(&self) -> Result<Tensor> {
        let out = Tensor::alloc(self.shape(), self.dtype(), self.device())?;
        run(OpId::Copy, Params::None, &[self], &[&out])?;
        Ok(grad_fns::identity(self, "copy", out))
    }

    /// Writes `src` (broadcast to this view's shape) into this view, in
    /// place: slice assignment. Every tensor sharing the storage sees it.
    ///
    /// Not differentiable. While grad is enabled it refuses a `src` that
    /// requires grad and a target made by a recorded op (either would
    /// silently lose gradient); writing into a leaf is allowed (optimizers
    /// and checkpoint loading do it, best inside [`crate::no_grad`]).
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        src.expect_dtype("assign", self.dtype())?;
        autograd::check_in_place("assign", self, src)?;
        let src = src.broadcast_untracked(self.shape())?;
        if self
            .layout()
            .strides
            .iter()
            .zip(self.shape())
            .any(|(&s, &n)| s == 0 && n > 1)
        {
            return Err(Error::invalid(
                "assign",
                "cannot write into a broadcast view",
            ));
        }
        run(OpId::Copy, Params::None, &[&src], &[self])
    }

    /// Converts to `dtype` (float to int truncates; to u8 maps nonzero to 1).
    /// Differentiable between float dtypes.
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let out = Tensor::alloc(self.shape(), dtype, self.device())?;
        run(OpId::Cast, Params::None, &[self], &[&out])?;
        Ok(grad_fns::cast(self, out))
    }

    /// Joins tensors of equal shape but along `axis`.
    pub fn concat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("concat", "no tensors given"))?;
        let ax = first.axis("concat", axis)?;
        let mut shape = first.shape().to_vec();
        shape[ax] = 0;
        for t in tensors {
            t.expect_dtype("concat", first.dtype())?;
            let ok = t.rank() == first.rank()
                && (0..t.rank()).all(|k| k == ax || t.shape()[k] == first.shape()[k]);
            if !ok {
                return Err(Error::shape(
                    "concat",
                    format!(
                        "{:?} does not match {:?} off axis {ax}",
                        t.shape(),
                        first.shape()
                    ),
                ));
            }
            shape[ax] += t.shape()[ax];
        }
        check_rank("concat", shape.len())?;
        let out = Tensor::alloc(&shape, first.dtype(), first.device())?;
        let p = Params::Axis(AxisParams {
            struct_size: AxisParams::SIZE,
            axis: ax as u32,
            reserved: 0,
        });
        run(OpId::Concat, p, tensors, &[&out])?;
        Ok(grad_fns::concat(tensors, ax, out))
    }
}
