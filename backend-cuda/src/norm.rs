//! The norm family on CUDA: `layer_norm`, `batch_norm` (training and
//! inference) and their backward ops, as the kernels of `kernels/norm.cu`.
//! Contract and formulas are the CPU backend's (`backend-cpu/src/norm.rs`,
//! `simd/norm_batch.rs`): biased variance, `rstd = 1/sqrt(var + eps)`,
//! statistics in double, NaN statistics for an empty normalised set, `eps`
//! anything but NaN, contiguous outputs. Strided inputs are copied into
//! contiguous temporaries first (the CPU backend does the same).
//!
//! # Mapping
//!
//! - `layer_norm`: a warp per row up to 1024 elements, else a block per
//!   row; one pass of shifted double sums (see the .cu), then the affine
//!   pass. Backward: the same teams for `dx` (two passes over the row), and
//!   `dgamma`/`dbeta` as column sums over the rows (32 columns x 8 row
//!   slices per block, rows split across blocks when the columns are few).
//! - `batch_norm`: per-channel sums over `N x S` by a block per (channel,
//!   split), partials merged in order by a per-channel kernel that also
//!   folds gamma and beta into `y = x * a + b`; then one elementwise pass.
//!   Backward: per-channel sums of `dy` and `dy * xh` the same way, then an
//!   elementwise pass for `dx`.
//!
//! Every split is merged in a fixed order: results depend only on the shape
//! and the GPU's multiprocessor count, never on timing.

use cudarc::driver::sys::CUdeviceptr;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::NormParams;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::Ctx;
use crate::elementwise::check_arity;
use crate::kernels::NORM;
use crate::launch::{args, View};
use crate::reduce::{
    check_input, check_output, contiguous_all, float_suffix, release_all, sm_count, splits_for,
    unsupported,
};

/// The (op, dtype) pairs of this family: the CPU backend's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use OpId::*;
    crate::pairs(
        &[LayerNorm, LayerNormBackward, BatchNorm, BatchNormBackward],
        &[DType::F32, DType::F64],
    )
}

/// Kernel names, then dtype (f32, f64).
const NAMES: [[&str; 2]; 11] = [
    ["ln_fwd_f32", "ln_fwd_f64"],
    ["ln_bwd_dx_f32", "ln_bwd_dx_f64"],
    ["ln_bwd_params_f32", "ln_bwd_params_f64"],
    ["ln_bwd_params_finish_f32", "ln_bwd_params_finish_f64"],
    ["bn_stats_f32", "bn_stats_f64"],
    ["bn_stats_finish_f32", "bn_stats_finish_f64"],
    ["bn_infer_ab_f32", "bn_infer_ab_f64"],
    ["bn_apply_f32", "bn_apply_f64"],
    ["bn_bwd_sums_f32", "bn_bwd_sums_f64"],
    ["bn_bwd_finish_f32", "bn_bwd_finish_f64"],
    ["bn_bwd_dx_f32", "bn_bwd_dx_f64"],
];
const LN_FWD: usize = 0;
const LN_BWD_DX: usize = 1;
const LN_BWD_PARAMS: usize = 2;
const LN_BWD_PARAMS_FINISH: usize = 3;
const BN_STATS: usize = 4;
const BN_STATS_FINISH: usize = 5;
const BN_INFER_AB: usize = 6;
const BN_APPLY: usize = 7;
const BN_BWD_SUMS: usize = 8;
const BN_BWD_FINISH: usize = 9;
const BN_BWD_DX: usize = 10;

/// Threads per block of the column, per-channel and warp-per-row kernels.
const BLOCK: u32 = 256;

/// `n / d` by multiply and shift for `n, d < 2^31` (Granlund-Montgomery, as
/// PyTorch's `IntDivider`): `s` the least with `2^s >= d`,
/// `m = 2^32 (2^s - d) / d + 1`, `n / d = (mulhi(n, m) + n) >> s`.
/// `#[repr(C)]`: the layout of `struct FastDiv` in `kernels/norm.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FastDiv {
    d: u32,
    m: u32,
    s: u32,
}

