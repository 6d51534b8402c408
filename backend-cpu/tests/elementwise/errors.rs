//! Bad input: typed errors, never a panic; and the supported list.

use sunrise_backend_api::{Backend, DType, OpId, Params, StatusCode};
use sunrise_backend_cpu::testing::{run, HostTensor};
use sunrise_backend_cpu::CpuBackend;

use crate::common::*;

fn f32s(n: usize) -> HostTensor {
    HostTensor::zeros::<f32>(&[n])
}

#[test]
fn wrong_arity_is_invalid() {
    let (a, b, c, u) = (f32s(4), f32s(4), f32s(4), HostTensor::zeros::<u8>(&[4]));
    let invalid = StatusCode::InvalidArgument;
    assert_eq!(code(run(OpId::Add, Params::None, &[&a], &[&c])), invalid);
    assert_eq!(
        code(run(OpId::Exp, Params::None, &[&a, &b], &[&c])),
        invalid
    );
    assert_eq!(
        code(run(OpId::Where, Params::None, &[&u, &a], &[&c])),
        invalid
    );
    assert_eq!(code(run(OpId::Fill, fill(1.0), &[&a], &[&c])), invalid);
    assert_eq!(code(run(OpId::Add, Params::None, &[&a, &b], &[])), invalid);
    assert_eq!(
        code(run(OpId::Copy, Params::None, &[&a], &[&b, &c])),
        invalid
    );
}

#[test]
fn mismatched_or_missing_dtypes_are_typed_errors() {
    let (a, b, c) = (f32s(4), f32s(4), f32s(4));
    let d = HostTensor::zeros::<f64>(&[4]);
    let i = HostTensor::zeros::<i64>(&[4]);
    let u = HostTensor::zeros::<u8>(&[4]);
    let (invalid, unsupported) = (StatusCode::InvalidArgument, StatusCode::Unsupported);
    // Operands that disagree: the caller's mistake.
    assert_eq!(
        code(run(OpId::Add, Params::None, &[&a, &d], &[&c])),
        invalid
    );
    assert_eq!(
        code(run(OpId::Add, Params::None, &[&a, &b], &[&d])),
        invalid
    );
    assert_eq!(
        code(run(OpId::Lt, Params::None, &[&a, &b], &[&c])),
        invalid,
        "comparisons write u8"
    );
    assert_eq!(
        code(run(OpId::Where, Params::None, &[&a, &a, &b], &[&c])),
        invalid,
        "the mask is u8"
    );
    assert_eq!(
        code(run(OpId::Where, Params::None, &[&u, &a, &d], &[&c])),
        invalid
    );
    assert_eq!(code(run(OpId::Copy, Params::None, &[&a], &[&d])), invalid);
    // Dtypes an op does not have.
    assert_eq!(
        code(run(OpId::Exp, Params::None, &[&i], &[&i])),
        unsupported
    );
    assert_eq!(
        code(run(OpId::Div, Params::None, &[&i, &i], &[&i])),
        unsupported
    );
    assert_eq!(
        code(run(OpId::Add, Params::None, &[&u, &u], &[&u])),
        unsupported
    );
    let relu = unary_backward(OpId::Relu);
    assert_eq!(
        code(run(OpId::UnaryBackward, relu, &[&i, &i], &[&i])),
        unsupported
    );
    // Casts from or to a dtype this build does not know.
    let mut odd = f32s(4);
    odd.desc.dtype = 99;
    assert_eq!(
        code(run(OpId::Cast, Params::None, &[&a], &[&odd])),
        unsupported
    );
    assert_eq!(
        code(run(OpId::Cast, Params::None, &[&odd], &[&c])),
        unsupported
    );
}

#[test]
fn bad_shapes_and_layouts_are_invalid() {
    let (a, c, g) = (f32s(4), f32s(4), f32s(5));
    let m = HostTensor::zeros::<f32>(&[2, 2]);
    let invalid = StatusCode::InvalidArgument;
    assert_eq!(
        code(run(OpId::Add, Params::None, &[&a, &g], &[&c])),
        invalid
    );
    assert_eq!(code(run(OpId::Neg, Params::None, &[&a], &[&g])), invalid);
    assert_eq!(
        code(run(OpId::Neg, Params::None, &[&a], &[&m])),
        invalid,
        "same numel, other shape"
    );
    // An output whose elements overlap.
    let over = HostTensor::strided(&[0f32; 4], &[4], &[0], 0);
    assert_eq!(code(run(OpId::Neg, Params::None, &[&a], &[&over])), invalid);
    assert_eq!(code(run(OpId::Fill, fill(1.0), &[], &[&over])), invalid);
    // A view past the end of its buffer.
    let past = HostTensor::strided(&[0f32; 4], &[4], &[1], 2);
    assert_eq!(code(run(OpId::Neg, Params::None, &[&past], &[&c])), invalid);
    assert_eq!(code(run(OpId::Neg, Params::None, &[&a], &[&past])), invalid);
}

