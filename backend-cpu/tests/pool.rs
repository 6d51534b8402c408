//! Max and average 2-D pooling and their gradients through the CPU backend
//! against naive f64 loops and finite differences, on dense and strided
//! inputs; ties go to the first maximum; and the typed errors.

use sunrise_backend_api::ops::Pool2dParams;
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{contiguous_strides, run, HostTensor, Rng};

mod pool_case;

use pool_case::{case, Case};

impl Case {
    /// Calls `f(plane, output index, window, divisor)` for every output.
    fn for_each_window(&self, mut f: impl FnMut(usize, usize, &[(usize, usize)], f64)) {
        let [n, c, oh, ow] = self.out_shape();
        for plane in 0..n * c {
            for o in 0..oh * ow {
                let win = self.window(o / ow, o % ow);
                let div = if self.include_pad {
                    (self.kernel[0] * self.kernel[1]) as f64
                } else {
                    win.len() as f64
                };
                f(plane, plane * oh * ow + o, &win, div);
            }
        }
    }
}

/// Reference forward, backward from `dy`: `(y_max, y_avg, dx_max, dx_avg)`.
fn reference(cs: &Case, x: &[f64], dy: &[f64]) -> [Vec<f64>; 4] {
    let [_, _, h, w] = cs.nchw;
    let ny: usize = cs.out_shape().iter().product();
    let (mut ymax, mut yavg) = (vec![0.0; ny], vec![0.0; ny]);
    let (mut dmax, mut davg) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    cs.for_each_window(|plane, o, win, div| {
        let idx = |&(ih, iw): &(usize, usize)| plane * h * w + ih * w + iw;
        let mut best = idx(&win[0]);
        for p in win {
            if x[idx(p)] > x[best] {
                best = idx(p);
            }
        }
        ymax[o] = x[best];
        dmax[best] += dy[o];
        yavg[o] = win.iter().map(|p| x[idx(p)]).sum::<f64>() / div;
        for p in win {
            davg[idx(p)] += dy[o] / div;
        }
    });
    [ymax, yavg, dmax, davg]
}

/// Runs one pool op: forward ops take `x`; `max_pool2d_backward` takes
/// `(x, dy)`; `avg_pool2d_backward` takes `dy`.
fn pool<T: Element>(op: OpId, cs: &Case, ins: &[&HostTensor], out_shape: [usize; 4]) -> Vec<f64> {
    let out = HostTensor::new(
        &vec![T::from_f64(f64::NAN); out_shape.iter().product()],
        &out_shape,
    );
    run(op, cs.params(), ins, &[&out]).unwrap_or_else(|e| panic!("{op} {cs:?}: {e:?}"));
    out.read::<T>().iter().map(|v| v.to_f64()).collect()
}

/// `vals` (row-major) as a window of a larger NCHW tensor when `sliced`.
fn tensor<T: Element>(vals: &[T], shape: [usize; 4], sliced: bool) -> HostTensor {
    if !sliced {
        return HostTensor::new(vals, &shape);
    }
    let big = [shape[0], shape[1] + 2, shape[2] + 1, shape[3] + 2];
    let st = contiguous_strides(&big);
    let off = 2 * st[1] + st[2] + st[3];
    let mut backing = vec![T::from_f64(f64::NAN); big.iter().product()];
    for (i, &v) in vals.iter().enumerate() {
        let mut rest = i;
        let mut pos = off;
        for d in (0..4).rev() {
            pos += (rest % shape[d]) * st[d];
            rest /= shape[d];
        }
        backing[pos] = v;
    }
    HostTensor::strided(&backing, &shape, &st, off)
}

fn check<T: Element>(cs: &Case, sliced: bool, tol: f64, rng: &mut Rng) {
    let ys = cs.out_shape();
    let x: Vec<T> = rng.vec(cs.nchw.iter().product(), -1.0, 1.0);
    let dy: Vec<T> = rng.vec(ys.iter().product(), -1.0, 1.0);
    let (xt, dyt) = (tensor(&x, cs.nchw, sliced), tensor(&dy, ys, sliced));
    let xf: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
    let dyf: Vec<f64> = dy.iter().map(|v| v.to_f64()).collect();
    let want = reference(cs, &xf, &dyf);
    let got = [
        pool::<T>(OpId::MaxPool2d, cs, &[&xt], ys),
        pool::<T>(OpId::AvgPool2d, cs, &[&xt], ys),
        pool::<T>(OpId::MaxPool2dBackward, cs, &[&xt, &dyt], cs.nchw),
        pool::<T>(OpId::AvgPool2dBackward, cs, &[&dyt], cs.nchw),
    ];
    for (what, (g, w)) in ["max", "avg", "max backward", "avg backward"]
        .iter()
        .zip(got.iter().zip(&want))
    {
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{what} {cs:?} sliced {sliced} at {i}: {a} vs {b}"
            );
        }
    }
}

