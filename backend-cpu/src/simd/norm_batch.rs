//! `batch_norm` and `batch_norm_backward` (see `norm.rs` for the contract).
//! `x` is walked as `N * C` contiguous blocks of `S = H * W * ..` elements;
//! per-block partial sums run on the pool and are combined per channel in
//! block order.

use rayon::prelude::*;
use sunrise_backend_api::ops::NormParams;
use sunrise_backend_api::{BackendError, OpCall, OpId, Result};

use super::{input, input_desc, out_slice, NormElem};
use crate::reduce::out_view;
use crate::strided::check_arity;
use crate::threads;

/// `(N, C, S)` of a batch-norm input, checking rank and axis.
fn geometry(op: OpId, shape: &[usize], axis: u32) -> Result<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(BackendError::invalid(format!(
            "{op}: x must have rank >= 2, got {shape:?}"
        )));
    }
    if axis != 1 {
        return Err(BackendError::invalid(format!(
            "{op}: the channel axis must be 1, got {axis}"
        )));
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// `f(block index, block)` for every `s`-element block of `xs`, in order.
fn map_blocks<T: NormElem, R: Send>(
    xs: &[T],
    s: usize,
    f: impl Fn(usize, &[T]) -> R + Sync,
) -> Vec<R> {
    if threads::split(xs.len()) {
        threads::install(|| xs.par_chunks(s).enumerate().map(|(b, x)| f(b, x)).collect())
    } else {
        xs.chunks(s).enumerate().map(|(b, x)| f(b, x)).collect()
    }
}

/// `f(block index, output block)` for every `s`-element block of `ys`.
fn write_blocks<T: NormElem>(ys: &mut [T], s: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if threads::split(ys.len()) {
        threads::install(|| ys.par_chunks_mut(s).enumerate().for_each(|(b, y)| f(b, y)));
    } else {
        ys.chunks_mut(s).enumerate().for_each(|(b, y)| f(b, y));
    }
}

/// Per-channel totals of per-block values (blocks ordered `(n, c)`).
fn per_channel(v: &[f64], c: usize) -> Vec<f64> {
    let mut t = vec![0f64; c];
    for (b, &x) in v.iter().enumerate() {
        t[b % c] += x;
    }
    t
}

/// `batch_norm`, training or inference.
///
/// # Safety
/// As `norm::execute`.
pub(super) unsafe fn forward<T: NormElem>(call: &OpCall<'_>, p: &NormParams) -> Result<()> {
    let op = call.op;
    let shape = input_desc(call, 0)?.dims_usize();
    let (n, c, s) = geometry(op, &shape, p.axis)?;
    let (nin, nout) = match p.training {
        1 => (3, 3),
        0 => (5, 1),
        t => {
            return Err(BackendError::invalid(format!(
                "{op}: training must be 0 or 1, got {t}"
            )))
        }
    };
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), nin, nout)?;
    let cs = [c];
    // SAFETY: per the caller (every view below).
    let (x, gamma, beta, y) = unsafe {
        (
            input::<T>(call, 0, "x", &shape)?,
            input::<T>(call, 1, "gamma", &cs)?,
            input::<T>(call, 2, "beta", &cs)?,
            out_view::<T>(op, "y", &call.outputs[0], &shape)?,
        )
    };
    // SAFETY: inputs are not written during the call; `y` is a checked
    // contiguous output only touched here.
    let (xs, g, b, ys) = unsafe { (x.contiguous(), gamma.to_vec(), beta.to_vec(), out_slice(&y)) };
    let m = (n * s) as f64;
    let (mean, rstd): (Vec<f64>, Vec<f64>) = if p.training == 1 {
        // SAFETY: as above.
        let (mo, ro) = unsafe {
            (
                out_view::<T>(op, "mean", &call.outputs[1], &cs)?,
                out_view::<T>(op, "rstd", &call.outputs[2], &cs)?,
            )
        };
        let (mean, rstd) = if n * s == 0 {
            (vec![f64::NAN; c], vec![f64::NAN; c])
        } else {
            let mean: Vec<f64> = per_channel(&map_blocks(&xs, s, |_, x| T::sum(x)), c)
                .iter()
                .map(|v| v / m)
                .collect();
            let sq = per_channel(&map_blocks(&xs, s, |i, x| T::sq_dev(x, mean[i % c])), c);
            let rstd = sq.iter().map(|v| 1.0 / (v / m + p.eps).sqrt()).collect();
            (mean, rstd)
        };
        // SAFETY: checked contiguous outputs only touched here.
        let (ms, rs) = unsafe { (out_slice(&mo), out_slice(&ro)) };
        for k in 0..c {
            (ms[k], rs[k]) = (T::from_f64(mean[k]), T::from_f64(rstd[k]));
        }
        (mean, rstd)
    } else {
        // SAFETY: as above.
        let (rm, rv) = unsafe {
            (
                input::<T>(call, 3, "running_mean", &cs)?,
                input::<T>(call, 4, "running_var", &cs)?,
            )
        };
        // SAFETY: inputs are not written during the call.
        let (rm, rv) = unsafe { (rm.to_vec(), rv.to_vec()) };
        (
            rm.iter().map(|v| v.to_f64()).collect(),
            rv.iter()
                .map(|v| 1.0 / (v.to_f64() + p.eps).sqrt())
                .collect(),
        )
    };
    if n * s == 0 {
        return Ok(());
    }
    let a: Vec<f64> = (0..c).map(|k| rstd[k] * g[k].to_f64()).collect();
    let sh: Vec<f64> = (0..c).map(|k| b[k].to_f64() - mean[k] * a[k]).collect();
    write_blocks(ys, s, |i, yb| {
        T::scale_shift(&xs[i * s..(i + 1) * s], yb, a[i % c], sh[i % c])
    });
    Ok(())
}

