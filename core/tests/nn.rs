//! `sunrise::nn`: forward values of every layer against hand computations,
//! PyTorch state_dict names, train/eval behaviour, initialisation
//! statistics, state loading and typed errors. Gradients are in
//! `nn/grad.rs`, the transformer block in `nn/transformer.rs`.

#[path = "nn/grad.rs"]
mod grad;
#[path = "nn/transformer.rs"]
mod transformer;

use std::collections::HashMap;

use sunrise::nn::init::{self, FanMode, Nonlinearity};
use sunrise::nn::{
    Activation, ActivationKind, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Embedding, Flatten, Init,
    LayerNorm, Linear, MaxPool2d, Module, Sequential,
};
use sunrise::{Conv2dOptions, DType, Device, Error, Pool2dOptions, Tensor};

pub fn cpu() -> Device {
    Device::cpu()
}

/// An f64 build context on the CPU.
pub fn init64(seed: u64) -> Init {
    Init::new(seed, DType::F64, &cpu()).unwrap()
}

pub fn t64(data: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape, &cpu()).unwrap()
}

/// Any float tensor's values as f64.
pub fn vals(t: &Tensor) -> Vec<f64> {
    t.cast(DType::F64).unwrap().to_vec::<f64>().unwrap()
}

pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}"
        );
    }
}

/// Seeded values in `[-1, 1)`.
pub fn randv(n: usize, seed: u64) -> Vec<f64> {
    let mut r = sunrise::random::Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

fn names(items: &[(String, Tensor)]) -> Vec<&str> {
    items.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn linear_is_x_wt_plus_b_on_any_leading_dims() {
    let w = t64(&[1., 2., 3., -1., 0., 4.], &[2, 3]);
    let b = t64(&[0.5, -0.5], &[2]);
    let lin = Linear::from_parts(w, Some(b)).unwrap();
    let x = t64(&[1., 1., 1., 2., 0., -1.], &[2, 3]);
    // rows: [6 + .5, 3 - .5], [2 - 3 + .5, -2 - 4 - .5]
    assert_eq!(vals(&lin.forward(&x).unwrap()), vec![6.5, 2.5, -0.5, -6.5]);
    let x3 = x.reshape(&[2, 1, 3]).unwrap();
    let y3 = lin.forward(&x3).unwrap();
    assert_eq!(y3.shape(), &[2, 1, 2]);
    assert_eq!(vals(&y3), vec![6.5, 2.5, -0.5, -6.5]);
    assert_eq!(names(&lin.named_parameters()), ["weight", "bias"]);
    assert!(lin.weight().requires_grad());
    let nobias = Linear::with_bias(3, 2, false, &mut init64(1)).unwrap();
    assert_eq!(names(&nobias.state_dict()), ["weight"]);
    assert!(matches!(
        lin.forward(&t64(&[1., 2.], &[1, 2])),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// Direct convolution on the host: x [N, C, H, W], w [K, C/g, R, S].
fn ref_conv(x: &Tensor, w: &Tensor, b: &[f64], o: &Conv2dOptions) -> (Vec<usize>, Vec<f64>) {
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let (xv, wv) = (vals(x), vals(w));
    let oh = (xs[2] + 2 * o.padding[0] - o.dilation[0] * (ws[2] - 1) - 1) / o.stride[0] + 1;
    let ow = (xs[3] + 2 * o.padding[1] - o.dilation[1] * (ws[3] - 1) - 1) / o.stride[1] + 1;
    let cg = ws[1];
    let kg = ws[0] / o.groups;
    let mut out = vec![0.0; xs[0] * ws[0] * oh * ow];
    for n in 0..xs[0] {
        for k in 0..ws[0] {
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = b[k];
                    for c in 0..cg {
                        let ci = (k / kg) * cg + c;
                        for r in 0..ws[2] {
                            for q in 0..ws[3] {
                                let hi = (i * o.stride[0] + r * o.dilation[0]) as isize
                                    - o.padding[0] as isize;
                                let wi = (j * o.stride[1] + q * o.dilation[1]) as isize
                                    - o.padding[1] as isize;
                                if hi < 0 || wi < 0 || hi >= xs[2] as isize || wi >= xs[3] as isize
                                {
                                    continue;
                                }
                                let xi =
                                    ((n * xs[1] + ci) * xs[2] + hi as usize) * xs[3] + wi as usize;
                                s += xv[xi] * wv[((k * cg + c) * ws[2] + r) * ws[3] + q];
                            }
                        }
                    }
                    out[((n * ws[0] + k) * oh + i) * ow + j] = s;
                }
            }
        }
    }
    (vec![xs[0], ws[0], oh, ow], out)
}

#[test]
fn conv2d_matches_direct_convolution() {
    // Hand case: 3x3 input, 2x2 kernel of ones, bias 1.
    let x = t64(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]);
    let w = t64(&[1., 1., 1., 1.], &[1, 1, 2, 2]);
    let c = Conv2d::from_parts(w, Some(t64(&[1.], &[1])), Conv2dOptions::default()).unwrap();
    assert_eq!(vals(&c.forward(&x).unwrap()), vec![13., 17., 25., 29.]);
    // Stride, padding, dilation and groups against the direct loops.
    let opts = Conv2dOptions {
        stride: [2, 1],
        padding: [1, 2],
        dilation: [1, 2],
        groups: 2,
    };
    let mut ini = init64(3);
    let conv = Conv2d::with_options(4, 6, [3, 2], opts, true, &mut ini).unwrap();
    assert_eq!(conv.weight().shape(), &[6, 2, 3, 2]);
    let x = t64(&randv(2 * 4 * 5 * 6, 9), &[2, 4, 5, 6]);
    let y = conv.forward(&x).unwrap();
    let b = vals(conv.bias().unwrap());
    let (shape, want) = ref_conv(&x, conv.weight(), &b, &opts);
    assert_eq!(y.shape(), shape.as_slice());
    assert_close(&vals(&y), &want, 1e-12);
    let bad = Conv2dOptions {
        groups: 3,
        ..Conv2dOptions::default()
    };
    assert!(Conv2d::with_options(4, 6, [3, 3], bad, true, &mut ini).is_err());
}

/// Per-channel batch mean and biased variance of NCHW values.
fn channel_stats(x: &[f64], shape: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3]);
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        let v: Vec<f64> = (0..n)
            .flat_map(|i| (0..hw).map(move |k| (i * c + ch) * hw + k))
            .map(|idx| x[idx])
            .collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        mean[ch] = m;
        var[ch] = v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64;
    }
    (mean, var)
}

