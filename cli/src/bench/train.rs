//! The `train` suite: whole training steps (forward, cross-entropy, backward,
//! AdamW) beside PyTorch on the CPU, the same models, shapes and recipe on
//! both sides, plus the dispatch rows (tiny ops through the front end,
//! beside PyTorch and beside a direct call of the CPU kernel).
//!
//! The peer is `scripts/torch_train_bench.py` run with the interpreter of
//! `--python` (Debian's `python3-torch`, installed by
//! `scripts/setup-bench-peers.sh`), on the same thread count, with
//! `OMP_WAIT_POLICY=PASSIVE` and OpenBLAS capped (its idle OpenMP threads
//! otherwise spin on the cores ours need; the script says what it set).
//!
//! Each case also reports where our step goes: the op time of
//! [`sunrise::profile`] per family over a few extra steps (timed apart
//! from the measured ones), and the rest (front end, allocation, autograd
//! bookkeeping) as `outside ops`; with `SUNRISE_PROFILE=1` the child also
//! prints the per-op table of each case on stderr. Memory: the peak resident set of the
//! process while the case runs (`VmHWM` after resetting it through
//! `/proc/self/clear_refs`), and its growth over the resident set before
//! the case, measured the same way in the peer.
//!
//! JSON keys (`kind` "step"): `suite` ("train"), `case`, `detail`,
//! `threads`, `isa`, `batch`, `ours_seconds` (median per step),
//! `ours_samples_per_second`, `ours_peak_mb`, `ours_growth_mb`, `split`
//! (family -> seconds per step, `outside ops` included), `peer`
//! ("pytorch"), `peer_detail`, `peer_seconds`, `peer_peak_mb`,
//! `peer_growth_mb` (null with `peer_error` when the peer is unavailable),
//! `speed` (peer seconds / ours: above 1 is faster than PyTorch).
//! Dispatch rows (`kind` "dispatch") carry `ours_seconds`, `direct_seconds`
//! (the CPU kernel through the backend trait, null for the autograd chain)
//! and the peer's fields.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sunrise::nn::{
    Activation, ActivationKind, BatchNorm2d, Conv2d, Init, Linear, Module, Sequential,
    TransformerConfig, TransformerEncoderBlock,
};
use sunrise::optim::{AdamW, AdamWOptions, Optimizer};
use sunrise::train::{Arch, ModelSpec};
use sunrise::{Conv2dOptions, DType, Device, Tensor, UnaryOp};

use super::{onnxruntime, time_median, BenchError, Ctx};

/// The peer script's file name.
pub(crate) const SCRIPT: &str = "torch_train_bench.py";

/// Classes of every case's head.
const CLASSES: usize = 10;

/// A training case: its name (shared with the peer script), a one-line
/// description, the batch, the input shape and the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    /// `sunrise train`'s CNN on 1x8x8 digits, batch 32.
    DigitsCnn,
    /// The same CNN on 1x28x28, batch 32.
    Cnn28,
    /// MLP 784-512-512-10, batch 64.
    Mlp,
    /// Transformer encoder block, d 256, 4 heads, FFN 1024, seq 64, batch 8,
    /// a linear head per token.
    Transformer,
    /// 3x32x32 input, three stride-2 conv-BN-ReLU (32, 64, 128 channels),
    /// global average pool, linear head; batch 32.
    Cnn32,
    /// The same with input and activations channels-last.
    Cnn32Nhwc,
}

impl Case {
    pub(crate) const ALL: [Case; 6] = [
        Case::DigitsCnn,
        Case::Cnn28,
        Case::Mlp,
        Case::Transformer,
        Case::Cnn32,
        Case::Cnn32Nhwc,
    ];

