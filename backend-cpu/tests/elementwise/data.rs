//! `fill`, `copy`, `cast`, `concat`, and ops large enough to run on the pool.

use sunrise_backend_api::{OpId, Params};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{run, HostTensor, Rng};

use crate::common::*;

#[test]
fn fill_converts_the_value_and_respects_strides() {
    for lo_ in OUTPUTS {
        let o = output::<f32>(lo_, -1.0);
        run(OpId::Fill, fill(2.5), &[], &[&o.t]).unwrap();
        assert!(o.t.read::<f32>().iter().all(|&v| v == 2.5));
        assert_gaps_untouched(&o, "fill f32");
        let o = output::<i64>(lo_, -1);
        run(OpId::Fill, fill(-3.7), &[], &[&o.t]).unwrap();
        assert!(
            o.t.read::<i64>().iter().all(|&v| v == -3),
            "float to int truncates toward zero"
        );
        assert_gaps_untouched(&o, "fill i64");
    }
    let cases: [(f64, u8); 4] = [(1.0, 1), (7.9, 7), (300.0, 255), (f64::NAN, 0)];
    for (value, want) in cases {
        let o = HostTensor::zeros::<u8>(&[3, 5]);
        run(OpId::Fill, fill(value), &[], &[&o]).unwrap();
        assert!(
            o.read::<u8>().iter().all(|&v| v == want),
            "fill u8 with {value}"
        );
    }
    let o = HostTensor::zeros::<f64>(&[]);
    run(OpId::Fill, fill(-0.25), &[], &[&o]).unwrap();
    assert_eq!(o.read::<f64>(), [-0.25]);
}

fn check_copy<T: Element + PartialEq>(rng: &mut Rng, gen: fn(&mut Rng) -> T) {
    for (k, &lin) in INPUTS.iter().enumerate() {
        for lout in OUTPUTS {
            let x = operand::<T>(M, N, lin, gen(rng), || gen(rng));
            let y = output::<T>(lout, gen(rng));
            run(OpId::Copy, Params::None, &[&x.t], &[&y.t]).unwrap();
            assert_eq!(
                y.t.read::<T>(),
                x.vals,
                "copy {:?} {lin:?}->{lout:?} ({k})",
                T::DTYPE
            );
            assert_gaps_untouched(&y, "copy");
        }
    }
}

#[test]
fn copy_every_dtype_and_layout() {
    let mut rng = Rng::new(61);
    check_copy::<f32>(&mut rng, |r| r.uniform(-1.0, 1.0) as f32);
    check_copy::<f64>(&mut rng, |r| r.uniform(-1.0, 1.0));
    check_copy::<i64>(&mut rng, |r| r.next_u64() as i64);
    check_copy::<u8>(&mut rng, |r| r.next_u64() as u8);
    // A 4-d permutation, a rank-0 tensor and an empty one.
    let data: Vec<f32> = (0..120).map(|v| v as f32).collect();
    let x = HostTensor::strided(&data, &[5, 2, 3, 4], &[1, 60, 20, 5], 0);
    let y = HostTensor::zeros::<f32>(&[5, 2, 3, 4]);
    run(OpId::Copy, Params::None, &[&x], &[&y]).unwrap();
    assert_eq!(y.read::<f32>(), x.read::<f32>());
    let (x, y) = (
        HostTensor::new(&[4.5f64], &[]),
        HostTensor::zeros::<f64>(&[]),
    );
    run(OpId::Copy, Params::None, &[&x], &[&y]).unwrap();
    assert_eq!(y.read::<f64>(), [4.5]);
    let (x, y) = (
        HostTensor::new::<u8>(&[], &[3, 0]),
        HostTensor::zeros::<u8>(&[3, 0]),
    );
    run(OpId::Copy, Params::None, &[&x], &[&y]).unwrap();
}

/// Casts `xs` to `D` through the op, from a view with gaps (stride 2,
/// offset 1) into a contiguous output.
fn cast<S: Element, D: Element>(xs: &[S]) -> Vec<D> {
    let n = xs.len();
    let backing: Vec<S> = (0..2 * n).map(|k| xs[k / 2]).collect();
    let x = HostTensor::strided(&backing, &[n], &[2], 1);
    let y = HostTensor::zeros::<D>(&[n]);
    run(OpId::Cast, Params::None, &[&x], &[&y]).unwrap();
    y.read::<D>()
}

