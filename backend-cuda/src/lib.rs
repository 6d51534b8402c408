//! The sunrise CUDA/cuDNN backend: `libsunrise_backend_cuda.so`, a plugin
//! for `contrib` that the core finds and dlopens at run time. It shares
//! nothing with the rest of the workspace but `sunrise-backend-api`.
//!
//! # Built with nothing non-free
//!
//! Every NVIDIA library is opened with dlopen at run time through cudarc's
//! `dynamic-loading`: nothing is linked (`ldd` shows no CUDA library), no
//! CUDA toolkit or nvcc is needed to build, and the kernels are CUDA C
//! compiled at first use by NVRTC for the device's exact architecture.
//!
//! The cudarc feature is `cuda-12000`: every driver, cuBLAS and NVRTC call
//! this crate makes exists in CUDA 12.0, so any driver from CUDA 12.0 on
//! (R525 and newer) runs it, and cudarc then opens the CUDA 12 library
//! names Debian ships (`libcublas.so.12` from `libcublas12`,
//! `libnvrtc.so.12` from `libnvrtc12`) besides unversioned ones. cuDNN is
//! bound as `cudnn-09010`, the oldest cuDNN 9 binding (its legacy
//! convolution API, present through 9.x, is all this crate uses).
//!
//! # Never takes the host down
//!
//! cudarc panics when a library or symbol is missing, so the probe checks
//! each library with `is_culib_present()` and the driver's version before
//! any other call (see [`probe`]), every library call that could panic runs
//! under `catch_unwind`, and every exported entry point is wrapped by
//! `export_backend!`.
//!
//! # Precision
//!
//! f32 by default: cuBLAS in its default math mode and cuDNN convolutions
//! with `CUDNN_FMA_MATH`, no TF32. `SUNRISE_CUDA_TF32=1` allows TF32 tensor
//! cores for GEMM and convolution.
//!
//! # Layout
//!
//! `device.rs` (context, stream, handles, kernel modules), `storage.rs`
//! (caching allocator), `compile.rs` (NVRTC and the disk cache),
//! `launch.rs` (what crosses into kernels), then one file per op family
//! with the same names as the CPU backend: `elementwise.rs`, `reduce.rs`,
//! `gemm.rs`, `conv.rs`, `pool.rs`, `softmax.rs`, `norm.rs`, `indexing.rs`,
//! `loss.rs`, and their CUDA C in `kernels/`.

mod compile;
mod conv;
mod device;
mod elementwise;
mod gemm;
mod indexing;
mod kernels;
mod launch;
mod libs;
mod loss;
mod norm;
mod optim;
mod pool;
mod probe;
mod reduce;
mod softmax;
mod storage;

use std::ptr::NonNull;
use std::sync::OnceLock;

use sunrise_backend_api::abi::{SrOpSupport, SR_DEVICE_CUDA};
use sunrise_backend_api::log::{log, Level};
use sunrise_backend_api::{
    Backend, BackendError, BufferHandle, DeviceInfo, HostInfo, OpCall, OpId, Plugin, ProbeReport,
    Result, StatusCode,
};

use crate::device::{Gpu, Versions};
use crate::storage::{driver_error, CudaBuffer};

/// Logs a warning through the host's `tracing`.
pub(crate) fn log_warn(msg: &str) {
    log(Level::Warn, "sunrise_backend_cuda", msg);
}

/// Logs at info level.
pub(crate) fn log_info(msg: &str) {
    log(Level::Info, "sunrise_backend_cuda", msg);
}

/// `on`/`off` and their spellings, or `None`.
fn parse_switch(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" | "" => Some(false),
        _ => None,
    }
}

/// True when `SUNRISE_CUDA_TF32` asks for TF32 (`1`, `true`, `on`, `yes`).
fn tf32_from_env() -> bool {
    std::env::var("SUNRISE_CUDA_TF32")
        .ok()
        .and_then(|v| parse_switch(&v))
        .unwrap_or(false)
}

/// The CUDA backend: one [`Gpu`] per visible device.
#[derive(Debug)]
pub struct CudaBackend {
    gpus: Vec<Gpu>,
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

/// The (op, dtype) pairs listed by `list`, as records.
pub(crate) fn pairs(ops: &[OpId], dtypes: &[sunrise_backend_api::DType]) -> Vec<SrOpSupport> {
    ops.iter()
        .flat_map(|&op| {
            dtypes.iter().map(move |&d| SrOpSupport {
                op: op as u32,
                dtype: d as u32,
            })
        })
        .collect()
}

impl CudaBackend {
    fn gpu(&self, device: u32) -> Result<&Gpu> {
        self.gpus.get(device as usize).ok_or_else(|| {
            BackendError::invalid(format!(
                "cuda has {} device(s); there is no cuda:{device}",
                self.gpus.len()
            ))
        })
    }

