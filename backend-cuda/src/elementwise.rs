//! Elementwise ops on CUDA: unary and their backward, binary, comparisons,
//! `where`, `fill`, strided `copy`, `cast` and `concat`, as the NVRTC
//! kernels of `kernels/elementwise.cu`. Inputs arrive pre-broadcast to the
//! output's shape (stride 0 where broadcast), as the ABI's convention says.

use std::ffi::c_void;

use cudarc::driver::sys::CUdeviceptr;
use sunrise_backend_api::abi::{SrOpSupport, SrTensorDesc};
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::{grid_1d, Ctx};
use crate::kernels::ELEMENTWISE;
use crate::launch::{args, Strided, View};

/// The (op, dtype) pairs of this family: the CPU backend's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use DType::*;
    let mut v = Vec::new();
    for &op in OpId::ALL {
        if op.is_unary() {
            let ints = matches!(op, OpId::Neg | OpId::Abs);
            v.extend(crate::pairs(
                &[op],
                if ints { &[F32, F64, I64] } else { &[F32, F64] },
            ));
        } else if op.is_binary() {
            let ints = !matches!(op, OpId::Div | OpId::Pow);
            v.extend(crate::pairs(
                &[op],
                if ints { &[F32, F64, I64] } else { &[F32, F64] },
            ));
        } else if op.is_comparison() {
            v.extend(crate::pairs(&[op], &DType::ALL));
        }
    }
    v.extend(crate::pairs(&[OpId::UnaryBackward], &[F32, F64]));
    v.extend(crate::pairs(&[OpId::Where], &[U8]));
    v.extend(crate::pairs(
        &[OpId::Fill, OpId::Copy, OpId::Cast, OpId::Concat],
        &DType::ALL,
    ));
    v
}

/// Threads per block of the elementwise kernels.
pub(crate) const BLOCK: u32 = 256;

/// Grid for `n` items: enough blocks to fill the GPU several times over;
/// kernels loop over the rest.
pub(crate) fn grid(ctx: &Ctx<'_>, n: usize) -> (u32, u32, u32) {
    let max_blocks = (ctx.gpu.info.sm_count.max(1) as u32).saturating_mul(16);
    (grid_1d(n, BLOCK, max_blocks), 1, 1)
}

/// Launches elementwise kernel `name` over `n` items on the 1-D grid of
/// [`grid`]; nothing for `n == 0`.
///
/// # Safety
/// `args` match the kernel's parameters exactly, and every device pointer
/// among them is live and large enough for `n` items of its layout.
unsafe fn launch_n(
    ctx: &mut Ctx<'_>,
    name: &'static str,
    n: usize,
    args: &mut [*mut c_void],
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let f = ctx.function(&ELEMENTWISE, name)?;
    let g = grid(ctx, n);
    // SAFETY: per this function's contract.
    unsafe { ctx.launch(f, g, (BLOCK, 1, 1), 0, args) }
}

/// The checked views of a call's inputs and outputs.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn views<'a>(
    call: &OpCall<'a>,
    device: u32,
) -> Result<(Vec<View<'a>>, Vec<View<'a>>)> {
    let op = call.op;
    let one = |d: &'a SrTensorDesc| {
        // SAFETY: per the caller's contract.
        unsafe { View::new(d, device) }
            .map_err(|e| BackendError::invalid(format!("{op}: {}", e.message)))
    };
    let ins = call.inputs.iter().map(one).collect::<Result<Vec<_>>>()?;
    let outs = call.outputs.iter().map(one).collect::<Result<Vec<_>>>()?;
    Ok((ins, outs))
}

/// Fails unless the call has `ins` inputs and `outs` outputs.
pub(crate) fn check_arity(call: &OpCall<'_>, ins: usize, outs: usize) -> Result<()> {
    if call.inputs.len() != ins || call.outputs.len() != outs {
        return Err(BackendError::invalid(format!(
            "{}: expected {ins} input(s) and {outs} output(s), got {} and {}",
            call.op,
            call.inputs.len(),
            call.outputs.len()
        )));
    }
    Ok(())
}

