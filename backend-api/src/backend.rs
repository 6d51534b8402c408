//! The safe Rust face of the ABI: the [`Backend`] trait that every backend
//! implements (natively linked or behind the C tables) and [`Plugin`], the
//! extra entry points a loadable backend provides.

use crate::abi::{SrOpSupport, SrTensorDesc};
use crate::error::Result;
use crate::ops::{OpId, Params};
use crate::types::{BufferHandle, DType, DeviceInfo, ProbeReport};

/// One op invocation: the op, its params and borrowed tensor descriptors.
#[derive(Debug, Clone, Copy)]
pub struct OpCall<'a> {
    /// Which op.
    pub op: OpId,
    /// Its params (matching the op's params struct).
    pub params: Params,
    /// Input views.
    pub inputs: &'a [SrTensorDesc],
    /// Output views, written in place.
    pub outputs: &'a [SrTensorDesc],
}

/// A device backend. Object safe: the core holds `Arc<dyn Backend>` for the
/// linked CPU backend and for every loaded plugin alike.
pub trait Backend: Send + Sync {
    /// Short name (`cpu`, `cuda`): the `SUNRISE_DEVICE` prefix.
    fn name(&self) -> &str;

    /// Number of devices this backend drives.
    fn device_count(&self) -> u32;

    /// Describes device `device`.
    fn device_info(&self, device: u32) -> Result<DeviceInfo>;

    /// The (op, dtype) pairs implemented.
    fn supported_ops(&self) -> &[SrOpSupport];

    /// True when `op` on `dtype` is implemented (the dtype of its first
    /// input; of its output for `index_add` and `fill`).
    fn supports(&self, op: OpId, dtype: DType) -> bool {
        self.supported_ops()
            .iter()
            .any(|p| p.op == op as u32 && p.dtype == dtype as u32)
    }

    /// Allocates `bytes` bytes on `device`, at least 64-byte aligned.
    fn alloc(&self, device: u32, bytes: usize) -> Result<BufferHandle>;

    /// Frees a buffer.
    ///
    /// # Safety
    /// `buffer` was allocated by this backend and is not used afterwards.
    unsafe fn free(&self, buffer: BufferHandle);

    /// Copies host bytes into `buffer` at `offset`.
    ///
    /// # Safety
    /// `buffer` is a live buffer of this backend.
    unsafe fn write(&self, buffer: BufferHandle, offset: usize, src: &[u8]) -> Result<()>;

    /// Copies bytes of `buffer` from `offset` into host memory.
    ///
    /// # Safety
    /// `buffer` is a live buffer of this backend.
    unsafe fn read(&self, buffer: BufferHandle, offset: usize, dst: &mut [u8]) -> Result<()>;

    /// Waits for all queued work on `device`.
    fn synchronize(&self, device: u32) -> Result<()>;

    /// Runs one op on `device`.
    ///
    /// # Safety
    /// Every descriptor names a live buffer of this backend and stays within
    /// it ([`SrTensorDesc::byte_extent`]); outputs do not overlap inputs
    /// except where the op accumulates. Shapes and dtypes are the backend's
    /// to check: it returns `InvalidArgument` for any it does not accept.
    unsafe fn execute(&self, device: u32, call: &OpCall<'_>) -> Result<()>;

    /// Sets a backend option (ABI 1.1), e.g. the CUDA backend's `tf32` to
    /// `on` or `off`. The default knows no option: every key is refused
    /// with `InvalidArgument`.
    fn set_option(&self, key: &str, value: &str) -> Result<()> {
        let _ = value;
        Err(crate::error::BackendError::invalid(format!(
            "backend {} has no option {key:?}",
            self.name()
        )))
    }
}

/// The host as a plugin sees it during `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostInfo {
    /// ABI major in effect (always 1 behind the `_v1` entry points).
    pub abi_major: u32,
    /// ABI minor in effect: the lower of host's and plugin's.
    pub abi_minor: u32,
}

/// What a loadable backend adds to [`Backend`]: its two entry points, which
/// [`crate::export_backend!`] turns into `sunrise_backend_probe_v1` and
/// `sunrise_backend_init_v1`.
pub trait Plugin: Backend + Sized + 'static {
    /// Cheap check, no device set-up: can this backend run here?
    fn probe() -> ProbeReport;

    /// Creates the backend.
    fn init(host: &HostInfo) -> Result<Self>;
}