    fn versions() -> Result<Versions> {
        let unavailable = |e: String| BackendError::new(StatusCode::Unavailable, e);
        Ok(Versions {
            driver: libs::driver_version().map_err(unavailable)?,
            nvrtc: libs::nvrtc_version().map_err(unavailable)?,
            cublas: libs::cublas_version().map_err(unavailable)?,
            cudnn: libs::cudnn_version().map_err(unavailable)?,
        })
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &str {
        "cuda"
    }

    fn device_count(&self) -> u32 {
        self.gpus.len() as u32
    }

    fn device_info(&self, device: u32) -> Result<DeviceInfo> {
        let gpu = self.gpu(device)?;
        let (free, total) = gpu.mem_info()?;
        let v = &gpu.versions;
        let cached = gpu.lock().map(|c| c.st.pool.cached()).unwrap_or(0);
        Ok(DeviceInfo {
            kind: SR_DEVICE_CUDA,
            name: gpu.info.name.clone(),
            total_memory: total as u64,
            free_memory: free as u64,
            compute_capability: Some(gpu.info.arch),
            driver_version: Some(format!("CUDA {}", libs::cuda_version_string(v.driver))),
            library_versions: Some(format!(
                "cuBLAS {}.{}.{}, cuDNN {}, NVRTC {}.{}",
                v.cublas.0,
                v.cublas.1,
                v.cublas.2,
                libs::cudnn_version_string(v.cudnn),
                v.nvrtc.0,
                v.nvrtc.1
            )),
            attributes: vec![
                ("multiprocessors".into(), gpu.info.sm_count.to_string()),
                ("pci_bus".into(), gpu.info.pci_bus.to_string()),
                ("tf32".into(), if gpu.tf32() { "on" } else { "off" }.into()),
                (
                    "kernel_cache".into(),
                    compile::cache_dir()
                        .map_or_else(|| "(none)".into(), |p| p.display().to_string()),
                ),
                ("cached_bytes".into(), cached.to_string()),
            ],
        })
    }

    fn supported_ops(&self) -> &[SrOpSupport] {
        supported_list()
    }

    fn alloc(&self, device: u32, bytes: usize) -> Result<BufferHandle> {
        let gpu = self.gpu(device)?;
        let mut ctx = gpu.lock()?;
        let capacity = storage::size_class(bytes);
        let stream = ctx.stream();
        let ptr = ctx.st.pool.alloc(capacity, stream)?;
        let rec = Box::new(CudaBuffer {
            device,
            ptr,
            bytes,
            capacity,
        });
        Ok(BufferHandle::from_ptr(NonNull::from(Box::leak(rec))))
    }

    unsafe fn free(&self, buffer: BufferHandle) {
        // SAFETY: per the trait's contract the handle came from `alloc` and
        // is not used again.
        let rec = unsafe { Box::from_raw(buffer.cast::<CudaBuffer>().as_ptr()) };
        if let Ok(gpu) = self.gpu(rec.device) {
            if let Ok(mut ctx) = gpu.lock() {
                ctx.st.pool.free(rec.ptr, rec.capacity);
            }
        }
    }

    unsafe fn write(&self, buffer: BufferHandle, offset: usize, src: &[u8]) -> Result<()> {
        // SAFETY: per the trait's contract the handle is live.
        let rec = unsafe { buffer.cast::<CudaBuffer>().as_ref() };
        rec.check_range(offset, src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        let ctx = self.gpu(rec.device)?.lock()?;
        // SAFETY: the range is inside the buffer; the copy is waited for
        // before `src` is released.
        unsafe {
            cudarc::driver::result::memcpy_htod_async(rec.ptr + offset as u64, src, ctx.stream())
                .map_err(|e| driver_error("cuMemcpyHtoDAsync", e))?;
        }
        ctx.synchronize()
    }

    unsafe fn read(&self, buffer: BufferHandle, offset: usize, dst: &mut [u8]) -> Result<()> {
        // SAFETY: per the trait's contract the handle is live.
        let rec = unsafe { buffer.cast::<CudaBuffer>().as_ref() };
        rec.check_range(offset, dst.len())?;
        if dst.is_empty() {
            return Ok(());
        }
        let ctx = self.gpu(rec.device)?.lock()?;
        // SAFETY: as in `write`; the stream is waited for before returning.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(dst, rec.ptr + offset as u64, ctx.stream())
                .map_err(|e| driver_error("cuMemcpyDtoHAsync", e))?;
        }
        ctx.synchronize()
    }

    fn synchronize(&self, device: u32) -> Result<()> {
        self.gpu(device)?.lock()?.synchronize()
    }

    fn set_option(&self, key: &str, value: &str) -> Result<()> {
        match key {
            "tf32" => {
                let on = parse_switch(value).ok_or_else(|| {
                    BackendError::invalid(format!(
                        "cuda option tf32: {value:?} is not on/off (or 1/0, true/false)"
                    ))
                })?;
                for gpu in &self.gpus {
                    gpu.set_tf32(on);
                }
                log_info(&format!(
                    "TF32 tensor cores {}",
                    if on { "allowed" } else { "off (strict f32)" }
                ));
                Ok(())
            }
            _ => Err(BackendError::invalid(format!(
                "cuda has no option {key:?} (it has: tf32)"
            ))),
        }
    }

    unsafe fn execute(&self, device: u32, call: &OpCall<'_>) -> Result<()> {
        let mut ctx = self.gpu(device)?.lock()?;
        // SAFETY: per the trait's contract, forwarded to every family.
        unsafe { dispatch(&mut ctx, device, call) }
    }
}

/// Runs one op on a locked device.
///
/// # Safety
/// As [`Backend::execute`].
unsafe fn dispatch(ctx: &mut device::Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    use OpId::*;
    // SAFETY: forwarded from the caller for every family.
    unsafe {
        match call.op {
            Matmul => gemm::execute(ctx, device, call),
            Conv2d | Conv2dBackwardData | Conv2dBackwardFilter => conv::execute(ctx, device, call),
            MaxPool2d | MaxPool2dBackward | AvgPool2d | AvgPool2dBackward => {
                pool::execute(ctx, device, call)
            }
            Softmax | SoftmaxBackward | LogSoftmax | LogSoftmaxBackward => {
                softmax::execute(ctx, device, call)
            }
            Sum | Mean | Max | Min | Argmax => reduce::execute(ctx, device, call),
            LayerNorm | LayerNormBackward | BatchNorm | BatchNormBackward => {
                norm::execute(ctx, device, call)
            }
            IndexSelect | IndexAdd => indexing::execute(ctx, device, call),
            CrossEntropy | CrossEntropyBackward => loss::execute(ctx, device, call),
            AdamwStep | SgdStep | AdamwStepMulti | SgdStepMulti => {
                optim::execute(ctx, device, call)
            }
            _ => elementwise::execute(ctx, device, call),
        }
    }
}

impl Plugin for CudaBackend {
    fn probe() -> ProbeReport {
        probe::report()
    }

