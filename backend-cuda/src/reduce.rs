//! Reductions on CUDA: `sum`, `mean`, `max`, `min` over any set of axes and
//! `argmax` along one axis, as the kernels of `kernels/reduce.cu`; plus the
//! checks and operand helpers the softmax, norm and loss files share.
//!
//! Semantics are the CPU backend's (`backend-cpu/src/reduce.rs`): the
//! output keeps reduced dims with extent 1 and is contiguous; f32 sums and
//! means accumulate in double; i64 sums wrap; `max`/`min` propagate NaN;
//! `argmax` returns the first NaN or else the first maximum; an empty
//! reduced set gives 0 (`sum`), NaN (`mean`) or `InvalidArgument`.
//!
//! # Mapping
//!
//! Every call is planned on the host ([`plan`]): size-1 dims are dropped,
//! the reduced dims sorted by stride (smallest innermost) and coalesced, the
//! kept dims coalesced in order (outputs stay row-major). Then:
//! - **rows** (the innermost reduced dim is the one closest together in
//!   memory, e.g. last-axis or full reductions of contiguous tensors): a
//!   team of 1, 32 or 256 threads folds one output, by the reduced count
//!   ([`geometry`]);
//! - **columns** (a kept dim is closer together than every reduced one, e.g.
//!   `sum(axis 0)` of `[N, C]`): a 256-thread block folds 32 neighbouring
//!   outputs, 8 threads each, so a warp's loads are coalesced.
//!
//! When there are too few outputs to fill the GPU, the reduced set is split
//! across `gridDim.y` blocks writing partial accumulators to a temporary,
//! and a second kernel merges them in order (no atomics: the result depends
//! only on the shape and the GPU's multiprocessor count).
//! A reduction of one element per output (mask 0, or only size-1 axes) is a
//! strided copy (`argmax`: zeros).

use cudarc::driver::sys::CUdeviceptr;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::Ctx;
use crate::kernels::REDUCE;
use crate::launch::{args, Strided, View};

/// The (op, dtype) pairs of this family: the CPU backend's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use DType::*;
    use OpId::*;
    let mut v = crate::pairs(&[Sum, Max, Min, Argmax], &[F32, F64, I64]);
    v.extend(crate::pairs(&[Mean], &[F32, F64]));
    v
}

// ---- helpers shared with softmax.rs, norm.rs and loss.rs ---------------------------

/// The error for a dtype an op does not implement.
pub(crate) fn unsupported(op: OpId, dtype: DType) -> BackendError {
    BackendError::unsupported(format!("cuda: {op} is not implemented for {dtype}"))
}

/// Fails unless `v` has dtype `want`.
pub(crate) fn expect_dtype(op: OpId, what: &str, v: &View<'_>, want: DType) -> Result<()> {
    if v.dtype != want {
        return Err(BackendError::invalid(format!(
            "{op}: {what}: expected dtype {want}, got {}",
            v.dtype
        )));
    }
    Ok(())
}

/// Fails unless `got == want`.
pub(crate) fn expect_shape(op: OpId, what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got != want {
        return Err(BackendError::invalid(format!(
            "{op}: {what} has shape {got:?}, expected {want:?}"
        )));
    }
    Ok(())
}

/// Checks an input's dtype and shape.
pub(crate) fn check_input(
    op: OpId,
    what: &str,
    v: &View<'_>,
    dtype: DType,
    want: &[usize],
) -> Result<()> {
    expect_dtype(op, what, v, dtype)?;
    expect_shape(op, what, &v.dims(), want)
}

/// Checks an output: dtype, shape, and contiguous (outputs of these
/// families are contiguous, as on the CPU).
pub(crate) fn check_output(
    op: OpId,
    what: &str,
    v: &View<'_>,
    dtype: DType,
    want: &[usize],
) -> Result<()> {
    check_input(op, what, v, dtype, want)?;
    if !v.is_contiguous() {
        return Err(BackendError::invalid(format!(
            "{op}: {what} must be contiguous"
        )));
    }
    Ok(())
}

/// The kernel-name suffix of a float dtype.
pub(crate) fn float_suffix(d: DType) -> usize {
    usize::from(d == DType::F64)
}

