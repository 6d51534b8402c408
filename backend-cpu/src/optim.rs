//! Op family `optim`: `adamw_step`, one AdamW update of one parameter in a
//! single pass over `g`, `p`, `m` and `v` (the composite form costs about
//! fourteen elementwise passes and a copy per parameter), and `sgd_step`,
//! one SGD update (weight decay, momentum, Nesterov) over `g`, `p`, `buf`.
//!
//! Per element, in the tensors' dtype, with the scalars computed in f64
//! and rounded once (the same operations, in the same order, as the core's
//! composite AdamW, so both give the same bits):
//! `m = m b1 + g (1 - b1)`, `v = v b2 + (g g) (1 - b2)`,
//! `p = p (1 - lr wd) - (m / (sqrt(v) (1 / sqrt(bc2)) + eps)) (lr / bc1)`.
//! For SGD: `d = g + p wd`; with momentum `buf = d` (first step) or
//! `buf = buf momentum + d (1 - dampening)`, then `d = d + buf momentum`
//! (Nesterov) or `d = buf`; `p = p - d lr`.
//! Large tensors are split over the pool in chunks.

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::{AdamWParams, SgdParams};
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Float;
use crate::reduce::{dtype_of, pairs, unsupported_dtype};
use crate::strided::{check_arity, View};
use crate::threads;

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    pairs(&[OpId::AdamwStep, OpId::SgdStep], &[DType::F32, DType::F64])
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    if op == OpId::SgdStep {
        check_arity(op.name(), call.inputs.len(), call.outputs.len(), 1, 2)?;
        let Params::Sgd(p) = call.params else {
            return Err(BackendError::invalid(format!("{op}: expected SgdParams")));
        };
        p.check()?;
        // SAFETY: forwarded from the caller.
        return unsafe {
            match dtype_of(op, "g", &call.inputs[0])? {
                DType::F32 => sgd::<f32>(call, &p),
                DType::F64 => sgd::<f64>(call, &p),
                other => Err(unsupported_dtype(op, other)),
            }
        };
    }
    if op != OpId::AdamwStep {
        return Err(BackendError::unsupported(format!(
            "cpu optim: {op} is not an optimizer op"
        )));
    }
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 1, 3)?;
    let Params::AdamW(p) = call.params else {
        return Err(BackendError::invalid(format!("{op}: expected AdamWParams")));
    };
    p.check()?;
    // SAFETY: forwarded from the caller.
    unsafe {
        match dtype_of(op, "g", &call.inputs[0])? {
            DType::F32 => adamw::<f32>(call, &p),
            DType::F64 => adamw::<f64>(call, &p),
            other => Err(unsupported_dtype(op, other)),
        }
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

/// Runs `f(start, len)` over `[0, n)` in chunks of [`CHUNK`], on the pool
/// when the update is large.
fn chunked(n: usize, f: impl Fn(usize, usize) + Sync) {
    let run = |i: usize| {
        let start = i * CHUNK;
        f(start, CHUNK.min(n - start));
    };
    let chunks = n.div_ceil(CHUNK);
    if threads::split(n) {
        threads::for_each_index(chunks, run);
    } else {
        (0..chunks).for_each(run);
    }
}

/// # Safety
/// As [`execute`], with dtype `T`.
unsafe fn sgd<T: Float>(call: &OpCall<'_>, params: &SgdParams) -> Result<()> {
    let name = call.op.name();
    // SAFETY: the descriptors name live buffers, per the caller.
    let (g, p, buf) = unsafe {
        (
            View::<T>::new(&call.inputs[0])?,
            View::<T>::new(&call.outputs[0])?,
            View::<T>::new(&call.outputs[1])?,
        )
    };
    let momentum = params.momentum != 0.0;
    if momentum {
        check_in_place(name, &g, &[("p", &p), ("buf", &buf)])?;
    } else {
        check_in_place(name, &g, &[("p", &p)])?;
    }
    let n = p.numel();
    if n == 0 {
        return Ok(());
    }
    // SAFETY: nothing writes g during the op (checked not to overlap).
    let g_elems = unsafe { g.contiguous() };
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
    let ptrs = Ptrs {
        p: p.ptr,
        m: if momentum { buf.ptr } else { p.ptr },
        v: p.ptr,
        g: g_elems.as_ptr(),
    };
    chunked(n, |start, len| {
        let ptrs = ptrs.get();
        // SAFETY: chunk `[start, start + len)` of each tensor, disjoint from the other chunks;
        // p and buf do not overlap; buf is only touched with momentum.
        unsafe {
            let p = std::slice::from_raw_parts_mut(ptrs.p.add(start), len);
            let g = std::slice::from_raw_parts(ptrs.g.add(start), len);
            let buf = c
                .with_momentum
                .then(|| std::slice::from_raw_parts_mut(ptrs.m.add(start), len));
            sgd_update(p, buf, g, &c)
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

impl<T> Ptrs<T> {
    fn get(&self) -> Self {
        *self
    }
}

/// Elements per chunk when the update is split over the pool.
const CHUNK: usize = 1 << 15;

/// # Safety
/// As [`execute`], with dtype `T`.
unsafe fn adamw<T: Float>(call: &OpCall<'_>, params: &AdamWParams) -> Result<()> {
    let name = call.op.name();
    // SAFETY: the descriptors name live buffers, per the caller.
    let (g, p, m, v) = unsafe {
        (
            View::<T>::new(&call.inputs[0])?,
            View::<T>::new(&call.outputs[0])?,
            View::<T>::new(&call.outputs[1])?,
            View::<T>::new(&call.outputs[2])?,
        )
    };
    check_in_place(name, &g, &[("p", &p), ("m", &m), ("v", &v)])?;
    let n = p.numel();
    if n == 0 {
        return Ok(());
    }
    // SAFETY: nothing writes g during the op (it overlaps none of the
    // outputs when contiguous; a strided g is copied first).
    let g_elems = unsafe { g.contiguous() };
    let c = Consts::<T>::new(params);
    let ptrs = Ptrs {
        p: p.ptr,
        m: m.ptr,
        v: v.ptr,
        g: g_elems.as_ptr(),
    };
    chunked(n, |start, len| {
        // Through a method, so that the closure captures the Sync struct,
        // not its raw-pointer fields one by one.
        let ptrs = ptrs.get();
        // SAFETY: chunk `[start, start + len)` is `[start, start + len)` of each tensor, inside
        // it, disjoint from every other chunk, and p, m, v, g do not overlap.
        unsafe {
            update(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run, HostTensor};

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
}
