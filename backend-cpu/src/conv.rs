//! Op family `conv`: `conv2d` and its two gradients, NCHW with weights
//! `[K, C/groups, R, S]`.
//!
//! The f32 forward pass on the AVX2 and AVX-512 tiers runs as a direct
//! convolution on a channel-blocked copy of the input ([`blocked`], kernels
//! in `simd/conv_blocked.rs`): ~1.3x the im2col path below on ResNet's 3x3
//! layer and 7x7 stem. The filter gradient there is a direct reduction
//! over output pixels on the same blocked input ([`blocked_filter`]) when
//! the images fill the threads and there is no dilation along W; the data
//! gradient of a stride-1 convolution runs as the forward convolution of
//! `dy` with the flipped filter ([`backward`]). Every other data gradient
//! of one group (strided, f64, the lower tiers) but the pointwise ones is
//! one pixel-major GEMM per chunk of images and a gather of the taps that
//! reach each input pixel ([`backward_px`]). Elsewhere (grouped and
//! pointwise stride-1 convolutions, the forward pass and filter gradient
//! off the blocked path) convolutions lower to GEMM per image and group: `im2col` gathers
//! the receptive fields of a chunk of output rows into a `[C/g R S, rows OW]`
//! matrix (bounded to [`COL_BYTES`] per thread), then `y = w col` ([`forward`];
//! where the `gemm` crate serves, pixel-major `t = col^T w^T` transposed
//! into `y` with the bias, which that crate runs faster);
//! backward-data of grouped convolutions is `col = w^T dy` scattered back by `col2im`, and
//! backward-filter accumulates `dw += dy col^T` over the batch
//! ([`backward`]). 1x1 stride-1 unpadded convolutions skip `im2col` and
//! multiply the input planes directly; depthwise convolutions (`groups == C
//! == K`) run direct loops ([`depthwise`]). Work is split over the batch
//! when it has at least as many images as threads, else inside each GEMM.

mod backward;
mod backward_px;
mod blocked;
mod blocked_filter;
mod depthwise;
mod filter_px;
mod forward;
mod geom;
mod im2col;
#[path = "simd/conv_blocked.rs"]
mod kernels;

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::Conv2dParams;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::gemm::GemmScalar;
use crate::strided::{check_arity, View};

/// Largest `im2col` buffer per thread, in bytes, before output rows are
/// processed in chunks: small enough to stay in L2 between `im2col` writing
/// it and the GEMM reading it (1 MiB against 8 MiB: the 7x7 stride-2 stem
/// of ResNet went from 0.60-0.77x to 0.88x ONNX Runtime on one thread, the
/// 3x3 64-channel layer from 0.84x to 0.85x). The buffer is per-thread
/// scratch kept between calls (allocating and faulting in a fresh one per
/// call cost the 2-thread AVX2 forward pass nearly half its speed).
pub(crate) const COL_BYTES: usize = 1 << 20;

/// Adds the partial sums of `parts` (one per chunk of images) into the
/// first, in order, so that the result does not depend on which thread ran
/// which chunk; returns that first part.
fn sum_in_order<T: crate::element::Float>(parts: &mut [Vec<T>]) -> &mut [T] {
    let (first, rest) = parts.split_first_mut().expect("at least one part");
    for p in rest.iter() {
        for (a, &b) in first.iter_mut().zip(p) {
            *a += b;
        }
    }
    first
}

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    let mut v = Vec::new();
    for op in [
        OpId::Conv2d,
        OpId::Conv2dBackwardData,
        OpId::Conv2dBackwardFilter,
    ] {
        for dtype in [DType::F32, DType::F64] {
            v.push(SrOpSupport {
                op: op as u32,
                dtype: dtype as u32,
            });
        }
    }
    v
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let Params::Conv2d(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{}: expected Conv2dParams",
            call.op
        )));
    };
    let name = call.op.name();
    match call.op {
        OpId::Conv2d => {
            if !(2..=3).contains(&call.inputs.len()) || call.outputs.len() != 1 {
                return Err(BackendError::invalid(format!(
                    "conv2d: expected 2 or 3 inputs (x, w, bias) and 1 output, got {} and {}",
                    call.inputs.len(),
                    call.outputs.len()
                )));
            }
        }
        OpId::Conv2dBackwardData | OpId::Conv2dBackwardFilter => {
            check_arity(name, call.inputs.len(), call.outputs.len(), 2, 1)?
        }
        op => {
            return Err(BackendError::unsupported(format!(
                "cpu conv: {op} is not a conv op"
            )))
        }
    }
    // SAFETY: forwarded from the caller for each dtype.
    unsafe {
        match call.inputs[0].dtype() {
            Some(DType::F32) => run::<f32>(call, &p),
            Some(DType::F64) => run::<f64>(call, &p),
            other => Err(BackendError::unsupported(format!(
                "{name}: dtype {} is not supported (f32, f64)",
                other.map_or("unknown", |d| d.name())
            ))),
        }
    }
}

/// True for a dense channels-last rank-4 view: `[N, C, H, W]` with
/// strides `[H W C, 1, W C, C]`, the memory order `[N, H, W, C]`.
fn is_channels_last<T>(v: &View<T>) -> bool {
    let [_, c, h, w] = v.shape[..] else {
        return false;
    };
    v.strides == [h * w * c, 1, w * c, c]
}

/// Views the tensors, checks the geometry and runs the op on dtype `T`.
///
/// # Safety
/// As [`execute`].
unsafe fn run<T: GemmScalar>(call: &OpCall<'_>, p: &Conv2dParams) -> Result<()> {
    // SAFETY: the descriptors name live buffers, per the caller.
    let (in0, in1, out) = unsafe {
        (
            View::<T>::new(&call.inputs[0])?,
            View::<T>::new(&call.inputs[1])?,
            View::<T>::new(&call.outputs[0])?,
        )
    };
    let name = call.op.name();
    let channels_last = call.op == OpId::Conv2d && is_channels_last(&out);
    if !(out.is_contiguous() || channels_last) {
        return Err(BackendError::invalid(format!(
            "{name}: the output must be contiguous row-major{}",
            if call.op == OpId::Conv2d {
                " or channels-last (dense [N, OH, OW, K] memory)"
            } else {
                ""
            }
        )));
    }
    let g = match call.op {
        OpId::Conv2d => geom::Geom::new(name, p, &in0.shape, &in1.shape, &out.shape)?,
        OpId::Conv2dBackwardData => geom::Geom::new(name, p, &out.shape, &in1.shape, &in0.shape)?,
        _ => geom::Geom::new(name, p, &in0.shape, &out.shape, &in1.shape)?,
    };
    let bias = match call.inputs.get(2) {
        // SAFETY: as above.
        Some(d) => Some(unsafe { View::<T>::new(d) }?),
        None => None,
    };
    if let Some(b) = &bias {
        if b.shape != [g.k] {
            return Err(BackendError::invalid(format!(
                "conv2d: bias must have shape [{}], got {:?}",
                g.k, b.shape
            )));
        }
    }
    if out.numel() == 0 {
        return Ok(());
    }
    match call.op {
        OpId::Conv2d => {
            // SAFETY: views checked; the output does not alias the inputs.
            unsafe { forward::forward(&in0, &in1, bias.as_ref(), &out, &g) };
        }
        OpId::Conv2dBackwardData => {
            // SAFETY: as above.
            unsafe { backward::backward_data(&in0, &in1, &out, &g) };
        }
        _ => {
            // SAFETY: as above.
            unsafe { backward::backward_filter(&in0, &in1, &out, &g) };
        }
    }
    Ok(())
}
