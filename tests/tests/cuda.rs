//! The contrib CUDA plugin on this machine, loaded for real: the built
//! `libsunrise_backend_cuda.so` is dlopened through the core's normal
//! discovery, and the `sunrise` command is run beside it.
//!
//! On a machine without the NVIDIA driver (CI) its probe must say that
//! `libcuda.so.1` is missing and which Debian package provides it, the
//! host must survive, `SUNRISE_DEVICE=cuda` must be a typed error that
//! says why, `auto` must fall back to the CPU with one log line, and
//! `sunrise doctor` must say all this and exit by the requested device.
//! Where the probe finds a usable GPU, those assertions are skipped (with a
//! printed reason) and the device is checked to be offered instead.
//!
//! Also, on every machine: the plugin links no NVIDIA library (`ldd`), and
//! depends on `sunrise-backend-api` alone among this workspace's crates,
//! with cudarc's dynamic loading and one fixed CUDA version (`cargo tree`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TempDir, CUDA_PLUGIN};
use sunrise::plugin::{
    discover_in, load_plugin, Outcome, PathOrigin, SearchPath, SkipKind, SkipReason,
};
use sunrise::registry::Registry;
use sunrise::Error;

/// The driver library the plugin needs before anything else.
const LIBCUDA: &str = "libcuda.so.1";

/// What the plugin's probe says here.
enum Here {
    /// No `libcuda.so.1` on this machine (CI): the no-GPU assertions apply.
    NoDriver(SkipReason),
    /// The driver is there but the plugin cannot run (no GPU, missing
    /// cuDNN, ...): the reason is printed and libcuda-specific checks skipped.
    Unusable(SkipReason),
    /// A usable GPU.
    Usable { devices: u32 },
}

/// True when the dynamic loader can open `libcuda.so.1` on this machine.
fn libcuda_present() -> bool {
    // SAFETY: loading the NVIDIA driver library runs its initialisers,
    // which is all a dlopen does; the handle is closed at once.
    unsafe { libloading::Library::new(LIBCUDA) }.is_ok()
}

/// A scratch directory holding the freshly built plugin under its
/// installed name, and what its probe says.
fn plugin_here() -> (TempDir, PathBuf, Here) {
    let built = common::cuda_plugin();
    let dir = TempDir::new("cuda");
    let path = dir.copy_in(&built, CUDA_PLUGIN);
    let here = match load_plugin(&path) {
        Ok(p) => {
            assert_eq!(p.name, "cuda");
            assert!(p.probe.usable);
            Here::Usable {
                devices: p.backend.device_count(),
            }
        }
        Err(r) => {
            assert_eq!(
                r.kind,
                SkipKind::Unusable,
                "the cuda plugin must load and probe cleanly even without a GPU: {r}"
            );
            if libcuda_present() {
                Here::Unusable(r)
            } else {
                Here::NoDriver(r)
            }
        }
    };
    (dir, path, here)
}

/// Why the no-GPU assertions do not apply here (`None`: they do).
fn skip_note(here: &Here) -> Option<String> {
    match here {
        Here::NoDriver(r) => {
            check_no_driver_reason(r);
            None
        }
        Here::Unusable(r) => Some(format!(
            "{LIBCUDA} is present, so the no-driver assertions do not apply; the plugin says: {r}"
        )),
        Here::Usable { devices } => Some(format!(
            "the cuda plugin is usable here ({devices} GPU(s)), so the no-GPU assertions do not apply"
        )),
    }
}

/// The checks every "cannot run" reason must pass: it names the component
/// and gives a hint, on one line each.
fn check_reason_is_complete(r: &SkipReason) {
    assert!(!r.message.is_empty(), "{r}");
    assert!(
        r.component.as_deref().is_some_and(|c| !c.is_empty()),
        "no component: {r}"
    );
    assert!(
        r.hint.as_deref().is_some_and(|h| !h.is_empty()),
        "no hint: {r}"
    );
    assert!(!r.to_string().contains('\n'), "one line: {r}");
}

/// The no-driver reason: libcuda.so.1 is missing, and the Debian package
/// that brings it is named.
fn check_no_driver_reason(r: &SkipReason) {
    check_reason_is_complete(r);
    assert!(
        r.message.contains(LIBCUDA),
        "the reason must name {LIBCUDA}: {r}"
    );
    assert_eq!(r.component.as_deref(), Some(LIBCUDA), "{r}");
    let hint = r.hint.as_deref().unwrap_or("");
    for package in ["libcuda1", "nvidia-driver"] {
        assert!(hint.contains(package), "the hint must name {package}: {r}");
    }
}