#[test]
fn cast_between_every_pair() {
    let f = [
        -2.7f64,
        -0.5,
        -0.0,
        0.0,
        0.5,
        1.0,
        2.9,
        1e20,
        -1e20,
        f64::NAN,
    ];
    assert_eq!(
        cast::<f64, i64>(&f),
        [-2, 0, 0, 0, 0, 1, 2, i64::MAX, i64::MIN, 0]
    );
    assert_eq!(cast::<f64, u8>(&f), [1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
    let f32s: Vec<f32> = f.iter().map(|&v| v as f32).collect();
    assert_eq!(
        cast::<f32, i64>(&f32s),
        [-2, 0, 0, 0, 0, 1, 2, i64::MAX, i64::MIN, 0]
    );
    assert_eq!(cast::<f32, u8>(&f32s), [1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
    let back: Vec<f64> = cast::<f32, f64>(&f32s);
    assert!(back
        .iter()
        .zip(&f32s)
        .all(|(&b, &a)| b.to_bits() == (a as f64).to_bits() || (b.is_nan() && a.is_nan())));
    let down = cast::<f64, f32>(&[0.1, -1e300, 1e-300]);
    assert_eq!(down, [0.1f32, f32::NEG_INFINITY, 0.0]);
    let ints = [-3i64, 0, 1, 255, 256, i64::MAX];
    assert_eq!(
        cast::<i64, f64>(&ints),
        [-3.0, 0.0, 1.0, 255.0, 256.0, 9.223_372_036_854_776e18]
    );
    assert_eq!(
        cast::<i64, f32>(&ints),
        [-3.0f32, 0.0, 1.0, 255.0, 256.0, 9.223_372e18]
    );
    assert_eq!(cast::<i64, u8>(&ints), [1, 0, 1, 1, 1, 1]);
    assert_eq!(cast::<i64, i64>(&ints), ints);
    let bytes = [0u8, 1, 2, 255];
    assert_eq!(cast::<u8, f32>(&bytes), [0.0f32, 1.0, 2.0, 255.0]);
    assert_eq!(cast::<u8, f64>(&bytes), [0.0, 1.0, 2.0, 255.0]);
    assert_eq!(cast::<u8, i64>(&bytes), [0, 1, 2, 255]);
    assert_eq!(cast::<u8, u8>(&bytes), [0, 1, 1, 1]);
    assert_eq!(cast::<f32, f32>(&[1.5f32, -0.0]), [1.5f32, -0.0]);
    assert_eq!(cast::<f64, f64>(&[1.5, 2.0]), [1.5, 2.0]);
}

fn check_concat<T: Element + PartialEq>(gen: impl Fn(usize) -> T) {
    // Three inputs of shape [2, 3, 4] with extents 1, 0 and 3 along `ax`;
    // the first one transposed.
    for ax in 0..3 {
        let extents = [1usize, 0, 3];
        let shape_of = |e: usize| -> Vec<usize> {
            (0..3)
                .map(|k| if k == ax { e } else { [2, 3, 4][k] })
                .collect()
        };
        let mut start = 0;
        let mut parts = vec![];
        for (p, &e) in extents.iter().enumerate() {
            let shape = shape_of(e);
            let n: usize = shape.iter().product();
            let vals: Vec<T> = (0..n).map(|i| gen(1000 * p + i)).collect();
            let t = if p == 0 {
                // Column-major storage of the same values.
                let (d0, d1, d2) = (shape[0], shape[1], shape[2]);
                let mut cm = vals.clone();
                for i in 0..d0 {
                    for j in 0..d1 {
                        for k in 0..d2 {
                            cm[i + d0 * (j + d1 * k)] = vals[(i * d1 + j) * d2 + k];
                        }
                    }
                }
                HostTensor::strided(&cm, &shape, &[1, d0, d0 * d1], 0)
            } else {
                HostTensor::new(&vals, &shape)
            };
            assert_eq!(t.read::<T>(), vals);
            parts.push((t, vals, start, e));
            start += e;
        }
        let out_shape = shape_of(start);
        let out = HostTensor::zeros::<T>(&out_shape);
        let refs: Vec<&HostTensor> = parts.iter().map(|p| &p.0).collect();
        run(OpId::Concat, axis(ax as u32), &refs, &[&out]).unwrap();
        let got = out.read::<T>();
        let mut want = vec![got[0]; got.len()];
        for (_, vals, s, e) in &parts {
            let sh = shape_of(*e);
            for i in 0..sh[0] {
                for j in 0..sh[1] {
                    for k in 0..sh[2] {
                        let mut o = [i, j, k];
                        o[ax] += s;
                        want[(o[0] * out_shape[1] + o[1]) * out_shape[2] + o[2]] =
                            vals[(i * sh[1] + j) * sh[2] + k];
                    }
                }
            }
        }
        assert!(got == want, "concat {:?} along {ax}", T::DTYPE);
    }
}

#[test]
fn concat_along_every_axis_and_dtype() {
    check_concat::<f32>(|i| i as f32 + 0.5);
    check_concat::<f64>(|i| -(i as f64));
    check_concat::<i64>(|i| i as i64 * 7);
    check_concat::<u8>(|i| (i % 251) as u8);
}

#[test]
fn large_ops_split_over_threads_match_reference() {
    // Above the parallel threshold, with rows that do not divide evenly
    // into chunks, transposed and broadcast operands.
    let (m, n) = (517, 613);
    let mut rng = Rng::new(71);
    let a = operand::<f32>(m, n, Layout::Transposed, 0.0, || {
        rng.uniform(-2.0, 2.0) as f32
    });
    let b = operand::<f32>(m, n, Layout::Row, 0.0, || rng.uniform(-2.0, 2.0) as f32);
    let c = HostTensor::zeros::<f32>(&[m, n]);
    run(OpId::Mul, Params::None, &[&a.t, &b.t], &[&c]).unwrap();
    let want: Vec<f32> = a.vals.iter().zip(&b.vals).map(|(&x, &y)| x * y).collect();
    assert_eq!(c.read::<f32>(), want);
    let x = operand::<f32>(m, n, Layout::Contig, 0.0, || rng.uniform(-8.0, 8.0) as f32);
    let y = HostTensor::strided(&vec![0f32; m * n], &[m, n], &[1, m], 0);
    run(OpId::Sigmoid, Params::None, &[&x.t], &[&y]).unwrap();
    for (&g, &xv) in y.read::<f32>().iter().zip(&x.vals) {
        let want = unary_ref(OpId::Sigmoid, xv as f64) as f32;
        assert!(ulps(g, want) <= 4, "sigmoid({xv}) = {g}, want {want}");
    }
    let big = HostTensor::zeros::<f64>(&[m, n]);
    run(OpId::Fill, fill(3.0), &[], &[&big]).unwrap();
    assert!(big.read::<f64>().iter().all(|&v| v == 3.0));
}
