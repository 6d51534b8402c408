//! One GPU: its primary context, its one stream, the caching allocator,
//! the NVRTC modules loaded so far, and the cuBLAS and cuDNN handles
//! (created at first use). Every call locks the device, makes its context
//! current on the calling thread and queues work on its stream.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use cudarc::cublas::sys as blas;
use cudarc::cudnn::sys as dnn;
use cudarc::driver::{result, sys};
use sunrise_backend_api::{BackendError, Result, StatusCode};

use crate::compile::{self, CacheKey, KernelSource};
use crate::storage::{driver_error, Pool};

/// Library versions, read once at init.
#[derive(Debug, Clone, Default)]
pub(crate) struct Versions {
    /// Driver's CUDA version (`12040`).
    pub driver: i32,
    /// NVRTC `(major, minor)`.
    pub nvrtc: (i32, i32),
    /// cuBLAS `(major, minor, patch)`.
    pub cublas: (i32, i32, i32),
    /// cuDNN (`90100`).
    pub cudnn: usize,
}

/// What a GPU is.
#[derive(Debug, Clone)]
pub(crate) struct GpuInfo {
    pub name: String,
    pub arch: (i32, i32),
    pub total_mem: usize,
    pub sm_count: i32,
    pub pci_bus: i32,
}

/// Everything that changes per call, behind the device's lock.
#[derive(Debug)]
pub(crate) struct State {
    /// The device's stream: all work is queued here, in order.
    pub stream: sys::CUstream,
    /// The caching allocator.
    pub pool: Pool,
    modules: HashMap<&'static str, sys::CUmodule>,
    functions: HashMap<(&'static str, &'static str), sys::CUfunction>,
    blas: Option<blas::cublasHandle_t>,
    /// The math mode last set on `blas`: TF32 allowed?
    blas_tf32: bool,
    dnn: Option<dnn::cudnnHandle_t>,
    /// cuDNN's workspace: grows, never shrinks.
    workspace: Option<(sys::CUdeviceptr, usize)>,
    /// Chosen conv algorithms and their workspace bytes, by shape key.
    pub conv_algos: HashMap<crate::conv::ConvKey, (i32, usize)>,
    /// Modules compiled (false) or loaded from the disk cache (true).
    pub module_log: Vec<(&'static str, bool)>,
}

/// One GPU.
#[derive(Debug)]
pub(crate) struct Gpu {
    pub info: GpuInfo,
    ctx: sys::CUcontext,
    dev: sys::CUdevice,
    pub versions: Versions,
    /// TF32 tensor cores allowed for GEMM and convolution.
    tf32: AtomicBool,
    state: Mutex<State>,
}

// SAFETY: the raw CUDA handles inside are used only under the device's
// mutex, with its context made current first; CUDA contexts, streams,
// modules and library handles may be used from any thread that way.
unsafe impl Send for Gpu {}
// SAFETY: as above: all mutation goes through the mutex.
unsafe impl Sync for Gpu {}
// SAFETY: `State` is only reachable through the `Gpu` mutex.
unsafe impl Send for State {}

fn attr(dev: sys::CUdevice, a: sys::CUdevice_attribute) -> Result<i32> {
    // SAFETY: `dev` came from cuDeviceGet.
    unsafe { result::device::get_attribute(dev, a) }
        .map_err(|e| driver_error("cuDeviceGetAttribute", e))
}

impl Gpu {
    /// Opens device `ordinal`: retains its primary context and creates its stream.
    pub(crate) fn open(ordinal: i32, versions: Versions, tf32: bool) -> Result<Gpu> {
        use sys::CUdevice_attribute as A;
        let dev = result::device::get(ordinal).map_err(|e| driver_error("cuDeviceGet", e))?;
        let info = GpuInfo {
            name: result::device::get_name(dev).map_err(|e| driver_error("cuDeviceGetName", e))?,
            arch: (
                attr(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attr(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            // SAFETY: `dev` came from cuDeviceGet.
            total_mem: unsafe { result::device::total_mem(dev) }
                .map_err(|e| driver_error("cuDeviceTotalMem", e))?,
            sm_count: attr(dev, A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            pci_bus: attr(dev, A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
        };
        // SAFETY: `dev` is valid; the retained context is released in Drop.
        let ctx = unsafe { result::primary_ctx::retain(dev) }
            .map_err(|e| driver_error("cuDevicePrimaryCtxRetain", e))?;
        // SAFETY: `ctx` was just retained.
        unsafe { result::ctx::set_current(ctx) }.map_err(|e| driver_error("cuCtxSetCurrent", e))?;
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(|e| driver_error("cuStreamCreate", e))?;
        Ok(Gpu {
            info,
            ctx,
            dev,
            versions,
            tf32: AtomicBool::new(tf32),
            state: Mutex::new(State {
                stream,
                pool: Pool::default(),
                modules: HashMap::new(),
                functions: HashMap::new(),
                blas: None,
                blas_tf32: false,
                dnn: None,
                workspace: None,
                conv_algos: HashMap::new(),
                module_log: Vec::new(),
            }),
        })
    }

    /// Locks the device and makes its context current on this thread.
    pub(crate) fn lock(&self) -> Result<Ctx<'_>> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `ctx` stays retained for the life of `self`.
        unsafe { result::ctx::set_current(self.ctx) }
            .map_err(|e| driver_error("cuCtxSetCurrent", e))?;
        Ok(Ctx { gpu: self, st })
    }

    /// Whether TF32 tensor cores are allowed.
    pub(crate) fn tf32(&self) -> bool {
        self.tf32.load(Ordering::Relaxed)
    }

    /// Allows or forbids TF32 from the next op on.
    pub(crate) fn set_tf32(&self, on: bool) {
        self.tf32.store(on, Ordering::Relaxed);
    }

    /// Free and total memory on the device.
    pub(crate) fn mem_info(&self) -> Result<(usize, usize)> {
        let _ctx = self.lock()?;
        result::mem_get_info().map_err(|e| driver_error("cuMemGetInfo", e))
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        // SAFETY: tearing down what `open` and first uses created, in
        // reverse order, with the context current; errors are ignored since
        // nothing can be done about them here.
        unsafe {
            if result::ctx::set_current(self.ctx).is_err() {
                return;
            }
            let _ = result::stream::synchronize(st.stream);
            if let Some(h) = st.blas.take() {
                let _ = blas::cublasDestroy_v2(h);
            }
            if let Some(h) = st.dnn.take() {
                let _ = dnn::cudnnDestroy(h);
            }
            if let Some((p, _)) = st.workspace.take() {
                let _ = result::free_sync(p);
            }
            let _ = st.pool.release(st.stream);
            for (_, m) in st.modules.drain() {
                let _ = result::module::unload(m);
            }
            let _ = result::stream::destroy(st.stream);
            let _ = result::primary_ctx::release(self.dev);
        }
    }
}

/// A locked device with its context current.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub gpu: &'a Gpu,
    pub st: MutexGuard<'a, State>,
}

/// Grid and block of a 1-D launch over `n` items, `block` threads each,
/// at most `max_blocks` blocks (kernels loop over the rest).
pub(crate) fn grid_1d(n: usize, block: u32, max_blocks: u32) -> u32 {
    (n.div_ceil(block as usize)).clamp(1, max_blocks as usize) as u32
}

impl Ctx<'_> {
    /// The device's stream.
    pub(crate) fn stream(&self) -> sys::CUstream {
        self.st.stream
    }

    /// A kernel of `src`, compiling (or loading from the disk cache) and
    /// loading the module at first use.
    pub(crate) fn function(
        &mut self,
        src: &'static KernelSource,
        name: &'static str,
    ) -> Result<sys::CUfunction> {
        if let Some(&f) = self.st.functions.get(&(src.name, name)) {
            return Ok(f);
        }
        let module = match self.st.modules.get(src.name) {
            Some(&m) => m,
            None => {
                let m = self.load_module(src)?;
                self.st.modules.insert(src.name, m);
                m
            }
        };
        let cname =
            CString::new(name).map_err(|_| BackendError::invalid("kernel name holds a NUL"))?;
        // SAFETY: `module` is loaded in the current context.
        let f = unsafe { result::module::get_function(module, cname) }
            .map_err(|e| driver_error(&format!("cuModuleGetFunction({name})"), e))?;
        self.st.functions.insert((src.name, name), f);
        Ok(f)
    }

    fn load_module(&mut self, src: &'static KernelSource) -> Result<sys::CUmodule> {
        let v = &self.gpu.versions;
        let key = CacheKey {
            source: src,
            arch: self.gpu.info.arch,
            nvrtc: v.nvrtc,
            driver: v.driver,
        };
        let (image, cached) = compile::image_for(&key).map_err(|e| {
            BackendError::new(StatusCode::Internal, e).with_component("libnvrtc.so.12")
        })?;
        // SAFETY: a cubin or NUL-terminated PTX image, alive for the call.
        let m = unsafe { result::module::load_data(image.bytes().as_ptr() as *const c_void) };
        let m = match m {
            Ok(m) => m,
            Err(e) if cached => {
                // A cache entry that passes its checksum but does not load
                // (another driver wrote it?) is rebuilt once.
                crate::log_warn(&format!(
                    "cached module {} did not load ({e}); rebuilding",
                    src.name
                ));
                let img = compile::compile(src, key.arch).map_err(|e| {
                    BackendError::new(StatusCode::Internal, e).with_component("libnvrtc.so.12")
                })?;
                if let Some(d) = compile::cache_dir() {
                    let _ = compile::store_cached(&d, &key, &img);
                }
                // SAFETY: as above.
                unsafe { result::module::load_data(img.bytes().as_ptr() as *const c_void) }
                    .map_err(|e| driver_error("cuModuleLoadData", e))?
            }
            Err(e) => return Err(driver_error("cuModuleLoadData", e)),
        };
        self.st.module_log.push((src.name, cached));
        Ok(m)
    }

    /// Launches `f`. `args` point to the kernel's parameters, in order.
    ///
    /// # Safety
    /// `args` match the kernel's signature exactly and every device pointer
    /// among them is live and large enough for what the kernel touches.
    pub(crate) unsafe fn launch(
        &self,
        f: sys::CUfunction,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shmem: u32,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        // SAFETY: per this function's contract.
        unsafe { result::launch_kernel(f, grid, block, shmem, self.st.stream, args) }
            .map_err(|e| driver_error("cuLaunchKernel", e))
    }

    /// A temporary device block of at least `bytes`; give it back with
    /// [`Ctx::free_temp`] once the work that uses it is queued.
    pub(crate) fn temp(&mut self, bytes: usize) -> Result<(sys::CUdeviceptr, usize)> {
        let cap = crate::storage::size_class(bytes);
        let stream = self.st.stream;
        Ok((self.st.pool.alloc(cap, stream)?, cap))
    }

    /// Returns a temporary block (stream order keeps later reuse safe).
    pub(crate) fn free_temp(&mut self, block: (sys::CUdeviceptr, usize)) {
        self.st.pool.free(block.0, block.1);
    }

    /// cuDNN's workspace, at least `bytes` long (null for 0).
    pub(crate) fn workspace(&mut self, bytes: usize) -> Result<sys::CUdeviceptr> {
        if bytes == 0 {
            return Ok(0);
        }
        if let Some((p, n)) = self.st.workspace {
            if n >= bytes {
                return Ok(p);
            }
            // SAFETY: synchronise so no queued work still uses the old one.
            unsafe { result::stream::synchronize(self.st.stream) }
                .map_err(|e| driver_error("cuStreamSynchronize", e))?;
            // SAFETY: allocated by cuMemAlloc below, no longer referenced.
            unsafe { result::free_sync(p) }.map_err(|e| driver_error("cuMemFree", e))?;
            self.st.workspace = None;
        }
        let cap = crate::storage::size_class(bytes);
        let stream = self.st.stream;
        let p = self.st.pool.alloc(cap, stream)?;
        // The pool counts it as in use for good; it is freed directly.
        self.st.workspace = Some((p, cap));
        Ok(p)
    }

    /// The cuBLAS handle, on this device's stream, in strict f32 math
    /// (`CUBLAS_DEFAULT_MATH`) unless TF32 is allowed
    /// (`CUBLAS_TF32_TENSOR_OP_MATH`); the mode follows [`Gpu::set_tf32`].
    pub(crate) fn blas(&mut self) -> Result<blas::cublasHandle_t> {
        let err = |what: &str, e: String| {
            BackendError::new(StatusCode::Internal, format!("{what} failed: {e}"))
                .with_component("libcublas.so.12")
        };
        let tf32 = self.gpu.tf32();
        let h = match self.st.blas {
            Some(h) if self.st.blas_tf32 == tf32 => return Ok(h),
            Some(h) => h,
            None => {
                let h = crate::libs::guarded("cuBLAS", cudarc::cublas::result::create_handle)
                    .map_err(|e| err("cublasCreate", e))?
                    .map_err(|e| err("cublasCreate", format!("{e:?}")))?;
                // SAFETY: `h` is a fresh handle; the stream belongs to this context.
                let r =
                    unsafe { blas::cublasSetStream_v2(h, self.st.stream as blas::cudaStream_t) };
                if r != blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
                    // SAFETY: not stored anywhere.
                    unsafe { blas::cublasDestroy_v2(h) };
                    return Err(err("cublasSetStream", format!("{r:?}")));
                }
                self.st.blas = Some(h);
                h
            }
        };
        let mode = if tf32 {
            blas::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: a live handle of this device.
        let r = unsafe { blas::cublasSetMathMode(h, mode) };
        if r != blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(err("cublasSetMathMode", format!("{r:?}")));
        }
        self.st.blas_tf32 = tf32;
        Ok(h)
    }

    /// The cuDNN handle, on this device's stream.
    pub(crate) fn dnn(&mut self) -> Result<dnn::cudnnHandle_t> {
        if let Some(h) = self.st.dnn {
            return Ok(h);
        }
        let err = |what: &str, e: String| {
            BackendError::new(StatusCode::Internal, format!("{what} failed: {e}"))
                .with_component("libcudnn.so.9")
        };
        let h = crate::libs::guarded("cuDNN", cudarc::cudnn::result::create_handle)
            .map_err(|e| err("cudnnCreate", e))?
            .map_err(|e| err("cudnnCreate", format!("{e:?}")))?;
        // SAFETY: fresh handle; the stream belongs to this context.
        let r = unsafe { dnn::cudnnSetStream(h, self.st.stream as dnn::cudaStream_t) };
        if r != dnn::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            // SAFETY: not stored anywhere.
            unsafe { dnn::cudnnDestroy(h) };
            return Err(err("cudnnSetStream", format!("{r:?}")));
        }
        self.st.dnn = Some(h);
        Ok(h)
    }

    /// Waits for the stream.
    pub(crate) fn synchronize(&self) -> Result<()> {
        // SAFETY: the stream belongs to the current context.
        unsafe { result::stream::synchronize(self.st.stream) }
            .map_err(|e| driver_error("cuStreamSynchronize", e))
    }
}
