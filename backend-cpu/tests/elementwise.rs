//! The elementwise op family through the backend's `execute`: every op
//! against an f64 reference computed here, on contiguous, transposed,
//! sliced (offset, gaps) and broadcast (stride 0) inputs and on strided
//! outputs; backward ops against central differences; casts and their
//! edge cases; and typed errors for bad input.

use sunrise_backend_api::ops::{AxisParams, FillParams, UnaryBackwardParams};
use sunrise_backend_api::{Backend, DType, OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::strided::View;
use sunrise_backend_cpu::testing::{run, HostTensor, Rng};
use sunrise_backend_cpu::CpuBackend;

const M: usize = 7;
const N: usize = 19;

/// How a `[M, N]` operand is laid out in its buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    Contig,
    /// Stored column-major (strides `[1, M]`).
    Transposed,
    /// Offset 3, rows 2N+1 apart, every other column: gaps hold junk.
    Sliced,
    /// One row repeated (strides `[0, 1]`).
    Row,
    /// One column repeated (strides `[1, 0]`).
    Col,
    /// One value everywhere (strides `[0, 0]`).
    Scalar,
}

const INPUTS: [Layout; 6] = [
    Layout::Contig,
    Layout::Transposed,
    Layout::Sliced,
    Layout::Row,
    Layout::Col,
    Layout::Scalar,
];
const OUTPUTS: [Layout; 3] = [Layout::Contig, Layout::Transposed, Layout::Sliced];

/// An operand: its tensor, its logical row-major contents, and where the
/// junk lies in its buffer (for outputs: what must stay untouched).
struct Operand<T> {
    t: HostTensor,
    vals: Vec<T>,
    backing: Vec<T>,
}

/// A `[m, n]` operand in `layout` filled by `gen`, junk `junk` in the gaps.
fn operand<T: Element>(
    m: usize,
    n: usize,
    layout: Layout,
    junk: T,
    mut gen: impl FnMut() -> T,
) -> Operand<T> {
    let (backing, strides, offset) = match layout {
        Layout::Contig => ((0..m * n).map(|_| gen()).collect(), vec![n, 1], 0),
        Layout::Transposed => ((0..m * n).map(|_| gen()).collect(), vec![1, m], 0),
        Layout::Sliced => {
            let mut b = vec![junk; 3 + m * (2 * n + 1)];
            for i in 0..m {
                for j in 0..n {
                    b[3 + i * (2 * n + 1) + 2 * j] = gen();
                }
            }
            (b, vec![2 * n + 1, 2], 3)
        }
        Layout::Row => ((0..n).map(|_| gen()).collect(), vec![0, 1], 0),
        Layout::Col => ((0..m).map(|_| gen()).collect(), vec![1, 0], 0),
        Layout::Scalar => (vec![gen()], vec![0, 0], 0),
    };
    let t = HostTensor::strided(&backing, &[m, n], &strides, offset);
    let vals = t.read::<T>();
    Operand { t, vals, backing }
}

/// A zeroed-looking output in `layout` (junk in the gaps and elements).
fn output<T: Element>(layout: Layout, junk: T) -> Operand<T> {
    operand(M, N, layout, junk, || junk)
}

/// The whole buffer behind `o`, as `T`.
fn whole<T: Element>(o: &Operand<T>) -> Vec<T> {
    let mut d = o.t.desc;
    d.rank = 1;
    d.shape[0] = o.backing.len() as i64;
    d.strides[0] = 1;
    d.byte_offset = 0;
    // SAFETY: the descriptor spans exactly the tensor's live buffer.
    let v = unsafe { View::<T>::new(&d) }.expect("view of the whole buffer");
    // SAFETY: nothing writes the buffer meanwhile.
    unsafe { v.to_vec() }
}

/// Checks that an op wrote nothing outside its output view.
fn assert_gaps_untouched<T: Element + PartialEq>(o: &Operand<T>, what: &str) {
    if let Layout::Sliced = layout_of(o) {
        let now = whole(o);
        for (k, (a, b)) in now.iter().zip(&o.backing).enumerate() {
            let inside = k >= 3 && ((k - 3) % (2 * N + 1)) % 2 == 0 && (k - 3) / (2 * N + 1) < M;
            if !inside {
                assert!(a == b, "{what}: gap element {k} was overwritten");
            }
        }
    }
}

fn layout_of<T>(o: &Operand<T>) -> Layout {
    if o.t.desc.byte_offset != 0 {
        Layout::Sliced
    } else if o.t.desc.strides[0] == 1 {
        Layout::Transposed
    } else {
        Layout::Contig
    }
}

