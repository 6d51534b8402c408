//! The backend registry: the CPU backend linked into this library, the
//! plugins discovery found, device choice (`SUNRISE_DEVICE`), and the count
//! of ops that fell back to the CPU because a plugin lacks them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use sunrise_backend_api::Backend;
use sunrise_backend_cpu::CpuBackend;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::plugin::{self, Discovery, Outcome, SkipKind};

/// Preference of the built-in CPU backend under `auto` (plugins whose probe
/// scores higher win).
pub const CPU_SCORE: i32 = 10;

/// What a device request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The best usable device.
    Auto,
    /// A backend by name, optionally one ordinal (`cuda:1`).
    Named {
        /// Backend name.
        backend: String,
        /// Device index; `None` means 0.
        ordinal: Option<u32>,
    },
}

impl Request {
    /// Parses `auto`, `cpu`, `cuda`, `cuda:N`.
    pub fn parse(s: &str) -> Result<Request> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("auto") {
            return Ok(Request::Auto);
        }
        let (name, ord) = match s.split_once(':') {
            Some((n, o)) => {
                let o = o.parse::<u32>().map_err(|_| Error::DeviceUnavailable {
                    requested: s.to_string(),
                    reason: format!("{o:?} is not a device index"),
                    hint: Some("use NAME or NAME:INDEX, e.g. cuda:0".into()),
                })?;
                (n, Some(o))
            }
            None => (s, None),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::DeviceUnavailable {
                requested: s.to_string(),
                reason: "not a device name".into(),
                hint: Some("use auto, cpu, cuda or cuda:N".into()),
            });
        }
        Ok(Request::Named {
            backend: name.to_ascii_lowercase(),
            ordinal: ord,
        })
    }
}

/// A device the registry offers.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// The device.
    pub device: Device,
    /// Its backend's score under `auto`.
    pub score: i32,
}

/// Backends and devices of this process.
#[derive(Debug)]
pub struct Registry {
    discovery: Discovery,
    entries: Vec<DeviceEntry>,
    shadowed: Vec<String>,
}

static BUILTIN: OnceLock<Device> = OnceLock::new();
static REGISTRY: OnceLock<Registry> = OnceLock::new();
static FALLBACKS: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());

/// The linked CPU backend's device.
pub fn builtin_cpu() -> &'static Device {
    BUILTIN.get_or_init(|| {
        let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new());
        Device::make(backend, 0, "cpu".into(), true)
    })
}

/// The registry, discovering plugins on first use.
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| Registry::from_discovery(plugin::discover()))
}

impl Registry {
    /// Builds the device list from a discovery: the built-in CPU first, then
    /// each device of each loaded plugin. A plugin named `cpu` is shadowed
    /// by the built-in one (it stays loaded and listed, but is not chosen).
    pub fn from_discovery(discovery: Discovery) -> Registry {
        let mut entries = vec![DeviceEntry {
            device: builtin_cpu().clone(),
            score: CPU_SCORE,
        }];
        let mut shadowed = Vec::new();
        for p in &discovery.plugins {
            if p.name == "cpu" {
                shadowed.push(p.path.display().to_string());
                continue;
            }
            for i in 0..p.backend.device_count() {
                entries.push(DeviceEntry {
                    device: Device::make(p.backend.clone(), i, format!("{}:{i}", p.name), false),
                    score: p.probe.score,
                });
            }
        }
        Registry {
            discovery,
            entries,
            shadowed,
        }
    }

    /// What discovery searched and found.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// Every device, the built-in CPU first.
    pub fn devices(&self) -> &[DeviceEntry] {
        &self.entries
    }

    /// Paths of plugins named `cpu`, shadowed by the built-in backend.
    pub fn shadowed(&self) -> &[String] {
        &self.shadowed
    }

    /// The device `SUNRISE_DEVICE` asks for (default `auto`).
    pub fn default_device(&self) -> Result<Device> {
        let want = std::env::var("SUNRISE_DEVICE").unwrap_or_default();
        self.device(&want)
    }

    /// Resolves a request. `auto` takes the highest-scoring device and logs
    /// one line when a GPU plugin was skipped; an explicit request that
    /// cannot be met is an error saying why.
    pub fn device(&self, request: &str) -> Result<Device> {
        match Request::parse(request)? {
            Request::Auto => Ok(self.auto()),
            Request::Named { backend, ordinal } => self.named(request, &backend, ordinal),
        }
    }

