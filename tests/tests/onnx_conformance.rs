//! The ONNX backend test suite, as the `onnx` wheel ships it
//! (`onnx/backend/test/data`: `node`, `simple`, `pytorch-converted`,
//! `pytorch-operator`, `light`), run through `sunrise_onnx` on the CPU.
//!
//! Each case is a `model.onnx` with `test_data_set_*/input_*.pb` and
//! `output_*.pb`. A case is skipped when its model uses an op outside
//! [`sunrise_onnx::SUPPORTED_OPS`], or when loading or running it stops at
//! a typed [`sunrise_onnx::Error::Unsupported`] (an attribute value, a
//! dtype the core lacks), with the reason printed; every other case must
//! load, run and match the expected outputs (|got - want| <= 1e-5 + 1e-3
//! |want|, NaN equal to NaN), or the test fails.
//!
//! The data comes from `$SUNRISE_ONNX_DATA` or `target/onnx-data`, which
//! the test fills by running `scripts/setup-onnx-tests.sh` (pip, PyPI) when
//! it is missing; where that is impossible the test says why and passes,
//! unless `SUNRISE_REQUIRE_ONNX_DATA=1` (CI) makes a missing suite a
//! failure. The summary is printed and written to
//! `target/onnx-conformance.txt`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use sunrise::{DType, Device, Tensor};
use sunrise_onnx::proto::{ModelProto, TensorProto};
use sunrise_onnx::{Error, Model};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The suite's data: `$SUNRISE_ONNX_DATA`, else `target/onnx-data`,
/// installed there by `scripts/setup-onnx-tests.sh` when missing (pip and
/// PyPI); `Err` says why there is none.
fn data_dir() -> Result<PathBuf, String> {
    if let Ok(d) = std::env::var("SUNRISE_ONNX_DATA") {
        return Ok(PathBuf::from(d));
    }
    let d = workspace().join("target/onnx-data/onnx/backend/test/data");
    if !d.is_dir() {
        let script = workspace().join("scripts/setup-onnx-tests.sh");
        let out = std::process::Command::new("bash").arg(&script).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                return Err(format!(
                    "{} failed: {}",
                    script.display(),
                    err.lines().last().unwrap_or("no output")
                ));
            }
            Err(e) => return Err(format!("cannot run {}: {e}", script.display())),
        }
    }
    if d.is_dir() {
        Ok(d)
    } else {
        Err(format!("{} is missing", d.display()))
    }
}

enum Outcome {
    Pass,
    Skip(String),
    Fail(String),
}

fn read_tensor(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t =
        TensorProto::decode(bytes.as_slice()).map_err(|e| format!("{}: {e}", path.display()))?;
    sunrise_onnx::from_proto(&t, None, &Device::cpu()).map_err(|e| e.to_string())
}

fn as_f64(t: &Tensor) -> Result<Vec<f64>, String> {
    let e = |e: sunrise::Error| e.to_string();
    Ok(match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        DType::F64 => t.to_vec::<f64>().map_err(e)?,
        DType::I64 => t
            .to_vec::<i64>()
            .map_err(e)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        DType::U8 => t
            .to_vec::<u8>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
    })
}

fn compare(name: &str, got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "{name}: shape {:?}, want {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let (g, w) = (as_f64(got)?, as_f64(want)?);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-5 + 1e-3 * b.abs();
        if !ok {
            return Err(format!("{name}[{i}]: {a}, want {b}"));
        }
    }
    Ok(())
}

/// A skip naming the ops of `ops` this crate does not run, if any.
fn unimplemented(ops: &[String]) -> Option<Outcome> {
    let missing: Vec<&String> = ops
        .iter()
        .filter(|o| !sunrise_onnx::SUPPORTED_OPS.contains(&o.as_str()))
        .collect();
    (!missing.is_empty()).then(|| Outcome::Skip(format!("ops not implemented: {missing:?}")))
}

fn classify(e: Error) -> Outcome {
    match e {
        Error::Unsupported { .. } => Outcome::Skip(e.to_string()),
        e => Outcome::Fail(e.to_string()),
    }
}

/// Runs the case in `dir` (`model.onnx` and its data sets).
fn case(dir: &Path, ops: &mut Vec<String>) -> Outcome {
    let path = dir.join("model.onnx");
    let Ok(bytes) = std::fs::read(&path) else {
        return Outcome::Fail(format!("cannot read {}", path.display()));
    };
    if let Ok(m) = ModelProto::decode(bytes.as_slice()) {
        if let Some(g) = &m.graph {
            ops.extend(g.node.iter().map(|n| n.op_type().to_string()));
        }
        ops.sort();
        ops.dedup();
        if let Some(skip) = unimplemented(ops) {
            return skip;
        }
    }
    let model = match Model::load(&path) {
        Ok(m) => m,
        Err(e) => return classify(e),
    };
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    sets.sort();
    for set in sets {
        let mut inputs = Vec::new();
        for (i, decl) in model.inputs().iter().enumerate() {
            match read_tensor(&set.join(format!("input_{i}.pb"))) {
                Ok(t) => inputs.push((decl.name.as_str(), t)),
                Err(e) => return Outcome::Skip(format!("input {i}: {e}")),
            }
        }
        let outs = match model.run(&inputs) {
            Ok(o) => o,
            Err(e) => return classify(e),
        };
        for (i, (name, got)) in outs.iter().enumerate() {
            let p = set.join(format!("output_{i}.pb"));
            if !p.exists() {
                continue;
            }
            let want = match read_tensor(&p) {
                Ok(t) => t,
                Err(e) => return Outcome::Skip(format!("expected output {i}: {e}")),
            };
            if let Err(e) = compare(name, got, &want) {
                return Outcome::Fail(e);
            }
        }
    }
    Outcome::Pass
}