/// Distance in f32 units in the last place (both NaN: 0).
fn ulps(a: f32, b: f32) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    let key = |v: f32| {
        let i = v.to_bits() as i32 as i64;
        if i < 0 {
            i64::from(i32::MIN) - i
        } else {
            i
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

fn code<T>(r: sunrise_backend_api::Result<T>) -> StatusCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code,
    }
}

// ---------------------------------------------------------------- references

/// erf by its series (|x| < 3) or through the continued fraction of erfc.
fn erf_ref(x: f64) -> f64 {
    let ax = x.abs();
    let v = if ax < 3.0 {
        let (mut term, mut sum, mut k) = (ax, ax, 0.0);
        while term > 1e-18 * sum {
            k += 1.0;
            term *= 2.0 * ax * ax / (2.0 * k + 1.0);
            sum += term;
        }
        2.0 / std::f64::consts::PI.sqrt() * (-ax * ax).exp() * sum
    } else {
        1.0 - erfc_cf(ax)
    };
    v.copysign(x)
}

/// erfc(x) for x >= 3 by its continued fraction.
fn erfc_cf(x: f64) -> f64 {
    let mut f = x;
    for k in (1..80).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

fn gelu_erf_ref(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    if z < -3.0 {
        0.5 * x * erfc_cf(-z)
    } else {
        0.5 * x * (1.0 + erf_ref(z))
    }
}

fn unary_ref(op: OpId, x: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    match op {
        OpId::Neg => -x,
        OpId::Abs => x.abs(),
        OpId::Exp => x.exp(),
        OpId::Log => x.ln(),
        OpId::Sqrt => x.sqrt(),
        OpId::Rsqrt => 1.0 / x.sqrt(),
        // relu keeps NaN (f64::max would drop it).
        OpId::Relu => {
            if x.is_nan() {
                x
            } else {
                x.max(0.0)
            }
        }
        OpId::GeluErf => gelu_erf_ref(x),
        OpId::GeluTanh => 0.5 * x * (1.0 + u.tanh()),
        OpId::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        OpId::Tanh => x.tanh(),
        OpId::Silu => x / (1.0 + (-x).exp()),
        _ => unreachable!("{op} is not unary"),
    }
}

/// Input range of each unary op in the tests.
fn domain(op: OpId) -> (f64, f64) {
    match op {
        OpId::Log | OpId::Sqrt | OpId::Rsqrt => (0.05, 20.0),
        OpId::Exp => (-30.0, 30.0),
        _ => (-6.0, 6.0),
    }
}

/// Allowed f32 error in ulp of the rounded reference. gelu_tanh's tail is
/// ill-conditioned in f32 (the roundings of u move e^(-2u) by ~|2u| ulp).
fn f32_ulps(op: OpId, x: f64) -> u64 {
    match op {
        OpId::Neg | OpId::Abs | OpId::Relu | OpId::Sqrt => 0,
        OpId::Rsqrt | OpId::GeluErf | OpId::Log => 1,
        OpId::Exp | OpId::Tanh => 3,
        OpId::Sigmoid | OpId::Silu => 4,
        OpId::GeluTanh => 6 + (3.2 * x.abs() * (1.0 + 0.045 * x * x)) as u64,
        _ => unreachable!(),
    }
}

fn unary_ops() -> impl Iterator<Item = OpId> {
    OpId::ALL.iter().copied().filter(|o| o.is_unary())
}

fn unary_backward(fwd: OpId) -> Params {
    Params::UnaryBackward(UnaryBackwardParams {
        struct_size: UnaryBackwardParams::SIZE,
        op: fwd as u32,
        reserved: 0,
    })
}

// ----------------------------------------------------------------- unary ops

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

// ------------------------------------------------------------ unary backward

#[test]
fn unary_backward_matches_central_differences() {
    let mut rng = Rng::new(21);
    let mut dy_rng = Rng::new(22);
    for fwd in unary_ops() {
        let (lo, hi) = domain(fwd);
        let (lo, hi) = if fwd == OpId::Exp {
            (-5.0, 5.0)
        } else {
            (lo, hi)
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
            // Same in f32 (relu has its own SIMD kernel there).
            let xf: Vec<f32> = x.vals.iter().map(|&v| v as f32).collect();
            let dyf: Vec<f32> = dy.vals.iter().map(|&v| v as f32).collect();
            let (xt, dyt, dxt) = (
                HostTensor::new(&xf, &[M, N]),
                HostTensor::new(&dyf, &[M, N]),
                HostTensor::zeros::<f32>(&[M, N]),
            );
            run(
                OpId::UnaryBackward,
                unary_backward(fwd),
                &[&xt, &dyt],
                &[&dxt],
            )
            .unwrap();
            let got32 = dxt.read::<f32>();
            for (i, &g) in dx.t.read::<f64>().iter().enumerate() {
                let (xv, d) = (x.vals[i], dy.vals[i]);
                let h = 1e-5 * xv.abs().max(1.0);
                let fd = d * (unary_ref(fwd, xv + h) - unary_ref(fwd, xv - h)) / (2.0 * h);
                assert!(
                    (g - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                    "{fwd}' f64 at {xv}: got {g}, differences {fd}"
                );
                let x32 = xf[i] as f64;
                let fd32 =
                    dyf[i] as f64 * (unary_ref(fwd, x32 + h) - unary_ref(fwd, x32 - h)) / (2.0 * h);
                assert!(
                    (got32[i] as f64 - fd32).abs() <= 2e-5 * fd32.abs().max(1.0),
                    "{fwd}' f32 at {x32}: got {}, differences {fd32}",
                    got32[i]
                );
            }
        }
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

// ---------------------------------------------------------------- binary ops

fn binary_ref(op: OpId, a: f64, b: f64) -> f64 {
    match op {
        OpId::Add => a + b,
        OpId::Sub => a - b,
        OpId::Mul => a * b,
        OpId::Div => a / b,
        OpId::Pow => a.powf(b),
        OpId::Maximum => a.max(b),
        OpId::Minimum => a.min(b),
        _ => unreachable!(),
    }
}

/// (a, b, out) layouts: every input layout meets several others, with
/// every output layout.
fn binary_layouts() -> Vec<(Layout, Layout, Layout)> {
    let mut v = vec![];
    for (i, &a) in INPUTS.iter().enumerate() {
        for (j, &b) in INPUTS.iter().enumerate() {
            if (i + 2 * j) % 3 == 0 || a == b {
                v.push((a, b, OUTPUTS[(i + j) % OUTPUTS.len()]));
            }
        }
    }
    v
}

fn binary_ops() -> impl Iterator<Item = OpId> {
    OpId::ALL.iter().copied().filter(|o| o.is_binary())
}

#[test]
fn binary_float_ops_match_reference_on_every_layout() {
    let mut rng = Rng::new(31);
    for op in binary_ops() {
        let (lo, hi) = if op == OpId::Pow {
            (0.1, 3.0)
        } else {
            (-4.0, 4.0)
        };
        for (la, lb, lo_) in binary_layouts() {
            // f32: add, sub, mul, div, max, min are exact after rounding the
            // f64 result of the same f32 inputs; pow is libm's.
            let a = operand::<f32>(M, N, la, f32::NAN, || rng.uniform(lo, hi) as f32);
            let b = operand::<f32>(M, N, lb, f32::NAN, || rng.uniform(lo, hi) as f32);
            let c = output::<f32>(lo_, -777.0);
            run(op, Params::None, &[&a.t, &b.t], &[&c.t]).unwrap();
            for (i, &g) in c.t.read::<f32>().iter().enumerate() {
                let want = binary_ref(op, a.vals[i] as f64, b.vals[i] as f64) as f32;
                let tol = if op == OpId::Pow { 2 } else { 0 };
                assert!(
                    ulps(g, want) <= tol,
                    "{op} f32 {la:?},{lb:?}->{lo_:?} [{i}]: got {g} want {want}"
                );
            }
            assert_gaps_untouched(&c, &format!("{op} f32"));
            let a = operand::<f64>(M, N, la, f64::NAN, || rng.uniform(lo, hi));
            let b = operand::<f64>(M, N, lb, f64::NAN, || rng.uniform(lo, hi));
            let c = output::<f64>(lo_, -777.0);
            run(op, Params::None, &[&a.t, &b.t], &[&c.t]).unwrap();
            for (i, &g) in c.t.read::<f64>().iter().enumerate() {
                let want = binary_ref(op, a.vals[i], b.vals[i]);
                assert!(
                    (g - want).abs() <= 1e-15 * want.abs(),
                    "{op} f64 {la:?},{lb:?} [{i}]: got {g} want {want}"
                );
            }
            assert_gaps_untouched(&c, &format!("{op} f64"));
        }
    }
}

#[test]
fn maximum_and_minimum_propagate_nan() {
    for n in [3usize, 40] {
        let mut a = vec![1f32; n];
        let mut b = vec![2f32; n];
        a[0] = f32::NAN;
        b[1] = f32::NAN;
        let (ta, tb, tc) = (
            HostTensor::new(&a, &[n]),
            HostTensor::new(&b, &[n]),
            HostTensor::zeros::<f32>(&[n]),
        );
        for op in [OpId::Maximum, OpId::Minimum] {
            run(op, Params::None, &[&ta, &tb], &[&tc]).unwrap();
            let c = tc.read::<f32>();
            assert!(c[0].is_nan() && c[1].is_nan(), "{op} n={n}: {:?}", &c[..3]);
            assert_eq!(c[2], if op == OpId::Maximum { 2.0 } else { 1.0 });
        }
    }
}

#[test]
fn integer_binary_ops_wrap_and_broadcast() {
    let mut rng = Rng::new(32);
    let gen = |rng: &mut Rng| (rng.next_u64() % 2001) as i64 - 1000;
    for op in [
        OpId::Add,
        OpId::Sub,
        OpId::Mul,
        OpId::Maximum,
        OpId::Minimum,
    ] {
        for (la, lb, lo_) in binary_layouts() {
            let a = operand::<i64>(M, N, la, 99, || gen(&mut rng));
            let b = operand::<i64>(M, N, lb, 99, || gen(&mut rng));
            let c = output::<i64>(lo_, -777);
            run(op, Params::None, &[&a.t, &b.t], &[&c.t]).unwrap();
            let want: Vec<i64> = a
                .vals
                .iter()
                .zip(&b.vals)
                .map(|(&x, &y)| match op {
                    OpId::Add => x + y,
                    OpId::Sub => x - y,
                    OpId::Mul => x * y,
                    OpId::Maximum => x.max(y),
                    _ => x.min(y),
                })
                .collect();
            assert_eq!(c.t.read::<i64>(), want, "{op} i64 {la:?},{lb:?}->{lo_:?}");
            assert_gaps_untouched(&c, &format!("{op} i64"));
        }
    }
    let (a, b, c) = (
        HostTensor::new(&[i64::MAX], &[1]),
        HostTensor::new(&[1i64], &[1]),
        HostTensor::zeros::<i64>(&[1]),
    );
    run(OpId::Add, Params::None, &[&a, &b], &[&c]).unwrap();
    assert_eq!(c.read::<i64>(), [i64::MIN]);
}

// ------------------------------------------------- comparisons and where

#[test]
fn comparisons_produce_masks() {
    let mut rng = Rng::new(41);
    // Few distinct values, so that equality happens often.
    let mut small = move || (rng.next_u64() % 5) as f64 - 2.0;
    for op in OpId::ALL.iter().copied().filter(|o| o.is_comparison()) {
        let cmp = |x: f64, y: f64| match op {
            OpId::Eq => x == y,
            OpId::Ne => x != y,
            OpId::Lt => x < y,
            OpId::Le => x <= y,
            OpId::Gt => x > y,
            _ => x >= y,
        } as u8;
        for (la, lb, lo_) in binary_layouts() {
            let m = output::<u8>(lo_, 9);
            let a = operand::<f32>(M, N, la, f32::NAN, || small() as f32);
            let b = operand::<f32>(M, N, lb, f32::NAN, || small() as f32);
            run(op, Params::None, &[&a.t, &b.t], &[&m.t]).unwrap();
            let want: Vec<u8> = a
                .vals
                .iter()
                .zip(&b.vals)
                .map(|(&x, &y)| cmp(x as f64, y as f64))
                .collect();
            assert_eq!(m.t.read::<u8>(), want, "{op} f32 {la:?},{lb:?}->{lo_:?}");
            assert_gaps_untouched(&m, &format!("{op} f32"));
            let a = operand::<f64>(M, N, la, f64::NAN, &mut small);
            let b = operand::<f64>(M, N, lb, f64::NAN, &mut small);
            run(op, Params::None, &[&a.t, &b.t], &[&m.t]).unwrap();
            let want: Vec<u8> = a
                .vals
                .iter()
                .zip(&b.vals)
                .map(|(&x, &y)| cmp(x, y))
                .collect();
            assert_eq!(m.t.read::<u8>(), want, "{op} f64 {la:?},{lb:?}");
            let a = operand::<i64>(M, N, la, 0, || small() as i64);
            let b = operand::<i64>(M, N, lb, 0, || small() as i64);
            run(op, Params::None, &[&a.t, &b.t], &[&m.t]).unwrap();
            let want: Vec<u8> = a
                .vals
                .iter()
                .zip(&b.vals)
                .map(|(&x, &y)| cmp(x as f64, y as f64))
                .collect();
            assert_eq!(m.t.read::<u8>(), want, "{op} i64 {la:?},{lb:?}");
        }
        // NaN compares unequal to everything, itself included.
        let (a, b, m) = (
            HostTensor::new(&[f64::NAN, 1.0], &[2]),
            HostTensor::new(&[f64::NAN, f64::NAN], &[2]),
            HostTensor::zeros::<u8>(&[2]),
        );
        run(op, Params::None, &[&a, &b], &[&m]).unwrap();
        let want = (op == OpId::Ne) as u8;
        assert_eq!(m.read::<u8>(), [want, want], "{op} with NaN");
    }
}

fn check_where<T: Element + PartialEq>(rng: &mut Rng, gen: fn(&mut Rng) -> T) {
    for (k, (la, lb, lo_)) in binary_layouts().into_iter().enumerate() {
        let lm = INPUTS[k % INPUTS.len()];
        let mask = operand::<u8>(M, N, lm, 7, || [0u8, 1, 2][(rng.next_u64() % 3) as usize]);
        let a = operand::<T>(M, N, la, gen(rng), || gen(rng));
        let b = operand::<T>(M, N, lb, gen(rng), || gen(rng));
        let c = output::<T>(lo_, gen(rng));
        run(OpId::Where, Params::None, &[&mask.t, &a.t, &b.t], &[&c.t]).unwrap();
        let want: Vec<T> = (0..M * N)
            .map(|i| {
                if mask.vals[i] != 0 {
                    a.vals[i]
                } else {
                    b.vals[i]
                }
            })
            .collect();
        assert_eq!(
            c.t.read::<T>(),
            want,
            "where {:?} mask {lm:?} a {la:?} b {lb:?} out {lo_:?}",
            T::DTYPE
        );
        assert_gaps_untouched(&c, "where");
    }
}

#[test]
fn where_selects_on_every_dtype_and_layout() {
    let mut rng = Rng::new(51);
    check_where::<f32>(&mut rng, |r| r.uniform(-1.0, 1.0) as f32);
    check_where::<f64>(&mut rng, |r| r.uniform(-1.0, 1.0));
    check_where::<i64>(&mut rng, |r| r.next_u64() as i64);
    check_where::<u8>(&mut rng, |r| r.next_u64() as u8);
}

// ------------------------------------------------- fill, copy, cast, concat

fn fill(value: f64) -> Params {
    Params::Fill(FillParams {
        struct_size: FillParams::SIZE,
        value,
    })
}

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

fn axis(a: u32) -> Params {
    Params::Axis(AxisParams {
        struct_size: AxisParams::SIZE,
        axis: a,
        reserved: 0,
    })
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

// ------------------------------------------------------------ large ops

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

// ------------------------------------------------------------ bad input

#[test]
fn bad_input_is_a_typed_error() {
    let f = |n: usize| HostTensor::zeros::<f32>(&[n]);
    let (a, b, c) = (f(4), f(4), f(4));
    let d = HostTensor::zeros::<f64>(&[4]);
    let i = HostTensor::zeros::<i64>(&[4]);
    let u = HostTensor::zeros::<u8>(&[4]);
    let invalid = StatusCode::InvalidArgument;
    let unsupported = StatusCode::Unsupported;
    // Arity.
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
    // Dtypes that disagree, and dtypes an op lacks.
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
    assert_eq!(code(run(OpId::Copy, Params::None, &[&a], &[&d])), invalid);
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
    assert_eq!(
        code(run(
            OpId::UnaryBackward,
            unary_backward(OpId::Relu),
            &[&i, &i],
            &[&i]
        )),
        unsupported
    );
    // Shapes.
    let g = f(5);
    let m = HostTensor::zeros::<f32>(&[2, 2]);
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
    // A view past its buffer.
    let past = HostTensor::strided(&[0f32; 4], &[4], &[1], 2);
    assert_eq!(code(run(OpId::Neg, Params::None, &[&past], &[&c])), invalid);
    // Params.
    assert_eq!(code(run(OpId::Fill, Params::None, &[], &[&c])), invalid);
    assert_eq!(
        code(run(OpId::UnaryBackward, Params::None, &[&a, &b], &[&c])),
        invalid
    );
    assert_eq!(
        code(run(
            OpId::UnaryBackward,
            unary_backward(OpId::Add),
            &[&a, &b],
            &[&c]
        )),
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
    // Casts from or to a dtype this build does not know.
    let mut odd = HostTensor::zeros::<f32>(&[4]);
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
