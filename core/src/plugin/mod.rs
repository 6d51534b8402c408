//! Plugin discovery, loading and lifecycle: finds `libsunrise_backend_*.so`
//! files on the search path, loads each with `RTLD_NOW | RTLD_LOCAL`, probes
//! it through `sunrise_backend_probe_v1`, initialises the ones asked for
//! through `sunrise_backend_init_v1`, and wraps each as a
//! [`Backend`](sunrise_backend_api::Backend).
//!
//! Search order (see `DESIGN.md`, "Discovery and device choice"):
//! 1. each entry of `SUNRISE_BACKEND_PATH` (colon-separated; a directory or
//!    a shared-object file; empty entries ignored, relative ones skipped);
//! 2. the system directory compiled in at build time from the
//!    `SUNRISE_BACKEND_DIR` environment variable (the Debian build sets it to
//!    `/usr/lib/<multiarch>/sunrise/backends-1`); none when it was unset;
//! 3. the directory of the running executable.
//!
//! # Lifecycle
//!
//! What the host calls when, for the plugins of the process-wide registry
//! ([`crate::registry`]): probe → init → calls → destroy → unload.
//!
//! 1. **Probe**, once per file, at the registry's first use (the first
//!    `Device::parse`/`Device::from_env`, or `sunrise --help`), on that
//!    thread: the file is checked (ELF), `dlopen`ed and its
//!    `sunrise_backend_probe_v1` called. A file that fails to load, or whose
//!    probe says unusable, or whose name an earlier usable plugin has, is
//!    recorded with its [`SkipReason`] and closed again: probe is all that
//!    ran in it. Probe must be cheap: no device set-up, no threads.
//! 2. **Init**, at most once per loaded library, only when asked for: when
//!    its device is chosen (`--device NAME`, `SUNRISE_DEVICE=NAME`, or
//!    `auto` when its probe score is the highest left and above the built-in
//!    CPU's; `auto` tries the next plugin when an init fails or finds no
//!    device), or when every device is listed (`Registry::init_all`:
//!    `sunrise doctor`, `sunrise info`). Never with `--device cpu`. It runs
//!    on the thread that asked, with the registry locked, so no two inits
//!    run at once and nothing calls into the plugin before its init
//!    returns. A failed init is recorded ([`SkipKind::InitFailed`]) and
//!    never retried.
//! 3. **Calls** to the table's functions, after init returned, from any
//!    thread and concurrently: the host does not serialise them (the ABI
//!    requires plugins to accept calls from any thread).
//! 4. **Destroy**, exactly once per initialised instance, in reverse order
//!    of init, on the thread that shuts down: `sunrise::registry::shutdown()`
//!    (the `sunrise` command calls it before it exits; for other programs
//!    an `atexit` handler, registered after each init and so run before any
//!    exit handler the plugin or its libraries registered during init, calls
//!    it). The host lets no new call in once destroy begins and waits for
//!    the calls still running to return ([`DESTROY_WAIT`] at most: a plugin
//!    still busy after that is logged and not destroyed, the one case in
//!    which an initialised instance is not destroyed; so is a process that
//!    ends without `exit`, e.g. by a signal). After destroy, calls through
//!    handles that outlive it (a tensor dropped late frees its buffer) are
//!    answered by the host with `Unavailable` and never reach the plugin;
//!    buffers still allocated are the plugin's to release in destroy.
//! 5. **Unload**: a library whose init ran (successfully or not) is never
//!    unmapped: it is marked `RTLD_NODELETE` before init, so it stays until
//!    the process ends, because code of it may still be referenced after
//!    destroy (threads the plugin started, thread-local destructors and
//!    exit handlers its runtime registered, what a panic in it left
//!    behind). A library only probed is closed when its last handle goes.
//!    Plugin code (probe, init) runs one plugin at a time process-wide.
//!
//! Outside the registry ([`load_plugin`], [`discover_in`]: tests and
//! embedders) the caller owns each instance: it is destroyed by
//! [`LoadedPlugin::destroy`] or when its last handle is dropped. [`scan_in`]
//! loads and probes without initialising, as the registry does; a
//! `Registry` built from it with `Registry::from_discovery` follows the
//! rules above, except that dropping it shuts it down.
//!
//! **Architecture invariant:** plugins are never loaded from the current
//! working directory, and no plugin, however broken, takes the process down:
//! every failure becomes a [`SkipReason`] on its [`Candidate`].

mod discovery;
mod elf;
mod instance;
mod loader;
mod log_bridge;

use std::fmt;
use std::path::PathBuf;

