//! `dlopen` from the C library, without a crate for it (shared by the
//! tests that load a plugin they built).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

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