fn same_shape(op: OpId, what: &str, v: &View<'_>, out: &View<'_>) -> Result<()> {
    if v.desc.dims() != out.desc.dims() {
        return Err(BackendError::invalid(format!(
            "{op}: {what} has shape {:?}, the output {:?} (inputs come broadcast)",
            v.desc.dims(),
            out.desc.dims()
        )));
    }
    Ok(())
}

fn same_dtype(op: OpId, what: &str, v: &View<'_>, want: DType) -> Result<()> {
    if v.dtype != want {
        return Err(BackendError::invalid(format!(
            "{op}: {what} is {}, expected {want}",
            v.dtype
        )));
    }
    Ok(())
}

fn unsupported(op: OpId, dtype: DType) -> BackendError {
    BackendError::unsupported(format!("cuda: {op} on {dtype} is not supported"))
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    // SAFETY: forwarded.
    let (ins, outs) = unsafe { views(call, device)? };
    match op {
        _ if op.is_unary() => {
            check_arity(call, 1, 1)?;
            unary(ctx, op, &ins[0], &outs[0])
        }
        OpId::UnaryBackward => {
            check_arity(call, 2, 1)?;
            let Params::UnaryBackward(p) = call.params else {
                return Err(BackendError::invalid(
                    "unary_backward: needs UnaryBackwardParams",
                ));
            };
            unary_backward(ctx, p.op, &ins[0], &ins[1], &outs[0])
        }
        _ if op.is_binary() || op.is_comparison() => {
            check_arity(call, 2, 1)?;
            binary(ctx, op, &ins[0], &ins[1], &outs[0])
        }
        OpId::Where => {
            check_arity(call, 3, 1)?;
            where_(ctx, &ins, &outs[0])
        }
        OpId::Fill => {
            check_arity(call, 0, 1)?;
            let Params::Fill(p) = call.params else {
                return Err(BackendError::invalid("fill: needs FillParams"));
            };
            fill(ctx, &outs[0], p.value)
        }
        OpId::Copy => {
            check_arity(call, 1, 1)?;
            same_dtype(op, "out", &outs[0], ins[0].dtype)?;
            same_shape(op, "x", &ins[0], &outs[0])?;
            copy(
                ctx,
                ins[0].dtype,
                ins[0].ptr,
                &ins[0].strided(),
                outs[0].ptr,
                &outs[0].strided(),
            )
        }
        OpId::Cast => {
            check_arity(call, 1, 1)?;
            cast(ctx, &ins[0], &outs[0])
        }
        OpId::Concat => {
            let Params::Axis(p) = call.params else {
                return Err(BackendError::invalid("concat: needs AxisParams"));
            };
            concat(ctx, &ins, &outs, p.axis as usize)
        }
        _ => Err(BackendError::unsupported(format!(
            "cuda elementwise: {op} is not in this family"
        ))),
    }
}

fn type_suffix(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::I64 => "i64",
        DType::U8 => "u8",
    }
}

/// Kernel name `{base}_{suffix}` from a fixed table (kernel names must be `'static`).
fn kernel(base: &str, d: DType) -> Result<&'static str> {
    const NAMES: [&str; 16] = [
        "unary_f32",
        "unary_f64",
        "unary_i64",
        "unary_backward_f32",
        "unary_backward_f64",
        "binary_f32",
        "binary_f64",
        "binary_i64",
        "compare_f32",
        "compare_f64",
        "compare_i64",
        "compare_u8",
        "bias_add_f32",
        "bias_add_f64",
        "",
        "",
    ];
    let want = format!("{base}_{}", type_suffix(d));
    NAMES
        .iter()
        .find(|n| **n == want)
        .copied()
        .ok_or_else(|| BackendError::unsupported(format!("cuda: no kernel {want}")))
}

