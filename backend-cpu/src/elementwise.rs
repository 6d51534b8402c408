//! Op family `elementwise`: the unary ops (`neg` .. `silu`) and their
//! backward, the binary arithmetic ops, comparisons, `where`, `fill`, `copy`,
//! `cast` and `concat`.
//!
//! How a call runs:
//! 1. Checks (arity, dtypes, shapes, a non-overlapping output) turn the
//!    descriptors into typed [`View`]s.
//! 2. A [`plan::Plan`] coalesces the dims of all operands (output first):
//!    size-1 dims are dropped and adjacent dims that are contiguous relative
//!    to each other in every operand are merged. Contiguous operands end up
//!    as one flat run.
//! 3. The plan walks the runs of the innermost dim, split into chunks over
//!    the thread pool when the op is large ([`crate::threads::PAR_THRESHOLD`]).
//! 4. Each run goes to a flat kernel: directly when every operand is
//!    contiguous or a broadcast scalar (stride 0) along it, else through
//!    small gather/scatter blocks ([`row`]).
//!
//! Flat f32 kernels come from a [`kernels::Table`] that starts portable and
//! is overwritten tier by tier (SSE2, AVX2+FMA, AVX-512F; NEON on aarch64)
//! up to [`crate::isa::tier`]. The SIMD kernels live in
//! `src/simd/elementwise_*.rs`; f64 and i64 use the portable kernels.

mod binary;
mod convert;
mod kernels;
pub(crate) use kernels::{cache_of_level, stream_threshold};
mod math;
mod plan;
mod portable;
mod row;
mod scalar;
mod unary;

#[cfg(test)]
mod tier_tests;

#[path = "simd/elementwise_vec.rs"]
mod simd_vec;

#[cfg(target_arch = "x86_64")]
#[path = "simd/elementwise_sse2.rs"]
mod simd_sse2;

#[cfg(target_arch = "x86_64")]
#[path = "simd/elementwise_avx2.rs"]
mod simd_avx2;

// AVX-512 intrinsics are stable since Rust 1.89, which the `gemm` crate's
// `x86-v4` feature already requires of the workspace.
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
#[path = "simd/elementwise_avx512.rs"]
mod simd_avx512;

#[cfg(target_arch = "aarch64")]
#[path = "simd/elementwise_neon.rs"]
mod simd_neon;

use sunrise_backend_api::abi::{SrOpSupport, SrTensorDesc};
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Result};

use crate::element::Element;
use crate::strided::View;

/// The (op, dtype) pairs this family implements. The dtype is the first
/// input's (`fill`: the output's; `where`: the mask's, u8).
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use DType::*;
    let mut v = Vec::new();
    let mut add = |op: OpId, dtypes: &[DType]| {
        v.extend(dtypes.iter().map(|&d| SrOpSupport {
            op: op as u32,
            dtype: d as u32,
        }))
    };
    for &op in OpId::ALL {
        if op.is_unary() {
            let ints = matches!(op, OpId::Neg | OpId::Abs);
            add(op, if ints { &[F32, F64, I64] } else { &[F32, F64] });
        } else if op.is_binary() {
            let ints = !matches!(op, OpId::Div | OpId::Pow);
            add(op, if ints { &[F32, F64, I64] } else { &[F32, F64] });
        } else if op.is_comparison() {
            add(op, &DType::ALL);
        }
    }
    add(OpId::UnaryBackward, &[F32, F64]);
    add(OpId::Where, &[U8]);
    for op in [OpId::Fill, OpId::Copy, OpId::Cast, OpId::Concat] {
        add(op, &DType::ALL);
    }
    v
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    // SAFETY: forwarded from the caller for every op.
    unsafe {
        match call.op {
            op if op.is_unary() => unary::forward(call),
            OpId::UnaryBackward => unary::backward(call),
            op if op.is_binary() => binary::arithmetic(call),
            op if op.is_comparison() => binary::compare(call),
            OpId::Where => binary::select(call),
            OpId::Fill => convert::fill(call),
            OpId::Copy => convert::copy(call),
            OpId::Cast => convert::cast(call),
            OpId::Concat => convert::concat(call),
            op => Err(BackendError::unsupported(format!(
                "cpu: {op} is not an elementwise op"
            ))),
        }
    }
}

/// The dtype of a descriptor, `Unsupported` when this build does not know it.
pub(crate) fn dtype_of(d: &SrTensorDesc) -> Result<DType> {
    d.dtype()
        .ok_or_else(|| BackendError::unsupported(format!("unknown dtype id {}", d.dtype)))
}

/// Bytes of an f32 output (its elements times 4) and whether it is
/// row-major without gaps: what picks the streaming kernels. Not a
/// validity check (the views check the descriptor).
pub(crate) fn out_extent(d: &SrTensorDesc) -> Result<(usize, bool)> {
    let (shape, steps) = (d.dims_usize(), d.steps());
    let mut expect = 1i64;
    let mut contiguous = true;
    for (&n, &s) in shape.iter().zip(steps).rev() {
        if n != 1 && s != expect {
            contiguous = false;
        }
        expect = expect.saturating_mul(n as i64);
    }
    let numel = shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
    let bytes = numel.and_then(|n| n.checked_mul(4));
    let bytes = bytes.ok_or_else(|| BackendError::invalid("output shape overflows"))?;
    Ok((bytes, contiguous))
}

/// `Unsupported` for an op on a dtype it lacks.
pub(crate) fn no_dtype(op: OpId, dtype: DType) -> BackendError {
    BackendError::unsupported(format!("cpu: {op} does not support {dtype}"))
}

/// Checks an elementwise output: every input has its shape (inputs arrive
/// already broadcast) and no two of its elements share an address.
pub(crate) fn check_elementwise<O: Element>(
    op: OpId,
    out: &View<O>,
    inputs: &[&[usize]],
) -> Result<()> {
    for (i, shape) in inputs.iter().enumerate() {
        if *shape != out.shape.as_slice() {
            return Err(BackendError::invalid(format!(
                "{op}: input {i} has shape {shape:?} but the output has {:?} (inputs must arrive broadcast to the output's shape)",
                out.shape
            )));
        }
    }
    plan::check_no_overlap(&out.shape, &out.strides)
        .map_err(|why| BackendError::invalid(format!("{op}: output {why}")))
}

/// A typed view of a descriptor, with the op's name on a dtype mismatch.
///
/// # Safety
/// As [`View::new`].
pub(crate) unsafe fn view<T: Element>(op: OpId, what: &str, d: &SrTensorDesc) -> Result<View<T>> {
    // SAFETY: per the caller.
    unsafe { View::new(d) }.map_err(|mut e| {
        e.message = format!("{op}: {what}: {}", e.message);
        e
    })
}
