//! Shape and data-movement ONNX ops: views where the core has them
//! (Reshape, Transpose, Slice, Squeeze, Unsqueeze, Expand), copies where it
//! must (Concat, Gather, Tile), and the integer arithmetic exporters put
//! around shapes (Shape, Size, ConstantOfShape, Range).

use sunrise::{DType, Tensor};

use super::{check_made, host_ints, one, Ctx};
use crate::error::Result;
use crate::tensor::{dtype_of, from_proto};

/// Runs `op` when it belongs to this family.
pub(super) fn run(op: &str, c: &Ctx<'_>) -> Option<Result<Vec<Tensor>>> {
    Some(match op {
        "Identity" => c.input(0).cloned().and_then(one),
        "Dropout" => dropout(c),
        "Cast" => cast(c),
        "CastLike" => (|| {
            let (x, like) = (c.input(0)?, c.input(1)?);
            Ok(if x.dtype() == like.dtype() {
                x.clone()
            } else {
                x.cast(like.dtype())?
            })
        })()
        .and_then(one),
        "Reshape" => reshape(c).and_then(one),
        "Flatten" => flatten(c).and_then(one),
        "Transpose" => transpose(c).and_then(one),
        "Concat" => concat(c).and_then(one),
        "Split" => split(c),
        "Slice" => slice(c).and_then(one),
        "Squeeze" => squeeze(c).and_then(one),
        "Unsqueeze" => unsqueeze(c).and_then(one),
        "Expand" => expand(c).and_then(one),
        "Gather" => gather(c).and_then(one),
        "GatherElements" => gather_elements(c).and_then(one),
        "Tile" => tile(c).and_then(one),
        "Shape" => shape(c).and_then(one),
        "Size" => (|| Ok(Tensor::scalar(c.input(0)?.numel() as i64, c.device)?))().and_then(one),
        "Constant" => constant(c).and_then(one),
        "ConstantOfShape" => constant_of_shape(c).and_then(one),
        "Range" => range(c).and_then(one),
        _ => return None,
    })
}

fn dropout(c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    let x = c.input(0)?.clone();
    if c.attrs.int_or("training_mode", 0)? != 0
        || c.opt(2).is_some_and(|t| {
            host_ints(t, "")
                .ok()
                .is_some_and(|v| v.first().copied().unwrap_or(0) != 0)
        })
    {
        return Err(c.unsupported("Dropout in training mode (inference only)"));
    }
    let mut out = vec![x.clone()];
    if c.outputs > 1 {
        out.push(Tensor::ones(x.shape(), DType::U8, c.device)?);
    }
    Ok(out)
}

fn cast(c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    let to = c.attrs.req_int("to")?;
    let dt = dtype_of(to as i32, &format!("{}.attribute \"to\"", c.attrs.at))?;
    let x = c.input(0)?;
    one(if x.dtype() == dt {
        x.clone()
    } else {
        x.cast(dt)?
    })
}

/// The dims of a shape input: `0` copies the input's dim (unless
/// `allowzero`), one `-1` is inferred.
fn reshape(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let spec = if c.opset < 5 {
        c.attrs.ints("shape")?.unwrap_or_default()
    } else {
        c.ints(1)?
            .ok_or_else(|| c.invalid("input 1 (shape) is required"))?
    };
    let allow_zero = c.attrs.int_or("allowzero", 0)? != 0;
    let mut dims = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            0 if !allow_zero => dims.push(*x.shape().get(i).ok_or_else(|| {
                c.invalid(format!("shape[{i}] = 0 copies a dim the input lacks"))
            })?),
            d if d >= 0 => dims.push(d as usize),
            d => return Err(c.invalid(format!("shape[{i}] = {d}"))),
        }
    }
    if let Some(i) = infer {
        let known: usize = dims.iter().product();
        if known == 0 || x.numel() % known != 0 {
            return Err(c.invalid(format!("cannot reshape {:?} to {spec:?}", x.shape())));
        }
        dims[i] = x.numel() / known;
    }
    Ok(x.reshape(&dims)?)
}

