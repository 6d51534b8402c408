//! `sunrise::optim`: SGD (plain, momentum, dampening, Nesterov, weight
//! decay) and AdamW steps against hand-computed updates, schedules,
//! gradient clipping, typed errors, and a small end-to-end fit.

use std::time::Instant;

use sunrise::nn::{Activation, Init, Linear, Module, Sequential};
use sunrise::optim::{
    clip_grad_norm, clip_grad_value, AdamW, AdamWOptions, ConstantLr, CosineLr, LrSchedule,
    Optimizer, Sgd, SgdOptions, StepLr,
};
use sunrise::{DType, Device, Tensor};

fn t64(data: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape, &Device::cpu()).unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.cast(DType::F64).unwrap().to_vec::<f64>().unwrap()
}

fn assert_close(got: &[f64], want: &[f64]) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
            "{got:?} vs {want:?}"
        );
    }
}

const P0: [f64; 3] = [1.0, -2.0, 0.5];
const C: [f64; 3] = [0.5, 1.5, -3.0];

/// The loss `sum(c p^2) / 2` (gradient `c p`) and its parameter.
fn param() -> Vec<(String, Tensor)> {
    vec![("p".to_string(), t64(&P0, &[3]).set_requires_grad(true))]
}

fn backward(params: &[(String, Tensor)]) {
    let p = &params[0].1;
    let c = t64(&C, &[3]);
    p.mul(p)
        .unwrap()
        .mul(&c)
        .unwrap()
        .sum_all()
        .unwrap()
        .mul_scalar(0.5)
        .unwrap()
        .backward()
        .unwrap();
}

/// Runs `steps` optimizer steps, comparing with `reference` (which maps the
/// host parameter and gradient to the next parameter) after each.
fn run(
    opt: &mut dyn Optimizer,
    steps: usize,
    mut reference: impl FnMut(&[f64], &[f64]) -> Vec<f64>,
) {
    let mut host = P0.to_vec();
    for _ in 0..steps {
        opt.zero_grad();
        backward(opt.params());
        let g: Vec<f64> = host.iter().zip(&C).map(|(p, c)| p * c).collect();
        assert_close(&vals(&opt.params()[0].1.grad().unwrap()), &g);
        opt.step().unwrap();
        host = reference(&host, &g);
        assert_close(&vals(&opt.params()[0].1), &host);
    }
}

fn sgd_reference(o: SgdOptions) -> impl FnMut(&[f64], &[f64]) -> Vec<f64> {
    let mut buf: Option<Vec<f64>> = None;
    move |p, g| {
        let d: Vec<f64> = p
            .iter()
            .zip(g)
            .map(|(p, g)| g + o.weight_decay * p)
            .collect();
        let step = if o.momentum == 0.0 {
            d
        } else {
            let b: Vec<f64> = match &buf {
                None => d.clone(),
                Some(b) => b
                    .iter()
                    .zip(&d)
                    .map(|(b, d)| o.momentum * b + (1.0 - o.dampening) * d)
                    .collect(),
            };
            buf = Some(b.clone());
            if o.nesterov {
                d.iter().zip(&b).map(|(d, b)| d + o.momentum * b).collect()
            } else {
                b
            }
        };
        p.iter().zip(&step).map(|(p, s)| p - o.lr * s).collect()
    }
}

#[test]
fn sgd_variants_match_hand_computed_updates() {
    let base = SgdOptions::new(0.1);
    let variants = [
        base,
        SgdOptions {
            momentum: 0.9,
            ..base
        },
        SgdOptions {
            momentum: 0.8,
            dampening: 0.3,
            ..base
        },
        SgdOptions {
            momentum: 0.9,
            nesterov: true,
            ..base
        },
        SgdOptions {
            weight_decay: 0.05,
            ..base
        },
        SgdOptions {
            momentum: 0.5,
            nesterov: true,
            weight_decay: 0.1,
            ..base
        },
    ];
    for o in variants {
        let mut opt = Sgd::new(param(), o).unwrap();
        run(&mut opt, 3, sgd_reference(o));
    }
    // Plain SGD by hand for one step: p - 0.1 c p.
    let mut opt = Sgd::new(param(), base).unwrap();
    backward(opt.params());
    opt.step().unwrap();
    assert_close(&vals(&opt.params()[0].1), &[0.95, -1.7, 0.65]);
}

