//! Op family `optim`: `adamw_step`, one AdamW update of one parameter in a
//! single pass over `g`, `p`, `m` and `v` (the composite form costs about
//! fourteen elementwise passes and a copy per parameter), `sgd_step`, one
//! SGD update (weight decay, momentum, Nesterov) over `g`, `p`, `buf`, and
//! their multi-tensor forms `adamw_step_multi` and `sgd_step_multi`, the
//! same updates of every parameter of an optimizer in one call.
//!
//! Per element, in the tensors' dtype, with the scalars computed in f64
//! and rounded once (the same operations, in the same order, as the core's
//! composite AdamW, so both give the same bits):
//! `m = m b1 + g (1 - b1)`, `v = v b2 + (g g) (1 - b2)`,
//! `p = p (1 - lr wd) - (m / (sqrt(v) (1 / sqrt(bc2)) + eps)) (lr / bc1)`.
//! For SGD: `d = g + p wd`; with momentum `buf = d` (first step) or
//! `buf = buf momentum + d (1 - dampening)`, then `d = d + buf momentum`
//! (Nesterov) or `d = buf`; `p = p - d lr`.
//! Every parameter of a call is checked before any is written; the
//! updates are cut into chunks of [`CHUNK`] elements, split over the pool
//! when the call's parameters hold enough elements together.

use std::borrow::Cow;

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::{check_ranges_disjoint, multi_step_count, AdamWParams, SgdParams};
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Float;
use crate::reduce::{dtype_of, pairs, unsupported_dtype};
use crate::strided::{check_arity, View};
use crate::threads;

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    pairs(
        &[
            OpId::AdamwStep,
            OpId::SgdStep,
            OpId::AdamwStepMulti,
            OpId::SgdStepMulti,
        ],
        &[DType::F32, DType::F64],
    )
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let Some((adam, multi)) = op.optimizer_step() else {
        return Err(BackendError::unsupported(format!(
            "cpu optim: {op} is not an optimizer op"
        )));
    };
    let per = if adam { 3 } else { 2 };
    let (ins, outs) = (call.inputs.len(), call.outputs.len());
    if multi {
        multi_step_count(op.name(), ins, outs, per)?;
    } else {
        check_arity(op.name(), ins, outs, 1, per)?;
    }
    let dtype = dtype_of(op, "g", &call.inputs[0])?;
    match call.params {
        Params::AdamW(p) if adam => {
            p.check()?;
            // SAFETY: forwarded from the caller.
            unsafe {
                match dtype {
                    DType::F32 => adamw::<f32>(call, &p),
                    DType::F64 => adamw::<f64>(call, &p),
                    other => Err(unsupported_dtype(op, other)),
                }
            }
        }
        Params::Sgd(p) if !adam => {
            p.check()?;
            // SAFETY: forwarded from the caller.
            unsafe {
                match dtype {
                    DType::F32 => sgd::<f32>(call, &p),
                    DType::F64 => sgd::<f64>(call, &p),
                    other => Err(unsupported_dtype(op, other)),
                }
            }
        }
        _ => Err(BackendError::invalid(format!(
            "{op}: expected {}",
            if adam { "AdamWParams" } else { "SgdParams" }
        ))),
    }
}

/// Checks the in-place outputs of an optimizer op against `g` (one shape,
/// contiguous, not overlapping each other or `g`).
fn check_in_place<T: Float>(name: &str, g: &View<T>, outs: &[(&str, &View<T>)]) -> Result<()> {
    let p = outs[0].1;
    for (what, t) in std::iter::once(("g", g)).chain(outs.iter().copied()) {
        if t.shape != p.shape {
            return Err(BackendError::invalid(format!(
                "{name}: {what} {:?} must have p's shape {:?}",
                t.shape, p.shape
            )));
        }
    }
    for (what, t) in outs {
        if !t.is_contiguous() {
            return Err(BackendError::invalid(format!(
                "{name}: {what} must be contiguous (it is updated in place)"
            )));
        }
    }
    let bytes = (p.numel() * std::mem::size_of::<T>()) as u64;
    let addrs: Vec<(&str, u64)> = outs.iter().map(|(w, t)| (*w, t.ptr as u64)).collect();
    let g_addr = g.is_contiguous().then_some(g.ptr as u64);
    sunrise_backend_api::ops::check_disjoint(name, bytes, g_addr, &addrs)
}

