//! The indexing family on CUDA: `index_select` and `index_add` along one
//! axis, as the NVRTC kernels of `kernels/indexing.cu`. Shapes, dtypes and
//! error texts are the CPU backend's (`backend-cpu/src/indexing.rs`).
//!
//! - `index_select(table, index i64)`: a gather. `out` (contiguous) has
//!   shape `table[..axis] ++ index.shape ++ table[axis + 1..]`; a 2-D grid
//!   over (inner position, output row), each thread reading its row's index
//!   once and copying a run of the row, bit for bit (any dtype). The table
//!   and the index may be any strided views.
//! - `index_add(index i64, src)` into `out` (contiguous, read and written):
//!   the same grid over `src`'s rows, each element added into `out` with
//!   `atomicAdd`. i64 adds wrap, as on the CPU, and integer atomics are
//!   exact, so i64 results are the CPU's. For f32/f64 the result equals the
//!   CPU's bit for bit when no index repeats (one addition per element), but
//!   where an index repeats the additions happen in an unspecified order, so
//!   sums can differ from the CPU's index-order sums, and between runs, by
//!   rounding (about one ulp of the sum per addition). f32 atomic adds on
//!   global memory also flush subnormal results to zero. A deterministic
//!   scheme (a stable sort of the indices, then one thread per output
//!   element summing in index order) would need a device radix sort; not
//!   worth it here.
//!
//! # Index validation
//!
//! The CPU backend rejects any index outside `[0, extent)` (negative ones
//! too) before writing anything. Here a small kernel records the first bad
//! flat position into an 8-byte temporary, which is read back before the op
//! is launched: an out-of-range index gives the CPU's typed error
//! (`invalid`, naming the index, its flat position and the extent) and
//! nothing is written. The price is one host synchronisation per call that
//! has indices (it waits for the work queued before it, about the cost of a
//! kernel launch round trip plus whatever was queued). Independently of
//! that check, the kernels never touch memory outside the tensors:
//! `index_select` writes zeros for a bad row and `index_add` skips it.

use cudarc::driver::result as cu;
use sunrise_backend_api::abi::{SrOpSupport, SrTensorDesc, SR_MAX_RANK};
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::Ctx;
use crate::elementwise::{check_arity, grid, views, BLOCK};
use crate::kernels::INDEXING;
use crate::launch::{args, Strided, View};
use crate::storage::driver_error;

/// The (op, dtype) pairs of this family (the table's or `src`'s dtype;
/// indices are always i64): the CPU backend's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use DType::*;
    let mut v = crate::pairs(&[OpId::IndexSelect], &[F32, F64, I64, U8]);
    v.extend(crate::pairs(&[OpId::IndexAdd], &[F32, F64, I64]));
    v
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    check_arity(call, 2, 1)?;
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { views(call, device)? };
    match call.op {
        OpId::IndexSelect => select(ctx, call, &ins[0], &ins[1], &outs[0]),
        OpId::IndexAdd => add(ctx, call, &ins[0], &ins[1], &outs[0]),
        op => Err(BackendError::unsupported(format!(
            "cuda indexing: {op} is not an indexing op"
        ))),
    }
}

/// The axis of the call, checked against `rank` (the CPU's `axis_param`).
fn axis_param(call: &OpCall<'_>, rank: usize) -> Result<usize> {
    let Params::Axis(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{}: expected axis params",
            call.op
        )));
    };
    let axis = p.axis as usize;
    if axis >= rank {
        return Err(BackendError::invalid(format!(
            "{}: axis {axis} is out of range for rank {rank}",
            call.op
        )));
    }
    Ok(axis)
}

fn expect_dtype(op: OpId, what: &str, v: &View<'_>, want: DType) -> Result<()> {
    if v.dtype != want {
        return Err(BackendError::invalid(format!(
            "{op}: {what}: expected dtype {want}, got {}",
            v.dtype
        )));
    }
    Ok(())
}

fn expect_shape(op: OpId, what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got != want {
        return Err(BackendError::invalid(format!(
            "{op}: {what} has shape {got:?}, expected {want:?}"
        )));
    }
    Ok(())
}

/// `base[..axis] ++ mid ++ base[axis + 1..]`.
fn spliced(base: &[usize], axis: usize, mid: &[usize]) -> Vec<usize> {
    let mut s = base[..axis].to_vec();
    s.extend_from_slice(mid);
    s.extend_from_slice(&base[axis + 1..]);
    s
}

