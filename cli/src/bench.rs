//! `sunrise bench`: per-op figures for every ISA tier this CPU has, beside
//! the portable kernels' and a plain memory copy, measured in one run.
//!
//! The tier is fixed once per process, so the parent re-runs itself once
//! per tier with `SUNRISE_CPU_ISA` set (`--child`), collects one JSON line
//! per case, and prints a table.

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use sunrise::{Conv2dOptions, DType, Device, Tensor};
use sunrise_backend_cpu::isa;

/// Options of `sunrise bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Only cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Seconds to spend on each case (at least 3 runs).
    #[arg(long, default_value_t = 0.3)]
    seconds: f64,
    /// Internal: measure at the tier SUNRISE_CPU_ISA sets and print JSON lines.
    #[arg(long, hide = true)]
    child: bool,
}

type Case = (
    &'static str,
    String,
    f64,
    &'static str,
    Box<dyn Fn() -> sunrise::Result<()>>,
);

fn time_median(f: &dyn Fn() -> sunrise::Result<()>, budget: Duration) -> sunrise::Result<f64> {
    f()?; // warm-up
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed() < budget && times.len() < 200) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn cases() -> sunrise::Result<Vec<Case>> {
    let cpu = Device::cpu();
    let r = |shape: &[usize], seed| Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, &cpu);
    let n = 1 << 22;
    let (a, b) = (r(&[n], 1)?, r(&[n], 2)?);
    let m2 = r(&[2048, 2048], 3)?;
    let ln = r(&[4096, 1024], 4)?;
    let (g, be) = (r(&[1024], 5)?, r(&[1024], 6)?);
    let (ma, mb) = (r(&[512, 512], 7)?, r(&[512, 512], 8)?);
    let x = r(&[8, 64, 28, 28], 9)?;
    let w = r(&[64, 64, 3, 3], 10)?;
    let conv = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    let conv_flops = 2.0 * 8.0 * 64.0 * 28.0 * 28.0 * 64.0 * 9.0;
    let bytes4 = |k: f64| k * 4.0;
    let mut v: Vec<Case> = Vec::new();
    let (a1, b1) = (a.clone(), b.clone());
    v.push((
        "add",
        format!("f32[{n}]"),
        bytes4(3.0 * n as f64),
        "GB/s",
        Box::new(move || a1.add(&b1).map(drop)),
    ));
    let a2 = a.clone();
    v.push((
        "relu",
        format!("f32[{n}]"),
        bytes4(2.0 * n as f64),
        "GB/s",
        Box::new(move || a2.relu().map(drop)),
    ));
    let a3 = a.clone();
    v.push((
        "exp",
        format!("f32[{n}]"),
        bytes4(2.0 * n as f64),
        "GB/s",
        Box::new(move || a3.exp().map(drop)),
    ));
    let m = m2.clone();
    v.push((
        "sum_last",
        "f32[2048,2048]".into(),
        bytes4(2048.0 * 2048.0),
        "GB/s",
        Box::new(move || m.sum(&[-1], false).map(drop)),
    ));
    let m = m2.clone();
    v.push((
        "softmax",
        "f32[2048,2048]".into(),
        bytes4(2.0 * 2048.0 * 2048.0),
        "GB/s",
        Box::new(move || m.softmax(-1).map(drop)),
    ));
    v.push((
        "layer_norm",
        "f32[4096,1024]".into(),
        bytes4(2.0 * 4096.0 * 1024.0),
        "GB/s",
        Box::new(move || ln.layer_norm(&g, &be, 1e-5).map(drop)),
    ));
    v.push((
        "matmul",
        "512x512x512".into(),
        2.0 * 512f64.powi(3),
        "GFLOP/s",
        Box::new(move || ma.matmul(&mb).map(drop)),
    ));
    v.push((
        "conv2d",
        "N8 C64 28x28 K64 3x3".into(),
        conv_flops,
        "GFLOP/s",
        Box::new(move || x.conv2d(&w, None, &conv).map(drop)),
    ));
    Ok(v)
}