const CASES: &[Case] = &[
    case([2, 3, 8, 8], [2, 2], [2, 2], [0, 0], false),
    case([1, 2, 7, 9], [3, 3], [1, 1], [1, 1], true),
    case([1, 2, 7, 9], [3, 3], [1, 1], [1, 1], false),
    case([2, 2, 11, 6], [3, 2], [2, 1], [1, 0], false),
    case([1, 3, 9, 13], [5, 4], [3, 2], [2, 2], true),
    case([3, 1, 1, 5], [1, 3], [1, 2], [0, 1], false),
    case([1, 1, 4, 4], [4, 4], [1, 1], [0, 0], true),
    case([8, 16, 32, 32], [3, 3], [2, 2], [1, 1], false),
];

#[test]
fn pools_match_reference() {
    let mut rng = Rng::new(31);
    for cs in CASES {
        for sliced in [false, true] {
            check::<f64>(cs, sliced, 1e-14, &mut rng);
            check::<f32>(cs, sliced, 1e-6, &mut rng);
        }
    }
}

/// Central differences of `sum dy * pool(x)` along every coordinate of `x`.
fn finite_diff(op: OpId, cs: &Case, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    let f = |xp: &[f64]| -> f64 {
        let y = pool::<f64>(op, cs, &[&HostTensor::new(xp, &cs.nchw)], cs.out_shape());
        y.iter().zip(dy).map(|(a, b)| a * b).sum()
    };
    let mut p = x.to_vec();
    (0..x.len())
        .map(|i| {
            p[i] = x[i] + h;
            let up = f(&p);
            p[i] = x[i] - h;
            let down = f(&p);
            p[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

#[test]
fn pool_gradients_match_finite_differences() {
    let mut rng = Rng::new(32);
    for cs in &CASES[..6] {
        let x: Vec<f64> = rng.vec(cs.nchw.iter().product(), -1.0, 1.0);
        let dy: Vec<f64> = rng.vec(cs.out_shape().iter().product(), -1.0, 1.0);
        let (xt, dyt) = (
            HostTensor::new(&x, &cs.nchw),
            HostTensor::new(&dy, &cs.out_shape()),
        );
        let dmax = pool::<f64>(OpId::MaxPool2dBackward, cs, &[&xt, &dyt], cs.nchw);
        let davg = pool::<f64>(OpId::AvgPool2dBackward, cs, &[&dyt], cs.nchw);
        for (got, op) in [(dmax, OpId::MaxPool2d), (davg, OpId::AvgPool2d)] {
            for (i, (a, b)) in got.iter().zip(finite_diff(op, cs, &x, &dy)).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6,
                    "{op} {cs:?} at {i}: {a} vs finite difference {b}"
                );
            }
        }
    }
}

#[test]
fn max_pool_ties_go_to_the_first_maximum() {
    let cs = case([1, 1, 3, 4], [2, 2], [1, 2], [0, 0], false);
    let x = HostTensor::new(&[1.0f64; 12], &cs.nchw);
    let dy = HostTensor::new(&[1.0f64, 2.0, 3.0, 4.0], &cs.out_shape());
    let dx = pool::<f64>(OpId::MaxPool2dBackward, &cs, &[&x, &dy], cs.nchw);
    assert_eq!(
        dx,
        [1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
    let nan = HostTensor::new(&[0.0f32, f32::NAN, 5.0, 1.0], &[1, 1, 2, 2]);
    let whole = case([1, 1, 2, 2], [2, 2], [1, 1], [0, 0], false);
    assert!(pool::<f32>(OpId::MaxPool2d, &whole, &[&nan], [1, 1, 1, 1])[0].is_nan());
}

#[test]
fn pools_reject_bad_params() {
    let ok = case([1, 2, 6, 6], [3, 3], [2, 2], [1, 1], false);
    let z = |s: &[usize]| HostTensor::zeros::<f32>(s);
    let (x, y) = (z(&ok.nchw), z(&ok.out_shape()));
    assert!(run(OpId::MaxPool2d, ok.params(), &[&x], &[&y]).is_ok());
    let with = |f: fn(&mut Pool2dParams)| {
        let Params::Pool2d(mut p) = ok.params() else {
            unreachable!()
        };
        f(&mut p);
        Params::Pool2d(p)
    };
    let inv = StatusCode::InvalidArgument;
    let err = |op: OpId, p: Params, ins: &[&HostTensor], out: &HostTensor| {
        run(op, p, ins, &[out]).expect_err("must fail").code
    };
    for p in [
        with(|p| p.kernel = [0, 3]),
        with(|p| p.stride = [2, 0]),
        with(|p| p.padding = [2, 1]),
        with(|p| p.padding = [-1, 1]),
        with(|p| p.count_include_pad = 2),
        with(|p| p.stride = [1, 1]),
        Params::None,
    ] {
        assert_eq!(err(OpId::MaxPool2d, p, &[&x], &y), inv, "{p:?}");
        assert_eq!(err(OpId::AvgPool2d, p, &[&x], &y), inv, "{p:?}");
        assert_eq!(err(OpId::MaxPool2dBackward, p, &[&x, &y], &x), inv, "{p:?}");
        assert_eq!(err(OpId::AvgPool2dBackward, p, &[&y], &x), inv, "{p:?}");
    }
    let big = with(|p| p.kernel = [9, 9]);
    assert_eq!(err(OpId::AvgPool2d, big, &[&x], &z(&[1, 2, 1, 1])), inv);
}

#[test]
fn pools_reject_bad_shapes_dtypes_and_arity() {
    let ok = case([1, 2, 6, 6], [3, 3], [2, 2], [1, 1], false);
    let z = |s: &[usize]| HostTensor::zeros::<f32>(s);
    let (x, y) = (z(&ok.nchw), z(&ok.out_shape()));
    let inv = StatusCode::InvalidArgument;
    let err = |op: OpId, p: Params, ins: &[&HostTensor], out: &HostTensor| {
        run(op, p, ins, &[out]).expect_err("must fail").code
    };
    let p = ok.params();
    assert_eq!(err(OpId::MaxPool2d, p, &[&z(&[2, 6, 6])], &y), inv);
    assert_eq!(err(OpId::MaxPool2d, p, &[&x], &z(&[1, 3, 3, 3])), inv);
    assert_eq!(err(OpId::MaxPool2d, p, &[&x, &x], &y), inv);
    assert_eq!(err(OpId::MaxPool2dBackward, p, &[&x], &x), inv);
    assert_eq!(
        err(OpId::MaxPool2dBackward, p, &[&z(&[1, 2, 6, 7]), &y], &x),
        inv
    );
    assert_eq!(
        err(OpId::MaxPool2dBackward, p, &[&x, &z(&[1, 2, 2, 3])], &x),
        inv
    );
    assert_eq!(
        err(OpId::AvgPool2dBackward, p, &[&y], &z(&[1, 2, 8, 8])),
        inv
    );
    assert_eq!(
        err(
            OpId::AvgPool2d,
            p,
            &[&HostTensor::zeros::<f64>(&ok.nchw)],
            &y
        ),
        inv
    );
    let strided_out = HostTensor::strided(&[0f32; 36], &ok.out_shape(), &[18, 9, 3, 2], 0);
    assert_eq!(err(OpId::AvgPool2d, p, &[&x], &strided_out), inv);
    let ints = (
        HostTensor::zeros::<i64>(&ok.nchw),
        HostTensor::zeros::<i64>(&ok.out_shape()),
    );
    assert_eq!(
        err(OpId::MaxPool2d, p, &[&ints.0], &ints.1),
        StatusCode::Unsupported
    );
}

#[test]
fn empty_batches_are_accepted_by_every_pool_op() {
    // N = 0: nothing to write, but valid shapes must pass (max_pool2d_backward
    // checks dy, its output-side input, against dx).
    let cs = case([0, 2, 6, 6], [3, 3], [2, 2], [1, 1], false);
    let z = |s: &[usize]| HostTensor::zeros::<f32>(s);
    let (x, y) = (z(&cs.nchw), z(&cs.out_shape()));
    let p = cs.params();
    for (op, ins, out) in [
        (OpId::MaxPool2d, vec![&x], &y),
        (OpId::AvgPool2d, vec![&x], &y),
        (OpId::MaxPool2dBackward, vec![&x, &y], &x),
        (OpId::AvgPool2dBackward, vec![&y], &x),
    ] {
        run(op, p, &ins, &[out]).unwrap_or_else(|e| panic!("{op}: {e:?}"));
    }
    // And a wrong dy is still refused when the batch is empty.
    let bad_dy = z(&[0, 2, 2, 3]);
    let e = run(OpId::MaxPool2dBackward, p, &[&x, &bad_dy], &[&x]).unwrap_err();
    assert_eq!(e.code, StatusCode::InvalidArgument);
}
