//! Gradients of every layer with respect to its input and its parameters,
//! against central finite differences in f64. The loss is
//! `sum(forward(x) * r)` for a fixed random `r`.

use sunrise::nn::{
    Activation, ActivationKind, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Embedding, Flatten,
    LayerNorm, Linear, MaxPool2d, Module, TransformerConfig, TransformerEncoderBlock,
};
use sunrise::{Conv2dOptions, DType, Device, Pool2dOptions, Tensor};

use super::{init64, randv, t64, vals};

const H: f64 = 1e-6;

fn loss(m: &dyn Module, x: &Tensor, r: &Tensor) -> f64 {
    sunrise::no_grad(|| m.forward(x)?.mul(r)?.sum_all()?.item()).unwrap()
}

/// Up to 40 indices spread over `0..n`.
fn picks(n: usize) -> Vec<usize> {
    let step = n.div_ceil(40).max(1);
    (0..n).step_by(step).collect()
}

fn compare(what: &str, analytic: &[f64], idx: &[usize], numeric: &[f64]) {
    for (&i, &num) in idx.iter().zip(numeric) {
        let a = analytic[i];
        assert!(
            (a - num).abs() <= 1e-6 * (1.0 + num.abs()),
            "{what}[{i}]: autograd {a}, finite differences {num}"
        );
    }
}

/// Central differences of the loss in each picked element of `t`, which is
/// perturbed in place and restored.
fn numeric(t: &Tensor, f: &dyn Fn() -> f64) -> (Vec<usize>, Vec<f64>) {
    let base = vals(t);
    let set = |v: &[f64]| sunrise::no_grad(|| t.assign(&t64(v, t.shape()))).unwrap();
    let idx = picks(base.len());
    let mut out = Vec::new();
    for &i in &idx {
        let mut v = base.clone();
        v[i] = base[i] + H;
        set(&v);
        let up = f();
        v[i] = base[i] - H;
        set(&v);
        let down = f();
        out.push((up - down) / (2.0 * H));
    }
    set(&base);
    (idx, out)
}

/// Checks the gradients of `m` at the f64 input `x` (and of `x` itself
/// when `x_grad`).
fn check(m: &dyn Module, x: Tensor, x_grad: bool) {
    for (_, p) in m.named_parameters() {
        p.zero_grad();
    }
    let x = if x_grad { x.set_requires_grad(true) } else { x };
    let y = m.forward(&x).unwrap();
    let r = t64(&randv(y.numel(), 77), y.shape());
    y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
    let xd = x.detach();
    let f = || loss(m, &xd, &r);
    if x_grad {
        let g = vals(&x.grad().expect("input gradient"));
        let (idx, num) = numeric(&xd, &f);
        compare("input", &g, &idx, &num);
    }
    for (name, p) in m.named_parameters() {
        let g = vals(&p.grad().unwrap_or_else(|| panic!("no gradient for {name}")));
        let (idx, num) = numeric(&p, &f);
        compare(&name, &g, &idx, &num);
    }
}

fn x64(shape: &[usize], seed: u64) -> Tensor {
    t64(&randv(shape.iter().product(), seed), shape)
}

#[test]
fn linear_and_conv2d_gradients() {
    let mut ini = init64(1);
    check(
        &Linear::new(3, 4, &mut ini).unwrap(),
        x64(&[2, 2, 3], 2),
        true,
    );
    check(
        &Linear::with_bias(5, 2, false, &mut ini).unwrap(),
        x64(&[5], 3),
        true,
    );
    let opts = Conv2dOptions {
        stride: [2, 1],
        padding: [1, 1],
        dilation: [1, 2],
        groups: 2,
    };
    let conv = Conv2d::with_options(4, 6, [3, 2], opts, true, &mut ini).unwrap();
    check(&conv, x64(&[2, 4, 5, 5], 4), true);
    check(
        &Conv2d::new(1, 2, 2, &mut ini).unwrap(),
        x64(&[1, 1, 3, 4], 5),
        true,
    );
}