fn flatten(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let r = x.rank();
    let axis = c.attrs.int_or("axis", 1)?;
    let a = if axis == r as i64 {
        r
    } else {
        c.axis(axis, r)?
    };
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a..].iter().product();
    Ok(x.reshape(&[outer, inner])?)
}

fn transpose(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let perm: Vec<usize> = match c.attrs.ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| c.axis(a, x.rank()))
            .collect::<Result<_>>()?,
        None => (0..x.rank()).rev().collect(),
    };
    Ok(x.permute(&perm)?)
}

fn concat(c: &Ctx<'_>) -> Result<Tensor> {
    let xs: Vec<&Tensor> = c.args.iter().flatten().collect();
    let first = xs
        .first()
        .ok_or_else(|| c.invalid("needs at least one input"))?;
    let axis = c.axis(c.attrs.req_int("axis")?, first.rank())?;
    // Empty inputs add nothing (exporters emit them).
    let kept: Vec<&Tensor> = xs.iter().copied().filter(|t| t.numel() > 0).collect();
    match kept.len() {
        0 => Ok((*first).clone()),
        _ => Ok(Tensor::concat(&kept, axis as isize)?),
    }
}

fn split(c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    let x = c.input(0)?;
    let axis = c.axis(c.attrs.int_or("axis", 0)?, x.rank())?;
    let n = x.shape()[axis];
    let parts = if c.opset < 13 {
        c.attrs.ints("split")?
    } else {
        c.ints(1)?
    };
    let sizes: Vec<usize> = match parts {
        Some(p) if !p.is_empty() => p.iter().map(|&s| s.max(0) as usize).collect(),
        _ => {
            let k = c
                .attrs
                .int("num_outputs")?
                .map_or(c.outputs, |k| k.max(1) as usize);
            let per = n.div_ceil(k.max(1));
            (0..k).map(|i| per.min(n.saturating_sub(i * per))).collect()
        }
    };
    if sizes.iter().sum::<usize>() != n {
        return Err(c.invalid(format!("split sizes {sizes:?} do not add up to {n}")));
    }
    let mut start = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for s in sizes {
        out.push(x.narrow(axis as isize, start, s)?);
        start += s;
    }
    Ok(out)
}

/// ONNX's clamping of a slice bound on a dim of `n`.
fn bound(v: i64, n: i64, step: i64) -> i64 {
    let v = if v < 0 { v + n } else { v };
    if step > 0 {
        v.clamp(0, n)
    } else {
        v.clamp(-1, n - 1)
    }
}

fn slice(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let (starts, ends, axes, steps) = if c.opset < 10 {
        (
            c.attrs.ints("starts")?.unwrap_or_default(),
            c.attrs.ints("ends")?.unwrap_or_default(),
            c.attrs.ints("axes")?,
            None,
        )
    } else {
        (
            c.ints(1)?
                .ok_or_else(|| c.invalid("input 1 (starts) is required"))?,
            c.ints(2)?
                .ok_or_else(|| c.invalid("input 2 (ends) is required"))?,
            c.ints(3)?,
            c.ints(4)?,
        )
    };
    if starts.len() != ends.len() {
        return Err(c.invalid("starts and ends differ in length"));
    }
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(c.invalid("starts, ends, axes and steps differ in length"));
    }
    let mut y = x.clone();
    for i in 0..starts.len() {
        let a = c.axis(axes[i], x.rank())?;
        let n = x.shape()[a] as i64;
        let step = steps[i];
        if step == 0 {
            return Err(c.invalid("a step of 0"));
        }
        let (s, e) = (bound(starts[i], n, step), bound(ends[i], n, step));
        if step < 0 {
            return Err(c.unsupported("negative slice steps"));
        }
        let e = e.max(s);
        y = y.slice(a as isize, s as usize, e as usize, step as usize)?;
    }
    Ok(y)
}

/// Axes from the attribute (before opset 13) or input 1.
fn axes_of(c: &Ctx<'_>) -> Result<Option<Vec<i64>>> {
    if c.opset < 13 {
        c.attrs.ints("axes")
    } else {
        c.ints(1)
    }
}

