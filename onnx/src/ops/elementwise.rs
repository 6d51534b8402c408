//! Elementwise ONNX ops: unary math and activations, broadcasting binary
//! arithmetic, variadic Sum/Mean/Max/Min, comparisons and logic (bool is a
//! 0/1 u8 mask), Where and Clip.

use sunrise::{DType, Tensor};

use super::{one, widen_u8, wrap_u8, Ctx};
use crate::error::Result;

/// Runs `op` when it belongs to this family.
pub(super) fn run(op: &str, c: &Ctx<'_>) -> Option<Result<Vec<Tensor>>> {
    let r = match op {
        "Relu" | "Sigmoid" | "Tanh" | "Exp" | "Log" | "Sqrt" | "Neg" | "Abs" => unary(op, c),
        "Reciprocal" => c.input(0).and_then(|x| Ok(x.scalar_like(1.0)?.div(x)?)),
        "Softplus" => c
            .input(0)
            .and_then(|x| Ok(x.exp()?.add_scalar(1.0)?.log()?)),
        "Softsign" => c
            .input(0)
            .and_then(|x| Ok(x.div(&x.abs()?.add_scalar(1.0)?)?)),
        "Gelu" => gelu(c),
        "Erf" => c.input(0).and_then(erf),
        "Elu" | "Selu" => elu(op, c),
        "LeakyRelu" => leaky_relu(c),
        "PRelu" => (|| {
            let (x, slope) = (c.input(0)?, c.input(1)?);
            // Opset 6 (and exporters since) give one slope per channel as a
            // 1-D [C] tensor: it applies along axis 1.
            let per_channel = slope.rank() == 1
                && x.rank() >= 2
                && slope.numel() == x.shape()[1]
                && (c.opset < 7 || x.shape()[x.rank() - 1] != slope.numel());
            let slope = if per_channel {
                let mut s = vec![1; x.rank() - 1];
                s[0] = slope.numel();
                slope.reshape(&s)?
            } else {
                slope.clone()
            };
            negative_part(x, &x.mul(&slope)?)
        })(),
        "HardSigmoid" => (|| {
            let x = c.input(0)?;
            let (alpha, beta) = (
                c.attrs.float_or("alpha", 0.2)?,
                c.attrs.float_or("beta", 0.5)?,
            );
            hard_sigmoid(x, alpha.into(), beta.into())
        })(),
        "HardSwish" => c
            .input(0)
            .and_then(|x| Ok(x.mul(&hard_sigmoid(x, 1.0 / 6.0, 0.5)?)?)),
        "Add" | "Sub" | "Mul" | "Div" | "Pow" => binary(op, c),
        "Sum" | "Mean" | "Max" | "Min" => variadic(op, c),
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" => compare(op, c),
        "Not" | "And" | "Or" | "Xor" => logic(op, c),
        "Where" => (|| Ok(Tensor::where_(c.input(0)?, c.input(1)?, c.input(2)?)?))(),
        "Clip" => return Some(clip(c)),
        _ => return None,
    };
    Some(r.and_then(one))
}

fn unary(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    if x.dtype() == DType::I64 || x.dtype() == DType::U8 {
        let zero = x.scalar_like(0.0)?;
        return Ok(match op {
            "Relu" => x.maximum(&zero)?,
            "Neg" if x.dtype() == DType::I64 => zero.sub(x)?,
            "Abs" if x.dtype() == DType::I64 => x.maximum(&zero.sub(x)?)?,
            "Abs" => x.clone(),
            _ => {
                return Err(c.unsupported(format!(
                    "{op} of {} (the core's {op} is float-only)",
                    x.dtype()
                )))
            }
        });
    }
    Ok(match op {
        "Relu" => x.relu()?,
        "Sigmoid" => x.sigmoid()?,
        "Tanh" => x.tanh()?,
        "Exp" => x.exp()?,
        "Log" => x.log()?,
        "Sqrt" => x.sqrt()?,
        "Neg" => x.neg()?,
        _ => x.abs()?,
    })
}

/// `f` on u8 operands, computed in i64 and wrapped back to u8 (the core's
/// arithmetic has no u8 kernels; ONNX's uint8 arithmetic wraps).
fn via_i64(xs: &[&Tensor], f: impl FnOnce(&[Tensor]) -> sunrise::Result<Tensor>) -> Result<Tensor> {
    let wide: Vec<Tensor> = xs.iter().map(|x| widen_u8(x)).collect::<Result<_>>()?;
    wrap_u8(&f(&wide)?)
}

