//! The fused `adamw_step` and `sgd_step` against the composite updates, in a test
//! binary of its own: it reads the process-wide op counts of
//! `sunrise::profile` to see which path ran.

use sunrise::optim::{AdamW, AdamWOptions, Optimizer};
use sunrise::{DType, Device, Tensor};

/// The op counts are process-wide: the tests here take turns.
static PROFILE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The fused `adamw_step` (a contiguous parameter) and the composite
/// update (the same parameter as a transposed, non-contiguous view) give
/// the same bits in f32 over several steps, for parameters large enough
/// to be split over the thread pool.
#[test]
fn fused_and_composite_adamw_give_the_same_bits() {
    let _turn = PROFILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    use sunrise::profile;
    let cpu = Device::cpu();
    let (r, c) = (300, 700);
    let base = Tensor::rand_uniform(&[c, r], -1.0, 1.0, 5, DType::F32, &cpu).unwrap();
    let strided = base.transpose(0, 1).unwrap().contiguous().unwrap();
    let strided = strided
        .transpose(0, 1)
        .unwrap()
        .contiguous()
        .unwrap()
        .transpose(0, 1)
        .unwrap();
    assert!(!strided.is_contiguous());
    let dense = strided.contiguous().unwrap();
    let target = Tensor::rand_uniform(&[r, c], -1.0, 1.0, 6, DType::F32, &cpu).unwrap();
    let mut result = Vec::new();
    for p in [dense, strided] {
        let p = p.set_requires_grad(true);
        let mut opt = AdamW::new(vec![("p".into(), p.clone())], AdamWOptions::new(0.01)).unwrap();
        profile::reset();
        profile::set_enabled(true);
        for _ in 0..3 {
            opt.zero_grad();
            p.sub(&target)
                .unwrap()
                .mul(&p)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            opt.step().unwrap();
        }
        profile::set_enabled(false);
        let fused = profile::snapshot()
            .iter()
            .find(|t| t.op == sunrise::OpId::AdamwStep)
            .map_or(0, |t| t.calls);
        result.push((p.contiguous().unwrap().to_vec::<f32>().unwrap(), fused));
    }
    assert_eq!(result[0].1, 3, "the contiguous parameter takes adamw_step");
    assert_eq!(result[1].1, 0, "the strided one takes the composite update");
    let (a, b) = (&result[0].0, &result[1].0);
    let differ = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    assert_eq!(differ, 0, "{differ} of {} elements differ", a.len());
}

/// The same for SGD with momentum (plain and Nesterov, with weight decay):
/// `sgd_step` on a contiguous parameter, the composite update on a strided
/// one, the same bits.
#[test]
fn fused_and_composite_sgd_give_the_same_bits() {
    let _turn = PROFILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    use sunrise::optim::{Sgd, SgdOptions};
    use sunrise::profile;
    let cpu = Device::cpu();
    let (r, c) = (300, 700);
    let target = Tensor::rand_uniform(&[r, c], -1.0, 1.0, 8, DType::F32, &cpu).unwrap();
    for nesterov in [false, true] {
        let opts = SgdOptions {
            momentum: 0.9,
            dampening: if nesterov { 0.0 } else { 0.1 },
            nesterov,
            weight_decay: 0.01,
            ..SgdOptions::new(0.05)
        };
        let base = Tensor::rand_uniform(&[c, r], -1.0, 1.0, 7, DType::F32, &cpu).unwrap();
        let strided = base.transpose(0, 1).unwrap();
        let dense = strided.contiguous().unwrap();
        let mut result = Vec::new();
        for p in [dense, strided] {
            let p = p.set_requires_grad(true);
            let mut opt = Sgd::new(vec![("p".into(), p.clone())], opts).unwrap();
            profile::reset();
            profile::set_enabled(true);
            for _ in 0..3 {
                opt.zero_grad();
                p.sub(&target)
                    .unwrap()
                    .mul(&p)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                opt.step().unwrap();
            }
            profile::set_enabled(false);
            let fused = profile::snapshot()
                .iter()
                .find(|t| t.op == sunrise::OpId::SgdStep)
                .map_or(0, |t| t.calls);
            result.push((p.contiguous().unwrap().to_vec::<f32>().unwrap(), fused));
        }
        assert_eq!((result[0].1, result[1].1), (3, 0), "nesterov {nesterov}");
        let (a, b) = (&result[0].0, &result[1].0);
        let differ = a
            .iter()
            .zip(b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(
            differ,
            0,
            "nesterov {nesterov}: {differ} of {} differ",
            a.len()
        );
    }
}
