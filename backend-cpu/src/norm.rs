//! Op family `norm`: `layer_norm`, `batch_norm` and their backward ops.
//!
//! - `layer_norm`: `NormParams.axis` = number of trailing dims normalised
//!   (>= 1). Inputs `(x, gamma, beta)`, gamma/beta shaped like those dims;
//!   outputs `(y, mean, rstd)`, the statistics shaped like `x` with the
//!   normalised dims set to 1. Biased variance, `rstd = 1/sqrt(var + eps)`.
//! - `batch_norm`: `x` is `[N, C, ...]`, `axis` must be 1. Training
//!   (`training = 1`): inputs `(x, gamma[C], beta[C])`, outputs
//!   `(y, mean[C], rstd[C])` from the batch (biased variance). Inference:
//!   inputs `(x, gamma, beta, running_mean, running_var)`, one output `y`.
//! - Backward ops take `(x, gamma, mean, rstd, dy)` and give
//!   `(dx, dgamma, dbeta)` with the usual formulas (see `layer_norm_bwd`).
//!
//! Statistics are two-pass (mean, then squared deviations) and accumulate
//! in f64. A normalised set of zero elements gives NaN statistics (0/0).
//! `eps` may be any number but NaN. Rows (layer norm) or `(n, c)` blocks
//! (batch norm) run on the pool above `PAR_THRESHOLD` elements, in
//! fixed-size pieces merged in a fixed order, so results do not depend on
//! the thread count.

#[path = "simd/norm_batch.rs"]
mod batch;
#[path = "simd/norm_kernels.rs"]
pub(crate) mod kernels;

use rayon::prelude::*;
use sunrise_backend_api::abi::{SrOpSupport, SrTensorDesc};
use sunrise_backend_api::ops::NormParams;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Float;
use crate::reduce::{dtype_of, expect_shape, in_view, out_view, pairs, unsupported_dtype};
use crate::strided::{check_arity, View};
use crate::threads;

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use OpId::*;
    pairs(
        &[LayerNorm, LayerNormBackward, BatchNorm, BatchNormBackward],
        &[DType::F32, DType::F64],
    )
}

/// Element types with norm row kernels: f32 through the SIMD tables, f64
/// portable.
pub(crate) trait NormElem: Float {
    /// `sum x` in f64.
    fn sum(x: &[Self]) -> f64;
    /// `sum (x - c)^2` in f64.
    fn sq_dev(x: &[Self], c: f64) -> f64;
    /// `y = (x - mean) * rstd * gamma + beta`; `stream`: `y` belongs to an
    /// output too large to stay cached (a hint, same values).
    fn affine(x: &[Self], g: &[Self], b: &[Self], y: &mut [Self], stats: (f64, f64), stream: bool);
    /// `y = x * a + b`.
    fn scale_shift(x: &[Self], y: &mut [Self], a: f64, b: f64);
}

impl NormElem for f32 {
    fn sum(x: &[f32]) -> f64 {
        kernels::table().sum(x)
    }
    fn sq_dev(x: &[f32], c: f64) -> f64 {
        kernels::table().sq_dev(x, c as f32)
    }
    fn affine(x: &[f32], g: &[f32], b: &[f32], y: &mut [f32], stats: (f64, f64), stream: bool) {
        let (t, m, r) = (kernels::table(), stats.0 as f32, stats.1 as f32);
        if stream {
            t.affine_stream(x, g, b, y, m, r)
        } else {
            t.affine(x, g, b, y, m, r)
        }
    }
    fn scale_shift(x: &[f32], y: &mut [f32], a: f64, b: f64) {
        kernels::table().scale_shift(x, y, a as f32, b as f32)
    }
}

impl NormElem for f64 {
    fn sum(x: &[f64]) -> f64 {
        x.iter().sum()
    }
    fn sq_dev(x: &[f64], c: f64) -> f64 {
        x.iter().map(|&v| (v - c) * (v - c)).sum()
    }
    fn affine(x: &[f64], gamma: &[f64], beta: &[f64], y: &mut [f64], stats: (f64, f64), _: bool) {
        let (mean, rstd) = stats;
        for (((o, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = (v - mean) * rstd * g + b;
        }
    }
    fn scale_shift(x: &[f64], y: &mut [f64], a: f64, b: f64) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v * a + b;
        }
    }
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let Params::Norm(p) = call.params else {
        return Err(BackendError::invalid(format!("{op}: expected norm params")));
    };
    if p.eps.is_nan() {
        return Err(BackendError::invalid(format!("{op}: eps is NaN")));
    }
    let first = call
        .inputs
        .first()
        .ok_or_else(|| BackendError::invalid(format!("{op}: missing input x")))?;
    let dtype = dtype_of(op, "x", first)?;
    // SAFETY: per the caller.
    unsafe {
        match dtype {
            DType::F32 => run::<f32>(call, &p),
            DType::F64 => run::<f64>(call, &p),
            d => Err(unsupported_dtype(op, d)),
        }
    }
}

