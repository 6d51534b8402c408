//! The fused cross-entropy pair on CUDA, as the kernels of
//! `kernels/loss.cu`, with the CPU backend's contract
//! (`backend-cpu/src/loss.rs`):
//! - `cross_entropy(logits [N, C], labels i64 [N])` gives the per-sample
//!   loss `[N]`: `logsumexp(logits_i) - logits_i[label_i]`, 0 where the label
//!   is `ignore_index`;
//! - `cross_entropy_backward(logits, labels, dloss [N])` gives `dlogits
//!   [N, C] = (softmax(logits_i) - onehot(label_i)) * dloss_i`, a zero row
//!   where the label is ignored.
//!
//! Labels outside `[0, C)` other than `ignore_index` are `InvalidArgument`,
//! checked before anything is written. That check needs the labels' values
//! on the host, so each call waits once for a small kernel that finds the
//! first bad sample (a stream synchronisation per call: the one place in
//! these families that waits; the forward's loss is normally read back
//! right after anyway).
//!
//! # Mapping
//!
//! A team per sample row: a warp for up to 1024 classes, else a block (256
//! threads, 1024 from 8192 classes). One online pass folds the row's
//! maximum and sum of exponentials; the backward writes in a second pass.
//! Strided logits are copied into a contiguous temporary first; labels and
//! dloss are read through their stride.

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::Ctx;
use crate::kernels::LOSS;
use crate::launch::{args, View};
use crate::reduce::{check_input, check_output, float_suffix, sm_count, unsupported, Operand};
use crate::storage::driver_error;

/// The (op, dtype) pairs of this family (the logits' dtype): the CPU's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    crate::pairs(
        &[OpId::CrossEntropy, OpId::CrossEntropyBackward],
        &[DType::F32, DType::F64],
    )
}

/// Kernel names: forward, backward; then dtype (f32, f64).
const NAMES: [[&str; 2]; 2] = [["ce_fwd_f32", "ce_fwd_f64"], ["ce_bwd_f32", "ce_bwd_f64"]];

/// Threads per block for rows up to 1024 classes (a warp per row).
const BLOCK: u32 = 256;

/// `(team, threads per block, grid)` for `n` rows of `c` classes.
pub(crate) fn row_teams(n: usize, c: usize, sm: u32) -> (u32, u32, u32) {
    let cap = sm as usize * 32;
    if c <= 1024 {
        (
            32,
            BLOCK,
            n.div_ceil((BLOCK / 32) as usize).clamp(1, cap) as u32,
        )
    } else {
        let threads = if c >= 8192 { 1024 } else { BLOCK };
        (threads, threads, n.clamp(1, cap) as u32)
    }
}

/// The element stride of a rank-1 view (0 when it has at most one element).
fn stride1(v: &View<'_>) -> i64 {
    if v.numel() <= 1 {
        0
    } else {
        v.desc.steps()[0]
    }
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let backward = match op {
        OpId::CrossEntropy => false,
        OpId::CrossEntropyBackward => true,
        _ => {
            return Err(BackendError::unsupported(format!(
                "cuda loss: {op} is not in this family"
            )))
        }
    };
    crate::elementwise::check_arity(call, 2 + usize::from(backward), 1)?;
    let Params::CrossEntropy(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{op}: expected cross-entropy params"
        )));
    };
    let ignore = p.ignore_index;
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { crate::elementwise::views(call, device)? };
    let (logits, labels, out) = (&ins[0], &ins[1], &outs[0]);
    let dtype = logits.dtype;
    if !dtype.is_float() {
        return Err(unsupported(op, dtype));
    }
    let &[n, c] = logits.dims().as_slice() else {
        return Err(BackendError::invalid(format!(
            "{op}: logits must be [N, C], got {:?}",
            logits.dims()
        )));
    };
    check_input(op, "labels", labels, DType::I64, &[n])?;
    if backward {
        check_input(op, "dloss", &ins[2], dtype, &[n])?;
        check_output(op, "dlogits", out, dtype, &[n, c])?;
    } else {
        check_output(op, "loss", out, dtype, &[n])?;
    }
    if n == 0 {
        return Ok(());
    }
    check_labels(ctx, op, labels, n, c, ignore)?;
    if backward && c == 0 {
        return Ok(());
    }
    let t = float_suffix(dtype);
    let x = Operand::contiguous(ctx, logits)?;
    let (team, threads, grid) = row_teams(n, c, sm_count(ctx));
    let (n64, c64, ls) = (n as i64, c as i64, stride1(labels));
    let r = (|| {
        if backward {
            let dloss = &ins[2];
            let f = ctx.function(&LOSS, NAMES[1][t])?;
            // SAFETY: x and dlogits hold n * c contiguous elements, labels
            // and dloss n elements at their strides (checked views);
            // matches `ce_bwd_*(x, labels, lstride, dloss, dstride, dx, n,
            // c, ignore, team)`.
            unsafe {
                ctx.launch(
                    f,
                    (grid, 1, 1),
                    (threads, 1, 1),
                    0,
                    args![
                        x.ptr,
                        labels.ptr,
                        ls,
                        dloss.ptr,
                        stride1(dloss),
                        out.ptr,
                        n64,
                        c64,
                        ignore,
                        team as i32
                    ],
                )
            }
        } else {
            let f = ctx.function(&LOSS, NAMES[0][t])?;
            // SAFETY: as above, with a loss of n contiguous elements;
            // matches `ce_fwd_*(x, labels, lstride, loss, n, c, ignore, team)`.
            unsafe {
                ctx.launch(
                    f,
                    (grid, 1, 1),
                    (threads, 1, 1),
                    0,
                    args![
                        x.ptr,
                        labels.ptr,
                        ls,
                        out.ptr,
                        n64,
                        c64,
                        ignore,
                        team as i32
                    ],
                )
            }
        }
    })();
    x.release(ctx);
    r
}

