//! A plugin's two states after its probe: [`ProbedPlugin`] (loaded, probed
//! usable, `init` not called) and [`LoadedPlugin`] (initialised), and the
//! guard every call into an initialised plugin goes through, which makes
//! `destroy` happen once and turns any call after it into an error status
//! instead of a call into the plugin.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use libloading::os::unix::Library;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::host::TableBackend;
use sunrise_backend_api::{
    Backend, BackendError, BufferHandle, DeviceInfo, OpCall, ProbeReport, Result, StatusCode,
};

use super::loader::{self, Probed};
use super::SkipReason;

/// How long a destroy waits for calls still running in the plugin before
/// it gives up (and leaves the instance alive rather than destroy it under
/// a running call).
pub const DESTROY_WAIT: Duration = Duration::from_secs(10);

/// Counts inits across the process, so that teardown can go in reverse
/// order of init.
static INIT_SEQ: AtomicU64 = AtomicU64::new(0);

/// A plugin whose library is loaded and whose probe said it is usable;
/// `init` has not necessarily run. Clones share one library and one init:
/// [`ProbedPlugin::init`] calls the plugin's `init` at most once, however
/// many clones call it, and every later call returns the first result.
#[derive(Clone)]
pub struct ProbedPlugin {
    /// The backend name from its probe.
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// What its probe reported.
    pub probe: ProbeReport,
    inner: Arc<ProbedInner>,
}

struct ProbedInner {
    probed: Probed,
    result: OnceLock<std::result::Result<LoadedPlugin, SkipReason>>,
}

impl std::fmt::Debug for ProbedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbedPlugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("score", &self.probe.score)
            .field("initialised", &self.initialised().is_some())
            .finish()
    }
}

impl ProbedPlugin {
    pub(crate) fn new(path: PathBuf, probed: Probed) -> ProbedPlugin {
        ProbedPlugin {
            name: probed.report.name.clone(),
            path,
            probe: probed.report.clone(),
            inner: Arc::new(ProbedInner {
                probed,
                result: OnceLock::new(),
            }),
        }
    }

    /// Calls the plugin's `init` (on the calling thread) unless that was
    /// done already, and returns the initialised plugin or why `init`
    /// failed. Runs `init` at most once per loaded library.
    pub fn init(&self) -> std::result::Result<LoadedPlugin, SkipReason> {
        self.inner
            .result
            .get_or_init(|| loader::init(&self.path, &self.inner.probed))
            .clone()
    }

    /// The initialised plugin, when `init` ran and succeeded.
    pub fn initialised(&self) -> Option<&LoadedPlugin> {
        self.inner.result.get().and_then(|r| r.as_ref().ok())
    }

    /// Whether `init` has run (successfully or not).
    pub fn init_attempted(&self) -> bool {
        self.inner.result.get().is_some()
    }
}

/// A loaded, initialised plugin. Every call through `backend` goes through
/// a guard: once [`LoadedPlugin::destroy`] has run, calls fail with
/// `Unavailable` without reaching the plugin. Dropping the last handle (this
/// struct's clones, and every [`crate::Device`] and tensor on it) destroys
/// the instance if that has not happened yet, then releases the library
/// (which stays loaded while anything else, such as the registry, holds it).
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
    guard: Arc<PluginBackend>,
    seq: u64,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("probe", &self.probe)
            .field("devices", &self.backend.device_count())
            .field("destroyed", &self.is_destroyed())
            .finish()
    }
}

/// What a [`LoadedPlugin::destroy`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destroyed {
    /// This call ran the plugin's `destroy`.
    Now,
    /// It had run before; nothing was called.
    Already,
    /// Calls were still running in the plugin after [`DESTROY_WAIT`]:
    /// `destroy` was not called (new calls are refused all the same).
    Busy,
}