/// The checked parameters of one call: for each, its raw pointers and
/// length (`m` and `v` stand for SGD's `buf`, or for `p` where a tensor
/// is not touched), plus the contiguous gradients those pointers borrow.
struct Jobs<'g, T: Clone> {
    jobs: Vec<(Ptrs<T>, usize)>,
    _grads: Vec<Cow<'g, [T]>>,
}

/// Reads and checks every parameter of `call` (`names` are the outputs of
/// one parameter, `used` of them touched), each as the single op checks
/// it and, with several, against each other (no output of one overlaps
/// any tensor of another).
///
/// # Safety
/// As [`execute`], with dtype `T`.
unsafe fn jobs<'g, T: Float>(
    call: &OpCall<'_>,
    names: &[&str],
    used: usize,
) -> Result<Jobs<'g, T>> {
    let op = call.op.name();
    let n = call.inputs.len();
    let per = names.len();
    let mut views = Vec::with_capacity(n);
    let mut ranges = Vec::new();
    for i in 0..n {
        let label = if n == 1 {
            op.to_string()
        } else {
            format!("{op} (parameter {i})")
        };
        // SAFETY: the descriptors name live buffers, per the caller.
        let g = unsafe { View::<T>::new(&call.inputs[i]) }?;
        let outs = (0..per)
            // SAFETY: as above.
            .map(|k| unsafe { View::<T>::new(&call.outputs[i * per + k]) })
            .collect::<Result<Vec<_>>>()?;
        let named: Vec<(&str, &View<T>)> = names.iter().copied().zip(&outs).take(used).collect();
        check_in_place(&label, &g, &named)?;
        let bytes = (g.numel() * std::mem::size_of::<T>()) as u64;
        if n > 1 {
            for (what, t) in &named {
                ranges.push((format!("{what} of parameter {i}"), t.ptr as u64, bytes));
            }
            if g.is_contiguous() {
                ranges.push((format!("g of parameter {i}"), g.ptr as u64, bytes));
            }
        }
        views.push((g, outs));
    }
    check_ranges_disjoint(op, &ranges)?;
    let mut grads = Vec::with_capacity(n);
    let mut jobs = Vec::with_capacity(n);
    for (g, outs) in &views {
        // SAFETY: nothing writes g during the op (it overlaps none of the
        // outputs when contiguous; a strided g is copied).
        let elems: Cow<'g, [T]> = unsafe { g.contiguous() };
        let p = outs[0].ptr;
        let at = |k: usize| if k < used { outs[k].ptr } else { p };
        jobs.push((
            Ptrs {
                p,
                m: at(1),
                v: at(2.min(per - 1)),
                g: elems.as_ptr(),
            },
            g.numel(),
        ));
        grads.push(elems);
    }
    Ok(Jobs {
        jobs,
        _grads: grads,
    })
}

impl<T: Float> Jobs<'_, T> {
    /// Runs `f(ptrs, start, len)` over every parameter's elements, in
    /// chunks of [`CHUNK`] split over the pool when the parameters hold
    /// enough elements together, else in one piece per parameter on this
    /// thread.
    fn run(&self, f: impl Fn(Ptrs<T>, usize, usize) + Sync) {
        let total: usize = self.jobs.iter().map(|j| j.1).sum();
        if !threads::split(total) {
            for &(ptrs, n) in &self.jobs {
                if n > 0 {
                    f(ptrs, 0, n);
                }
            }
            return;
        }
        let chunks: Vec<(usize, usize)> = self
            .jobs
            .iter()
            .enumerate()
            .flat_map(|(j, &(_, n))| (0..n.div_ceil(CHUNK)).map(move |c| (j, c * CHUNK)))
            .collect();
        let jobs = &self.jobs;
        threads::for_each_index(chunks.len(), |i| {
            let (j, start) = chunks[i];
            let (ptrs, n) = jobs[j];
            f(ptrs, start, CHUNK.min(n - start));
        });
    }
}