    /// The name both sides use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Case::DigitsCnn => "digits-cnn",
            Case::Cnn28 => "cnn-1x28x28",
            Case::Mlp => "mlp-784-512-512-10",
            Case::Transformer => "transformer-d256",
            Case::Cnn32 => "cnn-3x32x32",
            Case::Cnn32Nhwc => "cnn-3x32x32-nhwc",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Case::DigitsCnn => "sunrise train's CNN, 1x8x8, batch 32",
            Case::Cnn28 => "sunrise train's CNN, 1x28x28, batch 32",
            Case::Mlp => "784-512-512-10, batch 64",
            Case::Transformer => "encoder block d256 h4 ffn1024, seq 64, batch 8",
            Case::Cnn32 => "3->32->64->128 conv-BN-ReLU s2, gap, batch 32",
            Case::Cnn32Nhwc => "the same, channels-last",
        }
    }

    /// Samples per step.
    fn batch(self) -> usize {
        match self {
            Case::Mlp => 64,
            Case::Transformer => 8,
            _ => 32,
        }
    }

    /// The input's shape (NCHW for the CNNs).
    fn input_shape(self) -> Vec<usize> {
        let b = self.batch();
        match self {
            Case::DigitsCnn => vec![b, 1, 8, 8],
            Case::Cnn28 => vec![b, 1, 28, 28],
            Case::Mlp => vec![b, 784],
            Case::Transformer => vec![b, 64, 256],
            Case::Cnn32 | Case::Cnn32Nhwc => vec![b, 3, 32, 32],
        }
    }

    /// Labels per step (one per token for the transformer).
    fn labels(self) -> usize {
        match self {
            Case::Transformer => self.batch() * 64,
            _ => self.batch(),
        }
    }
}

/// A case's model: a body and, where the body does not end in logits, a
/// pooling step and a head.
struct Model {
    body: Box<dyn Module>,
    /// Global average pool over H, W, then this head (the 3x32x32 CNNs).
    pooled_head: Option<Linear>,
    /// Per-token head after reshaping to `[B*T, E]` (the transformer).
    token_head: Option<Linear>,
}

impl Model {
    fn build(case: Case, init: &mut Init) -> sunrise::Result<Model> {
        let plain = |body: Box<dyn Module>| Model {
            body,
            pooled_head: None,
            token_head: None,
        };
        Ok(match case {
            Case::DigitsCnn | Case::Cnn28 => {
                let side = if case == Case::DigitsCnn { 8 } else { 28 };
                let spec = ModelSpec {
                    arch: Arch::Cnn {
                        input: [1, side, side],
                    },
                    classes: CLASSES,
                    norm: sunrise::data::Normalization {
                        offset: 0.0,
                        scale: 1.0,
                    },
                };
                plain(Box::new(spec.build(init)?))
            }
            Case::Mlp => plain(Box::new(
                Sequential::new()
                    .with(Linear::new(784, 512, init)?)
                    .with(Activation::new(ActivationKind::Relu))
                    .with(Linear::new(512, 512, init)?)
                    .with(Activation::new(ActivationKind::Relu))
                    .with(Linear::new(512, CLASSES, init)?),
            )),
            Case::Transformer => {
                let config = TransformerConfig {
                    dim_feedforward: 1024,
                    ..TransformerConfig::new(256, 4)
                };
                Model {
                    body: Box::new(TransformerEncoderBlock::new(&config, init)?),
                    pooled_head: None,
                    token_head: Some(Linear::new(256, CLASSES, init)?),
                }
            }
            Case::Cnn32 | Case::Cnn32Nhwc => {
                let s2 = Conv2dOptions {
                    stride: [2, 2],
                    padding: [1, 1],
                    ..Default::default()
                };
                let mut seq = Sequential::new();
                for (cin, cout) in [(3, 32), (32, 64), (64, 128)] {
                    seq = seq
                        .with(Conv2d::with_options(cin, cout, [3, 3], s2, false, init)?)
                        .with(BatchNorm2d::new(cout, init)?)
                        .with(Activation::new(ActivationKind::Relu));
                }
                Model {
                    body: Box::new(seq),
                    pooled_head: Some(Linear::new(128, CLASSES, init)?),
                    token_head: None,
                }
            }
        })
    }

    fn forward(&self, x: &Tensor) -> sunrise::Result<Tensor> {
        let y = self.body.forward(x)?;
        if let Some(head) = &self.pooled_head {
            return head.forward(&y.mean(&[2, 3], false)?);
        }
        if let Some(head) = &self.token_head {
            let (b, t, e) = (y.shape()[0], y.shape()[1], y.shape()[2]);
            return head.forward(&y.reshape(&[b * t, e])?);
        }
        Ok(y)
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = self.body.named_parameters();
        for (tag, head) in [
            ("pool_head", &self.pooled_head),
            ("token_head", &self.token_head),
        ] {
            if let Some(h) = head {
                p.extend(
                    h.named_parameters()
                        .into_iter()
                        .map(|(n, t)| (format!("{tag}.{n}"), t)),
                );
            }
        }
        p
    }
}

/// A case set up for stepping: model, optimizer, one fixed batch.
struct Setup {
    model: Model,
    optim: AdamW,
    x: Tensor,
    y: Tensor,
}

