//! Resize (and the older Upsample): nearest, linear and cubic modes, each
//! separable, so one axis at a time is a gather of source rows
//! (`index_select`) and, for linear and cubic, a weighted sum of the taps,
//! all on the input's device. The source coordinate of each output
//! position follows `coordinate_transformation_mode`; `tf_crop_and_resize`,
//! antialiasing and aspect-ratio policies other than `stretch` are not
//! supported.

use sunrise::{DType, Tensor};

use super::{check_made, host_ints, one, Ctx};
use crate::error::Result;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

/// Float values of an optional input.
fn floats(c: &Ctx<'_>, i: usize) -> Result<Option<Vec<f64>>> {
    let Some(t) = c.opt(i) else { return Ok(None) };
    if t.numel() == 0 {
        return Ok(None);
    }
    Ok(Some(match t.dtype() {
        DType::F32 => t.to_vec::<f32>()?.into_iter().map(f64::from).collect(),
        DType::F64 => t.to_vec::<f64>()?,
        _ => host_ints(t, &c.attrs.at)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
    }))
}

/// Runs Resize or Upsample.
pub(super) fn run(op: &str, c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    let x = c.input(0)?;
    let r = x.rank();
    let mode = match c.attrs.string("mode")?.as_deref().unwrap_or("nearest") {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" | "trilinear" => Mode::Linear,
        "cubic" | "bicubic" => Mode::Cubic,
        m => return Err(c.attrs.unsupported("mode", format!("{m:?}"))),
    };
    let old = op == "Upsample" || c.opset < 11;
    let coord = c
        .attrs
        .string("coordinate_transformation_mode")?
        .unwrap_or_else(|| if old { "asymmetric" } else { "half_pixel" }.to_string());
    if coord == "tf_crop_and_resize" {
        return Err(c
            .attrs
            .unsupported("coordinate_transformation_mode", "tf_crop_and_resize"));
    }
    if c.attrs.int_or("antialias", 0)? != 0 {
        return Err(c.attrs.unsupported("antialias", "1"));
    }
    let policy = c
        .attrs
        .string("keep_aspect_ratio_policy")?
        .unwrap_or_else(|| "stretch".into());
    if policy != "stretch" {
        return Err(c
            .attrs
            .unsupported("keep_aspect_ratio_policy", format!("{policy:?}")));
    }
    let axes: Vec<usize> = match c.attrs.ints("axes")? {
        Some(a) => a.iter().map(|&a| c.axis(a, r)).collect::<Result<_>>()?,
        None => (0..r).collect(),
    };
    let (scales, sizes) = if op == "Upsample" {
        let s = if c.opset < 9 {
            c.attrs
                .floats("scales")?
                .map(|v| v.into_iter().map(f64::from).collect())
        } else {
            floats(c, 1)?
        };
        (s, None)
    } else if c.opset < 11 {
        (floats(c, 1)?, None)
    } else {
        (floats(c, 2)?, c.ints(3)?)
    };
    // Per axis: output extent and the scale the coordinates use.
    let mut plan: Vec<(usize, usize, f64)> = Vec::new();
    match (scales, sizes) {
        (_, Some(sz)) if !sz.is_empty() => {
            if sz.len() != axes.len() {
                return Err(c.invalid(format!("{} sizes for {} axes", sz.len(), axes.len())));
            }
            for (&a, &m) in axes.iter().zip(&sz) {
                let m = usize::try_from(m).map_err(|_| c.invalid(format!("size {m}")))?;
                let n = x.shape()[a];
                plan.push((a, m, m as f64 / n.max(1) as f64));
            }
        }
        (Some(sc), _) => {
            if sc.len() != axes.len() {
                return Err(c.invalid(format!("{} scales for {} axes", sc.len(), axes.len())));
            }
            for (&a, &s) in axes.iter().zip(&sc) {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(c.invalid(format!("scale {s}")));
                }
                let n = x.shape()[a];
                plan.push((a, (n as f64 * s).floor() as usize, s));
            }
        }
        _ => return Err(c.invalid("neither scales nor sizes given")),
    }
    let mut out = x.shape().to_vec();
    for &(a, m, _) in &plan {
        out[a] = m;
    }
    check_made(c, &out)?;
    // Upsample picks the source pixel below (floor of x / scale).
    let default_nearest = if op == "Upsample" {
        "floor"
    } else {
        "round_prefer_floor"
    };
    let nearest = c
        .attrs
        .string("nearest_mode")?
        .unwrap_or_else(|| default_nearest.into());
    let cubic_a = f64::from(c.attrs.float_or("cubic_coeff_a", -0.75)?);
    let exclude = c.attrs.int_or("exclude_outside", 0)? != 0;
    let work = if matches!(x.dtype(), DType::F32 | DType::F64) {
        x.dtype()
    } else {
        DType::F64
    };
    if mode != Mode::Nearest && work != x.dtype() {
        return Err(c.unsupported(format!("{op} {:?} of {}", "linear or cubic", x.dtype())));
    }
    let mut y = x.clone();
    for (a, m, s) in plan {
        let n = x.shape()[a];
        if m == n && s == 1.0 {
            continue;
        }
        if n == 0 || m == 0 {
            let mut shape = y.shape().to_vec();
            shape[a] = m;
            y = Tensor::zeros(&shape, y.dtype(), c.device)?;
            continue;
        }
        let src: Vec<f64> = (0..m).map(|i| source(&coord, i as f64, s, n, m)).collect();
        y = match mode {
            Mode::Nearest => {
                let idx: Vec<i64> = src
                    .iter()
                    .map(|&v| pick(&nearest, v).clamp(0, n as i64 - 1))
                    .collect();
                gather(c, &y, a, &idx)?
            }
            Mode::Linear | Mode::Cubic => {
                let taps = if mode == Mode::Linear {
                    linear_taps(&src, n)
                } else {
                    cubic_taps(&src, n, cubic_a, exclude)
                };
                let mut acc: Option<Tensor> = None;
                for (idx, w) in taps {
                    let g = gather(c, &y, a, &idx)?;
                    let mut ws = vec![1; y.rank()];
                    ws[a] = m;
                    let w = Tensor::from_slice(&w, &ws, c.device)?.cast(work)?;
                    let term = g.mul(&w)?;
                    acc = Some(match acc {
                        Some(t) => t.add(&term)?,
                        None => term,
                    });
                }
                acc.expect("at least two taps")
            }
        };
    }
    one(y.contiguous()?)
}

