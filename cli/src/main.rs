//! `sunrise`: the command-line front end.
//!
//! - `sunrise train`: the main job: trains a small CNN on the embedded
//!   digits (or `--data`), with progress, accuracy and samples per second.
//! - `sunrise eval --load`: evaluates a checkpoint.
//! - `sunrise info`: version, ABI version, devices.
//! - `sunrise doctor [--json]`: the CPU tier and why, every plugin path
//!   searched, every candidate and what became of it, the devices, and
//!   whether the requested device is usable (non-zero exit when not).
//! - `sunrise bench`: per-op figures for each ISA tier this CPU has, beside
//!   the portable kernel's, measured in the same run.

mod bench;
mod doctor;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A deep-learning framework Debian can ship whole.
#[derive(Debug, Parser)]
#[command(name = "sunrise", version, about, long_about = None)]
struct Cli {
    /// Device to use: auto, cpu, cuda, cuda:N (default: $SUNRISE_DEVICE, else auto).
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
    /// Benchmarks: per-op figures for every ISA tier beside the portable kernels (default), or the gemm, conv and memory suites beside OpenBLAS, ONNX Runtime and memcpy.
    Bench(bench::BenchArgs),
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
    for e in reg.devices() {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let request = requested_device(&cli);
    match &cli.command {
        Command::Train(a) => train::train(a, &request),
        Command::Eval(a) => train::eval(a, &request),
        Command::Info => info(&request),
        Command::Doctor { json } => doctor::run(&request, *json),
        Command::Bench(args) => bench::run(args),
    }
}
