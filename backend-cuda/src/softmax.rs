//! The softmax family on CUDA: `softmax`, `log_softmax` along one axis and
//! their backward ops (inputs `(y, dy)`, `y` the forward output), as the
//! kernels of `kernels/softmax.cu`. Semantics are the CPU backend's
//! (`backend-cpu/src/softmax.rs`): rows max-subtracted, a row whose maximum
//! is NaN or infinite gives NaN, sums in double, contiguous outputs.
//!
//! # Mapping
//!
//! The tensor is viewed as `[outer, n, inner]`, `n` along the axis; strided
//! inputs are first copied into contiguous temporaries (one extra pass, as
//! the CPU backend does; the common contiguous case reads in place).
//! - `inner == 1`, rows up to 1024 (f32) or 512 (f64) elements: one warp
//!   per row, the forward row held in registers (one read, one write).
//! - `inner == 1`, longer rows: one block per row (256 threads, 1024 from
//!   8192 elements); the forward folds max and sum online in one pass and
//!   writes in a second.
//! - `inner > 1`: blocks of 32 columns x 8 slices of the axis, so each warp
//!   reads 32 neighbouring columns.

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::Ctx;
use crate::kernels::SOFTMAX;
use crate::launch::args;
use crate::reduce::{check_input, check_output, float_suffix, sm_count, unsupported, Operand};

/// The (op, dtype) pairs of this family: the CPU backend's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use OpId::*;
    crate::pairs(
        &[Softmax, SoftmaxBackward, LogSoftmax, LogSoftmaxBackward],
        &[DType::F32, DType::F64],
    )
}

/// Threads per block of the warp-per-row and column kernels.
const BLOCK: u32 = 256;

/// Kernel names by mapping, then dtype (f32, f64).
const NAMES: [[&str; 2]; 3] = [
    ["softmax_warp_f32", "softmax_warp_f64"],
    ["softmax_block_f32", "softmax_block_f64"],
    ["softmax_cols_f32", "softmax_cols_f64"],
];

/// Longest row of the warp-per-row kernel: 32 lanes x `WARP_ELEMS`
/// (the last argument of `SOFTMAX_KERNELS` in the .cu).
fn warp_limit(d: DType) -> usize {
    if d == DType::F64 {
        32 * 16
    } else {
        32 * 32
    }
}

/// How a call maps onto the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// One warp per row; `grid` blocks of 8 warps.
    Warp { grid: u32 },
    /// One block of `threads` per row.
    Block { grid: u32, threads: u32 },
    /// Blocks of 32 columns x 8 slices.
    Cols { grid: u32 },
}

/// Chooses the mapping of `[outer, n, inner]` (`n >= 1`, all non-empty).
pub(crate) fn mapping(outer: usize, n: usize, inner: usize, dtype: DType, sm: u32) -> Mapping {
    let cap = sm as usize * 32;
    if inner > 1 {
        return Mapping::Cols {
            grid: (outer * inner).div_ceil(32).clamp(1, cap) as u32,
        };
    }
    if n <= warp_limit(dtype) {
        return Mapping::Warp {
            grid: outer.div_ceil((BLOCK / 32) as usize).clamp(1, cap) as u32,
        };
    }
    Mapping::Block {
        grid: outer.clamp(1, cap) as u32,
        threads: if n >= 8192 { 1024 } else { 256 },
    }
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let kind: i32 = match op {
        OpId::Softmax => 0,
        OpId::LogSoftmax => 1,
        OpId::SoftmaxBackward => 2,
        OpId::LogSoftmaxBackward => 3,
        _ => {
            return Err(BackendError::unsupported(format!(
                "cuda softmax: {op} is not in this family"
            )))
        }
    };
    let backward = kind >= 2;
    crate::elementwise::check_arity(call, 1 + usize::from(backward), 1)?;
    let Params::Axis(p) = call.params else {
        return Err(BackendError::invalid(format!("{op}: expected axis params")));
    };
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { crate::elementwise::views(call, device)? };
    let (x, y) = (&ins[0], &outs[0]);
    let dtype = x.dtype;
    if !dtype.is_float() {
        return Err(unsupported(op, dtype));
    }
    let shape = x.dims();
    let axis = p.axis as usize;
    if axis >= shape.len() {
        return Err(BackendError::invalid(format!(
            "{op}: axis {axis} is out of range for rank {}",
            shape.len()
        )));
    }
    if backward {
        check_input(op, "dy", &ins[1], dtype, &shape)?;
    }
    check_output(op, "output", y, dtype, &shape)?;
    if y.numel() == 0 {
        return Ok(());
    }
    let (outer, n, inner) = (
        shape[..axis].iter().product::<usize>(),
        shape[axis],
        shape[axis + 1..].iter().product::<usize>(),
    );
    let m = mapping(outer, n, inner, dtype, sm_count(ctx));
    let xs = Operand::contiguous(ctx, x)?;
    let gs = if backward {
        match Operand::contiguous(ctx, &ins[1]) {
            Ok(g) => Some(g),
            Err(e) => {
                xs.release(ctx);
                return Err(e);
            }
        }
    } else {
        None
    };
    let g_ptr = gs.as_ref().map_or(0, |g| g.ptr);
    let r = launch(
        ctx,
        m,
        float_suffix(dtype),
        [xs.ptr, g_ptr, y.ptr],
        (outer, n, inner),
        kind,
    );
    xs.release(ctx);
    if let Some(g) = gs {
        g.release(ctx);
    }
    r
}

