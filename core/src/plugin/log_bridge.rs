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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    type Seen = Arc<Mutex<Vec<(tracing::Level, String, String, String)>>>;

    /// Records every event: level, target, `source` and `message` fields.
    struct Recorder(Seen);

    #[derive(Default)]
    struct Fields {
        source: String,
        message: String,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "source" {
                self.source = value.to_string();
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => self.message = format!("{value:?}"),
                "source" => self.source = format!("{value:?}"),
                _ => {}
            }
        }
    }

    impl Subscriber for Recorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut f = Fields::default();
            event.record(&mut f);
            let m = event.metadata();
            let mut seen = self.0.lock().unwrap();
            seen.push((*m.level(), m.target().to_string(), f.source, f.message));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn plugin_records_reach_tracing_with_their_level_and_source() {
        let seen = Seen::default();
        tracing::subscriber::with_default(Recorder(seen.clone()), || {
            install_log_bridge();
            install_log_bridge();
            log::log(Level::Warn, "cuda", "no driver");
            log::log(Level::Debug, "cpu", "tier avx2");
        });
        let seen = seen.lock().unwrap();
        let ours: Vec<_> = seen
            .iter()
            .filter(|e| e.1 == "sunrise::backend")
            .cloned()
            .collect();
        assert_eq!(
            ours,
            [
                (
                    tracing::Level::WARN,
                    "sunrise::backend".into(),
                    "cuda".into(),
                    "no driver".into()
                ),
                (
                    tracing::Level::DEBUG,
                    "sunrise::backend".into(),
                    "cpu".into(),
                    "tier avx2".into()
                ),
            ]
        );
    }
}
