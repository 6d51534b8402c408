//! Network ONNX ops: Conv (1-D and 2-D), Gemm, MatMul, BatchNormalization
//! (inference), pooling, Softmax/LogSoftmax and LayerNormalization.

use sunrise::{Conv2dOptions, DType, Pool2dOptions, Tensor};

use super::{one, widen_u8, wrap_u8, Ctx};
use crate::error::Result;

/// Runs `op` when it belongs to this family.
pub(super) fn run(op: &str, c: &Ctx<'_>) -> Option<Result<Vec<Tensor>>> {
    Some(match op {
        "Conv" => conv(c).and_then(one),
        "ConvTranspose" => conv_transpose(c).and_then(one),
        "Gemm" => gemm(c).and_then(one),
        "MatMul" => (|| Ok(c.input(0)?.matmul(c.input(1)?)?))().and_then(one),
        "BatchNormalization" => batch_norm(c).and_then(one),
        "MaxPool" | "AveragePool" => pool(op, c).and_then(one),
        "GlobalAveragePool" | "GlobalMaxPool" => global_pool(op, c).and_then(one),
        "Softmax" | "LogSoftmax" => softmax(op, c).and_then(one),
        "LayerNormalization" => layer_norm(c),
        "LRN" => lrn(c).and_then(one),
        "InstanceNormalization" => instance_norm(c).and_then(one),
        _ => return None,
    })
}

/// Spatial geometry of a conv or pool node over `spatial` dims of extent
/// `input`: kernel, strides, dilations and symmetric pads (auto_pad
/// resolved).
struct Window {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<usize>,
}

fn window(c: &Ctx<'_>, input: &[usize], kernel: Option<Vec<usize>>) -> Result<Window> {
    let k = input.len();
    let kernel = match kernel {
        Some(kk) => kk,
        None => {
            usize_list(c, "kernel_shape")?.ok_or_else(|| c.invalid("kernel_shape is required"))?
        }
    };
    let strides = usize_list(c, "strides")?.unwrap_or_else(|| vec![1; k]);
    let dilations = usize_list(c, "dilations")?.unwrap_or_else(|| vec![1; k]);
    if kernel.len() != k || strides.len() != k || dilations.len() != k {
        return Err(c.invalid(format!(
            "kernel, strides and dilations must have {k} entries"
        )));
    }
    if strides.contains(&0) || dilations.contains(&0) || kernel.contains(&0) || input.contains(&0) {
        return Err(c.invalid(format!(
            "kernel {kernel:?}, strides {strides:?}, dilations {dilations:?} and input {input:?} must be positive"
        )));
    }
    let auto = c
        .attrs
        .string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    let raw: Vec<usize> = match auto.as_str() {
        "NOTSET" => usize_list(c, "pads")?.unwrap_or_else(|| vec![0; 2 * k]),
        "VALID" => vec![0; 2 * k],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = vec![0; 2 * k];
            for i in 0..k {
                let out = input[i].div_ceil(strides[i]);
                let span = dilations[i] * (kernel[i] - 1) + 1;
                let total = ((out - 1) * strides[i] + span).saturating_sub(input[i]);
                (p[i], p[i + k]) = split_same(total, auto == "SAME_UPPER");
            }
            p
        }
        other => return Err(c.attrs.unsupported("auto_pad", format!("{other:?}"))),
    };
    if raw.len() != 2 * k {
        return Err(c.invalid(format!("pads must have {} entries", 2 * k)));
    }
    Ok(Window {
        kernel,
        strides,
        dilations,
        pads: raw,
    })
}

impl Window {
    /// The pads as one per spatial dim when each dim's begin and end agree
    /// and (for pooling, `limit_half`) stay within half the window, as the
    /// core's padding requires.
    fn symmetric(&self, limit_half: bool) -> Option<Vec<usize>> {
        let k = self.kernel.len();
        let ok = (0..k).all(|i| {
            self.pads[i] == self.pads[i + k] && (!limit_half || 2 * self.pads[i] <= self.kernel[i])
        });
        ok.then(|| self.pads[..k].to_vec())
    }

