//! `cross_entropy` and its backward against plain f64 loops and central
//! finite differences, with ignored labels and strided logits; error paths.

use sunrise_backend_api::ops::CrossEntropyParams;
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{run, HostTensor, Rng};

const IGNORE: i64 = -100;

fn params(ignore_index: i64) -> Params {
    Params::CrossEntropy(CrossEntropyParams {
        struct_size: CrossEntropyParams::SIZE,
        ignore_index,
    })
}

/// `[n, c]` logits: contiguous (0), transposed in memory (1), or every
/// other element (2).
fn logits<T: Element>(data: &[T], n: usize, c: usize, mode: usize) -> HostTensor {
    let (strides, len) = match mode {
        1 => (vec![1, n], n * c),
        2 => (vec![2 * c, 2], 2 * n * c),
        _ => (vec![c, 1], n * c),
    };
    let mut backing = vec![T::from_f64(1e3); len.max(1)];
    for i in 0..n {
        for j in 0..c {
            backing[i * strides[0] + j * strides[1]] = data[i * c + j];
        }
    }
    HostTensor::strided(&backing, &[n, c], &strides, 0)
}

fn loss_ref(x: &[f64], c: usize, labels: &[i64]) -> Vec<f64> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if l == IGNORE {
                return 0.0;
            }
            let row = &x[i * c..(i + 1) * c];
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - row[l as usize]
        })
        .collect()
}

fn forward<T: Element>(x: &HostTensor, labels: &[i64]) -> Vec<f64> {
    let n = labels.len();
    let out = HostTensor::zeros::<T>(&[n]);
    run(
        OpId::CrossEntropy,
        params(IGNORE),
        &[x, &HostTensor::new(labels, &[n])],
        &[&out],
    )
    .unwrap();
    out.read::<T>().iter().map(|v| v.to_f64()).collect()
}

fn backward<T: Element>(x: &HostTensor, labels: &[i64], dloss: &[T], c: usize) -> Vec<f64> {
    let n = labels.len();
    let out = HostTensor::zeros::<T>(&[n, c]);
    let ins = [HostTensor::new(labels, &[n]), HostTensor::new(dloss, &[n])];
    run(
        OpId::CrossEntropyBackward,
        params(IGNORE),
        &[x, &ins[0], &ins[1]],
        &[&out],
    )
    .unwrap();
    out.read::<T>().iter().map(|v| v.to_f64()).collect()
}

fn labels(rng: &mut Rng, n: usize, c: usize) -> Vec<i64> {
    (0..n)
        .map(|i| {
            if i % 5 == 3 {
                IGNORE
            } else {
                rng.uniform(0.0, c as f64) as i64
            }
        })
        .collect()
}