impl FastDiv {
    /// The divider of `d`, `1 <= d < 2^31`; any other `d` gives a zero
    /// divider (the kernels then use 64-bit division and never read it).
    pub(crate) fn new(d: u64) -> FastDiv {
        if d == 0 || d >= 1 << 31 {
            return FastDiv { d: 0, m: 0, s: 0 };
        }
        let mut s = 0u32;
        while (1u64 << s) < d {
            s += 1;
        }
        let m = ((1u64 << 32) * ((1u64 << s) - d)) / d + 1;
        FastDiv {
            d: d as u32,
            m: m as u32,
            s,
        }
    }

    /// The device formula, for tests.
    #[cfg(test)]
    fn div(&self, n: u32) -> u32 {
        let t = ((u64::from(n) * u64::from(self.m)) >> 32) as u32;
        (t + n) >> self.s
    }
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let Params::Norm(p) = call.params else {
        return Err(BackendError::invalid(format!("{op}: expected norm params")));
    };
    if p.eps.is_nan() {
        return Err(BackendError::invalid(format!("{op}: eps is NaN")));
    }
    if call.inputs.is_empty() {
        return Err(BackendError::invalid(format!("{op}: missing input x")));
    }
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { crate::elementwise::views(call, device)? };
    let dtype = ins[0].dtype;
    if !dtype.is_float() {
        return Err(unsupported(op, dtype));
    }
    let t = float_suffix(dtype);
    match op {
        OpId::LayerNorm => layer_norm(ctx, call, &ins, &outs, &p, t),
        OpId::LayerNormBackward => layer_norm_bwd(ctx, call, &ins, &outs, &p, t),
        OpId::BatchNorm => batch_norm(ctx, call, &ins, &outs, &p, t),
        OpId::BatchNormBackward => batch_norm_bwd(ctx, call, &ins, &outs, &p, t),
        _ => Err(BackendError::unsupported(format!(
            "cuda norm: {op} is not in this family"
        ))),
    }
}

/// The layer-norm geometry: `(rows, row length, stats shape, gamma shape)`.
pub(crate) fn ln_geometry(
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
    Ok((
        shape[..split].iter().product(),
        shape[split..].iter().product(),
        stats,
        shape[split..].to_vec(),
    ))
}

/// Team (threads per row), block size and grid of the row kernels for
/// `rows` rows of `d` elements: a warp per row up to 1024 elements, else a
/// block (256 threads, 1024 from 8192 elements) per row.
pub(crate) fn row_teams(rows: usize, d: usize, sm: u32) -> (u32, u32, u32) {
    let cap = sm as usize * 32;
    if d <= 1024 {
        (
            32,
            BLOCK,
            rows.div_ceil((BLOCK / 32) as usize).clamp(1, cap) as u32,
        )
    } else {
        let threads = if d >= 8192 { 1024 } else { BLOCK };
        (threads, threads, rows.clamp(1, cap) as u32)
    }
}