fn unary(ctx: &mut Ctx<'_>, op: OpId, x: &View<'_>, y: &View<'_>) -> Result<()> {
    same_shape(op, "x", x, y)?;
    same_dtype(op, "out", y, x.dtype)?;
    let ok = match x.dtype {
        DType::F32 | DType::F64 => true,
        DType::I64 => matches!(op, OpId::Neg | OpId::Abs),
        DType::U8 => false,
    };
    if !ok {
        return Err(unsupported(op, x.dtype));
    }
    let n = y.numel();
    // SAFETY: pointers and layouts were checked against their buffers; the
    // argument list matches `unary_{t}(x, sx, y, sy, n, op)`.
    unsafe {
        launch_n(
            ctx,
            kernel("unary", x.dtype)?,
            n,
            args![x.ptr, x.strided(), y.ptr, y.strided(), n as i64, op as i32],
        )
    }
}

fn unary_backward(
    ctx: &mut Ctx<'_>,
    fwd: u32,
    x: &View<'_>,
    dy: &View<'_>,
    dx: &View<'_>,
) -> Result<()> {
    let op = OpId::UnaryBackward;
    let fwd = OpId::from_u32(fwd)
        .filter(|o| o.is_unary())
        .ok_or_else(|| {
            BackendError::invalid(format!("unary_backward: op id {fwd} is not a unary op"))
        })?;
    same_shape(op, "x", x, dx)?;
    same_shape(op, "dy", dy, dx)?;
    same_dtype(op, "dy", dy, x.dtype)?;
    same_dtype(op, "dx", dx, x.dtype)?;
    if !x.dtype.is_float() {
        return Err(unsupported(op, x.dtype));
    }
    let n = dx.numel();
    // SAFETY: checked views; matches `unary_backward_{t}(x, sx, dy, sdy, dx, sdx, n, op)`.
    unsafe {
        launch_n(
            ctx,
            kernel("unary_backward", x.dtype)?,
            n,
            args![
                x.ptr,
                x.strided(),
                dy.ptr,
                dy.strided(),
                dx.ptr,
                dx.strided(),
                n as i64,
                fwd as i32
            ],
        )
    }
}

fn binary(ctx: &mut Ctx<'_>, op: OpId, a: &View<'_>, b: &View<'_>, c: &View<'_>) -> Result<()> {
    same_shape(op, "a", a, c)?;
    same_shape(op, "b", b, c)?;
    same_dtype(op, "b", b, a.dtype)?;
    let (base, ok) = if op.is_comparison() {
        same_dtype(op, "out", c, DType::U8)?;
        ("compare", true)
    } else {
        same_dtype(op, "out", c, a.dtype)?;
        let ok = match a.dtype {
            DType::F32 | DType::F64 => true,
            DType::I64 => !matches!(op, OpId::Div | OpId::Pow),
            DType::U8 => false,
        };
        ("binary", ok)
    };
    if !ok {
        return Err(unsupported(op, a.dtype));
    }
    let n = c.numel();
    // SAFETY: checked views; matches `{binary,compare}_{t}(a, sa, b, sb, c, sc, n, op)`.
    unsafe {
        launch_n(
            ctx,
            kernel(base, a.dtype)?,
            n,
            args![
                a.ptr,
                a.strided(),
                b.ptr,
                b.strided(),
                c.ptr,
                c.strided(),
                n as i64,
                op as i32
            ],
        )
    }
}

/// Kernel suffix by element size (`b1`, `b4`, `b8`), for dtype-blind moves.
fn by_size(base: &'static str, d: DType) -> &'static str {
    match (base, d.size()) {
        ("where", 1) => "where_b1",
        ("where", 4) => "where_b4",
        ("where", _) => "where_b8",
        ("fill", 1) => "fill_b1",
        ("fill", 4) => "fill_b4",
        ("fill", _) => "fill_b8",
        ("copy", 1) => "copy_b1",
        ("copy", 4) => "copy_b4",
        _ => "copy_b8",
    }
}

fn where_(ctx: &mut Ctx<'_>, ins: &[View<'_>], c: &View<'_>) -> Result<()> {
    let op = OpId::Where;
    let (m, a, b) = (&ins[0], &ins[1], &ins[2]);
    same_dtype(op, "mask", m, DType::U8)?;
    same_dtype(op, "b", b, a.dtype)?;
    same_dtype(op, "out", c, a.dtype)?;
    for (what, v) in [("mask", m), ("a", a), ("b", b)] {
        same_shape(op, what, v, c)?;
    }
    let n = c.numel();
    // SAFETY: checked views; matches `where_b{k}(m, sm, a, sa, b, sb, c, sc, n)`.
    unsafe {
        launch_n(
            ctx,
            by_size("where", a.dtype),
            n,
            args![
                m.ptr,
                m.strided(),
                a.ptr,
                a.strided(),
                b.ptr,
                b.strided(),
                c.ptr,
                c.strided(),
                n as i64
            ],
        )
    }
}