/// `erf x` from core ops (Abramowitz and Stegun 7.1.26, absolute error
/// below 1.5e-7): `1 - t (a1 + t (a2 + ...)) e^{-x^2}` with
/// `t = 1 / (1 + p |x|)`, odd in `x`.
fn erf(x: &Tensor) -> Result<Tensor> {
    if x.dtype() != DType::F32 && x.dtype() != DType::F64 {
        return Err(crate::Error::unsupported(
            "Erf",
            format!("Erf of {}", x.dtype()),
        ));
    }
    const P: f64 = 0.327_591_1;
    const A: [f64; 5] = [
        0.254_829_592,
        -0.284_496_736,
        1.421_413_741,
        -1.453_152_027,
        1.061_405_429,
    ];
    let ax = x.abs()?;
    let t = x
        .scalar_like(1.0)?
        .div(&ax.mul_scalar(P)?.add_scalar(1.0)?)?;
    let mut poly = t.mul_scalar(A[4])?;
    for &a in A[..4].iter().rev() {
        poly = poly.add_scalar(a)?.mul(&t)?;
    }
    let y = x
        .scalar_like(1.0)?
        .sub(&poly.mul(&ax.mul(&ax)?.neg()?.exp()?)?)?;
    Ok(Tensor::where_(&x.lt(&x.scalar_like(0.0)?)?, &y.neg()?, &y)?)
}

fn gelu(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    match c.attrs.string("approximate")?.as_deref() {
        None | Some("none") => Ok(x.gelu()?),
        Some("tanh") => Ok(x.gelu_tanh()?),
        Some(a) => Err(c.attrs.unsupported("approximate", format!("{a:?}"))),
    }
}

/// `x` where it is not negative, else `neg` (broadcast).
fn negative_part(x: &Tensor, neg: &Tensor) -> Result<Tensor> {
    Ok(Tensor::where_(&x.lt(&x.scalar_like(0.0)?)?, neg, x)?)
}

fn leaky_relu(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let alpha = c.attrs.float_or("alpha", 0.01)?;
    negative_part(x, &x.mul_scalar(alpha.into())?)
}

fn elu(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let (alpha, gamma) = if op == "Selu" {
        (
            c.attrs.float_or("alpha", 1.673_263_2)?,
            c.attrs.float_or("gamma", 1.050_701)?,
        )
    } else {
        (c.attrs.float_or("alpha", 1.0)?, 1.0)
    };
    let neg = x.exp()?.add_scalar(-1.0)?.mul_scalar(alpha.into())?;
    let pos = x.gt(&x.scalar_like(0.0)?)?;
    let y = Tensor::where_(&pos, x, &neg)?;
    Ok(if op == "Selu" {
        y.mul_scalar(gamma.into())?
    } else {
        y
    })
}

fn hard_sigmoid(x: &Tensor, alpha: f64, beta: f64) -> Result<Tensor> {
    let v = x.mul_scalar(alpha)?.add_scalar(beta)?;
    Ok(v.minimum(&x.scalar_like(1.0)?)?
        .maximum(&x.scalar_like(0.0)?)?)
}

/// Before opset 7, `broadcast = 1` aligns `b` with `a` at `axis` (default:
/// the trailing dims) instead of NumPy's right alignment.
fn legacy_broadcast(c: &Ctx<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if c.opset >= 7 || c.attrs.int_or("broadcast", 0)? == 0 {
        if c.opset < 7 && a.shape() != b.shape() {
            return Err(c.invalid(format!(
                "shapes {:?} and {:?} without broadcast = 1 (opset {})",
                a.shape(),
                b.shape(),
                c.opset
            )));
        }
        return Ok(b.clone());
    }
    let Some(axis) = c.attrs.int("axis")? else {
        return Ok(b.clone());
    };
    let axis = c.axis(axis, a.rank())?;
    let mut shape = b.shape().to_vec();
    shape.extend(std::iter::repeat_n(
        1,
        a.rank().saturating_sub(axis + b.rank()),
    ));
    Ok(b.reshape(&shape)?)
}