impl Setup {
    fn new(case: Case, seed: u64) -> sunrise::Result<Setup> {
        let cpu = Device::cpu();
        let mut init = Init::new(seed, DType::F32, &cpu)?;
        let model = Model::build(case, &mut init)?;
        model.body.set_training(true);
        let optim = AdamW::new(model.parameters(), AdamWOptions::new(1e-3))?;
        let mut x =
            Tensor::rand_uniform(&case.input_shape(), -1.0, 1.0, seed + 1, DType::F32, &cpu)?;
        if case == Case::Cnn32Nhwc {
            x = x.to_channels_last()?;
        }
        let labels: Vec<i64> = (0..case.labels())
            .map(|i| ((i * 7 + 3) % CLASSES) as i64)
            .collect();
        let y = Tensor::from_slice(&labels, &[case.labels()], &cpu)?;
        Ok(Setup { model, optim, x, y })
    }

    /// One training step.
    fn step(&mut self) -> sunrise::Result<()> {
        self.optim.zero_grad();
        let logits = self.model.forward(&self.x)?;
        let loss = Tensor::cross_entropy(&logits, &self.y, -100)?.mean_all()?;
        loss.backward()?;
        self.optim.step()
    }
}

/// Resident memory of this process, in MiB: (current, peak since the last
/// [`reset_peak`]); `None` where `/proc` is not Linux's.
pub(crate) fn rss_mb() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak resident set to the current one (Linux 4.0+).
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Our figures for one case.
struct Ours {
    seconds: f64,
    peak_mb: Option<f64>,
    growth_mb: Option<f64>,
    /// Family -> seconds per step.
    split: BTreeMap<String, f64>,
}

fn measure_ours(case: Case, budget: Duration) -> sunrise::Result<Ours> {
    let before = reset_peak().then(rss_mb).flatten();
    let mut s = Setup::new(case, 11)?;
    for _ in 0..2 {
        s.step()?;
    }
    let seconds = time_steps(|| s.step(), budget)?;
    let after = rss_mb();
    // The split, from a few more steps with op timing on.
    let steps = 5;
    sunrise::profile::reset();
    sunrise::profile::set_enabled(true);
    let start = Instant::now();
    let mut r = Ok(());
    for _ in 0..steps {
        r = s.step();
        if r.is_err() {
            break;
        }
    }
    let wall = start.elapsed().as_secs_f64() / steps as f64;
    sunrise::profile::set_enabled(false);
    r?;
    let times = sunrise::profile::snapshot();
    if std::env::var_os(sunrise::profile::PROFILE_VAR).is_some() {
        // Per op, for whoever asked (the split below is per family).
        eprintln!(
            "{} ({steps} steps):\n{}",
            case.name(),
            sunrise::profile::summary(&times)
        );
    }
    let mut split: BTreeMap<String, f64> = sunrise::profile::by_family(&times)
        .into_iter()
        .map(|f| (f.family.to_string(), f.seconds / steps as f64))
        .collect();
    let in_ops = sunrise::profile::total(&times) / steps as f64;
    split.insert("outside ops".into(), (wall - in_ops).max(0.0));
    let (peak_mb, growth_mb) = match (before, after) {
        (Some((rss0, _)), Some((_, peak))) => (Some(peak), Some((peak - rss0).max(0.0))),
        _ => (None, None),
    };
    Ok(Ours {
        seconds,
        peak_mb,
        growth_mb,
        split,
    })
}

/// Median seconds per step: steps until `budget` is spent, at least 5.
fn time_steps(
    mut step: impl FnMut() -> sunrise::Result<()>,
    budget: Duration,
) -> sunrise::Result<f64> {
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || (start.elapsed() < budget && times.len() < 1000) {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A dispatch row: a tiny op (or a short autograd chain) through the
/// front end, and the same kernel called directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// `a + b` on f32[16].
    Add,
    /// `relu(a)` on f32[16].
    Relu,
    /// `[32,64] x [64,64]`.
    Matmul,
    /// `((x * x + x).relu() * 2).sum()` then backward, x f32[16].
    Chain,
}

impl Dispatch {
    pub(crate) const ALL: [Dispatch; 4] = [
        Dispatch::Add,
        Dispatch::Relu,
        Dispatch::Matmul,
        Dispatch::Chain,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Dispatch::Add => "add-f32[16]",
            Dispatch::Relu => "relu-f32[16]",
            Dispatch::Matmul => "matmul-32x64x64",
            Dispatch::Chain => "autograd-chain-5-ops",
        }
    }
}

