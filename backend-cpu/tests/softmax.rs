//! `softmax`, `log_softmax` and their backward ops against plain f64 loops
//! and central finite differences, on contiguous and strided inputs along
//! every axis; error paths; and an ignored bandwidth report.

use sunrise_backend_api::ops::AxisParams;
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{lay, run, HostTensor, Rng};

fn params(axis: u32) -> Params {
    Params::Axis(AxisParams {
        struct_size: AxisParams::SIZE,
        axis,
        reserved: 0,
    })
}

/// `(outer, n, inner)` around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Reference forward (f64) along `axis` of row-major `x`.
fn forward_ref(x: &[f64], shape: &[usize], axis: usize, log: bool) -> Vec<f64> {
    let (outer, n, inner) = split(shape, axis);
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for c in 0..inner {
            let at = |j: usize| o * n * inner + j * inner + c;
            let m = (0..n).map(|j| x[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..n).map(|j| (x[at(j)] - m).exp()).sum();
            for j in 0..n {
                y[at(j)] = if log {
                    x[at(j)] - m - s.ln()
                } else {
                    (x[at(j)] - m).exp() / s
                };
            }
        }
    }
    y
}

fn forward<T: Element>(op: OpId, x: &HostTensor, shape: &[usize], axis: usize) -> Vec<T> {
    let out = HostTensor::zeros::<T>(shape);
    run(op, params(axis as u32), &[x], &[&out]).unwrap_or_else(|e| panic!("{op}: {e}"));
    out.read::<T>()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what} [{i}]: got {g}, want {w}"
        );
    }
}

const SHAPES: &[&[usize]] = &[&[9], &[5, 7], &[3, 4, 5], &[2, 33], &[1, 1], &[4, 1, 17]];

#[test]
fn forward_matches_reference_along_every_axis_and_layout() {
    let mut rng = Rng::new(1);
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        let x64: Vec<f64> = rng.vec(n, -8.0, 8.0);
        let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let x32_64: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        for axis in 0..shape.len() {
            for (op, log) in [(OpId::Softmax, false), (OpId::LogSoftmax, true)] {
                for mode in 0..3 {
                    let tag = format!("{op} {shape:?} axis {axis} mode {mode}");
                    let g64 = forward::<f64>(op, &lay(&x64, shape, mode), shape, axis);
                    assert_close(&g64, &forward_ref(&x64, shape, axis, log), 1e-13, &tag);
                    let g32 = forward::<f32>(op, &lay(&x32, shape, mode), shape, axis);
                    let g32: Vec<f64> = g32.iter().map(|&v| v as f64).collect();
                    assert_close(&g32, &forward_ref(&x32_64, shape, axis, log), 2e-6, &tag);
                }
            }
        }
    }
}

#[test]
fn large_f32_rows_match_reference() {
    // Last axis (SIMD rows, parallel) and a non-last axis (column path).
    let mut rng = Rng::new(2);
    for (shape, axis) in [([300usize, 1001], 1usize), ([1001, 300], 0)] {
        let x: Vec<f32> = rng.vec(300 * 1001, -30.0, 30.0);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        for (op, log) in [(OpId::Softmax, false), (OpId::LogSoftmax, true)] {
            let got: Vec<f64> = forward::<f32>(op, &HostTensor::new(&x, &shape), &shape, axis)
                .iter()
                .map(|&v| v as f64)
                .collect();
            assert_close(
                &got,
                &forward_ref(&x64, &shape, axis, log),
                2e-6,
                &format!("{op} {shape:?}"),
            );
        }
    }
}

/// `dx` from the backward op for forward output `y` and upstream `dy`.
fn backward<T: Element>(
    op: OpId,
    y: &[T],
    dy: &[T],
    shape: &[usize],
    axis: usize,
    mode: usize,
) -> Vec<T> {
    let out = HostTensor::zeros::<T>(shape);
    let (yt, gt) = (lay(y, shape, mode), lay(dy, shape, mode));
    run(op, params(axis as u32), &[&yt, &gt], &[&out]).unwrap_or_else(|e| panic!("{op}: {e}"));
    out.read::<T>()
}