fn gather(c: &Ctx<'_>, x: &Tensor, axis: usize, idx: &[i64]) -> Result<Tensor> {
    let index = Tensor::from_slice(idx, &[idx.len()], c.device)?;
    Ok(x.index_select(axis as isize, &index)?)
}

/// The source coordinate of output position `x` along an axis of `n`
/// resized to `m` with scale `s`. As in ONNX's reference, the resized
/// length in align_corners and pytorch_half_pixel is `n s` unrounded.
fn source(mode: &str, x: f64, s: f64, n: usize, m: usize) -> f64 {
    let n = n as f64;
    let len = n * s;
    if mode == "half_pixel_symmetric" {
        let adjustment = m as f64 / len;
        let center = n / 2.0;
        return center * (1.0 - adjustment) + (x + 0.5) / s - 0.5;
    }
    let m = len;
    match mode {
        "pytorch_half_pixel" if m > 1.0 => (x + 0.5) / s - 0.5,
        "pytorch_half_pixel" => 0.0,
        "align_corners" if m > 1.0 => x * (n - 1.0) / (m - 1.0),
        "align_corners" => 0.0,
        "asymmetric" => x / s,
        _ => (x + 0.5) / s - 0.5,
    }
}

/// The nearest source index of coordinate `v`.
fn pick(mode: &str, v: f64) -> i64 {
    let half = (v - v.floor() - 0.5).abs() < 1e-9;
    (match mode {
        "floor" => v.floor(),
        "ceil" => v.ceil(),
        "round_prefer_ceil" if half => v.ceil(),
        "round_prefer_ceil" => v.round(),
        _ if half => v.floor(),
        _ => v.round(),
    }) as i64
}

/// Two taps per output position: `floor(v)` and the next, edge-clamped.
fn linear_taps(src: &[f64], n: usize) -> Vec<(Vec<i64>, Vec<f64>)> {
    let last = n as f64 - 1.0;
    let mut t = vec![(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for &v in src {
        let v = v.clamp(0.0, last);
        let f = v.floor();
        let r = v - f;
        let i0 = f as i64;
        t[0].0.push(i0);
        t[0].1.push(1.0 - r);
        t[1].0.push((i0 + 1).min(n as i64 - 1));
        t[1].1.push(r);
    }
    t
}

/// Four taps per output position (Keys' cubic with coefficient `a`), at
/// `floor(v) - 1 .. floor(v) + 2`, edge-clamped, or with taps outside the
/// input dropped and the rest renormalised when `exclude`.
fn cubic_taps(src: &[f64], n: usize, a: f64, exclude: bool) -> Vec<(Vec<i64>, Vec<f64>)> {
    let mut t = vec![(Vec::new(), Vec::new()); 4];
    for &v in src {
        let f = v.floor();
        let r = v - f;
        let w = |d: f64| {
            let d = d.abs();
            if d <= 1.0 {
                ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
            } else if d < 2.0 {
                ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
            } else {
                0.0
            }
        };
        let mut ws = [w(r + 1.0), w(r), w(1.0 - r), w(2.0 - r)];
        let idx: Vec<i64> = (0..4).map(|k| f as i64 - 1 + k as i64).collect();
        if exclude {
            for k in 0..4 {
                if idx[k] < 0 || idx[k] >= n as i64 {
                    ws[k] = 0.0;
                }
            }
            let sum: f64 = ws.iter().sum();
            if sum != 0.0 {
                ws.iter_mut().for_each(|w| *w /= sum);
            }
        }
        for k in 0..4 {
            t[k].0.push(idx[k].clamp(0, n as i64 - 1));
            t[k].1.push(ws[k]);
        }
    }
    t
}