/// Multiprocessors of the device (at least 1).
pub(crate) fn sm_count(ctx: &Ctx<'_>) -> u32 {
    ctx.gpu.info.sm_count.max(1) as u32
}

/// A tensor as a kernel reads it: contiguous, either in place or copied
/// into a temporary block (freed with [`Operand::release`] once the work
/// that reads it is queued; stream order keeps that safe).
#[derive(Debug)]
pub(crate) struct Operand {
    /// Device address of element 0 of the contiguous data.
    pub ptr: CUdeviceptr,
    temp: Option<(CUdeviceptr, usize)>,
}

impl Operand {
    /// `v` itself when contiguous, else a contiguous copy (a strided copy
    /// kernel into a temporary: simpler than strided row kernels, and what
    /// the CPU backend does too).
    pub(crate) fn contiguous(ctx: &mut Ctx<'_>, v: &View<'_>) -> Result<Operand> {
        if v.is_contiguous() || v.numel() == 0 {
            return Ok(Operand {
                ptr: v.ptr,
                temp: None,
            });
        }
        let bytes = v.numel() * v.dtype.size();
        let block = ctx.temp(bytes)?;
        let dst = Strided::contiguous(&v.dims());
        if let Err(e) = crate::elementwise::copy(ctx, v.dtype, v.ptr, &v.strided(), block.0, &dst) {
            ctx.free_temp(block);
            return Err(e);
        }
        Ok(Operand {
            ptr: block.0,
            temp: Some(block),
        })
    }

    /// Gives the temporary (if any) back.
    pub(crate) fn release(self, ctx: &mut Ctx<'_>) {
        if let Some(b) = self.temp {
            ctx.free_temp(b);
        }
    }
}

