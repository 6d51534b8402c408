//! Portable flat kernels, generic over the element type and the scalar op.
//! They serve f64 and i64 everywhere, and f32 on the portable tier (and for
//! the f32 ops without a SIMD version).

use sunrise_backend_api::OpId;

use crate::element::Float;

use super::kernels::{Bin, BinKernels, Un};
use super::scalar::{self, BinaryOp, UnaryOp};

/// `out[i] = F(x[i])`.
pub(crate) fn unary<T: Copy, F: UnaryOp<T>>(x: &[T], out: &mut [T]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = F::apply(v);
    }
}

/// `dx[i] = dy[i] * F'(x[i])`.
pub(crate) fn backward<T: Copy, F: UnaryOp<T>>(x: &[T], dy: &[T], dx: &mut [T]) {
    for ((o, &v), &d) in dx.iter_mut().zip(x).zip(dy) {
        *o = F::grad(v, d);
    }
}

/// `out[i] = F(a[i], b[i])`.
pub(crate) fn vv<T: Copy, F: BinaryOp<T>>(a: &[T], b: &[T], out: &mut [T]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = F::apply(x, y);
    }
}

/// `out[i] = F(a[i], b)`.
pub(crate) fn vs<T: Copy, F: BinaryOp<T>>(a: &[T], b: T, out: &mut [T]) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = F::apply(x, b);
    }
}

/// `out[i] = F(a, b[i])`.
pub(crate) fn sv<T: Copy, F: BinaryOp<T>>(a: T, b: &[T], out: &mut [T]) {
    for (o, &y) in out.iter_mut().zip(b) {
        *o = F::apply(a, y);
    }
}

/// The three forms of binary op `F`.
fn binary_kernels<T: Copy + 'static, F: BinaryOp<T>>() -> BinKernels<T> {
    BinKernels {
        vv: vv::<T, F>,
        vs: vs::<T, F>,
        sv: sv::<T, F>,
    }
}

/// The portable kernel of unary op `op` on floats.
pub(crate) fn float_unary<T: Float>(op: OpId) -> Option<Un<T>> {
    use scalar::*;
    Some(match op {
        OpId::Neg => unary::<T, Neg>,
        OpId::Abs => unary::<T, Abs>,
        OpId::Exp => unary::<T, Exp>,
        OpId::Log => unary::<T, Log>,
        OpId::Sqrt => unary::<T, Sqrt>,
        OpId::Rsqrt => unary::<T, Rsqrt>,
        OpId::Relu => unary::<T, Relu>,
        OpId::GeluErf => unary::<T, GeluErf>,
        OpId::GeluTanh => unary::<T, GeluTanh>,
        OpId::Sigmoid => unary::<T, Sigmoid>,
        OpId::Tanh => unary::<T, Tanh>,
        OpId::Silu => unary::<T, Silu>,
        _ => return None,
    })
}

/// The portable backward kernel `(x, dy) -> dx` of unary op `op` on floats.
pub(crate) fn float_backward<T: Float>(op: OpId) -> Option<Bin<T>> {
    use scalar::*;
    Some(match op {
        OpId::Neg => backward::<T, Neg>,
        OpId::Abs => backward::<T, Abs>,
        OpId::Exp => backward::<T, Exp>,
        OpId::Log => backward::<T, Log>,
        OpId::Sqrt => backward::<T, Sqrt>,
        OpId::Rsqrt => backward::<T, Rsqrt>,
        OpId::Relu => backward::<T, Relu>,
        OpId::GeluErf => backward::<T, GeluErf>,
        OpId::GeluTanh => backward::<T, GeluTanh>,
        OpId::Sigmoid => backward::<T, Sigmoid>,
        OpId::Tanh => backward::<T, Tanh>,
        OpId::Silu => backward::<T, Silu>,
        _ => return None,
    })
}

/// The portable kernels of binary op `op` on floats.
pub(crate) fn float_binary<T: Float>(op: OpId) -> Option<BinKernels<T>> {
    use scalar::*;
    Some(match op {
        OpId::Add => binary_kernels::<T, Add>(),
        OpId::Sub => binary_kernels::<T, Sub>(),
        OpId::Mul => binary_kernels::<T, Mul>(),
        OpId::Div => binary_kernels::<T, Div>(),
        OpId::Pow => binary_kernels::<T, Pow>(),
        OpId::Maximum => binary_kernels::<T, Maximum>(),
        OpId::Minimum => binary_kernels::<T, Minimum>(),
        _ => return None,
    })
}

/// The kernels of binary op `op` on i64 (no `div`, no `pow`).
pub(crate) fn int_binary(op: OpId) -> Option<BinKernels<i64>> {
    use scalar::*;
    Some(match op {
        OpId::Add => binary_kernels::<i64, IntAdd>(),
        OpId::Sub => binary_kernels::<i64, IntSub>(),
        OpId::Mul => binary_kernels::<i64, IntMul>(),
        OpId::Maximum => binary_kernels::<i64, IntMaximum>(),
        OpId::Minimum => binary_kernels::<i64, IntMinimum>(),
        _ => return None,
    })
}

fn int_neg(x: &[i64], out: &mut [i64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v.wrapping_neg();
    }
}

fn int_abs(x: &[i64], out: &mut [i64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v.wrapping_abs();
    }
}

/// The kernel of unary op `op` on i64 (`neg` and `abs`, wrapping at
/// `i64::MIN`).
pub(crate) fn int_unary(op: OpId) -> Option<Un<i64>> {
    match op {
        OpId::Neg => Some(int_neg),
        OpId::Abs => Some(int_abs),
        _ => None,
    }
}
