//! The scalar definition of every elementwise op, one zero-sized type per
//! op: the portable kernels apply these, and the SIMD kernels reproduce
//! them lane by lane (bit for bit where the math is exact).

use crate::element::Float;

use super::math;

/// A unary op and its derivative.
pub(crate) trait UnaryOp<T>: 'static {
    /// `y = f(x)`.
    fn apply(x: T) -> T;
    /// `dx = dy * f'(x)`.
    fn grad(x: T, dy: T) -> T;
}

/// A binary op.
pub(crate) trait BinaryOp<T>: 'static {
    /// `c = f(a, b)`.
    fn apply(a: T, b: T) -> T;
}

/// `sqrt(2 / pi)`, the GELU tanh-form scale.
const GELU_C: f64 = 0.797_884_560_802_865_4;
/// The GELU tanh-form cubic coefficient.
const GELU_K: f64 = 0.044_715;

macro_rules! unary_ops {
    ($($(#[$doc:meta])* $name:ident: |$x:ident| $f:expr, |$gx:ident, $dy:ident| $g:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;
        impl<T: Float> UnaryOp<T> for $name {
            #[inline(always)]
            fn apply($x: T) -> T {
                $f
            }
            #[inline(always)]
            fn grad($gx: T, $dy: T) -> T {
                $g
            }
        }
    )*};
}

#[inline(always)]
fn c<T: Float>(v: f64) -> T {
    T::from_f64(v)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// `x/2 (1 + tanh u)` written as `x / (1 + e^(-2u))`, `u = sqrt(2/pi) (x + k x^3)`.
#[inline(always)]
fn gelu_tanh<T: Float>(x: T) -> T {
    let u = x * (c::<T>(GELU_C) + c::<T>(GELU_C * GELU_K) * x * x);
    x / (T::ONE + (c::<T>(-2.0) * u).exp())
}

#[inline(always)]
fn gelu_tanh_grad<T: Float>(x: T) -> T {
    let u = x * (c::<T>(GELU_C) + c::<T>(GELU_C * GELU_K) * x * x);
    let t = u.tanh();
    let du = c::<T>(GELU_C) + c::<T>(3.0 * GELU_C * GELU_K) * x * x;
    c::<T>(0.5) * (T::ONE + t) + c::<T>(0.5) * x * (T::ONE - t * t) * du
}

unary_ops! {
    /// `-x`
    Neg: |x| -x, |_x, dy| -dy;
    /// `|x|`; its derivative is `sign(x)`, 0 at 0.
    Abs: |x| x.abs(), |x, dy| if x > T::ZERO { dy } else if x < T::ZERO { -dy } else { T::ZERO };
    /// `e^x`
    Exp: |x| x.exp(), |x, dy| dy * x.exp();
    /// `ln x`
    Log: |x| x.ln(), |x, dy| dy / x;
    /// `sqrt x`
    Sqrt: |x| x.sqrt(), |x, dy| dy / (c::<T>(2.0) * x.sqrt());
    /// `1 / sqrt x`
    Rsqrt: |x| T::ONE / x.sqrt(), |x, dy| {
        let r = T::ONE / x.sqrt();
        c::<T>(-0.5) * dy * r * r * r
    };
    /// `max(x, 0)` as `0 > x ? 0 : x` (NaN stays NaN); derivative 0 at 0.
    Relu: |x| if T::ZERO > x { T::ZERO } else { x }, |x, dy| if x > T::ZERO { dy } else { T::ZERO };
    /// `x Phi(x)`, computed in f64.
    GeluErf: |x| T::from_f64(math::gelu_erf(x.to_f64())),
        |x, dy| dy * T::from_f64(math::gelu_erf_grad(x.to_f64()));
    /// `x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    GeluTanh: |x| gelu_tanh(x), |x, dy| dy * gelu_tanh_grad(x);
    /// `1 / (1 + e^-x)`
    Sigmoid: |x| sigmoid(x), |x, dy| {
        let s = sigmoid(x);
        dy * s * (T::ONE - s)
    };
    /// `tanh x`
    Tanh: |x| x.tanh(), |x, dy| {
        let t = x.tanh();
        dy * (T::ONE - t * t)
    };
    /// `x sigmoid(x)`, as `x / (1 + e^-x)`.
    Silu: |x| x / (T::ONE + (-x).exp()), |x, dy| {
        let s = sigmoid(x);
        dy * s * (T::ONE + x * (T::ONE - s))
    };
}

macro_rules! binary_ops {
    ($($(#[$doc:meta])* $name:ident: |$a:ident, $b:ident| $f:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;
        impl<T: Float> BinaryOp<T> for $name {
            #[inline(always)]
            fn apply($a: T, $b: T) -> T {
                $f
            }
        }
    )*};
}

binary_ops! {
    /// `a + b`
    Add: |a, b| a + b;
    /// `a - b`
    Sub: |a, b| a - b;
    /// `a * b`
    Mul: |a, b| a * b;
    /// `a / b`
    Div: |a, b| a / b;
    /// `a ^ b`
    Pow: |a, b| a.powf(b);
    /// `max(a, b)`, NaN when either is (a NaN `a` is returned as is, else
    /// `a > b ? a : b`, which returns a NaN `b`).
    Maximum: |a, b| if a.is_nan() || a > b { a } else { b };
    /// `min(a, b)`, NaN when either is.
    Minimum: |a, b| if a.is_nan() || a < b { a } else { b };
}

macro_rules! int_ops {
    ($($(#[$doc:meta])* $name:ident: |$a:ident, $b:ident| $f:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;
        impl BinaryOp<i64> for $name {
            #[inline(always)]
            fn apply($a: i64, $b: i64) -> i64 {
                $f
            }
        }
    )*};
}

// i64 arithmetic wraps on overflow (never panics); there is no i64 `div`
// or `pow`.
int_ops! {
    /// `a + b`, wrapping.
    IntAdd: |a, b| a.wrapping_add(b);
    /// `a - b`, wrapping.
    IntSub: |a, b| a.wrapping_sub(b);
    /// `a * b`, wrapping.
    IntMul: |a, b| a.wrapping_mul(b);
    /// `max(a, b)`.
    IntMaximum: |a, b| a.max(b);
    /// `min(a, b)`.
    IntMinimum: |a, b| a.min(b);
}