/// A kernel layout for dims `shape` with element strides `strides` (a part
/// of a tensor's dims), flagged contiguous when its offsets are the flat
/// row-major positions (extent-1 dims may have any stride).
fn part(shape: &[i64], strides: &[i64]) -> Strided {
    let mut s = Strided {
        shape: [1; SR_MAX_RANK],
        strides: [0; SR_MAX_RANK],
        rank: shape.len() as i32,
        contiguous: 1,
    };
    let mut expect = 1i64;
    for k in (0..shape.len()).rev() {
        s.shape[k] = shape[k];
        s.strides[k] = strides[k];
        if shape[k] != 1 && strides[k] != expect {
            s.contiguous = 0;
        }
        expect = expect.saturating_mul(shape[k]);
    }
    s
}

/// Element offset of flat (row-major) position `i` of a descriptor.
fn offset_of(d: &SrTensorDesc, mut i: u64) -> u64 {
    let mut off = 0u64;
    for (&n, &st) in d.dims().iter().zip(d.steps()).rev() {
        let n = n.max(1) as u64;
        off += (i % n) * st as u64;
        i /= n;
    }
    off
}

/// Threads and blocks of the row kernels over `rows` rows of `inner`
/// elements (both > 0): blocks of `(bx, by)` = 256 threads, `bx` the power
/// of two that covers `inner` up to 256 (then the rows of a block are
/// `by = 256 / bx` consecutive output rows), at most `max_blocks` blocks in
/// all and 65535 along y; the kernels grid-stride over the rest.
fn row_launch(rows: usize, inner: usize, max_blocks: u32) -> ((u32, u32, u32), (u32, u32, u32)) {
    let bx = inner.clamp(1, 256).next_power_of_two() as u32;
    let by = 256 / bx;
    let max_blocks = max_blocks.max(1);
    let gx = inner.div_ceil(bx as usize).clamp(1, max_blocks as usize) as u32;
    let gy_cap = (max_blocks / gx).clamp(1, 65535);
    let gy = rows.div_ceil(by as usize).clamp(1, gy_cap as usize) as u32;
    ((gx, gy, 1), (bx, by, 1))
}

fn row_grid(ctx: &Ctx<'_>, rows: usize, inner: usize) -> ((u32, u32, u32), (u32, u32, u32)) {
    row_launch(
        rows,
        inner,
        (ctx.gpu.info.sm_count.max(1) as u32).saturating_mul(16),
    )
}

/// Fails with the CPU's error when an index is outside `[0, extent)`.
/// Synchronises (reads 8 bytes back) when the index is not empty.
fn check_indices(ctx: &mut Ctx<'_>, op: OpId, index: &View<'_>, extent: usize) -> Result<()> {
    let n = index.numel();
    if n == 0 {
        return Ok(());
    }
    let flag = ctx.temp(8)?;
    let first = first_bad(ctx, index, extent, flag.0);
    ctx.free_temp(flag);
    let k = first?;
    if k == u64::MAX {
        return Ok(());
    }
    let mut v = [0i64; 1];
    let at = index.ptr + offset_of(index.desc, k) * 8;
    // SAFETY: `k` is a flat position of the checked index view, so `at` is
    // inside its buffer; `v` outlives the copy (synchronised below).
    unsafe { cu::memcpy_dtoh_async(&mut v, at, ctx.stream()) }
        .map_err(|e| driver_error("cuMemcpyDtoHAsync", e))?;
    ctx.synchronize()?;
    Err(BackendError::invalid(format!(
        "{op}: index {} (at flat position {k}) is out of range for extent {extent}",
        v[0]
    )))
}

/// Runs `index_check` into the 8-byte block at `flag` and reads it back:
/// the first bad flat position, or `u64::MAX`.
fn first_bad(ctx: &mut Ctx<'_>, index: &View<'_>, extent: usize, flag: u64) -> Result<u64> {
    let n = index.numel();
    let stream = ctx.stream();
    let init = ctx.function(&INDEXING, "index_check_init")?;
    // SAFETY: `flag` is a live temporary of at least 8 bytes; matches
    // `index_check_init(first_bad)`.
    unsafe { ctx.launch(init, (1, 1, 1), (32, 1, 1), 0, args![flag])? };
    let f = ctx.function(&INDEXING, "index_check")?;
    let g = grid(ctx, n);
    // SAFETY: the index is a checked view of `n` i64, `flag` 8 bytes;
    // matches `index_check(idx, sidx, n, extent, first_bad)`.
    unsafe {
        ctx.launch(
            f,
            g,
            (BLOCK, 1, 1),
            0,
            args![index.ptr, index.strided(), n as i64, extent as i64, flag],
        )?;
    }
    let mut first = [0u64; 1];
    // SAFETY: 8 bytes from the temporary into `first`, which outlives the
    // copy (synchronised below).
    unsafe { cu::memcpy_dtoh_async(&mut first, flag, stream) }
        .map_err(|e| driver_error("cuMemcpyDtoHAsync", e))?;
    ctx.synchronize()?;
    Ok(first[0])
}