/// Fails with the CPU's message when a label is outside `[0, c)` and not
/// `ignore`: a kernel finds the first such sample, then the host waits for
/// its answer (and reads that label's value for the message).
fn check_labels(
    ctx: &mut Ctx<'_>,
    op: OpId,
    labels: &View<'_>,
    n: usize,
    c: usize,
    ignore: i64,
) -> Result<()> {
    let flag = ctx.temp(8)?;
    let r = (|| {
        // SAFETY: `flag` is a live 8-byte temporary.
        unsafe { cudarc::driver::result::memset_d8_async(flag.0, 0xff, 8, ctx.stream()) }
            .map_err(|e| driver_error("cuMemsetD8Async", e))?;
        let f = ctx.function(&LOSS, "ce_check")?;
        let g = crate::elementwise::grid(ctx, n);
        let ls = stride1(labels);
        // SAFETY: labels holds n elements at stride `ls` (checked view),
        // flag one u64; matches `ce_check(labels, lstride, n, c, ignore, first)`.
        unsafe {
            ctx.launch(
                f,
                g,
                (crate::elementwise::BLOCK, 1, 1),
                0,
                args![labels.ptr, ls, n as i64, c as i64, ignore, flag.0],
            )?
        }
        let mut first = [0u64; 1];
        // SAFETY: copies the 8-byte flag; the stream is waited for before
        // `first` is read or dropped.
        unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut first[..], flag.0, ctx.stream()) }
            .map_err(|e| driver_error("cuMemcpyDtoHAsync", e))?;
        ctx.synchronize()?;
        let i = first[0];
        if i == u64::MAX {
            return Ok(());
        }
        let mut l = [0i64; 1];
        let at = labels.ptr + (i as i64 * ls) as u64 * 8;
        // SAFETY: sample `i < n` of the checked labels view; waited for below.
        unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut l[..], at, ctx.stream()) }
            .map_err(|e| driver_error("cuMemcpyDtoHAsync", e))?;
        ctx.synchronize()?;
        Err(BackendError::invalid(format!(
            "{op}: label {} of sample {i} is outside [0, {c}) and is not ignore_index {ignore}",
            l[0]
        )))
    })();
    ctx.free_temp(flag);
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
                assert!(LOSS.code.contains(&format!("void {stem}_##SUF(")), "{name}");
                assert!(
                    LOSS.code.contains(&format!("LOSS_KERNELS({suffix},")),
                    "{name}"
                );
            }
        }
        assert!(LOSS.code.contains("void ce_check("));
    }

    #[test]
    fn teams() {
        assert_eq!(row_teams(64, 10, 132), (32, 256, 8));
        assert_eq!(row_teams(64, 50_000, 132), (1024, 1024, 64));
        assert_eq!(row_teams(1 << 20, 2000, 132), (256, 256, 132 * 32));
    }

    #[test]
    fn supported_is_the_cpu_list() {
        assert_eq!(supported().len(), 4);
    }
}
