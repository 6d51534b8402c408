//! `layer_norm`, `batch_norm` and their backward ops against plain f64
//! loops and central finite differences; error paths.

use sunrise_backend_api::ops::NormParams;
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{lay, run, HostTensor, Rng};

fn params(axis: u32, training: u32, eps: f64) -> Params {
    Params::Norm(NormParams {
        struct_size: NormParams::SIZE,
        eps,
        axis,
        training,
    })
}

fn to64<T: Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn from64<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
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

/// Reference layer norm over rows of length `d`: `(y, mean, rstd)`.
fn ln_ref(x: &[f64], d: usize, g: &[f64], b: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut y, mut ms, mut rs) = (vec![0.0; x.len()], vec![], vec![]);
    for (r, row) in x.chunks(d).enumerate() {
        let m = row.iter().sum::<f64>() / d as f64;
        let v = row.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / d as f64;
        let rstd = 1.0 / (v + eps).sqrt();
        for j in 0..d {
            y[r * d + j] = (row[j] - m) * rstd * g[j] + b[j];
        }
        ms.push(m);
        rs.push(rstd);
    }
    (y, ms, rs)
}

/// Runs layer norm; returns `(y, mean, rstd)` as f64.
fn ln_run<T: Element>(
    x: &HostTensor,
    g: &[T],
    b: &[T],
    shape: &[usize],
    k: usize,
    eps: f64,
) -> [Vec<f64>; 3] {
    let split = shape.len() - k;
    let mut stats = shape[..split].to_vec();
    stats.resize(shape.len(), 1);
    let (gt, bt) = (
        HostTensor::new(g, &shape[split..]),
        HostTensor::new(b, &shape[split..]),
    );
    let outs = [
        HostTensor::zeros::<T>(shape),
        HostTensor::zeros::<T>(&stats),
        HostTensor::zeros::<T>(&stats),
    ];
    run(
        OpId::LayerNorm,
        params(k as u32, 0, eps),
        &[x, &gt, &bt],
        &[&outs[0], &outs[1], &outs[2]],
    )
    .unwrap_or_else(|e| panic!("layer_norm {shape:?}: {e}"));
    outs.map(|o| to64(&o.read::<T>()))
}

#[test]
fn layer_norm_matches_reference() {
    let mut rng = Rng::new(1);
    let cases: &[(&[usize], usize)] = &[
        (&[4, 6], 1),
        (&[2, 3, 5], 2),
        (&[2, 3, 5], 1),
        (&[3, 4], 2),
        (&[5, 37], 1),
        (&[400, 513], 1),
    ];
    for &(shape, k) in cases {
        let n: usize = shape.iter().product();
        let d: usize = shape[shape.len() - k..].iter().product();
        let x: Vec<f64> = rng.vec(n, -3.0, 5.0);
        let (g, b): (Vec<f64>, Vec<f64>) = (rng.vec(d, 0.5, 1.5), rng.vec(d, -1.0, 1.0));
        let x32: Vec<f32> = from64(&x);
        let (g32, b32): (Vec<f32>, Vec<f32>) = (from64(&g), from64(&b));
        let (y, m, r) = ln_ref(&x, d, &g, &b, 1e-5);
        let (y32, m32, r32) = ln_ref(&to64(&x32), d, &to64(&g32), &to64(&b32), 1e-5);
        for mode in 0..3 {
            let tag = format!("{shape:?} k={k} mode {mode}");
            let got = ln_run(&lay(&x, shape, mode), &g, &b, shape, k, 1e-5);
            assert_close(&got[0], &y, 1e-12, &tag);
            assert_close(&got[1], &m, 1e-12, &tag);
            assert_close(&got[2], &r, 1e-12, &tag);
            let got = ln_run(&lay(&x32, shape, mode), &g32, &b32, shape, k, 1e-5);
            assert_close(&got[0], &y32, 2e-6, &tag);
            assert_close(&got[1], &m32, 1e-6, &tag);
            assert_close(&got[2], &r32, 1e-6, &tag);
        }
    }
}

