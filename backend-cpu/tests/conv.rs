//! `conv2d`, `conv2d_backward_data` and `conv2d_backward_filter` through the
//! CPU backend against naive f64 loops, the gradients also against finite
//! differences of the forward, on strided inputs; and the typed errors.

use sunrise_backend_api::ops::Conv2dParams;
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{contiguous_strides, run, HostTensor, Rng};

#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    r: usize,
    s: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    groups: usize,
}

impl Case {
    #[allow(clippy::too_many_arguments, reason = "one convolution spelled out")]
    const fn new(
        nchw: [usize; 4],
        krs: [usize; 3],
        stride: usize,
        pad: usize,
        dil: usize,
        groups: usize,
    ) -> Case {
        Case {
            n: nchw[0],
            c: nchw[1],
            h: nchw[2],
            w: nchw[3],
            k: krs[0],
            r: krs[1],
            s: krs[2],
            stride: [stride, stride],
            pad: [pad, pad],
            dil: [dil, dil],
            groups,
        }
    }

    fn out(&self) -> (usize, usize) {
        let o = |i: usize, k: usize, a: usize| {
            (i + 2 * self.pad[a] - self.dil[a] * (k - 1) - 1) / self.stride[a] + 1
        };
        (o(self.h, self.r, 0), o(self.w, self.s, 1))
    }

    fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    fn w_shape(&self) -> [usize; 4] {
        [self.k, self.c / self.groups, self.r, self.s]
    }

    fn y_shape(&self) -> [usize; 4] {
        let (oh, ow) = self.out();
        [self.n, self.k, oh, ow]
    }

    fn params(&self) -> Params {
        let i = |v: [usize; 2]| [v[0] as i64, v[1] as i64];
        Params::Conv2d(Conv2dParams {
            struct_size: Conv2dParams::SIZE,
            stride: i(self.stride),
            padding: i(self.pad),
            dilation: i(self.dil),
            groups: self.groups as i64,
        })
    }