pub use discovery::{discover, discover_in, scan, scan_in, search_paths, system_dir};
pub use instance::{Destroyed, LoadedPlugin, ProbedPlugin, DESTROY_WAIT};
pub use loader::load_plugin;
pub use log_bridge::install_log_bridge;

/// The environment variable that lists extra plugin locations.
pub const BACKEND_PATH_VAR: &str = "SUNRISE_BACKEND_PATH";

/// Where a search path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathOrigin {
    /// An entry of `SUNRISE_BACKEND_PATH`.
    Env,
    /// The system directory compiled in at build time.
    System,
    /// The directory of the running executable.
    ExeDir,
}

impl fmt::Display for PathOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathOrigin::Env => BACKEND_PATH_VAR,
            PathOrigin::System => "system directory",
            PathOrigin::ExeDir => "executable's directory",
        })
    }
}

/// One place searched for plugins: a directory, or (from
/// `SUNRISE_BACKEND_PATH`) a shared-object file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    /// The directory or file.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: PathOrigin,
    /// Whether it existed when searched (always false for an ignored path).
    pub exists: bool,
    /// Why it was not (fully) searched, e.g. a relative path or an
    /// unreadable directory.
    pub note: Option<String>,
}

impl SearchPath {
    /// A search path from `origin`, with `exists` taken from the file system
    /// (a relative path is never looked at: it is marked absent and noted).
    pub fn new(path: impl Into<PathBuf>, origin: PathOrigin) -> Self {
        let path = path.into();
        if path.is_relative() {
            return SearchPath {
                path,
                origin,
                exists: false,
                note: Some(RELATIVE_NOTE.to_string()),
            };
        }
        let exists = path.exists();
        SearchPath {
            path,
            origin,
            exists,
            note: None,
        }
    }
}

/// The note recorded on a relative `SUNRISE_BACKEND_PATH` entry.
pub const RELATIVE_NOTE: &str =
    "relative path ignored: plugins are never loaded from the working directory";

/// Why a candidate was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipKind {
    /// Not a loadable shared object (not ELF, wrong architecture, a
    /// dependency missing): `dlopen` refused it.
    NotLoadable,
    /// A required entry point is missing: not a sunrise backend.
    MissingSymbol,
    /// The plugin speaks another ABI major, or broke the ABI contract.
    AbiMismatch,
    /// The plugin's probe says it cannot run here.
    Unusable,
    /// `init` returned an error (including a panic caught at the boundary).
    InitFailed,
    /// A usable plugin of the same name was found earlier in search order.
    Duplicate,
}

impl SkipKind {
    /// Stable lower-case name, e.g. for `sunrise doctor --json`.
    pub const fn name(self) -> &'static str {
        match self {
            SkipKind::NotLoadable => "not_loadable",
            SkipKind::MissingSymbol => "missing_symbol",
            SkipKind::AbiMismatch => "abi_mismatch",
            SkipKind::Unusable => "unusable",
            SkipKind::InitFailed => "init_failed",
            SkipKind::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for SkipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipKind::NotLoadable => "not loadable",
            SkipKind::MissingSymbol => "missing entry point",
            SkipKind::AbiMismatch => "ABI mismatch",
            SkipKind::Unusable => "unusable here",
            SkipKind::InitFailed => "init failed",
            SkipKind::Duplicate => "duplicate",
        })
    }
}

/// Why a candidate was skipped, with the component at fault and what to do
/// where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason {
    /// The kind of failure.
    pub kind: SkipKind,
    /// What went wrong, in one line.
    pub message: String,
    /// The component at fault, e.g. `libcudnn.so.9`.
    pub component: Option<String>,
    /// What the user can do, e.g. `install the package nvidia-cudnn`.
    pub hint: Option<String>,
}

impl SkipReason {
    /// A reason without component or hint.
    pub fn new(kind: SkipKind, message: impl Into<String>) -> Self {
        SkipReason {
            kind,
            message: message.into(),
            component: None,
            hint: None,
        }
    }

    /// Sets the component when `component` is not empty.
    pub fn with_component(mut self, component: impl Into<String>) -> Self {
        let c = component.into();
        self.component = (!c.is_empty()).then_some(c);
        self
    }

