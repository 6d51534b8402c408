//! Elementwise ops, reductions and matmul.

use super::check::{f64s, gradcheck, rand, vals};
use sunrise::{Tensor, UnaryOp};

#[test]
fn every_unary_op() {
    for (k, op) in UnaryOp::ALL.into_iter().enumerate() {
        let positive = matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt);
        let lo = if positive { 0.5 } else { -2.0 };
        let x = rand(&[3, 4], lo, 2.0, 10 + k as u64);
        gradcheck(&format!("{op:?}"), &[&x], |t| t[0].unary(op));
    }
    // The named methods record the same way.
    let x = rand(&[5], -1.0, 1.0, 3);
    gradcheck("tanh(sigmoid(x))", &[&x], |t| t[0].sigmoid()?.tanh());
}

#[test]
fn every_binary_op_broadcasting_on_both_sides() {
    type Op = fn(&Tensor, &Tensor) -> sunrise::Result<Tensor>;
    /// Name, op, and the ranges of `a` and `b`.
    type Case = (&'static str, Op, (f64, f64), (f64, f64));
    let ops: [Case; 7] = [
        ("add", Tensor::add, (-1.0, 1.0), (-1.0, 1.0)),
        ("sub", Tensor::sub, (-1.0, 1.0), (-1.0, 1.0)),
        ("mul", Tensor::mul, (-1.0, 1.0), (-1.0, 1.0)),
        ("div", Tensor::div, (-1.0, 1.0), (0.5, 2.0)),
        ("pow", Tensor::pow, (0.5, 2.0), (-1.5, 1.5)),
        ("maximum", Tensor::maximum, (-1.0, 1.0), (-1.0, 1.0)),
        ("minimum", Tensor::minimum, (-1.0, 1.0), (-1.0, 1.0)),
    ];
    for (k, (name, op, ra, rb)) in ops.into_iter().enumerate() {
        let seed = 100 + 2 * k as u64;
        // [3, 1, 4] with [2, 1] -> [3, 2, 4]: each side is broadcast.
        let a = rand(&[3, 1, 4], ra.0, ra.1, seed);
        let b = rand(&[2, 1], rb.0, rb.1, seed + 1);
        gradcheck(name, &[&a, &b], |t| op(&t[0], &t[1]));
        // [2, 1] with [3, 1, 4], both sides made positive (x^2 + 1/2).
        gradcheck(&format!("{name} swapped shapes"), &[&b, &a], |t| {
            let sq = |x: &Tensor| x.pow_scalar(2.0)?.add_scalar(0.5);
            op(&sq(&t[0])?, &sq(&t[1])?)
        });
    }
}

#[test]
fn scalar_ops_and_a_reused_input() {
    let x = rand(&[2, 3], 0.5, 1.5, 7);
    gradcheck("scalar ops", &[&x], |t| {
        t[0].add_scalar(2.0)?
            .mul_scalar(-3.0)?
            .neg()?
            .pow_scalar(1.5)
    });
    gradcheck("x * x + x / x.exp()", &[&x], |t| {
        t[0].mul(&t[0])?.add(&t[0].div(&t[0].exp()?)?)
    });
}

#[test]
fn pow_at_zero_follows_pytorch() {
    // d/da a^b is 0 where b == 0; d/db a^b is 0 where a == 0 and b >= 0.
    let a = f64s(&[0.0, 1.0, 0.0], &[3]).set_requires_grad(true);
    let b = f64s(&[2.0, 0.0, 0.0], &[3]).set_requires_grad(true);
    a.pow(&b).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(&a.grad().unwrap()), [0.0, 0.0, 0.0]);
    assert_eq!(vals(&b.grad().unwrap()), [0.0, 0.0, 0.0]);
}

#[test]
fn maximum_and_minimum_split_ties_evenly() {
    let a = f64s(&[1.0, 2.0, 3.0], &[3]).set_requires_grad(true);
    let b = f64s(&[2.0, 2.0, 1.0], &[3]).set_requires_grad(true);
    a.maximum(&b)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(vals(&a.grad().unwrap()), [0.0, 0.5, 1.0]);
    assert_eq!(vals(&b.grad().unwrap()), [1.0, 0.5, 0.0]);
    a.zero_grad();
    b.zero_grad();
    a.minimum(&b)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(vals(&a.grad().unwrap()), [1.0, 0.5, 0.0]);
    assert_eq!(vals(&b.grad().unwrap()), [0.0, 0.5, 1.0]);
}

#[test]
fn where_routes_the_gradient_by_the_mask() {
    let c = rand(&[2, 3], -1.0, 1.0, 20);
    let mask = c.gt(&c.scalar_like(0.0).unwrap()).unwrap();
    let a = rand(&[2, 3], -1.0, 1.0, 21);
    let b = rand(&[3], -1.0, 1.0, 22);
    gradcheck("where", &[&a, &b], |t| Tensor::where_(&mask, &t[0], &t[1]));
}