/// [`Operand::contiguous`] of each view, in order; on an error the ones
/// made so far are released.
pub(crate) fn contiguous_all(ctx: &mut Ctx<'_>, views: &[&View<'_>]) -> Result<Vec<Operand>> {
    let mut out = Vec::with_capacity(views.len());
    for v in views {
        match Operand::contiguous(ctx, v) {
            Ok(o) => out.push(o),
            Err(e) => {
                release_all(ctx, out);
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// Releases every operand.
pub(crate) fn release_all(ctx: &mut Ctx<'_>, ops: Vec<Operand>) {
    for o in ops {
        o.release(ctx);
    }
}

/// Splits of `count` elements per item over `gridDim.y` when `items`
/// blocks (or block columns) alone cannot fill a GPU with `sm`
/// multiprocessors (about 8 blocks each), in pieces of at least
/// `min_chunk`: `(splits, per)` with `splits * per >= count` and no empty
/// split (`per >= 1`).
pub(crate) fn splits_for(items: usize, count: usize, min_chunk: usize, sm: u32) -> (u32, usize) {
    let target = sm as usize * 8;
    let items = items.max(1);
    let mut splits = 1;
    if items < target {
        splits = target
            .div_ceil(items)
            .min(count.div_ceil(min_chunk.max(1)))
            .clamp(1, 1024);
    }
    let per = count.div_ceil(splits).max(1);
    (count.div_ceil(per).max(1) as u32, per)
}

/// Zeroes `bytes` bytes at `ptr` on the device's stream.
pub(crate) fn memset_zero(ctx: &Ctx<'_>, ptr: CUdeviceptr, bytes: usize) -> Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    // SAFETY: callers pass a live device range of at least `bytes` bytes.
    unsafe { cudarc::driver::result::memset_d8_async(ptr, 0, bytes, ctx.stream()) }
        .map_err(|e| crate::storage::driver_error("cuMemsetD8Async", e))
}

// ---- planning ---------------------------------------------------------------------

/// A reduction as the kernels see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Kept dims `(extent, input stride)`, in order, coalesced.
    pub kept: Vec<(i64, i64)>,
    /// Reduced dims, sorted by stride (largest first), coalesced.
    pub red: Vec<(i64, i64)>,
    /// Number of outputs.
    pub outputs: usize,
    /// Elements folded into each output.
    pub count: usize,
}

/// Merges neighbours `(n0, s0), (n, s)` with `s0 == s * n` into `(n0 * n, s)`.
fn coalesce(dims: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(dims.len());
    for (n, s) in dims {
        match out.last_mut() {
            Some(last) if last.1 == s * n => *last = (last.0 * n, s),
            _ => out.push((n, s)),
        }
    }
    out
}

/// Plans the reduction of a tensor of `shape`/`strides` over `mask`.
pub(crate) fn plan(shape: &[i64], strides: &[i64], mask: u64) -> Plan {
    let (mut kept, mut red) = (Vec::new(), Vec::new());
    let (mut outputs, mut count) = (1usize, 1usize);
    for (k, (&n, &s)) in shape.iter().zip(strides).enumerate() {
        let reduced = mask >> k & 1 == 1;
        if reduced {
            count *= n as usize;
        } else {
            outputs *= n as usize;
        }
        if n != 1 {
            if reduced { &mut red } else { &mut kept }.push((n, s));
        }
    }
    red.sort_by_key(|d: &(i64, i64)| std::cmp::Reverse(d.1));
    Plan {
        kept: coalesce(kept),
        red: coalesce(red),
        outputs,
        count,
    }
}

impl Plan {
    /// Column mapping: a kept dim lies closer together than every reduced one.
    pub(crate) fn column(&self) -> bool {
        match (self.kept.last(), self.red.last()) {
            (Some(k), Some(r)) => k.1 < r.1,
            _ => false,
        }
    }
}

/// A [`Strided`] of planned dims (`contiguous` set only when the strides
/// really are row-major, since `sr_offset` trusts it).
pub(crate) fn group(dims: &[(i64, i64)]) -> Strided {
    let mut s = Strided::contiguous(&[]);
    s.rank = dims.len() as i32;
    let mut expect = 1i64;
    let mut row_major = true;
    for (k, &(n, st)) in dims.iter().enumerate().rev() {
        s.shape[k] = n;
        s.strides[k] = st;
        row_major &= st == expect;
        expect *= n;
    }
    s.contiguous = i32::from(row_major);
    s
}

/// Launch geometry of one reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Threads per output in the row mapping (1, 32 or 256).
    pub team: u32,
    /// Blocks along x (they loop over the rest of the outputs).
    pub grid_x: u32,
    /// Splits of the reduced set (`gridDim.y`).
    pub splits: u32,
    /// Reduced elements per split.
    pub per: usize,
}

/// Threads per block of the reduce kernels.
const BLOCK: u32 = 256;

/// Chooses the team size, grid and splits for `outputs` outputs of `count`
/// elements each (`count >= 1`) on a GPU with `sm` multiprocessors: enough
/// blocks to fill it (about 8 per multiprocessor), splitting the reduced set
/// only when there are too few outputs, and never into pieces too small
/// to pay for the merge.
pub(crate) fn geometry(outputs: usize, count: usize, column: bool, sm: u32) -> Geometry {
    let team: u32 = if column {
        1
    } else if count >= 2048 {
        256
    } else if count >= 64 {
        32
    } else {
        1
    };
    let per_block = if column { 32 } else { (BLOCK / team) as usize };
    let need = outputs.div_ceil(per_block).max(1);
    let min_chunk = if column {
        128
    } else {
        (team as usize * 16).max(64)
    };
    let (splits, per) = splits_for(need, count, min_chunk, sm);
    Geometry {
        team,
        grid_x: need.min(sm as usize * 32).max(1) as u32,
        splits,
        per,
    }
}

// ---- execution --------------------------------------------------------------------

/// Which fold: its kernels' name stem, its mode argument, the output dtype
/// and the accumulator's size in bytes.
#[derive(Debug, Clone, Copy)]
struct Fold {
    names: [&'static str; 3],
    mode: i32,
    out: DType,
    acc_size: usize,
}

fn fold(op: OpId, d: DType) -> Result<Fold> {
    use DType::*;
    use OpId::*;
    let names: [&'static str; 3] = match (op, d) {
        (Sum | Mean, F32) => [
            "reduce_row_sum_f32",
            "reduce_col_sum_f32",
            "reduce_finish_sum_f32",
        ],
        (Sum | Mean, F64) => [
            "reduce_row_sum_f64",
            "reduce_col_sum_f64",
            "reduce_finish_sum_f64",
        ],
        (Sum, I64) => [
            "reduce_row_sum_i64",
            "reduce_col_sum_i64",
            "reduce_finish_sum_i64",
        ],
        (Max | Min, F32) => [
            "reduce_row_ext_f32",
            "reduce_col_ext_f32",
            "reduce_finish_ext_f32",
        ],
        (Max | Min, F64) => [
            "reduce_row_ext_f64",
            "reduce_col_ext_f64",
            "reduce_finish_ext_f64",
        ],
        (Max | Min, I64) => [
            "reduce_row_ext_i64",
            "reduce_col_ext_i64",
            "reduce_finish_ext_i64",
        ],
        (Argmax, F32) => [
            "reduce_row_argmax_f32",
            "reduce_col_argmax_f32",
            "reduce_finish_argmax_f32",
        ],
        (Argmax, F64) => [
            "reduce_row_argmax_f64",
            "reduce_col_argmax_f64",
            "reduce_finish_argmax_f64",
        ],
        (Argmax, I64) => [
            "reduce_row_argmax_i64",
            "reduce_col_argmax_i64",
            "reduce_finish_argmax_i64",
        ],
        _ => return Err(unsupported(op, d)),
    };
    let (mode, acc_size) = match op {
        Sum => (0, 8),
        Mean => (1, 8),
        Max => (1, d.size()),
        Min => (0, d.size()),
        _ => (0, 16), // struct { T v; long long i; }
    };
    Ok(Fold {
        names,
        mode,
        out: if op == Argmax { I64 } else { d },
        acc_size,
    })
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    crate::elementwise::check_arity(call, 1, 1)?;
    let Params::Reduce(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{op}: expected reduce params"
        )));
    };
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { crate::elementwise::views(call, device)? };
    let (x, y) = (&ins[0], &outs[0]);
    let rank = x.desc.rank();
    let mask = p.axes_mask;
    if rank < 64 && mask >> rank != 0 {
        return Err(BackendError::invalid(format!(
            "{op}: axes mask {mask:#x} names an axis beyond rank {rank}"
        )));
    }
    if op == OpId::Argmax && mask.count_ones() != 1 {
        return Err(BackendError::invalid(format!(
            "{op}: needs exactly one axis in the mask, got {mask:#x}"
        )));
    }
    let f = fold(op, x.dtype)?;
    let dims = x.dims();
    let want: Vec<usize> = (0..rank)
        .map(|k| if mask >> k & 1 == 1 { 1 } else { dims[k] })
        .collect();
    check_output(op, "output", y, f.out, &want)?;
    if y.numel() == 0 {
        return Ok(());
    }
    let pl = plan(x.desc.dims(), x.desc.steps(), mask);
    if pl.count == 0 {
        if matches!(op, OpId::Sum | OpId::Mean) {
            return finish(ctx, &f, 0, 0, pl.outputs, 0, y.ptr);
        }
        return Err(BackendError::invalid(if op == OpId::Argmax {
            format!("{op}: argmax over an empty axis")
        } else {
            format!("{op}: reduction over an empty set")
        }));
    }
    if pl.red.is_empty() {
        // One element per output: the value itself (argmax: index 0).
        if op == OpId::Argmax {
            return memset_zero(ctx, y.ptr, y.numel() * 8);
        }
        return crate::elementwise::copy(ctx, x.dtype, x.ptr, &x.strided(), y.ptr, &y.strided());
    }
    run(ctx, &f, x.ptr, &pl, y.ptr)
}

