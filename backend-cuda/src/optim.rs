//! `adamw_step`, `sgd_step` and their multi-tensor forms `adamw_step_multi`
//! and `sgd_step_multi` on CUDA (`kernels/optim.cu`): one launch steps up
//! to [`MULTI_MAX`] parameters (grid `y` picks the parameter, grid `x`
//! strides over its elements), instead of the dozen elementwise launches
//! per parameter of the composite update. The CPU backend's contract and
//! arithmetic (`backend-cpu/src/optim.rs`): inputs the gradients (each
//! copied to a contiguous temporary when strided), outputs `(p, m, v)` or
//! `(p, buf)` per parameter, contiguous, updated in place; every
//! parameter is checked before anything is queued. The step's scalars are
//! computed in f64 on the host and rounded once, as on the CPU.

use cudarc::driver::sys::CUdeviceptr;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::{
    check_disjoint, check_ranges_disjoint, multi_step_count, AdamWParams,
};
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::device::Ctx;
use crate::kernels::OPTIM;
use crate::launch::{args, View};
use crate::reduce::{check_input, check_output, unsupported};

/// The (op, dtype) pairs of this family: the CPU's.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    crate::pairs(
        &[
            OpId::AdamwStep,
            OpId::SgdStep,
            OpId::AdamwStepMulti,
            OpId::SgdStepMulti,
        ],
        &[DType::F32, DType::F64],
    )
}

/// Parameters per launch: `struct SrMulti` in `optim.cu` (1288 bytes of
/// kernel parameters, well inside the 4 KiB every CUDA device takes).
pub(crate) const MULTI_MAX: usize = 32;

/// The kernel's `SrMulti<T>`: per parameter the addresses of `p`, `m`,
/// `v` (SGD: `buf` and unused) and the contiguous `g`, and its length.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Multi {
    p: [CUdeviceptr; MULTI_MAX],
    m: [CUdeviceptr; MULTI_MAX],
    v: [CUdeviceptr; MULTI_MAX],
    g: [CUdeviceptr; MULTI_MAX],
    n: [i64; MULTI_MAX],
    count: i32,
    reserved: i32,
}

/// The step's scalars in f64, in kernel argument order after the
/// tensors: b1, 1 - b1, b2, 1 - b2, 1 / sqrt(bc2), eps, 1 - lr wd,
/// lr / bc1.
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

/// The scalars of a step, as [`scalars`] gives AdamW's; SGD's are weight
/// decay, momentum, 1 - dampening, lr, and the flags (bit 0 weight decay,
/// bit 1 momentum, bit 2 Nesterov, bit 3 first step).
enum Scalars {
    Adam([f64; 8]),
    Sgd([f64; 4], i32),
}

/// One checked parameter: its gradient, its `used` outputs (p first),
/// its length.
struct Param<'a> {
    g: &'a View<'a>,
    outs: Vec<CUdeviceptr>,
    n: usize,
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let Some((adam, multi)) = op.optimizer_step() else {
        return Err(BackendError::unsupported(format!(
            "cuda optim: {op} is not in this family"
        )));
    };
    let per = if adam { 3 } else { 2 };
    if multi {
        multi_step_count(op.name(), call.inputs.len(), call.outputs.len(), per)?;
    } else {
        crate::elementwise::check_arity(call, 1, per)?;
    }
    // The kernel's scalars (f64, rounded to f32 for f32) and how many
    // outputs of each parameter it touches.
    let (c, used) = match (call.params, adam) {
        (Params::AdamW(p), true) => {
            p.check()?;
            (Scalars::Adam(scalars(&p)), 3)
        }
        (Params::Sgd(p), false) => {
            p.check()?;
            let momentum = p.momentum != 0.0;
            let flags = i32::from(p.weight_decay != 0.0)
                | (i32::from(momentum) << 1)
                | (i32::from(p.nesterov == 1) << 2)
                | (i32::from(p.first_step == 1) << 3);
            let c = [p.weight_decay, p.momentum, 1.0 - p.dampening, p.lr];
            (Scalars::Sgd(c, flags), if momentum { 2 } else { 1 })
        }
        _ => {
            return Err(BackendError::invalid(format!(
                "{op}: expected {}",
                if adam { "AdamWParams" } else { "SgdParams" }
            )))
        }
    };
    // SAFETY: forwarded from the caller.
    let (ins, outs) = unsafe { crate::elementwise::views(call, device)? };
    let params = checked(op, &ins, &outs, per, used)?;
    let dtype = outs[0].dtype;
    let mut r = Ok(());
    for batch in params.chunks(MULTI_MAX) {
        // SAFETY: every address in the batch is a checked view of this device.
        r = unsafe { launch(ctx, &c, dtype, batch) };
        if r.is_err() {
            break;
        }
    }
    r
}

