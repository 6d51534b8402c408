//! The finite-difference gradient check shared by the autograd tests.

use sunrise::{no_grad, DType, Device, Result, Tensor};

/// A CPU f64 tensor uniform in `[lo, hi)`.
pub fn rand(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, seed, DType::F64, &Device::cpu()).unwrap()
}

/// A CPU f64 tensor from values.
pub fn f64s(data: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape, &Device::cpu()).unwrap()
}

/// A CPU i64 tensor from values.
pub fn i64s(data: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape, &Device::cpu()).unwrap()
}

/// The values of an f64 tensor.
pub fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>().unwrap()
}

/// Asserts two slices agree to `tol` relative to `max(1, |b|)`.
pub fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        let err = (x - y).abs();
        assert!(
            err <= tol * y.abs().max(1.0),
            "{what}: element {k}: got {x}, expected {y} (error {err:e})"
        );
    }
}

const H: f64 = 1e-6;
const TOL: f64 = 1e-6;

/// `sum(f(inputs) * w)` for a fixed random `w` shaped like the output.
fn loss(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Tensor {
    let out = f(inputs).unwrap();
    let w = rand(out.shape(), -1.0, 1.0, 0x5eed);
    out.mul(&w).unwrap().sum_all().unwrap()
}

/// Checks the gradient that backward gives every input of `f` against
/// central differences of `sum(f(inputs) * w)`.
pub fn gradcheck(name: &str, inputs: &[&Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.detach().set_requires_grad(true))
        .collect();
    let l = loss(&f, &leaves);
    assert!(l.requires_grad(), "{name}: the loss has no history");
    l.backward().unwrap();
    for (i, leaf) in leaves.iter().enumerate() {
        let g = leaf
            .grad()
            .unwrap_or_else(|| panic!("{name}: input {i} got no gradient"));
        assert_eq!(g.shape(), leaf.shape(), "{name}: input {i}: gradient shape");
        assert_eq!(g.dtype(), DType::F64);
        let numeric = no_grad(|| numeric_grad(&f, inputs, i));
        assert_close(&format!("{name}: input {i}"), &vals(&g), &numeric, TOL);
    }
}

fn numeric_grad(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[&Tensor], i: usize) -> Vec<f64> {
    let base = vals(inputs[i]);
    let shape = inputs[i].shape().to_vec();
    let at = |k: usize, d: f64| -> f64 {
        let mut v = base.clone();
        v[k] += d;
        let mut xs: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
        xs[i] = f64s(&v, &shape);
        loss(f, &xs).item().unwrap()
    };
    (0..base.len())
        .map(|k| (at(k, H) - at(k, -H)) / (2.0 * H))
        .collect()
}