    /// `x` padded explicitly with `value` (spatial dims start at axis 2).
    fn pad(&self, c: &Ctx<'_>, x: &Tensor, value: f64) -> Result<Tensor> {
        let k = self.kernel.len();
        let mut y = x.clone();
        for i in 0..k {
            let pads = (self.pads[i], self.pads[i + k]);
            y = super::pad::pad_axis(c, &y, 2 + i, pads, super::pad::Mode::Constant(value))?;
        }
        Ok(y)
    }
}

/// `total` padding as (begin, end): the odd one at the end when `upper`
/// (SAME_UPPER), else at the beginning (SAME_LOWER).
fn split_same(total: usize, upper: bool) -> (usize, usize) {
    let (small, big) = (total / 2, total - total / 2);
    if upper {
        (small, big)
    } else {
        (big, small)
    }
}

fn usize_list(c: &Ctx<'_>, name: &str) -> Result<Option<Vec<usize>>> {
    c.attrs
        .ints(name)?
        .map(|v| {
            v.iter()
                .map(|&x| usize::try_from(x).map_err(|_| c.invalid(format!("{name} {v:?}"))))
                .collect()
        })
        .transpose()
}

/// `x` with a unit H inserted when it is 1-D spatial (`[N, C, W]`), so the
/// 2-D kernels serve; `None` when it is neither 1-D nor 2-D.
fn as_2d(x: &Tensor) -> Option<(Tensor, bool)> {
    match x.rank() {
        3 => x.unsqueeze(2).ok().map(|t| (t, true)),
        4 => Some((x.clone(), false)),
        _ => None,
    }
}

/// Pads a 1-D window's lists to 2-D (unit H first).
fn pair(v: &[usize], one_d: bool, fill: usize) -> [usize; 2] {
    if one_d {
        [fill, v[0]]
    } else {
        [v[0], v[1]]
    }
}

fn conv(c: &Ctx<'_>) -> Result<Tensor> {
    let (x, w) = (c.input(0)?, c.input(1)?);
    if x.rank() != 3 && x.rank() != 4 {
        return Err(c.unsupported(format!(
            "Conv on rank {} input (1-D and 2-D only)",
            x.rank()
        )));
    }
    let one_d = x.rank() == 3;
    let kernel = w.shape().get(2..).map(<[usize]>::to_vec);
    let win = window(c, &x.shape()[2..], kernel)?;
    // Padding the core cannot express (different at the two ends) is
    // done explicitly with zeros.
    let (x, pads) = match win.symmetric(false) {
        Some(p) => (x.clone(), p),
        None => (win.pad(c, x, 0.0)?, vec![0; win.kernel.len()]),
    };
    let Some((x4, _)) = as_2d(&x) else {
        return Err(c.invalid("Conv input"));
    };
    let w4 = if one_d { w.unsqueeze(2)? } else { w.clone() };
    let groups = c.attrs.int_or("group", 1)?;
    let opts = Conv2dOptions {
        stride: pair(&win.strides, one_d, 1),
        padding: pair(&pads, one_d, 0),
        dilation: pair(&win.dilations, one_d, 1),
        groups: usize::try_from(groups).map_err(|_| c.invalid(format!("group {groups}")))?,
    };
    let y = x4.conv2d(&w4, c.opt(2), &opts)?;
    Ok(if one_d { y.squeeze(2)? } else { y })
}

