//! The plugin lifecycle, counted with a real plugin: the `lifecycle`
//! fixture (`libsunrise_fixture_lifecycle.so`, the CPU kernels) appends
//! `probe`, `init` or `destroy` to the file named by `SUNRISE_LIFECYCLE_LOG`
//! at each call. The `sunrise` command must probe it without initialising
//! it when the CPU is chosen, initialise and destroy it exactly once when
//! its device is chosen or every device is listed, and the registry must
//! refuse calls into it after teardown instead of making them.
//!
//! Run with `--nocapture` to see the counts of each case.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{TempDir, LIFECYCLE_CRATE, LIFECYCLE_LOG_VAR};
use sunrise::plugin::{scan_in, Destroyed, Outcome, PathOrigin, SearchPath};
use sunrise::registry::Registry;
use sunrise::{DType, Tensor};

const PLUGIN_FILE: &str = "libsunrise_backend_lifecycle.so";

/// Calls counted in one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    probe: usize,
    init: usize,
    destroy: usize,
}

fn counts(log: &Path) -> Counts {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let n = |e: &str| text.lines().filter(|l| *l == e).count();
    Counts {
        probe: n("probe"),
        init: n("init"),
        destroy: n("destroy"),
    }
}

/// The `sunrise` command, copied once into a directory of its own, so that
/// its own-directory plugin search finds nothing but itself.
fn sunrise_exe() -> &'static Path {
    static EXE: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, exe) = EXE.get_or_init(|| {
        let dir = TempDir::new("lifecycle-cli");
        let exe = dir.copy_in(&common::cli_binary(), "sunrise");
        (dir, exe)
    });
    exe
}

/// One case: a scratch directory holding the fixture as
/// `libsunrise_backend_lifecycle.so` and the log file.
struct Case {
    dir: TempDir,
    log: PathBuf,
}

impl Case {
    fn new(tag: &str) -> Case {
        let dir = TempDir::new(tag);
        dir.copy_cdylib(LIFECYCLE_CRATE, PLUGIN_FILE);
        let log = dir.path().join("calls.log");
        Case { dir, log }
    }