    /// Sets the hint when `hint` is not empty.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        let h = hint.into();
        self.hint = (!h.is_empty()).then_some(h);
        self
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(c) = &self.component {
            write!(f, " (component: {c})")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SkipReason {}

/// What became of a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Loaded (`dlopen`) and probed usable. `abi_minor` and `devices` are
    /// `Some` once `init` has run and succeeded; `None` while it has not
    /// (see the lifecycle in the [module docs](self)). A failed `init`
    /// turns the outcome into `Skipped` with [`SkipKind::InitFailed`].
    Loaded {
        /// The backend name from its probe.
        name: String,
        /// Its score under `SUNRISE_DEVICE=auto`.
        score: i32,
        /// The ABI minor in effect, once initialised.
        abi_minor: Option<u32>,
        /// Number of devices it drives, once initialised.
        devices: Option<u32>,
    },
    /// Skipped, and why.
    Skipped(SkipReason),
}

impl Outcome {
    /// True for a candidate whose `init` ran and succeeded.
    pub fn is_initialised(&self) -> bool {
        matches!(
            self,
            Outcome::Loaded {
                devices: Some(_),
                ..
            }
        )
    }
}

/// A file considered as a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The file, as found on the search path.
    pub path: PathBuf,
    /// What became of it.
    pub outcome: Outcome,
}

impl Candidate {
    /// The `X` of a file named `libsunrise_backend_X.so` (the name a user
    /// would guess for it), `None` for a file named otherwise.
    pub fn file_stem(&self) -> Option<&str> {
        discovery::plugin_stem(&self.path)
    }

    /// `(X, Y)` when the file is `libsunrise_backend_X.so` but its probe
    /// calls the backend `Y`: it is selected as `Y`, never as `X`.
    pub fn name_mismatch(&self) -> Option<(&str, &str)> {
        let Outcome::Loaded { name, .. } = &self.outcome else {
            return None;
        };
        let stem = self.file_stem()?;
        (stem != name).then_some((stem, name.as_str()))
    }
}

/// The result of one search: what was searched, every candidate and its
/// outcome, the plugins whose probe said usable (in search order), and the
/// plugins initialised so far (in order of init).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Every search path, in order, including ignored ones.
    pub searched: Vec<SearchPath>,
    /// The system directory compiled into this build, if any.
    pub system_dir: Option<PathBuf>,
    /// Every candidate file considered, in order.
    pub candidates: Vec<Candidate>,
    /// The usable plugins, in search order (one per name: the first).
    pub probed: Vec<ProbedPlugin>,
    /// The plugins initialised so far, in order of init.
    pub plugins: Vec<LoadedPlugin>,
}

impl Discovery {
    /// The initialised plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The usable plugin named `name`, initialised or not.
    pub fn probed_plugin(&self, name: &str) -> Option<&ProbedPlugin> {
        self.probed.iter().find(|p| p.name == name)
    }

    /// The candidates that were skipped, with their reasons.
    pub fn skipped(&self) -> impl Iterator<Item = (&Candidate, &SkipReason)> {
        self.candidates.iter().filter_map(|c| match &c.outcome {
            Outcome::Skipped(r) => Some((c, r)),
            Outcome::Loaded { .. } => None,
        })
    }

    /// Initialises the usable plugin named `name` (on the calling thread)
    /// unless that was done already, and records the outcome on its
    /// candidate. `None` when no usable plugin has that name.
    pub fn init(&mut self, name: &str) -> Option<Result<LoadedPlugin, SkipReason>> {
        let p = self.probed_plugin(name)?.clone();
        let result = p.init();
        self.record(&p, &result);
        Some(result)
    }

    /// Initialises every usable plugin not initialised yet, in search order.
    pub fn init_all(&mut self) {
        let names: Vec<String> = self.probed.iter().map(|p| p.name.clone()).collect();
        for name in names {
            let _ = self.init(&name);
        }
    }

    fn record(&mut self, p: &ProbedPlugin, result: &Result<LoadedPlugin, SkipReason>) {
        let outcome = match result {
            Ok(plugin) => {
                let devices = plugin.backend.device_count();
                if !self.plugins.iter().any(|q| q.same_instance(plugin)) {
                    tracing::debug!(
                        backend = %plugin.name,
                        path = %plugin.path.display(),
                        score = plugin.probe.score,
                        abi_minor = plugin.abi_minor(),
                        devices,
                        "plugin initialised"
                    );
                    self.plugins.push(plugin.clone());
                }
                Outcome::Loaded {
                    name: plugin.name.clone(),
                    score: plugin.probe.score,
                    abi_minor: Some(plugin.abi_minor()),
                    devices: Some(devices),
                }
            }
            Err(reason) => Outcome::Skipped(reason.clone()),
        };
        if let Some(c) = self.candidates.iter_mut().find(|c| c.path == p.path) {
            if c.outcome != outcome {
                if let Outcome::Skipped(r) = &outcome {
                    tracing::debug!(path = %p.path.display(), kind = r.kind.name(), %r, "plugin skipped");
                }
                c.outcome = outcome;
            }
        }
    }
}
