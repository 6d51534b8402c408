//! The raw C ABI, version 1: every `#[repr(C)]` type and function-pointer
//! signature that crosses between the host (`sunrise` core) and a backend.
//!
//! Rules (see `ARCHITECTURE.md` and `../shared/DESIGN.md`):
//! - every table and argument struct starts with `struct_size` (bytes, as the
//!   writer compiled it) and an `ext` pointer reserved for extensions;
//! - tables are append-only: a reader checks `struct_size` before touching a
//!   field added after version 1.0 (see [`has_field`]);
//! - only C types cross: integers, floats, raw pointers, fixed arrays and
//!   `extern "C"` function pointers. No Rust type, no unwinding.
//!
//! `include/sunrise_backend.h` is generated from this file by cbindgen
//! (`cargo test -p sunrise-backend-api --test header` checks it is current).

use std::ffi::{c_char, c_void};

/// Major version of this ABI. A breaking change is a new major and new
/// `_v2` entry points; a plugin may export both.
pub const SR_ABI_MAJOR: u32 = 1;
/// Minor version of this ABI. Minor versions only append; the version in
/// effect between a host and a plugin is the lower of the two.
pub const SR_ABI_MINOR: u32 = 1;
/// Highest tensor rank a descriptor carries.
pub const SR_MAX_RANK: usize = 8;

/// Name of the probe entry point (NUL-terminated, for `dlsym`).
pub const SR_PROBE_SYMBOL_V1: &[u8] = b"sunrise_backend_probe_v1\0";
/// Name of the init entry point (NUL-terminated, for `dlsym`).
pub const SR_INIT_SYMBOL_V1: &[u8] = b"sunrise_backend_init_v1\0";

/// Status codes. Append-only; `0` is success and is never carried by a status
/// object (success is a null status pointer).
pub type SrStatusCode = i32;
/// Success.
pub const SR_OK: SrStatusCode = 0;
/// An argument was invalid (shape, dtype, params, handle).
pub const SR_INVALID_ARGUMENT: SrStatusCode = 1;
/// The backend does not implement this (op, dtype) pair; the host may fall
/// back to another backend for this one call.
pub const SR_UNSUPPORTED: SrStatusCode = 2;
/// Device or host memory could not be allocated.
pub const SR_OUT_OF_MEMORY: SrStatusCode = 3;
/// A library or driver the backend needs is missing or too old.
pub const SR_UNAVAILABLE: SrStatusCode = 4;
/// The ABI versions of host and plugin cannot work together.
pub const SR_ABI_MISMATCH: SrStatusCode = 5;
/// The backend panicked; the panic was caught at the ABI boundary.
pub const SR_PANIC: SrStatusCode = 6;
/// Any other failure inside the backend or its device.
pub const SR_INTERNAL: SrStatusCode = 7;

/// An error report. Allocated by the side that reports it, freed only by
/// calling its own `release` (which is never null). Strings are
/// NUL-terminated UTF-8 and may be null when absent.
#[repr(C)]
#[derive(Debug)]
pub struct SrStatus {
    /// `size_of::<SrStatus>()` as the allocator compiled it.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// One of the `SR_*` codes, never `SR_OK`.
    pub code: SrStatusCode,
    /// Reserved, zero.
    pub reserved: u32,
    /// What went wrong.
    pub message: *const c_char,
    /// The component at fault, e.g. `libcudnn.so.9`; may be null.
    pub component: *const c_char,
    /// What the user can do, e.g. `install the package nvidia-cudnn`; may be null.
    pub hint: *const c_char,
    /// Frees this status and its strings. Called exactly once by the receiver.
    pub release: Option<unsafe extern "C" fn(status: *mut SrStatus)>,
}

/// Element types. Append-only numeric ids.
pub type SrDType = u32;
/// 32-bit IEEE float: the compute type.
pub const SR_DTYPE_F32: SrDType = 0;
/// 64-bit IEEE float: reference and gradient checks.
pub const SR_DTYPE_F64: SrDType = 1;
/// 64-bit signed integer: indices and labels.
pub const SR_DTYPE_I64: SrDType = 2;
/// 8-bit unsigned integer: boolean masks (0 or 1) and bytes.
pub const SR_DTYPE_U8: SrDType = 3;