/// Queues the kernels of a planned reduction (`count >= 2`).
fn run(ctx: &mut Ctx<'_>, f: &Fold, x: CUdeviceptr, pl: &Plan, out: CUdeviceptr) -> Result<()> {
    let column = pl.column();
    let g = geometry(pl.outputs, pl.count, column, sm_count(ctx));
    let part = if g.splits > 1 {
        Some(ctx.temp(g.splits as usize * pl.outputs * f.acc_size)?)
    } else {
        None
    };
    let part_ptr = part.map_or(0, |b| b.0);
    let (outputs, count, per) = (pl.outputs as i64, pl.count as i64, g.per as i64);
    let kept = group(&pl.kept);
    let grid = (g.grid_x, g.splits, 1);
    let r = (|| {
        if column {
            let k = ctx.function(&REDUCE, f.names[1])?;
            let red = group(&pl.red);
            // SAFETY: `x` covers every planned offset (the plan comes from
            // a checked view), `out` holds `outputs` elements and `part`
            // `splits * outputs` accumulators; matches `reduce_col_*(x,
            // kept, red, outputs, count, per, mode, out, part)`.
            unsafe {
                ctx.launch(
                    k,
                    grid,
                    (BLOCK, 1, 1),
                    0,
                    args![x, kept, red, outputs, count, per, f.mode, out, part_ptr],
                )?
            }
        } else {
            let k = ctx.function(&REDUCE, f.names[0])?;
            let (inner, outer) = pl
                .red
                .split_last()
                .expect("count >= 2 leaves a reduced dim");
            let segs = group(outer);
            // SAFETY: as above; matches `reduce_row_*(x, kept, segs,
            // seg_len, seg_stride, outputs, count, per, team, mode, out, part)`.
            unsafe {
                ctx.launch(
                    k,
                    grid,
                    (BLOCK, 1, 1),
                    0,
                    args![
                        x,
                        kept,
                        segs,
                        inner.0,
                        inner.1,
                        outputs,
                        count,
                        per,
                        g.team as i32,
                        f.mode,
                        out,
                        part_ptr
                    ],
                )?
            }
        }
        if g.splits > 1 {
            finish(
                ctx,
                f,
                part_ptr,
                g.splits as usize,
                pl.outputs,
                pl.count,
                out,
            )?;
        }
        Ok(())
    })();
    if let Some(b) = part {
        ctx.free_temp(b);
    }
    r
}

