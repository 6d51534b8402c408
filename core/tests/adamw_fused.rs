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
