//! `sunrise bench [SUITE]`: our figures beside a peer's, measured in the
//! same run, for every ISA tier this CPU has and for each thread count.
//!
//! Suites:
//! - `ops` (the default): one case per op family at every tier, beside the
//!   portable kernels and a plain memory copy.
//! - `gemm`: f32 matmul against OpenBLAS (dlopened, optional).
//! - `conv`: conv2d forward against ONNX Runtime's CPU provider (a Python
//!   subprocess, optional), plus our backward-data and backward-filter.
//! - `memory`: memory-bound ops against a memcpy of the same bytes.
//! - `train`: whole training steps of six models beside PyTorch on the
//!   CPU (a Python subprocess, optional), with each step's time split by
//!   op family and peak memory, plus the dispatch rows (see `train.rs`).
//! - `cuda`: GEMM, conv2d and an elementwise multiply on `cuda:0` against
//!   PyTorch on the same GPU (a Python subprocess, optional); one process,
//!   no tiers or threads (see `cuda.rs`).
//!
//! The tier (`SUNRISE_CPU_ISA`) and the thread pool (`SUNRISE_NUM_THREADS`)
//! are fixed once per process, so the parent re-runs itself once per tier
//! and thread count (`--child`), collects one JSON line per case, and prints
//! a table (or the lines, with `--json`).

mod conv;
mod cuda;
mod gemm;
mod memory;
mod onnx;
mod onnxruntime;
mod openblas;
mod ops;
mod peak;
mod report;
mod rounds;
mod train;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::Value;
use sunrise_backend_cpu::isa::{self, Isa};

/// A benchmark suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    /// One case per op family, every tier beside the portable kernels.
    Ops,
    /// f32 GEMM against OpenBLAS.
    Gemm,
    /// conv2d against ONNX Runtime's CPU provider.
    Conv,
    /// Memory-bound ops against a memcpy of the same bytes.
    Memory,
    /// GEMM, conv2d and elementwise on cuda:0 against PyTorch on the same GPU.
    Cuda,
    /// Training steps (and tiny-op dispatch) beside PyTorch on the CPU.
    Train,
    /// ONNX model inference (sunrise run's engine) beside ONNX Runtime's CPU provider.
    Onnx,
}

impl Suite {
    /// The name `sunrise bench` takes and the JSON `suite` key carries.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Ops => "ops",
            Suite::Gemm => "gemm",
            Suite::Conv => "conv",
            Suite::Memory => "memory",
            Suite::Cuda => "cuda",
            Suite::Train => "train",
            Suite::Onnx => "onnx",
        }
    }
}

/// Options of `sunrise bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Suite to run (default: ops).
    #[arg(value_enum)]
    suite: Option<Suite>,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Only cases whose name (or op) contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Seconds to spend on each measurement (at least 3 runs, median taken).
    #[arg(long, default_value_t = 0.3, value_parser = parse_seconds)]
    seconds: f64,
    /// ISA tiers to run, comma-separated (default: every tier this CPU has).
    #[arg(long, value_delimiter = ',', value_parser = parse_tier)]
    tiers: Vec<Isa>,
    /// Thread counts, comma-separated (default: 1,2 for gemm, conv and
    /// memory; the pool's default for ops).
    #[arg(long, value_delimiter = ',',
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    threads: Vec<usize>,
    /// Run the whole suite this many times, one round after the other (our
    /// figures and the peer's alternate), and report each row's medians
    /// (every suite but cuda).
    #[arg(long, default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100))]
    rounds: usize,
    /// Directory holding onnxruntime_conv_bench.py (default: the source
    /// tree's scripts/).
    #[arg(long)]
    scripts: Option<PathBuf>,
    /// Directory of .onnx models for the onnx suite (default: target/onnx-models
    /// beside the target/release/ this program runs from).
    #[arg(long)]
    models: Option<PathBuf>,
    /// Python interpreter for the ONNX Runtime peer.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Internal: measure at the tier and thread count the environment sets
    /// and print JSON lines.
    #[arg(long, hide = true)]
    child: bool,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in 0..=3600")),
    }
}

