//! `sum`, `mean`, `max`, `min`, `argmax` against plain f64 loops, on
//! contiguous, transposed, padded, stepped and broadcast inputs, every axis
//! set of ranks 1 to 4, f32/f64/i64, plus the error paths.

use sunrise_backend_api::ops::ReduceParams;
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{lay, run, HostTensor, Rng};

/// Row-major multi-indices of `shape`.
fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    (0..n)
        .map(|mut i| {
            let mut ix = vec![0; shape.len()];
            for k in (0..shape.len()).rev() {
                ix[k] = i % shape[k];
                i /= shape[k];
            }
            ix
        })
        .collect()
}

fn params(mask: u64) -> Params {
    Params::Reduce(ReduceParams {
        struct_size: ReduceParams::SIZE,
        axes_mask: mask,
    })
}

fn reduced_shape(shape: &[usize], mask: u64) -> Vec<usize> {
    (0..shape.len())
        .map(|k| if mask >> k & 1 == 1 { 1 } else { shape[k] })
        .collect()
}

/// The f64 reference: for each output position, the reduced values.
fn groups(data: &[f64], shape: &[usize], mask: u64) -> Vec<Vec<f64>> {
    let oshape = reduced_shape(shape, mask);
    let ostr: Vec<usize> = (0..oshape.len())
        .map(|k| oshape[k + 1..].iter().product())
        .collect();
    let mut g = vec![Vec::new(); oshape.iter().product()];
    for (i, ix) in indices(shape).iter().enumerate() {
        let o: usize = (0..shape.len())
            .map(|k| {
                if mask >> k & 1 == 1 {
                    0
                } else {
                    ix[k] * ostr[k]
                }
            })
            .sum();
        g[o].push(data[i]);
    }
    g
}

fn reference(op: OpId, g: &[f64]) -> f64 {
    match op {
        OpId::Sum => g.iter().sum(),
        OpId::Mean => g.iter().sum::<f64>() / g.len() as f64,
        OpId::Max => g.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v)),
        _ => g.iter().fold(f64::INFINITY, |a, &v| a.min(v)),
    }
}

/// Runs `op` on `x` laid out in `mode` and checks it against the reference.
fn check<T: Element>(op: OpId, data: &[T], shape: &[usize], mask: u64, mode: usize, tol: f64) {
    let x = lay(data, shape, mode);
    let out = HostTensor::zeros::<T>(&reduced_shape(shape, mask));
    run(op, params(mask), &[&x], &[&out])
        .unwrap_or_else(|e| panic!("{op} {shape:?} {mask:#b}: {e}"));
    let got = out.read::<T>();
    let d: Vec<f64> = data.iter().map(|v| v.to_f64()).collect();
    for (k, g) in groups(&d, shape, mask).iter().enumerate() {
        let want = reference(op, g);
        let scale: f64 = g.iter().map(|v| v.abs()).sum::<f64>() + want.abs();
        let err = (got[k].to_f64() - want).abs();
        assert!(
            err <= tol * scale + 1e-300,
            "{op} {} {shape:?} mask {mask:#b} mode {mode} out {k}: got {:?}, want {want}",
            std::any::type_name::<T>(),
            got[k]
        );
    }
}

const SHAPES: &[&[usize]] = &[&[7], &[3, 5], &[4, 1, 6], &[2, 3, 4, 5], &[3, 17, 5]];

#[test]
fn float_reductions_match_reference_for_every_axis_set_and_layout() {
    let mut rng = Rng::new(1);
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        let f32s: Vec<f32> = rng.vec(n, -10.0, 10.0);
        let f64s: Vec<f64> = rng.vec(n, -10.0, 10.0);
        for mask in 0..1u64 << shape.len() {
            for mode in 0..4 {
                for op in [OpId::Sum, OpId::Mean, OpId::Max, OpId::Min] {
                    check(op, &f32s, shape, mask, mode, 1e-7);
                    check(op, &f64s, shape, mask, mode, 1e-14);
                }
            }
        }
    }
}

#[test]
fn i64_reductions_match_reference() {
    let mut rng = Rng::new(2);
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        let data: Vec<i64> = rng.vec(n, -1000.0, 1000.0);
        for mask in 0..1u64 << shape.len() {
            for mode in [0, 1, 3] {
                for op in [OpId::Sum, OpId::Max, OpId::Min] {
                    check(op, &data, shape, mask, mode, 0.0);
                }
            }
        }
    }
}

