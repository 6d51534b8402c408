//! The `onnx` suite: whole-model inference latency of `sunrise_onnx`
//! beside ONNX Runtime's CPU provider on the same file, batch and thread
//! count (`scripts/onnxruntime_model_bench.py`, run in the same child),
//! with the peak resident memory of both.
//!
//! Models: the `.onnx` files in `--models DIR` (default: `onnx-models` in
//! the cargo target directory the program runs from, written by
//! `scripts/export_torch_models.py`:
//! ResNet-18, MobileNetV2, a transformer encoder, batch dimension
//! symbolic) and, beside it, ONNX's `light` ResNet-50 (from
//! `scripts/setup-onnx-tests.sh`; its batch is fixed at 1). Batches 1 and
//! 8 where the model allows. Inputs: standard-normal f32 (seeded).
//!
//! JSON keys: `suite` ("onnx"), `case` (`model-bN`), `threads`, `isa`,
//! `ours_ms`, `ours_peak_mb`, `peer` ("onnxruntime"), `peer_detail`,
//! `peer_ms` and `peer_peak_mb` (null with `peer_error` when unavailable),
//! `ratio` (peer time over ours: above 1 is faster than ONNX Runtime).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sunrise::{DType, Device, Tensor};
use sunrise_onnx::{Dim, Model};

use super::train::{reset_peak, rss_mb};
use super::{time_median, BenchError, Ctx};

/// The peer script's file name.
const SCRIPT: &str = "onnxruntime_model_bench.py";

/// The cargo target directory this program was built in (`target/` of
/// `target/release/sunrise`), found at run time: no build path may be
/// compiled into a packaged binary. `None` when installed elsewhere.
fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.to_path_buf();
    dir.join("onnx-models").is_dir().then_some(dir)
}

fn model_files(dir: Option<&Path>) -> Vec<PathBuf> {
    let target = target_dir();
    let dir = match (dir, &target) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(t)) => t.join("onnx-models"),
        (None, None) => return Vec::new(),
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "onnx"));
    v.sort();
    if let Some(t) = target {
        let light = t.join("onnx-data/onnx/backend/test/data/light/light_resnet50.onnx");
        if light.is_file() {
            v.push(light);
        }
    }
    v
}

/// The input shapes for `batch`, or `None` when the model's batch is fixed
/// at another size.
fn shapes(model: &Model, batch: usize) -> Option<Vec<Vec<usize>>> {
    model
        .inputs()
        .iter()
        .map(|v| {
            let dims = v.dims.as_ref()?;
            dims.iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Dim::Fixed(n) if i == 0 && *n != batch => None,
                    Dim::Fixed(n) => Some(*n),
                    _ => Some(batch),
                })
                .collect()
        })
        .collect()
}

fn peer(ctx: &Ctx<'_>, model: &Path, batch: usize) -> Result<Value, String> {
    let dir = super::onnxruntime::script_dir(ctx.args.scripts.as_deref());
    let script = dir.join(SCRIPT);
    if !script.is_file() {
        return Err(format!(
            "{} not found; pass --scripts DIR",
            script.display()
        ));
    }
    let out = Command::new(&ctx.args.python)
        .arg(&script)
        .arg("--model")
        .arg(model)
        .args([
            "--batch",
            &batch.to_string(),
            "--threads",
            &ctx.threads.to_string(),
        ])
        .args(["--seconds", &ctx.budget.as_secs_f64().to_string()])
        .env("OMP_NUM_THREADS", ctx.threads.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ctx.args.python))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            let err = String::from_utf8_lossy(&out.stderr);
            format!(
                "{SCRIPT} failed ({}): {}",
                out.status,
                err.lines().last().unwrap_or("")
            )
        })?;
    match v["error"].as_str() {
        Some(e) => Err(e.to_string()),
        None => Ok(v),
    }
}