/// A `light/light_NAME.onnx` model: the input as ONNX's runner makes it
/// (`arange(n) / n` in f32, unknown dims as 1), against
/// `light_NAME_output_0.pb` (ONNX's reference evaluator), relative
/// tolerance `rtol`.
fn light(model: &Path, ops: &mut Vec<String>) -> Outcome {
    let m = match Model::load(model) {
        Ok(m) => m,
        Err(e) => return classify(e),
    };
    ops.extend(m.info().ops.into_keys());
    if let Some(skip) = unimplemented(ops) {
        return skip;
    }
    let mut inputs = Vec::new();
    for v in m.inputs() {
        let shape: Vec<usize> = v
            .dims
            .iter()
            .flatten()
            .map(|d| match d {
                sunrise_onnx::Dim::Fixed(n) => *n,
                _ => 1,
            })
            .collect();
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| (i as f64 / n as f64) as f32).collect();
        inputs.push((
            v.name.as_str(),
            Tensor::from_slice(&data, &shape, &Device::cpu()).unwrap(),
        ));
    }
    let outs = match m.run(&inputs) {
        Ok(o) => o,
        Err(e) => return classify(e),
    };
    let stem = model.with_extension("");
    for (i, (name, got)) in outs.iter().enumerate() {
        let p = PathBuf::from(format!("{}_output_{i}.pb", stem.display()));
        let want = match read_tensor(&p) {
            Ok(t) => t,
            Err(e) => return Outcome::Fail(format!("expected output {i}: {e}")),
        };
        if let Err(e) = compare(name, got, &want) {
            return Outcome::Fail(e);
        }
    }
    Outcome::Pass
}

/// Outcomes per op, per suite, and the reasons of skips and failures.
#[derive(Default)]
struct Tally {
    by_op: BTreeMap<String, [usize; 3]>,
    totals: BTreeMap<&'static str, [usize; 3]>,
    failures: Vec<String>,
    skips: Vec<String>,
}

impl Tally {
    /// Counts case `path` of `suite` (pass, fail, skip) under its suite
    /// and each op it uses.
    fn add(&mut self, suite: &'static str, path: &Path, outcome: Outcome, ops: Vec<String>) {
        let name = format!("{suite}/{}", path.file_name().unwrap().to_string_lossy());
        let slot = match outcome {
            Outcome::Pass => 0,
            Outcome::Fail(r) => {
                self.failures.push(format!("{name}: {r}"));
                1
            }
            Outcome::Skip(r) => {
                self.skips.push(format!("{name}: {r}"));
                2
            }
        };
        self.totals.entry(suite).or_default()[slot] += 1;
        for op in ops {
            self.by_op.entry(op).or_default()[slot] += 1;
        }
    }
}

#[test]
fn onnx_backend_test_suite() {
    let data = match data_dir() {
        Ok(d) => d,
        Err(why) => {
            let msg = format!(
                "ONNX test data unavailable ({why}); \
                 run scripts/setup-onnx-tests.sh or set SUNRISE_ONNX_DATA"
            );
            let required = std::env::var("SUNRISE_REQUIRE_ONNX_DATA").as_deref() == Ok("1");
            assert!(!required, "{msg}");
            println!("skipped: {msg}");
            return;
        }
    };
    let mut t = Tally::default();
    for suite in ["node", "simple", "pytorch-converted", "pytorch-operator"] {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(data.join(suite))
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        assert!(!dirs.is_empty(), "{}: no cases", data.join(suite).display());
        for dir in dirs {
            let mut ops = Vec::new();
            let outcome = case(&dir, &mut ops);
            t.add(suite, &dir, outcome, ops);
        }
    }
    let mut models: Vec<PathBuf> = std::fs::read_dir(data.join("light"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    models.retain(|p| p.extension().is_some_and(|e| e == "onnx"));
    models.sort();
    assert!(!models.is_empty(), "no light models");
    for model in models {
        let mut ops = Vec::new();
        let outcome = light(&model, &mut ops);
        t.add("light", &model, outcome, ops);
    }
    let Tally {
        by_op,
        totals,
        failures,
        skips,
    } = t;
    let mut report = String::from("ONNX backend test suite (onnx 1.19.1 data) on the CPU\n");
    report += &format!(
        "{:<28} {:>6} {:>6} {:>6}\n",
        "op (cases using it)", "pass", "fail", "skip"
    );
    for (op, [p, f, s]) in &by_op {
        if sunrise_onnx::SUPPORTED_OPS.contains(&op.as_str()) {
            report += &format!("{op:<28} {p:>6} {f:>6} {s:>6}\n");
        }
    }
    let (mut tp, mut tf, mut ts) = (0, 0, 0);
    for (suite, [p, f, s]) in &totals {
        report += &format!("suite {suite:<22} {p:>6} {f:>6} {s:>6}\n");
        (tp, tf, ts) = (tp + p, tf + f, ts + s);
    }
    report += &format!(
        "overall: {tp} passed, {tf} failed, {ts} skipped of {}; {:.1}% of the cases run pass\n",
        tp + tf + ts,
        100.0 * tp as f64 / (tp + tf).max(1) as f64
    );
    report += "\nskipped (reason):\n";
    for s in &skips {
        report += &format!("  {s}\n");
    }
    report += "\nfailed:\n";
    for f in &failures {
        report += &format!("  {f}\n");
    }
    let _ = std::fs::write(workspace().join("target/onnx-conformance.txt"), &report);
    println!("{report}");
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