#[test]
fn adamw_matches_hand_computed_updates() {
    let o = AdamWOptions {
        lr: 0.01,
        betas: (0.8, 0.95),
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let (mut m, mut v, mut t) = (vec![0.0; 3], vec![0.0; 3], 0);
    let reference = move |p: &[f64], g: &[f64]| {
        t += 1;
        let (b1, b2) = o.betas;
        (0..3)
            .map(|i| {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                p[i] * (1.0 - o.lr * o.weight_decay) - o.lr * mh / (vh.sqrt() + o.eps)
            })
            .collect()
    };
    let mut opt = AdamW::new(param(), o).unwrap();
    run(&mut opt, 3, reference);
    // First step by hand without decay: the step is lr * sign(g).
    let mut opt = AdamW::new(
        param(),
        AdamWOptions {
            weight_decay: 0.0,
            ..AdamWOptions::new(0.1)
        },
    )
    .unwrap();
    backward(opt.params());
    opt.step().unwrap();
    let p = vals(&opt.params()[0].1);
    assert!(
        (p[0] - 0.9).abs() < 1e-6 && (p[1] + 1.9).abs() < 1e-6 && (p[2] - 0.6).abs() < 1e-6,
        "{p:?}"
    );
}

#[test]
fn optimizers_skip_params_without_grad_and_clear_grads() {
    let params = vec![
        ("a".to_string(), t64(&[1.0], &[1]).set_requires_grad(true)),
        ("b".to_string(), t64(&[2.0], &[1]).set_requires_grad(true)),
    ];
    let mut opt = AdamW::new(params.clone(), AdamWOptions::new(0.5)).unwrap();
    params[0]
        .1
        .mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    opt.step().unwrap();
    assert!(vals(&params[0].1)[0] < 1.0);
    assert_eq!(
        vals(&params[1].1),
        vec![2.0],
        "no gradient, no step (not even decay)"
    );
    opt.zero_grad();
    assert!(params.iter().all(|(_, p)| p.grad().is_none()));
    opt.set_lr(0.25).unwrap();
    assert_eq!(opt.lr(), 0.25);
    assert!(opt.set_lr(-1.0).is_err() && opt.set_lr(f64::NAN).is_err());
}

#[test]
fn bad_settings_are_typed_errors() {
    let nest = SgdOptions {
        nesterov: true,
        ..SgdOptions::new(0.1)
    };
    assert!(matches!(
        Sgd::new(param(), nest),
        Err(sunrise::Error::InvalidArgument { .. })
    ));
    let damp = SgdOptions {
        nesterov: true,
        momentum: 0.9,
        dampening: 0.1,
        ..SgdOptions::new(0.1)
    };
    assert!(Sgd::new(param(), damp).is_err());
    assert!(Sgd::new(param(), SgdOptions::new(-0.1)).is_err());
    let betas = AdamWOptions {
        betas: (0.9, 1.0),
        ..AdamWOptions::default()
    };
    assert!(AdamW::new(param(), betas).is_err());
    assert!(AdamW::new(
        param(),
        AdamWOptions {
            eps: -1.0,
            ..AdamWOptions::default()
        }
    )
    .is_err());
    assert!(StepLr::new(0, 0.5).is_err() && CosineLr::new(0, 0.0).is_err());
    assert!(CosineLr::new(10, -1.0).is_err() && StepLr::new(3, f64::NAN).is_err());
}

#[test]
fn schedules_follow_their_formulas() {
    let s = StepLr::new(3, 0.5).unwrap();
    let got: Vec<f64> = (0..8).map(|k| s.lr(0.8, k)).collect();
    assert_eq!(got, vec![0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2]);
    let c = CosineLr::new(10, 0.1).unwrap();
    assert_eq!(c.lr(1.0, 0), 1.0);
    assert!((c.lr(1.0, 5) - 0.55).abs() < 1e-15);
    assert!((c.lr(1.0, 10) - 0.1).abs() < 1e-15);
    assert!((c.lr(1.0, 25) - 0.1).abs() < 1e-15, "stays at eta_min");
    let k = 3.0;
    let want = 0.1 + 0.9 * (1.0 + (std::f64::consts::PI * k / 10.0).cos()) / 2.0;
    assert!((c.lr(1.0, 3) - want).abs() < 1e-15);
    let w = CosineLr::new(10, 0.0).unwrap().with_warmup(4);
    let warm: Vec<f64> = (0..5).map(|k| w.lr(2.0, k)).collect();
    assert_eq!(warm, vec![0.5, 1.0, 1.5, 2.0, 2.0]);
    assert!(
        (w.lr(2.0, 9) - 1.0).abs() < 1e-15,
        "halfway through the cosine phase"
    );
    assert_eq!(ConstantLr.lr(0.3, 1000), 0.3);
}

#[test]
fn clipping_scales_grads_in_place() {
    let params = vec![
        (
            "a".to_string(),
            t64(&[0.0, 0.0], &[2]).set_requires_grad(true),
        ),
        ("b".to_string(), t64(&[0.0], &[1]).set_requires_grad(true)),
        (
            "unused".to_string(),
            t64(&[0.0], &[1]).set_requires_grad(true),
        ),
    ];
    let grads = |ga: [f64; 2], gb: f64| {
        for (_, p) in &params {
            p.zero_grad();
        }
        let l = params[0].1.mul(&t64(&ga, &[2])).unwrap().sum_all().unwrap();
        let l = l
            .add(&params[1].1.mul_scalar(gb).unwrap().sum_all().unwrap())
            .unwrap();
        l.backward().unwrap();
    };
    grads([3.0, 4.0], 12.0); // norm 13
    let n = clip_grad_norm(&params, 6.5).unwrap();
    assert!((n - 13.0).abs() < 1e-12);
    let f = 6.5 / (13.0 + 1e-6);
    assert_close(&vals(&params[0].1.grad().unwrap()), &[3.0 * f, 4.0 * f]);
    assert_close(&vals(&params[1].1.grad().unwrap()), &[12.0 * f]);
    grads([3.0, 4.0], 12.0);
    assert!((clip_grad_norm(&params, 100.0).unwrap() - 13.0).abs() < 1e-12);
    assert_eq!(
        vals(&params[0].1.grad().unwrap()),
        vec![3.0, 4.0],
        "below the limit: unchanged"
    );
    clip_grad_value(&params, 3.5).unwrap();
    assert_eq!(vals(&params[0].1.grad().unwrap()), vec![3.0, 3.5]);
    assert_eq!(vals(&params[1].1.grad().unwrap()), vec![3.5]);
    assert!(clip_grad_norm(&params, -1.0).is_err());
    grads([f64::INFINITY, 0.0], 0.0);
    assert!(clip_grad_norm(&params, 1.0).is_err());
}

/// XOR of the quadrants: points with |x|, |y| in [0.2, 1], label 1 when
/// the signs differ. Not linearly separable; a small MLP separates it.
fn xor_data(n: usize, seed: u64) -> (Tensor, Tensor) {
    let mut r = sunrise::random::Rng::new(seed);
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let a = r.uniform(0.2, 1.0) * if r.next_f64() < 0.5 { -1.0 } else { 1.0 };
        let b = r.uniform(0.2, 1.0) * if r.next_f64() < 0.5 { -1.0 } else { 1.0 };
        xs.extend([a as f32, b as f32]);
        ys.push(i64::from((a < 0.0) != (b < 0.0)));
    }
    let dev = Device::cpu();
    (
        Tensor::from_slice(&xs, &[n, 2], &dev).unwrap(),
        Tensor::from_slice(&ys, &[n], &dev).unwrap(),
    )
}

