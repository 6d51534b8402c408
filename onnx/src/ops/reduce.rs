//! Reductions: ReduceSum/Mean/Max/Min (axes as attribute or, from opset
//! 13 for ReduceSum and 18 for the others, as input) and ArgMax/ArgMin.

use sunrise::{DType, Tensor};

use super::{one, widen_u8, wrap_u8, Ctx};
use crate::error::Result;

/// Runs `op` when it belongs to this family.
pub(super) fn run(op: &str, c: &Ctx<'_>) -> Option<Result<Vec<Tensor>>> {
    Some(match op {
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" => reduce(op, c).and_then(one),
        "ArgMax" | "ArgMin" => arg(op, c).and_then(one),
        "CumSum" => cumsum(c).and_then(one),
        "TopK" => topk(c),
        _ => return None,
    })
}

fn reduce(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let keep = c.attrs.int_or("keepdims", 1)? != 0;
    let as_input = (op == "ReduceSum" && c.opset >= 13) || c.opset >= 18;
    let axes = if as_input {
        c.ints(1)?
    } else {
        c.attrs.ints("axes")?
    };
    let axes: Vec<isize> = match axes {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&a| c.axis(a, x.rank()).map(|a| a as isize))
            .collect::<Result<_>>()?,
        _ if c.attrs.int_or("noop_with_empty_axes", 0)? != 0 => return Ok(x.clone()),
        _ => (0..x.rank() as isize).collect(),
    };
    if axes.is_empty() {
        return Ok(x.clone());
    }
    if x.numel() == 0 {
        return empty(op, x, &axes, keep, c);
    }
    if x.dtype() == DType::U8 && matches!(op, "ReduceMax" | "ReduceMin") {
        let w = widen_u8(x)?;
        let y = if op == "ReduceMax" {
            w.max(&axes, keep)?
        } else {
            w.min(&axes, keep)?
        };
        return wrap_u8(&y);
    }
    Ok(match op {
        "ReduceSum" => x.sum(&axes, keep)?,
        "ReduceMean" => x.mean(&axes, keep)?,
        "ReduceMax" => x.max(&axes, keep)?,
        _ => x.min(&axes, keep)?,
    })
}

/// A reduction over an empty axis: ONNX's identity values (0 for a sum,
/// -inf / +inf or the integer extremes for max / min, NaN for a mean).
fn empty(op: &str, x: &Tensor, axes: &[isize], keep: bool, c: &Ctx<'_>) -> Result<Tensor> {
    let mut shape = Vec::new();
    for (i, &d) in x.shape().iter().enumerate() {
        if axes.contains(&(i as isize)) {
            if keep {
                shape.push(1);
            }
        } else {
            shape.push(d);
        }
    }
    let float = matches!(x.dtype(), DType::F32 | DType::F64);
    let value = match op {
        "ReduceSum" => 0.0,
        "ReduceMean" => f64::NAN,
        "ReduceMax" if float => f64::NEG_INFINITY,
        "ReduceMin" if float => f64::INFINITY,
        "ReduceMax" if x.dtype() == DType::U8 => 0.0,
        "ReduceMin" if x.dtype() == DType::U8 => 255.0,
        "ReduceMax" => i64::MIN as f64,
        _ => i64::MAX as f64,
    };
    if !float && op == "ReduceMean" {
        return Err(c.unsupported("ReduceMean of an empty integer set"));
    }
    Ok(Tensor::full(&shape, value, x.dtype(), c.device)?)
}

fn arg(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let a = c.axis(c.attrs.int_or("axis", 0)?, x.rank())? as isize;
    let keep = c.attrs.int_or("keepdims", 1)? != 0;
    if c.attrs.int_or("select_last_index", 0)? != 0 {
        // The last extremum is the first of the reversed axis.
        let n = x.shape()[a as usize];
        let rev: Vec<i64> = (0..n as i64).rev().collect();
        let index = Tensor::from_slice(&rev, &[n], c.device)?;
        let flipped = x.index_select(a, &index)?;
        let first = if op == "ArgMax" {
            flipped.argmax(a, keep)?
        } else {
            flipped.neg()?.argmax(a, keep)?
        };
        return Ok(first.scalar_like((n as f64) - 1.0)?.sub(&first)?);
    }
    if op == "ArgMax" {
        return Ok(x.argmax(a, keep)?);
    }
    // argmin(x) = argmax(-x), for the dtypes neg serves.
    if x.dtype() == DType::U8 {
        return Err(c.unsupported("ArgMin of u8"));
    }
    Ok(x.neg()?.argmax(a, keep)?)
}