/// `value` converted to `d` as the CPU backend converts it (Rust `as`),
/// as the bit pattern the fill kernels store.
fn fill_bits(d: DType, value: f64) -> u64 {
    match d {
        DType::F32 => u64::from((value as f32).to_bits()),
        DType::F64 => value.to_bits(),
        DType::I64 => (value as i64) as u64,
        DType::U8 => u64::from(value as u8),
    }
}

fn fill(ctx: &mut Ctx<'_>, y: &View<'_>, value: f64) -> Result<()> {
    let n = y.numel();
    // SAFETY: checked view; matches `fill_b{k}(y, sy, n, bits)`.
    unsafe {
        launch_n(
            ctx,
            by_size("fill", y.dtype),
            n,
            args![y.ptr, y.strided(), n as i64, fill_bits(y.dtype, value)],
        )
    }
}

/// Strided copy of `n = numel(src)` elements of `dtype` between layouts of
/// the same shape. Used by other families to make operands contiguous.
pub(crate) fn copy(
    ctx: &mut Ctx<'_>,
    dtype: DType,
    src: CUdeviceptr,
    ss: &Strided,
    dst: CUdeviceptr,
    ds: &Strided,
) -> Result<()> {
    let n = ds.numel();
    // SAFETY: the callers pass checked views or temporaries sized for the
    // layouts; matches `copy_b{k}(x, sx, y, sy, n)`.
    unsafe {
        launch_n(
            ctx,
            by_size("copy", dtype),
            n,
            args![src, *ss, dst, *ds, n as i64],
        )
    }
}

fn cast(ctx: &mut Ctx<'_>, x: &View<'_>, y: &View<'_>) -> Result<()> {
    same_shape(OpId::Cast, "x", x, y)?;
    if x.dtype == y.dtype {
        return copy(ctx, x.dtype, x.ptr, &x.strided(), y.ptr, &y.strided());
    }
    const NAMES: [[&str; 4]; 4] = [
        [
            "cast_f32_f32",
            "cast_f32_f64",
            "cast_f32_i64",
            "cast_f32_u8",
        ],
        [
            "cast_f64_f32",
            "cast_f64_f64",
            "cast_f64_i64",
            "cast_f64_u8",
        ],
        [
            "cast_i64_f32",
            "cast_i64_f64",
            "cast_i64_i64",
            "cast_i64_u8",
        ],
        ["cast_u8_f32", "cast_u8_f64", "cast_u8_i64", "cast_u8_u8"],
    ];
    let (name, n) = (NAMES[x.dtype as usize][y.dtype as usize], y.numel());
    // SAFETY: checked views; matches `cast_{s}_{d}(x, sx, y, sy, n)`.
    unsafe {
        launch_n(
            ctx,
            name,
            n,
            args![x.ptr, x.strided(), y.ptr, y.strided(), n as i64],
        )
    }
}

