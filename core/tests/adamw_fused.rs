//! The fused `adamw_step` against the composite AdamW update, in a test
//! binary of its own: it reads the process-wide op counts of
//! `sunrise::profile` to see which path ran.

use sunrise::optim::{AdamW, AdamWOptions, Optimizer};
use sunrise::{DType, Device, Tensor};

/// The fused `adamw_step` (a contiguous parameter) and the composite
/// update (the same parameter as a transposed, non-contiguous view) give
/// the same bits in f32 over several steps, for parameters large enough
/// to be split over the thread pool.
#[test]
fn fused_and_composite_adamw_give_the_same_bits() {
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
