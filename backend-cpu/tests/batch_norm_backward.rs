//! `batch_norm_backward` against the formula in f64 on block lengths
//! around and past its lane and piece sizes (1, 15, 16, 17, 64, 100, 600),
//! large enough for the pool, dense and transposed, f32 and f64.

use sunrise_backend_api::ops::NormParams;
use sunrise_backend_api::{OpId, Params};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{lay, run, HostTensor, Rng};

fn params() -> Params {
    Params::Norm(NormParams {
        struct_size: NormParams::SIZE,
        eps: 1e-5,
        axis: 1,
        training: 1,
    })
}

/// `(dx, dgamma, dbeta)` from the formula, with the batch statistics of
/// `x` as `T` (what the op gets) and everything else in f64.
fn reference<T: Element>(
    x: &[T],
    g: &[T],
    dy: &[T],
    (n, c, s): (usize, usize, usize),
) -> ([Vec<f64>; 3], Vec<T>, Vec<T>) {
    let at = |i: usize, k: usize, j: usize| (i * c + k) * s + j;
    let m = (n * s) as f64;
    let (mut mean, mut rstd) = (vec![T::from_f64(0.0); c], vec![T::from_f64(0.0); c]);
    let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    for k in 0..c {
        let idx: Vec<usize> = (0..n)
            .flat_map(|i| (0..s).map(move |j| at(i, k, j)))
            .collect();
        let mu = idx.iter().map(|&p| x[p].to_f64()).sum::<f64>() / m;
        let var = idx
            .iter()
            .map(|&p| (x[p].to_f64() - mu).powi(2))
            .sum::<f64>()
            / m;
        (mean[k], rstd[k]) = (T::from_f64(mu), T::from_f64(1.0 / (var + 1e-5).sqrt()));
        let (mu, r) = (mean[k].to_f64(), rstd[k].to_f64());
        let xh = |p: usize| (x[p].to_f64() - mu) * r;
        db[k] = idx.iter().map(|&p| dy[p].to_f64()).sum();
        dg[k] = idx.iter().map(|&p| dy[p].to_f64() * xh(p)).sum();
        let scale = g[k].to_f64() * r / m;
        for &p in &idx {
            dx[p] = scale * (m * dy[p].to_f64() - db[k] - xh(p) * dg[k]);
        }
    }
    ([dx, dg, db], mean, rstd)
}

fn check<T: Element>(tol: f64, seed: u64) {
    let mut rng = Rng::new(seed);
    let shapes: &[&[usize]] = &[
        &[4, 3, 1],
        &[2, 3, 15],
        &[3, 2, 16],
        &[2, 2, 17],
        &[32, 16, 8, 8],
        &[32, 32, 4, 4],
        &[2, 2, 100],
        &[2, 2, 600],
        &[8, 4, 64, 64],
    ];
    for &shape in shapes {
        let (n, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
        let x: Vec<T> = rng.vec(n * c * s, -2.0, 3.0);
        let dy: Vec<T> = rng.vec(n * c * s, -1.0, 1.0);
        let g: Vec<T> = rng.vec(c, 0.5, 1.5);
        let (want, mean, rstd) = reference(&x, &g, &dy, (n, c, s));
        let small = n * c * s < 100_000;
        for mode in if small { &[0, 1][..] } else { &[0][..] } {
            let outs = [
                HostTensor::zeros::<T>(shape),
                HostTensor::zeros::<T>(&[c]),
                HostTensor::zeros::<T>(&[c]),
            ];
            let ins = [
                lay(&x, shape, *mode),
                HostTensor::new(&g, &[c]),
                HostTensor::new(&mean, &[c]),
                HostTensor::new(&rstd, &[c]),
                lay(&dy, shape, *mode),
            ];
            let ins: Vec<&HostTensor> = ins.iter().collect();
            run(
                OpId::BatchNormBackward,
                params(),
                &ins,
                &[&outs[0], &outs[1], &outs[2]],
            )
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
            for (what, (o, w)) in ["dx", "dgamma", "dbeta"].iter().zip(outs.iter().zip(&want)) {
                // Sums of up to M terms of size ~1: scale the tolerance.
                let scale = if *what == "dx" { 1.0 } else { (n * s) as f64 };
                for (k, (a, b)) in o.read::<T>().iter().zip(w).enumerate() {
                    let a = a.to_f64();
                    assert!(
                        (a - b).abs() <= tol * (scale + b.abs()),
                        "{what} {shape:?} mode {mode} at {k}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn batch_norm_backward_matches_the_formula_f64() {
    check::<f64>(1e-12, 5);
}

#[test]
fn batch_norm_backward_matches_the_formula_f32() {
    check::<f32>(2e-6, 6);
}

#[test]
fn no_channels_or_no_elements_write_empty_or_zero_outputs() {
    for shape in [&[2usize, 0, 3][..], &[0, 3, 4], &[2, 3, 0]] {
        let c = shape[1];
        let x = HostTensor::zeros::<f32>(shape);
        let gc = HostTensor::new(&vec![1.0f32; c], &[c]);
        let (y, m, r) = (
            HostTensor::zeros::<f32>(shape),
            HostTensor::zeros::<f32>(&[c]),
            HostTensor::zeros::<f32>(&[c]),
        );
        run(OpId::BatchNorm, params(), &[&x, &gc, &gc], &[&y, &m, &r])
            .unwrap_or_else(|e| panic!("forward {shape:?}: {e}"));
        let outs = [
            HostTensor::zeros::<f32>(shape),
            HostTensor::new(&vec![5.0f32; c], &[c]),
            HostTensor::new(&vec![5.0f32; c], &[c]),
        ];
        run(
            OpId::BatchNormBackward,
            params(),
            &[&x, &gc, &gc, &gc, &x],
            &[&outs[0], &outs[1], &outs[2]],
        )
        .unwrap_or_else(|e| panic!("backward {shape:?}: {e}"));
        assert!(outs[1].read::<f32>().iter().all(|&v| v == 0.0), "{shape:?}");
        assert!(outs[2].read::<f32>().iter().all(|&v| v == 0.0), "{shape:?}");
    }
}