fn memcpy_gbps(budget: Duration) -> f64 {
    let src = vec![1.0f32; 1 << 22];
    let mut dst = vec![0.0f32; 1 << 22];
    let f = || -> sunrise::Result<()> {
        dst.copy_from_slice(std::hint::black_box(&src));
        Ok(())
    };
    let t = {
        let cell = std::cell::RefCell::new(f);
        time_median(&|| (cell.borrow_mut())(), budget).unwrap_or(f64::NAN)
    };
    2.0 * 4.0 * (1 << 22) as f64 / t / 1e9
}

fn child(args: &BenchArgs) -> ExitCode {
    let tier = isa::tier().name();
    let threads = sunrise_backend_cpu::threads::num_threads();
    let budget = Duration::from_secs_f64(args.seconds);
    let list = match cases() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "{}",
        json!({"suite": "memory", "case": "memcpy f32[4194304]", "op": "memcpy", "isa": tier, "threads": threads, "value": memcpy_gbps(budget), "unit": "GB/s"})
    );
    for (op, case, work, unit, f) in list {
        if args.filter.as_deref().is_some_and(|flt| !op.contains(flt)) {
            continue;
        }
        match time_median(f.as_ref(), budget) {
            Ok(t) => println!(
                "{}",
                json!({"suite": "ops", "op": op, "case": case, "isa": tier, "threads": threads, "seconds": t, "value": work / t / 1e9, "unit": unit})
            ),
            Err(e) => println!(
                "{}",
                json!({"suite": "ops", "op": op, "case": case, "isa": tier, "error": e.to_string()})
            ),
        }
    }
    ExitCode::SUCCESS
}

fn run_tier(tier: isa::Isa, args: &BenchArgs) -> Result<Vec<Value>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "--child", "--seconds", &args.seconds.to_string()])
        .env("SUNRISE_CPU_ISA", tier.name());
    if let Some(f) = &args.filter {
        cmd.args(["--filter", f]);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn print_table(rows: &[Value], tiers: &[isa::Isa]) {
    let mut by_case: BTreeMap<(String, String, String), BTreeMap<String, f64>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in rows {
        let key = (
            r["op"].as_str().unwrap_or("").to_string(),
            r["case"].as_str().unwrap_or("").to_string(),
            r["unit"].as_str().unwrap_or("").to_string(),
        );
        if !by_case.contains_key(&key) {
            order.push(key.clone());
        }
        if let (Some(t), Some(v)) = (r["isa"].as_str(), r["value"].as_f64()) {
            by_case.entry(key).or_default().insert(t.to_string(), v);
        }
    }
    print!("{:<11} {:<22} {:<8}", "op", "case", "unit");
    for t in tiers {
        print!(" {:>9}", t.name());
    }
    println!("  best/portable");
    for key in order {
        let vals = &by_case[&key];
        print!("{:<11} {:<22} {:<8}", key.0, key.1, key.2);
        for t in tiers {
            match vals.get(t.name()) {
                Some(v) => print!(" {v:>9.2}"),
                None => print!(" {:>9}", "-"),
            }
        }
        let base = vals.get("portable").copied();
        let best = tiers.last().and_then(|t| vals.get(t.name())).copied();
        match (base, best) {
            (Some(b), Some(x)) if b > 0.0 && key.0 != "memcpy" => println!("  {:>6.2}x", x / b),
            _ => println!(),
        }
    }
}

/// Runs the benchmarks.
pub fn run(args: &BenchArgs) -> ExitCode {
    if args.child {
        return child(args);
    }
    let tiers = isa::available_tiers();
    let threads = sunrise_backend_cpu::threads::num_threads();
    if !args.json {
        println!(
            "sunrise bench: {} thread(s); tiers {}; median of runs over {:.1} s per case",
            threads,
            tiers
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", "),
            args.seconds
        );
    }
    let mut rows = Vec::new();
    for &t in &tiers {
        match run_tier(t, args) {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("error: the {t} run failed: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if args.json {
        for r in &rows {
            println!("{r}");
        }
    } else {
        print_table(&rows, &tiers);
        println!("(memcpy: the copy bandwidth peer measured in the same run; GB/s counts bytes read + written)");
    }
    ExitCode::SUCCESS
}
