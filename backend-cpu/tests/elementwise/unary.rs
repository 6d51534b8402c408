//! Unary ops and their backward.

use sunrise_backend_api::{DType, OpId, Params};
use sunrise_backend_cpu::testing::{run, HostTensor, Rng};

use crate::common::*;

#[test]
fn unary_f64_matches_reference_on_every_layout() {
    let mut rng = Rng::new(11);
    for op in unary_ops() {
        let (lo, hi) = domain(op);
        for (k, &lin) in INPUTS.iter().enumerate() {
            let lout = OUTPUTS[k % OUTPUTS.len()];
            let x = operand::<f64>(M, N, lin, f64::NAN, || rng.uniform(lo, hi));
            let y = output::<f64>(lout, -777.0);
            run(op, Params::None, &[&x.t], &[&y.t]).unwrap();
            for (i, (&g, &xv)) in y.t.read::<f64>().iter().zip(&x.vals).enumerate() {
                let want = unary_ref(op, xv);
                // The references for the GELUs cancel in the negative tail
                // (1 + tanh u, 1 + erf z): allow their absolute error.
                let gelu = matches!(op, OpId::GeluTanh | OpId::GeluErf);
                let tol =
                    4e-15 * want.abs() + 4.0 * f64::EPSILON * xv.abs() * f64::from(u8::from(gelu));
                assert!(
                    (g - want).abs() <= tol,
                    "{op} f64 {lin:?}->{lout:?} [{i}]: x={xv} got {g} want {want}"
                );
            }
            assert_gaps_untouched(&y, &format!("{op} f64"));
        }
    }
}

#[test]
fn unary_f32_matches_reference_on_every_layout() {
    let mut rng = Rng::new(12);
    for op in unary_ops() {
        let (lo, hi) = domain(op);
        for (k, &lin) in INPUTS.iter().enumerate() {
            let lout = OUTPUTS[k % OUTPUTS.len()];
            let x = operand::<f32>(M, N, lin, f32::NAN, || rng.uniform(lo, hi) as f32);
            let y = output::<f32>(lout, -777.0);
            run(op, Params::None, &[&x.t], &[&y.t]).unwrap();
            for (i, (&g, &xv)) in y.t.read::<f32>().iter().zip(&x.vals).enumerate() {
                let want = unary_ref(op, xv as f64) as f32;
                let d = ulps(g, want);
                assert!(
                    d <= f32_ulps(op, xv as f64),
                    "{op} f32 {lin:?}->{lout:?} [{i}]: x={xv} got {g} want {want} ({d} ulp)"
                );
            }
            assert_gaps_untouched(&y, &format!("{op} f32"));
        }
    }
}

#[test]
fn unary_f32_long_runs_and_special_values() {
    // Long enough for every SIMD width and its tail; NaN and infinities too.
    let mut rng = Rng::new(13);
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0];
    for op in unary_ops() {
        let (lo, hi) = domain(op);
        for n in [1usize, 15, 16, 17, 1001] {
            let mut xs: Vec<f32> = (0..n).map(|_| rng.uniform(lo, hi) as f32).collect();
            for (i, s) in specials.iter().enumerate() {
                if i * 3 < n {
                    xs[i * 3] = *s;
                }
            }
            let x = HostTensor::new(&xs, &[n]);
            let y = HostTensor::zeros::<f32>(&[n]);
            run(op, Params::None, &[&x], &[&y]).unwrap();
            for (&g, &xv) in y.read::<f32>().iter().zip(&xs) {
                let want = unary_ref(op, xv as f64) as f32;
                let ok = if want.is_finite() && want != 0.0 {
                    ulps(g, want) <= f32_ulps(op, xv as f64)
                } else {
                    g == want || (g.is_nan() && want.is_nan())
                };
                assert!(ok, "{op} n={n}: x={xv} got {g} want {want}");
            }
        }
    }
}

#[test]
fn integer_neg_and_abs_wrap() {
    let xs = [3i64, -5, 0, i64::MAX, i64::MIN];
    let x = HostTensor::new(&xs, &[5]);
    let y = HostTensor::zeros::<i64>(&[5]);
    run(OpId::Neg, Params::None, &[&x], &[&y]).unwrap();
    assert_eq!(y.read::<i64>(), [-3, 5, 0, -i64::MAX, i64::MIN]);
    run(OpId::Abs, Params::None, &[&x], &[&y]).unwrap();
    assert_eq!(y.read::<i64>(), [3, 5, 0, i64::MAX, i64::MIN]);
}