fn squeeze(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let mut axes: Vec<usize> = match axes_of(c)? {
        Some(a) => a
            .iter()
            .map(|&a| c.axis(a, x.rank()))
            .collect::<Result<_>>()?,
        None => (0..x.rank()).filter(|&a| x.shape()[a] == 1).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let mut y = x.clone();
    for a in axes.into_iter().rev() {
        y = y.squeeze(a as isize)?;
    }
    Ok(y)
}

fn unsqueeze(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let axes = axes_of(c)?.ok_or_else(|| c.invalid("axes are required"))?;
    let out_rank = x.rank() + axes.len();
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| c.axis(a, out_rank))
        .collect::<Result<_>>()?;
    axes.sort_unstable();
    if axes.windows(2).any(|w| w[0] == w[1]) {
        return Err(c.invalid("repeated axes"));
    }
    let mut y = x.clone();
    for a in axes {
        y = y.unsqueeze(a as isize)?;
    }
    Ok(y)
}

fn expand(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let want = c
        .ints(1)?
        .ok_or_else(|| c.invalid("input 1 (shape) is required"))?;
    let want: Vec<usize> = want.iter().map(|&d| d.max(0) as usize).collect();
    let s = super::broadcast_shape(c, x.shape(), &want)?;
    check_made(c, &s)?;
    Ok(x.broadcast_to(&s)?.contiguous()?)
}

fn gather(c: &Ctx<'_>) -> Result<Tensor> {
    let (x, idx) = (c.input(0)?, c.input(1)?);
    let axis = c.axis(c.attrs.int_or("axis", 0)?, x.rank())?;
    let n = x.shape()[axis] as i64;
    let mut flat = host_ints(idx, &c.attrs.at)?;
    for v in &mut flat {
        if *v < -n || *v >= n {
            return Err(c.invalid(format!("index {v} is out of range for a dim of {n}")));
        }
        if *v < 0 {
            *v += n;
        }
    }
    let index = Tensor::from_slice(&flat, &[flat.len()], c.device)?;
    let picked = x.index_select(axis as isize, &index)?;
    let mut shape = x.shape()[..axis].to_vec();
    shape.extend_from_slice(idx.shape());
    shape.extend_from_slice(&x.shape()[axis + 1..]);
    Ok(picked.reshape(&shape)?)
}

