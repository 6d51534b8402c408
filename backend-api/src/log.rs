//! Logging that crosses the ABI. A plugin's records go to the host's
//! callback (set during init); a backend linked into the host logs through
//! whatever sink the host installed. Without a sink, records are dropped.

use std::sync::RwLock;

/// Severity of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Level {
    /// An error.
    Error = crate::abi::SR_LOG_ERROR,
    /// A warning.
    Warn = crate::abi::SR_LOG_WARN,
    /// Information.
    Info = crate::abi::SR_LOG_INFO,
    /// Debugging detail.
    Debug = crate::abi::SR_LOG_DEBUG,
    /// Tracing detail.
    Trace = crate::abi::SR_LOG_TRACE,
}

impl Level {
    /// From an ABI level; unknown levels read as `Trace`.
    pub const fn from_raw(level: u32) -> Level {
        match level {
            crate::abi::SR_LOG_ERROR => Level::Error,
            crate::abi::SR_LOG_WARN => Level::Warn,
            crate::abi::SR_LOG_INFO => Level::Info,
            crate::abi::SR_LOG_DEBUG => Level::Debug,
            _ => Level::Trace,
        }
    }
}

/// Receives `(level, target, message)`.
pub type Sink = Box<dyn Fn(Level, &str, &str) + Send + Sync>;

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Installs the sink for this copy of the crate (the host's process, or one
/// plugin), replacing any earlier one.
pub fn set_sink(sink: Sink) {
    let mut guard = SINK.write().unwrap_or_else(|e| e.into_inner());
    *guard = Some(sink);
}

/// Emits one record to the sink, if any.
pub fn log(level: Level, target: &str, message: &str) {
    let guard = SINK.read().unwrap_or_else(|e| e.into_inner());
    if let Some(sink) = guard.as_ref() {
        sink(level, target, message);
    }
}