/// Opaque backend-owned buffer. Only the backend that allocated it may look
/// inside or free it.
#[repr(C)]
#[derive(Debug)]
pub struct SrBuffer {
    _private: [u8; 0],
}

/// A strided view of a buffer, borrowed for one call.
///
/// Element `(i0, .., i{rank-1})` lives at byte
/// `byte_offset + sum(ik * strides[k]) * dtype_size` of `buffer`.
/// Strides are in elements and may be zero (broadcast) but never negative.
/// Entries at and beyond `rank` are zero.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrTensorDesc {
    /// `size_of::<SrTensorDesc>()` as the writer compiled it.
    pub struct_size: u64,
    /// One of the `SR_DTYPE_*` ids.
    pub dtype: SrDType,
    /// Number of dimensions, `0..=SR_MAX_RANK`.
    pub rank: u32,
    /// Extent of each dimension.
    pub shape: [i64; SR_MAX_RANK],
    /// Step of each dimension, in elements.
    pub strides: [i64; SR_MAX_RANK],
    /// The buffer the view reads or writes.
    pub buffer: *mut SrBuffer,
    /// Offset of element zero within `buffer`, in bytes.
    pub byte_offset: u64,
}

/// An (op, dtype) pair a backend implements. `dtype` is the dtype of the
/// op's first input (or its output when it has none).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SrOpSupport {
    /// Op id, see [`crate::ops::OpId`].
    pub op: u32,
    /// Dtype id.
    pub dtype: SrDType,
}

/// Device kinds. Append-only.
pub type SrDeviceKind = u32;
/// The host CPU.
pub const SR_DEVICE_CPU: SrDeviceKind = 0;
/// An NVIDIA GPU driven through CUDA.
pub const SR_DEVICE_CUDA: SrDeviceKind = 1;

/// A free-form key/value device attribute (e.g. `cpu.isa` = `avx512`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrAttribute {
    /// NUL-terminated key.
    pub key: *const c_char,
    /// NUL-terminated value.
    pub value: *const c_char,
}

/// What a device is. Strings and the attribute array are owned by the
/// backend and valid until it is destroyed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrDeviceProps {
    /// `size_of::<SrDeviceProps>()` as the writer compiled it.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// One of the `SR_DEVICE_*` kinds.
    pub kind: SrDeviceKind,
    /// Reserved, zero.
    pub reserved: u32,
    /// Human-readable name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: *const c_char,
    /// Total memory in bytes (0 when unknown).
    pub total_memory: u64,
    /// Free memory in bytes at the time of the query (0 when unknown).
    pub free_memory: u64,
    /// Compute capability major (0 when not applicable).
    pub compute_major: i32,
    /// Compute capability minor.
    pub compute_minor: i32,
    /// Driver version, e.g. `580.65.06`; may be null.
    pub driver_version: *const c_char,
    /// Versions of the libraries in use, e.g. `cublas 13.0; cudnn 9.10`; may be null.
    pub library_versions: *const c_char,
    /// Number of entries in `attributes`.
    pub attribute_count: u64,
    /// Free-form attributes.
    pub attributes: *const SrAttribute,
}

/// Filled by `sunrise_backend_probe_v1`: cheap, no device set-up.
/// The host zeroes the struct and sets `struct_size`; the plugin writes only
/// fields that fit within it. Strings are copied in, NUL-terminated, truncated.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrProbeInfo {
    /// `size_of::<SrProbeInfo>()` as the host compiled it.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// ABI major the plugin implements behind this entry point.
    pub abi_major: u32,
    /// ABI minor the plugin implements.
    pub abi_minor: u32,
    /// 1 when the plugin can run here, 0 when not.
    pub usable: u32,
    /// Preference among usable backends; higher wins under `SUNRISE_DEVICE=auto`.
    pub score: i32,
    /// Short backend name, e.g. `cuda`; also the `SUNRISE_DEVICE` prefix.
    pub name: [c_char; 32],
    /// When unusable: why, in one sentence.
    pub reason: [c_char; 256],
    /// When unusable: the missing component, e.g. `libcuda.so.1`.
    pub component: [c_char; 64],
    /// When unusable: what to do, e.g. `install the package libcuda1`.
    pub hint: [c_char; 128],
}

