//! The backend registry: the CPU backend linked into this library, the
//! plugins the search found, device choice (`SUNRISE_DEVICE`), plugin
//! lifecycle (which plugin is initialised when, and teardown), and the
//! count of ops that fell back to the CPU (see [`fallback_report`]).
//!
//! The process-wide registry ([`registry`]) scans the search path on first
//! use: every candidate is loaded and probed, none is initialised. A
//! plugin's `init` runs when its device is chosen ([`Registry::device`],
//! including `auto`, which initialises the best-scoring plugin first and
//! moves on when its init fails or it has no device) or when every device
//! is asked for ([`Registry::init_all`]). [`shutdown`] (called by the
//! `sunrise` command before it exits, and from an `atexit` handler for
//! every other program) destroys every initialised plugin once, in reverse
//! order of init. The rules in full are in [`crate::plugin`].

mod exit;
mod fallback;

use std::cmp::Reverse;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::time::Instant;

use sunrise_backend_api::Backend;
use sunrise_backend_cpu::CpuBackend;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::plugin::{self, Destroyed, Discovery, LoadedPlugin, Outcome, SkipKind, SkipReason};

pub(crate) use fallback::count_fallback;
pub use fallback::{fallback_counts, fallback_report, FallbackCount, FallbackReason};

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

/// Backends and devices of this process (or of one test): what the search
/// found, which plugins are initialised, and their devices. Every method
/// takes `&self`; the state sits behind one lock, held while a plugin's
/// `init` runs. Dropping a registry shuts it down ([`Registry::shutdown`]).
#[derive(Debug)]
pub struct Registry {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    discovery: Discovery,
    /// The built-in CPU, then each device of each initialised plugin (but
    /// one named `cpu`), in order of init.
    entries: Vec<DeviceEntry>,
    /// Set by [`Registry::shutdown`]: no plugin is initialised after it.
    closed: bool,
}

static BUILTIN: OnceLock<Device> = OnceLock::new();
static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The linked CPU backend's device.
pub fn builtin_cpu() -> &'static Device {
    BUILTIN.get_or_init(|| {
        let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new());
        Device::make(backend, 0, "cpu".into(), true)
    })
}

/// The process-wide registry. Its first use scans the search path (loads
/// and probes every candidate; initialises none).
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| Registry::from_discovery(plugin::scan()))
}

/// Shuts the process-wide registry down (see [`Registry::shutdown`]) if it
/// was ever used; returns the backends destroyed now, in that order. Safe
/// to call more than once, and from any thread; the `sunrise` command calls
/// it before it exits, and an `atexit` handler registered at the first init
/// calls it for every other program.
pub fn shutdown() -> Vec<String> {
    REGISTRY.get().map(Registry::shutdown).unwrap_or_default()
}

/// The `(score, is a plugin, earlier in search order, lower ordinal)` key
/// by which `auto` ranks devices and plugins: highest first.
type Rank = (i32, bool, Reverse<usize>, Reverse<u32>);

impl Registry {
    /// A registry over `discovery`: the built-in CPU and the devices of the
    /// plugins already initialised in it; every other usable plugin is
    /// initialised when asked for. A plugin named `cpu` is shadowed by the
    /// built-in one (listed, initialised by [`Registry::init_all`], never
    /// chosen).
    pub fn from_discovery(discovery: Discovery) -> Registry {
        let mut st = State {
            discovery,
            entries: vec![DeviceEntry {
                device: builtin_cpu().clone(),
                score: CPU_SCORE,
            }],
            closed: false,
        };
        let plugins = st.discovery.plugins.clone();
        for p in &plugins {
            st.add_devices(p);
        }
        Registry {
            state: Mutex::new(st),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_global(&self) -> bool {
        REGISTRY.get().is_some_and(|r| std::ptr::eq(r, self))
    }

    /// A snapshot of what the search found and what became of each
    /// candidate so far (initialise through the registry, not through it).
    pub fn discovery(&self) -> Discovery {
        self.lock().discovery.clone()
    }

    /// The devices available without initialising anything more: the
    /// built-in CPU first, then the devices of the plugins initialised so
    /// far. See [`Registry::init_all`] for every device.
    pub fn devices(&self) -> Vec<DeviceEntry> {
        self.lock().entries.clone()
    }

    /// Initialises every usable plugin not initialised yet (in search
    /// order, on the calling thread; a shadowed `cpu` plugin too, which
    /// adds no device) and returns every device. What `sunrise doctor` and
    /// `sunrise info` use to list devices.
    pub fn init_all(&self) -> Vec<DeviceEntry> {
        let mut st = self.lock();
        let names: Vec<String> = st
            .discovery
            .probed
            .iter()
            .filter(|p| !p.init_attempted())
            .map(|p| p.name.clone())
            .collect();
        for name in names {
            let _ = self.init_locked(&mut st, &name);
        }
        st.entries.clone()
    }

    /// The names of the usable plugins (probe said usable, init not failed),
    /// in search order, without initialising any: what `--device` accepts
    /// beside `auto` and `cpu`.
    pub fn plugin_names(&self) -> Vec<String> {
        let st = self.lock();
        st.discovery
            .candidates
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Loaded { name, .. } => Some(name.clone()),
                Outcome::Skipped(_) => None,
            })
            .collect()
    }