fn rand(shape: &[usize], seed: u64) -> sunrise::Result<Tensor> {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, &Device::cpu())
}

/// Our front end's median seconds per call.
fn dispatch_ours(d: Dispatch, budget: Duration) -> sunrise::Result<f64> {
    match d {
        Dispatch::Add => {
            let (a, b) = (rand(&[16], 1)?, rand(&[16], 2)?);
            time_median(|| a.add(&b).map(drop), budget)
        }
        Dispatch::Relu => {
            let a = rand(&[16], 1)?;
            time_median(|| a.unary(UnaryOp::Relu).map(drop), budget)
        }
        Dispatch::Matmul => {
            let (a, b) = (rand(&[32, 64], 1)?, rand(&[64, 64], 2)?);
            time_median(|| a.matmul(&b).map(drop), budget)
        }
        Dispatch::Chain => {
            let x = rand(&[16], 1)?.set_requires_grad(true);
            time_median(
                || {
                    let y = x
                        .mul(&x)?
                        .add(&x)?
                        .unary(UnaryOp::Relu)?
                        .mul_scalar(2.0)?
                        .sum_all()?;
                    y.backward()
                },
                budget,
            )
        }
    }
}

/// The CPU kernel called through the backend trait on buffers made once:
/// what an op costs with no front end at all.
fn dispatch_direct(d: Dispatch, budget: Duration) -> Result<Option<f64>, String> {
    use sunrise_backend_api::abi::SrTensorDesc;
    use sunrise_backend_api::ops::MatmulParams;
    use sunrise_backend_api::{Backend, OpCall, OpId, Params};

    let (op, params, a_shape, b_shape, out_shape): (_, _, &[usize], &[usize], &[usize]) = match d {
        Dispatch::Add => (OpId::Add, Params::None, &[16], &[16], &[16]),
        Dispatch::Relu => (OpId::Relu, Params::None, &[16], &[], &[16]),
        Dispatch::Matmul => (
            OpId::Matmul,
            Params::Matmul(MatmulParams {
                struct_size: MatmulParams::SIZE,
                alpha: 1.0,
                beta: 0.0,
            }),
            &[32, 64],
            &[64, 64],
            &[32, 64],
        ),
        Dispatch::Chain => return Ok(None),
    };
    let backend = sunrise_backend_cpu::CpuBackend::new();
    let strides = |s: &[usize]| -> Vec<usize> {
        let mut st = vec![1; s.len()];
        for i in (0..s.len().saturating_sub(1)).rev() {
            st[i] = st[i + 1] * s[i + 1];
        }
        st
    };
    let mut handles = Vec::new();
    let mut alloc = |shape: &[usize]| -> Result<SrTensorDesc, String> {
        let n: usize = shape.iter().product();
        let h = backend.alloc(0, n * 4).map_err(|e| e.to_string())?;
        let bytes: Vec<u8> = (0..n)
            .flat_map(|i| ((i % 7) as f32 * 0.25 - 0.5).to_ne_bytes())
            .collect();
        // SAFETY: `h` is a live buffer of n * 4 bytes of `backend`.
        unsafe { backend.write(h, 0, &bytes) }.map_err(|e| e.to_string())?;
        handles.push(h);
        Ok(SrTensorDesc::new(DType::F32, shape, &strides(shape), h, 0))
    };
    let a = alloc(a_shape)?;
    let mut inputs = vec![a];
    if !b_shape.is_empty() {
        inputs.push(alloc(b_shape)?);
    }
    let out = alloc(out_shape)?;
    let outputs = [out];
    let call = OpCall {
        op,
        params,
        inputs: &inputs,
        outputs: &outputs,
    };
    // SAFETY: every descriptor names a live buffer of `backend` and stays
    // inside it; the output aliases no input.
    let t = time_median(|| unsafe { backend.execute(0, &call) }, budget).map_err(|e| e.to_string());
    for h in handles {
        // SAFETY: each buffer was allocated above and is freed once.
        unsafe { backend.free(h) };
    }
    t.map(Some)
}

