//! Teardown at process exit: an `atexit` handler that shuts the
//! process-wide registry down, for programs that never call
//! [`super::shutdown`] themselves.
//!
//! The handler is registered after each successful init of a plugin of the
//! process-wide registry. Handlers run in reverse order of registration, so
//! the last one registered runs before any handler that a plugin (or a
//! library it loaded, such as a GPU driver) registered during its `init`:
//! every plugin is destroyed while the libraries it uses are still set up.
//! Later runs of the handler find nothing left to destroy.

use std::ffi::c_int;

extern "C" {
    /// libc's `atexit(3)`.
    fn atexit(function: extern "C" fn()) -> c_int;
}

/// Runs at `exit`: [`super::shutdown`], with any panic stopped here (an
/// unwind out of an `extern "C"` function would abort the process).
extern "C" fn shutdown_at_exit() {
    let _ = std::panic::catch_unwind(super::shutdown);
}

/// Registers [`shutdown_at_exit`] with `atexit`.
pub(super) fn register_exit_hook() {
    // SAFETY: `atexit` is libc's; it only records the pointer, and the
    // function it is given is a plain `extern "C" fn()` defined in this
    // crate (so it stays loaded until exit) that never unwinds.
    let rc = unsafe { atexit(shutdown_at_exit) };
    if rc != 0 {
        tracing::warn!(
            "atexit refused the plugin teardown handler: plugins are destroyed only by \
             sunrise::registry::shutdown()"
        );
    }
}
