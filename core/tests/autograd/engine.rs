//! The engine: accumulation, no_grad, detach, freed graphs, typed errors.

use std::time::Instant;

use super::check::{f64s, i64s, rand, vals};
use sunrise::{is_grad_enabled, no_grad, DType, Device, Error, Tensor};

fn scalar_loss(t: &Tensor) -> Tensor {
    t.sum_all().unwrap()
}

#[test]
fn a_reused_tensor_sums_its_gradients() {
    let x = f64s(&[1.0, -2.0, 3.0], &[3]).set_requires_grad(true);
    let y = x.mul(&x).unwrap().add(&x).unwrap();
    scalar_loss(&y).backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [3.0, -3.0, 7.0]);
}

#[test]
fn gradients_accumulate_across_backward_calls_until_zero_grad() {
    let x = f64s(&[1.0, 2.0], &[2]).set_requires_grad(true);
    let clone = x.clone();
    for _ in 0..2 {
        scalar_loss(&x.mul_scalar(3.0).unwrap()).backward().unwrap();
    }
    assert_eq!(
        vals(&clone.grad().unwrap()),
        [6.0, 6.0],
        "clones share the grad"
    );
    clone.zero_grad();
    assert!(x.grad().is_none());
    scalar_loss(&x.mul_scalar(3.0).unwrap()).backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [3.0, 3.0]);
}

#[test]
fn leaf_gradients_own_their_storage() {
    let a = rand(&[3], -1.0, 1.0, 1).set_requires_grad(true);
    let b = rand(&[3], -1.0, 1.0, 2).set_requires_grad(true);
    let seed = f64s(&[1.0, 2.0, 3.0], &[3]);
    a.add(&b).unwrap().backward_with(&seed).unwrap();
    let (ga, gb) = (a.grad().unwrap(), b.grad().unwrap());
    assert!(!ga.shares_storage(&gb) && !ga.shares_storage(&seed));
    assert!(ga.is_contiguous());
    no_grad(|| ga.assign(&ga.mul_scalar(0.5).unwrap())).unwrap();
    assert_eq!(vals(&gb), [1.0, 2.0, 3.0]);
    assert_eq!(vals(&seed), [1.0, 2.0, 3.0]);
}

#[test]
fn no_grad_records_nothing_and_nests() {
    let x = rand(&[2], -1.0, 1.0, 3).set_requires_grad(true);
    assert!(is_grad_enabled());
    let y = no_grad(|| {
        assert!(!is_grad_enabled());
        no_grad(|| assert!(!is_grad_enabled()));
        assert!(
            !is_grad_enabled(),
            "the inner scope restores the outer mode"
        );
        x.exp().unwrap().reshape(&[1, 2]).unwrap()
    });
    assert!(is_grad_enabled());
    assert!(!y.requires_grad());
    assert!(matches!(
        scalar_loss(&y).backward(),
        Err(Error::InvalidArgument { .. })
    ));
    // The mode is per thread.
    no_grad(|| {
        std::thread::spawn(|| assert!(is_grad_enabled()))
            .join()
            .unwrap()
    });
}

#[test]
fn detach_cuts_the_graph_and_shares_storage() {
    let x = f64s(&[2.0, 5.0], &[2]).set_requires_grad(true);
    let d = x.detach();
    assert!(d.shares_storage(&x) && !d.requires_grad() && d.grad().is_none());
    scalar_loss(&x.mul(&d).unwrap()).backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [2.0, 5.0]);
    assert!(!x.set_requires_grad(false).requires_grad());
}

#[test]
fn leaves_and_non_leaves() {
    let x = rand(&[2], -1.0, 1.0, 4).set_requires_grad(true);
    let y = x.mul_scalar(2.0).unwrap();
    assert!(x.is_leaf() && !y.is_leaf() && y.requires_grad());
    scalar_loss(&y).backward().unwrap();
    assert!(y.grad().is_none(), "only leaves keep a gradient");
    let again = y.clone().set_requires_grad(true);
    assert!(!again.is_leaf(), "a non-leaf stays one");
}

