//! The `memory` suite: memory-bound ops on large f32 tensors against a
//! plain memcpy that moves the same bytes, on the same thread count.
//!
//! Bytes count what the op must read plus what it must write, once each
//! (add: two inputs and the output; sum over the last axis: the input and
//! one value per row; layer_norm: x, gamma, beta, y, mean and rstd). The
//! peer copies half that many bytes (so it too reads and writes that many in
//! total) with `copy_from_slice`, split into one chunk per thread on our own
//! rayon pool when there is more than one and the copy is above the
//! backend's threading threshold. Both are timed alternately.
//! Besides the large cases (64 MiB per tensor), `add` and `softmax` run on
//! 16 Ki and 256 Ki elements, cache-resident, where comparing the 1- and
//! 2-thread rows shows whether threading slows small ops down.
//!
//! JSON keys: `suite` ("memory"), `case`, `op`, `threads`, `isa`, `bytes`,
//! `ours_gbps`, `ours_seconds`, `peer` ("memcpy"), `peer_gbps`,
//! `peer_seconds`, `ratio` (ours / peer).

use std::time::Duration;

use rayon::prelude::*;
use serde_json::json;
use sunrise::{DType, Device, Tensor};

use super::{time_median, time_pair, BenchError, Ctx};

/// Source and destination buffers for the memcpy peer, touched once so
/// that no page fault is timed.
pub(crate) struct Copier {
    /// What is copied.
    pub src: Vec<f32>,
    /// Where it is copied to.
    pub dst: Vec<f32>,
}

impl Copier {
    /// Buffers of `len` elements each.
    pub fn new(len: usize) -> Copier {
        Copier {
            src: (0..len).map(|i| i as f32).collect(),
            dst: vec![0.0; len],
        }
    }

    /// Copies the first `len` elements of `src` into `dst`.
    pub fn copy(&mut self, len: usize) {
        let (src, dst) = (&self.src[..len], &mut self.dst[..len]);
        let threads = sunrise_backend_cpu::threads::num_threads();
        // Below the backend's threading threshold ours stays on one thread;
        // so does the peer.
        if threads <= 1 || len < sunrise_backend_cpu::threads::PAR_THRESHOLD {
            dst.copy_from_slice(std::hint::black_box(src));
            return;
        }
        let chunk = len.div_ceil(threads).max(1);
        sunrise_backend_cpu::threads::pool().install(|| {
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(std::hint::black_box(s)));
        });
        std::hint::black_box(&self.dst);
    }
}

/// Median seconds of a memcpy of `len` f32 on this process's thread count
/// (for the ops suite's bandwidth line).
pub(crate) fn memcpy_seconds(len: usize, budget: Duration) -> Result<f64, BenchError> {
    let mut c = Copier::new(len);
    time_median(
        || {
            c.copy(len);
            Ok::<(), BenchError>(())
        },
        budget,
    )
}

/// One case: op name, shape, bytes read + written, and the call.
struct Case {
    op: &'static str,
    shape: Vec<usize>,
    bytes: usize,
    call: Box<dyn FnMut() -> sunrise::Result<()>>,
}

impl Case {
    fn name(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("{}[{}]", self.op, dims.join(","))
    }
}

fn rand(shape: &[usize], seed: u64) -> sunrise::Result<Tensor> {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, &Device::cpu())
}

/// Elements of the flat cases and rows x columns of the row-wise ones:
/// 64 MiB per f32 tensor, well past any cache.
const FLAT: usize = 1 << 24;
const ROWS: usize = 4096;
const COLS: usize = 4096;
const LN_ROWS: usize = 16384;
const LN_COLS: usize = 1024;
/// Small cases (cache-resident, below and just above the threading
/// threshold), to show whether a second thread slows small ops down.
const SMALL: [usize; 2] = [1 << 14, 1 << 18];

fn boxed(
    op: &'static str,
    shape: &[usize],
    bytes: usize,
    call: impl FnMut() -> sunrise::Result<()> + 'static,
) -> Case {
    Case {
        op,
        shape: shape.to_vec(),
        bytes,
        call: Box::new(call),
    }
}

