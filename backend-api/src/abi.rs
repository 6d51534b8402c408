//! The raw C ABI, version 1: every `#[repr(C)]` type and function-pointer
//! signature that crosses between the host (`sunrise` core) and a backend.
//!
//! Rules (see `ARCHITECTURE.md` and `../shared/DESIGN.md`):
//! - every table and argument struct starts with `struct_size` (bytes, as the
//!   writer compiled it) and an `ext` pointer reserved for extensions;
//! - tables are append-only: a reader checks `struct_size` before touching a
//!   field added after version 1.0 (see [`has_field`]);
//! - the doc comments of every item cbindgen exports become the C header's
//!   comments, so they are written for C readers too: `sizeof(T)`, plain
//!   names, no Rust paths or links (`tests/header.rs` checks).
//! - only C types cross: integers, floats, raw pointers, fixed arrays and
//!   `extern "C"` function pointers. No Rust type, no unwinding.
//!
//! `include/sunrise_backend.h` is generated from this file by cbindgen
//! (`cargo test -p sunrise-backend-api --test header` checks it is current).

use std::ffi::{c_char, c_void};

/// Major version of this ABI. A breaking change is a new major and new
/// _v2 entry points; a plugin may export both.
pub const SR_ABI_MAJOR: u32 = 1;
/// Minor version of this ABI. Minor versions only append; the version in
/// effect between a host and a plugin is the lower of the two.
pub const SR_ABI_MINOR: u32 = 3;
/// Highest tensor rank a descriptor carries.
pub const SR_MAX_RANK: usize = 8;

/// Name of the probe entry point (NUL-terminated, for `dlsym`).
pub const SR_PROBE_SYMBOL_V1: &[u8] = b"sunrise_backend_probe_v1\0";
/// Name of the init entry point (NUL-terminated, for `dlsym`).
pub const SR_INIT_SYMBOL_V1: &[u8] = b"sunrise_backend_init_v1\0";

/// Status codes. Append-only; 0 (SR_OK) is success and is never carried by
/// a status object: success is a null status pointer.
pub type SrStatusCode = i32;
/// Success.
pub const SR_OK: SrStatusCode = 0;
/// An argument was invalid: a shape, dtype, rank, input or output count,
/// params struct, handle or byte range the backend does not accept. The
/// host reports it as an error (no fallback).
pub const SR_INVALID_ARGUMENT: SrStatusCode = 1;
/// The backend does not implement this (op, dtype) pair (or this variant of
/// it); the host runs this one call on its CPU backend instead.
pub const SR_UNSUPPORTED: SrStatusCode = 2;
/// Device or host memory could not be allocated.
pub const SR_OUT_OF_MEMORY: SrStatusCode = 3;
/// A library or driver the backend needs is missing or too old.
pub const SR_UNAVAILABLE: SrStatusCode = 4;
/// The ABI versions of host and plugin cannot work together.
pub const SR_ABI_MISMATCH: SrStatusCode = 5;
/// The backend failed unexpectedly inside the call and caught the failure
/// at the ABI boundary instead of crashing the process (what a Rust
/// backend's caught panic becomes; a C++ backend may use it for an
/// exception).
pub const SR_PANIC: SrStatusCode = 6;
/// Any other failure inside the backend or its device.
pub const SR_INTERNAL: SrStatusCode = 7;

/// An error report. Allocated by the side that reports it; the receiver
/// reads it and frees it by calling its own `release` (never null) exactly
/// once. Strings are NUL-terminated UTF-8, owned by the status, and may be
/// null when absent.
#[repr(C)]
#[derive(Debug)]
pub struct SrStatus {
    /// sizeof(SrStatus) as the side that allocated it compiled it.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// One of the SR_* status codes, never SR_OK.
    pub code: SrStatusCode,
    /// Reserved, zero.
    pub reserved: u32,
    /// What went wrong.
    pub message: *const c_char,
    /// The component at fault, e.g. `libcudnn.so.9`; may be null.
    pub component: *const c_char,
    /// What the user can do, e.g. "install the package nvidia-cudnn"; may be null.
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
/// Element `(i0, ..., i[rank-1])` lives at byte
/// `byte_offset + (i0 * strides[0] + ... + i[rank-1] * strides[rank-1]) * elem_size`
/// of `buffer`, `elem_size` being 4 (f32), 8 (f64, i64) or 1 (u8). Strides
/// are in elements and may be 0 (a broadcast dim) but are never negative
/// from the host. Entries at and beyond `rank` are 0.
/// A rank-0 view is one element. A backend checks `rank` (at most
/// SR_MAX_RANK) before reading `shape` and `strides`, and that every element
/// lies inside `buffer`; it answers SR_INVALID_ARGUMENT otherwise.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrTensorDesc {
    /// sizeof(SrTensorDesc) as the writer compiled it.
    pub struct_size: u64,
    /// One of the SR_DTYPE_* ids.
    pub dtype: SrDType,
    /// Number of dimensions, 0 to SR_MAX_RANK.
    pub rank: u32,
    /// Extent of each dimension (>= 0).
    pub shape: [i64; SR_MAX_RANK],
    /// Step of each dimension, in elements (>= 0; 0 repeats the element).
    pub strides: [i64; SR_MAX_RANK],
    /// The buffer the view reads or writes.
    pub buffer: *mut SrBuffer,
    /// Offset of element zero within `buffer`, in bytes.
    pub byte_offset: u64,
}