    /// Paths of usable plugins named `cpu`, shadowed by the built-in backend.
    pub fn shadowed(&self) -> Vec<String> {
        self.lock()
            .discovery
            .probed
            .iter()
            .filter(|p| p.name == "cpu")
            .map(|p| p.path.display().to_string())
            .collect()
    }

    /// The device `SUNRISE_DEVICE` asks for (default `auto`).
    pub fn default_device(&self) -> Result<Device> {
        let want = std::env::var("SUNRISE_DEVICE").unwrap_or_default();
        self.device(&want)
    }

    /// Resolves a request, initialising the one plugin it needs. `cpu`
    /// initialises nothing. A plugin name initialises that plugin. `auto`
    /// initialises the best-scoring usable plugin that beats the CPU; when
    /// its init fails or it has no device, the next; it logs one line when
    /// it ends at the CPU with plugins skipped. An explicit request that
    /// cannot be met is an error saying why.
    pub fn device(&self, request: &str) -> Result<Device> {
        let parsed = Request::parse(request)?;
        let mut st = self.lock();
        match parsed {
            Request::Auto => Ok(self.auto(&mut st)),
            Request::Named { backend, ordinal } => self.named(&mut st, request, &backend, ordinal),
        }
    }

    /// Destroys every initialised plugin once, in reverse order of init, on
    /// the calling thread; from then on no plugin is initialised and every
    /// call into a destroyed one fails with `Unavailable` (the CPU keeps
    /// working). Libraries stay loaded. Waits for calls still running in a
    /// plugin (up to [`plugin::DESTROY_WAIT`]) and skips, with a warning,
    /// one that is still busy. Returns the backends destroyed now.
    pub fn shutdown(&self) -> Vec<String> {
        let plugins = {
            let Some(mut st) = self.lock_within(plugin::DESTROY_WAIT) else {
                tracing::warn!("registry shutdown: the registry stays locked; nothing destroyed");
                return Vec::new();
            };
            st.closed = true;
            st.entries.truncate(1);
            let mut ps: Vec<LoadedPlugin> = st
                .discovery
                .probed
                .iter()
                .filter_map(|p| p.initialised().cloned())
                .collect();
            ps.sort_by_key(|p| Reverse(p.init_seq()));
            ps
        };
        let mut destroyed = Vec::new();
        for p in plugins {
            if p.destroy() == Destroyed::Now {
                destroyed.push(p.name.clone());
            }
        }
        destroyed
    }

