//! Unary, binary, comparison, where, fill, copy, cast, concat.

use crate::conformance::compare::Family;
use crate::conformance::inputs::{
    any, ints, leaf, maybe_view, numel, strided_view, tensor_of, uni, Rng,
};
use crate::{DType, Device, OpId, Tensor, UnaryOp};

use super::{case, out, with_grads, Case, Fail, Res};
use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{Backend, BufferHandle, OpCall, Params};

pub(crate) fn unary_of(op: OpId) -> Option<UnaryOp> {
    UnaryOp::ALL.into_iter().find(|u| u.op_id() == op)
}

/// Inputs of unary op `u`: in its domain, and wide enough to reach the
/// saturated ends of sigmoid, tanh and GELU.
pub(crate) fn unary_input(
    u: UnaryOp,
    shape: &[usize],
    seed: u64,
    d: DType,
    dev: &Device,
) -> crate::Result<Tensor> {
    match u {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => uni(shape, 0.05, 6.0, seed, d, dev),
        _ => uni(shape, -6.0, 6.0, seed, d, dev),
    }
}

pub(crate) const SHAPES: [&[usize]; 4] = [&[1], &[1031], &[7, 33], &[3, 5, 129]];

pub(crate) fn unary_cases(op: OpId, d: DType) -> Vec<Case> {
    let u = unary_of(op).expect("a unary op");
    let mut v = Vec::new();
    if !d.is_float() {
        // The core's unary ops take floats; integer kernels are reached
        // through the ABI directly, on both backends.
        for (what, shape, strides, phys) in [
            ("[1031]", vec![1031], vec![1], 1031),
            ("[7, 33] transposed view", vec![7, 33], vec![1, 7], 231),
        ] {
            v.push(case(what, Family::Exact, move |dev| {
                let mut rng = Rng(11);
                let host: Vec<i64> = (0..phys)
                    .map(|_| rng.uniform(-1000.0, 1000.0).floor() as i64)
                    .collect();
                let y = abi_unary_i64(dev, op, &host, &shape, &strides)?;
                Ok(vec![out("y", y)])
            }));
        }
        return v;
    }
    for (k, shape) in SHAPES.iter().enumerate() {
        let seed = 100 + k as u64;
        v.push(case(
            format!("{shape:?}"),
            Family::Elementwise,
            move |dev| {
                let x = leaf(unary_input(u, shape, seed, d, dev)?);
                with_grads("y", x.unary(u)?, &[("x", &x)], seed + 50)
            },
        ));
        v.push(case(
            format!("{shape:?} strided view"),
            Family::Elementwise,
            move |dev| {
                let (x, xv) =
                    strided_view(shape, |s| Ok(leaf(unary_input(u, s, seed + 7, d, dev)?)))?;
                with_grads("y", xv.unary(u)?, &[("x", &x)], seed + 51)
            },
        ));
    }
    v
}

pub(crate) fn unary_backward_cases(d: DType) -> Vec<Case> {
    let mut v = Vec::new();
    for u in UnaryOp::ALL {
        for (k, shape) in [&[1031][..], &[7, 33]].into_iter().enumerate() {
            let seed = 200 + k as u64;
            v.push(case(
                format!("{u:?} {shape:?} strided x"),
                Family::Elementwise,
                move |dev| {
                    let (_, x) = strided_view(shape, |s| unary_input(u, s, seed, d, dev))?;
                    let dy = uni(shape, -1.0, 1.0, seed + 1, d, dev)?;
                    Ok(vec![out("dx", x.unary_backward(u, &dy)?)])
                },
            ));
        }
    }
    v
}

pub(crate) fn binary_apply(op: OpId, a: &Tensor, b: &Tensor) -> crate::Result<Tensor> {
    match op {
        OpId::Add => a.add(b),
        OpId::Sub => a.sub(b),
        OpId::Mul => a.mul(b),
        OpId::Div => a.div(b),
        OpId::Pow => a.pow(b),
        OpId::Maximum => a.maximum(b),
        OpId::Minimum => a.minimum(b),
        OpId::Eq => a.eq(b),
        OpId::Ne => a.ne(b),
        OpId::Lt => a.lt(b),
        OpId::Le => a.le(b),
        OpId::Gt => a.gt(b),
        OpId::Ge => a.ge(b),
        other => unreachable!("{other} is not binary"),
    }
}

/// Operand `which` (0: `a`, 1: `b`) of an arithmetic binary op: `b` away
/// from zero for div, `a` positive for pow (both small for integer pow).
pub(crate) fn operand(
    op: OpId,
    which: u8,
    shape: &[usize],
    seed: u64,
    d: DType,
    dev: &Device,
) -> crate::Result<Tensor> {
    match (op, d.is_float(), which) {
        (OpId::Div, true, 1) => uni(shape, 0.5, 2.5, seed, d, dev),
        (OpId::Div, false, 1) => ints(shape, 1, 50, seed, d, dev),
        (OpId::Pow, true, 0) => uni(shape, 0.25, 2.5, seed, d, dev),
        (OpId::Pow, false, 0) => ints(shape, 0, 8, seed, d, dev),
        (OpId::Pow, false, _) => ints(shape, 0, 6, seed, d, dev),
        _ => any(shape, seed, d, dev),
    }
}

