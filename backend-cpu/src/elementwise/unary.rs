//! Unary ops (`neg` .. `silu`) and `unary_backward`.

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Element;
use crate::strided::check_arity;

use super::kernels::{table, Bin, Un};
use super::row::{launch1, launch2, map2, Src};
use super::{check_elementwise, dtype_of, no_dtype, out_extent, portable, view};

/// `y = f(x)` for the unary op `call.op`.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn forward(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 1, 1)?;
    let (x, y) = (&call.inputs[0], &call.outputs[0]);
    let dtype = dtype_of(x)?;
    // SAFETY: forwarded from the caller; every kernel is a table kernel
    // (safe on this CPU, see `table_for`) or portable.
    unsafe {
        match dtype {
            DType::F32 => {
                let (bytes, contiguous) = out_extent(y)?;
                run::<f32>(op, x, y, table().unary_for(op, bytes, contiguous))
            }
            DType::F64 => run::<f64>(
                op,
                x,
                y,
                portable::float_unary(op).ok_or_else(|| no_dtype(op, dtype))?,
            ),
            DType::I64 => run::<i64>(
                op,
                x,
                y,
                portable::int_unary(op).ok_or_else(|| no_dtype(op, dtype))?,
            ),
            DType::U8 => Err(no_dtype(op, dtype)),
        }
    }
}

/// # Safety
/// As [`forward`]; `k` is safe to call on this CPU.
unsafe fn run<T: Element>(op: OpId, x: &SrTensorDesc, y: &SrTensorDesc, k: Un<T>) -> Result<()> {
    // SAFETY: descriptors of live buffers, per the caller.
    let (xv, yv) = unsafe { (view::<T>(op, "x", x)?, view::<T>(op, "y", y)?) };
    check_elementwise(op, &yv, &[&xv.shape])?;
    // SAFETY: checked views; `k` is safe to call here, per the caller.
    unsafe {
        launch1(&yv, &xv, |x, out| match x {
            Src::Slice(x) => k(x, out),
            Src::Splat(v) => {
                let mut one = [T::default()];
                k(&[v], &mut one);
                out.fill(one[0]);
            }
        })
    };
    Ok(())
}

/// `dx = dy * f'(x)` for the unary op named in the params.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn backward(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 2, 1)?;
    let Params::UnaryBackward(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{op}: needs UnaryBackwardParams"
        )));
    };
    let fwd = OpId::from_u32(p.op)
        .filter(|f| f.is_unary())
        .ok_or_else(|| BackendError::invalid(format!("{op}: op id {} is not a unary op", p.op)))?;
    let (x, dy, dx) = (&call.inputs[0], &call.inputs[1], &call.outputs[0]);
    let dtype = dtype_of(x)?;
    let none = || BackendError::unsupported(format!("cpu: {op} of {fwd} does not support {dtype}"));
    // SAFETY: forwarded from the caller; kernels are safe on this CPU.
    unsafe {
        match dtype {
            DType::F32 => {
                let k = match fwd {
                    OpId::Relu => table().relu_backward,
                    _ => portable::float_backward::<f32>(fwd).ok_or_else(none)?,
                };
                run_backward::<f32>(
                    op,
                    [x, dy, dx],
                    k,
                    portable::float_backward(fwd).ok_or_else(none)?,
                )
            }
            DType::F64 => {
                let k = portable::float_backward::<f64>(fwd).ok_or_else(none)?;
                run_backward::<f64>(op, [x, dy, dx], k, k)
            }
            _ => Err(none()),
        }
    }
}

/// Runs a backward kernel: `k` on contiguous `(x, dy)`, `scalar` (the
/// portable kernel, applied one element at a time) when either is a
/// broadcast scalar.
///
/// # Safety
/// As [`backward`]; `k` and `scalar` are safe to call on this CPU.
unsafe fn run_backward<T: Element>(
    op: OpId,
    d: [&SrTensorDesc; 3],
    k: Bin<T>,
    scalar: Bin<T>,
) -> Result<()> {
    // SAFETY: descriptors of live buffers, per the caller.
    let (x, dy, dx) = unsafe {
        (
            view::<T>(op, "x", d[0])?,
            view::<T>(op, "dy", d[1])?,
            view::<T>(op, "dx", d[2])?,
        )
    };
    check_elementwise(op, &dx, &[&x.shape, &dy.shape])?;
    let one = |a: T, b: T| {
        let mut o = [T::default()];
        // SAFETY: `scalar` is safe to call here, per the caller.
        unsafe { scalar(&[a], &[b], &mut o) };
        o[0]
    };
    // SAFETY: checked views; `k` is safe to call here, per the caller.
    unsafe {
        launch2(&dx, &x, &dy, |x, dy, out| match (x, dy) {
            (Src::Slice(x), Src::Slice(dy)) => k(x, dy, out),
            (x, dy) => map2(x, dy, out, one),
        })
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unary_op_has_a_portable_float_kernel_and_gradient() {
        for &op in OpId::ALL.iter().filter(|o| o.is_unary()) {
            assert!(portable::float_unary::<f32>(op).is_some(), "{op}");
            assert!(portable::float_backward::<f64>(op).is_some(), "{op}");
        }
    }
}
