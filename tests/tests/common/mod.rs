//! Helpers shared by the plugin tests: finding (and if need be building)
//! the fixture and CPU cdylibs, and scratch directories.

#![allow(dead_code, reason = "each test binary uses a subset of these helpers")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The real CPU plugin's file name.
pub const CPU_PLUGIN: &str = "libsunrise_backend_cpu.so";

/// The CUDA plugin's crate (built on demand by [`cuda_plugin`], never part
/// of [`plugin_dir`]: it needs no GPU to load, but says it cannot run).
pub const CUDA_CRATE: &str = "sunrise-backend-cuda";
/// The CUDA plugin's file name.
pub const CUDA_PLUGIN: &str = "libsunrise_backend_cuda.so";

/// The cdylib crates the plugin tests load, and the name each fixture is
/// given in a plugin directory (`libsunrise_backend_<name>.so`).
pub const CDYLIBS: [(&str, &str); 5] = [
    ("sunrise-backend-cpu-plugin", "cpu"),
    ("sunrise-fixture-abi2-only", "abi2"),
    ("sunrise-fixture-init-panics", "panics"),
    ("sunrise-fixture-no-entry", "noentry"),
    ("sunrise-fixture-unusable", "unusable"),
];

/// Fixture crates built for tests that load them one by one (not part of
/// [`plugin_dir`]).
pub const EXTRA_CDYLIBS: [&str; 2] = ["sunrise-fixture-partial", "sunrise-fixture-lifecycle"];

/// The fixture that logs each probe, init and destroy (one line each) to
/// the file named by [`LIFECYCLE_LOG_VAR`].
pub const LIFECYCLE_CRATE: &str = "sunrise-fixture-lifecycle";
/// The environment variable the lifecycle fixture logs to.
pub const LIFECYCLE_LOG_VAR: &str = "SUNRISE_LIFECYCLE_LOG";

/// What the `unusable` fixture reports.
pub const UNUSABLE_REASON: &str = "no frobnicator device present";
/// The component the `unusable` fixture names.
pub const UNUSABLE_COMPONENT: &str = "libfrob.so.3";
/// The hint the `unusable` fixture gives.
pub const UNUSABLE_HINT: &str = "install the package libfrob3";
/// The text the `init-panics` fixture panics with.
pub const PANIC_TEXT: &str = "fixture init-panics: deliberate panic in init";

/// The file cargo writes for the cdylib of crate `krate`.
pub fn cdylib_file(krate: &str) -> String {
    format!("lib{}.so", krate.replace('-', "_"))
}

/// The target profile directory of this build (`target/<profile>`): the
/// parent of the `deps/` directory holding this test binary.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// The built cdylib of crate `krate` (see [`ensure_built`]).
pub fn cdylib(krate: &str) -> PathBuf {
    ensure_built();
    profile_dir().join(cdylib_file(krate))
}

/// Builds the cdylib crates once per test binary, with the profile this
/// test was built with, so their files in the profile directory match the
/// sources. `cargo test` alone does not put them there: it builds the
/// fixture crates only as test harnesses, and the CPU crate's cdylib only
/// under `deps/`. When everything is fresh this is a no-op build.
pub fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let mut cmd = build_command(&dir);
        eprintln!("plugin tests: running {cmd:?}");
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "{cmd:?} failed: {status}");
        for (krate, _) in CDYLIBS {
            let file = dir.join(cdylib_file(krate));
            assert!(file.is_file(), "{} was not built", file.display());
        }
    });
}

/// `cargo build -p <each cdylib crate>` into the profile directory of this
/// test binary, with the profile `cargo test` uses for it (`test` for
/// `target/debug`, `bench` for `target/release`), so the CPU crate, which
/// this test already depends on, is not built a second time.
fn build_command(profile_dir: &Path) -> Command {
    let mut cmd = cargo_build(profile_dir, None);
    for (krate, _) in CDYLIBS {
        cmd.args(["-p", krate]);
    }
    for krate in EXTRA_CDYLIBS {
        cmd.args(["-p", krate]);
    }
    cmd
}

/// `cargo build --offline` of this workspace with the profile that fills
/// `profile_dir` (see [`build_command`]), into its target directory or
/// `target_dir`; packages still to add.
fn cargo_build(profile_dir: &Path, target_dir: Option<&Path>) -> Command {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg("build")
        .arg("--offline")
        .arg("--manifest-path")
        .arg(manifest);
    if let Some(target) = target_dir.or(profile_dir.parent()) {
        cmd.arg("--target-dir").arg(target);
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => "bench",
        Some("debug") | None => "test",
        Some(other) => other,
    };
    cmd.args(["--profile", profile]);
    cmd
}

/// Runs `cmd` once per test binary per `slot`, then checks `file` exists.
fn build_once(slot: &'static OnceLock<()>, mut cmd: Command, file: &Path) {
    slot.get_or_init(|| {
        eprintln!("tests: running {cmd:?}");
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "{cmd:?} failed: {status}");
    });
    assert!(file.is_file(), "{} was not built", file.display());
}

/// The CUDA plugin built from this tree with this test's profile (a no-op
/// build when fresh), in a target directory of its own (`target/cuda-plugin`):
/// a cdylib built in the shared one lands in `<profile>/deps/` too, the
/// directory of every test binary, whose own-directory plugin search
/// (`plugin_env.rs`) and the `sunrise` command's (`cli/tests`) must not
/// find it. Separate from [`ensure_built`], so only the tests that load it
/// pay for it.
pub fn cuda_plugin() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = profile_dir();
    let own_target = dir
        .parent()
        .expect("<target>/<profile>")
        .join("cuda-plugin");
    let mut cmd = cargo_build(&dir, Some(&own_target));
    cmd.args(["-p", CUDA_CRATE]);
    let file = own_target
        .join(dir.file_name().expect("a profile directory"))
        .join(CUDA_PLUGIN);
    build_once(&BUILT, cmd, &file);
    file
}

/// The `sunrise` command built from this tree with this test's profile.
pub fn cli_binary() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = profile_dir();
    let file = dir.join("sunrise");
    let mut cmd = cargo_build(&dir, None);
    cmd.args(["-p", "sunrise-cli", "--bin", "sunrise"]);
    build_once(&BUILT, cmd, &file);
    file
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "sunrise-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Copies the cdylib of `krate` in as `name`; returns the new path.
    pub fn copy_cdylib(&self, krate: &str, name: &str) -> PathBuf {
        let to = self.0.join(name);
        std::fs::copy(cdylib(krate), &to).expect("copy a built cdylib");
        to
    }

    /// Copies the file `from` in as `name` (permissions kept); returns the
    /// new path.
    pub fn copy_in(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.0.join(name);
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        to
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory holding every fixture as `libsunrise_backend_<name>.so`, the
/// real CPU plugin, and `libsunrise_backend_notelf.so`, a text file.
pub fn plugin_dir() -> TempDir {
    let dir = TempDir::new("plugins");
    for (krate, name) in CDYLIBS {
        dir.copy_cdylib(krate, &format!("libsunrise_backend_{name}.so"));
    }
    std::fs::write(
        dir.path().join("libsunrise_backend_notelf.so"),
        "this is a text file, not a shared object\n",
    )
    .expect("write the non-ELF fixture");
    dir
}