/// Queues the kernel of mapping `m` (`t`: 0 for f32, 1 for f64) on the
/// contiguous `x`, `g` (`dy`; 0 for the forward ops) and output `y`.
fn launch(
    ctx: &mut Ctx<'_>,
    m: Mapping,
    t: usize,
    [x, g, y]: [u64; 3],
    (outer, n, inner): (usize, usize, usize),
    kind: i32,
) -> Result<()> {
    let (outer, n, inner) = (outer as i64, n as i64, inner as i64);
    match m {
        Mapping::Warp { grid } => {
            let f = ctx.function(&SOFTMAX, NAMES[0][t])?;
            // SAFETY: `x`, `g` (backward only) and `y` hold `outer * n`
            // contiguous elements of the dtype; matches
            // `softmax_warp_*(x, g, y, rows, n, kind)`.
            unsafe {
                ctx.launch(
                    f,
                    (grid, 1, 1),
                    (BLOCK, 1, 1),
                    0,
                    args![x, g, y, outer, n, kind],
                )
            }
        }
        Mapping::Block { grid, threads } => {
            let f = ctx.function(&SOFTMAX, NAMES[1][t])?;
            // SAFETY: as above; matches `softmax_block_*(x, g, y, rows, n, kind)`.
            unsafe {
                ctx.launch(
                    f,
                    (grid, 1, 1),
                    (threads, 1, 1),
                    0,
                    args![x, g, y, outer, n, kind],
                )
            }
        }
        Mapping::Cols { grid } => {
            let f = ctx.function(&SOFTMAX, NAMES[2][t])?;
            // SAFETY: as above with `outer * n * inner` elements; matches
            // `softmax_cols_*(x, g, y, outer, n, inner, kind)`.
            unsafe {
                ctx.launch(
                    f,
                    (grid, 1, 1),
                    (BLOCK, 1, 1),
                    0,
                    args![x, g, y, outer, n, inner, kind],
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_exists_in_the_source() {
        for row in NAMES {
            for name in row {
                let (stem, suffix) = name.rsplit_once('_').unwrap();
                assert!(
                    SOFTMAX.code.contains(&format!("void {stem}_##SUF(")),
                    "{name}"
                );
                assert!(
                    SOFTMAX.code.contains(&format!("SOFTMAX_KERNELS({suffix},")),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn warp_limits_match_the_kernel_instances() {
        assert!(SOFTMAX.code.contains("SOFTMAX_KERNELS(f32, float, 32)"));
        assert!(SOFTMAX.code.contains("SOFTMAX_KERNELS(f64, double, 16)"));
        assert_eq!(warp_limit(DType::F32), 1024);
        assert_eq!(warp_limit(DType::F64), 512);
    }

    #[test]
    fn mappings() {
        assert_eq!(
            mapping(4096, 1000, 1, DType::F32, 132),
            Mapping::Warp { grid: 512 }
        );
        assert_eq!(
            mapping(1 << 20, 10, 1, DType::F32, 132),
            Mapping::Warp { grid: 132 * 32 }
        );
        assert!(matches!(
            mapping(64, 1000, 1, DType::F64, 132),
            Mapping::Block {
                grid: 64,
                threads: 256
            }
        ));
        assert!(matches!(
            mapping(2, 1 << 20, 1, DType::F32, 132),
            Mapping::Block {
                grid: 2,
                threads: 1024
            }
        ));
        assert_eq!(
            mapping(8, 100, 49, DType::F32, 132),
            Mapping::Cols { grid: 13 }
        );
        assert_eq!(
            mapping(1, 100_000, 2, DType::F32, 132),
            Mapping::Cols { grid: 1 }
        );
    }

    #[test]
    fn supported_is_the_cpu_list() {
        assert_eq!(supported().len(), 8);
        assert!(!supported().iter().any(|p| p.dtype == DType::I64 as u32));
    }
}