/// The peer's rows by case name, or why there are none.
fn peer(ctx: &Ctx<'_>, dir: &Path) -> Result<BTreeMap<String, Value>, String> {
    let script = dir.join(SCRIPT);
    if !script.is_file() {
        return Err(format!(
            "{} not found; pass --scripts DIR",
            script.display()
        ));
    }
    let n = ctx.threads.to_string();
    let mut cmd = Command::new(&ctx.args.python);
    cmd.arg(&script)
        .args([
            "--threads",
            &n,
            "--seconds",
            &ctx.budget.as_secs_f64().to_string(),
        ])
        .env("OMP_NUM_THREADS", &n)
        .env("OPENBLAS_NUM_THREADS", &n)
        .env("MKL_NUM_THREADS", &n)
        .env("OMP_WAIT_POLICY", "PASSIVE");
    if let Some(f) = &ctx.args.filter {
        cmd.args(["--filter", f]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}; install python3", ctx.args.python))?;
    let mut rows = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(e) = v["error"].as_str() {
            return Err(e.to_string());
        }
        if let Some(case) = v["case"].as_str() {
            rows.insert(case.to_string(), v);
        }
    }
    if rows.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no output");
        return Err(format!("{SCRIPT} failed ({}): {last}", out.status));
    }
    Ok(rows)
}

/// Adds the peer's fields for `case` (or the reason they are missing).
fn with_peer(mut row: Value, peer: &Result<BTreeMap<String, Value>, String>, ours: f64) -> Value {
    let extra = match peer {
        Ok(rows) => match rows.get(row["case"].as_str().unwrap_or("")) {
            Some(p) => json!({
                "peer_detail": p["detail"], "peer_seconds": p["seconds"],
                "peer_peak_mb": p["peak_mb"], "peer_growth_mb": p["growth_mb"],
                "speed": p["seconds"].as_f64().map(|s| s / ours),
            }),
            None => json!({"peer_seconds": null, "peer_error": "the peer has no such case"}),
        },
        Err(reason) => json!({"peer_seconds": null, "peer_error": reason}),
    };
    if let (Some(r), Value::Object(e)) = (row.as_object_mut(), extra) {
        r.extend(e);
    }
    row
}

/// Measures the train suite at this process's tier and thread count and
/// prints its JSON lines.
pub(crate) fn run(ctx: &Ctx<'_>) -> Result<(), BenchError> {
    let dir = onnxruntime::script_dir(ctx.args.scripts.as_deref());
    // Ours first (memory figures are of this process), then the peer.
    let mut rows = Vec::new();
    for case in Case::ALL {
        if !ctx.wants(case.name()) {
            continue;
        }
        let base = json!({
            "suite": "train", "kind": "step", "case": case.name(), "detail": case.detail(),
            "threads": ctx.threads, "isa": ctx.isa, "batch": case.batch(), "peer": "pytorch",
        });
        match measure_ours(case, ctx.budget) {
            Ok(o) => {
                let mut row = base;
                if let Some(r) = row.as_object_mut() {
                    r.insert("ours_seconds".into(), json!(o.seconds));
                    r.insert(
                        "ours_samples_per_second".into(),
                        json!(case.batch() as f64 / o.seconds),
                    );
                    r.insert("ours_peak_mb".into(), json!(o.peak_mb));
                    r.insert("ours_growth_mb".into(), json!(o.growth_mb));
                    r.insert("split".into(), json!(o.split));
                }
                rows.push((row, o.seconds));
            }
            Err(e) => {
                let mut row = base;
                if let Some(r) = row.as_object_mut() {
                    r.insert("error".into(), json!(e.to_string()));
                }
                ctx.emit(&row);
            }
        }
    }
    for d in Dispatch::ALL {
        if !ctx.wants(d.name()) {
            continue;
        }
        let ours = dispatch_ours(d, ctx.budget)?;
        let direct = dispatch_direct(d, ctx.budget).map_err(BenchError::Peer)?;
        let row = json!({
            "suite": "train", "kind": "dispatch", "case": d.name(), "threads": ctx.threads,
            "isa": ctx.isa, "ours_seconds": ours, "direct_seconds": direct, "peer": "pytorch",
        });
        rows.push((row, ours));
    }
    let peer = peer(ctx, &dir);
    for (row, ours) in rows {
        ctx.emit(&with_peer(row, &peer, ours));
    }
    Ok(())
}

fn ms(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |s| format!("{:.3}", s * 1e3))
}

fn us(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |s| format!("{:.2}", s * 1e6))
}

fn mb(peak: &Value, growth: &Value) -> String {
    match (peak.as_f64(), growth.as_f64()) {
        (Some(p), Some(g)) => format!("{p:.0} (+{g:.0})"),
        _ => "-".into(),
    }
}

fn speed(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |s| format!("{s:.2}x"))
}