/// Shapes of `a` and `b`: broadcasting both ways, a scalar-like operand,
/// same shapes, and `a` as a transposed view.
pub(crate) const BINARY_SHAPES: [(&[usize], &[usize], bool); 5] = [
    (&[4, 1, 9], &[5, 9], false),
    (&[1031], &[1], false),
    (&[3, 5, 7], &[3, 5, 7], false),
    (&[6, 9], &[6, 9], true),
    (&[2, 1, 65], &[2, 129, 1], false),
];

pub(crate) fn binary_cases(op: OpId, d: DType) -> Vec<Case> {
    BINARY_SHAPES
        .iter()
        .enumerate()
        .map(|(k, &(sa, sb, view))| {
            let seed = 300 + 10 * k as u64;
            let what = format!("{sa:?}{} with {sb:?}", if view { " (view)" } else { "" });
            case(what, Family::Elementwise, move |dev| {
                let (a, av) = maybe_view(sa, view, |s| operand(op, 0, s, seed, d, dev))?;
                let b = leaf(operand(op, 1, sb, seed + 1, d, dev)?);
                let y = binary_apply(op, &av, &b)?;
                with_grads("y", y, &[("a", &a), ("b", &b)], seed + 5)
            })
        })
        .collect()
}

pub(crate) fn comparison_cases(op: OpId, d: DType) -> Vec<Case> {
    let mut v: Vec<Case> = BINARY_SHAPES
        .iter()
        .enumerate()
        .map(|(k, &(sa, sb, view))| {
            let seed = 400 + 10 * k as u64;
            case(
                format!("{sa:?} with {sb:?}, ties"),
                Family::Exact,
                move |dev| {
                    let (_, a) = maybe_view(sa, view, |s| ints(s, 0, 4, seed, d, dev))?;
                    let b = ints(sb, 0, 4, seed + 1, d, dev)?;
                    Ok(vec![out("mask", binary_apply(op, &a, &b)?)])
                },
            )
        })
        .collect();
    v.push(case("[1031] natural range", Family::Exact, move |dev| {
        let (a, b) = (any(&[1031], 470, d, dev)?, any(&[1031], 471, d, dev)?);
        Ok(vec![out("mask", binary_apply(op, &a, &b)?)])
    }));
    v
}

pub(crate) fn where_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for d in DType::ALL {
        for (k, (sm, sa, sb)) in [
            (&[4, 1, 9][..], &[5, 9][..], &[1][..]),
            (&[1031], &[1031], &[1031]),
            (&[6, 9], &[1, 9], &[6, 1]),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 500 + 10 * k as u64;
            let view = k == 2;
            v.push(case(
                format!("{d} data, mask {sm:?}, a {sa:?}, b {sb:?}"),
                Family::Exact,
                move |dev| {
                    let (_, m) = maybe_view(sm, view, |s| ints(s, 0, 2, seed, DType::U8, dev))?;
                    let a = leaf(any(sa, seed + 1, d, dev)?);
                    let b = leaf(any(sb, seed + 2, d, dev)?);
                    with_grads(
                        "y",
                        Tensor::where_(&m, &a, &b)?,
                        &[("a", &a), ("b", &b)],
                        seed + 3,
                    )
                },
            ));
        }
    }
    v
}

pub(crate) fn fill_cases(d: DType) -> Vec<Case> {
    let values: [f64; 2] = match d {
        DType::F32 | DType::F64 => [2.5, -0.1],
        DType::I64 => [-3.0, 1e12],
        DType::U8 => [7.0, 255.0],
    };
    let mut v = Vec::new();
    for shape in [&[1][..], &[1031], &[3, 5, 7], &[0, 3], &[64, 1024]] {
        for value in values {
            v.push(case(
                format!("{shape:?} = {value}"),
                Family::Exact,
                move |dev| Ok(vec![out("y", Tensor::full(shape, value, d, dev)?)]),
            ));
        }
    }
    v
}

pub(crate) fn copy_cases(d: DType) -> Vec<Case> {
    type View = fn(&Tensor) -> crate::Result<Tensor>;
    let views: [(&str, &[usize], View); 7] = [
        ("contiguous [1031]", &[1031], |t| Ok(t.clone())),
        ("transpose of [33, 7]", &[33, 7], |t| t.t()),
        ("slice step 3 of [6, 10]", &[6, 10], |t| t.slice(1, 1, 9, 3)),
        ("permute (2, 0, 1) of [3, 5, 7]", &[3, 5, 7], |t| {
            t.permute(&[2, 0, 1])
        }),
        ("broadcast [5, 1] to [5, 7]", &[5, 1], |t| {
            t.broadcast_to(&[5, 7])
        }),
        ("every other of [2062]", &[2062], |t| t.slice(0, 0, 2062, 2)),
        ("empty [0, 3]", &[0, 3], |t| t.t()),
    ];
    views
        .into_iter()
        .enumerate()
        .map(|(k, (what, shape, view))| {
            case(what, Family::Exact, move |dev| {
                let t = any(shape, 600 + k as u64, d, dev)?;
                Ok(vec![out("y", view(&t)?.deep_copy()?)])
            })
        })
        .collect()
}