#[test]
fn bad_params_are_invalid() {
    let (a, b, c) = (f32s(4), f32s(4), f32s(4));
    let invalid = StatusCode::InvalidArgument;
    assert_eq!(code(run(OpId::Fill, Params::None, &[], &[&c])), invalid);
    assert_eq!(
        code(run(OpId::UnaryBackward, Params::None, &[&a, &b], &[&c])),
        invalid
    );
    let not_unary = unary_backward(OpId::Add);
    assert_eq!(
        code(run(OpId::UnaryBackward, not_unary, &[&a, &b], &[&c])),
        invalid
    );
    let mut unknown = unary_backward(OpId::Exp);
    if let Params::UnaryBackward(p) = &mut unknown {
        p.op = 9999;
    }
    assert_eq!(
        code(run(OpId::UnaryBackward, unknown, &[&a, &b], &[&c])),
        invalid
    );
}

#[test]
fn bad_concat_is_a_typed_error() {
    let invalid = StatusCode::InvalidArgument;
    let x = HostTensor::zeros::<f32>(&[2, 3]);
    let y = HostTensor::zeros::<f32>(&[2, 4]);
    let z = HostTensor::zeros::<f32>(&[3, 3]);
    let out = HostTensor::zeros::<f32>(&[2, 7]);
    run(OpId::Concat, axis(1), &[&x, &y], &[&out]).unwrap();
    assert_eq!(
        code(run(OpId::Concat, axis(1), &[&x, &z], &[&out])),
        invalid,
        "other dim differs"
    );
    assert_eq!(
        code(run(OpId::Concat, axis(1), &[&x, &x], &[&out])),
        invalid,
        "extents do not add up"
    );
    assert_eq!(
        code(run(OpId::Concat, axis(2), &[&x, &y], &[&out])),
        invalid,
        "axis out of range"
    );
    assert_eq!(
        code(run(OpId::Concat, axis(1), &[], &[&out])),
        invalid,
        "no inputs"
    );
    assert_eq!(
        code(run(OpId::Concat, Params::None, &[&x, &y], &[&out])),
        invalid,
        "no params"
    );
    let d = HostTensor::zeros::<f64>(&[2, 4]);
    assert_eq!(
        code(run(OpId::Concat, axis(1), &[&x, &d], &[&out])),
        invalid,
        "mixed dtypes"
    );
    let flat = HostTensor::zeros::<f32>(&[14]);
    assert_eq!(
        code(run(OpId::Concat, axis(0), &[&x, &y], &[&flat])),
        invalid,
        "rank differs"
    );
}

#[test]
fn every_listed_pair_runs() {
    let backend = CpuBackend::new();
    let family = |op: OpId| {
        op.is_unary()
            || op.is_binary()
            || op.is_comparison()
            || matches!(
                op,
                OpId::UnaryBackward
                    | OpId::Where
                    | OpId::Fill
                    | OpId::Copy
                    | OpId::Cast
                    | OpId::Concat
            )
    };
    let mut count = 0;
    for p in backend.supported_ops() {
        let Some(op) = OpId::from_u32(p.op).filter(|&o| family(o)) else {
            continue;
        };
        let dtype = DType::from_u32(p.dtype).expect("listed dtypes are known");
        let t = |d: DType| match d {
            DType::F32 => HostTensor::new(&[0.5f32, 2.0], &[2]),
            DType::F64 => HostTensor::new(&[0.5f64, 2.0], &[2]),
            DType::I64 => HostTensor::new(&[1i64, 2], &[2]),
            DType::U8 => HostTensor::new(&[0u8, 1], &[2]),
        };
        let (x, y) = (t(dtype), t(dtype));
        let r = match op {
            OpId::UnaryBackward => run(op, unary_backward(OpId::Tanh), &[&x, &y], &[&t(dtype)]),
            OpId::Where => run(
                op,
                Params::None,
                &[&x, &t(DType::F32), &t(DType::F32)],
                &[&t(DType::F32)],
            ),
            OpId::Fill => run(op, fill(1.0), &[], &[&x]),
            OpId::Copy => run(op, Params::None, &[&x], &[&y]),
            OpId::Cast => run(op, Params::None, &[&x], &[&t(DType::I64)]),
            OpId::Concat => run(op, axis(0), &[&x, &y], &[&HostTensor::zeros_like(dtype, 4)]),
            o if o.is_comparison() => run(op, Params::None, &[&x, &y], &[&t(DType::U8)]),
            o if o.is_unary() => run(op, Params::None, &[&x], &[&y]),
            _ => run(op, Params::None, &[&x, &y], &[&t(dtype)]),
        };
        assert!(r.is_ok(), "{op} on {dtype} is listed but fails: {r:?}");
        assert!(backend.supports(op, dtype));
        count += 1;
    }
    assert!(count > 80, "only {count} elementwise pairs listed");
    assert!(!backend.supports(OpId::Exp, DType::I64));
    assert!(!backend.supports(OpId::Div, DType::I64));
}

/// `HostTensor::zeros` by dtype.
trait ZerosLike {
    fn zeros_like(dtype: DType, n: usize) -> HostTensor;
}

impl ZerosLike for HostTensor {
    fn zeros_like(dtype: DType, n: usize) -> HostTensor {
        match dtype {
            DType::F32 => HostTensor::zeros::<f32>(&[n]),
            DType::F64 => HostTensor::zeros::<f64>(&[n]),
            DType::I64 => HostTensor::zeros::<i64>(&[n]),
            DType::U8 => HostTensor::zeros::<u8>(&[n]),
        }
    }
}