/// Runs the suite in a child.
pub(crate) fn run(ctx: &Ctx<'_>) -> Result<(), BenchError> {
    let files = model_files(ctx.args.models.as_deref());
    if files.is_empty() {
        return Err(BenchError::Peer(
            "no models: run /usr/bin/python3 scripts/export_torch_models.py target/onnx-models \
             and scripts/setup-onnx-tests.sh, or pass --models DIR"
                .into(),
        ));
    }
    let cpu = Device::cpu();
    for path in files {
        let model = Model::load(&path).map_err(|e| BenchError::Peer(e.to_string()))?;
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for batch in [1, 8] {
            let case = format!("{stem}-b{batch}");
            if !ctx.wants(&case) {
                continue;
            }
            let Some(shapes) = shapes(&model, batch) else {
                continue;
            };
            let inputs: Vec<(String, Tensor)> = model
                .inputs()
                .iter()
                .zip(&shapes)
                .enumerate()
                .map(|(i, (v, s))| {
                    Ok((
                        v.name.clone(),
                        Tensor::rand_normal(s, 0.0, 1.0, i as u64, DType::F32, &cpu)?,
                    ))
                })
                .collect::<Result<_, sunrise::Error>>()?;
            let feed: Vec<(&str, Tensor)> = inputs
                .iter()
                .map(|(n, t)| (n.as_str(), t.clone()))
                .collect();
            let reset = reset_peak();
            let ours = time_median(|| model.run(&feed).map(drop), ctx.budget)
                .map_err(|e| BenchError::Peer(e.to_string()))?;
            let peak = if reset {
                rss_mb().map(|(_, p)| p)
            } else {
                None
            };
            let mut row = json!({
                "suite": "onnx", "case": case, "threads": ctx.threads, "isa": ctx.isa,
                "ours_ms": ours * 1e3, "ours_peak_mb": peak, "peer": "onnxruntime",
            });
            match peer(ctx, &path, batch) {
                Ok(p) => {
                    let ms = p["seconds"].as_f64().map(|s| s * 1e3);
                    row["peer_ms"] = json!(ms);
                    row["peer_detail"] = p["detail"].clone();
                    row["peer_peak_mb"] = p["peak_mb"].clone();
                    row["ratio"] = json!(ms.map(|m| m / (ours * 1e3)));
                }
                Err(e) => row["peer_error"] = json!(e),
            }
            ctx.emit(&row);
        }
    }
    Ok(())
}

/// The table: one row per case, thread count and tier.
pub(crate) fn table(rows: &[&Value]) {
    let mut details: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["peer_detail"].as_str())
        .collect();
    details.sort_unstable();
    details.dedup();
    println!(
        "{:<22} {:>3} {:<8} {:>10} {:>10} {:>7} {:>9} {:>9}",
        "model (f32, inference)", "thr", "isa", "ours ms", "ORT ms", "speed", "ours MiB", "ORT MiB"
    );
    for r in rows {
        let f = |k: &str, p: usize| {
            r[k].as_f64()
                .map_or_else(|| "-".to_string(), |v| format!("{v:.p$}"))
        };
        println!(
            "{:<22} {:>3} {:<8} {:>10} {:>10} {:>6}{} {:>9} {:>9}",
            r["case"].as_str().unwrap_or(""),
            r["threads"].as_u64().unwrap_or(0),
            r["isa"].as_str().unwrap_or(""),
            f("ours_ms", 2),
            f("peer_ms", 2),
            f("ratio", 2),
            if r["ratio"].is_number() { "x" } else { " " },
            f("ours_peak_mb", 0),
            f("peer_peak_mb", 0),
        );
    }
    println!("speed: ONNX Runtime's time over ours (above 1: faster than ONNX Runtime). MiB: peak resident set of each process (ours: of the benchmark child, all its models so far).");
    for d in details {
        println!("peer: {d}");
    }
    if let Some(e) = rows.iter().find_map(|r| r["peer_error"].as_str()) {
        println!("peer: unavailable: {e}");
    }
}