#[test]
fn discovery_finds_the_plugin_and_its_probe_says_why_it_cannot_run() {
    let (dir, path, here) = plugin_here();
    let d = discover_in(vec![SearchPath::new(dir.path(), PathOrigin::Env)]);
    assert_eq!(d.candidates.len(), 1, "{:#?}", d.candidates);
    assert_eq!(d.candidates[0].path, path);
    if let Some(note) = skip_note(&here) {
        println!("skipped (no-GPU assertions): {note}");
        if let Here::Unusable(r) = &here {
            check_reason_is_complete(r);
        }
        if let Here::Usable { devices } = here {
            assert!(devices >= 1);
            assert!(
                matches!(&d.candidates[0].outcome, Outcome::Loaded { name, devices: n, .. } if name == "cuda" && *n == Some(devices)),
                "{:?}",
                d.candidates[0].outcome
            );
            assert!(d.plugin("cuda").is_some());
        }
        return;
    }
    let Outcome::Skipped(r) = &d.candidates[0].outcome else {
        panic!(
            "without {LIBCUDA} the plugin must be skipped: {:?}",
            d.candidates[0].outcome
        );
    };
    assert_eq!(r.kind, SkipKind::Unusable, "{r}");
    check_no_driver_reason(r);
    assert!(
        matches!(&here, Here::NoDriver(first) if first == r),
        "discovery and load_plugin agree"
    );
    assert!(
        r.message.contains("cuda"),
        "the reason names the backend: {r}"
    );
    assert!(d.plugins.is_empty());

    // The host survives loading, probing and unloading it again and again,
    // and the answer does not change.
    for _ in 0..3 {
        let again = load_plugin(&path).expect_err("still unusable");
        assert_eq!(&again, r);
    }
    let d2 = discover_in(vec![SearchPath::new(&path, PathOrigin::Env)]);
    assert!(matches!(&d2.candidates[0].outcome, Outcome::Skipped(r2) if r2 == r));
}

#[test]
fn explicit_cuda_is_a_typed_error_and_auto_falls_back_to_the_cpu() {
    let (dir, path, here) = plugin_here();
    let reg = Registry::from_discovery(discover_in(vec![SearchPath::new(
        dir.path(),
        PathOrigin::Env,
    )]));
    if let Some(note) = skip_note(&here) {
        println!("skipped (no-GPU assertions): {note}");
        if let Here::Usable { .. } = here {
            let d = reg
                .device("cuda")
                .expect("a usable cuda plugin offers cuda");
            assert_eq!(d.label(), "cuda:0");
            assert_eq!(reg.device("cuda:0").unwrap(), d);
            assert_eq!(reg.device("auto").unwrap(), d, "auto prefers the GPU");
        }
        return;
    }
    for request in ["cuda", "cuda:0", "CUDA"] {
        match reg.device(request) {
            Err(Error::DeviceUnavailable {
                requested,
                reason,
                hint,
            }) => {
                assert_eq!(requested, request);
                assert!(reason.contains(LIBCUDA), "{reason}");
                assert!(
                    reason.contains(&path.display().to_string()),
                    "names the file: {reason}"
                );
                assert!(
                    hint.as_deref().is_some_and(|h| h.contains("libcuda1")),
                    "{hint:?}"
                );
                let text = reg.device(request).unwrap_err().to_string();
                assert!(text.contains(request) && text.contains(LIBCUDA), "{text}");
            }
            other => panic!("{request}: expected DeviceUnavailable, got {other:?}"),
        }
    }
    let auto = reg.device("auto").expect("auto always has the CPU");
    assert!(auto.is_builtin_cpu(), "{auto}");
    assert!(reg.devices().iter().all(|e| e.device.is_builtin_cpu()));
}

/// The `sunrise` command copied into a scratch directory with the plugin
/// beside it, so that its own-directory search finds exactly this plugin.
struct Cli {
    dir: TempDir,
    exe: PathBuf,
}

impl Cli {
    fn new() -> Cli {
        let built = common::cli_binary();
        let plugin = common::cuda_plugin();
        let dir = TempDir::new("cuda-cli");
        let exe = dir.copy_in(&built, "sunrise");
        dir.copy_in(&plugin, CUDA_PLUGIN);
        Cli { dir, exe }
    }