/// Checks every parameter of the call as the single op checks one, and
/// the parameters against each other (nothing shared between two).
fn checked<'a>(
    op: OpId,
    ins: &'a [View<'a>],
    outs: &'a [View<'a>],
    per: usize,
    used: usize,
) -> Result<Vec<Param<'a>>> {
    let names = ["p", if per == 3 { "m" } else { "buf" }, "v"];
    let dtype = outs[0].dtype;
    if !dtype.is_float() {
        return Err(unsupported(op, dtype));
    }
    let count = ins.len();
    let mut params = Vec::with_capacity(count);
    let mut ranges = Vec::new();
    for (i, g) in ins.iter().enumerate() {
        let at = |e: BackendError| {
            if count == 1 {
                e
            } else {
                BackendError::invalid(format!("{} (parameter {i})", e.message))
            }
        };
        let mine = &outs[i * per..i * per + used];
        let shape = mine[0].dims();
        check_input(op, "g", g, dtype, &shape).map_err(at)?;
        for (what, t) in names.iter().zip(mine) {
            check_output(op, what, t, dtype, &shape).map_err(at)?;
        }
        let n = mine[0].numel();
        let bytes = (n * dtype.size()) as u64;
        let g_addr = g.is_contiguous().then_some(g.ptr);
        let addrs: Vec<(&str, u64)> = names
            .iter()
            .copied()
            .zip(mine.iter().map(|t| t.ptr))
            .collect();
        check_disjoint(op.name(), bytes, g_addr, &addrs).map_err(at)?;
        if count > 1 {
            for (what, t) in names.iter().zip(mine) {
                ranges.push((format!("{what} of parameter {i}"), t.ptr, bytes));
            }
            if let Some(a) = g_addr {
                ranges.push((format!("g of parameter {i}"), a, bytes));
            }
        }
        params.push(Param {
            g,
            outs: mine.iter().map(|t| t.ptr).collect(),
            n,
        });
    }
    check_ranges_disjoint(op.name(), &ranges)?;
    Ok(params)
}

/// Queues one launch of `adamw_multi_*` or `sgd_multi_*` over `batch`,
/// with contiguous copies of its strided gradients.
///
/// # Safety
/// Every address in `batch` is a live, checked view of this device.
unsafe fn launch(ctx: &mut Ctx<'_>, c: &Scalars, dtype: DType, batch: &[Param<'_>]) -> Result<()> {
    let live: Vec<&Param<'_>> = batch.iter().filter(|p| p.n > 0).collect();
    if live.is_empty() {
        return Ok(());
    }
    let views: Vec<&View<'_>> = live.iter().map(|p| p.g).collect();
    let grads = crate::reduce::contiguous_all(ctx, &views)?;
    let mut t = Multi {
        p: [0; MULTI_MAX],
        m: [0; MULTI_MAX],
        v: [0; MULTI_MAX],
        g: [0; MULTI_MAX],
        n: [0; MULTI_MAX],
        count: live.len() as i32,
        reserved: 0,
    };
    for (k, (p, g)) in live.iter().zip(&grads).enumerate() {
        // Outputs a kernel does not touch point at p (never dereferenced).
        let out = |j: usize| p.outs.get(j).copied().unwrap_or(p.outs[0]);
        (t.p[k], t.m[k], t.v[k], t.g[k], t.n[k]) = (out(0), out(1), out(2), g.ptr, p.n as i64);
    }
    let longest = live.iter().map(|p| p.n).max().unwrap_or(0);
    let (gx, _, _) = crate::elementwise::grid(ctx, longest);
    let grid = (gx, live.len() as u32, 1);
    let block = (crate::elementwise::BLOCK, 1, 1);
    let wide = dtype == DType::F64;
    let name = match (c, wide) {
        (Scalars::Adam(_), false) => "adamw_multi_f32",
        (Scalars::Adam(_), true) => "adamw_multi_f64",
        (Scalars::Sgd(..), false) => "sgd_multi_f32",
        (Scalars::Sgd(..), true) => "sgd_multi_f64",
    };
    let r = ctx.function(&OPTIM, name).and_then(|f| {
        // SAFETY: `t` names `count` live parameters of this
        // device, each with `n` elements in g and in the outputs the
        // kernel touches; the scalars match `adamw_multi_*(t, b1, c1, b2,
        // c2, inv_sqrt_bc2, eps, decay, step)` and `sgd_multi_*(t, wd,
        // momentum, one_minus_damp, lr, flags)`, in the dtype's width.
        unsafe {
            match *c {
                Scalars::Adam([b1, c1, b2, c2, isb, eps, decay, step]) if wide => ctx.launch(
                    f,
                    grid,
                    block,
                    0,
                    args![t, b1, c1, b2, c2, isb, eps, decay, step],
                ),
                Scalars::Adam(s) => {
                    let [b1, c1, b2, c2, isb, eps, decay, step] = s.map(|x| x as f32);
                    ctx.launch(
                        f,
                        grid,
                        block,
                        0,
                        args![t, b1, c1, b2, c2, isb, eps, decay, step],
                    )
                }
                Scalars::Sgd([wd, mom, omd, lr], flags) if wide => {
                    ctx.launch(f, grid, block, 0, args![t, wd, mom, omd, lr, flags])
                }
                Scalars::Sgd(s, flags) => {
                    let [wd, mom, omd, lr] = s.map(|x| x as f32);
                    ctx.launch(f, grid, block, 0, args![t, wd, mom, omd, lr, flags])
                }
            }
        }
    });
    crate::reduce::release_all(ctx, grads);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_matches_the_c_struct() {
        // struct SrMulti { T* p[32]; T* m[32]; T* v[32]; const T* g[32];
        //                  long long n[32]; int count; int reserved; }
        assert_eq!(std::mem::size_of::<Multi>(), 5 * 8 * MULTI_MAX + 8);
        assert_eq!(std::mem::offset_of!(Multi, g), 3 * 8 * MULTI_MAX);
        assert_eq!(std::mem::offset_of!(Multi, count), 5 * 8 * MULTI_MAX);
    }
}
