//! The `cuda` suite: f32 GEMM, conv2d (forward, backward-data and
//! backward-filter) and a large elementwise multiply on `cuda:0`, through
//! the core's API as a user calls it (each call allocates its output), beside
//! PyTorch on the same GPU in the same run: `scripts/torch_cuda_bench.py`,
//! a subprocess started after our figures are taken, optional (when Python,
//! torch or its CUDA is missing, the reason is printed and ours still are).
//!
//! Same precision on both sides: strict f32 (no TF32) unless the plugin
//! reports TF32 on (`SUNRISE_CUDA_TF32=1`), in which case PyTorch is given
//! TF32 too and every row says `"tf32": true`.
//!
//! Timing, both sides alike: one warm-up call (first-use kernel compile,
//! convolution algorithm choice), one call timed alone to size the batches,
//! then batches of back-to-back calls of about 20 ms each between two
//! device synchronisations (PyTorch: two CUDA events); the median batch
//! time over `--seconds` (at least 5 batches) divided by its calls.
//!
//! Cases: square GEMM 1024, 4096 and 8192 (named `MxKxN` like the gemm
//! suite); the ResNet convolutions N32 C64 56x56 K64 3x3 pad 1, N32 C3
//! 224x224 K64 7x7 stride 2 pad 3 and N32 C256 14x14 K256 3x3 pad 1 (named
//! like the conv suite), each pass doing 2*N*K*OH*OW*C*KH*KW flops; and
//! `mul-268435456`, `c = a * b` on 2^28 f32 (1 GiB each), counting 12 bytes
//! per element (two read, one written).
//!
//! JSON keys: `suite` ("cuda"), `case`, `op`, `pass` (conv rows), `device`,
//! `tf32`, `flops` or `bytes`, `ours_tflops` or `ours_gbps`,
//! `ours_seconds`, `peer` ("pytorch"), `peer_detail`, `peer_tflops` or
//! `peer_gbps` (null with `peer_error` where the peer is unavailable),
//! `peer_seconds`, `ratio` (our speed over the peer's) and `target` (the
//! ratio DESIGN.md asks for: 0.95 for GEMM and convolution, 0.9 for the
//! elementwise op).

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sunrise::{Conv2dOptions, DType, Device, Tensor};

use super::conv::ConvCase;
use super::{onnxruntime, BenchArgs};

/// The peer's script, in `--scripts` (default: the source tree's `scripts/`).
const SCRIPT: &str = "torch_cuda_bench.py";

/// Square GEMM sizes.
const GEMMS: [usize; 3] = [1024, 4096, 8192];