/// Central differences of `loss` at `p` (step `h`).
fn numeric_grad(p: &[f64], h: f64, loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    (0..p.len())
        .map(|i| {
            let (mut a, mut b) = (p.to_vec(), p.to_vec());
            a[i] += h;
            b[i] -= h;
            (loss(&a) - loss(&b)) / (2.0 * h)
        })
        .collect()
}

/// A scalar loss of `(x, gamma, beta)`.
type Loss3<'a> = dyn Fn(&[f64], &[f64], &[f64]) -> f64 + 'a;

/// Checks `(dx, dgamma, dbeta)` against central differences of `loss`.
fn assert_grads(got: &[Vec<f64>], [x, g, b]: [&[f64]; 3], loss: &Loss3<'_>, tag: &str) {
    assert_close(
        &got[0],
        &numeric_grad(x, 1e-5, |x| loss(x, g, b)),
        1e-7,
        &format!("dx {tag}"),
    );
    assert_close(
        &got[1],
        &numeric_grad(g, 1e-5, |g| loss(x, g, b)),
        1e-7,
        &format!("dgamma {tag}"),
    );
    assert_close(
        &got[2],
        &numeric_grad(b, 1e-5, |b| loss(x, g, b)),
        1e-7,
        &format!("dbeta {tag}"),
    );
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Runs a backward op with inputs `(x, gamma, mean, rstd, dy)`.
#[allow(
    clippy::too_many_arguments,
    reason = "one argument per op input, as the op takes them"
)]
fn bwd_run<T: Element>(
    op: OpId,
    p: Params,
    x: &HostTensor,
    g: &HostTensor,
    m: &HostTensor,
    r: &HostTensor,
    dy: &HostTensor,
    gshape: &[usize],
) -> [Vec<f64>; 3] {
    let outs = [
        HostTensor::zeros::<T>(&x.shape()),
        HostTensor::zeros::<T>(gshape),
        HostTensor::zeros::<T>(gshape),
    ];
    run(op, p, &[x, g, m, r, dy], &[&outs[0], &outs[1], &outs[2]])
        .unwrap_or_else(|e| panic!("{op}: {e}"));
    outs.map(|o| to64(&o.read::<T>()))
}

#[test]
fn layer_norm_backward_matches_central_differences() {
    let mut rng = Rng::new(2);
    let eps = 1e-3;
    for &(shape, k) in &[(&[3usize, 5][..], 1usize), (&[2, 3, 4], 2), (&[4, 7], 1)] {
        let n: usize = shape.iter().product();
        let split = shape.len() - k;
        let d: usize = shape[split..].iter().product();
        let mut stats = shape[..split].to_vec();
        stats.resize(shape.len(), 1);
        let x: Vec<f64> = rng.vec(n, -2.0, 2.0);
        let (g, b, w): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            rng.vec(d, 0.5, 1.5),
            rng.vec(d, -1.0, 1.0),
            rng.vec(n, -1.0, 1.0),
        );
        let loss = |x: &[f64], g: &[f64], b: &[f64]| {
            dot(
                &ln_run(&HostTensor::new(x, shape), g, b, shape, k, eps)[0],
                &w,
            )
        };
        let [_, m, r] = ln_run(&HostTensor::new(&x, shape), &g, &b, shape, k, eps);
        for mode in [0, 2] {
            let got = bwd_run::<f64>(
                OpId::LayerNormBackward,
                params(k as u32, 0, eps),
                &lay(&x, shape, mode),
                &HostTensor::new(&g, &shape[split..]),
                &HostTensor::new(&m, &stats),
                &HostTensor::new(&r, &stats),
                &lay(&w, shape, mode),
                &shape[split..],
            );
            let tag = format!("{shape:?} k={k} mode {mode}");
            assert_grads(&got, [&x, &g, &b], &loss, &tag);
            // f32 gives the f64 result to f32 precision.
            let f = |v: &[f64]| -> Vec<f32> { from64(v) };
            let got32 = bwd_run::<f32>(
                OpId::LayerNormBackward,
                params(k as u32, 0, eps),
                &lay(&f(&x), shape, mode),
                &HostTensor::new(&f(&g), &shape[split..]),
                &HostTensor::new(&f(&m), &stats),
                &HostTensor::new(&f(&r), &stats),
                &lay(&f(&w), shape, mode),
                &shape[split..],
            );
            for i in 0..3 {
                assert_close(&got32[i], &got[i], 1e-4, &format!("f32 output {i} {tag}"));
            }
        }
    }
}