/// Merges `splits` partials per output (0: the empty fold) into `out`.
fn finish(
    ctx: &mut Ctx<'_>,
    f: &Fold,
    part: CUdeviceptr,
    splits: usize,
    outputs: usize,
    count: usize,
    out: CUdeviceptr,
) -> Result<()> {
    let k = ctx.function(&REDUCE, f.names[2])?;
    let grid = crate::elementwise::grid(ctx, outputs);
    // SAFETY: `part` holds `splits * outputs` accumulators (none read when
    // `splits` is 0) and `out` `outputs` elements; matches
    // `reduce_finish_*(part, splits, outputs, count, mode, out)`.
    unsafe {
        ctx.launch(
            k,
            grid,
            (crate::elementwise::BLOCK, 1, 1),
            0,
            args![
                part,
                splits as i64,
                outputs as i64,
                count as i64,
                f.mode,
                out
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_exists_in_the_source() {
        for &op in &[OpId::Sum, OpId::Mean, OpId::Max, OpId::Min, OpId::Argmax] {
            for d in [DType::F32, DType::F64, DType::I64] {
                let Ok(f) = fold(op, d) else {
                    assert!(op == OpId::Mean && d == DType::I64);
                    continue;
                };
                for name in f.names {
                    // `reduce_row_sum_f32`: defined by `REDUCE_KERNELS(sum_f32, ..)`
                    // through `void reduce_row_##NAME(`.
                    let kind = ["reduce_row_", "reduce_col_", "reduce_finish_"]
                        .into_iter()
                        .find(|k| name.starts_with(k))
                        .unwrap();
                    let suffix = &name[kind.len()..];
                    assert!(
                        REDUCE.code.contains(&format!("void {kind}##NAME(")),
                        "{name}"
                    );
                    assert!(
                        REDUCE.code.contains(&format!("REDUCE_KERNELS({suffix},")),
                        "{name}"
                    );
                }
            }
        }
        assert!(fold(OpId::Mean, DType::I64).is_err());
        assert!(fold(OpId::Sum, DType::U8).is_err());
    }

    #[test]
    fn supported_matches_fold() {
        for p in supported() {
            let op = OpId::from_u32(p.op).unwrap();
            let d = DType::from_u32(p.dtype).unwrap();
            assert!(fold(op, d).is_ok(), "{op} {d}");
        }
        assert_eq!(supported().len(), 14);
    }

    #[test]
    fn plan_last_axis_of_a_contiguous_matrix_is_rows() {
        let p = plan(&[4, 6], &[6, 1], 0b10);
        assert_eq!(p.kept, vec![(4, 6)]);
        assert_eq!(p.red, vec![(6, 1)]);
        assert_eq!((p.outputs, p.count), (4, 6));
        assert!(!p.column());
    }

    #[test]
    fn plan_first_axis_is_columns() {
        let p = plan(&[5, 3], &[3, 1], 0b01);
        assert_eq!(p.kept, vec![(3, 1)]);
        assert_eq!(p.red, vec![(5, 3)]);
        assert!(p.column());
    }

    #[test]
    fn plan_full_reduction_coalesces_to_one_run() {
        let p = plan(&[2, 3, 4], &[12, 4, 1], 0b111);
        assert!(p.kept.is_empty());
        assert_eq!(p.red, vec![(24, 1)]);
        assert_eq!((p.outputs, p.count), (1, 24));
    }

    #[test]
    fn plan_nchw_channel_statistics() {
        // sum over (0, 2, 3) of [8, 16, 5, 7]: runs of H*W inside each (n, c).
        let p = plan(&[8, 16, 5, 7], &[560, 35, 7, 1], 0b1101);
        assert_eq!(p.kept, vec![(16, 35)]);
        assert_eq!(p.red, vec![(8, 560), (35, 1)]);
        assert_eq!((p.outputs, p.count), (16, 280));
        assert!(!p.column());
    }

    #[test]
    fn plan_drops_size_one_dims_and_sorts_transposed_input() {
        // A transposed [3, 1, 4] view (strides [1, 99, 3]) reduced over 0 and 2.
        let p = plan(&[3, 1, 4], &[1, 99, 3], 0b101);
        assert!(p.kept.is_empty());
        assert_eq!(p.red, vec![(12, 1)]);
        assert_eq!(p.count, 12);
        // Mask 0: nothing reduced.
        let p = plan(&[3, 4], &[4, 1], 0);
        assert!(p.red.is_empty());
        assert_eq!((p.outputs, p.count), (12, 1));
        // A broadcast (stride 0) reduced dim.
        let p = plan(&[3, 4], &[0, 1], 0b01);
        assert_eq!(p.red, vec![(3, 0)]);
        assert!(!p.column());
    }

    #[test]
    fn plan_empty_reduced_set_counts_zero() {
        let p = plan(&[3, 0], &[0, 1], 0b10);
        assert_eq!((p.outputs, p.count), (3, 0));
    }

    #[test]
    fn group_marks_row_major_only() {
        assert_eq!(group(&[(4, 6), (6, 1)]).contiguous, 1);
        assert_eq!(group(&[(4, 7), (6, 1)]).contiguous, 0);
        let g = group(&[(8, 560), (35, 1)]);
        assert_eq!(
            (g.rank, g.shape[0], g.strides[0], g.shape[2]),
            (2, 8, 560, 1)
        );
        assert_eq!(group(&[]).rank, 0);
    }

    #[test]
    fn geometry_teams_and_splits() {
        // Many long rows: a block per row, no split.
        let g = geometry(100_000, 4096, false, 132);
        assert_eq!((g.team, g.splits), (256, 1));
        assert_eq!(g.grid_x, 132 * 32);
        // Many short rows: a warp per row.
        let g = geometry(100_000, 100, false, 132);
        assert_eq!((g.team, g.splits), (32, 1));
        // Tiny rows: a thread per row.
        assert_eq!(geometry(1 << 20, 8, false, 132).team, 1);
        // One huge output: split to fill the GPU, pieces cover the count.
        let g = geometry(1, 100_000_000, false, 132);
        assert_eq!(g.team, 256);
        assert_eq!(g.splits, 1024); // 8 blocks per SM, capped at 1024 splits
        assert!(g.per * g.splits as usize >= 100_000_000);
        assert!(g.per * (g.splits as usize - 1) < 100_000_000);
        // Split pieces are never tiny.
        let g = geometry(1, 5000, false, 132);
        assert_eq!(g.splits, 2);
        // Columns: 32 outputs per block.
        let g = geometry(64, 1_000_000, true, 132);
        assert_eq!(g.grid_x, 2);
        assert_eq!(g.splits, 528);
        let g = geometry(1 << 20, 16, true, 132);
        assert_eq!((g.splits, g.grid_x), (1, 132 * 32));
    }
}