/// Longest axis CumSum runs on (its `[n, n]` triangular matrix).
const CUMSUM_MAX: usize = 4096;

/// Running sums along an axis as a product with a triangular matrix of
/// ones (on the input's device; integers through f64, exact to 2^53).
fn cumsum(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let axis = super::host_ints(c.input(1)?, &c.attrs.at)?;
    let [axis] = axis[..] else {
        return Err(c.invalid("axis must hold one value"));
    };
    let a = c.axis(axis, x.rank())?;
    let n = x.shape()[a];
    if n > CUMSUM_MAX {
        return Err(c.unsupported(format!("CumSum over an axis of {n} (at most {CUMSUM_MAX})")));
    }
    let (exclusive, reverse) = (
        c.attrs.int_or("exclusive", 0)? != 0,
        c.attrs.int_or("reverse", 0)? != 0,
    );
    let work = match x.dtype() {
        DType::F32 | DType::F64 => x.dtype(),
        DType::I64 => DType::F64,
        d => return Err(c.unsupported(format!("CumSum of {d}"))),
    };
    // m[i][j] = 1 where input i adds into output j.
    let mut m = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            let adds = match (reverse, exclusive) {
                (false, false) => i <= j,
                (false, true) => i < j,
                (true, false) => i >= j,
                (true, true) => i > j,
            };
            if adds {
                m[i * n + j] = 1.0;
            }
        }
    }
    let m = Tensor::from_slice(&m, &[n, n], c.device)?.cast(work)?;
    let last = x.rank() - 1;
    let xt = x.cast(work)?.transpose(a as isize, last as isize)?;
    let y = xt
        .matmul(&m)?
        .transpose(a as isize, last as isize)?
        .contiguous()?;
    Ok(if work == x.dtype() {
        y
    } else {
        y.cast(x.dtype())?
    })
}

/// The `k` largest (or smallest) values along an axis and their indices,
/// ties to the lower index; computed on the host and returned on the
/// input's device.
fn topk(c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    let x = c.input(0)?;
    let k = if c.opset < 10 {
        c.attrs.req_int("k")?
    } else {
        let k = super::host_ints(c.input(1)?, &c.attrs.at)?;
        *k.first().ok_or_else(|| c.invalid("K is empty"))?
    };
    let a = c.axis(c.attrs.int_or("axis", -1)?, x.rank())?;
    let largest = c.attrs.int_or("largest", 1)? != 0;
    let n = x.shape()[a];
    let k = usize::try_from(k)
        .ok()
        .filter(|&k| k <= n)
        .ok_or_else(|| c.invalid(format!("k {k} for an axis of {n}")))?;
    let vals: Vec<f64> = match x.dtype() {
        DType::F32 => x.to_vec::<f32>()?.into_iter().map(f64::from).collect(),
        DType::F64 => x.to_vec::<f64>()?,
        DType::I64 => x.to_vec::<i64>()?.into_iter().map(|v| v as f64).collect(),
        DType::U8 => x.to_vec::<u8>()?.into_iter().map(f64::from).collect(),
    };
    let inner: usize = x.shape()[a + 1..].iter().product();
    let outer: usize = x.shape()[..a].iter().product();
    let mut out_v = Vec::with_capacity(outer * k * inner);
    let mut out_i = Vec::with_capacity(outer * k * inner);
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let mut picked = vec![(0f64, 0i64); outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| vals[(o * n + j) * inner + i];
            order.clear();
            order.extend(0..n);
            order.sort_by(|&p, &q| {
                let (u, v) = (at(p), at(q));
                let ord = if largest {
                    v.total_cmp(&u)
                } else {
                    u.total_cmp(&v)
                };
                ord.then(p.cmp(&q))
            });
            for (r, &j) in order[..k].iter().enumerate() {
                picked[(o * k + r) * inner + i] = (at(j), j as i64);
            }
        }
    }
    for &(v, i) in &picked {
        out_v.push(v);
        out_i.push(i);
    }
    let mut shape = x.shape().to_vec();
    shape[a] = k;
    let values = Tensor::from_slice(&out_v, &shape, c.device)?.cast(x.dtype())?;
    let values = if x.dtype() == DType::U8 {
        let v: Vec<u8> = out_v.iter().map(|&f| f as u8).collect();
        Tensor::from_slice(&v, &shape, c.device)?
    } else {
        values
    };
    Ok(vec![values, Tensor::from_slice(&out_i, &shape, c.device)?])
}
