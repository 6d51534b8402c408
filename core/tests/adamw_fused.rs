//! The fused `adamw_step` and `sgd_step` against the composite updates, in a test
//! binary of its own: it reads the process-wide op counts of
//! `sunrise::profile` to see which path ran.

use sunrise::optim::{AdamW, AdamWOptions, Optimizer, Sgd, SgdOptions};
use sunrise::{profile, DType, Device, OpId, Tensor};

/// The op counts are process-wide: the tests here take turns.
static PROFILE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Three steps of the optimizer `make` builds, on a 300x700 f32 parameter
/// stored contiguously and on the same values as a transposed view (which
/// takes the composite update), large enough to be split over the thread
/// pool. Per layout: the parameter after the steps and how many calls of
/// `op` ran.
fn dense_and_strided(
    seed: u64,
    op: OpId,
    make: impl Fn(Tensor) -> Box<dyn Optimizer>,
) -> [(Vec<f32>, u64); 2] {
    let _turn = PROFILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cpu = Device::cpu();
    let (r, c) = (300, 700);
    let base = Tensor::rand_uniform(&[c, r], -1.0, 1.0, seed, DType::F32, &cpu).unwrap();
    let strided = base.transpose(0, 1).unwrap();
    assert!(!strided.is_contiguous());
    let dense = strided.contiguous().unwrap();
    let target = Tensor::rand_uniform(&[r, c], -1.0, 1.0, seed + 1, DType::F32, &cpu).unwrap();
    [dense, strided].map(|p| {
        let p = p.set_requires_grad(true);
        let mut opt = make(p.clone());
        profile::reset();
        profile::set_enabled(true);
        for _ in 0..3 {
            opt.zero_grad();
            let loss = p.sub(&target).unwrap().mul(&p).unwrap().sum_all().unwrap();
            loss.backward().unwrap();
            opt.step().unwrap();
        }
        profile::set_enabled(false);
        let calls = profile::snapshot()
            .iter()
            .find(|t| t.op == op)
            .map_or(0, |t| t.calls);
        (p.contiguous().unwrap().to_vec::<f32>().unwrap(), calls)
    })
}

/// The fused path ran three times on the contiguous parameter, never on
/// the strided one, and both end with the same bits.
fn assert_same_bits(what: &str, [dense, strided]: &[(Vec<f32>, u64); 2]) {
    assert_eq!(
        (dense.1, strided.1),
        (3, 0),
        "{what}: fused calls (dense, strided)"
    );
    let differ = dense
        .0
        .iter()
        .zip(&strided.0)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    assert_eq!(
        differ,
        0,
        "{what}: {differ} of {} elements differ",
        dense.0.len()
    );
}

#[test]
fn fused_and_composite_adamw_give_the_same_bits() {
    let r = dense_and_strided(5, OpId::AdamwStep, |p| {
        Box::new(AdamW::new(vec![("p".into(), p)], AdamWOptions::new(0.01)).unwrap())
    });
    assert_same_bits("adamw", &r);
}

/// SGD with momentum (plain and Nesterov, with weight decay).
#[test]
fn fused_and_composite_sgd_give_the_same_bits() {
    for nesterov in [false, true] {
        let opts = SgdOptions {
            momentum: 0.9,
            dampening: if nesterov { 0.0 } else { 0.1 },
            nesterov,
            weight_decay: 0.01,
            ..SgdOptions::new(0.05)
        };
        let r = dense_and_strided(7, OpId::SgdStep, |p| {
            Box::new(Sgd::new(vec![("p".into(), p)], opts).unwrap())
        });
        assert_same_bits(&format!("sgd, nesterov {nesterov}"), &r);
    }
}

