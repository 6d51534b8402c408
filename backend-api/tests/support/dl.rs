//! `dlopen` from the C library, without a crate for it (shared by the
//! tests that load a plugin they built).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

use sunrise_backend_api::abi::{
    SrInitFnV1, SrProbeFnV1, SrProbeInfo, SR_INIT_SYMBOL_V1, SR_PROBE_SYMBOL_V1,
};
use sunrise_backend_api::host::TableBackend;
use sunrise_backend_api::ProbeReport;

const RTLD_NOW: c_int = 2;

extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *mut c_char;
    fn dlclose(handle: *mut c_void) -> c_int;
}

/// The last `dlerror` message.
fn last_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated thread-local string.
    let p = unsafe { dlerror() };
    if p.is_null() {
        "unknown dl error".to_owned()
    } else {
        // SAFETY: non-null and NUL-terminated, read before the next dl call.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// A shared object loaded with `RTLD_NOW | RTLD_LOCAL`, closed on drop.
#[derive(Debug)]
pub struct Library(*mut c_void);

// SAFETY: a dlopen handle may be used and closed from any thread.
unsafe impl Send for Library {}
// SAFETY: dlsym on one handle from several threads is thread-safe.
unsafe impl Sync for Library {}

impl Library {
    /// Loads the shared object at `path`.
    pub fn open(path: &Path) -> Result<Library, String> {
        let c = CString::new(path.to_str().ok_or("non-UTF-8 path")?).map_err(|e| e.to_string())?;
        // SAFETY: a NUL-terminated path; RTLD_LOCAL is 0.
        let handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW) };
        if handle.is_null() {
            Err(last_error())
        } else {
            Ok(Library(handle))
        }
    }

    /// The address of `name` (NUL-terminated).
    pub fn symbol(&self, name: &[u8]) -> Result<*mut c_void, String> {
        let name = CStr::from_bytes_with_nul(name).map_err(|e| e.to_string())?;
        // SAFETY: a live handle and a NUL-terminated name.
        let p = unsafe { dlsym(self.0, name.as_ptr()) };
        if p.is_null() {
            Err(last_error())
        } else {
            Ok(p)
        }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: the handle is live and closed once; whoever holds this
        // keeps every pointer into the library alive no longer than it.
        unsafe { dlclose(self.0) };
    }
}

/// Loads a built plugin: its probe's report and the initialised backend.
pub fn load_backend(so: &Path) -> (ProbeReport, TableBackend) {
    let lib = Library::open(so).unwrap_or_else(|e| panic!("dlopen: {e}"));
    let probe = lib.symbol(SR_PROBE_SYMBOL_V1).expect("probe symbol");
    let init = lib.symbol(SR_INIT_SYMBOL_V1).expect("init symbol");
    // SAFETY: a sunrise plugin defines these symbols with the ABI's
    // prototypes (a C plugin through the header, which the compiler
    // checked; a Rust one through export_backend!).
    let (probe, init) = unsafe {
        (
            std::mem::transmute::<*mut std::ffi::c_void, SrProbeFnV1>(probe),
            std::mem::transmute::<*mut std::ffi::c_void, SrInitFnV1>(init),
        )
    };
    let mut info = SrProbeInfo::new();
    // SAFETY: a zeroed probe struct with struct_size set, as the ABI says.
    unsafe { probe(&mut info) };
    let report = ProbeReport::read_from(&info);
    // SAFETY: `init` is the plugin's entry point; `lib` keeps it loaded and
    // is dropped by the backend after `destroy`.
    let backend = unsafe { TableBackend::init(&report.name, init, Some(Box::new(lib))) }
        .unwrap_or_else(|e| panic!("init: {e:?}"));
    (report, backend)
}