/// Log levels for [`SrHostApi::log`].
pub type SrLogLevel = u32;
/// An error.
pub const SR_LOG_ERROR: SrLogLevel = 1;
/// A warning.
pub const SR_LOG_WARN: SrLogLevel = 2;
/// Information.
pub const SR_LOG_INFO: SrLogLevel = 3;
/// Debugging detail.
pub const SR_LOG_DEBUG: SrLogLevel = 4;
/// Tracing detail.
pub const SR_LOG_TRACE: SrLogLevel = 5;

/// The host's table, handed to `sunrise_backend_init_v1` and valid until the
/// backend is destroyed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrHostApi {
    /// `size_of::<SrHostApi>()` as the host compiled it.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// ABI major of the host.
    pub abi_major: u32,
    /// ABI minor of the host.
    pub abi_minor: u32,
    /// Passed back to `log`.
    pub user_data: *mut c_void,
    /// Logs one line into the host's `tracing` output. May be null.
    /// `target` and `message` are NUL-terminated UTF-8, borrowed for the call.
    pub log: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            level: SrLogLevel,
            target: *const c_char,
            message: *const c_char,
        ),
    >,
}

/// Opaque backend instance.
#[repr(C)]
#[derive(Debug)]
pub struct SrBackend {
    _private: [u8; 0],
}

/// Returns null on success, else a status owned by the backend.
pub type SrStatusPtr = *mut SrStatus;

/// The backend's table, filled by `sunrise_backend_init_v1`. Every function
/// takes the `backend` instance first. Append-only: fields after
/// `execute` must be checked with [`has_field`] against `struct_size`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrPluginApi {
    /// `size_of::<SrPluginApi>()` as the plugin compiled it.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// ABI major of the plugin.
    pub abi_major: u32,
    /// ABI minor of the plugin.
    pub abi_minor: u32,
    /// The instance every call takes.
    pub backend: *mut SrBackend,
    /// Destroys the instance; nothing of it may be used afterwards.
    pub destroy: Option<unsafe extern "C" fn(backend: *mut SrBackend)>,
    /// Number of devices.
    pub device_count: Option<unsafe extern "C" fn(backend: *mut SrBackend) -> u32>,
    /// Describes device `device`; the host sets `out.struct_size`.
    pub device_props: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            device: u32,
            out: *mut SrDeviceProps,
        ) -> SrStatusPtr,
    >,
    /// The (op, dtype) pairs implemented; the array lives as long as the instance.
    pub supported_ops: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            count: *mut u64,
            pairs: *mut *const SrOpSupport,
        ) -> SrStatusPtr,
    >,
    /// Allocates `bytes` bytes (at least 64-byte aligned) on `device`.
    pub buffer_alloc: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            device: u32,
            bytes: u64,
            out: *mut *mut SrBuffer,
        ) -> SrStatusPtr,
    >,
    /// Frees a buffer this instance allocated.
    pub buffer_free: Option<unsafe extern "C" fn(backend: *mut SrBackend, buffer: *mut SrBuffer)>,
    /// Copies `len` bytes from host memory into the buffer at `offset`; synchronous.
    pub buffer_write: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            buffer: *mut SrBuffer,
            offset: u64,
            src: *const c_void,
            len: u64,
        ) -> SrStatusPtr,
    >,
    /// Copies `len` bytes from the buffer at `offset` into host memory; synchronous.
    pub buffer_read: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            buffer: *mut SrBuffer,
            offset: u64,
            dst: *mut c_void,
            len: u64,
        ) -> SrStatusPtr,
    >,
    /// Waits until all work queued on `device` is done.
    pub synchronize:
        Option<unsafe extern "C" fn(backend: *mut SrBackend, device: u32) -> SrStatusPtr>,
    /// Runs op `op` on `device`. `params` points to the op's params struct
    /// (or is null for ops without one). Outputs are written in place; an
    /// output may be read first where the op says so (accumulation).
    pub execute: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            device: u32,
            op: u32,
            params: *const c_void,
            inputs: *const SrTensorDesc,
            input_count: u64,
            outputs: *const SrTensorDesc,
            output_count: u64,
        ) -> SrStatusPtr,
    >,
    /// Since ABI 1.1: sets backend option `key` to `value` (NUL-terminated
    /// UTF-8) for every device of the instance, e.g. the CUDA backend's
    /// `tf32` = `on` or `off`. An unknown key or value is
    /// `SR_INVALID_ARGUMENT`. A host reads it only when `struct_size` covers it.
    pub set_option: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            key: *const c_char,
            value: *const c_char,
        ) -> SrStatusPtr,
    >,
}