/// The convolutions (batch 32, ResNet layers).
const CONVS: [ConvCase; 3] = [
    ConvCase {
        n: 32,
        c: 64,
        h: 56,
        w: 56,
        k: 64,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
    ConvCase {
        n: 32,
        c: 3,
        h: 224,
        w: 224,
        k: 64,
        kernel: 7,
        stride: 2,
        pad: 3,
    },
    ConvCase {
        n: 32,
        c: 256,
        h: 14,
        w: 14,
        k: 256,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
];

/// Elements of each operand of the elementwise multiply.
const MUL_NUMEL: usize = 1 << 28;

/// The three passes of a convolution.
const PASSES: [&str; 3] = ["forward", "backward_data", "backward_filter"];

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Case {
    /// `n x n` by `n x n`.
    Gemm(usize),
    /// One pass of a convolution.
    Conv(ConvCase, &'static str),
    /// `c = a * b` on this many elements.
    Mul(usize),
}

impl Case {
    /// Every case, in table order.
    pub fn all() -> Vec<Case> {
        let mut v: Vec<Case> = GEMMS.iter().map(|&n| Case::Gemm(n)).collect();
        for c in CONVS {
            v.extend(PASSES.iter().map(|&p| Case::Conv(c, p)));
        }
        v.push(Case::Mul(MUL_NUMEL));
        v
    }

    /// The `case` key (shared by every pass of a convolution).
    pub fn name(&self) -> String {
        match self {
            Case::Gemm(n) => format!("{n}x{n}x{n}"),
            Case::Conv(c, _) => c.name(),
            Case::Mul(n) => format!("mul-{n}"),
        }
    }

    /// The `pass` key (convolutions only).
    pub fn pass(&self) -> Option<&'static str> {
        match self {
            Case::Conv(_, p) => Some(p),
            _ => None,
        }
    }

    /// The op it measures.
    pub fn op(&self) -> &'static str {
        match self {
            Case::Gemm(_) => "matmul",
            Case::Conv(..) => "conv2d",
            Case::Mul(_) => "mul",
        }
    }

    /// The ratio to PyTorch DESIGN.md asks for.
    pub fn target(&self) -> f64 {
        match self {
            Case::Mul(_) => 0.9,
            _ => 0.95,
        }
    }

    /// Work per call: flops (GEMM, conv) or bytes moved (mul).
    pub fn work(&self) -> f64 {
        match self {
            Case::Gemm(n) => 2.0 * (n * n * n) as f64,
            Case::Conv(c, _) => c.flops(),
            Case::Mul(n) => 12.0 * *n as f64,
        }
    }

    /// True when figures are bytes per second, not flops.
    pub fn is_bandwidth(&self) -> bool {
        matches!(self, Case::Mul(_))
    }

    /// `(JSON suffix, unit, scale)`: tflops in TFLOP/s, or gbps in GB/s.
    fn unit(&self) -> (&'static str, &'static str, f64) {
        if self.is_bandwidth() {
            ("gbps", "GB/s", 1e9)
        } else {
            ("tflops", "TFLOP/s", 1e12)
        }
    }

    /// What the peer script needs to run the same case.
    pub fn spec(&self) -> Value {
        let mut v = json!({"case": self.name(), "op": self.op()});
        let extra = match self {
            Case::Gemm(n) => json!({"m": n, "k": n, "n": n}),
            Case::Conv(c, p) => json!({
                "pass": p, "n": c.n, "c": c.c, "h": c.h, "w": c.w, "k": c.k,
                "kernel": c.kernel, "stride": c.stride, "pad": c.pad,
            }),
            Case::Mul(n) => json!({"numel": n}),
        };
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    /// Whether `--filter` keeps it (matched against case, op and pass).
    fn wanted(&self, filter: Option<&str>) -> bool {
        filter.is_none_or(|f| {
            self.name().contains(f)
                || self.op().contains(f)
                || self.pass().is_some_and(|p| p.contains(f))
        })
    }
}

fn conv_options(c: &ConvCase) -> Conv2dOptions {
    Conv2dOptions {
        stride: [c.stride; 2],
        padding: [c.pad; 2],
        ..Default::default()
    }
}

/// Median seconds per call of `f` on `dev` (see the module docs).
pub(crate) fn time_gpu(
    dev: &Device,
    mut f: impl FnMut() -> sunrise::Result<()>,
    budget: Duration,
) -> sunrise::Result<f64> {
    f()?;
    dev.synchronize()?;
    let t = Instant::now();
    f()?;
    dev.synchronize()?;
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.02 / one).ceil() as usize).clamp(1, 1000);
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || (start.elapsed() < budget && samples.len() < 1000) {
        dev.synchronize()?;
        let t = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        dev.synchronize()?;
        samples.push(t.elapsed().as_secs_f64() / reps as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

fn rand(shape: &[usize], seed: u64, dev: &Device) -> sunrise::Result<Tensor> {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, dev)
}

/// Our median seconds per call of `case` on `dev`.
fn measure(dev: &Device, case: &Case, seed: u64, budget: Duration) -> sunrise::Result<f64> {
    match case {
        Case::Gemm(n) => {
            let (a, b) = (rand(&[*n, *n], seed, dev)?, rand(&[*n, *n], seed + 1, dev)?);
            time_gpu(dev, || a.matmul(&b).map(drop), budget)
        }
        Case::Conv(c, pass) => {
            let o = conv_options(c);
            let x = rand(&[c.n, c.c, c.h, c.w], seed, dev)?;
            let w = rand(&[c.k, c.c, c.kernel, c.kernel], seed + 1, dev)?;
            let y_shape = o.output_shape("conv2d", x.shape(), w.shape())?;
            match *pass {
                "forward" => time_gpu(dev, || x.conv2d(&w, None, &o).map(drop), budget),
                "backward_data" => {
                    let dy = rand(&y_shape, seed + 2, dev)?;
                    time_gpu(
                        dev,
                        || Tensor::conv2d_backward_data(&dy, &w, x.shape(), &o).map(drop),
                        budget,
                    )
                }
                _ => {
                    let dy = rand(&y_shape, seed + 2, dev)?;
                    time_gpu(
                        dev,
                        || Tensor::conv2d_backward_filter(&x, &dy, w.shape(), &o).map(drop),
                        budget,
                    )
                }
            }
        }
        Case::Mul(n) => {
            // Filled on the device: 2^28 random values would take seconds
            // to draw on the host.
            let a = Tensor::full(&[*n], 1.5, DType::F32, dev)?;
            let b = Tensor::full(&[*n], 0.75, DType::F32, dev)?;
            time_gpu(dev, || a.mul(&b).map(drop), budget)
        }
    }
}

/// Our row for one case (before the peer's figures are added).
fn our_row(case: &Case, device: &str, tf32: bool, seconds: sunrise::Result<f64>) -> Value {
    let (key, _, scale) = case.unit();
    let work_key = if case.is_bandwidth() {
        "bytes"
    } else {
        "flops"
    };
    let mut row = json!({
        "suite": "cuda", "case": case.name(), "op": case.op(), "device": device, "tf32": tf32,
        "peer": "pytorch", "target": case.target(),
    });
    let o = row.as_object_mut().expect("an object");
    if let Some(p) = case.pass() {
        o.insert("pass".into(), json!(p));
    }
    o.insert(work_key.into(), json!(case.work()));
    match seconds {
        Ok(s) => {
            o.insert(format!("ours_{key}"), json!(case.work() / s / scale));
            o.insert("ours_seconds".into(), json!(s));
        }
        Err(e) => {
            o.insert(format!("ours_{key}"), Value::Null);
            o.insert("error".into(), json!(e.to_string()));
        }
    }
    row
}

/// Runs the peer script on every case; its JSON lines, or why there are none.
fn peer(args: &BenchArgs, dir: &Path, cases: &[Case], tf32: bool) -> Result<Vec<Value>, String> {
    let script = dir.join(SCRIPT);
    if !script.is_file() {
        return Err(format!(
            "{} not found; pass --scripts DIR",
            script.display()
        ));
    }
    let spec = Value::Array(cases.iter().map(Case::spec).collect()).to_string();
    let mut cmd = Command::new(&args.python);
    cmd.arg(&script)
        .args(["--seconds", &args.seconds.to_string(), "--spec", &spec]);
    if tf32 {
        cmd.arg("--tf32");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args.python))?;
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // A case that failed there has an `error` row; the others still count.
    if rows.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(4).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{SCRIPT} failed ({}): {}",
            out.status,
            tail.join(" | ")
        ));
    }
    Ok(rows)
}