    fn run(&self, args: &[&str], device: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .env_remove("SUNRISE_BACKEND_PATH")
            .env_remove("SUNRISE_LOG")
            .env_remove("SUNRISE_CPU_ISA")
            .env("SUNRISE_CUDA_CACHE_DIR", self.dir.path().join("cache"));
        match device {
            Some(d) => cmd.env("SUNRISE_DEVICE", d),
            None => cmd.env_remove("SUNRISE_DEVICE"),
        };
        cmd.output().expect("run sunrise")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn both(o: &Output) -> String {
    format!("{}\n--- stderr ---\n{}", stdout(o), stderr(o))
}

fn cuda_candidate(v: &serde_json::Value) -> serde_json::Value {
    v["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c["path"].as_str().is_some_and(|p| p.ends_with(CUDA_PLUGIN)))
        .cloned()
        .unwrap_or_else(|| panic!("doctor does not list {CUDA_PLUGIN}: {v:#}"))
}

#[test]
fn the_command_reports_the_cuda_candidate_and_exits_by_the_requested_device() {
    let (_dir, _path, here) = plugin_here();
    let cli = Cli::new();
    let json = cli.run(&["doctor", "--json"], Some("cuda"));
    let v: serde_json::Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(&json)));
    let cand = cuda_candidate(&v);

    if let Some(note) = skip_note(&here) {
        println!("skipped (no-GPU assertions): {note}");
        if let Here::Usable { .. } = here {
            assert_eq!(json.status.code(), Some(0), "{}", both(&json));
            assert_eq!(cand["status"], "loaded", "{cand}");
            assert_eq!(v["selected"], "cuda:0");
            let dev = v["devices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["device"] == "cuda:0")
                .cloned();
            let dev = dev.unwrap_or_else(|| panic!("no cuda:0 in {v:#}"));
            for key in [
                "name",
                "compute_capability",
                "driver_version",
                "library_versions",
            ] {
                assert!(
                    dev[key].as_str().is_some_and(|s| !s.is_empty()),
                    "{key}: {dev}"
                );
            }
        } else {
            assert_eq!(json.status.code(), Some(1), "{}", both(&json));
        }
        return;
    }

    // doctor --json, SUNRISE_DEVICE=cuda: the candidate with its reason, exit 1.
    assert_eq!(json.status.code(), Some(1), "{}", both(&json));
    assert_eq!(cand["status"], "skipped", "{cand}");
    assert_eq!(cand["kind"], "unusable", "{cand}");
    assert_eq!(cand["component"], LIBCUDA, "{cand}");
    assert!(cand["reason"].as_str().unwrap().contains(LIBCUDA), "{cand}");
    assert!(
        cand["hint"].as_str().unwrap().contains("libcuda1"),
        "{cand}"
    );
    assert!(v["selected"].is_null(), "{v:#}");
    let err = v["error"].as_str().expect("an error");
    assert!(err.contains(LIBCUDA) && err.contains("\"cuda\""), "{err}");

    // doctor (text), SUNRISE_DEVICE=cuda: the same, for people; exit 1.
    let text = cli.run(&["doctor"], Some("cuda"));
    assert_eq!(text.status.code(), Some(1), "{}", both(&text));
    let out = stdout(&text);
    for part in [
        "skipped",
        CUDA_PLUGIN,
        &format!("missing: {LIBCUDA}"),
        "hint: install",
        "libcuda1",
        "Requested device \"cuda\": UNUSABLE",
    ] {
        assert!(out.contains(part), "doctor must say {part:?}:\n{out}");
    }

    // doctor, auto: the same candidate listed, the CPU chosen, exit 0.
    let auto = cli.run(&["doctor"], None);
    assert_eq!(auto.status.code(), Some(0), "{}", both(&auto));
    let out = stdout(&auto);
    assert!(out.contains(&format!("missing: {LIBCUDA}")), "{out}");
    assert!(
        out.contains("Requested device \"auto\": OK, using cpu"),
        "{out}"
    );

    // Choosing the device: auto logs exactly one line about the fallback.
    let info = cli.run(&["info"], Some("auto"));
    assert!(info.status.success(), "{}", both(&info));
    assert!(
        stdout(&info).contains("selected (auto): cpu"),
        "{}",
        both(&info)
    );
    let err = stderr(&info);
    let about: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cuda") || l.contains("CPU"))
        .collect();
    assert_eq!(
        about.len(),
        1,
        "exactly one line about the fallback:\n{err}"
    );
    assert!(
        about[0].contains("SUNRISE_DEVICE=auto: using the CPU"),
        "{}",
        about[0]
    );
    assert!(
        about[0].contains(CUDA_PLUGIN) && about[0].contains(LIBCUDA),
        "{}",
        about[0]
    );

    // The GPU benchmark needs the GPU, and says why it cannot run.
    let bench = cli.run(&["bench", "cuda", "--json"], None);
    assert_eq!(bench.status.code(), Some(1), "{}", both(&bench));
    assert!(stdout(&bench).is_empty(), "{}", both(&bench));
    let err = stderr(&bench);
    assert!(
        err.contains("sunrise bench cuda needs a usable CUDA device"),
        "{err}"
    );
    assert!(err.contains(LIBCUDA), "{err}");

    // Asked for explicitly, the device is an error that says why, from
    // every command that takes one; nothing is trained on the CPU instead.
    for args in [&["info"][..], &["train", "--epochs", "1", "--quiet"][..]] {
        let o = cli.run(args, Some("cuda"));
        assert!(!o.status.success(), "{args:?}: {}", both(&o));
        assert!(
            o.status.code().is_some(),
            "{args:?} exits, not killed: {}",
            both(&o)
        );
        let err = stderr(&o);
        assert!(
            err.contains("error: device \"cuda\" is unavailable"),
            "{args:?}: {err}"
        );
        assert!(err.contains(LIBCUDA), "{args:?}: {err}");
        assert!(
            !stdout(&o).contains("epoch"),
            "{args:?} must not train: {}",
            both(&o)
        );
    }
}

/// The NVIDIA libraries that must never be linked (all are dlopened).
const NVIDIA_LIBS: [&str; 6] = [
    "libcuda",
    "libcudnn",
    "libcublas",
    "libnvrtc",
    "libcudart",
    "libnvidia",
];

#[test]
fn the_plugin_links_no_nvidia_library() {
    let plugin = common::cuda_plugin();
    let o = Command::new("ldd")
        .arg(&plugin)
        .output()
        .expect("run ldd (Debian: libc-bin)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "ldd {}: {}{}",
        plugin.display(),
        out,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("libc.so"), "ldd lists the C library: {out}");
    for lib in NVIDIA_LIBS {
        assert!(
            !out.contains(lib),
            "{} links {lib}:\n{out}",
            plugin.display()
        );
    }
    println!("ldd {}:\n{out}", plugin.display());
}

fn cargo_tree(args: &[&str]) -> String {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let o = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--prefix", "none", "--manifest-path"])
        .arg(&manifest)
        .args(args)
        .output()
        .expect("run cargo tree");
    assert!(
        o.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_plugin_depends_on_the_abi_crate_alone_and_loads_cuda_at_run_time() {
    let tree = cargo_tree(&["-e", "normal", "-p", common::CUDA_CRATE]);
    let ours: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("sunrise"))
        .collect();
    assert_eq!(
        ours,
        BTreeSet::from(["sunrise-backend-api", "sunrise-backend-cuda"]),
        "workspace crates in the plugin's tree:\n{tree}"
    );
    assert!(tree.lines().any(|l| l.starts_with("cudarc ")), "{tree}");

    // cudarc's features: dynamic loading, one fixed CUDA version, never the
    // build machine's toolkit.
    let features = cargo_tree(&["-e", "features", "-p", common::CUDA_CRATE, "-i", "cudarc"]);
    let on: BTreeSet<&str> = features
        .lines()
        .filter_map(|l| l.strip_prefix("cudarc feature \""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(on.contains("dynamic-loading"), "{on:?}");
    assert!(
        !on.contains("dynamic-linking") && !on.contains("static-linking"),
        "{on:?}"
    );
    assert!(!on.contains("cuda-version-from-build-system"), "{on:?}");
    let versions: Vec<&&str> = on
        .iter()
        .filter(|f| {
            f.strip_prefix("cuda-")
                .is_some_and(|v| v.len() == 5 && v.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    assert_eq!(versions.len(), 1, "exactly one cuda-1xxx0 feature: {on:?}");
}