impl LoadedPlugin {
    pub(crate) fn new(
        name: String,
        path: PathBuf,
        probe: ProbeReport,
        table: TableBackend,
        library: Arc<Library>,
    ) -> LoadedPlugin {
        let guard = Arc::new(PluginBackend {
            name: name.clone(),
            supported: table.supported_ops().to_vec(),
            abi_minor: table.abi_minor(),
            closing: AtomicBool::new(false),
            table: RwLock::new(Some(table)),
            _library: library,
        });
        LoadedPlugin {
            name,
            path,
            probe,
            backend: guard.clone(),
            guard,
            seq: INIT_SEQ.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The ABI minor in effect with this plugin.
    pub fn abi_minor(&self) -> u32 {
        self.guard.abi_minor
    }

    /// Calls the plugin's `destroy` now, on the calling thread, unless it
    /// ran already: new calls are refused at once, calls still running in
    /// the plugin are waited for (up to [`DESTROY_WAIT`]), and no call
    /// reaches the plugin afterwards. The library stays loaded.
    pub fn destroy(&self) -> Destroyed {
        self.guard.destroy_within(DESTROY_WAIT)
    }

    /// True once a destroy began: calls are refused from then on (the
    /// plugin's `destroy` ran, unless it was [`Destroyed::Busy`]).
    pub fn is_destroyed(&self) -> bool {
        self.guard.closing.load(Ordering::Acquire)
    }

    /// Position in the process-wide order of inits (earlier is smaller).
    pub(crate) fn init_seq(&self) -> u64 {
        self.seq
    }

    /// True when `self` and `other` are one initialised instance.
    pub(crate) fn same_instance(&self, other: &LoadedPlugin) -> bool {
        Arc::ptr_eq(&self.guard, &other.guard)
    }
}

/// An initialised plugin's table behind a guard. Fields drop in order: the
/// table first (its drop calls `destroy`), then the library.
struct PluginBackend {
    name: String,
    supported: Vec<SrOpSupport>,
    abi_minor: u32,
    /// Set when destroy begins: no new call enters the plugin.
    closing: AtomicBool,
    /// `None` once destroyed. Calls hold the read lock while in the plugin.
    table: RwLock<Option<TableBackend>>,
    _library: Arc<Library>,
}

impl PluginBackend {
    fn gone(&self, what: &str) -> BackendError {
        BackendError::new(
            StatusCode::Unavailable,
            format!(
                "backend {} was shut down (destroy was called); {what} is refused",
                self.name
            ),
        )
    }

    /// Runs `f` on the live table, or fails with `Unavailable` after
    /// destroy.
    fn with<R>(&self, what: &str, f: impl FnOnce(&TableBackend) -> Result<R>) -> Result<R> {
        if self.closing.load(Ordering::Acquire) {
            return Err(self.gone(what));
        }
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        match table.as_ref() {
            Some(t) => f(t),
            None => Err(self.gone(what)),
        }
    }

    fn destroy_within(&self, wait: Duration) -> Destroyed {
        self.closing.store(true, Ordering::Release);
        let deadline = Instant::now() + wait;
        loop {
            let mut table = match self.table.try_write() {
                Ok(t) => t,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(TryLockError::WouldBlock) => {
                    tracing::warn!(
                        backend = %self.name,
                        "calls still run in the plugin after {wait:?}: destroy not called"
                    );
                    return Destroyed::Busy;
                }
            };
            // Dropping the table calls the plugin's destroy; the write lock
            // keeps every other call out meanwhile.
            return match table.take() {
                Some(t) => {
                    drop(t);
                    tracing::debug!(backend = %self.name, "plugin destroyed");
                    Destroyed::Now
                }
                None => Destroyed::Already,
            };
        }
    }
}

impl Backend for PluginBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn device_count(&self) -> u32 {
        self.with("device_count", |t| Ok(t.device_count()))
            .unwrap_or(0)
    }

    fn device_info(&self, device: u32) -> Result<DeviceInfo> {
        self.with("device_props", |t| t.device_info(device))
    }

    fn supported_ops(&self) -> &[SrOpSupport] {
        &self.supported
    }

    fn alloc(&self, device: u32, bytes: usize) -> Result<BufferHandle> {
        self.with("buffer_alloc", |t| t.alloc(device, bytes))
    }

    unsafe fn free(&self, buffer: BufferHandle) {
        let _ = self.with("buffer_free", |t| {
            // SAFETY: per the caller, a live buffer of this plugin, freed
            // once; the instance is alive while the read lock is held.
            unsafe { t.free(buffer) };
            Ok(())
        });
    }

    unsafe fn write(&self, buffer: BufferHandle, offset: usize, src: &[u8]) -> Result<()> {
        // SAFETY: forwarded from the caller; the instance is alive while
        // the read lock is held.
        self.with("buffer_write", |t| unsafe { t.write(buffer, offset, src) })
    }

    unsafe fn read(&self, buffer: BufferHandle, offset: usize, dst: &mut [u8]) -> Result<()> {
        // SAFETY: as in `write`.
        self.with("buffer_read", |t| unsafe { t.read(buffer, offset, dst) })
    }

    fn synchronize(&self, device: u32) -> Result<()> {
        self.with("synchronize", |t| t.synchronize(device))
    }

    unsafe fn execute(&self, device: u32, call: &OpCall<'_>) -> Result<()> {
        // SAFETY: as in `write`.
        self.with("execute", |t| unsafe { t.execute(device, call) })
    }

    fn set_option(&self, key: &str, value: &str) -> Result<()> {
        self.with("set_option", |t| t.set_option(key, value))
    }
}