/// Three steps of an optimizer over four parameters (one stored as a
/// transposed view) with one optimizer for all and with one optimizer per
/// parameter. Returns the parameters after the steps, for each way, and
/// the calls of `multi` and of `single` in the shared run.
fn shared_and_separate(
    seed: u64,
    multi: OpId,
    single: OpId,
    make: impl Fn(Vec<(String, Tensor)>) -> Box<dyn Optimizer>,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, u64, u64) {
    let _turn = PROFILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cpu = Device::cpu();
    let shapes: [&[usize]; 4] = [&[300, 700], &[7], &[40, 3], &[5, 9]];
    let init = || -> Vec<Tensor> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let t =
                    Tensor::rand_uniform(s, -1.0, 1.0, seed + i as u64, DType::F32, &cpu).unwrap();
                // The last one is stored transposed.
                let t = if i == 3 {
                    t.transpose(0, 1)
                        .unwrap()
                        .contiguous()
                        .unwrap()
                        .transpose(0, 1)
                        .unwrap()
                } else {
                    t
                };
                t.set_requires_grad(true)
            })
            .collect()
    };
    let targets: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Tensor::rand_uniform(s, -1.0, 1.0, seed + 10 + i as u64, DType::F32, &cpu).unwrap()
        })
        .collect();
    let named = |ps: &[Tensor]| -> Vec<(String, Tensor)> {
        ps.iter()
            .enumerate()
            .map(|(i, p)| (format!("p{i}"), p.clone()))
            .collect()
    };
    let run = |ps: &[Tensor], opts: &mut [Box<dyn Optimizer>]| {
        for _ in 0..3 {
            opts.iter().for_each(|o| o.zero_grad());
            let mut loss = Tensor::zeros(&[], DType::F32, &cpu).unwrap();
            for (p, t) in ps.iter().zip(&targets) {
                loss = loss
                    .add(&p.sub(t).unwrap().mul(p).unwrap().sum_all().unwrap())
                    .unwrap();
            }
            loss.backward().unwrap();
            opts.iter_mut().for_each(|o| o.step().unwrap());
        }
        ps.iter()
            .map(|p| p.contiguous().unwrap().to_vec::<f32>().unwrap())
            .collect::<Vec<_>>()
    };
    let calls = |op: OpId| {
        profile::snapshot()
            .iter()
            .find(|t| t.op == op)
            .map_or(0, |t| t.calls)
    };
    let shared = init();
    let mut one = [make(named(&shared))];
    profile::reset();
    profile::set_enabled(true);
    let a = run(&shared, &mut one);
    profile::set_enabled(false);
    let (m, s) = (calls(multi), calls(single));
    let separate = init();
    let mut each: Vec<Box<dyn Optimizer>> = named(&separate)
        .into_iter()
        .map(|p| make(vec![p]))
        .collect();
    let b = run(&separate, &mut each);
    (a, b, m, s)
}

fn assert_same(what: &str, a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let differ = x
            .iter()
            .zip(y)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(
            differ,
            0,
            "{what}: parameter {i}: {differ} of {} differ",
            x.len()
        );
    }
}

/// One `adamw_step_multi` per step for the three contiguous parameters
/// (the transposed one takes the composite update), the same bits as one
/// optimizer per parameter.
#[test]
fn one_multi_call_per_step_gives_the_bits_of_one_call_per_parameter() {
    let (a, b, multi, single) =
        shared_and_separate(21, OpId::AdamwStepMulti, OpId::AdamwStep, |ps| {
            Box::new(AdamW::new(ps, AdamWOptions::new(0.01)).unwrap())
        });
    assert_eq!((multi, single), (3, 0), "adamw calls (multi, single)");
    assert_same("adamw", &a, &b);
    for momentum in [0.0, 0.9] {
        let opts = SgdOptions {
            momentum,
            weight_decay: 0.01,
            ..SgdOptions::new(0.05)
        };
        let (a, b, multi, single) =
            shared_and_separate(23, OpId::SgdStepMulti, OpId::SgdStep, |ps| {
                Box::new(Sgd::new(ps, opts).unwrap())
            });
        assert_eq!(
            (multi, single),
            (3, 0),
            "sgd momentum {momentum}: calls (multi, single)"
        );
        assert_same(&format!("sgd momentum {momentum}"), &a, &b);
    }
}