    fn init(_host: &HostInfo) -> Result<Self> {
        if let Err(u) = probe::check() {
            return Err(BackendError::new(StatusCode::Unavailable, u.reason)
                .with_component(u.component)
                .with_hint(u.hint));
        }
        let versions = Self::versions()?;
        let count = libs::guarded(
            "cuDeviceGetCount",
            cudarc::driver::result::device::get_count,
        )
        .map_err(|e| BackendError::new(StatusCode::Unavailable, e))?
        .map_err(|e| driver_error("cuDeviceGetCount", e))?;
        let tf32 = tf32_from_env();
        let mut gpus = Vec::new();
        for ordinal in 0..count {
            let gpu = libs::guarded("opening a GPU", || {
                Gpu::open(ordinal, versions.clone(), tf32)
            })
            .map_err(|e| BackendError::new(StatusCode::Internal, e))??;
            log_info(&format!(
                "cuda:{ordinal}: {} (sm_{}{}, {}), TF32 {}",
                gpu.info.name,
                gpu.info.arch.0,
                gpu.info.arch.1,
                storage::human(gpu.info.total_mem),
                if tf32 { "on" } else { "off" }
            ));
            gpus.push(gpu);
        }
        Ok(CudaBackend { gpus })
    }
}

sunrise_backend_api::export_backend!(CudaBackend);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches() {
        for on in ["1", "on", "TRUE", " yes "] {
            assert_eq!(parse_switch(on), Some(true), "{on}");
        }
        for off in ["0", "off", "false", "no", ""] {
            assert_eq!(parse_switch(off), Some(false), "{off}");
        }
        assert_eq!(parse_switch("maybe"), None);
    }

    #[test]
    fn options_are_checked_without_a_gpu() {
        let b = CudaBackend { gpus: Vec::new() };
        assert!(b.set_option("tf32", "on").is_ok());
        let e = b.set_option("tf32", "sometimes").unwrap_err();
        assert_eq!(e.code, StatusCode::InvalidArgument);
        let e = b.set_option("fast", "on").unwrap_err();
        assert!(e.message.contains("no option"), "{}", e.message);
        assert!(b.device_info(0).is_err());
    }
}