fn parse_tier(s: &str) -> Result<Isa, String> {
    Isa::parse(s).ok_or_else(|| format!("{s:?} is not a tier (portable, sse2, avx2, avx512, neon)"))
}

/// Why a benchmark run failed.
#[derive(Debug)]
pub enum BenchError {
    /// An op of ours failed.
    Sunrise(sunrise::Error),
    /// `--tiers` asked for a tier this CPU cannot run.
    Tier {
        /// The tier asked for.
        tier: Isa,
        /// The tiers this CPU can run.
        available: Vec<Isa>,
    },
    /// A peer failed after it had loaded.
    Peer(String),
    /// The child process could not be started.
    Spawn(std::io::Error),
    /// The child process failed.
    Child {
        /// Its tier.
        tier: Isa,
        /// Its thread count (None: the pool's default).
        threads: Option<usize>,
        /// Its exit status and the tail of its stderr.
        detail: String,
    },
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Sunrise(e) => write!(f, "{e}"),
            BenchError::Tier { tier, available } => {
                let names: Vec<&str> = available.iter().map(|t| t.name()).collect();
                write!(
                    f,
                    "tier {tier} is not available on this CPU (available: {})",
                    names.join(", ")
                )
            }
            BenchError::Peer(e) => write!(f, "peer: {e}"),
            BenchError::Spawn(e) => write!(f, "cannot start the benchmark child process: {e}"),
            BenchError::Child {
                tier,
                threads,
                detail,
            } => {
                let t = threads.map_or_else(|| "default".to_string(), |n| n.to_string());
                write!(f, "the {tier} run with {t} thread(s) failed: {detail}")
            }
        }
    }
}

impl std::error::Error for BenchError {}

impl From<sunrise::Error> for BenchError {
    fn from(e: sunrise::Error) -> Self {
        BenchError::Sunrise(e)
    }
}

/// What a child process measures under: its tier, threads and options.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The tier in use in this process.
    pub isa: &'static str,
    /// Threads of our pool in this process.
    pub threads: usize,
    /// Time budget per measurement.
    pub budget: Duration,
    /// The command line.
    pub args: &'a BenchArgs,
}

impl Ctx<'_> {
    /// Whether a case (or op) name passes `--filter`.
    pub fn wants(&self, name: &str) -> bool {
        self.args.filter.as_deref().is_none_or(|f| name.contains(f))
    }

    /// Prints one JSON line and flushes, so a crash later keeps it.
    pub fn emit(&self, row: &Value) {
        let mut out = std::io::stdout().lock();
        // A closed stdout means the parent is gone; nothing to report to.
        let _ = writeln!(out, "{row}").and_then(|()| out.flush());
    }
}

/// Median seconds per call of `f`: one warm-up call, then calls until
/// `budget` is spent (at least 3, at most 1000).
pub(crate) fn time_median<E>(
    mut f: impl FnMut() -> Result<(), E>,
    budget: Duration,
) -> Result<f64, E> {
    f()?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed() < budget && times.len() < 1000) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(&mut times))
}