/// # Safety
/// As [`execute`], with dtype `T`.
unsafe fn sgd<T: Float>(call: &OpCall<'_>, params: &SgdParams) -> Result<()> {
    let momentum = params.momentum != 0.0;
    // SAFETY: forwarded from the caller.
    let jobs = unsafe { jobs::<T>(call, &["p", "buf"], if momentum { 2 } else { 1 }) }?;
    let c = SgdConsts::<T> {
        wd: T::from_f64(params.weight_decay),
        momentum: T::from_f64(params.momentum),
        one_minus_damp: T::from_f64(1.0 - params.dampening),
        lr: T::from_f64(params.lr),
        decay: params.weight_decay != 0.0,
        with_momentum: momentum,
        nesterov: params.nesterov == 1,
        first: params.first_step == 1,
    };
    let k = Kernels::<T>::for_tier(crate::isa::tier());
    jobs.run(|ptrs, start, len| {
        // SAFETY: chunk `[start, start + len)` of one parameter's tensors,
        // disjoint from the other chunks; p and buf overlap nothing else;
        // buf is only touched with momentum; `k` is for this CPU's tier.
        unsafe {
            let p = std::slice::from_raw_parts_mut(ptrs.p.add(start), len);
            let g = std::slice::from_raw_parts(ptrs.g.add(start), len);
            let buf = c
                .with_momentum
                .then(|| std::slice::from_raw_parts_mut(ptrs.m.add(start), len));
            (k.sgd)(p, buf, g, &c)
        }
    });
    Ok(())
}

struct SgdConsts<T> {
    wd: T,
    momentum: T,
    one_minus_damp: T,
    lr: T,
    decay: bool,
    with_momentum: bool,
    nesterov: bool,
    first: bool,
}

/// The SGD update over one chunk, in the core's composite order.
#[inline(always)]
fn sgd_update<T: Float>(p: &mut [T], buf: Option<&mut [T]>, g: &[T], c: &SgdConsts<T>) {
    let step = |p: &mut T, g: T, b: Option<&mut T>| {
        let d = if c.decay { g + *p * c.wd } else { g };
        let d = match b {
            Some(b) => {
                let nb = if c.first {
                    d
                } else {
                    *b * c.momentum + d * c.one_minus_damp
                };
                *b = nb;
                if c.nesterov {
                    d + nb * c.momentum
                } else {
                    nb
                }
            }
            None => d,
        };
        *p = *p - d * c.lr;
    };
    match buf {
        Some(buf) => {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(buf) {
                step(p, g, Some(b));
            }
        }
        None => {
            for (p, &g) in p.iter_mut().zip(g) {
                step(p, g, None);
            }
        }
    }
}

/// Raw element pointers of `p`, `m`, `v` and the gradient, shared by the
/// chunks (each chunk touches only its own range).
struct Ptrs<T> {
    p: *mut T,
    m: *mut T,
    v: *mut T,
    g: *const T,
}

impl<T> Clone for Ptrs<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Ptrs<T> {}

// SAFETY: the chunks write disjoint ranges of buffers that outlive the op.
unsafe impl<T: Send> Send for Ptrs<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Ptrs<T> {}

/// Elements per chunk when the update is split over the pool.
const CHUNK: usize = 1 << 15;

/// # Safety
/// As [`execute`], with dtype `T`.
unsafe fn adamw<T: Float>(call: &OpCall<'_>, params: &AdamWParams) -> Result<()> {
    // SAFETY: forwarded from the caller.
    let jobs = unsafe { jobs::<T>(call, &["p", "m", "v"], 3) }?;
    let c = Consts::<T>::new(params);
    let k = Kernels::<T>::for_tier(crate::isa::tier());
    jobs.run(|ptrs, start, len| {
        // SAFETY: chunk `[start, start + len)` of one parameter's tensors,
        // inside them, disjoint from every other chunk, and p, m, v, g
        // overlap nothing else (checked); `k` is for this CPU's tier.
        unsafe {
            (k.adamw)(
                std::slice::from_raw_parts_mut(ptrs.p.add(start), len),
                std::slice::from_raw_parts_mut(ptrs.m.add(start), len),
                std::slice::from_raw_parts_mut(ptrs.v.add(start), len),
                std::slice::from_raw_parts(ptrs.g.add(start), len),
                &c,
            )
        }
    });
    Ok(())
}