#[test]
fn batch_norm_trains_on_batch_stats_and_evaluates_on_running_ones() {
    let shape = [3, 2, 2, 2];
    let xv: Vec<f64> = randv(24, 4).iter().map(|v| 3.0 * v + 1.0).collect();
    let x = t64(&xv, &shape);
    let bn = BatchNorm2d::new(2, &init64(0)).unwrap();
    let (mean, var) = channel_stats(&xv, &shape);
    let y = vals(&bn.forward(&x).unwrap());
    for (i, &yi) in y.iter().enumerate() {
        let ch = (i / 4) % 2;
        let want = (xv[i] - mean[ch]) / (var[ch] + 1e-5).sqrt();
        assert!((yi - want).abs() < 1e-9, "{i}: {yi} vs {want}");
    }
    // Running stats: momentum 0.1, unbiased variance (n = 12 per channel).
    let rm: Vec<f64> = mean.iter().map(|m| 0.1 * m).collect();
    let rv: Vec<f64> = var.iter().map(|v| 0.9 + 0.1 * v * 12.0 / 11.0).collect();
    assert_close(&vals(bn.running_mean()), &rm, 1e-9);
    assert_close(&vals(bn.running_var()), &rv, 1e-9);
    assert_eq!(bn.num_batches_tracked().to_vec::<i64>().unwrap(), vec![1]);
    // Eval: running statistics, nothing updated.
    bn.eval();
    let ye = vals(&bn.forward(&x).unwrap());
    for (i, &yi) in ye.iter().enumerate() {
        let ch = (i / 4) % 2;
        let want = (xv[i] - rm[ch]) / (rv[ch] + 1e-5).sqrt();
        assert!((yi - want).abs() < 1e-9);
    }
    assert_close(&vals(bn.running_mean()), &rm, 1e-12);
    assert_eq!(bn.num_batches_tracked().to_vec::<i64>().unwrap(), vec![1]);
    // A second training batch folds in again.
    bn.train();
    bn.forward(&x).unwrap();
    let rm2: Vec<f64> = rm
        .iter()
        .zip(&mean)
        .map(|(r, m)| 0.9 * r + 0.1 * m)
        .collect();
    assert_close(&vals(bn.running_mean()), &rm2, 1e-9);
    assert_eq!(bn.num_batches_tracked().to_vec::<i64>().unwrap(), vec![2]);
    assert_eq!(
        names(&bn.state_dict()),
        [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked"
        ]
    );
    assert!(bn.num_batches_tracked().shape().is_empty());
    assert!(!bn.running_mean().requires_grad());
    // One value per channel cannot train; wrong channels are a shape error.
    let one = t64(&[1., 2.], &[1, 2, 1, 1]);
    assert!(matches!(
        bn.forward(&one),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        bn.forward(&t64(&[0.; 12], &[1, 3, 2, 2])),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn layer_norm_normalises_trailing_dims() {
    let ln = LayerNorm::new(&[3], &init64(0)).unwrap();
    let x = t64(&[1., 2., 3., -2., 0., 8.], &[2, 3]);
    let y = vals(&ln.forward(&x).unwrap());
    let mut want = Vec::new();
    for row in [[1., 2., 3.], [-2., 0., 8.]] {
        let m = row.iter().sum::<f64>() / 3.0;
        let v = row.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / 3.0;
        want.extend(row.iter().map(|a| (a - m) / (v + 1e-5f64).sqrt()));
    }
    assert_close(&y, &want, 1e-9);
    assert_eq!(names(&ln.state_dict()), ["weight", "bias"]);
    let fixed = LayerNorm::with_options(&[2, 3], 1e-5, false, &init64(0)).unwrap();
    assert!(fixed.state_dict().is_empty());
    let y2 = vals(&fixed.forward(&x).unwrap());
    let all = [1., 2., 3., -2., 0., 8.];
    let m = all.iter().sum::<f64>() / 6.0;
    let v = all.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / 6.0;
    let want2: Vec<f64> = all.iter().map(|a| (a - m) / (v + 1e-5f64).sqrt()).collect();
    assert_close(&y2, &want2, 1e-9);
    assert!(ln.forward(&t64(&[1., 2.], &[1, 2])).is_err());
}

#[test]
fn dropout_masks_and_scales_in_training_only() {
    let n = 20_000;
    let x = Tensor::ones(&[n], DType::F32, &cpu()).unwrap();
    let d = Dropout::new(0.25, 7).unwrap();
    let y = vals(&d.forward(&x).unwrap());
    let zeros = y.iter().filter(|&&v| v == 0.0).count();
    assert!(y.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
    let frac = zeros as f64 / n as f64;
    assert!((frac - 0.25).abs() < 0.015, "dropped fraction {frac}");
    // A second call draws a new mask; the same seed repeats the sequence.
    let y2 = vals(&d.forward(&x).unwrap());
    assert_ne!(y, y2);
    let again = Dropout::new(0.25, 7).unwrap();
    assert_eq!(vals(&again.forward(&x).unwrap()), y);
    d.eval();
    assert_eq!(vals(&d.forward(&x).unwrap()), vec![1.0; n]);
    let all = Dropout::new(1.0, 1).unwrap();
    assert_eq!(vals(&all.forward(&x).unwrap()), vec![0.0; n]);
    assert!(Dropout::new(1.5, 0).is_err() && Dropout::new(-0.1, 0).is_err());
}

#[test]
fn embedding_looks_up_rows() {
    let w = t64(&[0., 1., 10., 11., 20., 21.], &[3, 2]);
    let e = Embedding::from_weight(w).unwrap();
    let idx = Tensor::from_slice(&[2i64, 0, 1, 2], &[2, 2], &cpu()).unwrap();
    let y = e.forward(&idx).unwrap();
    assert_eq!(y.shape(), &[2, 2, 2]);
    assert_eq!(vals(&y), vec![20., 21., 0., 1., 10., 11., 20., 21.]);
    let out = Tensor::from_slice(&[3i64], &[1], &cpu()).unwrap();
    assert!(e.forward(&out).is_err(), "index 3 of 3 rows");
    assert!(e.forward(&t64(&[0.], &[1])).is_err(), "float indices");
    let big = Embedding::new(100, 50, &mut init64(2)).unwrap();
    let v = vals(big.weight());
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = (v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64).sqrt();
    assert!(m.abs() < 0.05 && (s - 1.0).abs() < 0.05, "N(0, 1): {m} {s}");
}

#[test]
fn pools_take_window_max_and_mean() {
    let x = t64(&(0..16).map(f64::from).collect::<Vec<_>>(), &[1, 1, 4, 4]);
    assert_eq!(
        vals(&MaxPool2d::square(2).forward(&x).unwrap()),
        vec![5., 7., 13., 15.]
    );
    assert_eq!(
        vals(&AvgPool2d::square(2).forward(&x).unwrap()),
        vec![2.5, 4.5, 10.5, 12.5]
    );
    let o = Pool2dOptions {
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        count_include_pad: false,
    };
    let y = MaxPool2d::new(o).forward(&x).unwrap();
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    assert_eq!(vals(&y)[0], 5.0);
    let a = AvgPool2d::new(o).forward(&x).unwrap();
    assert_eq!(vals(&a)[0], (0. + 1. + 4. + 5.) / 4.0);
    assert!(MaxPool2d::square(5).forward(&x).is_err());
}

#[test]
fn activations_and_flatten() {
    let xs = [-2.0, -0.5, 0.0, 0.7, 3.0];
    let x = t64(&xs, &[5]);
    let erf = |z: f64| {
        // Abramowitz-Stegun 7.1.26 is too coarse; integrate instead.
        let n = 2000;
        let h = z / n as f64;
        let f = |t: f64| (-t * t).exp();
        let s: f64 = (0..n)
            .map(|i| {
                let a = i as f64 * h;
                h / 6.0 * (f(a) + 4.0 * f(a + h / 2.0) + f(a + h))
            })
            .sum();
        2.0 / std::f64::consts::PI.sqrt() * s
    };
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    type Reference = Box<dyn Fn(f64) -> f64>;
    let cases: [(ActivationKind, Reference); 5] = [
        (ActivationKind::Relu, Box::new(|v: f64| v.max(0.0))),
        (
            ActivationKind::Gelu,
            Box::new(move |v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))),
        ),
        (ActivationKind::Sigmoid, Box::new(sig)),
        (ActivationKind::Tanh, Box::new(f64::tanh)),
        (ActivationKind::Silu, Box::new(move |v| v * sig(v))),
    ];
    for (kind, f) in cases {
        let want: Vec<f64> = xs.iter().map(|&v| f(v)).collect();
        assert_close(
            &vals(&Activation::new(kind).forward(&x).unwrap()),
            &want,
            1e-9,
        );
    }
    let x4 = Tensor::zeros(&[2, 3, 4, 5], DType::F32, &cpu()).unwrap();
    assert_eq!(Flatten::default().forward(&x4).unwrap().shape(), &[2, 60]);
    assert_eq!(Flatten::new(0, 1).forward(&x4).unwrap().shape(), &[6, 4, 5]);
    assert!(Flatten::new(2, 1).forward(&x4).is_err());
    assert!(Flatten::new(1, 7).forward(&x4).is_err());
}

/// The small CNN: conv-bn-relu-pool, conv-bn-relu, flatten, linear.
pub fn cnn(init: &mut Init) -> Sequential {
    let pad = Conv2dOptions {
        padding: [1, 1],
        ..Conv2dOptions::default()
    };
    Sequential::new()
        .with(Conv2d::with_options(1, 8, [3, 3], pad, true, init).unwrap())
        .with(BatchNorm2d::new(8, init).unwrap())
        .with(Activation::relu())
        .with(MaxPool2d::square(2))
        .with(Conv2d::new(8, 16, 3, init).unwrap())
        .with(BatchNorm2d::new(16, init).unwrap())
        .with(Activation::relu())
        .with(Flatten::default())
        .with(Linear::new(16 * 2 * 2, 10, init).unwrap())
}

#[test]
fn sequential_cnn_has_pytorch_state_dict_names_and_shapes() {
    let model = cnn(&mut Init::cpu(0));
    let sd = model.state_dict();
    let got: Vec<(&str, Vec<usize>)> = sd
        .iter()
        .map(|(n, t)| (n.as_str(), t.shape().to_vec()))
        .collect();
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("0.weight", vec![8, 1, 3, 3]),
        ("0.bias", vec![8]),
        ("1.weight", vec![8]),
        ("1.bias", vec![8]),
        ("1.running_mean", vec![8]),
        ("1.running_var", vec![8]),
        ("1.num_batches_tracked", vec![]),
        ("4.weight", vec![16, 8, 3, 3]),
        ("4.bias", vec![16]),
        ("5.weight", vec![16]),
        ("5.bias", vec![16]),
        ("5.running_mean", vec![16]),
        ("5.running_var", vec![16]),
        ("5.num_batches_tracked", vec![]),
        ("8.weight", vec![10, 64]),
        ("8.bias", vec![10]),
    ];
    assert_eq!(got, want);
    assert_eq!(
        sd.iter().filter(|(_, t)| t.dtype() == DType::I64).count(),
        2
    );
    let params = names(&model.named_parameters()).len();
    assert_eq!(params, 10);
    assert_eq!(
        model.num_parameters(),
        8 * 9 + 8 + 16 + 16 * 8 * 9 + 16 + 32 + 640 + 10
    );
    let x = Tensor::zeros(&[2, 1, 8, 8], DType::F32, &cpu()).unwrap();
    assert_eq!(model.forward(&x).unwrap().shape(), &[2, 10]);
}

#[test]
fn train_and_eval_reach_every_child() {
    let model = cnn(&mut Init::cpu(0));
    assert!(model.is_training());
    model.eval();
    assert!(!model.is_training());
    assert!(model.layers().iter().all(|l| !l.is_training()));
    model.train();
    assert!(model.layers().iter().all(|l| l.is_training()));
    let mut s = Sequential::new();
    s.eval();
    s.push(Box::new(Dropout::new(0.5, 0).unwrap()));
    assert!(
        !s.get(0).unwrap().is_training(),
        "a pushed layer takes the mode"
    );
}

#[test]
fn init_schemes_have_the_right_statistics_and_are_seeded() {
    let shape = [256, 128, 3, 3];
    let fan_in = 128.0f64 * 9.0;
    let fan_out = 256.0f64 * 9.0;
    let stats = |t: &Tensor| {
        let v = vals(t);
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let s = (v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64).sqrt();
        let max = v.iter().fold(0f64, |a, b| a.max(b.abs()));
        (m, s, max)
    };
    let mut ini = Init::cpu(11);
    let close = |a: f64, b: f64| (a - b).abs() < 0.01 * b;
    let ku = init::kaiming_uniform(&mut ini, &shape, FanMode::FanIn, Nonlinearity::Relu).unwrap();
    let bound = 2f64.sqrt() * (3.0 / fan_in).sqrt();
    let (m, s, max) = stats(&ku);
    assert!(m.abs() < 0.01 * bound && close(s, bound / 3f64.sqrt()) && max <= bound);
    let kn = init::kaiming_normal(&mut ini, &shape, FanMode::FanOut, Nonlinearity::Relu).unwrap();
    let (m, s, _) = stats(&kn);
    assert!(m.abs() < 0.001 && close(s, (2.0 / fan_out).sqrt()), "{s}");
    let xu = init::xavier_uniform(&mut ini, &shape, 1.0).unwrap();
    let xb = (6.0 / (fan_in + fan_out)).sqrt();
    let (_, s, max) = stats(&xu);
    assert!(close(s, xb / 3f64.sqrt()) && max <= xb);
    let xn = init::xavier_normal(&mut ini, &shape, 2.0).unwrap();
    let (_, s, _) = stats(&xn);
    assert!(close(s, 2.0 * (2.0 / (fan_in + fan_out)).sqrt()));
    assert_eq!(ku.dtype(), DType::F32);
    // Seeded: same seed, same values; another seed, others.
    let a = init::kaiming_uniform(
        &mut Init::cpu(5),
        &[4, 4],
        FanMode::FanIn,
        Nonlinearity::Tanh,
    );
    let b = init::kaiming_uniform(
        &mut Init::cpu(5),
        &[4, 4],
        FanMode::FanIn,
        Nonlinearity::Tanh,
    );
    let c = init::kaiming_uniform(
        &mut Init::cpu(6),
        &[4, 4],
        FanMode::FanIn,
        Nonlinearity::Tanh,
    );
    assert_eq!(vals(&a.unwrap()), vals(b.as_ref().unwrap()));
    assert_ne!(vals(b.as_ref().unwrap()), vals(&c.unwrap()));
    assert!((Nonlinearity::LeakyRelu(0.0).gain() - 2f64.sqrt()).abs() < 1e-15);
    assert!(init::fans(&[5]).is_err());
    assert!(init::uniform(&mut ini, &[2], 1.0, 0.0).is_err());
    assert!(init::normal(&mut ini, &[2], 0.0, -1.0).is_err());
    assert!(Init::new(0, DType::I64, &cpu()).is_err());
}

#[test]
fn layers_default_to_pytorch_initialisation() {
    let mut ini = init64(1);
    let lin = Linear::new(400, 300, &mut ini).unwrap();
    let bound = 1.0 / 400f64.sqrt();
    let w = vals(lin.weight());
    assert!(w.iter().all(|v| v.abs() <= bound));
    let s = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
    assert!((s - bound / 3f64.sqrt()).abs() < 0.01 * bound, "{s}");
    assert!(vals(lin.bias().unwrap()).iter().all(|v| v.abs() <= bound));
    let conv = Conv2d::new(16, 32, 3, &mut ini).unwrap();
    let cb = 1.0 / (16.0f64 * 9.0).sqrt();
    assert!(vals(conv.weight()).iter().all(|v| v.abs() <= cb));
    assert!(vals(conv.bias().unwrap()).iter().all(|v| v.abs() <= cb));
    assert_eq!(lin.weight().dtype(), DType::F64);
    // The same seed builds the same network.
    let a = cnn(&mut Init::cpu(3)).state_dict();
    let b = cnn(&mut Init::cpu(3)).state_dict();
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        if ta.dtype() == DType::F32 {
            assert_eq!(vals(ta), vals(tb), "{na}");
        }
    }
}

