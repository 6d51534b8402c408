//! `adamw_step` and `sgd_step` on CUDA: one kernel launch per parameter (`kernels/optim.cu`)
//! instead of the dozen elementwise launches of the composite update, with
//! the CPU backend's contract and arithmetic (`backend-cpu/src/optim.rs`):
//! input `g` (copied to a contiguous temporary when strided), outputs
//! `(p, m, v)` contiguous, one shape, updated in place. The step's scalars
//! are computed in f64 on the host and rounded once, as on the CPU.

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::{check_disjoint, AdamWParams};
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::Ctx;
use crate::kernels::OPTIM;
use crate::launch::args;
use crate::reduce::{check_input, check_output, unsupported, Operand};

/// The (op, dtype) pairs of this family: the CPU's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    crate::pairs(&[OpId::AdamwStep, OpId::SgdStep], &[DType::F32, DType::F64])
}

/// The step's scalars in f64, in kernel argument order after `n`: b1,
/// 1 - b1, b2, 1 - b2, 1 / sqrt(bc2), eps, 1 - lr wd, lr / bc1.
fn scalars(p: &AdamWParams) -> [f64; 8] {
    [
        p.beta1,
        1.0 - p.beta1,
        p.beta2,
        1.0 - p.beta2,
        1.0 / p.bias_correction2.sqrt(),
        p.eps,
        1.0 - p.lr * p.weight_decay,
        p.lr / p.bias_correction1,
    ]
}

/// Runs `adamw_step`.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    if op == OpId::SgdStep {
        // SAFETY: forwarded from the caller.
        return unsafe { sgd(ctx, device, call) };
    }
    if op != OpId::AdamwStep {
        return Err(BackendError::unsupported(format!(
            "cuda optim: {op} is not in this family"
        )));
    }
    crate::elementwise::check_arity(call, 1, 3)?;
    let Params::AdamW(params) = call.params else {
        return Err(BackendError::invalid(format!("{op}: expected AdamWParams")));
    };
    params.check()?;
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { crate::elementwise::views(call, device)? };
    let (g, p, m, v) = (&ins[0], &outs[0], &outs[1], &outs[2]);
    let dtype = p.dtype;
    if !dtype.is_float() {
        return Err(unsupported(op, dtype));
    }
    let shape = p.dims();
    check_input(op, "g", g, dtype, &shape)?;
    for (what, t) in [("p", p), ("m", m), ("v", v)] {
        check_output(op, what, t, dtype, &shape)?;
    }
    let n = p.numel();
    if n == 0 {
        return Ok(());
    }
    let bytes = (n * dtype.size()) as u64;
    let g_addr = g.is_contiguous().then_some(g.ptr);
    check_disjoint(
        op.name(),
        bytes,
        g_addr,
        &[("p", p.ptr), ("m", m.ptr), ("v", v.ptr)],
    )?;
    let gc = Operand::contiguous(ctx, g)?;
    let n64 = n as i64;
    let c = scalars(&params);
    let grid = crate::elementwise::grid(ctx, n);
    let r = (|| {
        if dtype == DType::F64 {
            let f = ctx.function(&OPTIM, "adamw_f64")?;
            let [b1, c1, b2, c2, isb, eps, decay, step] = c;
            // SAFETY: p, m, v and the contiguous g hold n elements each on
            // this device (checked views); matches `adamw_f64(p, m, v, g,
            // n, b1, c1, b2, c2, inv_sqrt_bc2, eps, decay, step)`.
            unsafe {
                ctx.launch(
                    f,
                    grid,
                    (crate::elementwise::BLOCK, 1, 1),
                    0,
                    args![p.ptr, m.ptr, v.ptr, gc.ptr, n64, b1, c1, b2, c2, isb, eps, decay, step],
                )
            }
        } else {
            let f = ctx.function(&OPTIM, "adamw_f32")?;
            let [b1, c1, b2, c2, isb, eps, decay, step] = c.map(|x| x as f32);
            // SAFETY: as above, with f32 scalars for `adamw_f32`.
            unsafe {
                ctx.launch(
                    f,
                    grid,
                    (crate::elementwise::BLOCK, 1, 1),
                    0,
                    args![p.ptr, m.ptr, v.ptr, gc.ptr, n64, b1, c1, b2, c2, isb, eps, decay, step],
                )
            }
        }
    })();
    gc.release(ctx);
    r
}

/// Runs `sgd_step`: inputs `g`, outputs `(p, buf)` (buf untouched without
/// momentum).
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
unsafe fn sgd(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    crate::elementwise::check_arity(call, 1, 2)?;
    let Params::Sgd(params) = call.params else {
        return Err(BackendError::invalid(format!("{op}: expected SgdParams")));
    };
    params.check()?;
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { crate::elementwise::views(call, device)? };
    let (g, p, buf) = (&ins[0], &outs[0], &outs[1]);
    let dtype = p.dtype;
    if !dtype.is_float() {
        return Err(unsupported(op, dtype));
    }
    let momentum = params.momentum != 0.0;
    let shape = p.dims();
    check_input(op, "g", g, dtype, &shape)?;
    check_output(op, "p", p, dtype, &shape)?;
    if momentum {
        check_output(op, "buf", buf, dtype, &shape)?;
    }
    let n = p.numel();
    if n == 0 {
        return Ok(());
    }
    let bytes = (n * dtype.size()) as u64;
    let g_addr = g.is_contiguous().then_some(g.ptr);
    let outs_addrs = [("p", p.ptr), ("buf", buf.ptr)];
    let in_place = if momentum {
        &outs_addrs[..]
    } else {
        &outs_addrs[..1]
    };
    check_disjoint(op.name(), bytes, g_addr, in_place)?;
    let flags = i32::from(params.weight_decay != 0.0)
        | (i32::from(momentum) << 1)
        | (i32::from(params.nesterov == 1) << 2)
        | (i32::from(params.first_step == 1) << 3);
    let buf_ptr = if momentum { buf.ptr } else { p.ptr };
    let gc = Operand::contiguous(ctx, g)?;
    let n64 = n as i64;
    let c = [
        params.weight_decay,
        params.momentum,
        1.0 - params.dampening,
        params.lr,
    ];
    let grid = crate::elementwise::grid(ctx, n);
    let r = (|| {
        if dtype == DType::F64 {
            let f = ctx.function(&OPTIM, "sgd_f64")?;
            let [wd, mom, omd, lr] = c;
            // SAFETY: p, buf (with momentum) and the contiguous g hold n
            // elements each on this device; matches `sgd_f64(p, buf, g, n,
            // wd, momentum, one_minus_damp, lr, flags)`.
            unsafe {
                ctx.launch(
                    f,
                    grid,
                    (crate::elementwise::BLOCK, 1, 1),
                    0,
                    args![p.ptr, buf_ptr, gc.ptr, n64, wd, mom, omd, lr, flags],
                )
            }
        } else {
            let f = ctx.function(&OPTIM, "sgd_f32")?;
            let [wd, mom, omd, lr] = c.map(|x| x as f32);
            // SAFETY: as above, with f32 scalars for `sgd_f32`.
            unsafe {
                ctx.launch(
                    f,
                    grid,
                    (crate::elementwise::BLOCK, 1, 1),
                    0,
                    args![p.ptr, buf_ptr, gc.ptr, n64, wd, mom, omd, lr, flags],
                )
            }
        }
    })();
    gc.release(ctx);
    r
}
