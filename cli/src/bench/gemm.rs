//! The `gemm` suite: f32 `Tensor::matmul` against OpenBLAS's `cblas_sgemm`
//! on the same shapes and thread count, calls alternating.
//!
//! Cases are named `MxKxN` (A is M x K, B is K x N): the squares 256 to
//! 2048 and 25088x576x64, the im2col GEMM of a 3x3 convolution with 64
//! channels in and out on a batch of 8 56x56 images; then the shapes a
//! training step produces (`sunrise bench train`): the MLP's forward
//! 64x784x512, its input gradient 64x512x784 and its weight gradient
//! 512x64x784 (depth = the batch), and the transformer's FFN 512x256x1024
//! with its weight gradient 1024x512x256. Ours allocates its
//! output on each call (through the framework, as a user would); OpenBLAS
//! writes into a buffer made once.
//!
//! JSON keys: `suite` ("gemm"), `case`, `threads`, `isa`, `flops`,
//! `ours_gflops`, `ours_seconds`, `peer` ("openblas"), `peer_detail`,
//! `peer_threads`, `peer_gflops`, `peer_seconds`, `ratio` (ours / peer),
//! `max_rel_diff` (ours against the peer's result), `peak_gflops` (the
//! tier's arithmetic peak on as many threads, measured in the same run by
//! [`super::peak`]; null where the tier has none) and `ours_of_peak`; where
//! OpenBLAS is missing, `peer_gflops` is null and `peer_error` says why.

use serde_json::{json, Value};
use sunrise::{DType, Device, Tensor};
use sunrise_backend_cpu::isa;

use super::openblas::OpenBlas;
use super::peak::fma_peak;
use super::{time_median, time_pair, BenchError, Ctx};

/// (M, K, N) of each case.
const CASES: [(usize, usize, usize); 10] = [
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (25088, 576, 64),
    (64, 784, 512),
    (64, 512, 784),
    (512, 64, 784),
    (512, 256, 1024),
    (1024, 512, 256),
];

fn rand(shape: &[usize], seed: u64) -> sunrise::Result<Tensor> {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, &Device::cpu())
}

/// Largest |ours - theirs| over the largest |theirs|.
pub(crate) fn max_rel_diff(ours: &[f32], theirs: &[f32]) -> f64 {
    let scale = theirs
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    f64::from(diff / scale)
}

/// Times one case against OpenBLAS and returns its JSON row.
fn with_peer(
    ctx: &Ctx<'_>,
    blas: &OpenBlas,
    (m, k, n): (usize, usize, usize),
    a: &Tensor,
    b: &Tensor,
) -> Result<Value, BenchError> {
    let (av, bv) = (a.to_vec::<f32>()?, b.to_vec::<f32>()?);
    let mut c = vec![0f32; m * n];
    let peer_threads = blas.set_threads(ctx.threads);
    let sgemm = |c: &mut [f32]| blas.sgemm((m, k, n), &av, &bv, c);
    sgemm(&mut c).map_err(|e| BenchError::Peer(e.to_string()))?;
    let diff = max_rel_diff(&a.matmul(b)?.to_vec::<f32>()?, &c);
    let (ours, peer) = time_pair(
        || a.matmul(b).map(drop).map_err(BenchError::from),
        || sgemm(&mut c).map_err(|e| BenchError::Peer(e.to_string())),
        ctx.budget,
    )?;
    let flops = 2.0 * (m * k * n) as f64;
    Ok(json!({
        "suite": "gemm", "case": format!("{m}x{k}x{n}"), "threads": ctx.threads,
        "isa": ctx.isa, "flops": flops, "ours_gflops": flops / ours / 1e9, "ours_seconds": ours,
        "peer": "openblas", "peer_detail": blas.description, "peer_threads": peer_threads,
        "peer_gflops": flops / peer / 1e9, "peer_seconds": peer, "ratio": peer / ours,
        "max_rel_diff": diff,
    }))
}

/// Times one case alone (OpenBLAS missing) and returns its JSON row.
fn without_peer(
    ctx: &Ctx<'_>,
    reason: &str,
    (m, k, n): (usize, usize, usize),
    a: &Tensor,
    b: &Tensor,
) -> Result<Value, BenchError> {
    let ours = time_median(|| a.matmul(b).map(drop), ctx.budget)?;
    let flops = 2.0 * (m * k * n) as f64;
    Ok(json!({
        "suite": "gemm", "case": format!("{m}x{k}x{n}"), "threads": ctx.threads,
        "isa": ctx.isa, "flops": flops, "ours_gflops": flops / ours / 1e9, "ours_seconds": ours,
        "peer": "openblas", "peer_gflops": null, "peer_error": reason,
    }))
}

/// Measures the gemm suite at this process's tier and thread count and
/// prints its JSON lines.
pub(crate) fn run(ctx: &Ctx<'_>) -> Result<(), BenchError> {
    let blas = OpenBlas::load();
    let peak = fma_peak(isa::tier(), ctx.threads);
    for (i, &(m, k, n)) in CASES.iter().enumerate() {
        let case = format!("{m}x{k}x{n}");
        if !ctx.wants(&case) {
            continue;
        }
        let seed = 10 * i as u64;
        let (a, b) = (rand(&[m, k], seed)?, rand(&[k, n], seed + 1)?);
        let row = match &blas {
            Ok(blas) => with_peer(ctx, blas, (m, k, n), &a, &b),
            Err(reason) => without_peer(ctx, reason, (m, k, n), &a, &b),
        };
        let row = row.map(|mut r| {
            let ours = r["ours_gflops"].as_f64();
            r["peak_gflops"] = json!(peak);
            r["ours_of_peak"] = json!(peak.zip(ours).map(|(p, o)| o / p));
            r
        });
        let row = row.unwrap_or_else(|e| {
            json!({
                "suite": "gemm", "case": case, "threads": ctx.threads, "isa": ctx.isa,
                "peer": "openblas", "error": e.to_string(),
            })
        });
        ctx.emit(&row);
    }
    Ok(())
}
