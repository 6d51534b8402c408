//! Matmul, convolution and pooling.

use crate::conformance::compare::Family;
use crate::conformance::inputs::{any, leaf, maybe_view};
use crate::{Conv2dOptions, DType, Device, OpId, Pool2dOptions, Tensor};

use super::{case, out, with_grads, Case, Fail};

pub(crate) fn matmul_cases(d: DType) -> Vec<Case> {
    // (a's shape, b's shape, a as a transposed view, b as a transposed view)
    let configs: [(&[usize], &[usize], bool, bool); 6] = [
        (&[2, 37, 19], &[19, 23], false, true),
        (&[64, 64], &[64, 48], false, false),
        (&[1, 129], &[129, 1], false, false),
        (&[129, 257], &[257, 65], true, false),
        (&[3, 1, 5, 7], &[4, 7, 6], false, false),
        (&[128, 128], &[128, 128], true, true),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (sa, sb, ta, tb))| {
            let seed = 1000 + 10 * k as u64;
            let what = format!(
                "{sa:?}{} x {sb:?}{}",
                if ta { "ᵀview" } else { "" },
                if tb { "ᵀview" } else { "" }
            );
            case(what, Family::Dense, move |dev| {
                let (a, av) = maybe_view(sa, ta, |s| any(s, seed, d, dev))?;
                let (b, bv) = maybe_view(sb, tb, |s| any(s, seed + 1, d, dev))?;
                with_grads("y", av.matmul(&bv)?, &[("a", &a), ("b", &b)], seed + 2)
            })
        })
        .collect()
}

/// One convolution configuration.
#[derive(Clone, Copy)]
pub(crate) struct ConvCfg {
    x: [usize; 4],
    w: [usize; 4],
    bias: bool,
    o: Conv2dOptions,
    /// `x` as a channels-last view.
    nhwc: bool,
}

pub(crate) fn conv_configs() -> Vec<ConvCfg> {
    let o = |s: [usize; 2], p: [usize; 2], dl: [usize; 2], g: usize| Conv2dOptions {
        stride: s,
        padding: p,
        dilation: dl,
        groups: g,
    };
    vec![
        ConvCfg {
            x: [2, 4, 9, 9],
            w: [6, 2, 3, 3],
            bias: true,
            o: o([2, 1], [1, 1], [1, 2], 2),
            nhwc: false,
        },
        ConvCfg {
            x: [3, 3, 11, 13],
            w: [5, 3, 3, 3],
            bias: true,
            o: o([1, 1], [1, 1], [1, 1], 1),
            nhwc: false,
        },
        ConvCfg {
            x: [2, 8, 7, 7],
            w: [16, 8, 1, 1],
            bias: false,
            o: o([1, 1], [0, 0], [1, 1], 1),
            nhwc: false,
        },
        ConvCfg {
            x: [2, 3, 23, 23],
            w: [8, 3, 7, 7],
            bias: true,
            o: o([2, 2], [3, 3], [1, 1], 1),
            nhwc: false,
        },
        ConvCfg {
            x: [2, 4, 9, 9],
            w: [6, 4, 3, 3],
            bias: false,
            o: o([1, 1], [1, 1], [1, 1], 1),
            nhwc: true,
        },
        ConvCfg {
            x: [4, 32, 14, 14],
            w: [32, 32, 3, 3],
            bias: true,
            o: o([1, 1], [1, 1], [1, 1], 1),
            nhwc: false,
        },
    ]
}

impl ConvCfg {
    fn what(&self) -> String {
        format!(
            "x {:?}{} w {:?} stride {:?} pad {:?} dilation {:?} groups {}{}",
            self.x,
            if self.nhwc { " (NHWC view)" } else { "" },
            self.w,
            self.o.stride,
            self.o.padding,
            self.o.dilation,
            self.o.groups,
            if self.bias { " bias" } else { "" }
        )
    }

    /// The leaf `x` and the (maybe channels-last view) tensor to convolve.
    fn input(&self, seed: u64, d: DType, dev: &Device) -> crate::Result<(Tensor, Tensor)> {
        let [n, c, h, w] = self.x;
        if self.nhwc {
            let x = leaf(any(&[n, h, w, c], seed, d, dev)?);
            let v = x.permute(&[0, 3, 1, 2])?;
            Ok((x, v))
        } else {
            let x = leaf(any(&self.x, seed, d, dev)?);
            Ok((x.clone(), x))
        }
    }

    fn y_shape(&self) -> crate::Result<Vec<usize>> {
        self.o.output_shape("conv2d", &self.x, &self.w)
    }
}

/// `to_channels_last`, then conv (64 channels: the CPU's blocked kernels'
/// whole tiles), relu, a broadcast add and a strided conv: the format
/// kept where the device keeps it (conv on the CPU, elementwise outputs
/// everywhere), values and gradients equal across devices.
pub(crate) fn channels_last_block(d: DType) -> Case {
    case(
        "channels-last conv, relu, add, conv",
        Family::Dense,
        move |dev| {
            let x = leaf(any(&[2, 8, 9, 10], 1190, d, dev)?);
            let w1 = leaf(any(&[64, 8, 3, 3], 1191, d, dev)?);
            let b1 = leaf(any(&[64], 1192, d, dev)?);
            let w2 = leaf(any(&[16, 64, 3, 3], 1193, d, dev)?);
            let shift = any(&[1, 64, 1, 1], 1194, d, dev)?;
            let pad = Conv2dOptions {
                padding: [1, 1],
                ..Default::default()
            };
            let down = Conv2dOptions {
                stride: [2, 2],
                ..pad
            };
            let r = x.to_channels_last()?.conv2d(&w1, Some(&b1), &pad)?.relu()?;
            if !r.is_channels_last() && dev.writes_channels_last_conv() {
                return Err(Fail(format!(
                    "{dev}: relu of a channels-last conv lost the format"
                )));
            }
            let y = r.add(&shift)?.conv2d(&w2, None, &down)?;
            let leaves = [("x", &x), ("w1", &w1), ("b1", &b1), ("w2", &w2)];
            with_grads("y", y, &leaves, 1195)
        },
    )
}