    fn lock_within(&self, wait: std::time::Duration) -> Option<MutexGuard<'_, State>> {
        let deadline = Instant::now() + wait;
        loop {
            match self.state.try_lock() {
                Ok(g) => return Some(g),
                Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(TryLockError::WouldBlock) => return None,
            }
        }
    }

    /// Initialises the usable plugin `name` unless done; adds its devices.
    fn init_locked(
        &self,
        st: &mut State,
        name: &str,
    ) -> Option<std::result::Result<LoadedPlugin, SkipReason>> {
        if st.closed {
            return Some(Err(SkipReason::new(
                SkipKind::InitFailed,
                "the registry was shut down; no plugin is initialised after that",
            )));
        }
        let before = st.discovery.plugins.len();
        let result = st.discovery.init(name)?;
        let new: Vec<LoadedPlugin> = st.discovery.plugins[before..].to_vec();
        for p in &new {
            st.add_devices(p);
        }
        if !new.is_empty() && self.is_global() {
            exit::register_exit_hook();
        }
        Some(result)
    }

    fn auto(&self, st: &mut State) -> Device {
        // Each round initialises one plugin, never the same one twice.
        let mut tried: Vec<String> = Vec::new();
        loop {
            let best = st
                .entries
                .iter()
                .map(|e| (st.rank_of(&e.device, e.score), e.device.clone()))
                .max_by_key(|(rank, _)| *rank);
            let pending = st
                .pending()
                .filter(|(_, p)| !tried.contains(&p.name))
                .map(|(i, p)| {
                    (
                        (p.probe.score, true, Reverse(i), Reverse(0)),
                        p.name.clone(),
                    )
                })
                .max_by_key(|(rank, _)| *rank);
            match (best, pending) {
                (Some((have, _)), Some((want, name))) if want > have => {
                    let _ = self.init_locked(st, &name);
                    tried.push(name);
                }
                (Some((_, device)), _) => {
                    if device.is_builtin_cpu() {
                        st.log_auto_fallback();
                    }
                    return device;
                }
                // The built-in CPU is always the first entry.
                (None, _) => return builtin_cpu().clone(),
            }
        }
    }

    fn named(
        &self,
        st: &mut State,
        request: &str,
        backend: &str,
        ordinal: Option<u32>,
    ) -> Result<Device> {
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
        if st.closed {
            return Err(Error::DeviceUnavailable {
                requested: request.into(),
                reason: "the device registry was shut down (sunrise::registry::shutdown): \
                         no plugin is available any more"
                    .into(),
                hint: None,
            });
        }
        if let Some(Err(r)) = self.init_locked(st, backend) {
            return Err(st.init_failed(request, backend, &r));
        }
        let ord = ordinal.unwrap_or(0);
        let mine: Vec<&DeviceEntry> = st
            .entries
            .iter()
            .filter(|e| e.device.backend().name() == backend)
            .collect();
        if let Some(e) = mine.iter().find(|e| e.device.ordinal() == ord) {
            return Ok(e.device.clone());
        }
        if !mine.is_empty() || st.discovery.plugin(backend).is_some() {
            return Err(Error::DeviceUnavailable {
                requested: request.into(),
                reason: format!(
                    "backend {backend} has {} device(s), no index {ord}",
                    mine.len()
                ),
                hint: None,
            });
        }
        Err(st.why_missing(request, backend))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl State {
    /// Adds the devices of a newly initialised plugin (none for `cpu`).
    fn add_devices(&mut self, p: &LoadedPlugin) {
        if p.name == "cpu" {
            return;
        }
        for i in 0..p.backend.device_count() {
            self.entries.push(DeviceEntry {
                device: Device::make(p.backend.clone(), i, format!("{}:{i}", p.name), false),
                score: p.probe.score,
            });
        }
    }

    /// Usable plugins (but `cpu`) whose init has not been tried, with their
    /// position in search order.
    /// None once the registry is shut down.
    fn pending(&self) -> impl Iterator<Item = (usize, &plugin::ProbedPlugin)> + '_ {
        let open = !self.closed;
        self.discovery
            .probed
            .iter()
            .enumerate()
            .filter(move |(_, p)| open && p.name != "cpu")
            .filter(|(_, p)| {
                self.discovery.candidates.iter().any(|c| {
                    c.path == p.path && matches!(c.outcome, Outcome::Loaded { devices: None, .. })
                })
            })
    }

    fn rank_of(&self, device: &Device, score: i32) -> Rank {
        if device.is_builtin_cpu() {
            return (score, false, Reverse(0), Reverse(0));
        }
        let name = device.backend().name();
        let at = self
            .discovery
            .probed
            .iter()
            .position(|p| p.name == name)
            .unwrap_or(usize::MAX);
        (score, true, Reverse(at), Reverse(device.ordinal()))
    }

    fn log_auto_fallback(&self) {
        let skipped: Vec<String> = self
            .discovery
            .candidates
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Skipped(r) if r.kind != SkipKind::Duplicate => {
                    Some(format!("{} ({})", c.path.display(), r))
                }
                Outcome::Loaded {
                    name,
                    devices: Some(0),
                    ..
                } if name != "cpu" => Some(format!(
                    "{} (backend `{name}` initialised but has no device)",
                    c.path.display()
                )),
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

    fn init_failed(&self, request: &str, backend: &str, r: &SkipReason) -> Error {
        let path = self
            .discovery
            .probed_plugin(backend)
            .map_or_else(|| backend.to_string(), |p| p.path.display().to_string());
        found_but_skipped(request, &path, r)
    }

    fn why_missing(&self, request: &str, backend: &str) -> Error {
        let file = format!("libsunrise_backend_{backend}.so");
        let named_so = self
            .discovery
            .candidates
            .iter()
            .find(|c| c.file_stem() == Some(backend));
        match named_so.map(|c| (c, &c.outcome)) {
            Some((c, Outcome::Skipped(r))) => {
                return found_but_skipped(request, &c.path.display().to_string(), r)
            }
            Some((c, Outcome::Loaded { name, .. })) => {
                return Error::DeviceUnavailable {
                    requested: request.into(),
                    reason: format!(
                        "{} was found, but its probe calls the backend `{name}`, not `{backend}`: \
                         a plugin is selected by the name it gives itself",
                        c.path.display()
                    ),
                    hint: Some(format!("use --device {name} (or SUNRISE_DEVICE={name})")),
                }
            }
            None => {}
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

fn found_but_skipped(request: &str, path: &str, r: &SkipReason) -> Error {
    let mut reason = format!("{path} was found but skipped: {}", r.message);
    if let Some(c) = &r.component {
        reason.push_str(&format!(" (missing: {c})"));
    }
    Error::DeviceUnavailable {
        requested: request.into(),
        reason,
        hint: r.hint.clone(),
    }
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