/// Kernel names by element size (1, 4, 8 bytes).
const SELECT: [&str; 3] = ["index_select_b1", "index_select_b4", "index_select_b8"];
/// Kernel names by dtype (f32, f64, i64).
const ADD: [&str; 3] = ["index_add_f32", "index_add_f64", "index_add_i64"];

fn select(
    ctx: &mut Ctx<'_>,
    call: &OpCall<'_>,
    table: &View<'_>,
    index: &View<'_>,
    out: &View<'_>,
) -> Result<()> {
    let op = call.op;
    let tshape = table.dims();
    let axis = axis_param(call, tshape.len())?;
    expect_dtype(op, "index", index, DType::I64)?;
    let want = spliced(&tshape, axis, &index.dims());
    if want.len() > SR_MAX_RANK {
        return Err(BackendError::invalid(format!(
            "{op}: output rank {} is too large",
            want.len()
        )));
    }
    expect_dtype(op, "output", out, table.dtype)?;
    expect_shape(op, "output", &out.dims(), &want)?;
    if !out.is_contiguous() {
        return Err(BackendError::invalid(format!(
            "{op}: output must be contiguous"
        )));
    }
    let extent = tshape[axis];
    check_indices(ctx, op, index, extent)?;
    if out.numel() == 0 {
        return Ok(());
    }
    let inner: usize = tshape[axis + 1..].iter().product();
    let n_idx = index.numel();
    let rows = out.numel() / inner;
    let (dims, steps) = (table.desc.dims(), table.desc.steps());
    let outer = part(&dims[..axis], &steps[..axis]);
    let inner_l = part(&dims[axis + 1..], &steps[axis + 1..]);
    let name = match table.dtype.size() {
        1 => SELECT[0],
        4 => SELECT[1],
        _ => SELECT[2],
    };
    let f = ctx.function(&INDEXING, name)?;
    let (g, b) = row_grid(ctx, rows, inner);
    // SAFETY: the table, index and output are checked views (the output
    // contiguous, `rows * inner` elements); every index is in range (checked
    // above; the kernel zero-fills bad rows anyway); matches
    // `index_select_b{k}(table, outer, inner, axis_stride, extent, idx, sidx,
    // n_idx, out, rows, inner_n, dense)`.
    unsafe {
        ctx.launch(
            f,
            g,
            b,
            0,
            args![
                table.ptr,
                outer,
                inner_l,
                steps[axis],
                extent as i64,
                index.ptr,
                index.strided(),
                n_idx as i64,
                out.ptr,
                rows as i64,
                inner as i64,
                i32::from(table.is_contiguous())
            ],
        )
    }
}