/// `sunrise_backend_probe_v1`: fills `info`; never fails, never panics.
pub type SrProbeFnV1 = unsafe extern "C" fn(info: *mut SrProbeInfo);
/// `sunrise_backend_init_v1`: creates an instance and fills `plugin`
/// (whose `struct_size` the host set). Returns null or a status.
pub type SrInitFnV1 =
    unsafe extern "C" fn(host: *const SrHostApi, plugin: *mut SrPluginApi) -> SrStatusPtr;

/// True when a struct that reports `struct_size` contains the field that
/// ends at byte `field_end` (offset plus size) in this crate's definition.
pub const fn has_field(struct_size: u64, field_end: usize) -> bool {
    struct_size >= field_end as u64
}

/// The minor version in effect between two sides with the same major.
pub const fn negotiated_minor(a: u32, b: u32) -> u32 {
    if a < b {
        a
    } else {
        b
    }
}

/// Size in bytes of one element of `dtype`, or 0 for an unknown id.
pub const fn dtype_size(dtype: SrDType) -> usize {
    match dtype {
        SR_DTYPE_F32 => 4,
        SR_DTYPE_F64 => 8,
        SR_DTYPE_I64 => 8,
        SR_DTYPE_U8 => 1,
        _ => 0,
    }
}

impl SrTensorDesc {
    /// An all-zero descriptor of the current size.
    pub const fn empty() -> Self {
        SrTensorDesc {
            struct_size: std::mem::size_of::<SrTensorDesc>() as u64,
            dtype: 0,
            rank: 0,
            shape: [0; SR_MAX_RANK],
            strides: [0; SR_MAX_RANK],
            buffer: std::ptr::null_mut(),
            byte_offset: 0,
        }
    }
}

impl SrProbeInfo {
    /// A zeroed probe struct with `struct_size` set, as the host passes it.
    pub const fn new() -> Self {
        SrProbeInfo {
            struct_size: std::mem::size_of::<SrProbeInfo>() as u64,
            ext: std::ptr::null(),
            abi_major: 0,
            abi_minor: 0,
            usable: 0,
            score: 0,
            name: [0; 32],
            reason: [0; 256],
            component: [0; 64],
            hint: [0; 128],
        }
    }
}

impl Default for SrProbeInfo {
    fn default() -> Self {
        Self::new()
    }
}

impl SrPluginApi {
    /// A table with every entry null and `struct_size` set, as the host passes it.
    pub const fn empty() -> Self {
        SrPluginApi {
            struct_size: std::mem::size_of::<SrPluginApi>() as u64,
            ext: std::ptr::null(),
            abi_major: 0,
            abi_minor: 0,
            backend: std::ptr::null_mut(),
            destroy: None,
            device_count: None,
            device_props: None,
            supported_ops: None,
            buffer_alloc: None,
            buffer_free: None,
            buffer_write: None,
            buffer_read: None,
            synchronize: None,
            execute: None,
            set_option: None,
        }
    }
}

impl SrDeviceProps {
    /// A zeroed props struct with `struct_size` set.
    pub const fn empty() -> Self {
        SrDeviceProps {
            struct_size: std::mem::size_of::<SrDeviceProps>() as u64,
            ext: std::ptr::null(),
            kind: 0,
            reserved: 0,
            name: std::ptr::null(),
            total_memory: 0,
            free_memory: 0,
            compute_major: 0,
            compute_minor: 0,
            driver_version: std::ptr::null(),
            library_versions: std::ptr::null(),
            attribute_count: 0,
            attributes: std::ptr::null(),
        }
    }
}