/// `y[i..] = x[i.. with index[i..] at axis]`: the flat positions worked
/// out on the host, then one index_select of the flattened input.
fn gather_elements(c: &Ctx<'_>) -> Result<Tensor> {
    let (x, idx) = (c.input(0)?, c.input(1)?);
    let r = x.rank();
    let axis = c.axis(c.attrs.int_or("axis", 0)?, r)?;
    if idx.rank() != r {
        return Err(c.invalid(format!(
            "indices of rank {} for data of rank {r}",
            idx.rank()
        )));
    }
    let (xs, is) = (x.shape(), idx.shape());
    if (0..r).any(|d| d != axis && is[d] > xs[d]) {
        return Err(c.invalid(format!("indices {is:?} do not fit data {xs:?}")));
    }
    let n = xs[axis] as i64;
    let vals = host_ints(idx, &c.attrs.at)?;
    let mut xstride = vec![1usize; r];
    for d in (0..r.saturating_sub(1)).rev() {
        xstride[d] = xstride[d + 1] * xs[d + 1];
    }
    let mut flat = Vec::with_capacity(vals.len());
    let mut pos = vec![0usize; r];
    for &v in &vals {
        if v < -n || v >= n {
            return Err(c.invalid(format!("index {v} is out of range for a dim of {n}")));
        }
        let v = if v < 0 { v + n } else { v } as usize;
        let off: usize = (0..r)
            .map(|d| if d == axis { v } else { pos[d] } * xstride[d])
            .sum();
        flat.push(off as i64);
        for d in (0..r).rev() {
            pos[d] += 1;
            if pos[d] < is[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    let index = Tensor::from_slice(&flat, &[flat.len()], c.device)?;
    let src = x.contiguous()?.reshape(&[x.numel()])?;
    Ok(src.index_select(0, &index)?.reshape(is)?)
}

fn tile(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let reps = c
        .ints(1)?
        .ok_or_else(|| c.invalid("input 1 (repeats) is required"))?;
    if reps.len() != x.rank() || reps.iter().any(|&r| r < 0) {
        return Err(c.invalid(format!("repeats {reps:?} for rank {}", x.rank())));
    }
    let out: Vec<usize> = x
        .shape()
        .iter()
        .zip(&reps)
        .map(|(&d, &r)| d.saturating_mul(r as usize))
        .collect();
    check_made(c, &out)?;
    let mut y = x.clone();
    for (a, &r) in reps.iter().enumerate() {
        if r != 1 {
            let copies: Vec<&Tensor> = std::iter::repeat_n(&y, r as usize).collect();
            y = if copies.is_empty() {
                let mut s = y.shape().to_vec();
                s[a] = 0;
                Tensor::zeros(&s, y.dtype(), c.device)?
            } else {
                Tensor::concat(&copies, a as isize)?
            };
        }
    }
    Ok(y)
}

fn shape(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let r = x.rank() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(c.attrs.int_or("start", 0)?);
    let end = clamp(c.attrs.int_or("end", r)?).max(start);
    let dims: Vec<i64> = x.shape()[start..end].iter().map(|&d| d as i64).collect();
    Ok(Tensor::from_slice(&dims, &[dims.len()], c.device)?)
}

fn constant(c: &Ctx<'_>) -> Result<Tensor> {
    let a = &c.attrs;
    if let Some(t) = a.tensor("value")? {
        return from_proto(t, None, c.device);
    }
    if a.has("value_float") {
        return Ok(Tensor::scalar(a.float_or("value_float", 0.0)?, c.device)?);
    }
    if let Some(v) = a.floats("value_floats")? {
        return Ok(Tensor::from_slice(&v, &[v.len()], c.device)?);
    }
    if let Some(v) = a.int("value_int")? {
        return Ok(Tensor::scalar(v, c.device)?);
    }
    if let Some(v) = a.ints("value_ints")? {
        return Ok(Tensor::from_slice(&v, &[v.len()], c.device)?);
    }
    Err(c.unsupported("a Constant without value, value_float(s) or value_int(s)"))
}

fn constant_of_shape(c: &Ctx<'_>) -> Result<Tensor> {
    let dims = c
        .ints(0)?
        .ok_or_else(|| c.invalid("input 0 (shape) is required"))?;
    if dims.iter().any(|&d| d < 0) {
        return Err(c.invalid(format!("shape {dims:?}")));
    }
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    check_made(c, &shape)?;
    let value = match c.attrs.tensor("value")? {
        Some(t) => from_proto(t, None, c.device)?,
        None => Tensor::scalar(0f32, c.device)?,
    };
    if value.numel() != 1 {
        return Err(c.attrs.unsupported("value", "must hold one element"));
    }
    Ok(value.reshape(&[])?.broadcast_to(&shape)?.contiguous()?)
}

fn range(c: &Ctx<'_>) -> Result<Tensor> {
    let (s, l, d) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let dt = s.dtype();
    let get = |t: &Tensor| -> Result<f64> {
        if t.numel() != 1 {
            return Err(c.invalid(format!(
                "start, limit and delta must be scalars, got {:?}",
                t.shape()
            )));
        }
        Ok(match t.dtype() {
            DType::F32 => t.to_vec::<f32>()?[0] as f64,
            DType::F64 => t.to_vec::<f64>()?[0],
            _ => host_ints(t, &c.attrs.at)?[0] as f64,
        })
    };
    let (start, limit, delta) = (get(s)?, get(l)?, get(d)?);
    if delta == 0.0 {
        return Err(c.invalid("delta 0"));
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if !n.is_finite() || n > super::MAX_MADE_ELEMENTS as f64 {
        return Err(c.invalid(format!("range of {n} elements")));
    }
    let n = n as usize;
    if n == 0 {
        return Ok(Tensor::zeros(&[0], dt, c.device)?);
    }
    // Element i is start + i delta, as ONNX defines it.
    let end = start + delta * (n as f64 - 0.5);
    Ok(Tensor::arange(start, end, delta, dt, c.device)?)
}