    /// Calls `f(n, k, oh, ow, c, r, s, ih, iw)` for every tap that reads a
    /// real (unpadded) input element.
    fn for_each_tap(&self, mut f: impl FnMut([usize; 9])) {
        let (oh_n, ow_n) = self.out();
        let (cg, kg) = (self.c / self.groups, self.k / self.groups);
        for n in 0..self.n {
            for k in 0..self.k {
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        for cc in 0..cg {
                            for r in 0..self.r {
                                for s in 0..self.s {
                                    let ih = (oh * self.stride[0] + r * self.dil[0]) as isize
                                        - self.pad[0] as isize;
                                    let iw = (ow * self.stride[1] + s * self.dil[1]) as isize
                                        - self.pad[1] as isize;
                                    if (0..self.h as isize).contains(&ih)
                                        && (0..self.w as isize).contains(&iw)
                                    {
                                        f([
                                            n,
                                            k,
                                            oh,
                                            ow,
                                            (k / kg) * cg + cc,
                                            r,
                                            s,
                                            ih as usize,
                                            iw as usize,
                                        ]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Flat row-major index into `shape`.
fn at(shape: [usize; 4], i: [usize; 4]) -> usize {
    ((i[0] * shape[1] + i[1]) * shape[2] + i[2]) * shape[3] + i[3]
}

/// Reference forward: `(y, sum |terms|)`.
fn ref_forward(cs: &Case, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
    let (xs, ws, ys) = (cs.x_shape(), cs.w_shape(), cs.y_shape());
    let cg = cs.c / cs.groups;
    let mut y = vec![0.0; ys.iter().product()];
    let mut mag = y.clone();
    for (i, v) in y.iter_mut().enumerate() {
        *v = bias.map_or(0.0, |b| b[(i / (ys[2] * ys[3])) % ys[1]]);
        mag[i] = v.abs();
    }
    cs.for_each_tap(|[n, k, oh, ow, c, r, s, ih, iw]| {
        let t = x[at(xs, [n, c, ih, iw])] * w[at(ws, [k, c % cg, r, s])];
        y[at(ys, [n, k, oh, ow])] += t;
        mag[at(ys, [n, k, oh, ow])] += t.abs();
    });
    (y, mag)
}

/// Reference backward-data and backward-filter: `((dx, |dx|), (dw, |dw|))`.
#[allow(
    clippy::type_complexity,
    reason = "two gradients with their magnitudes"
)]
fn ref_backward(
    cs: &Case,
    x: &[f64],
    w: &[f64],
    dy: &[f64],
) -> ((Vec<f64>, Vec<f64>), (Vec<f64>, Vec<f64>)) {
    let (xs, ws, ys) = (cs.x_shape(), cs.w_shape(), cs.y_shape());
    let cg = cs.c / cs.groups;
    let (mut dx, mut dxm) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut dw, mut dwm) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    cs.for_each_tap(|[n, k, oh, ow, c, r, s, ih, iw]| {
        let g = dy[at(ys, [n, k, oh, ow])];
        let (xi, wi) = (at(xs, [n, c, ih, iw]), at(ws, [k, c % cg, r, s]));
        dx[xi] += g * w[wi];
        dxm[xi] += (g * w[wi]).abs();
        dw[wi] += g * x[xi];
        dwm[wi] += (g * x[xi]).abs();
    });
    ((dx, dxm), (dw, dwm))
}

/// How a test lays out an input in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    Dense,
    /// A window of a larger NCHW tensor (padded in C, H and W).
    Sliced,
    /// NHWC memory viewed as NCHW.
    ChannelsLast,
}

/// A tensor with logical row-major values `vals` laid out as `layout`.
fn tensor<T: Element>(vals: &[T], shape: [usize; 4], layout: Layout) -> HostTensor {
    match layout {
        Layout::Dense => HostTensor::new(vals, &shape),
        Layout::Sliced => {
            let big = [shape[0], shape[1] + 1, shape[2] + 2, shape[3] + 3];
            let st = contiguous_strides(&big);
            let mut backing = vec![T::from_f64(f64::NAN); big.iter().product()];
            let off = st[1] + st[2] + 2 * st[3];
            for (i, &v) in vals.iter().enumerate() {
                let idx = [
                    i / (shape[1] * shape[2] * shape[3]),
                    (i / (shape[2] * shape[3])) % shape[1],
                    (i / shape[3]) % shape[2],
                    i % shape[3],
                ];
                backing[off + (0..4).map(|d| idx[d] * st[d]).sum::<usize>()] = v;
            }
            HostTensor::strided(&backing, &shape, &st, off)
        }
        Layout::ChannelsLast => {
            let [_, c, h, w] = shape;
            let st = [h * w * c, 1, w * c, c];
            let mut backing = vec![T::default(); vals.len()];
            for (i, &v) in vals.iter().enumerate() {
                let idx = [i / (c * h * w), (i / (h * w)) % c, (i / w) % h, i % w];
                backing[(0..4).map(|d| idx[d] * st[d]).sum::<usize>()] = v;
            }
            HostTensor::strided(&backing, &shape, &st, 0)
        }
    }
}

fn to_f64<T: Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn assert_close(what: &str, cs: &Case, got: &[f64], want: &[f64], mag: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for i in 0..got.len() {
        assert!(
            (got[i] - want[i]).abs() <= tol * (mag[i] + 1e-30),
            "{what} {cs:?} element {i}: {} vs {}",
            got[i],
            want[i]
        );
    }
}

/// Runs the three ops on one case in dtype `T` and compares them with the
/// reference (`eps` per term of a sum).
fn check_case<T: Element>(cs: &Case, layout: Layout, bias: bool, eps: f64, rng: &mut Rng) {
    let (xs, ws, ys) = (cs.x_shape(), cs.w_shape(), cs.y_shape());
    let x: Vec<T> = rng.vec(xs.iter().product(), -1.0, 1.0);
    let w: Vec<T> = rng.vec(ws.iter().product(), -1.0, 1.0);
    let b: Vec<T> = rng.vec(cs.k, -1.0, 1.0);
    let dy: Vec<T> = rng.vec(ys.iter().product(), -1.0, 1.0);
    let tol = (cs.c / cs.groups * cs.r * cs.s + cs.n * ys[2] * ys[3] + 2) as f64 * eps;
    let (xt, wt, bt, dyt) = (
        tensor(&x, xs, layout),
        tensor(&w, ws, Layout::Dense),
        HostTensor::new(&b, &[cs.k]),
        tensor(&dy, ys, layout),
    );
    let y = HostTensor::new(&vec![T::from_f64(f64::NAN); ys.iter().product()], &ys);
    let mut ins = vec![&xt, &wt];
    if bias {
        ins.push(&bt);
    }
    run(OpId::Conv2d, cs.params(), &ins, &[&y]).expect("conv2d runs");
    let (xf, wf) = (to_f64(&x), to_f64(&w));
    let bf = to_f64(&b);
    let (want, mag) = ref_forward(cs, &xf, &wf, bias.then_some(&bf[..]));
    assert_close("forward", cs, &to_f64(&y.read::<T>()), &want, &mag, tol);

    let dx = HostTensor::new(&vec![T::from_f64(f64::NAN); x.len()], &xs);
    run(OpId::Conv2dBackwardData, cs.params(), &[&dyt, &wt], &[&dx]).expect("backward data runs");
    let dw = HostTensor::new(&vec![T::from_f64(f64::NAN); w.len()], &ws);
    run(
        OpId::Conv2dBackwardFilter,
        cs.params(),
        &[&xt, &dyt],
        &[&dw],
    )
    .expect("backward filter runs");
    let ((rdx, rdxm), (rdw, rdwm)) = ref_backward(cs, &xf, &wf, &to_f64(&dy));
    assert_close(
        "backward data",
        cs,
        &to_f64(&dx.read::<T>()),
        &rdx,
        &rdxm,
        tol,
    );
    assert_close(
        "backward filter",
        cs,
        &to_f64(&dw.read::<T>()),
        &rdw,
        &rdwm,
        tol,
    );
}

const CASES: &[Case] = &[
    Case::new([2, 3, 7, 9], [4, 3, 3], 1, 1, 1, 1),
    Case::new([1, 4, 8, 8], [6, 1, 1], 1, 0, 1, 1),
    Case::new([3, 5, 9, 7], [2, 1, 1], 2, 0, 1, 1),
    Case::new([2, 4, 11, 10], [6, 3, 3], 2, 1, 1, 2),
    Case::new([1, 3, 13, 12], [5, 3, 2], 1, 2, 2, 1),
    Case::new([2, 6, 9, 9], [6, 3, 3], 1, 1, 1, 6),
    Case::new([3, 4, 10, 7], [4, 5, 3], 2, 2, 2, 4),
    Case::new([2, 3, 6, 6], [6, 3, 3], 1, 0, 1, 3),
    Case::new([1, 2, 1, 17], [3, 1, 4], 1, 0, 1, 1),
    Case::new([4, 8, 16, 16], [16, 3, 3], 1, 1, 1, 1),
    Case::new([2, 4, 5, 5], [4, 5, 5], 3, 2, 1, 2),
    Case::new([5, 16, 12, 12], [32, 1, 1], 1, 0, 1, 1),
    // im2col larger than the 1 MiB per-thread chunk: output rows in chunks.
    Case::new([1, 64, 64, 66], [9, 3, 3], 1, 1, 1, 1),
    // The channel-blocked direct path (f32 on AVX2 and AVX-512, K a
    // multiple of a tile's 16 or 64 channels, or within a quarter of it):
    // a stem (3 channels in one block), a padded last tile (48 of 64),
    // blocks of 12 and 8 with dilation, blocks of one channel, a strided
    // 1x1, and more input channels than one pass over the weights takes.
    Case::new([2, 3, 15, 13], [64, 7, 7], 2, 3, 1, 1),
    Case::new([1, 32, 9, 11], [48, 3, 3], 1, 1, 1, 1),
    Case::new([2, 24, 7, 10], [64, 3, 3], 1, 2, 2, 1),
    Case::new([1, 17, 5, 23], [80, 2, 3], 2, 1, 1, 1),
    Case::new([2, 16, 9, 9], [64, 1, 1], 2, 0, 1, 1),
    Case::new([1, 128, 6, 7], [64, 3, 3], 1, 1, 1, 1),
    Case::new([1, 512, 4, 5], [16, 3, 3], 1, 1, 1, 1),
    // Tiny strided outputs (4x4), with dilation along W: the pixel-major
    // filter gradient beside the blocked kernels.
    Case::new([3, 6, 8, 8], [10, 3, 3], 2, 1, 1, 1),
    Case::new([2, 5, 9, 7], [4, 3, 2], 2, 1, 2, 1),
];

#[test]
fn conv_matches_reference_f64() {
    let mut rng = Rng::new(21);
    for cs in CASES {
        for (layout, bias) in [
            (Layout::Dense, true),
            (Layout::Sliced, false),
            (Layout::ChannelsLast, true),
        ] {
            check_case::<f64>(cs, layout, bias, f64::EPSILON, &mut rng);
        }
    }
}

#[test]
fn conv_matches_reference_f32() {
    let mut rng = Rng::new(22);
    for cs in CASES {
        for (layout, bias) in [
            (Layout::Dense, false),
            (Layout::Sliced, true),
            (Layout::ChannelsLast, false),
        ] {
            check_case::<f32>(cs, layout, bias, f32::EPSILON as f64, &mut rng);
        }
    }
}

/// Forward into a channels-last output (dense `[N, OH, OW, K]` memory) from
/// an NCHW or a channels-last input: the blocked path writes it directly,
/// the others through a temporary.
fn check_channels_last_output<T: Element>(cs: &Case, input: Layout, eps: f64, rng: &mut Rng) {
    let (xs, ws, ys) = (cs.x_shape(), cs.w_shape(), cs.y_shape());
    let x: Vec<T> = rng.vec(xs.iter().product(), -1.0, 1.0);
    let w: Vec<T> = rng.vec(ws.iter().product(), -1.0, 1.0);
    let b: Vec<T> = rng.vec(cs.k, -1.0, 1.0);
    let nan = vec![T::from_f64(f64::NAN); ys.iter().product()];
    let y = tensor(&nan, ys, Layout::ChannelsLast);
    let (xt, wt, bt) = (
        tensor(&x, xs, input),
        tensor(&w, ws, Layout::Dense),
        HostTensor::new(&b, &[cs.k]),
    );
    run(OpId::Conv2d, cs.params(), &[&xt, &wt, &bt], &[&y]).expect("conv2d runs");
    let (want, mag) = ref_forward(cs, &to_f64(&x), &to_f64(&w), Some(&to_f64(&b)));
    let tol = (cs.c / cs.groups * cs.r * cs.s + 2) as f64 * eps;
    assert_close(
        "channels-last forward",
        cs,
        &to_f64(&y.read::<T>()),
        &want,
        &mag,
        tol,
    );
}

#[test]
fn conv_writes_channels_last_outputs() {
    let mut rng = Rng::new(24);
    for cs in CASES {
        for input in [Layout::Dense, Layout::ChannelsLast] {
            check_channels_last_output::<f32>(cs, input, f32::EPSILON as f64, &mut rng);
            check_channels_last_output::<f64>(cs, input, f64::EPSILON, &mut rng);
        }
    }
}

#[test]
fn conv_gradients_reject_channels_last_outputs() {
    let cs = Case::new([1, 2, 4, 4], [3, 3, 3], 1, 1, 1, 1);
    let dy = HostTensor::new(&[0f32; 3 * 16], &cs.y_shape());
    let w = HostTensor::new(&vec![0f32; 3 * 2 * 9], &cs.w_shape());
    let dx = tensor(&[0f32; 2 * 16], cs.x_shape(), Layout::ChannelsLast);
    let err = run(OpId::Conv2dBackwardData, cs.params(), &[&dy, &w], &[&dx]).unwrap_err();
    assert!(err.to_string().contains("contiguous"), "{err}");
}

/// `sum dy * conv(x, w)` through the backend, in f64.
fn objective(cs: &Case, x: &[f64], w: &[f64], dy: &[f64]) -> f64 {
    let y = HostTensor::zeros::<f64>(&cs.y_shape());
    let (xt, wt) = (
        HostTensor::new(x, &cs.x_shape()),
        HostTensor::new(w, &cs.w_shape()),
    );
    run(OpId::Conv2d, cs.params(), &[&xt, &wt], &[&y]).expect("conv2d runs");
    y.read::<f64>().iter().zip(dy).map(|(a, b)| a * b).sum()
}

/// Central differences of [`objective`] along every coordinate of `v`.
fn finite_diff(v: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-3;
    let mut p = v.to_vec();
    (0..v.len())
        .map(|i| {
            p[i] = v[i] + h;
            let up = f(&p);
            p[i] = v[i] - h;
            let down = f(&p);
            p[i] = v[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

#[test]
fn conv_gradients_match_finite_differences() {
    let mut rng = Rng::new(23);
    let cases = [
        Case::new([2, 4, 6, 5], [4, 3, 3], 2, 1, 1, 2),
        Case::new([1, 3, 7, 7], [3, 3, 3], 1, 2, 2, 3),
        Case::new([2, 2, 5, 4], [3, 1, 1], 1, 0, 1, 1),
        Case::new([1, 2, 6, 6], [4, 2, 3], 1, 1, 2, 1),
    ];
    for cs in &cases {
        let x: Vec<f64> = rng.vec(cs.x_shape().iter().product(), -1.0, 1.0);
        let w: Vec<f64> = rng.vec(cs.w_shape().iter().product(), -1.0, 1.0);
        let dy: Vec<f64> = rng.vec(cs.y_shape().iter().product(), -1.0, 1.0);
        let (dyt, wt, xt) = (
            HostTensor::new(&dy, &cs.y_shape()),
            HostTensor::new(&w, &cs.w_shape()),
            HostTensor::new(&x, &cs.x_shape()),
        );
        let dx = HostTensor::zeros::<f64>(&cs.x_shape());
        run(OpId::Conv2dBackwardData, cs.params(), &[&dyt, &wt], &[&dx]).unwrap();
        let dw = HostTensor::zeros::<f64>(&cs.w_shape());
        run(
            OpId::Conv2dBackwardFilter,
            cs.params(),
            &[&xt, &dyt],
            &[&dw],
        )
        .unwrap();
        let fd_x = finite_diff(&x, |xp| objective(cs, xp, &w, &dy));
        let fd_w = finite_diff(&w, |wp| objective(cs, &x, wp, &dy));
        for (got, want) in dx
            .read::<f64>()
            .iter()
            .zip(&fd_x)
            .chain(dw.read::<f64>().iter().zip(&fd_w))
        {
            assert!(
                (got - want).abs() <= 1e-8 * (1.0 + want.abs()),
                "{cs:?}: {got} vs finite difference {want}"
            );
        }
    }
}

#[test]
fn conv_chunks_a_large_im2col_buffer() {
    // The im2col matrix (576 x 30625 f32, 70 MB) exceeds the 64 MiB bound.
    let cs = Case::new([1, 64, 175, 175], [2, 3, 3], 1, 1, 1, 1);
    check_case::<f32>(
        &cs,
        Layout::Dense,
        true,
        f32::EPSILON as f64,
        &mut Rng::new(24),
    );
}

fn conv_err(op: OpId, p: Params, ins: &[&HostTensor], outs: &[&HostTensor]) -> StatusCode {
    run(op, p, ins, outs).expect_err("bad conv must fail").code
}

#[test]
fn conv_rejects_bad_params() {
    let z = |s: &[usize]| HostTensor::zeros::<f32>(s);
    let ok = Case::new([1, 4, 5, 5], [2, 3, 3], 1, 1, 1, 2);
    let (x, w, y) = (z(&ok.x_shape()), z(&ok.w_shape()), z(&ok.y_shape()));
    let inv = StatusCode::InvalidArgument;
    assert!(run(OpId::Conv2d, ok.params(), &[&x, &w], &[&y]).is_ok());
    let with = |f: fn(&mut Conv2dParams)| {
        let Params::Conv2d(mut p) = ok.params() else {
            unreachable!()
        };
        f(&mut p);
        Params::Conv2d(p)
    };
    for p in [
        with(|p| p.stride = [0, 1]),
        with(|p| p.dilation = [1, 0]),
        with(|p| p.padding = [-1, 0]),
        with(|p| p.groups = 0),
        with(|p| p.groups = 3),
        with(|p| p.groups = 4),
        with(|p| p.padding = [0, 0]),
        Params::None,
    ] {
        assert_eq!(conv_err(OpId::Conv2d, p, &[&x, &w], &[&y]), inv, "{p:?}");
        assert_eq!(
            conv_err(OpId::Conv2dBackwardData, p, &[&y, &w], &[&x]),
            inv,
            "{p:?}"
        );
        assert_eq!(
            conv_err(OpId::Conv2dBackwardFilter, p, &[&x, &y], &[&w]),
            inv,
            "{p:?}"
        );
    }
}

#[test]
fn conv_rejects_bad_shapes_dtypes_and_arity() {
    let z = |s: &[usize]| HostTensor::zeros::<f32>(s);
    let ok = Case::new([1, 4, 5, 5], [2, 3, 3], 1, 1, 1, 2);
    let (x, w, y) = (z(&ok.x_shape()), z(&ok.w_shape()), z(&ok.y_shape()));
    let inv = StatusCode::InvalidArgument;
    let p = ok.params();
    assert_eq!(conv_err(OpId::Conv2d, p, &[&z(&[1, 4, 5]), &w], &[&y]), inv);
    assert_eq!(
        conv_err(OpId::Conv2d, p, &[&x, &z(&[2, 4, 3, 3])], &[&y]),
        inv
    );
    assert_eq!(conv_err(OpId::Conv2d, p, &[&x, &w, &z(&[3])], &[&y]), inv);
    assert_eq!(
        conv_err(OpId::Conv2d, p, &[&x, &w, &z(&[2]), &z(&[2])], &[&y]),
        inv
    );
    assert_eq!(conv_err(OpId::Conv2d, p, &[&x], &[&y]), inv);
    assert_eq!(
        conv_err(OpId::Conv2d, p, &[&x, &w], &[&z(&[1, 2, 4, 5])]),
        inv
    );
    assert_eq!(
        conv_err(
            OpId::Conv2d,
            p,
            &[&x, &HostTensor::zeros::<f64>(&ok.w_shape())],
            &[&y]
        ),
        inv
    );
    let tiny = z(&[1, 4, 1, 1]);
    let no_pad = Case::new([1, 4, 1, 1], [2, 3, 3], 1, 0, 1, 2).params();
    assert_eq!(
        conv_err(OpId::Conv2d, no_pad, &[&tiny, &w], &[&z(&[1, 2, 1, 1])]),
        inv
    );
    // H and W swapped in memory: neither row-major nor channels-last.
    let strided_out = HostTensor::strided(&[0f32; 100], &ok.y_shape(), &[50, 25, 1, 5], 0);
    assert_eq!(conv_err(OpId::Conv2d, p, &[&x, &w], &[&strided_out]), inv);
    assert_eq!(
        conv_err(OpId::Conv2dBackwardData, p, &[&y, &w], &[&z(&[1, 4, 5, 6])]),
        inv
    );
    assert_eq!(
        conv_err(OpId::Conv2dBackwardData, p, &[&y, &w, &w], &[&x]),
        inv
    );
    assert_eq!(
        conv_err(
            OpId::Conv2dBackwardFilter,
            p,
            &[&x, &y],
            &[&z(&[2, 4, 3, 3])]
        ),
        inv
    );
    assert_eq!(
        conv_err(
            OpId::Conv2dBackwardFilter,
            p,
            &[&x, &z(&[1, 2, 4, 4])],
            &[&w]
        ),
        inv
    );
    let i = |s: &[usize]| HostTensor::zeros::<i64>(s);
    let ints = [i(&ok.x_shape()), i(&ok.w_shape()), i(&ok.y_shape())];
    assert_eq!(
        conv_err(OpId::Conv2d, p, &[&ints[0], &ints[1]], &[&ints[2]]),
        StatusCode::Unsupported
    );
}