/// # Safety
/// As [`execute`].
unsafe fn run<T: NormElem>(call: &OpCall<'_>, p: &NormParams) -> Result<()> {
    // SAFETY: per the caller.
    unsafe {
        match call.op {
            OpId::LayerNorm => layer_norm::<T>(call, p),
            OpId::LayerNormBackward => layer_norm_bwd::<T>(call, p),
            OpId::BatchNorm => batch::forward::<T>(call, p),
            _ => batch::backward::<T>(call, p),
        }
    }
}

/// Views input `i` of `call` as `T`, checking its shape.
///
/// # Safety
/// As [`execute`].
pub(crate) unsafe fn input<T: NormElem>(
    call: &OpCall<'_>,
    i: usize,
    what: &str,
    want: &[usize],
) -> Result<View<T>> {
    // SAFETY: per the caller.
    let v = unsafe { in_view::<T>(call.op, what, &call.inputs[i]) }?;
    expect_shape(call.op, what, &v.shape, want)?;
    Ok(v)
}

/// The layer-norm geometry: `(rows, row length, stats shape, gamma shape)`.
fn ln_geometry(
    op: OpId,
    shape: &[usize],
    axis: u32,
) -> Result<(usize, usize, Vec<usize>, Vec<usize>)> {
    let (rank, k) = (shape.len(), axis as usize);
    if k == 0 || k > rank {
        return Err(BackendError::invalid(format!(
            "{op}: axis (normalised trailing dims) must be in 1..={rank}, got {axis}"
        )));
    }
    let split = rank - k;
    let mut stats = shape[..split].to_vec();
    stats.resize(rank, 1);
    let (rows, d) = (
        shape[..split].iter().product(),
        shape[split..].iter().product(),
    );
    Ok((rows, d, stats, shape[split..].to_vec()))
}

/// Mutable contiguous slice of an output view.
///
/// # Safety
/// The view is a checked contiguous output that nothing else touches
/// during the call.
pub(crate) unsafe fn out_slice<'a, T: NormElem>(v: &View<T>) -> &'a mut [T] {
    // SAFETY: per the caller.
    unsafe { v.as_mut_slice() }.expect("outputs are checked contiguous")
}

/// # Safety
/// As [`execute`].
unsafe fn layer_norm<T: NormElem>(call: &OpCall<'_>, p: &NormParams) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 3, 3)?;
    let shape = call.inputs[0].dims_usize();
    let (rows, d, stats, gshape) = ln_geometry(op, &shape, p.axis)?;
    // SAFETY: per the caller (every view below).
    let (x, gamma, beta, y, mean, rstd) = unsafe {
        (
            input::<T>(call, 0, "x", &shape)?,
            input::<T>(call, 1, "gamma", &gshape)?,
            input::<T>(call, 2, "beta", &gshape)?,
            out_view::<T>(op, "y", &call.outputs[0], &shape)?,
            out_view::<T>(op, "mean", &call.outputs[1], &stats)?,
            out_view::<T>(op, "rstd", &call.outputs[2], &stats)?,
        )
    };
    // SAFETY: inputs are not written during the call; outputs are checked,
    // contiguous, distinct and only touched here.
    let (xs, g, b, ys, ms, rs) = unsafe {
        (
            x.contiguous(),
            gamma.contiguous(),
            beta.contiguous(),
            out_slice(&y),
            out_slice(&mean),
            out_slice(&rstd),
        )
    };
    if d == 0 {
        ms.fill(T::from_f64(f64::NAN));
        rs.fill(T::from_f64(f64::NAN));
        return Ok(());
    }
    let eps = p.eps;
    let stream = std::mem::size_of_val(&*ys) >= crate::elementwise::stream_threshold();
    let row = |((yr, m), r): ((&mut [T], &mut T), &mut T), i: usize| {
        let xr = &xs[i * d..(i + 1) * d];
        let mu = T::sum(xr) / d as f64;
        let inv = 1.0 / (T::sq_dev(xr, mu) / d as f64 + eps).sqrt();
        T::affine(xr, &g, &b, yr, (mu, inv), stream);
        (*m, *r) = (T::from_f64(mu), T::from_f64(inv));
    };
    if threads::split(rows * d) {
        threads::install(|| {
            ys.par_chunks_mut(d)
                .zip(ms.par_iter_mut())
                .zip(rs.par_iter_mut())
                .enumerate()
                .for_each(|(i, t)| row(t, i))
        });
    } else {
        ys.chunks_mut(d)
            .zip(ms.iter_mut())
            .zip(rs.iter_mut())
            .enumerate()
            .for_each(|(i, t)| row(t, i));
    }
    Ok(())
}

