//! Data movement: `fill`, `copy`, `cast` and `concat`, on every dtype.

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Element;
use crate::strided::{check_arity, View};

use super::row::{copy_into, launch0, launch1, map2, Src};
use super::{check_elementwise, dtype_of, view};

/// Calls `$f::<T>($args)` with `T` the Rust type of dtype `$d`.
macro_rules! with_type {
    ($d:expr, $f:ident($($args:expr),*)) => {
        match $d {
            DType::F32 => $f::<f32>($($args),*),
            DType::F64 => $f::<f64>($($args),*),
            DType::I64 => $f::<i64>($($args),*),
            DType::U8 => $f::<u8>($($args),*),
        }
    };
}

/// Every output element becomes `params.value`, converted to the output
/// dtype as Rust's `as` does (floats to integers truncate toward zero and
/// saturate, NaN becomes 0).
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn fill(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 0, 1)?;
    let Params::Fill(p) = call.params else {
        return Err(BackendError::invalid(format!("{op}: needs FillParams")));
    };
    let out = &call.outputs[0];
    // SAFETY: forwarded from the caller.
    unsafe { with_type!(dtype_of(out)?, fill_as(out, p.value)) }
}

/// # Safety
/// As [`fill`].
unsafe fn fill_as<T: Element>(out: &SrTensorDesc, value: f64) -> Result<()> {
    // SAFETY: a descriptor of a live buffer, per the caller.
    let v = unsafe { view::<T>(OpId::Fill, "out", out)? };
    check_elementwise(OpId::Fill, &v, &[])?;
    // SAFETY: a checked view that does not overlap itself.
    unsafe { launch0(&v, T::from_f64(value)) };
    Ok(())
}

/// `out[i] = x[i]`, same dtype, any layouts.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn copy(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 1, 1)?;
    let (x, y) = (&call.inputs[0], &call.outputs[0]);
    // SAFETY: forwarded from the caller.
    unsafe { with_type!(dtype_of(x)?, copy_as(x, y)) }
}

/// # Safety
/// As [`copy`].
unsafe fn copy_as<T: Element>(x: &SrTensorDesc, y: &SrTensorDesc) -> Result<()> {
    // SAFETY: descriptors of live buffers, per the caller.
    let (xv, yv) = unsafe {
        (
            view::<T>(OpId::Copy, "x", x)?,
            view::<T>(OpId::Copy, "y", y)?,
        )
    };
    check_elementwise(OpId::Copy, &yv, &[&xv.shape])?;
    // SAFETY: checked views.
    unsafe { launch1(&yv, &xv, copy_into) };
    Ok(())
}

/// A value conversion of `cast`.
trait CastTo<D> {
    fn cast(self) -> D;
}

macro_rules! casts {
    ($($s:ty => $($d:ty),*;)*) => {$($(
        impl CastTo<$d> for $s {
            #[inline(always)]
            fn cast(self) -> $d {
                self as $d
            }
        }
    )*)*};
}

// Numeric conversions are Rust's `as`: floats to i64 truncate toward zero
// and saturate (NaN becomes 0); i64 to floats rounds to nearest.
casts! {
    f32 => f32, f64, i64;
    f64 => f32, f64, i64;
    i64 => f32, f64, i64;
    u8 => f32, f64, i64;
}

macro_rules! to_mask {
    ($($s:ty),*) => {$(
        impl CastTo<u8> for $s {
            /// Nonzero (NaN included) becomes 1.
            #[inline(always)]
            fn cast(self) -> u8 {
                (self != (0 as $s)) as u8
            }
        }
    )*};
}
to_mask!(f32, f64, i64, u8);

/// Converting copy: floats to integers truncate toward zero (saturating,
/// NaN to 0); anything to u8 maps nonzero (NaN included) to 1.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn cast(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 1, 1)?;
    let (x, y) = (&call.inputs[0], &call.outputs[0]);
    let (from, to) = (dtype_of(x)?, dtype_of(y)?);
    macro_rules! to {
        ($s:ty) => {
            match to {
                DType::F32 => cast_as::<$s, f32>(x, y),
                DType::F64 => cast_as::<$s, f64>(x, y),
                DType::I64 => cast_as::<$s, i64>(x, y),
                DType::U8 => cast_as::<$s, u8>(x, y),
            }
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match from {
            DType::F32 => to!(f32),
            DType::F64 => to!(f64),
            DType::I64 => to!(i64),
            DType::U8 => to!(u8),
        }
    }
}

