//! Views, copies, casts and concat.

use super::check::{assert_close, gradcheck, rand, vals};
use sunrise::{DType, Tensor};

#[test]
fn permute_transpose_and_t() {
    let x = rand(&[2, 3, 4], -1.0, 1.0, 200);
    gradcheck("permute", &[&x], |t| t[0].permute(&[2, 0, 1]));
    gradcheck("transpose", &[&x], |t| t[0].transpose(0, -1));
    gradcheck("t then exp", &[&x], |t| t[0].t()?.exp());
}

#[test]
fn slice_narrow_and_overlapping_slices() {
    let x = rand(&[4, 5], -1.0, 1.0, 201);
    gradcheck("slice step 2", &[&x], |t| t[0].slice(1, 1, 5, 2));
    gradcheck("narrow", &[&x], |t| t[0].narrow(0, 1, 2));
    gradcheck("two overlapping slices", &[&x], |t| {
        t[0].narrow(1, 0, 3)?.mul(&t[0].narrow(1, 2, 3)?)
    });
}

#[test]
fn reshape_flatten_squeeze_unsqueeze() {
    let x = rand(&[2, 3, 4], -1.0, 1.0, 202);
    gradcheck("reshape view", &[&x], |t| t[0].reshape(&[6, 4]));
    gradcheck("reshape that copies", &[&x], |t| {
        t[0].transpose(0, 1)?.reshape(&[3, 8])
    });
    gradcheck("flatten", &[&x], |t| t[0].flatten());
    gradcheck("unsqueeze, squeeze", &[&x], |t| {
        t[0].unsqueeze(1)?.mul_scalar(2.0)?.squeeze(1)
    });
}

#[test]
fn broadcast_expand_and_copies() {
    let x = rand(&[3, 1], -1.0, 1.0, 203);
    gradcheck("broadcast_to", &[&x], |t| t[0].broadcast_to(&[2, 3, 4]));
    gradcheck("expand", &[&x], |t| t[0].expand(&[3, 5]));
    gradcheck("contiguous of a broadcast", &[&x], |t| {
        t[0].expand(&[3, 2])?.t()?.contiguous()
    });
    gradcheck("deep_copy", &[&x], |t| t[0].deep_copy());
}

#[test]
fn concat_sends_each_input_its_slice() {
    let a = rand(&[2, 1, 3], -1.0, 1.0, 204);
    let b = rand(&[2, 2, 3], -1.0, 1.0, 205);
    let c = rand(&[2, 3, 3], -1.0, 1.0, 206);
    gradcheck("concat axis 1", &[&a, &b, &c], |t| {
        Tensor::concat(&[&t[0], &t[1], &t[2]], 1)
    });
    let a = rand(&[2, 3], -1.0, 1.0, 207);
    gradcheck("concat of a tensor with itself", &[&a], |t| {
        Tensor::concat(&[&t[0], &t[0].exp()?], -1)
    });
}

#[test]
fn float_casts_carry_the_gradient_back_in_the_leaf_dtype() {
    let x = rand(&[4], -1.0, 1.0, 208).set_requires_grad(true);
    let w = rand(&[4], -1.0, 1.0, 209).cast(DType::F32).unwrap();
    let y = x.cast(DType::F32).unwrap();
    assert!(y.requires_grad());
    y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    let g = x.grad().unwrap();
    assert_eq!(g.dtype(), DType::F64);
    let want: Vec<f64> = w
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    assert_close("cast", &vals(&g), &want, 1e-12);
    // A cast to an integer dtype leaves the graph.
    assert!(!x.cast(DType::I64).unwrap().requires_grad());
    assert!(!x.gt(&x.scalar_like(0.0).unwrap()).unwrap().requires_grad());
    assert!(!x.argmax(0, false).unwrap().requires_grad());
}