#[test]
fn gelu_erf_known_values() {
    // x Phi(x) with Phi from tables of the normal distribution.
    let table = [
        (1.0, 0.841_344_746_068_542_9),
        (-1.0, -0.158_655_253_931_457_05),
        (2.0, 2.0 * 0.977_249_868_051_820_8),
        (-3.0, -3.0 * 1.349_898_031_630_094_6e-3),
        (-6.0, -6.0 * 9.865_876_450_376_98e-10),
    ];
    let xs: Vec<f64> = table.iter().map(|p| p.0).collect();
    let x = HostTensor::new(&xs, &[xs.len()]);
    let y = HostTensor::zeros::<f64>(&[xs.len()]);
    run(OpId::GeluErf, Params::None, &[&x], &[&y]).unwrap();
    for ((&g, &(xv, want)), r) in y
        .read::<f64>()
        .iter()
        .zip(&table)
        .zip(xs.iter().map(|&v| gelu_erf_ref(v)))
    {
        // The rounding of x / sqrt 2 alone moves erfc by ~z^2 ulp.
        assert!(
            (g - want).abs() <= 1e-14 * want.abs(),
            "gelu_erf({xv}) = {g}, table {want}"
        );
        assert!(
            (r - want).abs() <= 1e-13 * want.abs(),
            "the test's own erf is off at {xv}"
        );
    }
}

#[test]
fn unary_backward_matches_central_differences() {
    let mut rng = Rng::new(21);
    let mut dy_rng = Rng::new(22);
    for fwd in unary_ops() {
        let (lo, hi) = if fwd == OpId::Exp {
            (-5.0, 5.0)
        } else {
            domain(fwd)
        };
        // Keep clear of the kinks of relu and abs.
        let mut gen_x = || loop {
            let v = rng.uniform(lo, hi);
            if v.abs() > 0.05 {
                return v;
            }
        };
        for (lx, ldy) in [
            (Layout::Contig, Layout::Contig),
            (Layout::Transposed, Layout::Sliced),
            (Layout::Sliced, Layout::Row),
            (Layout::Col, Layout::Transposed),
            (Layout::Contig, Layout::Scalar),
        ] {
            let x = operand::<f64>(M, N, lx, f64::NAN, &mut gen_x);
            let dy = operand::<f64>(M, N, ldy, f64::NAN, || dy_rng.uniform(-2.0, 2.0));
            let dx = output::<f64>(Layout::Contig, 0.0);
            run(
                OpId::UnaryBackward,
                unary_backward(fwd),
                &[&x.t, &dy.t],
                &[&dx.t],
            )
            .unwrap();
            check_gradient(fwd, &x.vals, &dy.vals, &dx.t.read::<f64>(), 1e-6);
            // Same in f32 (relu has its own SIMD kernel there).
            let xf: Vec<f32> = x.vals.iter().map(|&v| v as f32).collect();
            let dyf: Vec<f32> = dy.vals.iter().map(|&v| v as f32).collect();
            let (xt, dyt) = (
                HostTensor::new(&xf, &[M, N]),
                HostTensor::new(&dyf, &[M, N]),
            );
            let dxt = HostTensor::zeros::<f32>(&[M, N]);
            run(
                OpId::UnaryBackward,
                unary_backward(fwd),
                &[&xt, &dyt],
                &[&dxt],
            )
            .unwrap();
            let wide = |v: &[f32]| v.iter().map(|&e| e as f64).collect::<Vec<_>>();
            check_gradient(
                fwd,
                &wide(&xf),
                &wide(&dyf),
                &wide(&dxt.read::<f32>()),
                2e-5,
            );
        }
    }
}

/// `dx` against `dy` times central differences of the f64 reference, to
/// `tol` relative (absolute below 1).
fn check_gradient(fwd: OpId, x: &[f64], dy: &[f64], dx: &[f64], tol: f64) {
    for i in 0..x.len() {
        let h = 1e-5 * x[i].abs().max(1.0);
        let fd = dy[i] * (unary_ref(fwd, x[i] + h) - unary_ref(fwd, x[i] - h)) / (2.0 * h);
        assert!(
            (dx[i] - fd).abs() <= tol * fd.abs().max(1.0),
            "{fwd}' at {} (tol {tol}): got {}, differences {fd}",
            x[i],
            dx[i]
        );
    }
}

#[test]
fn kinks_have_zero_gradient() {
    for fwd in [OpId::Relu, OpId::Abs] {
        for dtype in [DType::F32, DType::F64] {
            let (x, dy, dx) = match dtype {
                DType::F32 => (
                    HostTensor::new(&[0f32, -1.0, 2.0], &[3]),
                    HostTensor::new(&[5f32; 3], &[3]),
                    HostTensor::zeros::<f32>(&[3]),
                ),
                _ => (
                    HostTensor::new(&[0f64, -1.0, 2.0], &[3]),
                    HostTensor::new(&[5f64; 3], &[3]),
                    HostTensor::zeros::<f64>(&[3]),
                ),
            };
            run(OpId::UnaryBackward, unary_backward(fwd), &[&x, &dy], &[&dx]).unwrap();
            let got: Vec<f64> = match dtype {
                DType::F32 => dx.read::<f32>().iter().map(|&v| v as f64).collect(),
                _ => dx.read::<f64>(),
            };
            let want = if fwd == OpId::Relu {
                [0.0, 0.0, 5.0]
            } else {
                [0.0, -5.0, 5.0]
            };
            assert_eq!(got, want, "{fwd}' {dtype}");
        }
    }
}
