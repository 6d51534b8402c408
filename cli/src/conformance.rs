//! `sunrise conformance [--device NAME] [--ops PATTERN] [--json]`: the op
//! conformance suite of `sunrise::conformance` on one device, as a table
//! (one row per listed (op, dtype) pair, then the buffer, error-path and
//! training checks) that ends with `N passed, M failed`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};
use sunrise::conformance::{self, CheckRow, Family, Options, PairRow, Report, Row};
use sunrise::{DType, Device};

/// Arguments of `sunrise conformance`.
#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// Only ops whose name matches one of these patterns (comma-separated; `*` matches any run of characters, e.g. `conv*,add`). Skips the buffer and training checks.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    ops: Vec<String>,
    /// Skip the short training run compared with the CPU.
    #[arg(long)]
    no_training: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The device to test. `cpu` means the CPU backend loaded as a plugin when
/// discovery found one (the built-in backend shadows it everywhere else);
/// otherwise the built-in backend itself, which is then its own reference.
fn device(request: &str) -> Result<(Device, Option<String>), String> {
    let reg = sunrise::registry::registry();
    let is_cpu = matches!(
        request.trim().to_ascii_lowercase().as_str(),
        "cpu" | "cpu:0"
    );
    if is_cpu {
        let discovery = reg.discovery();
        if let Some(probed) = discovery.probed_plugin("cpu") {
            let path = probed.path.display().to_string();
            // The registry's own instance: initialised once, destroyed by
            // the registry at shutdown.
            let p = probed
                .init()
                .map_err(|e| format!("the CPU plugin {path} could not be initialised: {e}"))?;
            let note = format!("the CPU backend loaded as a plugin from {path}");
            return Ok((
                Device::from_backend(p.backend, 0, "cpu-plugin:0"),
                Some(note),
            ));
        }
        let note = "no CPU plugin on the search path: the built-in CPU backend is compared with itself (put libsunrise_backend_cpu.so on SUNRISE_BACKEND_PATH to test the plugin)";
        return Ok((Device::cpu(), Some(note.into())));
    }
    let d = reg.device(request).map_err(|e| e.to_string())?;
    Ok((d, None))
}

/// Runs the suite; exit status 0 when everything passed, 1 when something
/// failed, 2 when the device cannot be opened.
pub fn run(args: &ConformanceArgs, request: &str) -> ExitCode {
    let (dev, note) = match device(request) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        ops: args
            .ops
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        training: !args.no_training,
    };
    let json = args.json;
    if !json {
        header(&dev, note.as_deref(), &opts);
    }
    let report = conformance::run(&dev, &opts, &mut |row| {
        if json {
            return;
        }
        let line = match row {
            Row::Pair(p) => p.line(),
            Row::Check(c) => c.line(),
        };
        println!("  {line}");
        let _ = std::io::stdout().flush();
    });
    if json {
        println!("{}", to_json(&report, note.as_deref()));
    } else {
        footer(&report);
    }
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn header(dev: &Device, note: Option<&str>, opts: &Options) {
    let listed = dev.backend().supported_ops().len();
    println!(
        "conformance of {dev} (backend {}): {listed} (op, dtype) pairs listed, each against the built-in CPU backend",
        dev.backend().name()
    );
    if let Some(n) = note {
        println!("note: {n}");
    }
    if !opts.ops.is_empty() {
        println!("ops matching: {}", opts.ops.join(", "));
    }
    println!(
        "tolerances (relative to |cpu| + 0.1 max|cpu|; gradients x10): {}",
        tolerances()
    );
}

/// The tolerance of each family, from [`Family::tol`] itself.
fn tolerances() -> String {
    let tol = |f: Family, d: DType| match f.tol(d, false) {
        Some(t) => format!("{d} {t:.0e}"),
        None => format!("{d} bit-exact"),
    };
    Family::ALL
        .iter()
        .map(|&f| {
            format!(
                "{} {}, {}",
                f.name(),
                tol(f, DType::F32),
                tol(f, DType::F64)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn footer(report: &Report) {
    if !report.unlisted.is_empty() {
        println!(
            "not listed by {} (these ops run on the CPU): {}",
            report.device,
            report.unlisted.join(", ")
        );
    }
    let failures: Vec<&str> = report.failures().collect();
    if !failures.is_empty() {
        println!("failures:");
        for f in failures {
            println!("FAILED {f}");
        }
    }
    println!("{:.1} s", report.seconds);
    println!("{}", report.summary());
}

fn pair_json(p: &PairRow) -> Value {
    json!({
        "op": p.op.name(),
        "dtype": p.dtype.name(),
        "cases": p.cases,
        "outputs": p.outputs,
        "worst_of_tolerance": p.worst,
        "tolerances": p.tolerances,
        "error_paths": p.error_paths,
        "passed": p.failures.is_empty(),
        "failures": p.failures,
        "seconds": p.seconds,
    })
}

fn check_json(c: &CheckRow) -> Value {
    json!({
        "name": c.name,
        "detail": c.detail,
        "passed": c.failures.is_empty(),
        "failures": c.failures,
        "seconds": c.seconds,
    })
}

fn to_json(r: &Report, note: Option<&str>) -> Value {
    json!({
        "device": r.device,
        "backend": r.backend,
        "note": note,
        "pairs": r.pairs.iter().map(pair_json).collect::<Vec<_>>(),
        "checks": r.checks.iter().map(check_json).collect::<Vec<_>>(),
        "unlisted": r.unlisted,
        "passed": r.passed(),
        "failed": r.failed(),
        "seconds": r.seconds,
    })
}
