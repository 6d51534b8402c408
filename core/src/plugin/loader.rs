//! Loading one plugin file: `dlopen`, entry-point lookup, probe, init.
//! Every failure becomes a [`SkipReason`]; nothing here panics.

use std::ffi::CString;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use sunrise_backend_api::abi::{
    SrInitFnV1, SrProbeFnV1, SrProbeInfo, SR_ABI_MAJOR, SR_INIT_SYMBOL_V1, SR_PROBE_SYMBOL_V1,
};
use sunrise_backend_api::host::TableBackend;
use sunrise_backend_api::ProbeReport;

use super::{LoadedPlugin, SkipKind, SkipReason};

/// Other ABI majors looked for when the v1 entry points are missing.
const OTHER_MAJORS: std::ops::RangeInclusive<u32> = 2..=9;

/// A library whose probe said it is usable, not yet initialised.
pub(crate) struct Probed {
    library: Arc<Library>,
    init: SrInitFnV1,
    pub(crate) report: ProbeReport,
}

impl std::fmt::Debug for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probed")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Plugin code (probe, init) runs one plugin at a time in the process:
/// loading is rare and short, and neither a plugin's initialisers nor the
/// vendor libraries it opens need be safe to run beside another's.
static LOADING: Mutex<()> = Mutex::new(());

fn loading() -> MutexGuard<'static, ()> {
    LOADING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Loads, probes and initialises the plugin at `path`, outside any
/// registry: the caller owns the instance. It is destroyed by
/// [`LoadedPlugin::destroy`] or when the last handle to it is dropped; the
/// library stays mapped (see [`init`]).
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, SkipReason> {
    let probed = open_and_probe(path)?;
    init(path, &probed)
}

/// Loads `path` and runs its probe; fails unless the plugin is usable.
pub(crate) fn open_and_probe(path: &Path) -> Result<Probed, SkipReason> {
    super::elf::check(path)?;
    let _one_at_a_time = loading();
    let library = open(path)?;
    let (probe, init) = entry_points(&library)?;
    let mut info = SrProbeInfo::new();
    // SAFETY: `probe` is the plugin's `sunrise_backend_probe_v1`, whose
    // contract is to fill a zeroed struct with `struct_size` set and never
    // unwind; `library` keeps its code loaded for the call.
    unsafe { probe(&mut info) };
    let report = ProbeReport::read_from(&info);
    check_report(&report)?;
    Ok(Probed {
        library: Arc::new(library),
        init,
        report,
    })
}

/// Initialises a probed plugin (on the calling thread) and wraps its table
/// behind the guard of [`LoadedPlugin`].
///
/// Before init runs, the library is made permanent (`RTLD_NODELETE`): once
/// init has run, code of the plugin may stay referenced after destroy,
/// whatever the plugin meant (worker threads parked in it, thread-local
/// destructors and exit handlers its runtime registered, the state a panic
/// left in its own Rust standard library), and unmapping it would crash
/// the process later, at random. A library only probed is still closed
/// when its last handle goes.
pub(crate) fn init(path: &Path, probed: &Probed) -> Result<LoadedPlugin, SkipReason> {
    let _one_at_a_time = loading();
    pin(path);
    let keep_alive = Box::new(probed.library.clone());
    // SAFETY: `init` is the plugin's `sunrise_backend_init_v1`, looked up
    // from `probed.library`; a clone of that library moves into the table
    // and keeps its code loaded until after the instance is destroyed.
    let table = unsafe { TableBackend::init(&probed.report.name, probed.init, Some(keep_alive)) }
        .map_err(|e| {
        let reason = SkipReason::new(
            SkipKind::InitFailed,
            format!("init failed ({}): {}", e.code.name(), e.message),
        );
        reason
            .with_component(e.component.unwrap_or_default())
            .with_hint(e.hint.unwrap_or_default())
    })?;
    Ok(LoadedPlugin::new(
        probed.report.name.clone(),
        path.to_path_buf(),
        probed.report.clone(),
        table,
        probed.library.clone(),
    ))
}

/// Marks the library `path` names, already open, never to be unloaded.
fn pin(path: &Path) {
    // SAFETY: with RTLD_NOLOAD, dlopen loads nothing and runs no
    // initialiser: it finds the library `open` mapped for this path and
    // sets RTLD_NODELETE on it. Closing the extra handle again keeps that.
    let pinned = unsafe {
        Library::open(
            Some(path),
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        )
    };
    if let Err(e) = pinned {
        tracing::warn!(plugin = %path.display(), "could not mark the plugin never to unload: {e}");
    }
}

fn open(path: &Path) -> Result<Library, SkipReason> {
    // SAFETY: loading a library runs its initialisers. Plugins are trusted
    // code by design: they come only from the search path the user or the
    // system configured (never the working directory).
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        let text = e.to_string();
        let reason = SkipReason::new(SkipKind::NotLoadable, format!("dlopen failed: {text}"));
        match missing_dependency(&text, path) {
            Some(dep) => reason
                .with_hint(format!("install the package that provides {dep}"))
                .with_component(dep),
            None => reason,
        }
    })
}

/// The shared library named in a loader message such as
/// `libfoo.so.1: cannot open shared object file: No such file or directory`,
/// unless it is the plugin file itself.
pub(crate) fn missing_dependency(dlerror: &str, plugin: &Path) -> Option<String> {
    const MARK: &str = ": cannot open shared object file";
    let head = &dlerror[..dlerror.find(MARK)?];
    let dep = head.rsplit(": ").next()?.trim();
    let plugin_name = plugin.file_name().and_then(|n| n.to_str());
    let dep_name = Path::new(dep).file_name().and_then(|n| n.to_str());
    if dep.is_empty() || dep == plugin.to_string_lossy() || dep_name == plugin_name {
        None
    } else {
        Some(dep.to_string())
    }
}