/// An (op, dtype) pair a backend implements. `dtype` is the dtype of the
/// op's first input (of its output for `fill`, which has no input; of the u8
/// mask for `where`; of `src`, which is also its output's, for `index_add`,
/// whose first input is always the i64 index).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SrOpSupport {
    /// Op id, one of the SR_OP_* ids.
    pub op: u32,
    /// One of the SR_DTYPE_* ids.
    pub dtype: SrDType,
}

/// Device kinds. Append-only.
pub type SrDeviceKind = u32;
/// The host CPU.
pub const SR_DEVICE_CPU: SrDeviceKind = 0;
/// An NVIDIA GPU driven through CUDA.
pub const SR_DEVICE_CUDA: SrDeviceKind = 1;

/// A free-form key/value device attribute (e.g. "cpu.isa" = "avx512").
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrAttribute {
    /// NUL-terminated key.
    pub key: *const c_char,
    /// NUL-terminated value.
    pub value: *const c_char,
}

/// What a device is. The host zeroes it and sets `struct_size`; the backend
/// fills it. Strings and the attribute array are owned by the backend and
/// stay valid until it is destroyed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrDeviceProps {
    /// Set by the host to the size it passes (sizeof(SrDeviceProps) as it
    /// compiled it); the backend writes only fields that fit.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// One of the SR_DEVICE_* kinds.
    pub kind: SrDeviceKind,
    /// Reserved, zero.
    pub reserved: u32,
    /// Human-readable name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: *const c_char,
    /// Total memory in bytes (0 when unknown).
    pub total_memory: u64,
    /// Free memory in bytes at the time of the query (0 when unknown).
    pub free_memory: u64,
    /// Compute capability major (0 when not applicable).
    pub compute_major: i32,
    /// Compute capability minor.
    pub compute_minor: i32,
    /// Driver version, e.g. "580.65.06"; may be null.
    pub driver_version: *const c_char,
    /// Versions of the libraries in use, e.g. "cublas 13.0; cudnn 9.10"; may be null.
    pub library_versions: *const c_char,
    /// Number of entries in `attributes`.
    pub attribute_count: u64,
    /// `attribute_count` free-form attributes (may be null when the count is 0).
    pub attributes: *const SrAttribute,
}

/// Filled by sunrise_backend_probe_v1: cheap, no device set-up, no side
/// effect. The host zeroes the struct and sets `struct_size`; the plugin
/// writes only fields that fit within it. Strings are copied into the arrays,
/// NUL-terminated, truncated to fit.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrProbeInfo {
    /// sizeof(SrProbeInfo) as the host compiled it.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// ABI major the plugin implements behind this entry point.
    pub abi_major: u32,
    /// ABI minor the plugin implements.
    pub abi_minor: u32,
    /// 1 when the plugin can run here, 0 when not.
    pub usable: u32,
    /// Preference among usable backends; the highest wins under
    /// SUNRISE_DEVICE=auto. The built-in CPU backend scores 10.
    pub score: i32,
    /// Short backend name, e.g. "cuda": what SUNRISE_DEVICE=NAME and
    /// --device NAME select; the library is named libsunrise_backend_NAME.so.
    pub name: [c_char; 32],
    /// When unusable: why, in one sentence.
    pub reason: [c_char; 256],
    /// When unusable: the missing component, e.g. "libcuda.so.1".
    pub component: [c_char; 64],
    /// When unusable: what to do, e.g. "install the package libcuda1".
    pub hint: [c_char; 128],
}

/// Log levels of the host's `log` callback (SrHostApi).
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

/// The host's table, handed to sunrise_backend_init_v1 and valid until the
/// backend is destroyed. A plugin checks `struct_size` before it reads a
/// field added after ABI 1.0 (none yet).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrHostApi {
    /// sizeof(SrHostApi) as the host compiled it.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// ABI major of the host.
    pub abi_major: u32,
    /// ABI minor of the host.
    pub abi_minor: u32,
    /// Passed back to `log`.
    pub user_data: *mut c_void,
    /// Logs one line into the host's log (what SUNRISE_LOG shows). May be
    /// null. Callable from any thread, until the backend is destroyed.
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