/// Rows per piece of a backward pass with `rows` rows (fixed by shape).
pub(crate) fn piece_rows(rows: usize) -> usize {
    rows.div_ceil(32).max(1)
}

/// Layer-norm backward. Per row, with `xh = (x - mean) * rstd` and
/// `g = dy * gamma`: `dx = rstd * (g - mean(g) - xh * mean(g * xh))`;
/// over rows: `dgamma = sum dy * xh`, `dbeta = sum dy`.
///
/// # Safety
/// As [`execute`].
unsafe fn layer_norm_bwd<T: NormElem>(call: &OpCall<'_>, p: &NormParams) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 5, 3)?;
    let shape = call.inputs[0].dims_usize();
    let (rows, d, stats, gshape) = ln_geometry(op, &shape, p.axis)?;
    // SAFETY: per the caller (every view below).
    let (x, gamma, mean, rstd, dy, dx, dg, db) = unsafe {
        (
            input::<T>(call, 0, "x", &shape)?,
            input::<T>(call, 1, "gamma", &gshape)?,
            input::<T>(call, 2, "mean", &stats)?,
            input::<T>(call, 3, "rstd", &stats)?,
            input::<T>(call, 4, "dy", &shape)?,
            out_view::<T>(op, "dx", &call.outputs[0], &shape)?,
            out_view::<T>(op, "dgamma", &call.outputs[1], &gshape)?,
            out_view::<T>(op, "dbeta", &call.outputs[2], &gshape)?,
        )
    };
    // SAFETY: as in `layer_norm`.
    let (xs, g, ms, rs, gs) = unsafe {
        (
            x.contiguous(),
            gamma.contiguous(),
            mean.to_vec(),
            rstd.to_vec(),
            dy.contiguous(),
        )
    };
    // SAFETY: as in `layer_norm`.
    let (dxs, dgs, dbs) = unsafe { (out_slice(&dx), out_slice(&dg), out_slice(&db)) };
    if d == 0 {
        return Ok(());
    }
    let per = piece_rows(rows);
    let piece = |(k, dxp): (usize, &mut [T])| {
        let (mut pg, mut pb) = (vec![0f64; d], vec![0f64; d]);
        let mut gx = vec![0f64; d];
        for (r, dxr) in dxp.chunks_mut(d).enumerate() {
            let i = k * per + r;
            let (mu, inv) = (ms[i].to_f64(), rs[i].to_f64());
            let (xr, gr) = (&xs[i * d..(i + 1) * d], &gs[i * d..(i + 1) * d]);
            let (mut sg, mut sgx) = (0f64, 0f64);
            for j in 0..d {
                let xh = (xr[j].to_f64() - mu) * inv;
                let dyj = gr[j].to_f64();
                let gj = dyj * g[j].to_f64();
                (gx[j], sg, sgx) = (xh, sg + gj, sgx + gj * xh);
                pg[j] += dyj * xh;
                pb[j] += dyj;
            }
            let (a, c) = (sg / d as f64, sgx / d as f64);
            for j in 0..d {
                let gj = gr[j].to_f64() * g[j].to_f64();
                dxr[j] = T::from_f64(inv * (gj - a - gx[j] * c));
            }
        }
        (pg, pb)
    };
    let parts: Vec<(Vec<f64>, Vec<f64>)> = if threads::split(rows * d) {
        threads::install(|| dxs.par_chunks_mut(per * d).enumerate().map(piece).collect())
    } else {
        dxs.chunks_mut(per * d).enumerate().map(piece).collect()
    };
    write_sums(&parts, dgs, dbs);
    Ok(())
}

/// Adds the pieces' partial `(dgamma, dbeta)` in order and writes them.
pub(crate) fn write_sums<T: NormElem>(parts: &[(Vec<f64>, Vec<f64>)], dg: &mut [T], db: &mut [T]) {
    for j in 0..dg.len() {
        let (mut a, mut b) = (0f64, 0f64);
        for (pg, pb) in parts {
            (a, b) = (a + pg[j], b + pb[j]);
        }
        (dg[j], db[j]) = (T::from_f64(a), T::from_f64(b));
    }
}

/// The descriptor of input `i`, or an arity error.
pub(crate) fn input_desc<'a>(call: &'a OpCall<'_>, i: usize) -> Result<&'a SrTensorDesc> {
    call.inputs
        .get(i)
        .ok_or_else(|| BackendError::invalid(format!("{}: missing input {i}", call.op)))
}
