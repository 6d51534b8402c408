//! Padding: the Pad op (constant, reflect, edge and wrap modes; negative
//! pads crop) and the explicit padding conv and pooling nodes use where
//! the core's symmetric padding cannot express theirs.

use sunrise::{DType, Tensor};

use super::{check_made, host_ints, one, Ctx};
use crate::error::Result;

/// How values past an edge are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    /// A constant.
    Constant(f64),
    /// Mirrored, the edge not repeated.
    Reflect,
    /// The edge repeated.
    Edge,
    /// From the other end.
    Wrap,
}

/// `x` padded by `before` and `after` elements along `axis`.
pub(crate) fn pad_axis(
    c: &Ctx<'_>,
    x: &Tensor,
    axis: usize,
    (before, after): (usize, usize),
    mode: Mode,
) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let n = x.shape()[axis];
    let mut out = x.shape().to_vec();
    out[axis] = n.saturating_add(before).saturating_add(after);
    check_made(c, &out)?;
    if let Mode::Constant(v) = mode {
        let slab = |len: usize| -> Result<Tensor> {
            let mut s = x.shape().to_vec();
            s[axis] = len;
            Ok(Tensor::full(&s, v, x.dtype(), c.device)?)
        };
        let (b, a) = (slab(before)?, slab(after)?);
        let parts: Vec<&Tensor> = [&b, x, &a]
            .into_iter()
            .filter(|t| t.shape()[axis] > 0)
            .collect();
        return Ok(Tensor::concat(&parts, axis as isize)?);
    }
    if n == 0 || (mode == Mode::Reflect && n == 1) {
        return Err(c.invalid(format!("{mode:?} padding of a dim of {n}")));
    }
    let len = n as i64;
    let idx: Vec<i64> = (-(before as i64)..len + after as i64)
        .map(|i| match mode {
            Mode::Edge => i.clamp(0, len - 1),
            Mode::Wrap => i.rem_euclid(len),
            _ => {
                // Reflection has period 2 (n - 1).
                let p = 2 * (len - 1);
                let j = i.rem_euclid(p);
                if j < len {
                    j
                } else {
                    p - j
                }
            }
        })
        .collect();
    let index = Tensor::from_slice(&idx, &[idx.len()], c.device)?;
    Ok(x.index_select(axis as isize, &index)?)
}

/// The Pad op.
pub(super) fn run(c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    let x = c.input(0)?;
    let r = x.rank();
    let mode_name = c.attrs.string("mode")?.unwrap_or_else(|| "constant".into());
    let (pads, value, axes) = if c.opset < 11 {
        let pads = c
            .attrs
            .ints("pads")?
            .or(c.attrs.ints("paddings")?)
            .ok_or_else(|| c.invalid("pads are required"))?;
        (pads, f64::from(c.attrs.float_or("value", 0.0)?), None)
    } else {
        let pads = c
            .ints(1)?
            .ok_or_else(|| c.invalid("input 1 (pads) is required"))?;
        let value = match c.opt(2) {
            Some(v) if v.numel() > 0 => match v.dtype() {
                DType::F32 => f64::from(v.to_vec::<f32>()?[0]),
                DType::F64 => v.to_vec::<f64>()?[0],
                _ => host_ints(v, &c.attrs.at)?[0] as f64,
            },
            _ => 0.0,
        };
        (pads, value, c.ints(3)?)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| c.axis(a, r)).collect::<Result<_>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(c.invalid(format!("{} pads for {} axes", pads.len(), axes.len())));
    }
    let mode = match mode_name.as_str() {
        "constant" => Mode::Constant(value),
        "reflect" => Mode::Reflect,
        "edge" => Mode::Edge,
        "wrap" => Mode::Wrap,
        m => return Err(c.attrs.unsupported("mode", format!("{m:?}"))),
    };
    let k = axes.len();
    let mut y = x.clone();
    for (i, &a) in axes.iter().enumerate() {
        let (b, e) = (pads[i], pads[i + k]);
        // Negative pads crop.
        let n = y.shape()[a] as i64;
        let (cb, ce) = ((-b).max(0), (-e).max(0));
        if cb + ce > n {
            return Err(c.invalid(format!("pads {b}, {e} crop more than the dim of {n}")));
        }
        if cb > 0 || ce > 0 {
            y = y.slice(a as isize, cb as usize, (n - ce) as usize, 1)?;
        }
        y = pad_axis(c, &y, a, (b.max(0) as usize, e.max(0) as usize), mode)?;
    }
    one(y.contiguous()?)
}