    fn auto(&self) -> Device {
        let best = self
            .entries
            .iter()
            .max_by_key(|e| (e.score, std::cmp::Reverse(e.device.ordinal())))
            .map(|e| e.device.clone())
            .unwrap_or_else(|| builtin_cpu().clone());
        if best.is_builtin_cpu() {
            let skipped: Vec<String> = self
                .discovery
                .candidates
                .iter()
                .filter_map(|c| match &c.outcome {
                    Outcome::Skipped(r) if r.kind != SkipKind::Duplicate => {
                        Some(format!("{} ({})", c.path.display(), r))
                    }
                    _ => None,
                })
                .collect();
            if !skipped.is_empty() {
                tracing::info!(
                    "SUNRISE_DEVICE=auto: using the CPU; skipped plugin(s): {}",
                    skipped.join("; ")
                );
            }
        }
        best
    }

    fn named(&self, request: &str, backend: &str, ordinal: Option<u32>) -> Result<Device> {
        if backend == "cpu" {
            return match ordinal {
                None | Some(0) => Ok(builtin_cpu().clone()),
                Some(n) => Err(Error::DeviceUnavailable {
                    requested: request.into(),
                    reason: format!("the CPU backend has one device (cpu:0), not cpu:{n}"),
                    hint: None,
                }),
            };
        }
        let ord = ordinal.unwrap_or(0);
        let mine: Vec<&DeviceEntry> = self
            .entries
            .iter()
            .filter(|e| e.device.backend().name() == backend)
            .collect();
        if let Some(e) = mine.iter().find(|e| e.device.ordinal() == ord) {
            return Ok(e.device.clone());
        }
        if !mine.is_empty() {
            return Err(Error::DeviceUnavailable {
                requested: request.into(),
                reason: format!(
                    "backend {backend} has {} device(s), no index {ord}",
                    mine.len()
                ),
                hint: None,
            });
        }
        Err(self.why_missing(request, backend))
    }

    fn why_missing(&self, request: &str, backend: &str) -> Error {
        let file = format!("libsunrise_backend_{backend}.so");
        let skipped = self
            .discovery
            .candidates
            .iter()
            .find_map(|c| match &c.outcome {
                Outcome::Skipped(r) if c.path.file_name().is_some_and(|f| f == file.as_str()) => {
                    Some((c.path.clone(), r.clone()))
                }
                _ => None,
            });
        if let Some((path, r)) = skipped {
            let mut reason = format!("{} was found but skipped: {}", path.display(), r.message);
            if let Some(c) = &r.component {
                reason.push_str(&format!(" (missing: {c})"));
            }
            return Error::DeviceUnavailable {
                requested: request.into(),
                reason,
                hint: r.hint.clone(),
            };
        }
        let searched: Vec<String> = self
            .discovery
            .searched
            .iter()
            .map(|s| s.path.display().to_string())
            .collect();
        Error::DeviceUnavailable {
            requested: request.into(),
            reason: format!(
                "no backend plugin named {backend:?} ({file}) was found; searched: {}",
                if searched.is_empty() {
                    "nothing".into()
                } else {
                    searched.join(", ")
                }
            ),
            hint: Some(if backend == "cuda" {
                "install the package sunrise-backend-cuda (Debian contrib), or point SUNRISE_BACKEND_PATH at libsunrise_backend_cuda.so".into()
            } else {
                format!("point SUNRISE_BACKEND_PATH at the directory holding {file}")
            }),
        }
    }
}

/// Records one op that ran on the CPU because `backend` lacks it.
pub(crate) fn count_fallback(backend: &str, op: &str) {
    let mut m = FALLBACKS.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry((backend.to_string(), op.to_string())).or_insert(0) += 1;
}

/// Ops that fell back to the CPU so far: `(backend, op, count)`.
pub fn fallback_counts() -> Vec<(String, String, u64)> {
    let m = FALLBACKS.lock().unwrap_or_else(|e| e.into_inner());
    m.iter()
        .map(|((b, o), n)| (b.clone(), o.clone(), *n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(Request::parse("").unwrap(), Request::Auto);
        assert_eq!(Request::parse("AUTO").unwrap(), Request::Auto);
        assert_eq!(
            Request::parse("cuda:1").unwrap(),
            Request::Named {
                backend: "cuda".into(),
                ordinal: Some(1)
            }
        );
        assert!(Request::parse("cuda:x").is_err());
        assert!(Request::parse("../x").is_err());
    }
}