#[test]
fn broadcast_inputs_reduce_like_materialised_ones() {
    // A [4, 1, 6] buffer viewed as [4, 5, 6] with stride 0 on axis 1.
    let mut rng = Rng::new(3);
    let small: Vec<f32> = rng.vec(24, -1.0, 1.0);
    let x = HostTensor::strided(&small, &[4, 5, 6], &[6, 0, 1], 0);
    let full: Vec<f64> = indices(&[4, 5, 6])
        .iter()
        .map(|ix| small[ix[0] * 6 + ix[2]] as f64)
        .collect();
    for mask in 0..8u64 {
        for op in [OpId::Sum, OpId::Mean, OpId::Max, OpId::Min] {
            let out = HostTensor::zeros::<f32>(&reduced_shape(&[4, 5, 6], mask));
            run(op, params(mask), &[&x], &[&out]).unwrap();
            let got = out.read::<f32>();
            for (k, g) in groups(&full, &[4, 5, 6], mask).iter().enumerate() {
                let want = reference(op, g);
                assert!(
                    (got[k] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{op} {mask:#b}"
                );
            }
        }
    }
}

#[test]
fn large_reductions_take_the_parallel_paths_and_stay_accurate() {
    let mut rng = Rng::new(4);
    // Row reduce with many outputs, column reduce, few long outputs (split
    // rows), and many short rows into few outputs (split accumulators).
    let cases: &[(&[usize], u64)] = &[
        (&[600, 300], 0b10),
        (&[600, 300], 0b01),
        (&[600, 300], 0b11),
        (&[3, 70_000], 0b10),
        (&[70_000, 3], 0b01),
        (&[50, 40, 70], 0b101),
    ];
    for &(shape, mask) in cases {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = rng.vec(n, -1.0, 1.0);
        for op in [OpId::Sum, OpId::Mean, OpId::Max, OpId::Min] {
            check(op, &data, shape, mask, 0, 1e-7);
        }
        for mode in 1..4 {
            check(OpId::Sum, &data, shape, mask, mode, 1e-7);
            check(OpId::Max, &data, shape, mask, mode, 0.0);
        }
    }
    // argmax on the pool
    let data: Vec<f32> = rng.vec(600 * 300, -1.0, 1.0);
    let d64: Vec<f64> = data.iter().map(|&v| v as f64).collect();
    for axis in 0..2 {
        let mask = 1u64 << axis;
        let out = HostTensor::zeros::<i64>(&reduced_shape(&[600, 300], mask));
        run(
            OpId::Argmax,
            params(mask),
            &[&HostTensor::new(&data, &[600, 300])],
            &[&out],
        )
        .unwrap();
        let want: Vec<i64> = groups(&d64, &[600, 300], mask)
            .iter()
            .map(|g| argmax_ref(g))
            .collect();
        assert_eq!(out.read::<i64>(), want, "axis {axis}");
    }
}

#[test]
fn f32_sums_accumulate_in_f64() {
    let mut data = vec![1.0f32; 1 << 20];
    data[0] = 16_777_216.0; // 2^24: an f32 running sum would stay here
    let x = HostTensor::new(&data, &[1 << 20]);
    let out = HostTensor::zeros::<f32>(&[1]);
    run(OpId::Sum, params(1), &[&x], &[&out]).unwrap();
    assert_eq!(out.read::<f32>()[0], 16_777_216.0 + 1_048_575.0);
}

#[test]
fn max_and_min_propagate_nan_and_empty_sets_are_handled() {
    let x = HostTensor::new(&[1.0f32, f32::NAN, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    for op in [OpId::Max, OpId::Min] {
        let out = HostTensor::zeros::<f32>(&[2, 1]);
        run(op, params(0b10), &[&x], &[&out]).unwrap();
        let got = out.read::<f32>();
        assert!(got[0].is_nan() && !got[1].is_nan(), "{op}: {got:?}");
    }
    let empty = HostTensor::zeros::<f32>(&[3, 0]);
    let out = HostTensor::zeros::<f32>(&[3, 1]);
    run(OpId::Sum, params(0b10), &[&empty], &[&out]).unwrap();
    assert_eq!(out.read::<f32>(), [0.0; 3]);
    run(OpId::Mean, params(0b10), &[&empty], &[&out]).unwrap();
    assert!(out.read::<f32>().iter().all(|v| v.is_nan()));
    for op in [OpId::Max, OpId::Min, OpId::Argmax] {
        let out = HostTensor::zeros::<f32>(&[3, 1]);
        let out_i = HostTensor::zeros::<i64>(&[3, 1]);
        let o = if op == OpId::Argmax { &out_i } else { &out };
        let e = run(op, params(0b10), &[&empty], &[o]).unwrap_err();
        assert_eq!(e.code, StatusCode::InvalidArgument, "{op}");
    }
}

fn argmax_ref(g: &[f64]) -> i64 {
    let mut best = 0;
    for (i, &v) in g.iter().enumerate() {
        if g[best].is_nan() {
            break;
        }
        if v > g[best] || v.is_nan() {
            best = i;
        }
    }
    best as i64
}

#[test]
fn argmax_matches_reference_with_ties_and_nan() {
    let mut rng = Rng::new(5);
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        // Small integers force ties: the first maximum must win.
        let ints: Vec<f64> = (0..n).map(|_| (rng.uniform(0.0, 4.0)).floor()).collect();
        let mut with_nan = ints.clone();
        with_nan[n / 2] = f64::NAN;
        for axis in 0..shape.len() {
            let mask = 1u64 << axis;
            let oshape = reduced_shape(shape, mask);
            for (data, mode) in [(&ints, 0), (&ints, 1), (&with_nan, 0), (&ints, 3)] {
                let f32s: Vec<f32> = data.iter().map(|&v| v as f32).collect();
                let i64s: Vec<i64> = data
                    .iter()
                    .map(|&v| if v.is_nan() { 9 } else { v as i64 })
                    .collect();
                let want_f: Vec<i64> = groups(data, shape, mask)
                    .iter()
                    .map(|g| argmax_ref(g))
                    .collect();
                let as_f64: Vec<f64> = i64s.iter().map(|&v| v as f64).collect();
                let want_i: Vec<i64> = groups(&as_f64, shape, mask)
                    .iter()
                    .map(|g| argmax_ref(g))
                    .collect();
                for (k, x) in [
                    lay(&f32s, shape, mode),
                    lay(data, shape, mode),
                    lay(&i64s, shape, mode),
                ]
                .iter()
                .enumerate()
                {
                    let out = HostTensor::zeros::<i64>(&oshape);
                    run(OpId::Argmax, params(mask), &[x], &[&out]).unwrap();
                    assert_eq!(
                        out.read::<i64>(),
                        if k == 2 { &want_i } else { &want_f }.clone(),
                        "{shape:?} axis {axis} mode {mode} dtype #{k}"
                    );
                }
            }
        }
    }
}

#[test]
fn bad_calls_are_typed_errors() {
    let x = HostTensor::new(&[1.0f32; 12], &[3, 4]);
    let ok = HostTensor::zeros::<f32>(&[3, 1]);
    let code = |op, mask, ins: &[&HostTensor], outs: &[&HostTensor]| {
        run(op, params(mask), ins, outs).unwrap_err().code
    };
    use StatusCode::*;
    // wrong output shape (reduced dims must be kept as 1)
    assert_eq!(
        code(OpId::Sum, 0b10, &[&x], &[&HostTensor::zeros::<f32>(&[3])]),
        InvalidArgument
    );
    // axis beyond the rank
    assert_eq!(code(OpId::Sum, 0b100, &[&x], &[&ok]), InvalidArgument);
    // output dtype differs
    assert_eq!(
        code(
            OpId::Max,
            0b10,
            &[&x],
            &[&HostTensor::zeros::<f64>(&[3, 1])]
        ),
        InvalidArgument
    );
    // argmax needs one axis and an i64 output
    assert_eq!(
        code(
            OpId::Argmax,
            0b11,
            &[&x],
            &[&HostTensor::zeros::<i64>(&[1, 1])]
        ),
        InvalidArgument
    );
    assert_eq!(code(OpId::Argmax, 0b10, &[&x], &[&ok]), InvalidArgument);
    // arity
    assert_eq!(code(OpId::Sum, 0b10, &[&x, &x], &[&ok]), InvalidArgument);
    assert_eq!(code(OpId::Sum, 0b10, &[], &[&ok]), InvalidArgument);
    // wrong params kind
    let e = run(OpId::Sum, Params::None, &[&x], &[&ok]).unwrap_err();
    assert_eq!(e.code, InvalidArgument);
    // non-contiguous output
    let strided_out = HostTensor::strided(&[0f32; 6], &[3, 1], &[2, 1], 0);
    assert_eq!(
        code(OpId::Sum, 0b10, &[&x], &[&strided_out]),
        InvalidArgument
    );
    // dtypes the op does not implement
    let bytes = HostTensor::new(&[1u8; 12], &[3, 4]);
    assert_eq!(
        code(
            OpId::Sum,
            0b10,
            &[&bytes],
            &[&HostTensor::zeros::<u8>(&[3, 1])]
        ),
        Unsupported
    );
    let ints = HostTensor::new(&[1i64; 12], &[3, 4]);
    assert_eq!(
        code(
            OpId::Mean,
            0b10,
            &[&ints],
            &[&HostTensor::zeros::<i64>(&[3, 1])]
        ),
        Unsupported
    );
}
