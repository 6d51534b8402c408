//! Routes log records from plugins (and from backends linked into this
//! process) into `tracing`.

use std::sync::Once;

use sunrise_backend_api::log::{self, Level};

/// Installs the sink of `sunrise_backend_api::log` that forwards every
/// record to `tracing` under the target `sunrise::backend`, with the
/// plugin's own target in the field `source`. Idempotent: only the first
/// call installs it.
pub fn install_log_bridge() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| log::set_sink(Box::new(forward)));
}

fn forward(level: Level, source: &str, message: &str) {
    match level {
        Level::Error => tracing::error!(target: "sunrise::backend", source, "{message}"),
        Level::Warn => tracing::warn!(target: "sunrise::backend", source, "{message}"),
        Level::Info => tracing::info!(target: "sunrise::backend", source, "{message}"),
        Level::Debug => tracing::debug!(target: "sunrise::backend", source, "{message}"),
        Level::Trace => tracing::trace!(target: "sunrise::backend", source, "{message}"),
    }
}
