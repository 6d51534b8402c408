//! Binary arithmetic (`add` .. `minimum`), comparisons (`eq` .. `ge`) and
//! `where`.

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Result};

use crate::element::Element;
use crate::strided::check_arity;

use super::kernels::{table, BinKernels};
use super::row::{copy_into, launch2, launch3, map2, Src};
use super::{check_elementwise, dtype_of, no_dtype, out_extent, portable, view};

/// `c = f(a, b)` for the binary op `call.op`.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn arithmetic(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 2, 1)?;
    let d = [&call.inputs[0], &call.inputs[1], &call.outputs[0]];
    let dtype = dtype_of(d[0])?;
    let none = || no_dtype(op, dtype);
    // SAFETY: forwarded from the caller; the kernels are table kernels
    // (safe on this CPU, see `table_for`) or portable.
    unsafe {
        match dtype {
            DType::F32 => {
                let (bytes, contiguous) = out_extent(d[2])?;
                run::<f32>(op, d, table().binary_for(op, bytes, contiguous))
            }
            DType::F64 => run::<f64>(op, d, portable::float_binary(op).ok_or_else(none)?),
            DType::I64 => run::<i64>(op, d, portable::int_binary(op).ok_or_else(none)?),
            DType::U8 => Err(none()),
        }
    }
}

/// # Safety
/// As [`arithmetic`]; the kernels are safe to call on this CPU.
unsafe fn run<T: Element>(op: OpId, d: [&SrTensorDesc; 3], k: BinKernels<T>) -> Result<()> {
    // SAFETY: descriptors of live buffers, per the caller.
    let (a, b, c) = unsafe {
        (
            view::<T>(op, "a", d[0])?,
            view::<T>(op, "b", d[1])?,
            view::<T>(op, "c", d[2])?,
        )
    };
    check_elementwise(op, &c, &[&a.shape, &b.shape])?;
    // SAFETY: checked views; the kernels are safe to call here.
    unsafe {
        launch2(&c, &a, &b, |a, b, out| match (a, b) {
            (Src::Slice(a), Src::Slice(b)) => (k.vv)(a, b, out),
            (Src::Slice(a), Src::Splat(b)) => (k.vs)(a, b, out),
            (Src::Splat(a), Src::Slice(b)) => (k.sv)(a, b, out),
            (Src::Splat(a), Src::Splat(b)) => {
                let mut one = [T::default()];
                (k.vv)(&[a], &[b], &mut one);
                out.fill(one[0]);
            }
        })
    };
    Ok(())
}

/// `m = a <op> b` as a u8 mask for the comparison `call.op`.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn compare(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 2, 1)?;
    let d = [&call.inputs[0], &call.inputs[1], &call.outputs[0]];
    // SAFETY: forwarded from the caller.
    unsafe {
        match dtype_of(d[0])? {
            DType::F32 => compare_as::<f32>(op, d),
            DType::F64 => compare_as::<f64>(op, d),
            DType::I64 => compare_as::<i64>(op, d),
            DType::U8 => compare_as::<u8>(op, d),
        }
    }
}

/// # Safety
/// As [`compare`].
unsafe fn compare_as<T: Element>(op: OpId, d: [&SrTensorDesc; 3]) -> Result<()> {
    // SAFETY: descriptors of live buffers, per the caller.
    let (a, b, m) = unsafe {
        (
            view::<T>(op, "a", d[0])?,
            view::<T>(op, "b", d[1])?,
            view::<u8>(op, "mask", d[2])?,
        )
    };
    check_elementwise(op, &m, &[&a.shape, &b.shape])?;
    macro_rules! cmp {
        ($f:expr) => {
            // SAFETY: checked views.
            unsafe {
                launch2(&m, &a, &b, |a, b, out| {
                    map2(a, b, out, |x: T, y: T| $f(x, y) as u8)
                })
            }
        };
    }
    match op {
        OpId::Eq => cmp!(|x, y| x == y),
        OpId::Ne => cmp!(|x, y| x != y),
        OpId::Lt => cmp!(|x, y| x < y),
        OpId::Le => cmp!(|x, y| x <= y),
        OpId::Gt => cmp!(|x, y| x > y),
        OpId::Ge => cmp!(|x, y| x >= y),
        _ => return Err(no_dtype(op, T::DTYPE)),
    }
    Ok(())
}

/// `c = mask ? a : b` (any nonzero mask byte selects `a`).
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn select(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 3, 1)?;
    let d = [
        &call.inputs[0],
        &call.inputs[1],
        &call.inputs[2],
        &call.outputs[0],
    ];
    let mask = dtype_of(d[0])?;
    if mask != DType::U8 {
        return Err(BackendError::invalid(format!(
            "{op}: the mask must be u8, not {mask}"
        )));
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match dtype_of(d[1])? {
            DType::F32 => select_as::<f32>(op, d),
            DType::F64 => select_as::<f64>(op, d),
            DType::I64 => select_as::<i64>(op, d),
            DType::U8 => select_as::<u8>(op, d),
        }
    }
}

/// # Safety
/// As [`select`].
unsafe fn select_as<T: Element>(op: OpId, d: [&SrTensorDesc; 4]) -> Result<()> {
    // SAFETY: descriptors of live buffers, per the caller.
    let (m, a, b, c) = unsafe {
        (
            view::<u8>(op, "mask", d[0])?,
            view::<T>(op, "a", d[1])?,
            view::<T>(op, "b", d[2])?,
            view::<T>(op, "c", d[3])?,
        )
    };
    check_elementwise(op, &c, &[&m.shape, &a.shape, &b.shape])?;
    // SAFETY: checked views.
    unsafe {
        launch3(&c, &m, &a, &b, |m, a, b, out| match m {
            Src::Splat(m) => {
                copy_into(if m != 0 { a } else { b }, out);
            }
            Src::Slice(m) => {
                for (i, (o, &k)) in out.iter_mut().zip(m).enumerate() {
                    *o = if k != 0 { a.at(i) } else { b.at(i) };
                }
            }
        })
    };
    Ok(())
}