fn add(
    ctx: &mut Ctx<'_>,
    call: &OpCall<'_>,
    index: &View<'_>,
    src: &View<'_>,
    out: &View<'_>,
) -> Result<()> {
    let op = call.op;
    let k = match src.dtype {
        DType::F32 => 0,
        DType::F64 => 1,
        DType::I64 => 2,
        d => {
            return Err(BackendError::unsupported(format!(
                "cuda: {op} is not implemented for {d}"
            )))
        }
    };
    expect_dtype(op, "output", out, src.dtype)?;
    if !out.is_contiguous() {
        return Err(BackendError::invalid(format!(
            "{op}: output must be contiguous"
        )));
    }
    let oshape = out.dims();
    let axis = axis_param(call, oshape.len())?;
    expect_dtype(op, "index", index, DType::I64)?;
    expect_shape(
        op,
        "src",
        &src.dims(),
        &spliced(&oshape, axis, &index.dims()),
    )?;
    let extent = oshape[axis];
    check_indices(ctx, op, index, extent)?;
    let inner: usize = oshape[axis + 1..].iter().product();
    let n_idx = index.numel();
    if out.numel() == 0 || inner == 0 || n_idx == 0 {
        return Ok(());
    }
    let rows = src.numel() / inner;
    let f = ctx.function(&INDEXING, ADD[k])?;
    let (g, b) = row_grid(ctx, rows, inner);
    // SAFETY: checked views (out contiguous `[outer, extent, inner]`, src
    // `rows * inner` elements); indices in range (checked above; the kernel
    // skips bad rows anyway); matches `index_add_{t}(idx, sidx, n_idx,
    // extent, src, ssrc, out, rows, inner_n)`.
    unsafe {
        ctx.launch(
            f,
            g,
            b,
            0,
            args![
                index.ptr,
                index.strided(),
                n_idx as i64,
                extent as i64,
                src.ptr,
                src.strided(),
                out.ptr,
                rows as i64,
                inner as i64
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_exists_in_the_source() {
        let c = INDEXING.code;
        assert!(c.contains("void index_check(") && c.contains("void index_check_init("));
        for (name, ty) in SELECT
            .iter()
            .zip(["u8", "unsigned int", "unsigned long long"])
        {
            let suffix = name.rsplit_once('_').unwrap().1;
            assert!(
                c.contains("void index_select_##S(")
                    && c.contains(&format!("INDEX_SELECT({ty}, {suffix})")),
                "{name}"
            );
        }
        for (name, ty) in ADD.iter().zip(["float", "double", "i64"]) {
            let suffix = name.rsplit_once('_').unwrap().1;
            assert!(
                c.contains("void index_add_##S(")
                    && c.contains(&format!("INDEX_ADD({ty}, {suffix})")),
                "{name}"
            );
        }
    }

    #[test]
    fn supported_is_the_cpu_list() {
        let s = supported();
        let has = |op: OpId, d: DType| s.iter().any(|p| p.op == op as u32 && p.dtype == d as u32);
        for d in DType::ALL {
            assert!(has(OpId::IndexSelect, d), "{d}");
            assert_eq!(has(OpId::IndexAdd, d), d != DType::U8, "{d}");
        }
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn spliced_shapes() {
        assert_eq!(spliced(&[4, 5, 6], 1, &[2, 3]), [4, 2, 3, 6]);
        assert_eq!(spliced(&[4, 5, 6], 0, &[]), [5, 6]);
        assert_eq!(spliced(&[7], 0, &[3]), [3]);
    }

    #[test]
    fn parts_flag_contiguity_like_sr_offset_needs() {
        let a = part(&[3, 4], &[4, 1]);
        assert_eq!((a.rank, a.contiguous), (2, 1));
        assert_eq!(part(&[3, 4], &[8, 1]).contiguous, 0);
        assert_eq!(part(&[3, 4], &[1, 3]).contiguous, 0);
        // Extent-1 dims may have any stride; rank 0 is contiguous (offset 0).
        assert_eq!(part(&[1, 4], &[99, 1]).contiguous, 1);
        let z = part(&[], &[]);
        assert_eq!((z.rank, z.contiguous), (0, 1));
        assert_eq!(z.numel(), 1);
    }

    #[test]
    fn flat_positions_to_offsets() {
        let mut d = SrTensorDesc::empty();
        d.rank = 2;
        d.shape[..2].copy_from_slice(&[3, 4]);
        d.strides[..2].copy_from_slice(&[1, 3]); // a transposed [4, 3]
        assert_eq!(offset_of(&d, 0), 0);
        assert_eq!(offset_of(&d, 1), 3);
        assert_eq!(offset_of(&d, 5), 1 + 3);
        assert_eq!(offset_of(&d, 11), 2 + 9);
        d.rank = 0;
        assert_eq!(offset_of(&d, 0), 0);
    }

    #[test]
    fn row_launch_geometry() {
        for (rows, inner, max) in [
            (1, 768, 2112),
            (16384, 768, 2112),
            (1 << 30, 1, 2112),
            (5, 3, 16),
            (1, 1 << 30, 2112),
        ] {
            let ((gx, gy, gz), (bx, by, bz)) = row_launch(rows, inner, max);
            assert_eq!(bx * by, 256, "{rows} {inner}");
            assert!(bx.is_power_of_two() && (bx as usize >= inner.min(256)));
            assert_eq!((gz, bz), (1, 1));
            assert!(gx >= 1 && (1..=65535).contains(&gy));
            assert!(gx * gy <= max.max(gx), "{rows} {inner}: {gx} x {gy}");
            // Never more blocks than the work needs.
            assert!(
                gx as usize <= inner.div_ceil(bx as usize)
                    && gy as usize <= rows.div_ceil(by as usize)
            );
        }
        assert_eq!(row_launch(1 << 30, 1, 2112).1, (1, 256, 1));
        assert_eq!(row_launch(10, 768, 2112), ((3, 10, 1), (256, 1, 1)));
        assert_eq!(row_launch(10, 20, 2112), ((1, 2, 1), (32, 8, 1)));
    }
}