fn cases(ctx: &Ctx<'_>) -> sunrise::Result<Vec<Case>> {
    let mut v: Vec<Case> = Vec::new();
    let want = |op: &str, shape: &[usize]| {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        ctx.wants(&format!("{op}[{}]", dims.join(",")))
    };
    if want("add", &[FLAT]) {
        let (a, b) = (rand(&[FLAT], 1)?, rand(&[FLAT], 2)?);
        v.push(boxed("add", &[FLAT], 4 * 3 * FLAT, move || {
            a.add(&b).map(drop)
        }));
    }
    if want("relu", &[FLAT]) {
        let a = rand(&[FLAT], 3)?;
        v.push(boxed("relu", &[FLAT], 4 * 2 * FLAT, move || {
            a.relu().map(drop)
        }));
    }
    if want("sum_last", &[ROWS, COLS]) {
        let m = rand(&[ROWS, COLS], 4)?;
        let bytes = 4 * (ROWS * COLS + ROWS);
        v.push(boxed("sum_last", &[ROWS, COLS], bytes, move || {
            m.sum(&[-1], false).map(drop)
        }));
    }
    for n in SMALL {
        if want("add", &[n]) {
            let (a, b) = (rand(&[n], 11)?, rand(&[n], 12)?);
            v.push(boxed("add", &[n], 4 * 3 * n, move || a.add(&b).map(drop)));
        }
        if want("softmax", &[n / 1024, 1024]) {
            let m = rand(&[n / 1024, 1024], 13)?;
            v.push(boxed("softmax", &[n / 1024, 1024], 4 * 2 * n, move || {
                m.softmax(-1).map(drop)
            }));
        }
    }
    if want("softmax", &[ROWS, COLS]) {
        let m = rand(&[ROWS, COLS], 5)?;
        let bytes = 4 * 2 * ROWS * COLS;
        v.push(boxed("softmax", &[ROWS, COLS], bytes, move || {
            m.softmax(-1).map(drop)
        }));
    }
    if want("layer_norm", &[LN_ROWS, LN_COLS]) {
        let x = rand(&[LN_ROWS, LN_COLS], 6)?;
        let (g, b) = (rand(&[LN_COLS], 7)?, rand(&[LN_COLS], 8)?);
        let bytes = 4 * (2 * LN_ROWS * LN_COLS + 2 * LN_COLS + 2 * LN_ROWS);
        v.push(boxed("layer_norm", &[LN_ROWS, LN_COLS], bytes, move || {
            x.layer_norm(&g, &b, 1e-5).map(drop)
        }));
    }
    Ok(v)
}

/// Measures the memory suite at this process's tier and thread count and
/// prints its JSON lines.
pub(crate) fn run(ctx: &Ctx<'_>) -> Result<(), BenchError> {
    let cases = cases(ctx)?;
    let longest = cases.iter().map(|c| c.bytes / 8).max().unwrap_or(0);
    let mut copier = Copier::new(longest);
    for mut c in cases {
        let name = c.name();
        let len = c.bytes / 8;
        let timed = time_pair(
            || (c.call)().map_err(BenchError::from),
            || {
                copier.copy(len);
                Ok(())
            },
            ctx.budget,
        );
        let row = match timed {
            Ok((ours, peer)) => {
                let gb = c.bytes as f64 / 1e9;
                json!({
                    "suite": "memory", "case": name, "op": c.op, "threads": ctx.threads,
                    "isa": ctx.isa, "bytes": c.bytes, "ours_gbps": gb / ours,
                    "ours_seconds": ours, "peer": "memcpy", "peer_gbps": 8.0 * len as f64 / 1e9 / peer,
                    "peer_seconds": peer, "ratio": peer / ours * c.bytes as f64 / (8 * len) as f64,
                })
            }
            Err(e) => json!({
                "suite": "memory", "case": name, "op": c.op, "threads": ctx.threads,
                "isa": ctx.isa, "peer": "memcpy", "error": e.to_string(),
            }),
        };
        ctx.emit(&row);
    }
    Ok(())
}