/// Null on success, else a status owned by the backend that the host frees
/// through its `release`.
pub type SrStatusPtr = *mut SrStatus;

/// The backend's table, filled by sunrise_backend_init_v1. Every function
/// takes the `backend` instance first and may be called from any thread,
/// concurrently. Append-only: the fields up to `execute` are ABI 1.0; a
/// reader uses a later field only when
/// struct_size >= offsetof(SrPluginApi, field) + sizeof(field).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SrPluginApi {
    /// On entry to init: the size of the table the host passes. The plugin
    /// sets it to the size it filled: at most that, at least the 1.0 table.
    pub struct_size: u64,
    /// Extension chain; null in version 1.0.
    pub ext: *const c_void,
    /// ABI major of the plugin.
    pub abi_major: u32,
    /// ABI minor of the plugin.
    pub abi_minor: u32,
    /// The instance every call takes.
    pub backend: *mut SrBackend,
    /// Destroys the instance and what it still holds (buffers the host did
    /// not free included). Called once, after the host's last call into it;
    /// the host may keep the library loaded afterwards, so every thread the
    /// plugin started must be stopped here.
    pub destroy: Option<unsafe extern "C" fn(backend: *mut SrBackend)>,
    /// Number of devices.
    pub device_count: Option<unsafe extern "C" fn(backend: *mut SrBackend) -> u32>,
    /// Describes device `device` (0 to device_count - 1) into `out`, which
    /// the host zeroed and whose `struct_size` it set.
    pub device_props: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            device: u32,
            out: *mut SrDeviceProps,
        ) -> SrStatusPtr,
    >,
    /// The (op, dtype) pairs implemented, as `count` entries at `pairs`; the
    /// array lives as long as the instance. The host reads it once, after init.
    pub supported_ops: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            count: *mut u64,
            pairs: *mut *const SrOpSupport,
        ) -> SrStatusPtr,
    >,
    /// Allocates `bytes` bytes (at least 64-byte aligned) on `device` and
    /// stores the handle in `out`. 0 bytes still gives a valid handle.
    pub buffer_alloc: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            device: u32,
            bytes: u64,
            out: *mut *mut SrBuffer,
        ) -> SrStatusPtr,
    >,
    /// Frees a buffer this instance allocated. The host may free a buffer
    /// right after an execute that uses it: a backend that runs work
    /// asynchronously must keep the memory until that work is done.
    pub buffer_free: Option<unsafe extern "C" fn(backend: *mut SrBackend, buffer: *mut SrBuffer)>,
    /// Copies `len` bytes from host memory `src` into the buffer at `offset`.
    /// Synchronous: `src` may be reused when it returns, and later executes
    /// see the data. offset + len beyond the buffer is SR_INVALID_ARGUMENT.
    pub buffer_write: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            buffer: *mut SrBuffer,
            offset: u64,
            src: *const c_void,
            len: u64,
        ) -> SrStatusPtr,
    >,
    /// Copies `len` bytes from the buffer at `offset` into host memory `dst`.
    /// Synchronous, and the data reflect every execute issued before it on
    /// the buffer's device. offset + len beyond the buffer is
    /// SR_INVALID_ARGUMENT.
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
    /// Runs op `op` (an SR_OP_* id) on `device`. `params` points to the op's
    /// params struct (null for ops without one); `inputs` and `outputs` are
    /// arrays of `input_count` and `output_count` descriptors, borrowed for
    /// the call. Outputs are written in place; an output is read first only
    /// where the op says so (accumulation). Returns SR_UNSUPPORTED for a pair
    /// the backend lacks and SR_INVALID_ARGUMENT for a call it does not
    /// accept. May queue the work and return before it is done, provided
    /// later buffer_read calls see its results.
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
    /// "tf32" = "on" or "off". An unknown key or value is
    /// SR_INVALID_ARGUMENT. The host calls it only when `struct_size` covers
    /// it and it is not null.
    pub set_option: Option<
        unsafe extern "C" fn(
            backend: *mut SrBackend,
            key: *const c_char,
            value: *const c_char,
        ) -> SrStatusPtr,
    >,
}

/// The type of sunrise_backend_probe_v1: fills `info`; never fails, never
/// crashes.
pub type SrProbeFnV1 = unsafe extern "C" fn(info: *mut SrProbeInfo);
/// The type of sunrise_backend_init_v1: creates an instance and fills
/// `plugin` (whose `struct_size` the host set). Returns null or a status.
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