/// Reference batch norm statistics of `[N, C, S]`: `(mean, rstd)` per channel.
fn bn_stats(x: &[f64], n: usize, c: usize, s: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let m = (n * s) as f64;
    let at = |i: usize, k: usize, j: usize| x[(i * c + k) * s + j];
    let mean: Vec<f64> = (0..c)
        .map(|k| {
            (0..n)
                .flat_map(|i| (0..s).map(move |j| (i, j)))
                .map(|(i, j)| at(i, k, j))
                .sum::<f64>()
                / m
        })
        .collect();
    let rstd = (0..c)
        .map(|k| {
            let v: f64 = (0..n)
                .flat_map(|i| (0..s).map(move |j| (i, j)))
                .map(|(i, j)| (at(i, k, j) - mean[k]).powi(2))
                .sum();
            1.0 / (v / m + eps).sqrt()
        })
        .collect();
    (mean, rstd)
}

fn bn_apply(x: &[f64], c: usize, s: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| v * a[(i / s) % c] + b[(i / s) % c])
        .collect()
}

/// Runs training-mode batch norm; returns `(y, mean, rstd)`.
fn bn_train<T: Element>(x: &HostTensor, g: &[T], b: &[T], eps: f64) -> [Vec<f64>; 3] {
    let shape = x.shape();
    let c = shape[1];
    let outs = [
        HostTensor::zeros::<T>(&shape),
        HostTensor::zeros::<T>(&[c]),
        HostTensor::zeros::<T>(&[c]),
    ];
    let (gt, bt) = (HostTensor::new(g, &[c]), HostTensor::new(b, &[c]));
    run(
        OpId::BatchNorm,
        params(1, 1, eps),
        &[x, &gt, &bt],
        &[&outs[0], &outs[1], &outs[2]],
    )
    .unwrap_or_else(|e| panic!("batch_norm {shape:?}: {e}"));
    outs.map(|o| to64(&o.read::<T>()))
}

