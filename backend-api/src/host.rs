//! The host's side of the tables: [`TableBackend`] wraps an initialised
//! `SrPluginApi` in the [`Backend`] trait, so the core drives a plugin
//! exactly as it drives the linked CPU backend.

use std::any::Any;
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::*;
use crate::backend::{Backend, OpCall};
use crate::error::{panic_message, BackendError, Result, StatusCode};
use crate::log::{self, Level};
use crate::types::{read_c_str, BufferHandle, DeviceInfo};

/// The host table this build hands to plugins; its `log` forwards to the
/// host process's sink ([`log::set_sink`]).
pub fn host_table() -> SrHostApi {
    SrHostApi {
        struct_size: std::mem::size_of::<SrHostApi>() as u64,
        ext: std::ptr::null(),
        abi_major: SR_ABI_MAJOR,
        abi_minor: SR_ABI_MINOR,
        user_data: std::ptr::null_mut(),
        log: Some(host_log),
    }
}

unsafe extern "C" fn host_log(
    _user: *mut c_void,
    level: SrLogLevel,
    target: *const c_char,
    message: *const c_char,
) {
    let _ = catch_unwind(|| {
        // SAFETY: the plugin passes null or NUL-terminated strings.
        let (t, m) = unsafe { (read_c_str(target), read_c_str(message)) };
        log::log(
            Level::from_raw(level),
            t.as_deref().unwrap_or("plugin"),
            m.as_deref().unwrap_or(""),
        );
    });
}

/// A plugin's table, wrapped. Destroys the instance on drop, then drops
/// `keep_alive` (the loaded library), in that order.
pub struct TableBackend {
    api: SrPluginApi,
    name: String,
    supported: Vec<SrOpSupport>,
    abi_minor: u32,
    keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for TableBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableBackend")
            .field("name", &self.name)
            .field("abi_minor", &self.abi_minor)
            .field("ops", &self.supported.len())
            .finish()
    }
}

// SAFETY: the ABI requires plugins to accept calls from any thread.
unsafe impl Send for TableBackend {}
// SAFETY: as above.
unsafe impl Sync for TableBackend {}

fn missing(what: &str) -> BackendError {
    BackendError::new(
        StatusCode::AbiMismatch,
        format!("plugin table lacks `{what}`"),
    )
}

impl TableBackend {
    /// Calls a plugin's `init` and wraps the table it fills.
    ///
    /// # Safety
    /// `init` is a `sunrise_backend_init_v1` that follows the ABI, and
    /// `keep_alive` keeps its code loaded.
    pub unsafe fn init(
        name: &str,
        init: SrInitFnV1,
        keep_alive: Option<Box<dyn Any + Send + Sync>>,
    ) -> Result<Self> {
        let host = Box::new(host_table());
        let mut api = SrPluginApi::empty();
        // SAFETY: both tables are valid for the call; init runs inside the
        // plugin's own catch_unwind, and ours catches what might still leak.
        let status = catch_unwind(AssertUnwindSafe(|| unsafe {
            init(&*host as *const SrHostApi, &mut api)
        }))
        .map_err(|p| {
            BackendError::new(
                StatusCode::Panic,
                format!("init unwound across the ABI: {}", panic_message(p.as_ref())),
            )
        })?;
        // The host table must outlive the plugin: it is leaked on purpose
        // (one small struct per loaded plugin).
        std::mem::forget(host);
        // SAFETY: init returns null or a live status.
        unsafe { BackendError::from_raw(status) }?;
        let mut this = TableBackend {
            api,
            name: name.to_string(),
            supported: Vec::new(),
            abi_minor: 0,
            keep_alive,
        };
        this.check_table()?;
        this.abi_minor = negotiated_minor(SR_ABI_MINOR, this.api.abi_minor);
        this.supported = this.read_supported()?;
        Ok(this)
    }