/// Adds the peer's figures for `row`'s case (or why there are none).
fn join(row: &mut Value, case: &Case, peer: &Result<Vec<Value>, String>) {
    let (key, _, _) = case.unit();
    let peer_key = format!("peer_{key}");
    let o = row.as_object_mut().expect("an object");
    let found = peer.as_ref().map(|rows| {
        rows.iter()
            .find(|r| r["case"] == json!(case.name()) && r["pass"].as_str() == case.pass())
    });
    match found {
        Ok(Some(p)) if p["error"].is_string() => {
            o.insert(peer_key, Value::Null);
            o.insert("peer_error".into(), p["error"].clone());
        }
        Ok(Some(p)) => {
            let s = p["peer_seconds"].as_f64();
            o.insert(peer_key, p[format!("peer_{key}")].clone());
            o.insert("peer_seconds".into(), json!(s));
            o.insert("peer_detail".into(), p["peer_detail"].clone());
            if let (Some(ps), Some(ours)) = (s, o.get("ours_seconds").and_then(Value::as_f64)) {
                o.insert("ratio".into(), json!(ps / ours));
            }
        }
        Ok(None) => {
            o.insert(peer_key, Value::Null);
            o.insert(
                "peer_error".into(),
                json!("the peer printed no row for this case"),
            );
        }
        Err(e) => {
            o.insert(peer_key, Value::Null);
            o.insert("peer_error".into(), json!(e));
        }
    }
}