#[test]
fn misuse_is_a_typed_error() {
    let x = rand(&[2, 2], -1.0, 1.0, 5).set_requires_grad(true);
    let y = x.exp().unwrap();
    assert!(matches!(y.backward(), Err(Error::InvalidArgument { .. })));
    let bad_shape = f64s(&[1.0, 2.0], &[2]);
    assert!(matches!(
        y.backward_with(&bad_shape),
        Err(Error::ShapeMismatch { .. })
    ));
    let bad_dtype = Tensor::ones(&[2, 2], DType::F32, &Device::cpu()).unwrap();
    assert!(matches!(
        y.backward_with(&bad_dtype),
        Err(Error::DType { .. })
    ));
    let plain = rand(&[1], -1.0, 1.0, 6);
    assert!(matches!(
        plain.backward(),
        Err(Error::InvalidArgument { .. })
    ));
    // Integer tensors have no gradient: the request is ignored.
    let idx = i64s(&[1, 2], &[2]).set_requires_grad(true);
    assert!(!idx.requires_grad() && idx.grad().is_none());
}

#[test]
fn a_second_backward_through_a_freed_graph_is_an_error() {
    let x = rand(&[3], -1.0, 1.0, 7).set_requires_grad(true);
    let l = scalar_loss(&x.tanh().unwrap());
    l.backward().unwrap();
    let before = vals(&x.grad().unwrap());
    match l.backward() {
        Err(Error::InvalidArgument { detail, .. }) => assert!(detail.contains("freed")),
        other => panic!("expected a freed-graph error, got {other:?}"),
    }
    assert_eq!(vals(&x.grad().unwrap()), before, "nothing was accumulated");
}

#[test]
fn in_place_writes_refuse_to_lose_gradient() {
    let p = rand(&[3], -1.0, 1.0, 8).set_requires_grad(true);
    let y = p.exp().unwrap();
    let dst = rand(&[3], -1.0, 1.0, 9);
    assert!(matches!(dst.assign(&y), Err(Error::InvalidArgument { .. })));
    assert!(matches!(y.assign(&dst), Err(Error::InvalidArgument { .. })));
    // An optimizer step: update a leaf in place under no_grad.
    scalar_loss(&p.mul(&p).unwrap()).backward().unwrap();
    let before = vals(&p);
    no_grad(|| {
        let g = p.grad().unwrap();
        p.assign(&p.sub(&g.mul_scalar(0.1)?)?)
    })
    .unwrap();
    let after = vals(&p);
    for (b, a) in before.iter().zip(&after) {
        assert!((a - 0.8 * b).abs() < 1e-12);
    }
    assert!(p.requires_grad() && p.is_leaf());
}

#[test]
fn a_deep_chain_runs_and_drops_without_recursion() {
    let x = rand(&[4], -1.0, 1.0, 10).set_requires_grad(true);
    let mut y = x.clone();
    for _ in 0..20_000 {
        y = y.add(&x).unwrap();
    }
    scalar_loss(&y).backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [20_001.0; 4]);
    let mut z = x.clone();
    for _ in 0..100_000 {
        z = z.mul_scalar(1.0).unwrap();
    }
    drop(z);
}

#[test]
fn f32_graphs_give_f32_gradients() {
    let x = Tensor::rand_uniform(&[3], -1.0, 1.0, 11, DType::F32, &Device::cpu())
        .unwrap()
        .set_requires_grad(true);
    scalar_loss(&x.mul_scalar(2.0).unwrap()).backward().unwrap();
    let g = x.grad().unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.to_vec::<f32>().unwrap(), [2.0; 3]);
}

/// Recording overhead: 10k tiny adds with and without an input that
/// requires grad. Run with `cargo test -p sunrise --test autograd --
/// --ignored --nocapture recording_overhead`.
#[test]
#[ignore = "timing figure, not a check"]
fn recording_overhead() {
    const N: usize = 10_000;
    let time = |x: &Tensor| {
        let b = rand(&[4], -1.0, 1.0, 13);
        let t0 = Instant::now();
        let mut y = x.clone();
        for _ in 0..N {
            y = y.add(&b).unwrap();
        }
        (t0.elapsed(), y)
    };
    let plain = rand(&[4], -1.0, 1.0, 12);
    let _ = time(&plain);
    let (t_plain, _) = time(&plain);
    let (t_rec, y) = time(&plain.clone().set_requires_grad(true));
    let t0 = Instant::now();
    scalar_loss(&y).backward().unwrap();
    let t_back = t0.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / N as f64;
    println!(
        "10k adds of [4] f64: no grad {:.2} us/op, recording {:.2} us/op (+{:.2}), \
         backward {:.2} us/op",
        per(t_plain),
        per(t_rec),
        per(t_rec) - per(t_plain),
        per(t_back)
    );
}