/// The step's scalars, computed in f64 and rounded once to `T`.
struct Consts<T> {
    b1: T,
    one_minus_b1: T,
    b2: T,
    one_minus_b2: T,
    inv_sqrt_bc2: T,
    eps: T,
    decay: T,
    step: T,
}

impl<T: Float> Consts<T> {
    fn new(p: &AdamWParams) -> Self {
        Consts {
            b1: T::from_f64(p.beta1),
            one_minus_b1: T::from_f64(1.0 - p.beta1),
            b2: T::from_f64(p.beta2),
            one_minus_b2: T::from_f64(1.0 - p.beta2),
            inv_sqrt_bc2: T::from_f64(1.0 / p.bias_correction2.sqrt()),
            eps: T::from_f64(p.eps),
            decay: T::from_f64(1.0 - p.lr * p.weight_decay),
            step: T::from_f64(p.lr / p.bias_correction1),
        }
    }
}

/// The update over one chunk.
#[inline(always)]
fn update<T: Float>(p: &mut [T], m: &mut [T], v: &mut [T], g: &[T], c: &Consts<T>) {
    for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
        let mi = *m * c.b1 + g * c.one_minus_b1;
        let vi = *v * c.b2 + (g * g) * c.one_minus_b2;
        *m = mi;
        *v = vi;
        let denom = vi.sqrt() * c.inv_sqrt_bc2 + c.eps;
        *p = *p * c.decay - (mi / denom) * c.step;
    }
}

/// [`update`]'s signature: `(p, m, v, g, consts)`.
type AdamwKernel<T> = unsafe fn(&mut [T], &mut [T], &mut [T], &[T], &Consts<T>);

/// [`sgd_update`]'s signature: `(p, buf, g, consts)`.
type SgdKernel<T> = unsafe fn(&mut [T], Option<&mut [T]>, &[T], &SgdConsts<T>);

/// [`update`] and [`sgd_update`] compiled for one tier: the same
/// operations in the same order (Rust never fuses a multiply and an add by
/// itself, and square root and division are correctly rounded at every
/// width), so the same bits on every tier, only wider vectors.
#[derive(Clone, Copy)]
struct Kernels<T: 'static> {
    adamw: AdamwKernel<T>,
    sgd: SgdKernel<T>,
}

#[cfg(target_arch = "x86_64")]
mod tiers {
    use super::{sgd_update, update, Consts, Float, SgdConsts};

    macro_rules! tier {
        ($feat:literal, $adamw:ident, $sgd:ident) => {
            #[doc = concat!("`update` compiled for `", $feat, "`.")]
            ///
            /// # Safety
            /// The CPU supports the features named above.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $adamw<T: Float>(
                p: &mut [T],
                m: &mut [T],
                v: &mut [T],
                g: &[T],
                c: &Consts<T>,
            ) {
                update(p, m, v, g, c)
            }

            #[doc = concat!("`sgd_update` compiled for `", $feat, "`.")]
            ///
            /// # Safety
            /// The CPU supports the features named above.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $sgd<T: Float>(
                p: &mut [T],
                buf: Option<&mut [T]>,
                g: &[T],
                c: &SgdConsts<T>,
            ) {
                sgd_update(p, buf, g, c)
            }
        };
    }
    tier!("avx2", avx2_adamw, avx2_sgd);
    tier!("avx512f", avx512_adamw, avx512_sgd);
}

