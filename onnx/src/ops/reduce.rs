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