/// Median seconds per call of `a` and of `b`, calls alternating so that
/// both see the same machine load: one warm-up call each, then pairs until
/// `budget` is spent (at least 3 pairs, at most 1000).
pub(crate) fn time_pair<E>(
    mut a: impl FnMut() -> Result<(), E>,
    mut b: impl FnMut() -> Result<(), E>,
    budget: Duration,
) -> Result<(f64, f64), E> {
    a()?;
    b()?;
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while ta.len() < 3 || (start.elapsed() < budget && ta.len() < 1000) {
        let t = Instant::now();
        a()?;
        ta.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b()?;
        tb.push(t.elapsed().as_secs_f64());
    }
    Ok((median(&mut ta), median(&mut tb)))
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn child(suite: Suite, args: &BenchArgs) -> ExitCode {
    let ctx = Ctx {
        isa: isa::tier().name(),
        threads: sunrise_backend_cpu::threads::num_threads(),
        budget: Duration::from_secs_f64(args.seconds),
        args,
    };
    let r = match suite {
        Suite::Ops => ops::run(&ctx),
        Suite::Gemm => gemm::run(&ctx),
        Suite::Conv => conv::run(&ctx),
        Suite::Memory => memory::run(&ctx),
        Suite::Train => train::run(&ctx),
        Suite::Onnx => onnx::run(&ctx),
        Suite::Cuda => return cuda::run(args),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_child(
    suite: Suite,
    tier: Isa,
    threads: Option<usize>,
    args: &BenchArgs,
) -> Result<Vec<Value>, BenchError> {
    let exe = std::env::current_exe().map_err(BenchError::Spawn)?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "bench",
        suite.name(),
        "--child",
        "--seconds",
        &args.seconds.to_string(),
    ])
    .args(["--python", &args.python])
    .env("SUNRISE_CPU_ISA", tier.name());
    if let Some(n) = threads {
        cmd.env("SUNRISE_NUM_THREADS", n.to_string())
            .env("OPENBLAS_NUM_THREADS", n.to_string());
    }
    if std::env::var_os(openblas::THREAD_TIMEOUT_VAR).is_none() {
        cmd.env(openblas::THREAD_TIMEOUT_VAR, openblas::THREAD_TIMEOUT);
    }
    if let Some(f) = &args.filter {
        cmd.args(["--filter", f]);
    }
    if let Some(d) = &args.scripts {
        cmd.arg("--scripts").arg(d);
    }
    if let Some(d) = &args.models {
        cmd.arg("--models").arg(d);
    }
    let out = cmd.output().map_err(BenchError::Spawn)?;
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // What the child had to say (warnings, SUNRISE_PROFILE's tables).
        eprint!("{err}");
        return Ok(rows);
    }
    let tail: Vec<&str> = err.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(BenchError::Child {
        tier,
        threads,
        detail: format!("{} ({})", out.status, tail.join(" | ")),
    })
}

fn select_tiers(asked: &[Isa]) -> Result<Vec<Isa>, BenchError> {
    let available = isa::available_tiers();
    if asked.is_empty() {
        return Ok(available);
    }
    let mut tiers = Vec::new();
    for &t in asked {
        if !available.contains(&t) {
            return Err(BenchError::Tier { tier: t, available });
        }
        if !tiers.contains(&t) {
            tiers.push(t);
        }
    }
    Ok(tiers)
}

fn thread_counts(suite: Suite, asked: &[usize]) -> Vec<Option<usize>> {
    match (suite, asked.is_empty()) {
        (Suite::Ops, true) => vec![None],
        (_, true) => vec![Some(1), Some(2)],
        (_, false) => asked.iter().map(|&n| Some(n)).collect(),
    }
}

/// Runs `sunrise bench`: a child process per tier and thread count, then
/// the table or the JSON lines. Exits non-zero if any child failed (the
/// others' figures are still printed).
pub fn run(args: &BenchArgs) -> ExitCode {
    let suite = args.suite.unwrap_or(Suite::Ops);
    if args.child {
        return child(suite, args);
    }
    if suite == Suite::Cuda {
        return cuda::run(args);
    }
    let tiers = match select_tiers(&args.tiers) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let threads = thread_counts(suite, &args.threads);
    if !args.json {
        report::header(suite, &tiers, &threads, args.seconds);
        if args.rounds > 1 {
            println!(
                "each row: the medians of {} rounds, run one after the other (ours and the peer alternate)",
                args.rounds
            );
        }
    }
    let progress = !args.json && std::io::stderr().is_terminal();
    let (mut all, mut failed) = (Vec::new(), false);
    for round in 1..=args.rounds {
        let mut rows = Vec::new();
        for &t in &tiers {
            for &n in &threads {
                if progress {
                    let n = n.map_or_else(|| "default".into(), |n| n.to_string());
                    let of = if args.rounds > 1 {
                        format!(" (round {round} of {})", args.rounds)
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "  measuring {} at {t} with {n} thread(s){of}...",
                        suite.name()
                    );
                }
                match run_child(suite, t, n, args) {
                    Ok(r) => rows.extend(r),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
        }
        all.push(rows);
    }
    let rows = rounds::fold(&all);
    if args.json {
        for r in &rows {
            println!("{r}");
        }
    } else {
        report::table(suite, &rows, &tiers);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests;