/// The step split as `family share%` items, largest first.
fn split_line(split: &Value, total: f64) -> String {
    let Some(m) = split.as_object() else {
        return String::new();
    };
    let mut items: Vec<(&String, f64)> = m
        .iter()
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1));
    let sum: f64 = items.iter().map(|i| i.1).sum::<f64>().max(total);
    items
        .iter()
        .filter(|i| i.1 / sum >= 0.005)
        .map(|(k, v)| format!("{k} {:.0}%", 100.0 * v / sum))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the step table, then the dispatch table, from `rows` in tier
/// and thread order.
pub(crate) fn table(rows: &[&Value]) {
    println!(
        "\n{:<22} {:>3} {:<8} {:>10} {:>10} {:>7} {:>14} {:>14}",
        "step (f32, AdamW)", "thr", "isa", "ours ms", "torch ms", "speed", "ours MiB", "torch MiB"
    );
    let mut peer_notes = std::collections::BTreeSet::new();
    for r in rows.iter().filter(|r| r["kind"] == "step") {
        if let Some(e) = r["error"].as_str() {
            println!(
                "{:<22} {:>3} {:<8} error: {e}",
                text(r, "case"),
                r["threads"],
                text(r, "isa")
            );
            continue;
        }
        println!(
            "{:<22} {:>3} {:<8} {:>10} {:>10} {:>7} {:>14} {:>14}",
            text(r, "case"),
            r["threads"],
            text(r, "isa"),
            ms(&r["ours_seconds"]),
            ms(&r["peer_seconds"]),
            speed(&r["speed"]),
            mb(&r["ours_peak_mb"], &r["ours_growth_mb"]),
            mb(&r["peer_peak_mb"], &r["peer_growth_mb"]),
        );
        let total = r["ours_seconds"].as_f64().unwrap_or(0.0);
        println!("    ours by family: {}", split_line(&r["split"], total));
        note(r, &mut peer_notes);
    }
    println!(
        "\n{:<22} {:>3} {:<8} {:>10} {:>10} {:>10} {:>7}",
        "dispatch", "thr", "isa", "ours us", "kernel us", "torch us", "speed"
    );
    for r in rows.iter().filter(|r| r["kind"] == "dispatch") {
        println!(
            "{:<22} {:>3} {:<8} {:>10} {:>10} {:>10} {:>7}",
            text(r, "case"),
            r["threads"],
            text(r, "isa"),
            us(&r["ours_seconds"]),
            us(&r["direct_seconds"]),
            us(&r["peer_seconds"]),
            speed(&r["speed"]),
        );
        note(r, &mut peer_notes);
    }
    println!("\nspeed: PyTorch's time over ours (above 1: faster than PyTorch). MiB: peak resident set while the case ran (+ its growth over the resident set before it).");
    for n in peer_notes {
        println!("peer: {n}");
    }
}

fn text<'a>(r: &'a Value, key: &str) -> &'a str {
    r[key].as_str().unwrap_or("")
}

fn note(r: &Value, notes: &mut std::collections::BTreeSet<String>) {
    if let Some(d) = r["peer_detail"].as_str() {
        notes.insert(d.to_string());
    }
    if let Some(e) = r["peer_error"].as_str() {
        notes.insert(format!("unavailable: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_steps_and_lowers_its_loss() {
        for case in Case::ALL {
            let mut s = Setup::new(case, 3).unwrap();
            let loss = |s: &Setup| {
                let logits = s.model.forward(&s.x).unwrap();
                assert_eq!(logits.shape(), &[case.labels(), CLASSES], "{}", case.name());
                Tensor::cross_entropy(&logits, &s.y, -100)
                    .unwrap()
                    .mean_all()
                    .unwrap()
                    .item()
                    .unwrap()
            };
            let first = loss(&s);
            for _ in 0..8 {
                s.step().unwrap();
            }
            let last = loss(&s);
            assert!(
                last < first,
                "{}: loss {first} -> {last} after 8 steps on one batch",
                case.name()
            );
        }
    }

    #[test]
    fn direct_calls_run_the_kernel() {
        for d in [Dispatch::Add, Dispatch::Relu, Dispatch::Matmul] {
            let t = dispatch_direct(d, Duration::from_millis(1)).unwrap();
            assert!(t.is_some_and(|t| t > 0.0), "{}", d.name());
        }
        assert_eq!(dispatch_direct(Dispatch::Chain, Duration::ZERO), Ok(None));
    }

    #[test]
    fn the_peak_resets_and_reads() {
        if let Some((rss, peak)) = rss_mb() {
            assert!(rss > 0.0 && peak >= rss * 0.5, "{rss} {peak}");
        }
    }
}
