//! ONNX Runtime's CPU provider, the conv2d peer: `scripts/onnxruntime_conv_bench.py`
//! run as a subprocess (numpy, onnx and onnxruntime from PyPI; see
//! `scripts/setup-bench-peers.sh`). Optional: when Python or the packages
//! are missing, the reason is reported and our figures still print.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::conv::ConvCase;

/// The script's file name.
const SCRIPT: &str = "onnxruntime_conv_bench.py";

/// Where the script is when `--scripts` is not given: `SUNRISE_SCRIPTS_DIR`
/// at build time (the Debian package sets `/usr/share/sunrise/scripts`), else
/// the source tree's `scripts/`. A `const`, so only the chosen path is
/// compiled in: the build directory must not leak into a packaged binary
/// (it would also make two builds in different directories differ).
const DEFAULT_SCRIPT_DIR: &str = match option_env!("SUNRISE_SCRIPTS_DIR") {
    Some(dir) => dir,
    None => concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts"),
};

/// The directory of the script: `--scripts`, else [`DEFAULT_SCRIPT_DIR`].
pub(crate) fn script_dir(arg: Option<&Path>) -> PathBuf {
    arg.map_or_else(|| PathBuf::from(DEFAULT_SCRIPT_DIR), Path::to_path_buf)
}

/// One ONNX Runtime measurement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    /// Median seconds per run.
    pub seconds: f64,
    /// GFLOP/s at that median.
    pub gflops: f64,
    /// `onnxruntime <version>, <provider>`.
    pub detail: String,
}

/// Runs the script for `case` on `threads` intra-op threads; the error is
/// the reason to print after `peer: unavailable`.
pub(crate) fn measure(
    python: &str,
    dir: &Path,
    case: &ConvCase,
    threads: usize,
    budget: Duration,
) -> Result<Figure, String> {
    let script = dir.join(SCRIPT);
    if !script.is_file() {
        return Err(format!(
            "{} not found; pass --scripts DIR",
            script.display()
        ));
    }
    let num = |v: usize| v.to_string();
    let out = Command::new(python)
        .arg(&script)
        .args([
            "--n",
            &num(case.n),
            "--c",
            &num(case.c),
            "--h",
            &num(case.h),
        ])
        .args([
            "--w",
            &num(case.w),
            "--k",
            &num(case.k),
            "--kernel",
            &num(case.kernel),
        ])
        .args(["--stride", &num(case.stride), "--pad", &num(case.pad)])
        .args([
            "--threads",
            &num(threads),
            "--seconds",
            &budget.as_secs_f64().to_string(),
        ])
        .env("OMP_NUM_THREADS", num(threads))
        .output()
        .map_err(|e| format!("cannot run {python}: {e}; install python3"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: Option<Value> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok());
    match line {
        Some(v) if v["error"].is_string() => Err(v["error"].as_str().unwrap_or("").to_string()),
        Some(v) => figure(&v).ok_or_else(|| format!("unexpected output of {SCRIPT}: {v}")),
        None => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("no output");
            Err(format!("{SCRIPT} failed ({}): {last}", out.status))
        }
    }
}

fn figure(v: &Value) -> Option<Figure> {
    Some(Figure {
        seconds: v["seconds"].as_f64()?,
        gflops: v["gflops"].as_f64()?,
        detail: format!(
            "onnxruntime {}, {}",
            v["version"].as_str().unwrap_or("?"),
            v["provider"].as_str().unwrap_or("?")
        ),
    })
}
