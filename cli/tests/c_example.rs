//! The example C99 plugin that `sunrise-backend-dev` ships
//! (`backend-api/examples/c/example_backend.c`) against `sunrise
//! conformance`, as debian/tests/c-plugin runs it from the installed files:
//! built with `cc -std=c99 -Werror` against the checked-in header, put on
//! `SUNRISE_BACKEND_PATH`, it passes `sunrise conformance --device example`
//! (exit 0, last line `N passed, 0 failed`); built with
//! `-DSUNRISE_EXAMPLE_WRONG_ADD` it fails (exit 1) with a `FAILED add f32
//! ...: largest error ...` line.
//!
//! Needs a C compiler (`$CC`, else `cc`); without one each test prints why
//! it is skipped and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

const SUNRISE: &str = env!("CARGO_BIN_EXE_sunrise");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ is inside the workspace")
        .to_path_buf()
}

/// The C compiler to use, if one runs.
fn compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let ok = Command::new(&cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipped: no working C compiler `{cc}` on PATH (set CC to use another)");
        return None;
    }
    Some(cc)
}

/// Builds the example into a fresh directory of its own (the plugin path
/// holds nothing else); `None` without a compiler.
fn build(test: &str, defines: &[&str]) -> Option<PathBuf> {
    let cc = compiler()?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("c_example-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the plugin directory");
    let source = repo().join("backend-api/examples/c/example_backend.c");
    let include = repo().join("backend-api/include");
    let so = dir.join("libsunrise_backend_example.so");
    let out = Command::new(&cc)
        .args([
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
        ])
        .arg("-I")
        .arg(&include)
        .args(defines)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} failed on {}:\n{}{}",
        source.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

/// Runs `sunrise conformance --device example` with `dir` as the plugin
/// path: exit code, stdout, stderr.
fn conformance(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(SUNRISE)
        .args(["conformance", "--device", "example"])
        .args(extra)
        .env("SUNRISE_BACKEND_PATH", dir)
        .env_remove("SUNRISE_DEVICE")
        .env_remove("SUNRISE_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running {SUNRISE}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Shown with --nocapture: the table is what a backend author sees.
    println!(
        "$ SUNRISE_BACKEND_PATH={} sunrise conformance --device example {}",
        dir.display(),
        extra.join(" ")
    );
    println!("{stdout}");
    (out.status.code(), stdout, stderr)
}

/// True for `N passed, 0 failed` (`zero_failed`) or `N passed, M failed`
/// with M > 0.
fn is_summary(line: &str, zero_failed: bool) -> bool {
    let Some((passed, failed)) = line.split_once(" passed, ") else {
        return false;
    };
    let Some(failed) = failed.strip_suffix(" failed") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(passed) && digits(failed) && (failed == "0") == zero_failed
}

#[test]
fn example_plugin_passes_conformance() {
    let Some(dir) = build("good", &[]) else {
        return;
    };
    let (code, stdout, stderr) = conformance(&dir, &[]);
    assert_eq!(
        code,
        Some(0),
        "exit status\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        is_summary(last, true),
        "last line {last:?} is not `N passed, 0 failed`\n{stdout}"
    );
    // Every pair the example lists has its row.
    for op in ["fill", "copy", "neg", "relu", "add", "sub", "mul"] {
        assert!(
            stdout.lines().any(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(op) && w.next() == Some("f32")
            }),
            "no row for ({op}, f32):\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_add_fails_conformance_naming_op_dtype_and_error() {
    let Some(dir) = build("wrong-add", &["-DSUNRISE_EXAMPLE_WRONG_ADD"]) else {
        return;
    };
    let (code, stdout, stderr) = conformance(&dir, &["--no-training"]);
    assert_eq!(
        code,
        Some(1),
        "exit status\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert!(
        failed
            .iter()
            .any(|l| l.starts_with("FAILED add f32 ") && l.contains("largest error")),
        "no `FAILED add f32 ...: largest error ...` line:\n{stdout}"
    );
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        is_summary(last, false),
        "last line {last:?} is not `N passed, M failed` with M > 0\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
