//! The search path and the walk over it: which directories and files are
//! looked at, in which order, and what became of each candidate.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::loader;
use super::{
    install_log_bridge, Candidate, Discovery, Outcome, PathOrigin, ProbedPlugin, SearchPath,
    SkipKind, SkipReason, BACKEND_PATH_VAR, RELATIVE_NOTE,
};

/// File-name prefix of a plugin found in a directory.
const PREFIX: &str = "libsunrise_backend_";
/// File-name suffix of a plugin found in a directory.
const SUFFIX: &str = ".so";

/// The system plugin directory compiled into this build: the value of
/// `SUNRISE_BACKEND_DIR` at build time, or `None` when it was unset or empty.
pub fn system_dir() -> Option<PathBuf> {
    option_env!("SUNRISE_BACKEND_DIR")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// The search path, in order: each entry of `SUNRISE_BACKEND_PATH` (empty
/// entries dropped, relative ones kept but marked ignored), the system
/// directory (if compiled in), then the running executable's directory.
pub fn search_paths() -> Vec<SearchPath> {
    let mut out = Vec::new();
    if let Some(value) = std::env::var_os(BACKEND_PATH_VAR) {
        out.extend(
            std::env::split_paths(&value)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| SearchPath::new(p, PathOrigin::Env)),
        );
    }
    if let Some(dir) = system_dir() {
        out.push(SearchPath::new(dir, PathOrigin::System));
    }
    match std::env::current_exe() {
        Ok(exe) => {
            if let Some(dir) = exe.parent() {
                out.push(SearchPath::new(dir, PathOrigin::ExeDir));
            }
        }
        Err(e) => debug!(error = %e, "plugin search: cannot locate the running executable"),
    }
    out
}

/// Installs the log bridge, then searches [`search_paths`]: loads and
/// probes every candidate and initialises none (what the registry does).
pub fn scan() -> Discovery {
    install_log_bridge();
    scan_in(search_paths())
}

/// Searches `paths` in order, loads and probes every candidate, and
/// initialises none. A relative path is never searched; a file seen twice
/// (after resolving links) is considered once; of two usable plugins with
/// one name, the first wins.
pub fn scan_in(paths: Vec<SearchPath>) -> Discovery {
    let mut d = Discovery {
        system_dir: system_dir(),
        ..Discovery::default()
    };
    let mut seen = HashSet::new();
    for mut sp in paths {
        let files = list(&mut sp);
        if let Some(note) = &sp.note {
            debug!(path = %sp.path.display(), origin = %sp.origin, note, "plugin search path");
        }
        d.searched.push(sp);
        for file in files {
            let key = fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if seen.insert(key) {
                consider(&mut d, file);
            } else {
                debug!(path = %file.display(), "plugin candidate already considered");
            }
        }
    }
    d
}

/// [`scan`], then initialises every usable plugin (see [`discover_in`]).
pub fn discover() -> Discovery {
    install_log_bridge();
    discover_in(search_paths())
}

/// [`scan_in`], then [`Discovery::init_all`]: every usable plugin
/// initialised, in search order. For tests and embedders that drive plugins
/// themselves; the caller owns the instances (each is destroyed when its
/// last handle is dropped, or by [`super::LoadedPlugin::destroy`]).
pub fn discover_in(paths: Vec<SearchPath>) -> Discovery {
    let mut d = scan_in(paths);
    d.init_all();
    d
}

/// The candidate files of one search path; updates its `exists` and `note`.
fn list(sp: &mut SearchPath) -> Vec<PathBuf> {
    if sp.path.is_relative() {
        sp.exists = false;
        sp.note.get_or_insert_with(|| RELATIVE_NOTE.to_string());
        return Vec::new();
    }
    let meta = match fs::metadata(&sp.path) {
        Ok(m) => m,
        Err(e) => {
            sp.exists = false;
            if e.kind() != std::io::ErrorKind::NotFound {
                sp.note = Some(format!("cannot inspect: {e}"));
            }
            return Vec::new();
        }
    };
    sp.exists = true;
    if meta.is_dir() {
        match plugin_files(&sp.path) {
            Ok(files) => files,
            Err(e) => {
                sp.note = Some(format!("cannot read directory: {e}"));
                Vec::new()
            }
        }
    } else if meta.is_file() && sp.origin == PathOrigin::Env {
        vec![sp.path.clone()]
    } else {
        sp.note = Some("not a directory".to_string());
        Vec::new()
    }
}

/// `libsunrise_backend_*.so` regular files (or links to them) in `dir`,
/// sorted by name.
fn plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry.file_name().to_str().is_some_and(|n| {
                n.len() > PREFIX.len() + SUFFIX.len()
                    && n.starts_with(PREFIX)
                    && n.ends_with(SUFFIX)
            })
        })
        .map(|entry| entry.path())
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    files.sort();
    Ok(files)
}

/// The `X` of a path whose file name is `libsunrise_backend_X.so`.
pub(crate) fn plugin_stem(path: &Path) -> Option<&str> {
    path.file_name()?
        .to_str()?
        .strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)
        .filter(|stem| !stem.is_empty())
}

/// Loads and probes one candidate and records what became of it.
fn consider(d: &mut Discovery, path: PathBuf) {
    let probed = match loader::open_and_probe(&path) {
        Ok(p) => p,
        Err(reason) => return skip(d, path, reason),
    };
    if let Some(first) = d.probed_plugin(&probed.report.name) {
        let reason = SkipReason::new(
            SkipKind::Duplicate,
            format!(
                "backend `{}` was already loaded from {}; the first in search order wins",
                first.name,
                first.path.display()
            ),
        );
        return skip(d, path, reason);
    }
    let plugin = ProbedPlugin::new(path.clone(), probed);
    debug!(
        backend = %plugin.name,
        path = %path.display(),
        score = plugin.probe.score,
        "plugin probed: usable"
    );
    if let Some(stem) = plugin_stem(&path).filter(|s| *s != plugin.name) {
        debug!(
            path = %path.display(),
            "the file is named for backend `{stem}`, but its probe calls it `{}`",
            plugin.name
        );
    }
    d.candidates.push(Candidate {
        path,
        outcome: Outcome::Loaded {
            name: plugin.name.clone(),
            score: plugin.probe.score,
            abi_minor: None,
            devices: None,
        },
    });
    d.probed.push(plugin);
}

fn skip(d: &mut Discovery, path: PathBuf, reason: SkipReason) {
    debug!(path = %path.display(), kind = reason.kind.name(), %reason, "plugin skipped");
    d.candidates.push(Candidate {
        path,
        outcome: Outcome::Skipped(reason),
    });
}