/// The transposed convolution as the data gradient of the convolution it
/// transposes: `w` (`[C_in, C_out / group, k...]`) is that convolution's
/// filter, the input its output gradient. Output padding and asymmetric
/// pads are the full result cropped.
fn conv_transpose(c: &Ctx<'_>) -> Result<Tensor> {
    let (x, w) = (c.input(0)?, c.input(1)?);
    if x.rank() != 3 && x.rank() != 4 {
        return Err(c.unsupported(format!(
            "ConvTranspose on rank {} input (1-D and 2-D only)",
            x.rank()
        )));
    }
    let one_d = x.rank() == 3;
    let k = x.rank() - 2;
    let group = usize::try_from(c.attrs.int_or("group", 1)?).map_err(|_| c.invalid("group"))?;
    if group == 0 || w.rank() != x.rank() || w.shape()[0] != x.shape()[1] {
        return Err(c.invalid(format!("input {:?} and filter {:?}", x.shape(), w.shape())));
    }
    let kernel = w.shape()[2..].to_vec();
    let list = |name: &str, default: usize| -> Result<Vec<usize>> {
        Ok(usize_list(c, name)?.unwrap_or_else(|| vec![default; k]))
    };
    let (strides, dilations, out_pad) = (
        list("strides", 1)?,
        list("dilations", 1)?,
        list("output_padding", 0)?,
    );
    if strides.len() != k
        || dilations.len() != k
        || out_pad.len() != k
        || strides.contains(&0)
        || dilations.contains(&0)
        || kernel.contains(&0)
        || x.shape()[2..].contains(&0)
    {
        return Err(c.invalid(
            "strides, dilations and output_padding need one positive entry per spatial dim",
        ));
    }
    // The full output (no padding), then the pads cropped.
    let mut full: Vec<usize> = (0..k)
        .map(|i| {
            (x.shape()[2 + i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 + out_pad[i]
        })
        .collect();
    let auto = c
        .attrs
        .string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    let pads: Vec<usize> = if let Some(shape) = usize_list(c, "output_shape")? {
        if shape.len() != k {
            return Err(c.attrs.unsupported("output_shape", format!("{shape:?}")));
        }
        let mut p = vec![0; 2 * k];
        for i in 0..k {
            // A larger output_shape is extra output padding at the end.
            full[i] = full[i].max(shape[i]);
            let total = full[i] - shape[i];
            (p[i], p[i + k]) = split_same(total, auto != "SAME_LOWER");
        }
        p
    } else {
        match auto.as_str() {
            "NOTSET" | "VALID" => usize_list(c, "pads")?.unwrap_or_else(|| vec![0; 2 * k]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = vec![0; 2 * k];
                for i in 0..k {
                    let total = full[i].saturating_sub(x.shape()[2 + i] * strides[i]);
                    (p[i], p[i + k]) = split_same(total, auto == "SAME_UPPER");
                }
                p
            }
            other => return Err(c.attrs.unsupported("auto_pad", format!("{other:?}"))),
        }
    };
    if pads.len() != 2 * k {
        return Err(c.invalid(format!("pads must have {} entries", 2 * k)));
    }
    let mut out_shape = vec![x.shape()[0], w.shape()[1] * group];
    out_shape.extend_from_slice(&full);
    let (x4, w4, shape4) = if one_d {
        let mut s = out_shape.clone();
        s.insert(2, 1);
        (x.unsqueeze(2)?, w.unsqueeze(2)?, s)
    } else {
        (x.clone(), w.clone(), out_shape.clone())
    };
    let opts = Conv2dOptions {
        stride: pair(&strides, one_d, 1),
        padding: [0, 0],
        dilation: pair(&dilations, one_d, 1),
        groups: group,
    };
    let mut y = Tensor::conv2d_backward_data(&x4, &w4, &shape4, &opts)?;
    if one_d {
        y = y.squeeze(2)?;
    }
    for i in 0..k {
        let (b, e) = (pads[i], pads[i + k]);
        if b + e > full[i] {
            return Err(c.invalid(format!("pads {pads:?} crop the whole output")));
        }
        if b > 0 || e > 0 {
            y = y.slice((2 + i) as isize, b, full[i] - e, 1)?;
        }
    }
    if let Some(bias) = c.opt(2) {
        let mut s = vec![1; y.rank()];
        s[1] = bias.numel();
        y = y.add(&bias.reshape(&s)?)?;
    }
    Ok(y.contiguous()?)
}

fn gemm(c: &Ctx<'_>) -> Result<Tensor> {
    let (mut a, mut b) = (c.input(0)?.clone(), c.input(1)?.clone());
    if a.rank() != 2 || b.rank() != 2 {
        return Err(c.invalid(format!(
            "A {:?} and B {:?} must be matrices",
            a.shape(),
            b.shape()
        )));
    }
    if c.attrs.int_or("transA", 0)? != 0 {
        a = a.t()?;
    }
    if c.attrs.int_or("transB", 0)? != 0 {
        b = b.t()?;
    }
    let (alpha, beta) = (
        c.attrs.float_or("alpha", 1.0)?,
        c.attrs.float_or("beta", 1.0)?,
    );
    let mut y = a.matmul(&b)?;
    if alpha != 1.0 {
        y = y.mul_scalar(alpha.into())?;
    }
    if let Some(bias) = c.opt(2) {
        let bias = if beta != 1.0 {
            bias.mul_scalar(beta.into())?
        } else {
            bias.clone()
        };
        y = y.add(&bias)?;
    }
    Ok(y)
}

fn batch_norm(c: &Ctx<'_>) -> Result<Tensor> {
    if c.attrs.int_or("training_mode", 0)? != 0
        || (c.opset < 9 && c.attrs.int_or("is_test", 1)? == 0)
    {
        return Err(c.unsupported("BatchNormalization in training mode (inference only)"));
    }
    let x = c.input(0)?;
    let (scale, bias, mean, var) = (c.input(1)?, c.input(2)?, c.input(3)?, c.input(4)?);
    let eps = c.attrs.float_or("epsilon", 1e-5)?;
    if x.rank() < 2 {
        return Err(c.invalid(format!("input of rank {}", x.rank())));
    }
    Ok(x.batch_norm_infer(scale, bias, mean, var, eps.into())?)
}

fn pool(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    if c.outputs > 1 {
        return Err(c.unsupported("MaxPool's Indices output"));
    }
    if x.rank() != 3 && x.rank() != 4 {
        return Err(c.unsupported(format!(
            "{op} on rank {} input (1-D and 2-D only)",
            x.rank()
        )));
    }
    let one_d = x.rank() == 3;
    if c.attrs.int_or("ceil_mode", 0)? != 0 {
        return Err(c.attrs.unsupported("ceil_mode", "1 (floor only)"));
    }
    let win = window(c, &x.shape()[2..], None)?;
    if win.dilations.iter().any(|&d| d != 1) {
        return Err(c
            .attrs
            .unsupported("dilations", format!("{:?}", win.dilations)));
    }
    let max = op == "MaxPool";
    // u8 maxima are exact in f64.
    let xf = if x.dtype() == DType::U8 {
        widen_u8(x)?.cast(DType::F64)?
    } else {
        x.clone()
    };
    let include = c.attrs.int_or("count_include_pad", 0)? != 0;
    let opts = |pads: &[usize]| Pool2dOptions {
        kernel: pair(&win.kernel, one_d, 1),
        stride: pair(&win.strides, one_d, 1),
        padding: pair(pads, one_d, 0),
        count_include_pad: include,
    };
    let run = |t: &Tensor, o: &Pool2dOptions| -> Result<Tensor> {
        let (t4, _) = as_2d(t).ok_or_else(|| c.invalid("pool input"))?;
        let y = if max {
            t4.max_pool2d(o)?
        } else {
            t4.avg_pool2d(o)?
        };
        Ok(if one_d { y.squeeze(2)? } else { y })
    };
    let y = match win.symmetric(true) {
        Some(p) => run(&xf, &opts(&p))?,
        None => {
            // Explicit padding: -inf for maxima; zeros for averages, divided
            // by the average of a padded mask of ones unless the pads count.
            let none = opts(&vec![0; win.kernel.len()]);
            let fill = if max { f64::NEG_INFINITY } else { 0.0 };
            let y = run(&win.pad(c, &xf, fill)?, &none)?;
            if max || include {
                y
            } else {
                let mut ms = vec![1, 1];
                ms.extend_from_slice(&x.shape()[2..]);
                let mask = Tensor::ones(&ms, xf.dtype(), c.device)?;
                y.div(&run(&win.pad(c, &mask, 0.0)?, &none)?)?
            }
        }
    };
    if x.dtype() == DType::U8 {
        return wrap_u8(&y.cast(DType::I64)?);
    }
    Ok(y)
}

fn global_pool(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    if x.rank() < 3 {
        return Err(c.invalid(format!("input of rank {}", x.rank())));
    }
    if op == "GlobalAveragePool" && x.rank() == 4 {
        let y = x.global_avg_pool2d()?;
        return Ok(y.reshape(&[x.shape()[0], x.shape()[1], 1, 1])?);
    }
    let axes: Vec<isize> = (2..x.rank() as isize).collect();
    Ok(if op == "GlobalMaxPool" {
        x.max(&axes, true)?
    } else {
        x.mean(&axes, true)?
    })
}

fn softmax(op: &str, c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let r = x.rank();
    let log = op == "LogSoftmax";
    let f = |t: &Tensor, axis: isize| -> Result<Tensor> {
        Ok(if log {
            t.log_softmax(axis)?
        } else {
            t.softmax(axis)?
        })
    };
    if c.opset >= 13 {
        let a = c.axis(c.attrs.int_or("axis", -1)?, r)?;
        return f(x, a as isize);
    }
    // Before opset 13: the input is seen as 2-D, [prod(..axis), prod(axis..)].
    let a = c.axis(c.attrs.int_or("axis", 1)?, r)?;
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a..].iter().product();
    let y = f(&x.reshape(&[outer, inner])?, 1)?;
    Ok(y.reshape(x.shape())?)
}

fn layer_norm(c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    let x = c.input(0)?;
    let a = c.axis(c.attrs.int_or("axis", -1)?, x.rank())?;
    let eps = c.attrs.float_or("epsilon", 1e-5)?;
    if x.dtype() != DType::F32 && x.dtype() != DType::F64 {
        return Err(c.invalid(format!("dtype {}", x.dtype())));
    }
    let norm = &x.shape()[a..];
    let full = |t: &Tensor| -> Result<Tensor> { Ok(t.broadcast_to(norm)?.contiguous()?) };
    let scale = full(c.input(1)?)?;
    let bias = match c.opt(2) {
        Some(b) => full(b)?,
        None => Tensor::zeros(norm, x.dtype(), c.device)?,
    };
    let out = x.layer_norm(&scale, &bias, eps.into())?;
    let mut v = vec![out.y];
    if c.outputs > 1 {
        // Mean and InvStdDev keep the normalised dims as 1s.
        let mut stats = x.shape().to_vec();
        stats[a..].iter_mut().for_each(|d| *d = 1);
        v.push(out.mean.reshape(&stats)?);
        v.push(out.rstd.reshape(&stats)?);
    }
    Ok(v)
}

/// Local response normalisation across channels: the window sum of
/// squares is an average pool over the channel axis (count including
/// padding, times `size`).
fn lrn(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    let size = c.attrs.req_int("size")?;
    if size < 1 || size % 2 == 0 {
        return Err(c
            .attrs
            .unsupported("size", format!("{size} (odd sizes only)")));
    }
    if x.rank() < 3 {
        return Err(c.invalid(format!("input of rank {}", x.rank())));
    }
    let (alpha, beta, bias) = (
        c.attrs.float_or("alpha", 1e-4)?,
        c.attrs.float_or("beta", 0.75)?,
        c.attrs.float_or("bias", 1.0)?,
    );
    let (n, ch) = (x.shape()[0], x.shape()[1]);
    let rest: usize = x.shape()[2..].iter().product();
    let sq = x.mul(x)?.reshape(&[n, 1, ch, rest])?;
    let size = size as usize;
    let opts = Pool2dOptions {
        kernel: [size, 1],
        stride: [1, 1],
        padding: [(size - 1) / 2, 0],
        count_include_pad: true,
    };
    let avg = sq.avg_pool2d(&opts)?.reshape(x.shape())?;
    let denom = avg
        .mul_scalar(alpha.into())?
        .add_scalar(bias.into())?
        .pow_scalar(-f64::from(beta))?;
    Ok(x.mul(&denom)?)
}

/// `scale (x - mean) / sqrt(var + eps) + B` per image and channel, the
/// statistics over the spatial dims.
fn instance_norm(c: &Ctx<'_>) -> Result<Tensor> {
    let x = c.input(0)?;
    if x.rank() < 3 {
        return Err(c.invalid(format!("input of rank {}", x.rank())));
    }
    let eps = c.attrs.float_or("epsilon", 1e-5)?;
    let axes: Vec<isize> = (2..x.rank() as isize).collect();
    let mean = x.mean(&axes, true)?;
    let centred = x.sub(&mean)?;
    let var = centred.mul(&centred)?.mean(&axes, true)?;
    let mut per_channel = vec![1; x.rank()];
    per_channel[1] = x.shape()[1];
    let scale = c.input(1)?.reshape(&per_channel)?;
    let bias = c.input(2)?.reshape(&per_channel)?;
    Ok(centred
        .mul(&var.add_scalar(eps.into())?.rsqrt()?)?
        .mul(&scale)?
        .add(&bias)?)
}
