//! The `ops` suite (the default): one case per op family, measured at the
//! tier this process runs, plus the memcpy bandwidth of the same run. The
//! parent lays the tiers side by side against the portable kernels.
//!
//! JSON keys: `suite` ("ops"), `op`, `case`, `isa`, `threads`, `seconds`,
//! `value`, `unit` (GB/s read + written, or GFLOP/s).

use serde_json::json;
use sunrise::{Conv2dOptions, DType, Device, Tensor};

use super::{memory, time_median, BenchError, Ctx};

/// One measured case: op, shape, work per call (bytes or flops), unit, call.
struct Case {
    op: &'static str,
    case: String,
    work: f64,
    unit: &'static str,
    call: Box<dyn FnMut() -> sunrise::Result<()>>,
}

impl Case {
    fn new(
        op: &'static str,
        case: impl Into<String>,
        work: f64,
        unit: &'static str,
        call: impl FnMut() -> sunrise::Result<()> + 'static,
    ) -> Case {
        Case {
            op,
            case: case.into(),
            work,
            unit,
            call: Box::new(call),
        }
    }
}

fn rand(shape: &[usize], seed: u64) -> sunrise::Result<Tensor> {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, &Device::cpu())
}

/// Bytes of `k` f32 elements.
fn f32_bytes(k: usize) -> f64 {
    4.0 * k as f64
}

fn elementwise_cases(v: &mut Vec<Case>) -> sunrise::Result<()> {
    let n = 1 << 22;
    let (a, b) = (rand(&[n], 1)?, rand(&[n], 2)?);
    let (a1, b1) = (a.clone(), b);
    v.push(Case::new(
        "add",
        format!("f32[{n}]"),
        f32_bytes(3 * n),
        "GB/s",
        move || a1.add(&b1).map(drop),
    ));
    let a2 = a.clone();
    v.push(Case::new(
        "relu",
        format!("f32[{n}]"),
        f32_bytes(2 * n),
        "GB/s",
        move || a2.relu().map(drop),
    ));
    v.push(Case::new(
        "exp",
        format!("f32[{n}]"),
        f32_bytes(2 * n),
        "GB/s",
        move || a.exp().map(drop),
    ));
    Ok(())
}

fn row_cases(v: &mut Vec<Case>) -> sunrise::Result<()> {
    let m = rand(&[2048, 2048], 3)?;
    let ln = rand(&[4096, 1024], 4)?;
    let (g, be) = (rand(&[1024], 5)?, rand(&[1024], 6)?);
    let m1 = m.clone();
    v.push(Case::new(
        "sum_last",
        "f32[2048,2048]",
        f32_bytes(2048 * 2048),
        "GB/s",
        move || m1.sum(&[-1], false).map(drop),
    ));
    v.push(Case::new(
        "softmax",
        "f32[2048,2048]",
        f32_bytes(2 * 2048 * 2048),
        "GB/s",
        move || m.softmax(-1).map(drop),
    ));
    v.push(Case::new(
        "layer_norm",
        "f32[4096,1024]",
        f32_bytes(2 * 4096 * 1024),
        "GB/s",
        move || ln.layer_norm(&g, &be, 1e-5).map(drop),
    ));
    Ok(())
}

fn compute_cases(v: &mut Vec<Case>) -> sunrise::Result<()> {
    let (ma, mb) = (rand(&[512, 512], 7)?, rand(&[512, 512], 8)?);
    v.push(Case::new(
        "matmul",
        "512x512x512",
        2.0 * 512f64.powi(3),
        "GFLOP/s",
        move || ma.matmul(&mb).map(drop),
    ));
    let x = rand(&[8, 64, 28, 28], 9)?;
    let w = rand(&[64, 64, 3, 3], 10)?;
    let conv = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    let flops = 2.0 * 8.0 * 64.0 * 28.0 * 28.0 * 64.0 * 9.0;
    v.push(Case::new(
        "conv2d",
        "N8 C64 28x28 K64 3x3",
        flops,
        "GFLOP/s",
        move || x.conv2d(&w, None, &conv).map(drop),
    ));
    Ok(())
}

/// Measures the ops suite at this process's tier and prints its JSON lines.
pub(crate) fn run(ctx: &Ctx<'_>) -> Result<(), BenchError> {
    let (isa, threads) = (ctx.isa, ctx.threads);
    let n = 1usize << 22;
    let copy = memory::memcpy_seconds(n, ctx.budget)?;
    ctx.emit(&json!({
        "suite": "ops", "op": "memcpy", "case": format!("memcpy f32[{n}]"), "isa": isa,
        "threads": threads, "seconds": copy, "value": f32_bytes(2 * n) / copy / 1e9,
        "unit": "GB/s",
    }));
    let mut cases = Vec::new();
    elementwise_cases(&mut cases)?;
    row_cases(&mut cases)?;
    compute_cases(&mut cases)?;
    for mut c in cases {
        if !ctx.wants(c.op) {
            continue;
        }
        let row = match time_median(&mut c.call, ctx.budget) {
            Ok(t) => json!({
                "suite": "ops", "op": c.op, "case": c.case, "isa": isa, "threads": threads,
                "seconds": t, "value": c.work / t / 1e9, "unit": c.unit,
            }),
            Err(e) => json!({
                "suite": "ops", "op": c.op, "case": c.case, "isa": isa, "threads": threads,
                "error": e.to_string(),
            }),
        };
        ctx.emit(&row);
    }
    Ok(())
}
