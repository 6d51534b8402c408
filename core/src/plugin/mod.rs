//! Plugin discovery and loading: finds `libsunrise_backend_*.so` files on the
//! search path, loads each with `RTLD_NOW | RTLD_LOCAL`, probes it through
//! `sunrise_backend_probe_v1`, and wraps each usable one as a [`Backend`].
//!
//! Search order (see `DESIGN.md`, "Discovery and device choice"):
//! 1. each entry of `SUNRISE_BACKEND_PATH` (colon-separated; a directory or
//!    a shared-object file; empty entries ignored, relative ones skipped);
//! 2. the system directory compiled in at build time from the
//!    `SUNRISE_BACKEND_DIR` environment variable (the Debian build sets it to
//!    `/usr/lib/<multiarch>/sunrise/backends-1`); none when it was unset;
//! 3. the directory of the running executable.
//!
//! **Architecture invariant:** plugins are never loaded from the current
//! working directory, and no plugin, however broken, takes the process down:
//! every failure becomes a [`SkipReason`] on its [`Candidate`].

mod discovery;
mod elf;
mod loader;
mod log_bridge;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use sunrise_backend_api::{Backend, ProbeReport};

pub use discovery::{discover, discover_in, search_paths, system_dir};
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
    /// Loaded and initialised.
    Loaded {
        /// The backend name from its probe.
        name: String,
        /// Its score under `SUNRISE_DEVICE=auto`.
        score: i32,
        /// The ABI minor in effect.
        abi_minor: u32,
        /// Number of devices it drives.
        devices: u32,
    },
    /// Skipped, and why.
    Skipped(SkipReason),
}

/// A file considered as a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The file, as found on the search path.
    pub path: PathBuf,
    /// What became of it.
    pub outcome: Outcome,
}

/// A loaded, initialised plugin. Dropping the last clone of `backend`
/// destroys the instance, then unloads the library.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The backend name from its probe.
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// What its probe reported.
    pub probe: ProbeReport,
    /// The plugin's table as a [`Backend`].
    pub backend: Arc<dyn Backend>,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("probe", &self.probe)
            .field("devices", &self.backend.device_count())
            .finish()
    }
}

/// The result of one discovery: what was searched, every candidate and its
/// outcome, and the plugins loaded (in search order).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Every search path, in order, including ignored ones.
    pub searched: Vec<SearchPath>,
    /// The system directory compiled into this build, if any.
    pub system_dir: Option<PathBuf>,
    /// Every candidate file considered, in order.
    pub candidates: Vec<Candidate>,
    /// The plugins loaded, in search order.
    pub plugins: Vec<LoadedPlugin>,
}

impl Discovery {
    /// The loaded plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The candidates that were skipped, with their reasons.
    pub fn skipped(&self) -> impl Iterator<Item = (&Candidate, &SkipReason)> {
        self.candidates.iter().filter_map(|c| match &c.outcome {
            Outcome::Skipped(r) => Some((c, r)),
            Outcome::Loaded { .. } => None,
        })
    }
}