/// `batch_norm_backward` from batch statistics. With `xh = (x - mean) *
/// rstd` and `M = N * S` per channel: `dbeta = sum dy`, `dgamma = sum dy *
/// xh`, `dx = gamma * rstd / M * (M * dy - dbeta - xh * dgamma)`.
///
/// # Safety
/// As `norm::execute`.
pub(super) unsafe fn backward<T: NormElem>(call: &OpCall<'_>, p: &NormParams) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 5, 3)?;
    let shape = call.inputs[0].dims_usize();
    let (n, c, s) = geometry(op, &shape, p.axis)?;
    let cs = [c];
    // SAFETY: per the caller (every view below).
    let (x, gamma, mean, rstd, dy, dx, dg, db) = unsafe {
        (
            input::<T>(call, 0, "x", &shape)?,
            input::<T>(call, 1, "gamma", &cs)?,
            input::<T>(call, 2, "mean", &cs)?,
            input::<T>(call, 3, "rstd", &cs)?,
            input::<T>(call, 4, "dy", &shape)?,
            out_view::<T>(op, "dx", &call.outputs[0], &shape)?,
            out_view::<T>(op, "dgamma", &call.outputs[1], &cs)?,
            out_view::<T>(op, "dbeta", &call.outputs[2], &cs)?,
        )
    };
    // SAFETY: inputs are not written during the call; outputs are checked
    // contiguous, distinct, and only touched here.
    let (xs, gs, g, mu, rs, dxs, dgs, dbs) = unsafe {
        (
            x.contiguous(),
            dy.contiguous(),
            gamma.to_vec(),
            mean.to_vec(),
            rstd.to_vec(),
            out_slice(&dx),
            out_slice(&dg),
            out_slice(&db),
        )
    };
    if n * s == 0 {
        dgs.fill(T::from_f64(0.0));
        dbs.fill(T::from_f64(0.0));
        return Ok(());
    }
    let xh =
        |i: usize, j: usize| (xs[i * s + j].to_f64() - mu[i % c].to_f64()) * rs[i % c].to_f64();
    let sums = map_blocks(&gs, s, |i, gb| {
        gb.iter().enumerate().fold((0f64, 0f64), |(a, b), (j, d)| {
            (a + d.to_f64(), b + d.to_f64() * xh(i, j))
        })
    });
    let sb = per_channel(&sums.iter().map(|v| v.0).collect::<Vec<_>>(), c);
    let sg = per_channel(&sums.iter().map(|v| v.1).collect::<Vec<_>>(), c);
    for k in 0..c {
        (dgs[k], dbs[k]) = (T::from_f64(sg[k]), T::from_f64(sb[k]));
    }
    let m = (n * s) as f64;
    write_blocks(dxs, s, |i, out| {
        let k = i % c;
        let scale = g[k].to_f64() * rs[k].to_f64() / m;
        for (j, o) in out.iter_mut().enumerate() {
            let d = gs[i * s + j].to_f64();
            *o = T::from_f64(scale * (m * d - sb[k] - xh(i, j) * sg[k]));
        }
    });
    Ok(())
}