fn binary(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let a = c.input(0)?;
    let b = &legacy_broadcast(c, a, c.input(1)?)?;
    if op == "Pow" {
        let b = if b.dtype() == a.dtype() {
            b.clone()
        } else {
            b.cast(a.dtype())?
        };
        if a.dtype() == DType::I64 {
            // The core's pow is float-only: integer powers are exact in f64
            // up to 2^53.
            let y = a.cast(DType::F64)?.pow(&b.cast(DType::F64)?)?;
            return Ok(y.cast(DType::I64)?);
        }
        return Ok(a.pow(&b)?);
    }
    if a.dtype() != b.dtype() {
        return Err(c.invalid(format!("inputs of dtypes {} and {}", a.dtype(), b.dtype())));
    }
    if op == "Div" && a.dtype() != DType::F32 && a.dtype() != DType::F64 {
        return int_div(c, a, b);
    }
    let f = |a: &Tensor, b: &Tensor| match op {
        "Add" => a.add(b),
        "Sub" => a.sub(b),
        "Mul" => a.mul(b),
        _ => a.div(b),
    };
    if a.dtype() == DType::U8 {
        return via_i64(&[a, b], |w| f(&w[0], &w[1]));
    }
    Ok(f(a, b)?)
}

/// Integer division truncating toward zero (ONNX's rule), on the host:
/// the core's div is float-only, and integer divisions in models are the
/// small shape arithmetic exporters emit. Division by zero is an error.
fn int_div(c: &Ctx<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = super::broadcast_shape(c, a.shape(), b.shape())?;
    let wide = |t: &Tensor| -> Result<Vec<i64>> {
        let t = t.broadcast_to(&shape)?.contiguous()?;
        super::host_ints(&t, &c.attrs.at)
    };
    let (x, y) = (wide(a)?, wide(b)?);
    let q: Vec<i64> = x
        .iter()
        .zip(&y)
        .map(|(&p, &q)| {
            p.checked_div(q)
                .ok_or_else(|| c.invalid(format!("integer division {p} / {q}")))
        })
        .collect::<Result<_>>()?;
    let t = Tensor::from_slice(&q, &shape, c.device)?;
    if a.dtype() == DType::U8 {
        return wrap_u8(&t);
    }
    Ok(t)
}

fn variadic(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let xs: Vec<&Tensor> = c.args.iter().flatten().collect();
    let Some((first, rest)) = xs.split_first() else {
        return Err(c.invalid("needs at least one input"));
    };
    let fold = |xs: &[Tensor]| -> sunrise::Result<Tensor> {
        let mut acc = xs[0].clone();
        for x in &xs[1..] {
            acc = match op {
                "Max" => acc.maximum(x)?,
                "Min" => acc.minimum(x)?,
                _ => acc.add(x)?,
            };
        }
        Ok(acc)
    };
    let mut acc = if first.dtype() == DType::U8 {
        via_i64(&xs, fold)?
    } else {
        let owned: Vec<Tensor> = std::iter::once((*first).clone())
            .chain(rest.iter().map(|t| (*t).clone()))
            .collect();
        fold(&owned)?
    };
    if op == "Mean" && xs.len() > 1 {
        acc = acc.mul_scalar(1.0 / xs.len() as f64)?;
    }
    if xs.len() == 1 {
        // One input: a copy, so the output is a value of its own.
        acc = acc.add(&acc.scalar_like(0.0)?)?;
    }
    Ok(acc)
}

fn compare(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    Ok(match op {
        "Equal" => a.eq(b)?,
        "Less" => a.lt(b)?,
        "Greater" => a.gt(b)?,
        "LessOrEqual" => a.le(b)?,
        _ => a.ge(b)?,
    })
}

fn logic(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let a = c.input(0)?;
    let zero = a.scalar_like(0.0)?;
    if op == "Not" {
        return Ok(a.eq(&zero)?);
    }
    let (a, b) = (a.ne(&zero)?, c.input(1)?.ne(&zero)?);
    Ok(match op {
        "Xor" => a.ne(&b)?,
        // On 0/1 masks: and = min, or = max (computed in i64, where the
        // core has both).
        "And" => a
            .cast(DType::I64)?
            .minimum(&b.cast(DType::I64)?)?
            .cast(DType::U8)?,
        _ => a
            .cast(DType::I64)?
            .maximum(&b.cast(DType::I64)?)?
            .cast(DType::U8)?,
    })
}

fn clip(c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    let x = c.input(0)?;
    let (lo, hi) = if c.opset < 11 {
        let lo = c.attrs.float_or("min", f32::MIN)?;
        let hi = c.attrs.float_or("max", f32::MAX)?;
        (
            Some(x.scalar_like(lo.into())?),
            Some(x.scalar_like(hi.into())?),
        )
    } else {
        (c.opt(1).cloned(), c.opt(2).cloned())
    };
    let mut y = x.add(&x.scalar_like(0.0)?)?;
    if let Some(lo) = lo {
        y = y.maximum(&lo)?;
    }
    if let Some(hi) = hi {
        y = y.minimum(&hi)?;
    }
    one(y)
}