pub(crate) fn cast_cases(d: DType) -> Vec<Case> {
    let mut v = Vec::new();
    for to in DType::ALL {
        for (k, shape) in [&[1031][..], &[7, 33]].into_iter().enumerate() {
            let seed = 700 + 10 * k as u64;
            v.push(case(
                format!("to {to}, {shape:?} strided"),
                Family::Exact,
                move |dev| {
                    let make = |s: &[usize]| -> crate::Result<Tensor> {
                        if d.is_float() {
                            // Fractions of both signs, and exact zeros.
                            let mut rng = Rng(seed);
                            let vals: Vec<f64> = (0..numel(s))
                                .map(|i| {
                                    if i % 7 == 0 {
                                        0.0
                                    } else {
                                        rng.uniform(-300.0, 300.0)
                                    }
                                })
                                .collect();
                            tensor_of(&vals, s, d, dev)
                        } else {
                            any(s, seed, d, dev)
                        }
                    };
                    let (_, x) = strided_view(shape, make)?;
                    Ok(vec![out("y", x.cast(to)?)])
                },
            ));
        }
    }
    v
}

pub(crate) fn concat_cases(d: DType) -> Vec<Case> {
    let mut v = Vec::new();
    for axis in [0isize, 1, -1] {
        v.push(case(
            format!("three along axis {axis}, one a view"),
            Family::Exact,
            move |dev| {
                let a = leaf(any(&[4, 6, 5], 800, d, dev)?);
                let b = leaf(any(&[4, 6, 5], 801, d, dev)?);
                let bv = b.transpose(0, 2)?.contiguous()?.transpose(0, 2)?;
                let c = leaf(any(&[4, 6, 5], 802, d, dev)?);
                let y = Tensor::concat(&[&a, &bv, &c], axis)?;
                with_grads("y", y, &[("a", &a), ("b", &b), ("c", &c)], 803)
            },
        ));
    }
    v
}

// ---- the ABI path for pairs the core's API does not reach -------------------------

pub(crate) fn abi<T>(what: &str, r: sunrise_backend_api::Result<T>) -> Res<T> {
    r.map_err(|e| Fail(format!("{what}: {e}")))
}

/// Runs unary `op` on i64 `host` data (read with `shape`/`strides`) on
/// `dev`'s backend through the plugin ABI, and returns the contiguous
/// output (read back, and put on `dev` like every other case's outputs).
pub(crate) fn abi_unary_i64(
    dev: &Device,
    op: OpId,
    host: &[i64],
    shape: &[usize],
    strides: &[usize],
) -> Res<Tensor> {
    let b: &dyn Backend = dev.backend().as_ref();
    let ord = dev.ordinal();
    let n = numel(shape);
    let bytes: Vec<u8> = host.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let x = abi("alloc", b.alloc(ord, bytes.len()))?;
    let y = match b.alloc(ord, n * 8) {
        Ok(y) => y,
        Err(e) => {
            // SAFETY: `x` was allocated by `b` above and is freed once.
            unsafe { b.free(x) };
            return Err(Fail(format!("alloc: {e}")));
        }
    };
    let run = |x: BufferHandle, y: BufferHandle| -> Res<Vec<u8>> {
        // SAFETY: `x` is a live buffer of `bytes.len()` bytes.
        abi("write", unsafe { b.write(x, 0, &bytes) })?;
        let contiguous = crate::shape::contiguous_strides(shape);
        let call = OpCall {
            op,
            params: Params::None,
            inputs: &[SrTensorDesc::new(DType::I64, shape, strides, x, 0)],
            outputs: &[SrTensorDesc::new(DType::I64, shape, &contiguous, y, 0)],
        };
        // SAFETY: both descriptors name live buffers of `b` and stay within
        // them (the caller's strides address `host.len()` elements).
        abi(op.name(), unsafe { b.execute(ord, &call) })?;
        let mut back = vec![0u8; n * 8];
        // SAFETY: `y` is a live buffer of `n * 8` bytes.
        abi("read", unsafe { b.read(y, 0, &mut back) })?;
        Ok(back)
    };
    let r = run(x, y);
    // SAFETY: both buffers were allocated by `b` above and are freed once.
    unsafe {
        b.free(x);
        b.free(y);
    }
    let vals: Vec<i64> = r?
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Ok(Tensor::from_slice(&vals, shape, dev)?)
}