#[test]
fn batch_norm_matches_reference_in_training_and_inference() {
    let mut rng = Rng::new(3);
    let eps = 1e-5;
    for shape in [&[4usize, 3, 5, 2][..], &[6, 4], &[2, 5, 7], &[8, 6, 60, 50]] {
        let (n, c, s) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
        let x: Vec<f64> = rng.vec(n * c * s, -2.0, 4.0);
        let (g, b): (Vec<f64>, Vec<f64>) = (rng.vec(c, 0.5, 1.5), rng.vec(c, -1.0, 1.0));
        let x32: Vec<f32> = from64(&x);
        for (xs, g, b, tol) in [
            (x.clone(), g.clone(), b.clone(), 1e-12),
            (
                to64(&x32),
                to64(&from64::<f32>(&g)),
                to64(&from64::<f32>(&b)),
                2e-6,
            ),
        ] {
            let (mean, rstd) = bn_stats(&xs, n, c, s, eps);
            let a: Vec<f64> = (0..c).map(|k| rstd[k] * g[k]).collect();
            let sh: Vec<f64> = (0..c).map(|k| b[k] - mean[k] * a[k]).collect();
            let y = bn_apply(&xs, c, s, &a, &sh);
            for mode in [0, 1] {
                let tag = format!("{shape:?} mode {mode} tol {tol}");
                let got = if tol < 1e-9 {
                    bn_train(&lay(&xs, shape, mode), &g, &b, eps)
                } else {
                    bn_train(
                        &lay(&from64::<f32>(&xs), shape, mode),
                        &from64::<f32>(&g),
                        &from64::<f32>(&b),
                        eps,
                    )
                };
                assert_close(&got[0], &y, tol, &tag);
                assert_close(&got[1], &mean, tol, &tag);
                assert_close(&got[2], &rstd, tol, &tag);
            }
            // Inference with running statistics.
            let (rm, rv): (Vec<f64>, Vec<f64>) = (rng.vec(c, -1.0, 1.0), rng.vec(c, 0.5, 2.0));
            let a: Vec<f64> = (0..c).map(|k| g[k] / (rv[k] + eps).sqrt()).collect();
            let sh: Vec<f64> = (0..c).map(|k| b[k] - rm[k] * a[k]).collect();
            let want = bn_apply(&xs, c, s, &a, &sh);
            let got = if tol < 1e-9 {
                let ins = [
                    lay(&xs, shape, 2),
                    HostTensor::new(&g, &[c]),
                    HostTensor::new(&b, &[c]),
                    HostTensor::new(&rm, &[c]),
                    HostTensor::new(&rv, &[c]),
                ];
                let y = HostTensor::zeros::<f64>(shape);
                run(
                    OpId::BatchNorm,
                    params(1, 0, eps),
                    &[&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]],
                    &[&y],
                )
                .unwrap();
                y.read::<f64>()
            } else {
                let f = |v: &[f64]| from64::<f32>(v);
                let ins = [
                    lay(&f(&xs), shape, 2),
                    HostTensor::new(&f(&g), &[c]),
                    HostTensor::new(&f(&b), &[c]),
                    HostTensor::new(&f(&rm), &[c]),
                    HostTensor::new(&f(&rv), &[c]),
                ];
                let y = HostTensor::zeros::<f32>(shape);
                run(
                    OpId::BatchNorm,
                    params(1, 0, eps),
                    &[&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]],
                    &[&y],
                )
                .unwrap();
                to64(&y.read::<f32>())
            };
            let want = if tol < 1e-9 {
                want
            } else {
                to64(&from64::<f32>(&want))
            };
            assert_close(&got, &want, tol.max(1e-6), &format!("inference {shape:?}"));
        }
    }
}

#[test]
fn batch_norm_backward_matches_central_differences() {
    let mut rng = Rng::new(4);
    let eps = 1e-3;
    for shape in [&[3usize, 2, 4][..], &[5, 3], &[2, 2, 2, 3]] {
        let (n, c) = (shape[0], shape[1]);
        let total: usize = shape.iter().product();
        let x: Vec<f64> = rng.vec(total, -2.0, 2.0);
        let (g, b, w): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            rng.vec(c, 0.5, 1.5),
            rng.vec(c, -1.0, 1.0),
            rng.vec(total, -1.0, 1.0),
        );
        let loss = |x: &[f64], g: &[f64], b: &[f64]| {
            dot(&bn_train(&HostTensor::new(x, shape), g, b, eps)[0], &w)
        };
        let [_, m, r] = bn_train(&HostTensor::new(&x, shape), &g, &b, eps);
        for mode in [0, 1] {
            let got = bwd_run::<f64>(
                OpId::BatchNormBackward,
                params(1, 1, eps),
                &lay(&x, shape, mode),
                &HostTensor::new(&g, &[c]),
                &HostTensor::new(&m, &[c]),
                &HostTensor::new(&r, &[c]),
                &lay(&w, shape, mode),
                &[c],
            );
            let tag = format!("{shape:?} n={n} mode {mode}");
            assert_grads(&got, [&x, &g, &b], &loss, &tag);
        }
    }
}