fn accuracy(model: &dyn Module, x: &Tensor, y: &Tensor) -> f64 {
    let pred = sunrise::no_grad(|| model.forward(x)?.argmax(-1, false)).unwrap();
    let p = pred.to_vec::<i64>().unwrap();
    let t = y.to_vec::<i64>().unwrap();
    p.iter().zip(&t).filter(|(a, b)| a == b).count() as f64 / t.len() as f64
}

fn fit(opt: &mut dyn Optimizer, model: &dyn Module, schedule: &dyn LrSchedule, steps: usize) {
    let (x, y) = xor_data(256, 1);
    let base = opt.lr();
    for step in 0..steps {
        opt.set_lr(schedule.lr(base, step)).unwrap();
        opt.zero_grad();
        let logits = model.forward(&x).unwrap();
        let loss = Tensor::cross_entropy(&logits, &y, -100)
            .unwrap()
            .mean_all()
            .unwrap();
        loss.backward().unwrap();
        clip_grad_norm(opt.params(), 5.0).unwrap();
        opt.step().unwrap();
    }
    let (xt, yt) = xor_data(512, 2);
    let acc = accuracy(model, &xt, &yt);
    assert!(acc >= 0.98, "held-out accuracy {acc}");
}

fn mlp(seed: u64) -> Sequential {
    let mut ini = Init::cpu(seed);
    Sequential::new()
        .with(Linear::new(2, 16, &mut ini).unwrap())
        .with(Activation::tanh())
        .with(Linear::new(16, 2, &mut ini).unwrap())
}

#[test]
fn mlp_fits_xor_with_adamw_and_with_sgd() {
    let start = Instant::now();
    let model = mlp(0);
    let mut adam = AdamW::new(model.named_parameters(), AdamWOptions::new(0.05)).unwrap();
    fit(
        &mut adam,
        &model,
        &CosineLr::new(300, 0.0).unwrap().with_warmup(10),
        300,
    );
    let model = mlp(1);
    let o = SgdOptions {
        momentum: 0.9,
        nesterov: true,
        ..SgdOptions::new(0.2)
    };
    let mut sgd = Sgd::new(model.named_parameters(), o).unwrap();
    fit(&mut sgd, &model, &StepLr::new(200, 0.5).unwrap(), 300);
    let secs = start.elapsed().as_secs_f64();
    assert!(secs < 5.0, "two fits took {secs:.2} s");
}