pub(crate) fn conv_cases(op: OpId, d: DType) -> Vec<Case> {
    let extra = (op == OpId::Conv2d).then(|| channels_last_block(d));
    conv_configs()
        .into_iter()
        .enumerate()
        .map(|(k, cfg)| {
            let seed = 1100 + 10 * k as u64;
            case(cfg.what(), Family::Dense, move |dev| {
                let (x, xv) = cfg.input(seed, d, dev)?;
                let w = leaf(any(&cfg.w, seed + 1, d, dev)?);
                let o = &cfg.o;
                match op {
                    OpId::Conv2d => {
                        let b = leaf(any(&[cfg.w[0]], seed + 2, d, dev)?);
                        let y = xv.conv2d(&w, cfg.bias.then_some(&b), o)?;
                        let mut leaves = vec![("x", &x), ("w", &w)];
                        if cfg.bias {
                            leaves.push(("bias", &b));
                        }
                        with_grads("y", y, &leaves, seed + 3)
                    }
                    OpId::Conv2dBackwardData => {
                        let dy = any(&cfg.y_shape()?, seed + 4, d, dev)?;
                        Ok(vec![out(
                            "dx",
                            Tensor::conv2d_backward_data(&dy, &w.detach(), &cfg.x, o)?,
                        )])
                    }
                    _ => {
                        let dy = any(&cfg.y_shape()?, seed + 4, d, dev)?;
                        let dw = Tensor::conv2d_backward_filter(&xv.detach(), &dy, &cfg.w, o)?;
                        Ok(vec![out("dw", dw)])
                    }
                }
            })
        })
        .chain(extra)
        .collect()
}

pub(crate) fn pool_options() -> Vec<Pool2dOptions> {
    let p = |k: [usize; 2], s: [usize; 2], pad: [usize; 2], cip: bool| Pool2dOptions {
        kernel: k,
        stride: s,
        padding: pad,
        count_include_pad: cip,
    };
    vec![
        p([3, 3], [2, 2], [1, 1], false),
        p([3, 3], [2, 2], [1, 1], true),
        Pool2dOptions::square(2),
        p([3, 2], [1, 2], [1, 0], false),
    ]
}

pub(crate) fn pool_cases(op: OpId, d: DType) -> Vec<Case> {
    let family = if matches!(op, OpId::MaxPool2d | OpId::MaxPool2dBackward) {
        Family::Exact
    } else {
        Family::Reduce
    };
    let mut v = Vec::new();
    for (k, po) in pool_options().into_iter().enumerate() {
        for (j, (shape, nhwc)) in [
            ([2usize, 3, 9, 11], false),
            ([2, 5, 8, 7], true),
            ([4, 16, 28, 28], false),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 1200 + 10 * k as u64 + j as u64;
            let what = format!(
                "x {shape:?}{} kernel {:?} stride {:?} pad {:?}{}",
                if nhwc { " (NHWC view)" } else { "" },
                po.kernel,
                po.stride,
                po.padding,
                if po.count_include_pad {
                    " count_include_pad"
                } else {
                    ""
                }
            );
            v.push(case(what, family, move |dev| {
                let [n, c, h, w] = shape;
                let (x, xv) = if nhwc {
                    let x = leaf(any(&[n, h, w, c], seed, d, dev)?);
                    let v = x.permute(&[0, 3, 1, 2])?;
                    (x, v)
                } else {
                    let x = leaf(any(&shape, seed, d, dev)?);
                    (x.clone(), x)
                };
                let ext =
                    |k: usize| (shape[2 + k] + 2 * po.padding[k] - po.kernel[k]) / po.stride[k] + 1;
                let y_shape = [n, c, ext(0), ext(1)];
                match op {
                    OpId::MaxPool2d => with_grads("y", xv.max_pool2d(&po)?, &[("x", &x)], seed + 5),
                    OpId::AvgPool2d => with_grads("y", xv.avg_pool2d(&po)?, &[("x", &x)], seed + 5),
                    OpId::MaxPool2dBackward => {
                        let dy = any(&y_shape, seed + 6, d, dev)?;
                        Ok(vec![out(
                            "dx",
                            Tensor::max_pool2d_backward(&xv.detach(), &dy, &po)?,
                        )])
                    }
                    _ => {
                        let dy = any(&y_shape, seed + 6, d, dev)?;
                        Ok(vec![out(
                            "dx",
                            Tensor::avg_pool2d_backward(&dy, &shape, &po)?,
                        )])
                    }
                }
            }));
        }
    }
    if op == OpId::AvgPool2d {
        v.push(case(
            "global average of [4, 16, 7, 7]",
            family,
            move |dev| {
                let x = leaf(any(&[4, 16, 7, 7], 1290, d, dev)?);
                with_grads("y", x.global_avg_pool2d()?, &[("x", &x)], 1291)
            },
        ));
    }
    v
}
