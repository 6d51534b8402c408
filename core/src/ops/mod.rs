//! The op front end: each public op checks shapes, dtypes and devices,
//! allocates its outputs and runs through [`run`], which falls back to the
//! CPU (counted per backend, op, dtype and reason, see
//! [`crate::registry::fallback_report`]) when the device's backend lacks the
//! op.

mod conv;
mod creation;
mod elementwise;
mod matmul;
mod nn;
mod reduce;

pub use conv::{Conv2dOptions, Pool2dOptions};
pub use elementwise::UnaryOp;
pub use nn::{BatchNormOutput, LayerNormOutput};

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{DType, OpCall, OpId, Params, StatusCode};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::registry::FallbackReason;
use crate::tensor::Tensor;

/// Checks every tensor is on one device and returns it.
pub(crate) fn same_device<'a>(op: &'static str, ts: &[&'a Tensor]) -> Result<&'a Device> {
    let first = ts
        .first()
        .ok_or_else(|| Error::invalid(op, "no tensors given"))?
        .device();
    for t in &ts[1..] {
        if t.device() != first {
            return Err(Error::DeviceMismatch {
                op,
                a: first.to_string(),
                b: t.device().to_string(),
            });
        }
    }
    Ok(first)
}

/// Runs `op` on the device the tensors share. When that backend does not
/// list the (op, dtype) pair ([`FallbackReason::Unlisted`]), or lists it
/// and answers `Unsupported` ([`FallbackReason::Unsupported`]), the op runs
/// on the built-in CPU backend instead: inputs are copied over, outputs
/// copied back. The dtype is the first input's (the output's for
/// `index_add`, whose first input is the index, and for `fill`).
pub(crate) fn run(op: OpId, params: Params, inputs: &[&Tensor], outputs: &[&Tensor]) -> Result<()> {
    let all: Vec<&Tensor> = inputs.iter().chain(outputs.iter()).copied().collect();
    let device = same_device(op.name(), &all)?;
    let key = if op.keyed_on_output() {
        outputs.first()
    } else {
        inputs.first().or(outputs.first())
    };
    let Some(dtype) = key.map(|t| t.dtype()) else {
        return Err(Error::invalid(op.name(), "no tensors given"));
    };
    if device.is_builtin_cpu() {
        return execute_on(device, op, params, inputs, outputs);
    }
    let why = if device.supports(op, dtype) {
        match execute_on(device, op, params, inputs, outputs) {
            Err(Error::Backend { ref source, .. }) if source.code == StatusCode::Unsupported => {
                Fallback {
                    reason: FallbackReason::Unsupported,
                    detail: source.message.clone(),
                }
            }
            other => return other,
        }
    } else {
        Fallback {
            reason: FallbackReason::Unlisted,
            detail: String::new(),
        }
    };
    fallback(device, op, dtype, why, params, inputs, outputs)
}

/// Why one call falls back, with the backend's message for `Unsupported`.
struct Fallback {
    reason: FallbackReason,
    detail: String,
}

pub(crate) fn execute_on(
    device: &Device,
    op: OpId,
    params: Params,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
) -> Result<()> {
    let ins: Vec<SrTensorDesc> = inputs.iter().map(|t| t.desc()).collect();
    let outs: Vec<SrTensorDesc> = outputs.iter().map(|t| t.desc()).collect();
    let call = OpCall {
        op,
        params,
        inputs: &ins,
        outputs: &outs,
    };
    let timed = crate::profile::enabled().then(std::time::Instant::now);
    // SAFETY: every descriptor is built from a live tensor of this device,
    // whose layout lies within its storage (views are validated when made,
    // outputs are fresh allocations or views the op front end checked).
    let r = unsafe { device.backend().execute(device.ordinal(), &call) };
    if let Some(start) = timed {
        crate::profile::record(op, start.elapsed());
    }
    r.map_err(|e| Error::backend(device.backend().name(), op.name(), e))
}

fn fallback(
    device: &Device,
    op: OpId,
    dtype: DType,
    why: Fallback,
    params: Params,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
) -> Result<()> {
    let backend = device.backend().name();
    crate::registry::count_fallback(backend, op, dtype, why.reason);
    match why.reason {
        FallbackReason::Unlisted => tracing::debug!(
            op = op.name(),
            dtype = dtype.name(),
            backend,
            reason = why.reason.name(),
            "{op} on {dtype} runs on the CPU: backend {backend} does not list ({op}, {dtype}) (unlisted)"
        ),
        FallbackReason::Unsupported => tracing::debug!(
            op = op.name(),
            dtype = dtype.name(),
            backend,
            reason = why.reason.name(),
            "{op} on {dtype} runs on the CPU: backend {backend} lists ({op}, {dtype}) but answered Unsupported: {} (unsupported)",
            why.detail
        ),
    }
    let cpu = Device::cpu();
    let ins: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_untracked(&cpu))
        .collect::<Result<_>>()?;
    let outs: Vec<Tensor> = outputs
        .iter()
        .map(|t| t.to_untracked(&cpu))
        .collect::<Result<_>>()?;
    let ins_r: Vec<&Tensor> = ins.iter().collect();
    let outs_r: Vec<&Tensor> = outs.iter().collect();
    execute_on(&cpu, op, params, &ins_r, &outs_r)?;
    for (dst, src) in outputs.iter().zip(&outs) {
        dst.copy_from_host_tensor(src)?;
    }
    Ok(())
}

impl Tensor {
    /// Overwrites this tensor with `src`'s elements, which may live on
    /// another device. Contiguous targets take the bytes directly; strided
    /// ones (a channels-last output, a slice) go through the device's own
    /// `copy`, or, when the device lacks `copy` on this dtype, through the
    /// host ([`Tensor::scatter_via_host`]).
    pub(crate) fn copy_from_host_tensor(&self, src: &Tensor) -> Result<()> {
        let dev = self.device();
        if self.is_contiguous() {
            // The bytes straight from the host, in row-major order.
            let host = src.to_untracked(&Device::cpu())?.contiguous_untracked()?;
            return self.write_raw_bytes(&host.raw_bytes()?);
        }
        if dev.is_builtin_cpu() || dev.supports(OpId::Copy, self.dtype()) {
            let moved = src.to_untracked(dev)?;
            match execute_on(dev, OpId::Copy, Params::None, &[&moved], &[self]) {
                Err(Error::Backend { ref source, .. })
                    if source.code == StatusCode::Unsupported && !dev.is_builtin_cpu() => {}
                other => return other,
            }
        }
        tracing::debug!(
            dtype = self.dtype().name(),
            backend = dev.backend().name(),
            "a strided output is written through the host: backend {} has no copy on {}",
            dev.backend().name(),
            self.dtype()
        );
        self.scatter_via_host(src)
    }
}