#[test]
fn normalisation_gradients_in_train_and_eval_mode() {
    let ini = init64(0);
    let bn = BatchNorm2d::new(3, &ini).unwrap();
    for (i, (_, p)) in bn.named_parameters().iter().enumerate() {
        let v: Vec<f64> = randv(3, 40 + i as u64)
            .iter()
            .map(|r| 1.0 + r / 2.0)
            .collect();
        sunrise::no_grad(|| p.assign(&t64(&v, &[3]))).unwrap();
    }
    check(&bn, x64(&[2, 3, 2, 3], 6), true);
    bn.eval();
    check(&bn, x64(&[2, 3, 2, 3], 7), true);
    let ln = LayerNorm::new(&[2, 3], &ini).unwrap();
    for (i, (_, p)) in ln.named_parameters().iter().enumerate() {
        let v = randv(6, 50 + i as u64);
        sunrise::no_grad(|| p.assign(&t64(&v, &[2, 3]))).unwrap();
    }
    check(&ln, x64(&[4, 2, 3], 8), true);
}

#[test]
fn embedding_gradient_accumulates_repeated_rows() {
    let emb = Embedding::new(5, 3, &mut init64(2)).unwrap();
    let idx = Tensor::from_slice(&[1i64, 4, 1, 0, 1, 3], &[2, 3], &Device::cpu()).unwrap();
    check(&emb, idx, false);
    let g = vals(&emb.weight().grad().unwrap());
    assert!(g[6..9].iter().all(|&v| v == 0.0), "row 2 is never used");
}

#[test]
fn pool_activation_and_flatten_gradients() {
    let o = Pool2dOptions {
        kernel: [3, 2],
        stride: [2, 1],
        padding: [1, 1],
        count_include_pad: false,
    };
    check(&MaxPool2d::new(o), x64(&[2, 2, 5, 4], 9), true);
    check(&AvgPool2d::new(o), x64(&[2, 2, 5, 4], 10), true);
    let with_pad = Pool2dOptions {
        count_include_pad: true,
        ..o
    };
    check(&AvgPool2d::new(with_pad), x64(&[1, 2, 4, 4], 11), true);
    for kind in [
        ActivationKind::Relu,
        ActivationKind::Gelu,
        ActivationKind::GeluTanh,
        ActivationKind::Sigmoid,
        ActivationKind::Tanh,
        ActivationKind::Silu,
    ] {
        check(&Activation::new(kind), x64(&[3, 7], 12), true);
    }
    check(&Flatten::default(), x64(&[2, 3, 2], 13), true);
}

#[test]
fn dropout_gradient_is_the_mask() {
    let d = Dropout::new(0.4, 3).unwrap();
    let x = x64(&[200], 14).set_requires_grad(true);
    let y = d.forward(&x).unwrap();
    y.sum_all().unwrap().backward().unwrap();
    let (xv, yv, g) = (vals(&x), vals(&y), vals(&x.grad().unwrap()));
    for i in 0..200 {
        let mask = yv[i] / xv[i];
        assert!(mask == 0.0 || (mask - 1.0 / 0.6).abs() < 1e-12);
        assert!((g[i] - mask).abs() < 1e-12);
    }
}

#[test]
fn transformer_block_gradients() {
    for (norm_first, activation) in [(false, ActivationKind::Relu), (true, ActivationKind::Gelu)] {
        let cfg = TransformerConfig {
            dim_feedforward: 12,
            dropout: 0.0,
            activation,
            norm_first,
            ..TransformerConfig::new(8, 2)
        };
        let block = TransformerEncoderBlock::new(&cfg, &mut init64(5)).unwrap();
        check(&block, x64(&[2, 3, 8], 15), true);
    }
}

#[test]
fn cnn_gradients_end_to_end() {
    let model = super::cnn(&mut init64(6));
    check(&model, x64(&[3, 1, 8, 8], 16), true);
    assert!(model
        .state_dict()
        .iter()
        .all(|(_, t)| t.dtype() != DType::F32));
}
