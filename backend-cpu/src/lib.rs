//! `sunrise-backend-cpu`: the CPU backend.
//!
//! Portable kernels for every op of op set v1, with SIMD versions of the hot
//! ones for each ISA tier (SSE2, AVX2+FMA, AVX-512; NEON), chosen once at run
//! time ([`isa`]). Linked into the core as its default backend; the crate
//! `sunrise-backend-cpu-plugin` (`plugin/`) exports it as a cdylib through
//! `export_backend!`, so the whole plugin path runs with real kernels on any
//! machine.
//!
//! Layout: `device.rs` (what the device is), `storage.rs` (buffers), then one
//! file per op family: `elementwise.rs`, `reduce.rs`, `gemm.rs`, `conv.rs`,
//! `pool.rs`, `softmax.rs`, `norm.rs`, `indexing.rs`, `loss.rs`; SIMD kernels
//! per tier live under `simd/`.
//!
//! **Architecture invariant:** depends on no workspace crate but
//! `sunrise-backend-api`; built for the baseline ISA, never
//! `target-cpu=native`.

pub mod device;
pub mod element;
pub mod isa;
pub mod storage;
pub mod strided;
pub mod testing;
pub mod threads;

mod conv;
mod elementwise;
mod gemm;
mod indexing;
mod loss;
mod norm;
mod optim;
mod pool;
mod reduce;
mod softmax;
#[path = "simd/transpose.rs"]
mod transpose;

use std::sync::OnceLock;

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{
    Backend, BackendError, BufferHandle, DeviceInfo, HostInfo, OpCall, OpId, Plugin, ProbeReport,
    Result,
};

use crate::storage::CpuBuffer;

/// The CPU backend. Stateless apart from process-wide kernel tables and the
/// thread pool; cheap to create.
#[derive(Debug, Default)]
pub struct CpuBackend {
    _private: (),
}

impl CpuBackend {
    /// A backend instance.
    pub fn new() -> Self {
        CpuBackend { _private: () }
    }
}

fn supported_list() -> &'static [SrOpSupport] {
    static LIST: OnceLock<Vec<SrOpSupport>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut v = Vec::new();
        v.extend(elementwise::supported());
        v.extend(reduce::supported());
        v.extend(gemm::supported());
        v.extend(conv::supported());
        v.extend(pool::supported());
        v.extend(softmax::supported());
        v.extend(norm::supported());
        v.extend(indexing::supported());
        v.extend(loss::supported());
        v.extend(optim::supported());
        v.sort_by_key(|p| (p.op, p.dtype));
        v.dedup();
        v
    })
}

fn check_device(device: u32) -> Result<()> {
    if device == 0 {
        Ok(())
    } else {
        Err(BackendError::invalid(format!(
            "cpu has one device (0), not {device}"
        )))
    }
}

/// Runs one op with the kernels of this crate. Exposed for benches that
/// compare a direct call with a call through the plugin ABI.
///
/// # Safety
/// As [`Backend::execute`].
pub unsafe fn dispatch(call: &OpCall<'_>) -> Result<()> {
    use OpId::*;
    // SAFETY: forwarded from the caller for every family.
    unsafe {
        match call.op {
            op if op.is_unary() || op.is_binary() || op.is_comparison() => {
                elementwise::execute(call)
            }
            UnaryBackward | Where | Fill | Copy | Cast | Concat => elementwise::execute(call),
            Sum | Mean | Max | Min | Argmax => reduce::execute(call),
            Matmul => gemm::execute(call),
            Conv2d | Conv2dBackwardData | Conv2dBackwardFilter => conv::execute(call),
            MaxPool2d | MaxPool2dBackward | AvgPool2d | AvgPool2dBackward => pool::execute(call),
            Softmax | SoftmaxBackward | LogSoftmax | LogSoftmaxBackward => softmax::execute(call),
            LayerNorm | LayerNormBackward | BatchNorm | BatchNormBackward => norm::execute(call),
            IndexSelect | IndexAdd => indexing::execute(call),
            CrossEntropy | CrossEntropyBackward => loss::execute(call),
            AdamwStep | SgdStep | AdamwStepMulti | SgdStepMulti => optim::execute(call),
            _ => Err(BackendError::unsupported(format!(
                "cpu: {} is not implemented",
                call.op
            ))),
        }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &str {
        "cpu"
    }

    fn device_count(&self) -> u32 {
        1
    }

    fn device_info(&self, device: u32) -> Result<DeviceInfo> {
        check_device(device)?;
        Ok(device::info())
    }

    fn supported_ops(&self) -> &[SrOpSupport] {
        supported_list()
    }

    fn alloc(&self, device: u32, bytes: usize) -> Result<BufferHandle> {
        check_device(device)?;
        CpuBuffer::alloc(bytes)
    }

    unsafe fn free(&self, buffer: BufferHandle) {
        // SAFETY: per the trait's contract.
        unsafe { CpuBuffer::free(buffer) }
    }

    unsafe fn write(&self, buffer: BufferHandle, offset: usize, src: &[u8]) -> Result<()> {
        // SAFETY: per the trait's contract the handle is live.
        let b = unsafe { CpuBuffer::get(buffer) };
        b.check_range(offset, src.len())?;
        // SAFETY: the range is inside the buffer; `src` is a distinct host slice.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), b.as_ptr().add(offset), src.len()) };
        Ok(())
    }

    unsafe fn read(&self, buffer: BufferHandle, offset: usize, dst: &mut [u8]) -> Result<()> {
        // SAFETY: per the trait's contract the handle is live.
        let b = unsafe { CpuBuffer::get(buffer) };
        b.check_range(offset, dst.len())?;
        // SAFETY: the range is inside the buffer; `dst` is a distinct host slice.
        unsafe {
            std::ptr::copy_nonoverlapping(b.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    fn synchronize(&self, device: u32) -> Result<()> {
        check_device(device)
    }

    unsafe fn execute(&self, device: u32, call: &OpCall<'_>) -> Result<()> {
        check_device(device)?;
        // SAFETY: per the trait's contract.
        unsafe { dispatch(call) }
    }
}

impl Plugin for CpuBackend {
    fn probe() -> ProbeReport {
        ProbeReport {
            usable: true,
            score: 10,
            name: "cpu".into(),
            ..ProbeReport::default()
        }
    }

    fn init(_host: &HostInfo) -> Result<Self> {
        Ok(CpuBackend::new())
    }
}