/// Runs `sunrise bench cuda`: exit 1 when there is no usable CUDA device
/// or one of our measurements failed.
pub(crate) fn run(args: &BenchArgs) -> ExitCode {
    let dev = match sunrise::registry::registry().device("cuda:0") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: sunrise bench cuda needs a usable CUDA device: {e}");
            eprintln!("(`sunrise doctor` shows why the cuda plugin is not usable)");
            return ExitCode::from(1);
        }
    };
    let info = dev.backend().device_info(dev.ordinal());
    let (name, tf32) = match &info {
        Ok(i) => (
            i.name.clone(),
            i.attributes.iter().any(|(k, v)| k == "tf32" && v == "on"),
        ),
        Err(e) => (format!("(device info unavailable: {e})"), false),
    };
    let budget = Duration::from_secs_f64(args.seconds);
    let cases: Vec<Case> = Case::all()
        .into_iter()
        .filter(|c| c.wanted(args.filter.as_deref()))
        .collect();
    if !args.json {
        println!(
            "sunrise bench cuda on {dev} ({name}), {}: warm-up, then the median of ~20 ms batches over {} s per measurement",
            if tf32 { "TF32 on" } else { "strict f32" },
            args.seconds
        );
    }
    let mut rows = Vec::new();
    let mut failed = false;
    for (i, case) in cases.iter().enumerate() {
        let t = measure(&dev, case, 10 * i as u64, budget);
        failed |= t.is_err();
        rows.push(our_row(case, &name, tf32, t));
    }
    let dir = onnxruntime::script_dir(args.scripts.as_deref());
    let peer = if cases.is_empty() {
        Ok(Vec::new())
    } else {
        peer(args, &dir, &cases, tf32)
    };
    for (row, case) in rows.iter_mut().zip(&cases) {
        join(row, case, &peer);
    }
    if args.json {
        for r in &rows {
            println!("{r}");
        }
    } else {
        table(&rows);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn figure(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

/// Prints the table of the cuda suite's rows.
pub(crate) fn table(rows: &[Value]) {
    let text = |r: &Value, k: &str| r[k].as_str().unwrap_or("").to_string();
    let peers: std::collections::BTreeSet<String> = rows
        .iter()
        .map(
            |r| match (r["peer_detail"].as_str(), r["peer_error"].as_str()) {
                (Some(d), _) => format!("peer: pytorch ({d})"),
                (None, Some(e)) => format!("peer: unavailable ({e})"),
                (None, None) => "peer: pytorch".into(),
            },
        )
        .collect();
    for p in peers {
        println!("{p}");
    }
    let w = rows
        .iter()
        .map(|r| text(r, "case").len())
        .fold(4, usize::max);
    println!(
        "{:<w$} {:<15} {:<8} {:>10} {:>10} {:>9} {:>7}",
        "case", "pass", "unit", "ours", "pytorch", "ours/peer", "target"
    );
    for r in rows {
        let bandwidth = r["bytes"].is_number();
        let (key, unit) = if bandwidth {
            ("gbps", "GB/s")
        } else {
            ("tflops", "TFLOP/s")
        };
        print!(
            "{:<w$} {:<15} {:<8}",
            text(r, "case"),
            text(r, "pass"),
            unit
        );
        if let Some(e) = r["error"].as_str() {
            println!(" error: {e}");
            continue;
        }
        let ratio = r["ratio"].as_f64();
        let target = r["target"].as_f64().unwrap_or(0.0);
        println!(
            " {:>10} {:>10} {:>9} {:>6.2}x{}",
            figure(&r[format!("ours_{key}")]),
            figure(&r[format!("peer_{key}")]),
            ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
            target,
            if ratio.is_some_and(|x| x < target) {
                "  below target"
            } else {
                ""
            }
        );
    }
    println!("(GB/s counts bytes read + written once each; ours/peer is our speed over PyTorch's)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_cover_the_issue_and_have_unique_keys() {
        let all = Case::all();
        assert_eq!(all.len(), 3 + 3 * 3 + 1);
        let keys: std::collections::BTreeSet<(String, Option<&str>)> =
            all.iter().map(|c| (c.name(), c.pass())).collect();
        assert_eq!(keys.len(), all.len());
        assert_eq!(Case::Gemm(4096).name(), "4096x4096x4096");
        assert_eq!(Case::Gemm(4096).work(), 2.0 * 4096f64.powi(3));
        let c = Case::Conv(CONVS[0], "forward");
        assert_eq!(c.name(), "N32-C64-56x56-K64-3x3-s1-p1");
        assert_eq!(c.work(), 2.0 * (32u64 * 64 * 56 * 56 * 64 * 9) as f64);
        let stem = Case::Conv(CONVS[1], "backward_filter");
        assert_eq!(stem.name(), "N32-C3-224x224-K64-7x7-s2-p3");
        assert_eq!(stem.work(), 2.0 * (32u64 * 64 * 112 * 112 * 3 * 49) as f64);
        assert_eq!(Case::Mul(MUL_NUMEL).work(), 12.0 * (1u64 << 28) as f64);
        assert_eq!(Case::Mul(8).target(), 0.9);
        assert_eq!(c.target(), 0.95);
    }

    #[test]
    fn specs_carry_what_the_peer_script_reads() {
        let s = Case::Conv(CONVS[2], "backward_data").spec();
        assert_eq!(s["case"], "N32-C256-14x14-K256-3x3-s1-p1");
        assert_eq!(s["pass"], "backward_data");
        for k in ["n", "c", "h", "w", "k", "kernel", "stride", "pad"] {
            assert!(s[k].is_u64(), "{k}: {s}");
        }
        assert_eq!(Case::Gemm(1024).spec()["m"], 1024);
        assert_eq!(Case::Mul(8).spec()["numel"], 8);
    }

    /// The integers in `text`, in order.
    fn numbers(text: &str) -> Vec<usize> {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().unwrap())
            .collect()
    }

    #[test]
    fn the_peer_script_defines_the_same_cases() {
        // The script also runs standalone, with its own default list: its
        // GEMMS, CONVS and MUL_NUMEL must be ours.
        let script = std::fs::read_to_string(onnxruntime::script_dir(None).join(SCRIPT))
            .expect("scripts/torch_cuda_bench.py");
        let line = |prefix: &str| -> &str {
            script
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no line starting {prefix:?} in {SCRIPT}"))
        };
        assert_eq!(numbers(line("GEMMS = [")), GEMMS);
        assert_eq!(line("MUL_NUMEL = "), "MUL_NUMEL = 1 << 28");
        assert_eq!(MUL_NUMEL, 1 << 28);
        let block = script
            .split("CONVS = [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .expect("a CONVS list");
        let convs: Vec<Vec<usize>> = block
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('('))
            .map(numbers)
            .collect();
        let ours: Vec<Vec<usize>> = CONVS
            .iter()
            .map(|c| vec![c.n, c.c, c.h, c.w, c.k, c.kernel, c.stride, c.pad])
            .collect();
        assert_eq!(convs, ours);
        let passes = line("PASSES = [");
        for p in PASSES {
            assert!(passes.contains(&format!("\"{p}\"")), "{passes}");
        }
    }

    #[test]
    fn filter_matches_case_op_and_pass() {
        let c = Case::Conv(CONVS[0], "backward_data");
        assert!(c.wanted(None));
        assert!(c.wanted(Some("C64")) && c.wanted(Some("conv")) && c.wanted(Some("backward_d")));
        assert!(!c.wanted(Some("matmul")));
        assert!(Case::Gemm(1024).wanted(Some("1024x")));
    }

    /// Options as `sunrise bench ARGS` parses them.
    fn bench_args(args: &[&str]) -> BenchArgs {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .unwrap()
            .bench
    }

    #[test]
    fn the_peer_runs_as_a_subprocess_and_its_failures_are_reasons() {
        let dir = std::env::temp_dir().join(format!("sunrise-cuda-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join(SCRIPT);
        let d = dir.to_str().unwrap();
        let args = bench_args(&["cuda", "--python", "sh", "--scripts", d, "--seconds", "0.5"]);
        let cases = [Case::Mul(8)];
        // A stand-in for the script (run by `sh`): one row, echoing its
        // first arguments; then a row for a case that failed there.
        std::fs::write(
            &script,
            "echo '{\"case\": \"mul-8\", \"peer_gbps\": 2.0, \"peer_seconds\": 0.25, \"peer_detail\": \"'\"$1 $2 $3\"'\"}'\n\
             echo '{\"case\": \"4x4x4\", \"error\": \"RuntimeError: no\"}'\nexit 1\n",
        )
        .unwrap();
        let rows = peer(&args, &dir, &cases, false).expect("rows despite one failed case");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["peer_detail"], "--seconds 0.5 --spec");
        let mut row = our_row(&cases[0], "GPU", false, Ok(0.5));
        join(&mut row, &cases[0], &Ok(rows.clone()));
        assert_eq!(row["ratio"], 0.5);
        let mut failed = our_row(&Case::Gemm(4), "GPU", false, Ok(0.5));
        join(&mut failed, &Case::Gemm(4), &Ok(rows));
        assert_eq!(failed["peer_error"], "RuntimeError: no");
        // No torch: the script's reason comes back.
        std::fs::write(&script, "echo 'torch is not installed' >&2\nexit 2\n").unwrap();
        let e = peer(&args, &dir, &cases, false).unwrap_err();
        assert!(
            e.contains("torch is not installed") && e.contains("exit status: 2"),
            "{e}"
        );
        std::fs::remove_file(&script).unwrap();
        let e = peer(&args, &dir, &cases, false).unwrap_err();
        assert!(e.contains("not found; pass --scripts DIR"), "{e}");
        let missing = bench_args(&["cuda", "--python", "/nonexistent/python3", "--scripts", d]);
        std::fs::write(&script, "").unwrap();
        let e = peer(&missing, &dir, &cases, false).unwrap_err();
        assert!(e.contains("cannot run /nonexistent/python3"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn time_gpu_takes_the_median_of_batches() {
        let dev = Device::cpu();
        let mut calls = 0usize;
        let t = time_gpu(
            &dev,
            || {
                calls += 1;
                std::thread::sleep(Duration::from_millis(2));
                Ok(())
            },
            Duration::ZERO,
        )
        .unwrap();
        // A call sleeps at least 2 ms; how much longer depends on the load.
        assert!((0.0015..0.5).contains(&t), "{t}");
        // Warm-up, sizing call, then at least 5 batches of at least one call
        // (about 20 ms each, sized from the sizing call, which a loaded
        // machine can stretch: so no exact count).
        assert!(calls >= 2 + 5, "{calls}");
    }

    #[test]
    fn rows_join_the_peer_by_case_and_pass() {
        let case = Case::Conv(CONVS[0], "backward_data");
        let mut row = our_row(&case, "GPU", false, Ok(0.01));
        assert_eq!(row["ours_tflops"], json!(case.work() / 0.01 / 1e12));
        let peer = Ok(vec![
            json!({"case": case.name(), "pass": "forward", "peer_seconds": 1.0, "peer_tflops": 1.0}),
            json!({"case": case.name(), "pass": "backward_data", "peer_seconds": 0.02,
                   "peer_tflops": 5.0, "peer_detail": "torch x"}),
        ]);
        join(&mut row, &case, &peer);
        assert_eq!(row["peer_tflops"], 5.0);
        assert_eq!(row["ratio"], 2.0);
        assert_eq!(row["peer_detail"], "torch x");
        let mul = Case::Mul(8);
        let mut row = our_row(&mul, "GPU", false, Ok(1e-9));
        assert_eq!(row["bytes"], 96.0);
        join(&mut row, &mul, &Err("no torch".into()));
        assert!(row["peer_gbps"].is_null());
        assert_eq!(row["peer_error"], "no torch");
        assert!(row.get("ratio").is_none());
    }
}