#[test]
fn matmul_plain_batched_broadcast_transposed_and_vectors() {
    let cases: [(&[usize], &[usize]); 7] = [
        (&[2, 3], &[3, 4]),
        (&[2, 1, 3, 4], &[3, 4, 5]),
        (&[3, 4], &[2, 4, 2]),
        (&[3], &[3, 4]),
        (&[2, 3], &[3]),
        (&[3], &[3]),
        (&[2, 2, 3], &[3]),
    ];
    for (k, (sa, sb)) in cases.into_iter().enumerate() {
        let a = rand(sa, -1.0, 1.0, 30 + 2 * k as u64);
        let b = rand(sb, -1.0, 1.0, 31 + 2 * k as u64);
        gradcheck(&format!("matmul {sa:?} @ {sb:?}"), &[&a, &b], |t| {
            t[0].matmul(&t[1])
        });
    }
    // Transposed operands: strided views of leaves.
    let a = rand(&[4, 3], -1.0, 1.0, 50);
    let b = rand(&[2, 5, 4], -1.0, 1.0, 51);
    gradcheck("a^T @ b^T", &[&a, &b], |t| {
        t[0].t()?.matmul(&t[1].transpose(1, 2)?)
    });
    // A Linear layer's pattern: a batched input against a weight used as
    // W^T (its gradient is formed as (g^T x)^T, batch folded into rows),
    // a transposed batched input, and a sliced (non-transposed, strided)
    // matrix.
    let x = rand(&[2, 3, 4], -1.0, 1.0, 52);
    let w = rand(&[5, 4], -1.0, 1.0, 53);
    gradcheck("x [2,3,4] @ W^T", &[&x, &w], |t| t[0].matmul(&t[1].t()?));
    let w3 = rand(&[5, 3], -1.0, 1.0, 55);
    gradcheck("x^T [2,4,3] @ W^T", &[&x, &w3], |t| {
        t[0].transpose(1, 2)?.matmul(&t[1].t()?.t()?.t()?)
    });
    let wide = rand(&[4, 9], -1.0, 1.0, 54);
    gradcheck("x @ W[:, 2..7]", &[&x, &wide], |t| {
        t[0].matmul(&t[1].narrow(1, 2, 5)?)
    });
}

#[test]
fn a_weight_used_transposed_gets_a_contiguous_gradient_of_its_own_layout() {
    let x = rand(&[8, 3, 4], -1.0, 1.0, 60).detach();
    let w = rand(&[5, 4], -1.0, 1.0, 61)
        .detach()
        .set_requires_grad(true);
    x.matmul(&w.t().unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = w.grad().expect("a gradient");
    assert_eq!(g.shape(), &[5, 4]);
    assert!(g.is_contiguous(), "the gradient of W is W's layout");
    // sum over every row r of x: dW[o, i] = sum_r x[r, i] (all-ones dy).
    let xs = vals(&x);
    for (o, row) in vals(&g).chunks(4).enumerate() {
        for (i, &got) in row.iter().enumerate() {
            let want: f64 = (0..24).map(|r| xs[r * 4 + i]).sum();
            assert!(
                (got - want).abs() < 1e-9,
                "dW[{o}, {i}] = {got}, want {want}"
            );
        }
    }
}

#[test]
fn every_reduction_over_axes_with_and_without_keepdim() {
    type Red = fn(&Tensor, &[isize], bool) -> sunrise::Result<Tensor>;
    let reds: [(&str, Red); 4] = [
        ("sum", Tensor::sum),
        ("mean", Tensor::mean),
        ("max", Tensor::max),
        ("min", Tensor::min),
    ];
    let axes: [&[isize]; 5] = [&[], &[1], &[-1], &[0, 2], &[0, 1, 2]];
    for (name, red) in reds {
        for (k, ax) in axes.into_iter().enumerate() {
            for keepdim in [false, true] {
                let x = rand(&[2, 3, 4], -1.0, 1.0, 60 + k as u64);
                gradcheck(&format!("{name} {ax:?} keepdim {keepdim}"), &[&x], |t| {
                    red(&t[0], ax, keepdim)
                });
            }
        }
    }
    let x = rand(&[3, 2], -1.0, 1.0, 70);
    gradcheck("sum_all", &[&x], |t| t[0].sum_all());
    gradcheck("mean_all", &[&x], |t| t[0].mean_all());
    gradcheck("sum_to_shape", &[&x], |t| t[0].sum_to_shape(&[1, 2]));
}

#[test]
fn max_and_min_reductions_divide_ties_evenly() {
    let x = f64s(&[1.0, 3.0, 3.0, 2.0, 2.0, 2.0], &[2, 3]).set_requires_grad(true);
    x.max(&[1], false)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let third = 1.0 / 3.0;
    assert_eq!(
        vals(&x.grad().unwrap()),
        [0.0, 0.5, 0.5, third, third, third]
    );
    x.zero_grad();
    x.min(&[0, 1], false).unwrap().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
}
