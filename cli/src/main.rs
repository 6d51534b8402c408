//! `sunrise`: the command-line front end.
//!
//! - `sunrise train`: the main job: trains a small CNN on the embedded
//!   digits (or `--data`), with progress, accuracy and samples per second.
//! - `sunrise eval --load`: evaluates a checkpoint.
//! - `sunrise info`: version, ABI version, devices (initialises every
//!   usable plugin to list them).
//! - `sunrise doctor [--json]`: the CPU tier and why, every plugin path
//!   searched, every candidate and what became of it, the devices, and
//!   whether the requested device is usable (non-zero exit when not).
//! - `sunrise bench`: per-op figures for each ISA tier this CPU has, beside
//!   the portable kernel's, measured in the same run.
//! - `sunrise run MODEL.onnx [--input NAME=FILE.npy ...] [--output-dir DIR]`:
//!   runs an ONNX model on the chosen device; `--info` describes it.
//! - `sunrise conformance [--ops PATTERN] [--json]`: the op conformance
//!   suite on the chosen device against the built-in CPU backend.
//!
//! With `SUNRISE_PROFILE=1` every command ends by printing the time its ops
//! took, per family and per op ([`sunrise::profile`]).

mod bench;
mod conformance;
mod doctor;
mod run;
mod train;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// A deep-learning framework Debian can ship whole.
#[derive(Debug, Parser)]
#[command(name = "sunrise", version, about, long_about = None)]
struct Cli {
    /// Device to use: auto, cpu, cuda, cuda:N, or a plugin's name (default: $SUNRISE_DEVICE, else auto).
    #[arg(long, global = true)]
    device: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a small CNN (default: on the embedded 8x8 digits) and report accuracy.
    Train(train::TrainArgs),
    /// Evaluate a checkpoint written by `train --save`.
    Eval(train::EvalArgs),
    /// Version, ABI version and devices.
    Info,
    /// Diagnose CPU tier, plugin search, candidates and devices.
    Doctor {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks: per-op figures for every ISA tier beside the portable kernels (default), or the gemm, conv, memory and train suites beside OpenBLAS, ONNX Runtime, memcpy and PyTorch.
    Bench(bench::BenchArgs),
    /// Run an ONNX model: inputs from .npy files (random where none are given), each output written as DIR/<name>.npy; --info describes the model instead.
    Run(run::RunArgs),
    /// Op conformance of a device against the built-in CPU backend: every (op, dtype) pair it lists, forward and backward, buffers, error paths and a short training run; ends with `N passed, M failed`.
    Conformance(conformance::ConformanceArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUNRISE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sunrise=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    sunrise::plugin::install_log_bridge();
}

fn requested_device(cli: &Cli) -> String {
    cli.device
        .clone()
        .or_else(|| std::env::var("SUNRISE_DEVICE").ok())
        .unwrap_or_else(|| "auto".into())
}

fn info(request: &str) -> ExitCode {
    let reg = sunrise::registry::registry();
    println!("sunrise {}", sunrise::VERSION);
    println!("backend ABI {}.{}", sunrise::ABI_MAJOR, sunrise::ABI_MINOR);
    println!("cpu tier: {}", sunrise::cpu_isa().active);
    println!("devices:");
    for e in reg.init_all() {
        let name = e
            .device
            .backend()
            .device_info(e.device.ordinal())
            .map(|i| i.name)
            .unwrap_or_else(|err| format!("(unavailable: {err})"));
        println!("  {:<8} {name}", e.device.label());
    }
    match reg.device(request) {
        Ok(d) => {
            println!("selected ({request}): {d}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The `--device` help, with the names of the usable plugins on the search
/// path (probed, not initialised) beside auto, cpu, cuda and cuda:N.
fn device_help() -> String {
    let names: Vec<String> = sunrise::registry::registry()
        .plugin_names()
        .into_iter()
        .filter(|n| n != "cpu" && n != "cuda")
        .collect();
    let found = if names.is_empty() {
        "no other plugin found on the search path".to_string()
    } else {
        format!("plugins found on the search path: {}", names.join(", "))
    };
    format!(
        "Device to use: auto, cpu, cuda, cuda:N, or a plugin's name ({found}) \
         (default: $SUNRISE_DEVICE, else auto)"
    )
}

/// Parses the command line. Only when help is asked for is the plugin
/// search path scanned first, to list the device names it offers.
fn parse() -> Cli {
    let wants_help = std::env::args_os()
        .skip(1)
        .any(|a| a == "-h" || a == "--help" || a == "help");
    if !wants_help {
        return Cli::parse();
    }
    let help = device_help();
    let matches = Cli::command()
        .mut_arg("device", |a| a.help(help))
        .get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse();
    init_logging();
    let request = requested_device(&cli);
    let code = match &cli.command {
        Command::Train(a) => train::train(a, &request),
        Command::Eval(a) => train::eval(a, &request),
        Command::Info => info(&request),
        Command::Doctor { json } => doctor::run(&request, *json),
        Command::Bench(args) => bench::run(args),
        Command::Run(args) => run::run(args, &request),
        Command::Conformance(args) => conformance::run(args, &request),
    };
    let times = sunrise::profile::snapshot();
    if sunrise::profile::enabled() && !times.is_empty() {
        eprint!("{}", sunrise::profile::summary(&times));
    }
    // Every initialised plugin is destroyed here, before exit.
    sunrise::registry::shutdown();
    code
}