fn layer_norm(
    ctx: &mut Ctx<'_>,
    call: &OpCall<'_>,
    ins: &[View<'_>],
    outs: &[View<'_>],
    p: &NormParams,
    t: usize,
) -> Result<()> {
    let op = call.op;
    check_arity(call, 3, 3)?;
    let dtype = ins[0].dtype;
    let shape = ins[0].dims();
    let (rows, d, stats, gshape) = ln_geometry(op, &shape, p.axis)?;
    check_input(op, "gamma", &ins[1], dtype, &gshape)?;
    check_input(op, "beta", &ins[2], dtype, &gshape)?;
    check_output(op, "y", &outs[0], dtype, &shape)?;
    check_output(op, "mean", &outs[1], dtype, &stats)?;
    check_output(op, "rstd", &outs[2], dtype, &stats)?;
    if rows == 0 {
        return Ok(());
    }
    let ops = contiguous_all(ctx, &[&ins[0], &ins[1], &ins[2]])?;
    let (team, threads, grid) = row_teams(rows, d, sm_count(ctx));
    let (y, mean, rstd) = (outs[0].ptr, outs[1].ptr, outs[2].ptr);
    let r = (|| {
        let f = ctx.function(&NORM, NAMES[LN_FWD][t])?;
        // SAFETY: x holds rows * d contiguous elements, gamma and beta d,
        // y rows * d, mean and rstd rows (all checked); matches
        // `ln_fwd_*(x, gamma, beta, y, mean, rstd, rows, d, eps, team)`.
        unsafe {
            ctx.launch(
                f,
                (grid, 1, 1),
                (threads, 1, 1),
                0,
                args![
                    ops[0].ptr,
                    ops[1].ptr,
                    ops[2].ptr,
                    y,
                    mean,
                    rstd,
                    rows as i64,
                    d as i64,
                    p.eps,
                    team as i32
                ],
            )
        }
    })();
    release_all(ctx, ops);
    r
}

fn layer_norm_bwd(
    ctx: &mut Ctx<'_>,
    call: &OpCall<'_>,
    ins: &[View<'_>],
    outs: &[View<'_>],
    p: &NormParams,
    t: usize,
) -> Result<()> {
    let op = call.op;
    check_arity(call, 5, 3)?;
    let dtype = ins[0].dtype;
    let shape = ins[0].dims();
    let (rows, d, stats, gshape) = ln_geometry(op, &shape, p.axis)?;
    check_input(op, "gamma", &ins[1], dtype, &gshape)?;
    check_input(op, "mean", &ins[2], dtype, &stats)?;
    check_input(op, "rstd", &ins[3], dtype, &stats)?;
    check_input(op, "dy", &ins[4], dtype, &shape)?;
    check_output(op, "dx", &outs[0], dtype, &shape)?;
    check_output(op, "dgamma", &outs[1], dtype, &gshape)?;
    check_output(op, "dbeta", &outs[2], dtype, &gshape)?;
    if d == 0 {
        return Ok(());
    }
    let ops = contiguous_all(ctx, &[&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]])?;
    let [x, gamma, mean, rstd, dy] = [ops[0].ptr, ops[1].ptr, ops[2].ptr, ops[3].ptr, ops[4].ptr];
    let (dx, dg, db) = (outs[0].ptr, outs[1].ptr, outs[2].ptr);
    let sm = sm_count(ctx);
    let mut part = None;
    let r = (|| {
        if rows > 0 {
            let (team, threads, grid) = row_teams(rows, d, sm);
            let f = ctx.function(&NORM, NAMES[LN_BWD_DX][t])?;
            // SAFETY: x, dy, dx hold rows * d contiguous elements, gamma d,
            // mean and rstd rows; matches `ln_bwd_dx_*(x, gamma, mean,
            // rstd, dy, dx, rows, d, team)`.
            unsafe {
                ctx.launch(
                    f,
                    (grid, 1, 1),
                    (threads, 1, 1),
                    0,
                    args![
                        x,
                        gamma,
                        mean,
                        rstd,
                        dy,
                        dx,
                        rows as i64,
                        d as i64,
                        team as i32
                    ],
                )?
            }
        }
        // dgamma, dbeta: 32 columns per block, rows split to fill the GPU.
        let cols = d.div_ceil(32);
        let (splits, per) = splits_for(cols, rows, 64, sm);
        if splits > 1 {
            part = Some(ctx.temp(splits as usize * d * 16)?);
        }
        let part_ptr = part.map_or(0, |b: (CUdeviceptr, usize)| b.0);
        let grid = (cols.clamp(1, sm as usize * 32) as u32, splits, 1);
        let f = ctx.function(&NORM, NAMES[LN_BWD_PARAMS][t])?;
        // SAFETY: as above; dgamma and dbeta hold d elements, part (when
        // split) splits * d double pairs; matches `ln_bwd_params_*(x,
        // mean, rstd, dy, rows, d, per, dgamma, dbeta, part)`.
        unsafe {
            ctx.launch(
                f,
                grid,
                (BLOCK, 1, 1),
                0,
                args![
                    x,
                    mean,
                    rstd,
                    dy,
                    rows as i64,
                    d as i64,
                    per as i64,
                    dg,
                    db,
                    part_ptr
                ],
            )?
        }
        if splits > 1 {
            let f = ctx.function(&NORM, NAMES[LN_BWD_PARAMS_FINISH][t])?;
            let g = crate::elementwise::grid(ctx, d);
            // SAFETY: as above; matches `ln_bwd_params_finish_*(part,
            // splits, d, dgamma, dbeta)`.
            unsafe {
                ctx.launch(
                    f,
                    g,
                    (crate::elementwise::BLOCK, 1, 1),
                    0,
                    args![part_ptr, i64::from(splits), d as i64, dg, db],
                )?
            }
        }
        Ok(())
    })();
    if let Some(b) = part {
        ctx.free_temp(b);
    }
    release_all(ctx, ops);
    r
}

/// `(N, C, S)` of a batch-norm input, checking rank and axis.
pub(crate) fn bn_geometry(op: OpId, shape: &[usize], axis: u32) -> Result<(usize, usize, usize)> {
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

/// Grid of the per-channel sum kernels: `(blocks over channels, splits,
/// elements per split)` for `c` channels of `count` elements.
fn channel_grid(c: usize, count: usize, sm: u32) -> (u32, u32, usize) {
    let (splits, per) = splits_for(c, count, 4096, sm);
    (c.clamp(1, sm as usize * 32) as u32, splits, per)
}

/// The `(S, C)` dividers and the `narrow` flag of the elementwise passes.
fn dividers(total: usize, s: usize, c: usize) -> (FastDiv, FastDiv, i32) {
    let narrow = total < 1 << 31;
    if narrow {
        (FastDiv::new(s as u64), FastDiv::new(c as u64), 1)
    } else {
        (FastDiv::new(0), FastDiv::new(0), 0)
    }
}

fn batch_norm(
    ctx: &mut Ctx<'_>,
    call: &OpCall<'_>,
    ins: &[View<'_>],
    outs: &[View<'_>],
    p: &NormParams,
    t: usize,
) -> Result<()> {
    let op = call.op;
    let dtype = ins[0].dtype;
    let shape = ins[0].dims();
    let (n, c, s) = bn_geometry(op, &shape, p.axis)?;
    let training = match p.training {
        1 => true,
        0 => false,
        other => {
            return Err(BackendError::invalid(format!(
                "{op}: training must be 0 or 1, got {other}"
            )))
        }
    };
    if training {
        check_arity(call, 3, 3)?;
    } else {
        check_arity(call, 5, 1)?;
    }
    let cs = [c];
    check_input(op, "gamma", &ins[1], dtype, &cs)?;
    check_input(op, "beta", &ins[2], dtype, &cs)?;
    check_output(op, "y", &outs[0], dtype, &shape)?;
    if training {
        check_output(op, "mean", &outs[1], dtype, &cs)?;
        check_output(op, "rstd", &outs[2], dtype, &cs)?;
    } else {
        check_input(op, "running_mean", &ins[3], dtype, &cs)?;
        check_input(op, "running_var", &ins[4], dtype, &cs)?;
    }
    if c == 0 {
        return Ok(());
    }
    let ops = if training {
        contiguous_all(ctx, &[&ins[0], &ins[1], &ins[2]])?
    } else {
        contiguous_all(ctx, &[&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]])?
    };
    let (x, gamma, beta) = (ops[0].ptr, ops[1].ptr, ops[2].ptr);
    let y = outs[0].ptr;
    let count = n * s;
    let total = count * c;
    let sm = sm_count(ctx);
    let esize = dtype.size();
    let mut temps: Vec<(CUdeviceptr, usize)> = Vec::new();
    let r = (|| {
        // a, b: the per-channel affine of y = x * a + b.
        let ab = ctx.temp(2 * c * esize)?;
        temps.push(ab);
        let (a, b) = (ab.0, ab.0 + (c * esize) as u64);
        let (cg, cb) = (
            crate::elementwise::grid(ctx, c),
            (crate::elementwise::BLOCK, 1, 1),
        );
        if training {
            let (mean, rstd) = (outs[1].ptr, outs[2].ptr);
            let (mut part, mut splits) = (0, 0u32);
            if count > 0 {
                let (gx, sp, per) = channel_grid(c, count, sm);
                let pb = ctx.temp(sp as usize * c * 16)?;
                temps.push(pb);
                (part, splits) = (pb.0, sp);
                let f = ctx.function(&NORM, NAMES[BN_STATS][t])?;
                // SAFETY: x holds n * c * s contiguous elements, part sp *
                // c double pairs; matches `bn_stats_*(x, N, C, S, per, part)`.
                unsafe {
                    ctx.launch(
                        f,
                        (gx, sp, 1),
                        (BLOCK, 1, 1),
                        0,
                        args![x, n as i64, c as i64, s as i64, per as i64, part],
                    )?
                }
            }
            let f = ctx.function(&NORM, NAMES[BN_STATS_FINISH][t])?;
            // SAFETY: as above; gamma, beta, mean, rstd, a and b hold c
            // elements (x is not read when N * S is 0, nor part when
            // splits is 0); matches `bn_stats_finish_*(x, part, splits, N,
            // C, S, eps, gamma, beta, mean, rstd, a, b)`.
            unsafe {
                ctx.launch(
                    f,
                    cg,
                    cb,
                    0,
                    args![
                        x,
                        part,
                        i64::from(splits),
                        n as i64,
                        c as i64,
                        s as i64,
                        p.eps,
                        gamma,
                        beta,
                        mean,
                        rstd,
                        a,
                        b
                    ],
                )?
            }
        } else {
            let (rm, rv) = (ops[3].ptr, ops[4].ptr);
            let f = ctx.function(&NORM, NAMES[BN_INFER_AB][t])?;
            // SAFETY: every pointer holds c elements; matches
            // `bn_infer_ab_*(gamma, beta, rmean, rvar, C, eps, a, b)`.
            unsafe {
                ctx.launch(
                    f,
                    cg,
                    cb,
                    0,
                    args![gamma, beta, rm, rv, c as i64, p.eps, a, b],
                )?
            }
        }
        if total > 0 {
            let (fs, fc, narrow) = dividers(total, s, c);
            let f = ctx.function(&NORM, NAMES[BN_APPLY][t])?;
            let g = crate::elementwise::grid(ctx, total);
            // SAFETY: x and y hold `total` contiguous elements, a and b c;
            // matches `bn_apply_*(x, a, b, y, total, S, C, fs, fc, narrow)`.
            unsafe {
                ctx.launch(
                    f,
                    g,
                    cb,
                    0,
                    args![x, a, b, y, total as i64, s as i64, c as i64, fs, fc, narrow],
                )?
            }
        }
        Ok(())
    })();
    for b in temps {
        ctx.free_temp(b);
    }
    release_all(ctx, ops);
    r
}

fn batch_norm_bwd(
    ctx: &mut Ctx<'_>,
    call: &OpCall<'_>,
    ins: &[View<'_>],
    outs: &[View<'_>],
    p: &NormParams,
    t: usize,
) -> Result<()> {
    let op = call.op;
    check_arity(call, 5, 3)?;
    let dtype = ins[0].dtype;
    let shape = ins[0].dims();
    let (n, c, s) = bn_geometry(op, &shape, p.axis)?;
    let cs = [c];
    check_input(op, "gamma", &ins[1], dtype, &cs)?;
    check_input(op, "mean", &ins[2], dtype, &cs)?;
    check_input(op, "rstd", &ins[3], dtype, &cs)?;
    check_input(op, "dy", &ins[4], dtype, &shape)?;
    check_output(op, "dx", &outs[0], dtype, &shape)?;
    check_output(op, "dgamma", &outs[1], dtype, &cs)?;
    check_output(op, "dbeta", &outs[2], dtype, &cs)?;
    if c == 0 {
        return Ok(());
    }
    let ops = contiguous_all(ctx, &[&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]])?;
    let [x, gamma, mean, rstd, dy] = [ops[0].ptr, ops[1].ptr, ops[2].ptr, ops[3].ptr, ops[4].ptr];
    let (dx, dg, db) = (outs[0].ptr, outs[1].ptr, outs[2].ptr);
    let count = n * s;
    let total = count * c;
    let sm = sm_count(ctx);
    let mut temps: Vec<(CUdeviceptr, usize)> = Vec::new();
    let r = (|| {
        // (sum dy, sum dy * xh) per channel, kept for the dx pass.
        let sums = ctx.temp(c * 16)?;
        temps.push(sums);
        let (mut part, mut splits) = (0, 0u32);
        if count > 0 {
            let (gx, sp, per) = channel_grid(c, count, sm);
            let pb = ctx.temp(sp as usize * c * 16)?;
            temps.push(pb);
            (part, splits) = (pb.0, sp);
            let f = ctx.function(&NORM, NAMES[BN_BWD_SUMS][t])?;
            // SAFETY: x and dy hold n * c * s contiguous elements, mean and
            // rstd c, part sp * c double pairs; matches `bn_bwd_sums_*(x,
            // dy, mean, rstd, N, C, S, per, part)`.
            unsafe {
                ctx.launch(
                    f,
                    (gx, sp, 1),
                    (BLOCK, 1, 1),
                    0,
                    args![x, dy, mean, rstd, n as i64, c as i64, s as i64, per as i64, part],
                )?
            }
        }
        let f = ctx.function(&NORM, NAMES[BN_BWD_FINISH][t])?;
        let g = crate::elementwise::grid(ctx, c);
        // SAFETY: dgamma and dbeta hold c elements, sums c double pairs,
        // part splits * c pairs (unread when splits is 0); matches
        // `bn_bwd_finish_*(part, splits, C, dgamma, dbeta, sums)`.
        unsafe {
            ctx.launch(
                f,
                g,
                (crate::elementwise::BLOCK, 1, 1),
                0,
                args![part, i64::from(splits), c as i64, dg, db, sums.0],
            )?
        }
        if total > 0 {
            let (fs, fc, narrow) = dividers(total, s, c);
            let f = ctx.function(&NORM, NAMES[BN_BWD_DX][t])?;
            let g = crate::elementwise::grid(ctx, total);
            // SAFETY: x, dy and dx hold `total` contiguous elements, gamma,
            // mean and rstd c, sums c pairs; matches `bn_bwd_dx_*(x, dy,
            // gamma, mean, rstd, sums, dx, total, m, S, C, fs, fc, narrow)`.
            unsafe {
                ctx.launch(
                    f,
                    g,
                    (crate::elementwise::BLOCK, 1, 1),
                    0,
                    args![
                        x,
                        dy,
                        gamma,
                        mean,
                        rstd,
                        sums.0,
                        dx,
                        total as i64,
                        count as f64,
                        s as i64,
                        c as i64,
                        fs,
                        fc,
                        narrow
                    ],
                )?
            }
        }
        Ok(())
    })();
    for b in temps {
        ctx.free_temp(b);
    }
    release_all(ctx, ops);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_exists_in_the_source() {
        for row in NAMES {
            for name in row {
                let (stem, suffix) = name.rsplit_once('_').unwrap();
                assert!(NORM.code.contains(&format!("void {stem}_##SUF(")), "{name}");
                assert!(
                    NORM.code.contains(&format!("NORM_KERNELS({suffix},")),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn fast_division_matches_integer_division() {
        let mut ds: Vec<u64> = (1..=2100).collect();
        ds.extend([
            3136,
            12544,
            50176,
            65535,
            65536,
            65537,
            1 << 20,
            (1 << 30) + 1,
            (1 << 31) - 1,
        ]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for &d in &ds {
            let f = FastDiv::new(d);
            let mut ns: Vec<u32> = vec![0, 1, d as u32 - 1, d as u32, (1 << 31) - 1, (1 << 31) - 2];
            ns.extend((0..64).map(|_| (next() % (1 << 31)) as u32));
            ns.extend((0..16).map(|k| (d as u32).wrapping_mul(k).min((1 << 31) - 1)));
            for n in ns {
                assert_eq!(f.div(n), n / d as u32, "{n} / {d}");
            }
        }
        for _ in 0..2000 {
            let d = next() % ((1 << 31) - 1) + 1;
            let n = (next() % (1 << 31)) as u32;
            assert_eq!(FastDiv::new(d).div(n), n / d as u32, "{n} / {d}");
        }
        assert_eq!(FastDiv::new(0), FastDiv { d: 0, m: 0, s: 0 });
        assert_eq!(FastDiv::new(1 << 31), FastDiv { d: 0, m: 0, s: 0 });
    }

    #[test]
    fn fast_div_layout_matches_the_c_struct() {
        assert_eq!(std::mem::size_of::<FastDiv>(), 12);
        assert!(NORM
            .code
            .contains("struct FastDiv {\n    unsigned int d, m, s;\n};"));
    }

    #[test]
    fn layer_norm_geometry() {
        let (rows, d, stats, g) = ln_geometry(OpId::LayerNorm, &[2, 3, 4], 2).unwrap();
        assert_eq!((rows, d), (2, 12));
        assert_eq!(stats, vec![2, 1, 1]);
        assert_eq!(g, vec![3, 4]);
        assert!(ln_geometry(OpId::LayerNorm, &[2, 3], 0).is_err());
        assert!(ln_geometry(OpId::LayerNorm, &[2, 3], 3).is_err());
        let (rows, d, stats, _) = ln_geometry(OpId::LayerNorm, &[5], 1).unwrap();
        assert_eq!((rows, d, stats), (1, 5, vec![1]));
    }

    #[test]
    fn batch_norm_geometry() {
        assert_eq!(
            bn_geometry(OpId::BatchNorm, &[8, 3, 4, 5], 1).unwrap(),
            (8, 3, 20)
        );
        assert_eq!(bn_geometry(OpId::BatchNorm, &[8, 3], 1).unwrap(), (8, 3, 1));
        assert!(bn_geometry(OpId::BatchNorm, &[8], 1).is_err());
        assert!(bn_geometry(OpId::BatchNorm, &[8, 3, 4], 2).is_err());
    }

    #[test]
    fn launch_shapes() {
        assert_eq!(row_teams(1000, 768, 132), (32, 256, 125));
        assert_eq!(row_teams(1000, 4096, 132), (256, 256, 1000));
        assert_eq!(row_teams(3, 1 << 16, 132), (1024, 1024, 3));
        // ResNet's first BN (C = 64, N * H * W = 32 * 112 * 112): split to fill the GPU.
        let (gx, splits, per) = channel_grid(64, 32 * 112 * 112, 132);
        assert_eq!(gx, 64);
        assert_eq!(splits, 17);
        assert!(per * splits as usize >= 32 * 112 * 112);
        // Many channels: one block each, no split.
        assert_eq!(channel_grid(2048, 32 * 49, 132), (2048, 1, 32 * 49));
        assert_eq!(dividers(100, 5, 4).2, 1);
        assert_eq!(dividers(1 << 31, 5, 4).2, 0);
    }

    #[test]
    fn supported_is_the_cpu_list() {
        assert_eq!(supported().len(), 8);
    }
}