/// # Safety
/// As [`cast`].
unsafe fn cast_as<S, D>(x: &SrTensorDesc, y: &SrTensorDesc) -> Result<()>
where
    S: Element + CastTo<D>,
    D: Element,
{
    // SAFETY: descriptors of live buffers, per the caller.
    let (xv, yv) = unsafe {
        (
            view::<S>(OpId::Cast, "x", x)?,
            view::<D>(OpId::Cast, "y", y)?,
        )
    };
    check_elementwise(OpId::Cast, &yv, &[&xv.shape])?;
    // SAFETY: checked views.
    unsafe {
        launch1(&yv, &xv, |x, out| {
            map2(x, Src::Splat(()), out, |v: S, ()| v.cast())
        })
    };
    Ok(())
}

/// Joins the inputs along `params.axis`: every input has the output's rank
/// and shape except along the axis, where the extents add up to the
/// output's.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn concat(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    if call.inputs.is_empty() || call.outputs.len() != 1 {
        return Err(BackendError::invalid(format!(
            "{op}: expected at least 1 input and 1 output, got {} and {}",
            call.inputs.len(),
            call.outputs.len()
        )));
    }
    let Params::Axis(p) = call.params else {
        return Err(BackendError::invalid(format!("{op}: needs AxisParams")));
    };
    let out = &call.outputs[0];
    // SAFETY: forwarded from the caller.
    unsafe { with_type!(dtype_of(out)?, concat_as(call.inputs, out, p.axis as usize)) }
}

/// # Safety
/// As [`concat`].
unsafe fn concat_as<T: Element>(
    inputs: &[SrTensorDesc],
    out: &SrTensorDesc,
    axis: usize,
) -> Result<()> {
    let op = OpId::Concat;
    // SAFETY: descriptors of live buffers, per the caller.
    let ov = unsafe { view::<T>(op, "output", out)? };
    if axis >= ov.rank() {
        return Err(BackendError::invalid(format!(
            "{op}: axis {axis} is out of range for rank {}",
            ov.rank()
        )));
    }
    let mut views = Vec::with_capacity(inputs.len());
    let mut total = 0usize;
    for (i, d) in inputs.iter().enumerate() {
        // SAFETY: as above.
        let v: View<T> = unsafe { view(op, &format!("input {i}"), d)? };
        let fits =
            v.rank() == ov.rank() && (0..v.rank()).all(|k| k == axis || v.shape[k] == ov.shape[k]);
        if !fits {
            return Err(BackendError::invalid(format!(
                "{op}: input {i} has shape {:?}, which does not fit output {:?} along axis {axis}",
                v.shape, ov.shape
            )));
        }
        total += v.shape[axis];
        views.push(v);
    }
    if total != ov.shape[axis] {
        return Err(BackendError::invalid(format!(
            "{op}: the inputs' extents along axis {axis} add up to {total}, the output's is {}",
            ov.shape[axis]
        )));
    }
    check_elementwise(op, &ov, &[])?;
    let mut start = 0;
    for v in &views {
        let n = v.shape[axis];
        if v.numel() > 0 {
            // The part of the output this input fills: its shape, at
            // `start` along the axis.
            let mut part = ov.clone();
            // SAFETY: start < the output's extent along the axis (this
            // input has n > 0 elements there), so the address is in the view.
            part.ptr = unsafe { ov.ptr.add(start * ov.strides[axis]) };
            part.shape.clone_from(&v.shape);
            // SAFETY: `part` lies inside the checked output view and does not
            // overlap itself; the input is a checked view.
            unsafe { launch1(&part, v, copy_into) };
        }
        start += n;
    }
    Ok(())
}