/// True when `library` exports `name` (NUL-terminated); the address is
/// never used.
fn has_symbol(library: &Library, name: &[u8]) -> bool {
    // SAFETY: the symbol is read as an opaque address and never
    // dereferenced or called.
    unsafe { library.get::<*const std::ffi::c_void>(name) }.is_ok()
}

/// Looks up a symbol as a function pointer, `None` when absent.
fn symbol<T: Copy>(library: &Library, name: &[u8]) -> Option<T> {
    // SAFETY: `T` is the ABI's function-pointer type for this symbol name;
    // the pointer is copied out and only used while `library` stays loaded.
    unsafe { library.get::<T>(name) }.ok().map(|s| *s)
}

fn entry_points(library: &Library) -> Result<(SrProbeFnV1, SrInitFnV1), SkipReason> {
    let probe = symbol::<SrProbeFnV1>(library, SR_PROBE_SYMBOL_V1);
    let init = symbol::<SrInitFnV1>(library, SR_INIT_SYMBOL_V1);
    match (probe, init) {
        (Some(p), Some(i)) => Ok((p, i)),
        (None, _) => Err(no_v1_probe(library, init.is_some())),
        (Some(_), None) => Err(missing_symbol(SR_INIT_SYMBOL_V1)),
    }
}

fn symbol_name(sym: &[u8]) -> String {
    String::from_utf8_lossy(sym.strip_suffix(b"\0").unwrap_or(sym)).into_owned()
}

fn missing_symbol(sym: &[u8]) -> SkipReason {
    SkipReason::new(
        SkipKind::MissingSymbol,
        format!(
            "no `{}` entry point: not a sunrise backend",
            symbol_name(sym)
        ),
    )
}

fn no_v1_probe(library: &Library, has_v1_init: bool) -> SkipReason {
    let majors: Vec<u32> = OTHER_MAJORS
        .filter(|n| {
            CString::new(format!("sunrise_backend_probe_v{n}"))
                .is_ok_and(|c| has_symbol(library, c.as_bytes_with_nul()))
        })
        .collect();
    if majors.is_empty() || has_v1_init {
        return missing_symbol(SR_PROBE_SYMBOL_V1);
    }
    let list = majors
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    SkipReason::new(
        SkipKind::AbiMismatch,
        format!(
            "plugin speaks ABI major {list} (exports sunrise_backend_probe_v{}), \
             this sunrise speaks ABI major {SR_ABI_MAJOR}",
            majors[0]
        ),
    )
    .with_hint(format!(
        "install a build of this plugin for sunrise backend ABI {SR_ABI_MAJOR} \
         (package relation sunrise-backend-abi-{SR_ABI_MAJOR})"
    ))
}

/// A backend name usable as a `SUNRISE_DEVICE` prefix.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn check_report(report: &ProbeReport) -> Result<(), SkipReason> {
    if report.abi_major != SR_ABI_MAJOR {
        return Err(SkipReason::new(
            SkipKind::AbiMismatch,
            format!(
                "probe reports ABI major {} behind its v{SR_ABI_MAJOR} entry point",
                report.abi_major
            ),
        ));
    }
    if !valid_name(&report.name) {
        return Err(SkipReason::new(
            SkipKind::AbiMismatch,
            format!(
                "probe reports an invalid backend name {:?} (want [a-z0-9_-]+)",
                report.name
            ),
        ));
    }
    if !report.usable {
        let message = if report.reason.is_empty() {
            format!("backend `{}` reports it cannot run here", report.name)
        } else {
            format!("backend `{}`: {}", report.name, report.reason)
        };
        return Err(SkipReason::new(SkipKind::Unusable, message)
            .with_component(report.component.clone())
            .with_hint(report.hint.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dependency_names_the_library_not_the_plugin() {
        let p = Path::new("/opt/x/libsunrise_backend_cuda.so");
        let dep = "libcudnn.so.9: cannot open shared object file: No such file or directory";
        assert_eq!(missing_dependency(dep, p).as_deref(), Some("libcudnn.so.9"));
        let own = "/opt/x/libsunrise_backend_cuda.so: cannot open shared object file: \
                   No such file or directory";
        assert_eq!(missing_dependency(own, p), None);
        let other = "/opt/x/libsunrise_backend_cuda.so: invalid ELF header";
        assert_eq!(missing_dependency(other, p), None);
    }

    #[test]
    fn names_and_reports_are_checked() {
        assert!(valid_name("cuda"));
        assert!(valid_name("cpu_ref-2"));
        assert!(!valid_name(""));
        assert!(!valid_name("cuda:0"));
        assert!(!valid_name("CPU"));
        let ok = ProbeReport {
            abi_major: SR_ABI_MAJOR,
            usable: true,
            name: "cpu".into(),
            ..ProbeReport::default()
        };
        assert_eq!(check_report(&ok), Ok(()));
        let old = ProbeReport {
            abi_major: 0,
            ..ok.clone()
        };
        assert_eq!(check_report(&old).unwrap_err().kind, SkipKind::AbiMismatch);
        let unusable = ProbeReport {
            usable: false,
            reason: "no driver".into(),
            component: "libcuda.so.1".into(),
            ..ok
        };
        let r = check_report(&unusable).unwrap_err();
        assert_eq!(r.kind, SkipKind::Unusable);
        assert_eq!(r.message, "backend `cpu`: no driver");
        assert_eq!(r.component.as_deref(), Some("libcuda.so.1"));
        assert_eq!(r.hint, None);
    }
}