#[test]
fn forward_matches_reference() {
    let mut rng = Rng::new(1);
    for (n, c) in [(1usize, 1usize), (7, 10), (16, 33), (3, 1000), (300, 1001)] {
        let x: Vec<f64> = rng.vec(n * c, -20.0, 20.0);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let x32_64: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        let l = labels(&mut rng, n, c);
        for mode in 0..3 {
            let got = forward::<f64>(&logits(&x, n, c, mode), &l);
            for (g, w) in got.iter().zip(loss_ref(&x, c, &l)) {
                assert!(
                    (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                    "f64 {n}x{c} mode {mode}: {g} vs {w}"
                );
            }
            let got = forward::<f32>(&logits(&x32, n, c, mode), &l);
            for (g, w) in got.iter().zip(loss_ref(&x32_64, c, &l)) {
                // |logits| <= 20: the f32 log-sum-exp rounds at ~2^-19.
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "f32 {n}x{c} mode {mode}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn backward_matches_central_differences() {
    let mut rng = Rng::new(2);
    for (n, c) in [(5usize, 4usize), (6, 17), (2, 1)] {
        let x: Vec<f64> = rng.vec(n * c, -3.0, 3.0);
        let l = labels(&mut rng, n, c);
        let dl: Vec<f64> = rng.vec(n, -1.0, 1.0);
        // L(x) = sum dloss * loss(x)
        let total = |x: &[f64]| -> f64 {
            forward::<f64>(&HostTensor::new(x, &[n, c]), &l)
                .iter()
                .zip(&dl)
                .map(|(a, b)| a * b)
                .sum()
        };
        for mode in 0..3 {
            let got = backward(&logits(&x, n, c, mode), &l, &dl, c);
            for (i, g) in got.iter().enumerate() {
                let (mut a, mut b) = (x.clone(), x.clone());
                a[i] += 1e-5;
                b[i] -= 1e-5;
                let fd = (total(&a) - total(&b)) / 2e-5;
                assert!(
                    (g - fd).abs() < 1e-7,
                    "{n}x{c} mode {mode} [{i}]: {g} vs {fd}"
                );
                if l[i / c] == IGNORE {
                    assert_eq!(*g, 0.0);
                }
            }
            // f32 gives the f64 result to f32 precision.
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let dl32: Vec<f32> = dl.iter().map(|&v| v as f32).collect();
            let got32 = backward(&logits(&x32, n, c, mode), &l, &dl32, c);
            for (a, b) in got32.iter().zip(&got) {
                assert!((a - b).abs() < 1e-6, "f32 {n}x{c} mode {mode}");
            }
        }
    }
}

#[test]
fn large_backward_rows_sum_to_zero_and_match_reference() {
    let mut rng = Rng::new(3);
    let (n, c) = (256usize, 1000usize);
    let x: Vec<f32> = rng.vec(n * c, -10.0, 10.0);
    let l = labels(&mut rng, n, c);
    let dl = vec![1.0f32; n];
    let got = backward(&HostTensor::new(&x, &[n, c]), &l, &dl, c);
    for (i, row) in got.chunks(c).enumerate() {
        let s: f64 = row.iter().sum();
        assert!(s.abs() < 1e-5, "row {i} sums to {s}");
        if l[i] != IGNORE {
            let xr: Vec<f64> = x[i * c..(i + 1) * c].iter().map(|&v| v as f64).collect();
            let m = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = xr.iter().map(|v| (v - m).exp()).sum();
            for (j, g) in row.iter().enumerate() {
                let want = (xr[j] - m).exp() / z - (j as i64 == l[i]) as u8 as f64;
                assert!((g - want).abs() < 1e-6, "row {i} col {j}");
            }
        }
    }
}

#[test]
fn bad_calls_are_typed_errors() {
    use StatusCode::*;
    let x = HostTensor::new(&[0.5f32; 12], &[3, 4]);
    let out = HostTensor::zeros::<f32>(&[3]);
    let dl = HostTensor::new(&[1.0f32; 3], &[3]);
    let code = |op, ins: &[&HostTensor], outs: &[&HostTensor]| {
        run(op, params(IGNORE), ins, outs).unwrap_err().code
    };
    for bad in [[0i64, 4, 1], [0, -1, 1], [-100, -101, 0]] {
        let l = HostTensor::new(&bad, &[3]);
        assert_eq!(
            code(OpId::CrossEntropy, &[&x, &l], &[&out]),
            InvalidArgument,
            "{bad:?}"
        );
        let dx = HostTensor::new(&[9.0f32; 12], &[3, 4]);
        assert_eq!(
            code(OpId::CrossEntropyBackward, &[&x, &l, &dl], &[&dx]),
            InvalidArgument,
            "{bad:?}"
        );
        assert_eq!(dx.read::<f32>(), [9.0; 12], "nothing is written on error");
    }
    let l = HostTensor::new(&[0i64, 1, 2], &[3]);
    assert_eq!(
        code(
            OpId::CrossEntropy,
            &[&x, &HostTensor::new(&[0.0f32, 1.0, 2.0], &[3])],
            &[&out]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::CrossEntropy,
            &[&x, &HostTensor::new(&[0i64, 1], &[2])],
            &[&out]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::CrossEntropy,
            &[&HostTensor::new(&[0.5f32; 12], &[3, 2, 2]), &l],
            &[&out]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::CrossEntropy,
            &[&x, &l],
            &[&HostTensor::zeros::<f32>(&[3, 1])]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::CrossEntropy,
            &[&x, &l],
            &[&HostTensor::zeros::<f64>(&[3])]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(OpId::CrossEntropy, &[&x, &l, &dl], &[&out]),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::CrossEntropyBackward,
            &[&x, &l, &HostTensor::new(&[1.0f32; 2], &[2])],
            &[&HostTensor::zeros::<f32>(&[3, 4])]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(OpId::CrossEntropyBackward, &[&x, &l, &dl], &[&out]),
        InvalidArgument
    );
    let ints = HostTensor::new(&[1i64; 12], &[3, 4]);
    assert_eq!(
        code(
            OpId::CrossEntropy,
            &[&ints, &l],
            &[&HostTensor::zeros::<i64>(&[3])]
        ),
        Unsupported
    );
    let e = run(OpId::CrossEntropy, Params::None, &[&x, &l], &[&out]).unwrap_err();
    assert_eq!(e.code, InvalidArgument);
}