#[test]
fn load_state_dict_copies_in_place_and_checks_names_and_shapes() {
    let src = cnn(&mut Init::cpu(1));
    let dst = cnn(&mut Init::cpu(2));
    src.forward(&Tensor::ones(&[4, 1, 8, 8], DType::F32, &cpu()).unwrap())
        .unwrap();
    let state: HashMap<String, Tensor> = src.state_dict().into_iter().collect();
    dst.load_state_dict(&state).unwrap();
    src.eval();
    dst.eval();
    let x = Tensor::from_slice(&randv(128, 3), &[2, 1, 8, 8], &cpu())
        .unwrap()
        .cast(DType::F32)
        .unwrap();
    assert_eq!(
        vals(&src.forward(&x).unwrap()),
        vals(&dst.forward(&x).unwrap())
    );
    let nbt = &dst.state_dict()[6].1;
    assert_eq!(nbt.to_vec::<i64>().unwrap(), vec![1]);
    let mut missing = state.clone();
    missing.remove("4.bias");
    let e = dst.load_state_dict(&missing).unwrap_err();
    assert!(e.to_string().contains("4.bias"), "{e}");
    let mut extra = state.clone();
    extra.insert("9.weight".into(), t64(&[1.], &[1]));
    assert!(dst.load_state_dict(&extra).is_err());
    let mut wrong = state.clone();
    wrong.insert(
        "8.bias".into(),
        Tensor::zeros(&[11], DType::F32, &cpu()).unwrap(),
    );
    let e = dst.load_state_dict(&wrong).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("8.bias"));
    let mut dt = state;
    dt.insert(
        "8.bias".into(),
        Tensor::zeros(&[10], DType::F64, &cpu()).unwrap(),
    );
    assert!(matches!(dst.load_state_dict(&dt), Err(Error::DType { .. })));
}