    fn check_table(&self) -> Result<()> {
        if self.api.abi_major != SR_ABI_MAJOR {
            return Err(BackendError::new(
                StatusCode::AbiMismatch,
                format!("plugin table is ABI major {}", self.api.abi_major),
            ));
        }
        // A plugin built against a later minor has a larger table; one built
        // against 1.0 has exactly the fields up to `execute`.
        let v1_0 = std::mem::offset_of!(SrPluginApi, execute) + std::mem::size_of::<usize>();
        if !has_field(self.api.struct_size, v1_0) {
            return Err(BackendError::new(
                StatusCode::AbiMismatch,
                format!("plugin table too small ({} bytes)", self.api.struct_size),
            ));
        }
        let a = &self.api;
        let checks: [(&str, bool); 10] = [
            ("destroy", a.destroy.is_some()),
            ("device_count", a.device_count.is_some()),
            ("device_props", a.device_props.is_some()),
            ("supported_ops", a.supported_ops.is_some()),
            ("buffer_alloc", a.buffer_alloc.is_some()),
            ("buffer_free", a.buffer_free.is_some()),
            ("buffer_write", a.buffer_write.is_some()),
            ("buffer_read", a.buffer_read.is_some()),
            ("synchronize", a.synchronize.is_some()),
            ("execute", a.execute.is_some()),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            Some((name, _)) => Err(missing(name)),
            None if a.backend.is_null() => Err(missing("backend")),
            None => Ok(()),
        }
    }

    fn read_supported(&self) -> Result<Vec<SrOpSupport>> {
        let f = self
            .api
            .supported_ops
            .ok_or_else(|| missing("supported_ops"))?;
        let mut n = 0u64;
        let mut p: *const SrOpSupport = std::ptr::null();
        // SAFETY: the table's own instance and two out-pointers.
        unsafe { BackendError::from_raw(f(self.api.backend, &mut n, &mut p)) }?;
        if n == 0 || p.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: the plugin returned `n` pairs at `p`, live with the instance.
        Ok(unsafe { std::slice::from_raw_parts(p, n as usize) }.to_vec())
    }

    /// The ABI minor in effect with this plugin.
    pub fn abi_minor(&self) -> u32 {
        self.abi_minor
    }
}

impl Drop for TableBackend {
    fn drop(&mut self) {
        if let Some(destroy) = self.api.destroy {
            // SAFETY: the instance is destroyed once, before its library unloads.
            let _ = catch_unwind(AssertUnwindSafe(|| unsafe { destroy(self.api.backend) }));
        }
        drop(self.keep_alive.take());
    }
}