#[test]
fn bad_calls_are_typed_errors() {
    use StatusCode::*;
    let x = HostTensor::new(&[1.0f32; 12], &[2, 3, 2]);
    let (g3, b3) = (
        HostTensor::new(&[1.0f32; 3], &[3]),
        HostTensor::new(&[0.0f32; 3], &[3]),
    );
    let (g2, b2) = (
        HostTensor::new(&[1.0f32; 2], &[2]),
        HostTensor::new(&[0.0f32; 2], &[2]),
    );
    let y = HostTensor::zeros::<f32>(&[2, 3, 2]);
    let st = HostTensor::zeros::<f32>(&[2, 3, 1]);
    let code =
        |op, p, ins: &[&HostTensor], outs: &[&HostTensor]| run(op, p, ins, outs).unwrap_err().code;
    // layer norm: axis 0 and beyond the rank; gamma of the wrong shape; stats shape; NaN eps
    assert_eq!(
        code(
            OpId::LayerNorm,
            params(0, 0, 1e-5),
            &[&x, &g2, &b2],
            &[&y, &st, &st]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::LayerNorm,
            params(4, 0, 1e-5),
            &[&x, &g2, &b2],
            &[&y, &st, &st]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::LayerNorm,
            params(1, 0, 1e-5),
            &[&x, &g3, &b3],
            &[&y, &st, &st]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::LayerNorm,
            params(1, 0, 1e-5),
            &[&x, &g2, &b2],
            &[&y, &y, &st]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::LayerNorm,
            params(1, 0, f64::NAN),
            &[&x, &g2, &b2],
            &[&y, &st, &st]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::LayerNorm,
            params(1, 0, 1e-5),
            &[&x, &g2],
            &[&y, &st, &st]
        ),
        InvalidArgument
    );
    // batch norm: channel axis must be 1; output counts per mode; [C] shapes; rank >= 2
    let c3 = HostTensor::zeros::<f32>(&[3]);
    assert_eq!(
        code(
            OpId::BatchNorm,
            params(2, 1, 1e-5),
            &[&x, &g3, &b3],
            &[&y, &c3, &c3]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(OpId::BatchNorm, params(1, 1, 1e-5), &[&x, &g3, &b3], &[&y]),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::BatchNorm,
            params(1, 0, 1e-5),
            &[&x, &g3, &b3, &g3, &g3],
            &[&y, &c3, &c3]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::BatchNorm,
            params(1, 2, 1e-5),
            &[&x, &g3, &b3],
            &[&y, &c3, &c3]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::BatchNorm,
            params(1, 1, 1e-5),
            &[&x, &g2, &b2],
            &[&y, &c3, &c3]
        ),
        InvalidArgument
    );
    let v = HostTensor::new(&[1.0f32; 3], &[3]);
    assert_eq!(
        code(
            OpId::BatchNorm,
            params(1, 1, 1e-5),
            &[&v, &g3, &b3],
            &[&v, &c3, &c3]
        ),
        InvalidArgument
    );
    let y64 = HostTensor::zeros::<f64>(&[2, 3, 2]);
    assert_eq!(
        code(
            OpId::BatchNorm,
            params(1, 0, 1e-5),
            &[&x, &g3, &b3, &g3, &g3],
            &[&y64]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::BatchNormBackward,
            params(1, 1, 1e-5),
            &[&x, &g3, &c3, &c3, &y],
            &[&y, &c3]
        ),
        InvalidArgument
    );
    let ints = HostTensor::new(&[1i64; 12], &[2, 3, 2]);
    assert_eq!(
        code(
            OpId::BatchNorm,
            params(1, 1, 1e-5),
            &[&ints, &g3, &b3],
            &[&y, &c3, &c3]
        ),
        Unsupported
    );
}
