//! The `conv` suite: f32 NCHW conv2d forward against ONNX Runtime's CPU
//! provider on the same case and thread count, plus our backward-data and
//! backward-filter with their time relative to our forward.
//!
//! Cases: a ResNet 3x3 layer (N8 C64 56x56 K64 3x3, pad 1) and a ResNet
//! stem (N8 C3 224x224 K64 7x7, stride 2, pad 3); no bias. Every pass does
//! the same 2*N*K*OH*OW*C*KH*KW flops.
//!
//! `forward_nhwc` is the forward pass with input and output channels-last
//! (`Tensor::to_channels_last`, converted before the timing), as between
//! the layers of a network kept in that format; its peer figure is ONNX
//! Runtime's NCHW one (whose own blocked-layout reorders it includes).
//!
//! JSON keys: `suite` ("conv"), `case`, `pass` (forward, forward_nhwc,
//! backward_data, backward_filter), `threads`, `isa`, `flops`, `ours_gflops`,
//! `ours_seconds`, `peer` ("onnxruntime" on forward rows, null on backward
//! ones: ONNX Runtime only infers), `peer_detail`, `peer_gflops` (null with
//! `peer_error` where the peer is unavailable), `peer_seconds`, `ratio`
//! (ours / peer) and, on backward rows, `vs_forward` (our time over our
//! forward time).

use serde_json::{json, Value};
use sunrise::{Conv2dOptions, DType, Device, Tensor};

use super::{onnxruntime, time_median, BenchError, Ctx};

/// One convolution: input N x C x H x W, K filters of C x kernel x kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvCase {
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Square window side.
    pub kernel: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both sides of both axes).
    pub pad: usize,
}

impl ConvCase {
    /// E.g. `N8-C64-56x56-K64-3x3-s1-p1`.
    pub fn name(&self) -> String {
        let ConvCase {
            n,
            c,
            h,
            w,
            k,
            kernel,
            stride,
            pad,
        } = *self;
        format!("N{n}-C{c}-{h}x{w}-K{k}-{kernel}x{kernel}-s{stride}-p{pad}")
    }

    fn out_extent(&self, x: usize) -> usize {
        (x + 2 * self.pad).saturating_sub(self.kernel) / self.stride + 1
    }

    /// Flops of one pass.
    pub fn flops(&self) -> f64 {
        let (oh, ow) = (self.out_extent(self.h), self.out_extent(self.w));
        2.0 * (self.n * self.k * oh * ow * self.c * self.kernel * self.kernel) as f64
    }

    fn options(&self) -> Conv2dOptions {
        Conv2dOptions {
            stride: [self.stride; 2],
            padding: [self.pad; 2],
            ..Default::default()
        }
    }
}

/// The cases, in order.
const CASES: [ConvCase; 2] = [
    ConvCase {
        n: 8,
        c: 64,
        h: 56,
        w: 56,
        k: 64,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
    ConvCase {
        n: 8,
        c: 3,
        h: 224,
        w: 224,
        k: 64,
        kernel: 7,
        stride: 2,
        pad: 3,
    },
];

fn rand(shape: &[usize], seed: u64) -> sunrise::Result<Tensor> {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, &Device::cpu())
}

/// Our forward (NCHW, then channels-last in and out), backward-data and
/// backward-filter median seconds.
fn ours(ctx: &Ctx<'_>, case: &ConvCase, seed: u64) -> Result<[f64; 4], BenchError> {
    let opts = case.options();
    let x = rand(&[case.n, case.c, case.h, case.w], seed)?;
    let w = rand(&[case.k, case.c, case.kernel, case.kernel], seed + 1)?;
    let dy = x.conv2d(&w, None, &opts)?;
    let fwd = time_median(|| x.conv2d(&w, None, &opts).map(drop), ctx.budget)?;
    let xc = x.to_channels_last()?;
    let fwd_cl = time_median(|| xc.conv2d(&w, None, &opts).map(drop), ctx.budget)?;
    let bwd_data = time_median(
        || Tensor::conv2d_backward_data(&dy, &w, x.shape(), &opts).map(drop),
        ctx.budget,
    )?;
    let bwd_filter = time_median(
        || Tensor::conv2d_backward_filter(&x, &dy, w.shape(), &opts).map(drop),
        ctx.budget,
    )?;
    Ok([fwd, fwd_cl, bwd_data, bwd_filter])
}

/// The forward row, with the peer's figure or the reason it is missing.
fn forward_row(
    ctx: &Ctx<'_>,
    (case, pass): (&ConvCase, &str),
    ours: f64,
    peer: &Result<onnxruntime::Figure, String>,
) -> Value {
    let flops = case.flops();
    let mut row = json!({
        "suite": "conv", "case": case.name(), "pass": pass, "threads": ctx.threads,
        "isa": ctx.isa, "flops": flops, "ours_gflops": flops / ours / 1e9, "ours_seconds": ours,
        "peer": "onnxruntime",
    });
    let extra = match peer {
        Ok(p) => json!({
            "peer_detail": p.detail, "peer_gflops": p.gflops, "peer_seconds": p.seconds,
            "ratio": p.seconds / ours,
        }),
        Err(reason) => json!({"peer_gflops": null, "peer_error": reason}),
    };
    if let (Some(r), Value::Object(e)) = (row.as_object_mut(), extra) {
        r.extend(e);
    }
    row
}

/// Measures the conv suite at this process's tier and thread count and
/// prints its JSON lines.
pub(crate) fn run(ctx: &Ctx<'_>) -> Result<(), BenchError> {
    let dir = onnxruntime::script_dir(ctx.args.scripts.as_deref());
    for (i, case) in CASES.iter().enumerate() {
        let name = case.name();
        if !ctx.wants(&name) {
            continue;
        }
        let [fwd, fwd_cl, bwd_data, bwd_filter] = match ours(ctx, case, 100 * i as u64) {
            Ok(t) => t,
            Err(e) => {
                ctx.emit(&json!({
                    "suite": "conv", "case": name, "pass": "forward", "threads": ctx.threads,
                    "isa": ctx.isa, "peer": "onnxruntime", "error": e.to_string(),
                }));
                continue;
            }
        };
        let peer = onnxruntime::measure(&ctx.args.python, &dir, case, ctx.threads, ctx.budget);
        ctx.emit(&forward_row(ctx, (case, "forward"), fwd, &peer));
        ctx.emit(&forward_row(ctx, (case, "forward_nhwc"), fwd_cl, &peer));
        let flops = case.flops();
        for (pass, t) in [("backward_data", bwd_data), ("backward_filter", bwd_filter)] {
            ctx.emit(&json!({
                "suite": "conv", "case": name, "pass": pass, "threads": ctx.threads,
                "isa": ctx.isa, "flops": flops, "ours_gflops": flops / t / 1e9, "ours_seconds": t,
                "peer": null, "peer_gflops": null, "vs_forward": t / fwd,
            }));
        }
    }
    Ok(())
}