impl<T: Float> Kernels<T> {
    /// The kernels for tier `isa` (the baseline build's below AVX2).
    fn for_tier(isa: crate::isa::Isa) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::isa::Isa;
            match isa {
                Isa::Avx512 => {
                    return Kernels {
                        adamw: tiers::avx512_adamw::<T>,
                        sgd: tiers::avx512_sgd::<T>,
                    }
                }
                Isa::Avx2 => {
                    return Kernels {
                        adamw: tiers::avx2_adamw::<T>,
                        sgd: tiers::avx2_sgd::<T>,
                    }
                }
                _ => {}
            }
        }
        let _ = isa;
        Kernels {
            adamw: |p, m, v, g, c| update(p, m, v, g, c),
            sgd: |p, b, g, c| sgd_update(p, b, g, c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run, HostTensor};
    use sunrise_backend_api::abi::SrTensorDesc;

    fn params(step: i32) -> AdamWParams {
        let (b1, b2): (f64, f64) = (0.9, 0.999);
        AdamWParams {
            struct_size: AdamWParams::SIZE,
            lr: 1e-3,
            beta1: b1,
            beta2: b2,
            eps: 1e-8,
            weight_decay: 0.01,
            bias_correction1: 1.0 - b1.powi(step),
            bias_correction2: 1.0 - b2.powi(step),
        }
    }

    /// The same update in f64, element by element.
    fn reference(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], a: &AdamWParams) {
        for i in 0..p.len() {
            m[i] = a.beta1 * m[i] + (1.0 - a.beta1) * g[i];
            v[i] = a.beta2 * v[i] + (1.0 - a.beta2) * g[i] * g[i];
            let denom = v[i].sqrt() / a.bias_correction2.sqrt() + a.eps;
            p[i] = p[i] * (1.0 - a.lr * a.weight_decay) - a.lr / a.bias_correction1 * m[i] / denom;
        }
    }

    fn step(g: &HostTensor, pmv: [&HostTensor; 3], a: AdamWParams) -> Result<()> {
        run(OpId::AdamwStep, Params::AdamW(a), &[g], &pmv)
    }

    fn values(n: usize, seed: u64) -> Vec<f64> {
        (0..n as u64)
            .map(|i| ((i * 2654435761 + seed * 97) % 1000) as f64 / 500.0 - 1.0)
            .collect()
    }

    fn f32s(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    #[test]
    fn matches_the_f64_reference_over_steps_sizes_and_a_strided_g() {
        for n in [1usize, 7, 1000, 3 * CHUNK + 5] {
            let (mut rp, mut rm, mut rv) = (values(n, 1), vec![0.0; n], vec![0.0; n]);
            let p = HostTensor::new(&f32s(&rp), &[n]);
            let (m, v) = (
                HostTensor::zeros::<f32>(&[n]),
                HostTensor::zeros::<f32>(&[n]),
            );
            for t in 1..=3 {
                let gv = values(n, t as u64 + 10);
                // Even steps: g is every other element of a 2n backing.
                let g = if t % 2 == 0 {
                    let backing: Vec<f32> = f32s(&gv).into_iter().flat_map(|x| [x, 9.0]).collect();
                    HostTensor::strided(&backing, &[n], &[2], 0)
                } else {
                    HostTensor::new(&f32s(&gv), &[n])
                };
                step(&g, [&p, &m, &v], params(t)).unwrap();
                reference(&mut rp, &mut rm, &mut rv, &gv, &params(t));
            }
            for (got, want) in p.read::<f32>().iter().zip(&rp) {
                assert!(
                    (*got as f64 - want).abs() < 1e-6,
                    "n {n}: p {got} vs {want}"
                );
            }
            for (got, want) in m.read::<f32>().iter().zip(&rm) {
                assert!(
                    (*got as f64 - want).abs() < 1e-6,
                    "n {n}: m {got} vs {want}"
                );
            }
            for (got, want) in v.read::<f32>().iter().zip(&rv) {
                assert!(
                    (*got as f64 - want).abs() < 1e-6,
                    "n {n}: v {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn f64_agrees_with_the_reference_closely() {
        let n = 100;
        let (mut rp, mut rm, mut rv) = (values(n, 3), vec![0.0; n], vec![0.0; n]);
        let p = HostTensor::new(&rp, &[n]);
        let (m, v) = (
            HostTensor::zeros::<f64>(&[n]),
            HostTensor::zeros::<f64>(&[n]),
        );
        let gv = values(n, 4);
        let g = HostTensor::new(&gv, &[n]);
        step(&g, [&p, &m, &v], params(1)).unwrap();
        reference(&mut rp, &mut rm, &mut rv, &gv, &params(1));
        for (got, want) in p.read::<f64>().iter().zip(&rp) {
            assert!((got - want).abs() < 1e-14, "{got} vs {want}");
        }
    }

    #[test]
    fn bad_calls_are_refused_before_anything_is_written() {
        let n = 8;
        let p = HostTensor::new(&[1.0f32; 8], &[n]);
        let (m, v) = (
            HostTensor::zeros::<f32>(&[n]),
            HostTensor::zeros::<f32>(&[n]),
        );
        let g = HostTensor::new(&[1.0f32; 8], &[n]);
        for bad in [
            AdamWParams {
                beta1: 1.0,
                ..params(1)
            },
            AdamWParams {
                bias_correction2: 0.0,
                ..params(1)
            },
            AdamWParams {
                lr: f64::NAN,
                ..params(1)
            },
        ] {
            let e = step(&g, [&p, &m, &v], bad).unwrap_err();
            assert_eq!(
                e.code,
                sunrise_backend_api::StatusCode::InvalidArgument,
                "{e}"
            );
        }
        // A shape mismatch, aliased outputs, a strided output, a wrong dtype.
        let g4 = HostTensor::new(&[1.0f32; 4], &[4]);
        assert!(step(&g4, [&p, &m, &v], params(1)).is_err());
        assert!(step(&g, [&p, &p, &v], params(1)).is_err());
        let strided = HostTensor::strided(&[0.0f32; 16], &[n], &[2], 0);
        assert!(step(&g, [&strided, &m, &v], params(1)).is_err());
        let gi = HostTensor::new(&[1i64; 8], &[n]);
        assert!(step(&gi, [&p, &m, &v], params(1)).is_err());
        assert_eq!(p.read::<f32>(), vec![1.0; 8], "nothing was written");
        step(&g, [&p, &m, &v], params(1)).unwrap();
        assert!(p.read::<f32>().iter().all(|&x| x < 1.0));
    }

    fn sgd_params(momentum: f64, nesterov: bool, first: bool) -> SgdParams {
        SgdParams {
            struct_size: SgdParams::SIZE,
            lr: 0.1,
            momentum,
            dampening: if nesterov { 0.0 } else { 0.25 },
            weight_decay: 0.01,
            nesterov: nesterov as u32,
            first_step: first as u32,
        }
    }

    fn sgd_reference(p: &mut [f64], buf: &mut [f64], g: &[f64], a: &SgdParams) {
        for i in 0..p.len() {
            let mut d = g[i] + a.weight_decay * p[i];
            if a.momentum != 0.0 {
                buf[i] = if a.first_step == 1 {
                    d
                } else {
                    a.momentum * buf[i] + (1.0 - a.dampening) * d
                };
                d = if a.nesterov == 1 {
                    d + a.momentum * buf[i]
                } else {
                    buf[i]
                };
            }
            p[i] -= a.lr * d;
        }
    }

    #[test]
    fn sgd_matches_the_reference_with_and_without_momentum_and_nesterov() {
        for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
            for n in [5usize, 3 * CHUNK + 1] {
                let (mut rp, mut rb) = (values(n, 7), vec![0.0; n]);
                let p = HostTensor::new(&rp, &[n]);
                let buf = HostTensor::zeros::<f64>(&[n]);
                for t in 0..3 {
                    let gv = values(n, 20 + t);
                    let g = HostTensor::new(&gv, &[n]);
                    let a = sgd_params(momentum, nesterov, t == 0);
                    run(OpId::SgdStep, Params::Sgd(a), &[&g], &[&p, &buf]).unwrap();
                    sgd_reference(&mut rp, &mut rb, &gv, &a);
                }
                for (got, want) in p.read::<f64>().iter().zip(&rp) {
                    assert!(
                        (got - want).abs() < 1e-12,
                        "m {momentum} n {n}: {got} vs {want}"
                    );
                }
                if momentum == 0.0 {
                    assert!(buf.read::<f64>().iter().all(|&b| b == 0.0), "buf untouched");
                }
            }
        }
        // Nesterov without momentum, a bad flag, aliased outputs.
        let (p, b, g) = (
            HostTensor::new(&[1.0f32; 4], &[4]),
            HostTensor::zeros::<f32>(&[4]),
            HostTensor::new(&[1.0f32; 4], &[4]),
        );
        let bad = SgdParams {
            momentum: 0.0,
            ..sgd_params(0.9, true, true)
        };
        assert!(run(OpId::SgdStep, Params::Sgd(bad), &[&g], &[&p, &b]).is_err());
        let bad = SgdParams {
            first_step: 2,
            ..sgd_params(0.9, false, true)
        };
        assert!(run(OpId::SgdStep, Params::Sgd(bad), &[&g], &[&p, &b]).is_err());
        let a = sgd_params(0.9, false, true);
        assert!(run(OpId::SgdStep, Params::Sgd(a), &[&g], &[&p, &p]).is_err());
        assert_eq!(p.read::<f32>(), vec![1.0; 4], "nothing was written");
    }

    /// Runs `op` on raw descriptors (so that a test can alias buffers).
    fn run_descs(
        op: OpId,
        params: Params,
        ins: &[SrTensorDesc],
        outs: &[SrTensorDesc],
    ) -> Result<()> {
        use sunrise_backend_api::Backend;
        let call = OpCall {
            op,
            params,
            inputs: ins,
            outputs: outs,
        };
        // SAFETY: every descriptor views a live HostTensor buffer of the test.
        unsafe { crate::CpuBackend::new().execute(0, &call) }
    }

    /// Parameters of several sizes (one split over the pool, one empty)
    /// and gradients (one strided), stepped by the multi op and by one
    /// single op per parameter: the same bits.
    #[test]
    fn multi_steps_match_the_single_ops_bit_for_bit() {
        // Together more than PAR_THRESHOLD elements: chunks on the pool.
        let sizes = [7usize, 0, 1000, 4 * CHUNK + 5, 33];
        for adam in [true, false] {
            let per = if adam { 3 } else { 2 };
            let make = || -> Vec<Vec<HostTensor>> {
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| {
                        let mut t = vec![HostTensor::new(&f32s(&values(n, i as u64)), &[n])];
                        t.extend((1..per).map(|_| HostTensor::zeros::<f32>(&[n])));
                        t
                    })
                    .collect()
            };
            let (multi, single) = (make(), make());
            for t in 1..=3 {
                let grads: Vec<HostTensor> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| {
                        let gv = f32s(&values(n, 100 * t + i as u64));
                        if i == 2 {
                            let backing: Vec<f32> = gv.into_iter().flat_map(|x| [x, 9.0]).collect();
                            HostTensor::strided(&backing, &[n], &[2], 0)
                        } else {
                            HostTensor::new(&gv, &[n])
                        }
                    })
                    .collect();
                let params = if adam {
                    Params::AdamW(super::tests::params(t as i32))
                } else {
                    Params::Sgd(sgd_params(0.9, t % 2 == 0, t == 1))
                };
                let (op1, opn) = if adam {
                    (OpId::AdamwStep, OpId::AdamwStepMulti)
                } else {
                    (OpId::SgdStep, OpId::SgdStepMulti)
                };
                let g: Vec<&HostTensor> = grads.iter().collect();
                let outs: Vec<&HostTensor> = multi.iter().flatten().collect();
                run(opn, params, &g, &outs).unwrap();
                for (gi, ts) in grads.iter().zip(&single) {
                    let o: Vec<&HostTensor> = ts.iter().collect();
                    run(op1, params, &[gi], &o).unwrap();
                }
            }
            for (i, (a, b)) in multi
                .iter()
                .flatten()
                .zip(single.iter().flatten())
                .enumerate()
            {
                let (a, b) = (a.read::<f32>(), b.read::<f32>());
                assert!(
                    a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "adam {adam}: tensor {i} differs"
                );
                assert!(a.iter().all(|x| x.is_finite()));
            }
        }
    }

    /// Counts that are not whole groups, a bad parameter after a good one,
    /// and outputs shared between parameters are refused, and nothing of
    /// any parameter is written.
    #[test]
    fn bad_multi_calls_are_refused_before_anything_is_written() {
        let one = |n: usize| {
            (
                HostTensor::new(&vec![1.0f32; n], &[n]),
                HostTensor::new(&vec![0.5f32; n], &[n]),
                HostTensor::zeros::<f32>(&[n]),
                HostTensor::zeros::<f32>(&[n]),
            )
        };
        let (g0, p0, m0, v0) = one(8);
        let (g1, p1, m1, v1) = one(8);
        let a = Params::AdamW(params(1));
        let op = OpId::AdamwStepMulti;
        let e = run(op, a, &[&g0, &g1], &[&p0, &m0, &v0, &p1, &m1]).unwrap_err();
        assert!(e.message.contains("3 outputs for each"), "{e}");
        assert!(run(op, a, &[], &[]).is_err());
        let g_short = HostTensor::new(&[1.0f32; 4], &[4]);
        let e = run(op, a, &[&g0, &g_short], &[&p0, &m0, &v0, &p1, &m1, &v1]).unwrap_err();
        assert!(e.message.contains("parameter 1"), "{e}");
        // Parameter 1's p is parameter 0's v.
        let descs = [p0.desc, m0.desc, v0.desc, v0.desc, m1.desc, v1.desc];
        let e = run_descs(op, a, &[g0.desc, g1.desc], &descs).unwrap_err();
        assert!(e.message.contains("must not overlap"), "{e}");
        // Parameter 1's gradient is parameter 0's m.
        let descs = [p0.desc, m0.desc, v0.desc, p1.desc, m1.desc, v1.desc];
        let e = run_descs(op, a, &[g0.desc, m0.desc], &descs).unwrap_err();
        assert!(e.message.contains("must not overlap"), "{e}");
        // SGD params on the AdamW op.
        let s = Params::Sgd(sgd_params(0.9, false, true));
        assert!(run(op, s, &[&g0], &[&p0, &m0, &v0]).is_err());
        assert_eq!(p0.read::<f32>(), vec![0.5; 8], "nothing was written");
        assert_eq!(m0.read::<f32>(), vec![0.0; 8], "nothing was written");
        run(op, a, &[&g0, &g1], &[&p0, &m0, &v0, &p1, &m1, &v1]).unwrap();
        assert!(p0.read::<f32>().iter().all(|&x| x < 0.5));
        assert_eq!(p0.read::<f32>(), p1.read::<f32>());
    }

    /// Every tier's kernels give the portable kernels' bits (odd lengths
    /// for the vector tails, both dtypes' f32 here, every SGD mode).
    #[test]
    fn tiers_give_the_same_bits() {
        use crate::isa::{available_tiers, Isa};
        let n = 1003;
        let g = f32s(&values(n, 5));
        let c = Consts::<f32>::new(&params(3));
        let run_adam = |isa: Isa| {
            let k = Kernels::<f32>::for_tier(isa);
            let (mut p, mut m, mut v) = (
                f32s(&values(n, 1)),
                f32s(&values(n, 2)),
                f32s(&values(n, 3)),
            );
            v.iter_mut().for_each(|x| *x = x.abs());
            // SAFETY: `available_tiers` lists tiers this CPU runs.
            unsafe { (k.adamw)(&mut p, &mut m, &mut v, &g, &c) };
            [p, m, v].map(|t| t.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        let run_sgd = |isa: Isa, momentum: bool, nesterov: bool, first: bool| {
            let k = Kernels::<f32>::for_tier(isa);
            let c = SgdConsts::<f32> {
                wd: 0.01,
                momentum: 0.9,
                one_minus_damp: 0.75,
                lr: 0.1,
                decay: true,
                with_momentum: momentum,
                nesterov,
                first,
            };
            let (mut p, mut b) = (f32s(&values(n, 1)), f32s(&values(n, 2)));
            // SAFETY: as above.
            unsafe { (k.sgd)(&mut p, momentum.then_some(&mut b[..]), &g, &c) };
            [p, b].map(|t| t.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        let want = run_adam(Isa::Portable);
        for t in available_tiers() {
            assert!(run_adam(t) == want, "adamw, tier {t}");
            for (m, nv, f) in [
                (false, false, false),
                (true, false, true),
                (true, false, false),
                (true, true, false),
            ] {
                assert!(
                    run_sgd(t, m, nv, f) == run_sgd(Isa::Portable, m, nv, f),
                    "sgd {m} {nv} {f}, tier {t}"
                );
            }
        }
    }
}