#[test]
fn backward_matches_central_differences() {
    let mut rng = Rng::new(3);
    let h = 1e-5;
    for shape in [&[4usize, 6][..], &[3, 4, 5], &[7]] {
        let n: usize = shape.iter().product();
        let x: Vec<f64> = rng.vec(n, -3.0, 3.0);
        let w: Vec<f64> = rng.vec(n, -1.0, 1.0);
        for axis in 0..shape.len() {
            for (fwd, bwd, log) in [
                (OpId::Softmax, OpId::SoftmaxBackward, false),
                (OpId::LogSoftmax, OpId::LogSoftmaxBackward, true),
            ] {
                // L(x) = sum w * f(x), evaluated through the forward op.
                let loss = |x: &[f64]| -> f64 {
                    let y = forward::<f64>(fwd, &HostTensor::new(x, shape), shape, axis);
                    y.iter().zip(&w).map(|(a, b)| a * b).sum()
                };
                let y = forward_ref(&x, shape, axis, log);
                for mode in [0, 1] {
                    let dx = backward::<f64>(bwd, &y, &w, shape, axis, mode);
                    let fd: Vec<f64> = (0..n)
                        .map(|i| {
                            let (mut xp, mut xm) = (x.clone(), x.clone());
                            xp[i] += h;
                            xm[i] -= h;
                            (loss(&xp) - loss(&xm)) / (2.0 * h)
                        })
                        .collect();
                    assert_close(
                        &dx,
                        &fd,
                        1e-7,
                        &format!("{bwd} {shape:?} axis {axis} mode {mode}"),
                    );
                }
                // f32 backward against the same formula in f64.
                let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
                let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
                let y32_64: Vec<f64> = y32.iter().map(|&v| v as f64).collect();
                let w32_64: Vec<f64> = w32.iter().map(|&v| v as f64).collect();
                let want = backward::<f64>(bwd, &y32_64, &w32_64, shape, axis, 0);
                let got: Vec<f64> = backward::<f32>(bwd, &y32, &w32, shape, axis, 2)
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                assert_close(
                    &got,
                    &want,
                    1e-6,
                    &format!("{bwd} f32 {shape:?} axis {axis}"),
                );
            }
        }
    }
}

#[test]
fn rows_of_infinities_and_nans_follow_the_documented_rules() {
    let x = HostTensor::new(&[f32::NEG_INFINITY, 0.0, 1.0, f32::NAN, 2.0, 3.0], &[2, 3]);
    let y = forward::<f32>(OpId::Softmax, &x, &[2, 3], 1);
    assert_eq!(y[0], 0.0);
    assert!((y[1] + y[2] - 1.0).abs() < 1e-6);
    assert!(y[3..].iter().all(|v| v.is_nan()));
}

#[test]
fn bad_calls_are_typed_errors() {
    let x = HostTensor::new(&[0.5f32; 6], &[2, 3]);
    let out = HostTensor::zeros::<f32>(&[2, 3]);
    let code = |op, axis, ins: &[&HostTensor], outs: &[&HostTensor]| {
        run(op, params(axis), ins, outs).unwrap_err().code
    };
    use StatusCode::*;
    assert_eq!(code(OpId::Softmax, 2, &[&x], &[&out]), InvalidArgument);
    assert_eq!(
        code(
            OpId::Softmax,
            1,
            &[&x],
            &[&HostTensor::zeros::<f32>(&[3, 2])]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::Softmax,
            1,
            &[&x],
            &[&HostTensor::zeros::<f64>(&[2, 3])]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(OpId::SoftmaxBackward, 1, &[&x], &[&out]),
        InvalidArgument
    );
    let dy = HostTensor::new(&[0.5f32; 4], &[2, 2]);
    assert_eq!(
        code(OpId::LogSoftmaxBackward, 1, &[&x, &dy], &[&out]),
        InvalidArgument
    );
    let dy64 = HostTensor::new(&[0.5f64; 6], &[2, 3]);
    assert_eq!(
        code(OpId::SoftmaxBackward, 1, &[&x, &dy64], &[&out]),
        InvalidArgument
    );
    let ints = HostTensor::new(&[1i64; 6], &[2, 3]);
    assert_eq!(
        code(
            OpId::LogSoftmax,
            1,
            &[&ints],
            &[&HostTensor::zeros::<i64>(&[2, 3])]
        ),
        Unsupported
    );
}

/// Bandwidth of f32 row sum and softmax over [4096, 4096] beside a memcpy
/// of the same bytes. Run per tier with
/// `SUNRISE_CPU_ISA=<tier> cargo test --release -p sunrise-backend-cpu --test softmax -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark report, not a test"]
fn bandwidth_report() {
    use sunrise_backend_api::ops::ReduceParams;
    let (rows, cols) = (4096usize, 4096usize);
    let x: Vec<f32> = Rng::new(9).vec(rows * cols, -4.0, 4.0);
    let xt = HostTensor::new(&x, &[rows, cols]);
    let sums = HostTensor::zeros::<f32>(&[rows, 1]);
    let y = HostTensor::zeros::<f32>(&[rows, cols]);
    let bytes = (rows * cols * 4) as f64;
    let best = |f: &mut dyn FnMut()| {
        f();
        (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mut dst = vec![0f32; rows * cols];
    let copy = best(&mut || dst.copy_from_slice(std::hint::black_box(&x)));
    let rp = Params::Reduce(ReduceParams {
        struct_size: ReduceParams::SIZE,
        axes_mask: 0b10,
    });
    let sum = best(&mut || run(OpId::Sum, rp, &[&xt], &[&sums]).unwrap());
    let soft = best(&mut || run(OpId::Softmax, params(1), &[&xt], &[&y]).unwrap());
    let gbs = |secs: f64, traffic: f64| traffic / secs / 1e9;
    println!(
        "tier {} threads {}: memcpy {:.1} GB/s (read+write) | row sum {:.1} GB/s (read) | softmax {:.1} GB/s (read+write)",
        sunrise_backend_cpu::isa::tier(),
        sunrise_backend_cpu::threads::num_threads(),
        gbs(copy, 2.0 * bytes),
        gbs(sum, bytes),
        gbs(soft, 2.0 * bytes)
    );
}