impl Backend for TableBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn device_count(&self) -> u32 {
        let Some(f) = self.api.device_count else {
            return 0;
        };
        // SAFETY: the table's own instance.
        catch_unwind(AssertUnwindSafe(|| unsafe { f(self.api.backend) })).unwrap_or(0)
    }

    fn device_info(&self, device: u32) -> Result<DeviceInfo> {
        let f = self
            .api
            .device_props
            .ok_or_else(|| missing("device_props"))?;
        let mut p = SrDeviceProps::empty();
        // SAFETY: the table's own instance and a props struct with struct_size.
        unsafe { BackendError::from_raw(f(self.api.backend, device, &mut p)) }?;
        let attrs = if p.attributes.is_null() {
            &[][..]
        } else {
            // SAFETY: the plugin returned `attribute_count` entries.
            unsafe { std::slice::from_raw_parts(p.attributes, p.attribute_count as usize) }
        };
        // SAFETY: strings are null or NUL-terminated and live with the instance.
        unsafe {
            Ok(DeviceInfo {
                kind: p.kind,
                name: read_c_str(p.name).unwrap_or_default(),
                total_memory: p.total_memory,
                free_memory: p.free_memory,
                compute_capability: (p.compute_major != 0)
                    .then_some((p.compute_major, p.compute_minor)),
                driver_version: read_c_str(p.driver_version),
                library_versions: read_c_str(p.library_versions),
                attributes: attrs
                    .iter()
                    .map(|a| {
                        (
                            read_c_str(a.key).unwrap_or_default(),
                            read_c_str(a.value).unwrap_or_default(),
                        )
                    })
                    .collect(),
            })
        }
    }

    fn supported_ops(&self) -> &[SrOpSupport] {
        &self.supported
    }

    fn alloc(&self, device: u32, bytes: usize) -> Result<BufferHandle> {
        let f = self
            .api
            .buffer_alloc
            .ok_or_else(|| missing("buffer_alloc"))?;
        let mut out: *mut SrBuffer = std::ptr::null_mut();
        // SAFETY: the table's own instance and an out-pointer.
        unsafe { BackendError::from_raw(f(self.api.backend, device, bytes as u64, &mut out)) }?;
        BufferHandle::from_raw(out)
            .ok_or_else(|| BackendError::new(StatusCode::Internal, "plugin returned a null buffer"))
    }

    unsafe fn free(&self, buffer: BufferHandle) {
        if let Some(f) = self.api.buffer_free {
            // SAFETY: per the caller, a live buffer of this plugin, freed once.
            unsafe { f(self.api.backend, buffer.as_raw()) };
        }
    }

    unsafe fn write(&self, buffer: BufferHandle, offset: usize, src: &[u8]) -> Result<()> {
        let f = self
            .api
            .buffer_write
            .ok_or_else(|| missing("buffer_write"))?;
        // SAFETY: live buffer per the caller; `src` is borrowed for the call.
        unsafe {
            BackendError::from_raw(f(
                self.api.backend,
                buffer.as_raw(),
                offset as u64,
                src.as_ptr() as *const c_void,
                src.len() as u64,
            ))
        }
    }

    unsafe fn read(&self, buffer: BufferHandle, offset: usize, dst: &mut [u8]) -> Result<()> {
        let f = self.api.buffer_read.ok_or_else(|| missing("buffer_read"))?;
        // SAFETY: live buffer per the caller; `dst` is borrowed for the call.
        unsafe {
            BackendError::from_raw(f(
                self.api.backend,
                buffer.as_raw(),
                offset as u64,
                dst.as_mut_ptr() as *mut c_void,
                dst.len() as u64,
            ))
        }
    }

    fn synchronize(&self, device: u32) -> Result<()> {
        let f = self.api.synchronize.ok_or_else(|| missing("synchronize"))?;
        // SAFETY: the table's own instance.
        unsafe { BackendError::from_raw(f(self.api.backend, device)) }
    }

    fn set_option(&self, key: &str, value: &str) -> Result<()> {
        let end = std::mem::offset_of!(SrPluginApi, set_option) + std::mem::size_of::<usize>();
        let f = match self.api.set_option {
            Some(f) if has_field(self.api.struct_size, end) => f,
            _ => {
                return Err(BackendError::unsupported(format!(
                    "plugin {} implements ABI 1.{}, which has no options (set_option is 1.1)",
                    self.name, self.api.abi_minor
                )))
            }
        };
        let to_c = |s: &str, what: &str| {
            std::ffi::CString::new(s)
                .map_err(|_| BackendError::invalid(format!("set_option: {what} holds a NUL byte")))
        };
        let (k, v) = (to_c(key, "key")?, to_c(value, "value")?);
        // SAFETY: the table's own instance; both strings outlive the call.
        unsafe { BackendError::from_raw(f(self.api.backend, k.as_ptr(), v.as_ptr())) }
    }

    unsafe fn execute(&self, device: u32, call: &OpCall<'_>) -> Result<()> {
        let f = self.api.execute.ok_or_else(|| missing("execute"))?;
        // SAFETY: descriptors are valid per the caller; params point into
        // `call`, which outlives this call.
        unsafe {
            BackendError::from_raw(f(
                self.api.backend,
                device,
                call.op as u32,
                call.params.as_ptr(),
                call.inputs.as_ptr(),
                call.inputs.len() as u64,
                call.outputs.as_ptr(),
                call.outputs.len() as u64,
            ))
        }
    }
}