/// Each input copied into its slab of the output along `axis`.
fn concat(ctx: &mut Ctx<'_>, ins: &[View<'_>], outs: &[View<'_>], axis: usize) -> Result<()> {
    let op = OpId::Concat;
    if outs.len() != 1 || ins.is_empty() {
        return Err(BackendError::invalid(format!(
            "concat: expected at least 1 input and 1 output, got {} and {}",
            ins.len(),
            outs.len()
        )));
    }
    let y = &outs[0];
    let rank = y.desc.rank();
    if axis >= rank {
        return Err(BackendError::invalid(format!(
            "concat: axis {axis} out of range for rank {rank}"
        )));
    }
    let mut total = 0i64;
    for (k, x) in ins.iter().enumerate() {
        same_dtype(op, &format!("input {k}"), x, y.dtype)?;
        let (xd, yd) = (x.desc.dims(), y.desc.dims());
        if xd.len() != rank || (0..rank).any(|d| d != axis && xd[d] != yd[d]) {
            return Err(BackendError::invalid(format!(
                "concat: input {k} has shape {xd:?}, incompatible with the output {yd:?} along axis {axis}"
            )));
        }
        total += xd[axis];
    }
    if total != y.desc.dims()[axis] {
        return Err(BackendError::invalid(format!(
            "concat: inputs add up to {total} along axis {axis}, the output has {}",
            y.desc.dims()[axis]
        )));
    }
    let mut start = 0i64;
    let esize = y.dtype.size() as u64;
    for x in ins {
        let mut slab = y.strided();
        slab.shape[axis] = x.desc.dims()[axis];
        slab.contiguous = 0;
        let off = (start * y.desc.steps()[axis]) as u64 * esize;
        copy(ctx, y.dtype, x.ptr, &x.strided(), y.ptr + off, &slab)?;
        start += x.desc.dims()[axis];
    }
    Ok(())
}

/// `y [N, K, H*W]` (contiguous) `+= bias [K]`.
pub(crate) fn bias_add(
    ctx: &mut Ctx<'_>,
    dtype: DType,
    y: CUdeviceptr,
    n: usize,
    k: usize,
    hw: usize,
    bias: CUdeviceptr,
) -> Result<()> {
    let total = n * k * hw;
    // SAFETY: the caller passes a contiguous output of `total` elements
    // and a contiguous bias of `k`; matches `bias_add_{t}(y, bias, n, hw, k)`.
    unsafe {
        launch_n(
            ctx,
            kernel("bias_add", dtype)?,
            total,
            args![y, bias, total as i64, hw as i64, k as i64],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_bits_convert_like_rust_as() {
        assert_eq!(fill_bits(DType::F32, 1.5), u64::from(1.5f32.to_bits()));
        assert_eq!(fill_bits(DType::F64, -2.0), (-2.0f64).to_bits());
        assert_eq!(fill_bits(DType::I64, -3.7), (-3i64) as u64);
        assert_eq!(fill_bits(DType::I64, f64::NAN), 0);
        assert_eq!(fill_bits(DType::U8, 300.0), 255);
        assert_eq!(fill_bits(DType::U8, -1.0), 0);
    }

    #[test]
    fn every_kernel_name_exists_in_the_source() {
        for d in DType::ALL {
            for base in ["where", "fill", "copy"] {
                let name = by_size(base, d);
                assert!(ELEMENTWISE.code.contains(&format!("({name},")), "{name}");
            }
        }
        for (base, dtypes) in [
            ("unary", &[DType::F32, DType::F64, DType::I64][..]),
            ("unary_backward", &[DType::F32, DType::F64]),
            ("binary", &[DType::F32, DType::F64, DType::I64]),
            ("compare", &DType::ALL),
            ("bias_add", &[DType::F32, DType::F64]),
        ] {
            for &d in dtypes {
                let name = kernel(base, d).unwrap();
                assert!(
                    ELEMENTWISE.code.contains(&format!(" {name}("))
                        || ELEMENTWISE.code.contains(&format!("({name},")),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn supported_matches_what_execute_accepts() {
        let s = supported();
        assert!(s
            .iter()
            .any(|p| p.op == OpId::Neg as u32 && p.dtype == DType::I64 as u32));
        assert!(!s
            .iter()
            .any(|p| p.op == OpId::Div as u32 && p.dtype == DType::I64 as u32));
        assert!(!s
            .iter()
            .any(|p| p.op == OpId::Exp as u32 && p.dtype == DType::I64 as u32));
    }
}
