//! Errors on both sides of the ABI, and their conversion to and from
//! [`SrStatus`] objects (each freed by its own `release`, owned by the side
//! that made it).

use std::ffi::{c_char, CString};

use crate::abi::*;
use crate::types::read_c_str;

/// What kind of failure a [`BackendError`] is; mirrors the `SR_*` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// `SR_INVALID_ARGUMENT`
    InvalidArgument,
    /// `SR_UNSUPPORTED`
    Unsupported,
    /// `SR_OUT_OF_MEMORY`
    OutOfMemory,
    /// `SR_UNAVAILABLE`
    Unavailable,
    /// `SR_ABI_MISMATCH`
    AbiMismatch,
    /// `SR_PANIC`
    Panic,
    /// `SR_INTERNAL`, and any code this build does not know.
    Internal,
}

impl StatusCode {
    /// The ABI code.
    pub const fn to_raw(self) -> SrStatusCode {
        match self {
            StatusCode::InvalidArgument => SR_INVALID_ARGUMENT,
            StatusCode::Unsupported => SR_UNSUPPORTED,
            StatusCode::OutOfMemory => SR_OUT_OF_MEMORY,
            StatusCode::Unavailable => SR_UNAVAILABLE,
            StatusCode::AbiMismatch => SR_ABI_MISMATCH,
            StatusCode::Panic => SR_PANIC,
            StatusCode::Internal => SR_INTERNAL,
        }
    }

    /// From an ABI code; unknown codes read as `Internal`.
    pub const fn from_raw(code: SrStatusCode) -> Self {
        match code {
            SR_INVALID_ARGUMENT => StatusCode::InvalidArgument,
            SR_UNSUPPORTED => StatusCode::Unsupported,
            SR_OUT_OF_MEMORY => StatusCode::OutOfMemory,
            SR_UNAVAILABLE => StatusCode::Unavailable,
            SR_ABI_MISMATCH => StatusCode::AbiMismatch,
            SR_PANIC => StatusCode::Panic,
            _ => StatusCode::Internal,
        }
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            StatusCode::InvalidArgument => "invalid argument",
            StatusCode::Unsupported => "unsupported",
            StatusCode::OutOfMemory => "out of memory",
            StatusCode::Unavailable => "unavailable",
            StatusCode::AbiMismatch => "ABI mismatch",
            StatusCode::Panic => "panic",
            StatusCode::Internal => "internal error",
        }
    }
}

/// An error a backend reports: a code, a message, and optionally the
/// component at fault and what the user can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// The kind of failure.
    pub code: StatusCode,
    /// What went wrong.
    pub message: String,
    /// The component at fault, e.g. `libcudnn.so.9`.
    pub component: Option<String>,
    /// What to do, e.g. `install the package nvidia-cudnn`.
    pub hint: Option<String>,
}

/// Result of backend calls.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;

impl BackendError {
    /// An error with a code and message.
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        BackendError {
            code,
            message: message.into(),
            component: None,
            hint: None,
        }
    }

    /// `InvalidArgument` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::InvalidArgument, message)
    }

    /// `Unsupported` with a message.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::Unsupported, message)
    }

    /// Adds the component at fault.
    pub fn with_component(mut self, component: impl Into<String>) -> Self {
        self.component = Some(component.into());
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Moves this error into a heap status object that the receiver frees
    /// by calling its `release`.
    pub fn into_raw(self) -> *mut SrStatus {
        fn c(s: &str) -> *const c_char {
            CString::new(s.replace('\0', " "))
                .unwrap_or_default()
                .into_raw()
        }
        let status = Box::new(SrStatus {
            struct_size: std::mem::size_of::<SrStatus>() as u64,
            ext: std::ptr::null(),
            code: self.code.to_raw(),
            reserved: 0,
            message: c(&self.message),
            component: self.component.as_deref().map_or(std::ptr::null(), c),
            hint: self.hint.as_deref().map_or(std::ptr::null(), c),
            release: Some(release_status),
        });
        Box::into_raw(status)
    }

    /// Takes a status the other side returned: `Ok` for null, else the
    /// error, after which the status is released through its own `release`.
    ///
    /// # Safety
    /// `status` must be null or a live status object not yet released.
    pub unsafe fn from_raw(status: *mut SrStatus) -> Result<()> {
        if status.is_null() {
            return Ok(());
        }
        // SAFETY: non-null and live per the caller.
        let s = unsafe { &*status };
        let err = if s.struct_size < std::mem::size_of::<SrStatus>() as u64 {
            BackendError::new(
                StatusCode::AbiMismatch,
                format!("status object too small ({} bytes)", s.struct_size),
            )
        } else {
            // SAFETY: the ABI says these are null or NUL-terminated.
            unsafe {
                BackendError {
                    code: StatusCode::from_raw(s.code),
                    message: read_c_str(s.message).unwrap_or_default(),
                    component: read_c_str(s.component),
                    hint: read_c_str(s.hint),
                }
            }
        };
        if let Some(release) = s.release {
            // SAFETY: released exactly once, by its owner's function.
            unsafe { release(status) };
        }
        Err(err)
    }
}

/// `release` of statuses made by [`BackendError::into_raw`].
unsafe extern "C" fn release_status(status: *mut SrStatus) {
    if status.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `status` came from `Box::into_raw` in `into_raw`, and its
        // strings from `CString::into_raw`; each is freed once here.
        unsafe {
            let s = Box::from_raw(status);
            for p in [s.message, s.component, s.hint] {
                if !p.is_null() {
                    drop(CString::from_raw(p as *mut c_char));
                }
            }
        }
    });
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)?;
        if let Some(c) = &self.component {
            write!(f, " (component: {c})")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BackendError {}

/// A panic payload as text.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip() {
        let e = BackendError::new(StatusCode::Unavailable, "no driver")
            .with_component("libcuda.so.1")
            .with_hint("install libcuda1");
        let raw = e.clone().into_raw();
        // SAFETY: fresh status from into_raw.
        let back = unsafe { BackendError::from_raw(raw) };
        assert_eq!(back, Err(e));
        // SAFETY: null is success.
        let ok = unsafe { BackendError::from_raw(std::ptr::null_mut()) };
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn interior_nul_does_not_lose_the_message() {
        let raw = BackendError::invalid("a\0b").into_raw();
        // SAFETY: fresh status.
        let back = unsafe { BackendError::from_raw(raw) }.unwrap_err();
        assert_eq!(back.message, "a b");
    }
}