    /// Runs `sunrise args` with the fixture on `SUNRISE_BACKEND_PATH`.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(sunrise_exe());
        cmd.args(args)
            .env("SUNRISE_BACKEND_PATH", self.dir.path())
            .env(LIFECYCLE_LOG_VAR, &self.log)
            .env("SUNRISE_LOG", "info")
            .env_remove("SUNRISE_DEVICE")
            .env_remove("SUNRISE_CPU_ISA")
            .env_remove("SUNRISE_LIFECYCLE_SCORE")
            .env_remove("SUNRISE_LIFECYCLE_INIT_FAIL")
            .env_remove("SUNRISE_LIFECYCLE_DEVICES");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run sunrise")
    }

    /// Runs the command, prints and returns the counts.
    fn counted(&self, what: &str, args: &[&str], env: &[(&str, &str)]) -> (Output, Counts) {
        let before = counts(&self.log);
        let out = self.run(args, env);
        let after = counts(&self.log);
        let c = Counts {
            probe: after.probe - before.probe,
            init: after.init - before.init,
            destroy: after.destroy - before.destroy,
        };
        println!(
            "{what:<48} probe {} init {} destroy {}  (exit {:?})",
            c.probe,
            c.init,
            c.destroy,
            out.status.code()
        );
        (out, c)
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A run that picks a device and stops right after (the checkpoint is
/// missing): the cheapest command that goes through device choice alone.
const CHOOSE_ONLY: [&str; 3] = [
    "eval",
    "--load",
    "/nonexistent/sunrise-lifecycle.safetensors",
];

#[test]
fn a_cpu_run_probes_the_plugin_and_never_initialises_it() {
    let case = Case::new("lifecycle-cpu");
    let (o, c) = case.counted(
        "--device cpu train --epochs 1 --quiet",
        &["--device", "cpu", "train", "--epochs", "1", "--quiet"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("device cpu"), "{}", text(&o));
    assert!(c.probe >= 1, "{c:?}");
    assert_eq!((c.init, c.destroy), (0, 0), "{c:?}");

    let (_, c) = case.counted(
        "SUNRISE_DEVICE=cpu eval (device choice only)",
        &CHOOSE_ONLY,
        &[("SUNRISE_DEVICE", "cpu")],
    );
    assert!(c.probe >= 1, "{c:?}");
    assert_eq!((c.init, c.destroy), (0, 0), "{c:?}");

    // auto: the plugin's score (5) is below the built-in CPU's (10).
    let (_, c) = case.counted("auto, plugin scores below the CPU", &CHOOSE_ONLY, &[]);
    assert_eq!((c.init, c.destroy), (0, 0), "{c:?}");

    // --help lists the plugin by name, from its probe alone.
    let (o, c) = case.counted("--help", &["--help"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("plugins found on the search path: lifecycle"),
        "{}",
        text(&o)
    );
    assert!(c.probe >= 1, "{c:?}");
    assert_eq!((c.init, c.destroy), (0, 0), "{c:?}");
}

#[test]
fn choosing_the_plugin_initialises_and_destroys_it_exactly_once() {
    let case = Case::new("lifecycle-chosen");
    let (o, c) = case.counted(
        "--device lifecycle train --epochs 1 --quiet",
        &["--device", "lifecycle", "train", "--epochs", "1", "--quiet"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("device lifecycle:0"), "{t}");
    assert!(
        !t.contains("fell back"),
        "the fixture lists every CPU op: {t}"
    );
    assert!(c.probe >= 1, "{c:?}");
    assert_eq!((c.init, c.destroy), (1, 1), "{c:?}");

    // auto with the plugin scoring above the CPU initialises it.
    let (_, c) = case.counted(
        "auto, plugin scores above the CPU",
        &CHOOSE_ONLY,
        &[("SUNRISE_LIFECYCLE_SCORE", "50")],
    );
    assert_eq!((c.init, c.destroy), (1, 1), "{c:?}");
}

#[test]
fn doctor_and_info_initialise_every_plugin_and_destroy_each_once() {
    let case = Case::new("lifecycle-doctor");
    let (o, c) = case.counted("doctor", &["doctor"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("lifecycle:0"), "doctor lists the device: {t}");
    assert!(
        t.contains("Requested device \"auto\": OK, using cpu"),
        "{t}"
    );
    assert_eq!((c.init, c.destroy), (1, 1), "{c:?}");

    let (o, c) = case.counted(
        "doctor --json, --device lifecycle",
        &["--device", "lifecycle", "doctor", "--json"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["selected"], "lifecycle:0");
    let cand = &v["candidates"][0];
    assert_eq!(cand["status"], "loaded", "{cand}");
    assert_eq!(cand["devices"], 1, "{cand}");
    assert_eq!((c.init, c.destroy), (1, 1), "{c:?}");

    let (o, c) = case.counted("info", &["info"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("lifecycle:0"), "{}", text(&o));
    assert_eq!((c.init, c.destroy), (1, 1), "{c:?}");
}

#[test]
fn auto_moves_on_from_a_plugin_whose_init_fails_or_that_has_no_device() {
    let case = Case::new("lifecycle-auto");
    let (o, c) = case.counted(
        "auto, score 50, init fails",
        &CHOOSE_ONLY,
        &[
            ("SUNRISE_LIFECYCLE_SCORE", "50"),
            ("SUNRISE_LIFECYCLE_INIT_FAIL", "1"),
        ],
    );
    assert_eq!(
        (c.init, c.destroy),
        (1, 0),
        "a failed init is not destroyed: {c:?}"
    );
    let t = text(&o);
    assert!(t.contains("SUNRISE_DEVICE=auto: using the CPU"), "{t}");
    assert!(t.contains("init fails on purpose"), "{t}");

    let (o, c) = case.counted(
        "auto, score 50, no device",
        &CHOOSE_ONLY,
        &[
            ("SUNRISE_LIFECYCLE_SCORE", "50"),
            ("SUNRISE_LIFECYCLE_DEVICES", "0"),
        ],
    );
    assert_eq!((c.init, c.destroy), (1, 1), "{c:?}");
    assert!(text(&o).contains("has no device"), "{}", text(&o));

    let (o, c) = case.counted(
        "--device lifecycle, init fails",
        &CHOOSE_ONLY,
        &[
            ("SUNRISE_DEVICE", "lifecycle"),
            ("SUNRISE_LIFECYCLE_INIT_FAIL", "1"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(PLUGIN_FILE) && t.contains("init fails on purpose"),
        "{t}"
    );
    assert_eq!((c.init, c.destroy), (1, 0), "{c:?}");
}

#[test]
fn a_misnamed_plugin_is_selected_by_its_probe_name_and_doctor_warns() {
    let dir = TempDir::new("lifecycle-misnamed");
    dir.copy_cdylib(LIFECYCLE_CRATE, "libsunrise_backend_vendorx.so");
    let log = dir.path().join("calls.log");
    let case = Case { dir, log };
    let (o, c) = case.counted(
        "--device vendorx (file name, not probe name)",
        &CHOOSE_ONLY,
        &[("SUNRISE_DEVICE", "vendorx")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("libsunrise_backend_vendorx.so was found"), "{t}");
    assert!(t.contains("calls the backend `lifecycle`"), "{t}");
    assert!(t.contains("use --device lifecycle"), "{t}");
    assert_eq!(c.init, 0, "{c:?}");

    let o = case.run(&["doctor"], &[]);
    let t = text(&o);
    assert!(
        t.contains("warning: ") && t.contains("its probe calls it `lifecycle`"),
        "{t}"
    );
    let o = case.run(&["doctor", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let warnings = v["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{v:#}");
    assert!(
        warnings[0].as_str().unwrap().contains("--device lifecycle"),
        "{v:#}"
    );
    assert_eq!(v["candidates"][0]["file_stem"], "vendorx");
    assert!(v["candidates"][0]["warning"].is_string(), "{v:#}");
}

/// The same rules inside one process, through the registry's API: a scan
/// initialises nothing, the CPU initialises nothing, a chosen device
/// initialises once, shutdown destroys once, and calls after it are refused
/// with an error instead of reaching the plugin. The only test here that
/// loads the fixture in this process (and sets the log variable here).
#[test]
fn in_process_the_registry_initialises_on_demand_and_tears_down_once() {
    let dir = TempDir::new("lifecycle-in-process");
    dir.copy_cdylib(LIFECYCLE_CRATE, PLUGIN_FILE);
    let log = dir.path().join("calls.log");
    std::env::set_var(LIFECYCLE_LOG_VAR, &log);

    let d = scan_in(vec![SearchPath::new(dir.path(), PathOrigin::Env)]);
    assert!(matches!(
        &d.candidates[0].outcome,
        Outcome::Loaded { name, devices: None, abi_minor: None, .. } if name == "lifecycle"
    ));
    assert!(d.plugins.is_empty());
    let reg = Registry::from_discovery(d);
    assert!(reg.device("cpu").unwrap().is_builtin_cpu());
    assert!(reg.device("auto").unwrap().is_builtin_cpu());
    let c = counts(&log);
    println!("in process, scan + cpu + auto:                  {c:?}");
    assert_eq!((c.probe, c.init, c.destroy), (1, 0, 0));

    let dev = reg.device("lifecycle").expect("the fixture's device");
    assert_eq!(dev.label(), "lifecycle:0");
    assert_eq!(reg.device("lifecycle:0").unwrap(), dev);
    assert_eq!(reg.devices().len(), 2);
    let x = Tensor::full(&[4], 2.0, DType::F32, &dev).unwrap();
    let y = x.add(&x).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![4.0; 4]);
    assert_eq!(
        counts(&log).init,
        1,
        "init once, however often the device is asked for"
    );

    assert_eq!(reg.shutdown(), vec!["lifecycle".to_string()]);
    let c = counts(&log);
    println!("in process, after device + ops + shutdown:      {c:?}");
    assert_eq!((c.probe, c.init, c.destroy), (1, 1, 1));

    // After teardown: calls are refused with an error, never made.
    let err = x.add(&x).unwrap_err().to_string();
    assert!(err.contains("shut down"), "{err}");
    assert!(y.to_vec::<f32>().is_err());
    assert!(reg.device("lifecycle").is_err(), "no init after shutdown");
    assert!(reg.device("cpu").is_ok(), "the CPU still works");
    drop((x, y, dev));
    assert!(
        reg.shutdown().is_empty(),
        "a second shutdown destroys nothing"
    );
    drop(reg);
    let c = counts(&log);
    println!("in process, after late drops and registry drop: {c:?}");
    assert_eq!((c.probe, c.init, c.destroy), (1, 1, 1));

    // A plugin loaded outside any registry: destroy by hand, exactly once.
    let p = sunrise::plugin::load_plugin(&dir.path().join(PLUGIN_FILE)).unwrap();
    assert_eq!(p.destroy(), Destroyed::Now);
    assert_eq!(p.destroy(), Destroyed::Already);
    assert!(p.backend.alloc(0, 16).is_err());
    drop(p);
    let c = counts(&log);
    println!("in process, load_plugin + destroy twice + drop: {c:?}");
    assert_eq!((c.probe, c.init, c.destroy), (2, 2, 2));
    std::env::remove_var(LIFECYCLE_LOG_VAR);
}

/// The variable that makes [`child_leaves_teardown_to_exit`] do its work.
const CHILD_VAR: &str = "SUNRISE_LIFECYCLE_CHILD";

/// Run by [`a_program_that_never_shuts_down_gets_its_plugins_destroyed_at_exit`]
/// in a child process (a no-op otherwise): chooses the fixture's device
/// through the process-wide registry, leaks a tensor on it, and returns
/// without calling `shutdown`.
#[test]
fn child_leaves_teardown_to_exit() {
    if std::env::var_os(CHILD_VAR).is_none() {
        return;
    }
    let dev = sunrise::Device::parse("lifecycle").expect("the fixture's device");
    let x = Tensor::full(&[4], 1.0, DType::F32, &dev).unwrap();
    std::mem::forget(x);
}

#[test]
fn a_program_that_never_shuts_down_gets_its_plugins_destroyed_at_exit() {
    let case = Case::new("lifecycle-atexit");
    let before = counts(&case.log);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_leaves_teardown_to_exit",
            "--test-threads",
            "1",
        ])
        .env(CHILD_VAR, "1")
        .env("SUNRISE_BACKEND_PATH", case.dir.path())
        .env(LIFECYCLE_LOG_VAR, &case.log)
        .env_remove("SUNRISE_DEVICE")
        .output()
        .expect("run this test binary again");
    assert!(out.status.success(), "{}", text(&out));
    let after = counts(&case.log);
    let c = (
        after.probe - before.probe,
        after.init - before.init,
        after.destroy - before.destroy,
    );
    println!(
        "{:<48} probe {} init {} destroy {}",
        "global registry, no shutdown call (atexit)", c.0, c.1, c.2
    );
    assert_eq!(c, (1, 1, 1), "the atexit handler destroys the plugin once");
}
