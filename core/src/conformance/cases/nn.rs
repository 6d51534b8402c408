//! Softmax, norms, indexing, cross-entropy.

use crate::conformance::compare::Family;
use crate::conformance::inputs::{any, ints, leaf, maybe_view, uni};
use crate::{DType, Device, OpId, Tensor};

use super::{case, out, with_grads, Case, Out, Res};

pub(crate) fn softmax_cases(op: OpId, d: DType) -> Vec<Case> {
    // (shape, axis, value range, input as a transposed view)
    let configs: [(&[usize], isize, f64, bool); 6] = [
        (&[6, 5], -1, 2.0, false),
        (&[6, 5], 0, 2.0, false),
        (&[3, 1031], -1, 4.0, false),
        (&[4, 7, 9], 1, 4.0, false),
        (&[9, 7], -1, 4.0, true),
        (&[8, 100], -1, 50.0, false),
    ];
    let log = matches!(op, OpId::LogSoftmax | OpId::LogSoftmaxBackward);
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (shape, axis, range, view))| {
            let seed = 1300 + 10 * k as u64;
            let what = format!(
                "{shape:?}{} axis {axis}, inputs within ±{range}",
                if view { " view" } else { "" }
            );
            case(what, Family::Reduce, move |dev| {
                let fwd = |x: &Tensor| {
                    if log {
                        x.log_softmax(axis)
                    } else {
                        x.softmax(axis)
                    }
                };
                let make = |s: &[usize], on: &Device| -> crate::Result<Tensor> {
                    uni(s, -range, range, seed, d, on)
                };
                if matches!(op, OpId::Softmax | OpId::LogSoftmax) {
                    let (x, xv) = maybe_view(shape, view, |s| make(s, dev))?;
                    return with_grads("y", fwd(&xv)?, &[("x", &x)], seed + 5);
                }
                // The backward kernel alone, from the CPU's forward output.
                let y = fwd(&make(shape, &Device::cpu())?)?.to(dev)?;
                let dy = uni(shape, -1.0, 1.0, seed + 6, d, dev)?;
                let dx = if log {
                    Tensor::log_softmax_backward(&y, &dy, axis)?
                } else {
                    Tensor::softmax_backward(&y, &dy, axis)?
                };
                Ok(vec![out("dx", dx)])
            })
        })
        .collect()
}

pub(crate) const EPS: f64 = 1e-5;

pub(crate) fn layer_norm_cases(op: OpId, d: DType) -> Vec<Case> {
    // (x's shape, gamma's shape, x as a transposed view)
    let configs: [(&[usize], &[usize], bool); 4] = [
        (&[4, 3, 5, 5], &[5, 5], false),
        (&[7, 1031], &[1031], false),
        (&[16, 64], &[64], false),
        (&[12, 40], &[40], true),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (sx, sg, view))| {
            let seed = 1400 + 10 * k as u64;
            let what = format!("x {sx:?}{} over {sg:?}", if view { " (view)" } else { "" });
            case(what, Family::Norm, move |dev| {
                let g = leaf(uni(sg, 0.5, 1.5, seed + 1, d, dev)?);
                let b = leaf(any(sg, seed + 2, d, dev)?);
                let (x, xv) = maybe_view(sx, view, |s| any(s, seed, d, dev))?;
                if op == OpId::LayerNorm {
                    let r = xv.layer_norm(&g, &b, EPS)?;
                    let mut outs = with_grads(
                        "y",
                        r.y,
                        &[("x", &x), ("gamma", &g), ("beta", &b)],
                        seed + 3,
                    )?;
                    outs.push(out("mean", r.mean));
                    outs.push(out("rstd", r.rstd));
                    return Ok(outs);
                }
                let cpu = Device::cpu();
                let (xc, gc) = (xv.detach().to(&cpu)?, g.detach().to(&cpu)?);
                let r = xc.layer_norm(&gc, &b.detach().to(&cpu)?, EPS)?;
                let dy = any(sx, seed + 4, d, dev)?;
                let (dx, dg, db) = Tensor::layer_norm_backward(
                    &xv.detach(),
                    &g.detach(),
                    &r.mean.to(dev)?,
                    &r.rstd.to(dev)?,
                    &dy,
                    EPS,
                )?;
                Ok(vec![out("dx", dx), out("dgamma", dg), out("dbeta", db)])
            })
        })
        .collect()
}

pub(crate) fn batch_norm_cases(op: OpId, d: DType) -> Vec<Case> {
    let mut v = Vec::new();
    for (k, (shape, nhwc)) in [
        ([4usize, 3, 5, 5], false),
        ([8, 16, 7, 7], false),
        ([4, 6, 5, 3], true),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 1500 + 10 * k as u64;
        let c = shape[1];
        let what = format!("x {shape:?}{}", if nhwc { " (NHWC view)" } else { "" });
        let input = move |dev: &Device| -> crate::Result<(Tensor, Tensor)> {
            let [n, c, h, w] = shape;
            if nhwc {
                let x = leaf(any(&[n, h, w, c], seed, d, dev)?);
                let v = x.permute(&[0, 3, 1, 2])?;
                Ok((x, v))
            } else {
                let x = leaf(any(&shape, seed, d, dev)?);
                Ok((x.clone(), x))
            }
        };
        if op == OpId::BatchNorm {
            v.push(case(
                format!("{what}, training"),
                Family::Norm,
                move |dev| {
                    let (x, xv) = input(dev)?;
                    let g = leaf(uni(&[c], 0.5, 1.5, seed + 1, d, dev)?);
                    let b = leaf(any(&[c], seed + 2, d, dev)?);
                    let r = xv.batch_norm_train(&g, &b, EPS)?;
                    let mut outs = with_grads(
                        "y",
                        r.y,
                        &[("x", &x), ("gamma", &g), ("beta", &b)],
                        seed + 3,
                    )?;
                    outs.push(out("mean", r.mean));
                    outs.push(out("rstd", r.rstd));
                    Ok(outs)
                },
            ));
            v.push(case(
                format!("{what}, inference"),
                Family::Norm,
                move |dev| {
                    let (x, xv) = input(dev)?;
                    let g = leaf(uni(&[c], 0.5, 1.5, seed + 1, d, dev)?);
                    let b = leaf(any(&[c], seed + 2, d, dev)?);
                    let mean = any(&[c], seed + 4, d, dev)?;
                    let var = uni(&[c], 0.2, 3.0, seed + 5, d, dev)?;
                    let y = xv.batch_norm_infer(&g, &b, &mean, &var, EPS)?;
                    with_grads("y", y, &[("x", &x), ("gamma", &g), ("beta", &b)], seed + 6)
                },
            ));
        } else {
            v.push(case(what, Family::Norm, move |dev| {
                let (_, xv) = input(dev)?;
                let g = uni(&[c], 0.5, 1.5, seed + 1, d, dev)?;
                let cpu = Device::cpu();
                let r = xv.detach().to(&cpu)?.batch_norm_train(
                    &g.to(&cpu)?,
                    &any(&[c], seed + 2, d, &cpu)?,
                    EPS,
                )?;
                let dy = any(&shape, seed + 7, d, dev)?;
                let (dx, dg, db) = Tensor::batch_norm_backward(
                    &xv.detach(),
                    &g,
                    &r.mean.to(dev)?,
                    &r.rstd.to(dev)?,
                    &dy,
                    EPS,
                )?;
                Ok(vec![out("dx", dx), out("dgamma", dg), out("dbeta", db)])
            }));
        }
    }
    v
}

pub(crate) fn index_cases(op: OpId, d: DType) -> Vec<Case> {
    // (table's shape, axis, index shape, index range, table as a transposed view)
    let configs: [(&[usize], isize, &[usize], bool); 4] = [
        (&[5, 4], 0, &[6], false),
        (&[5, 4], 1, &[2, 3], false),
        (&[7, 9], 0, &[11], true),
        (&[1000, 64], 0, &[4096], false),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (st, axis, si, view))| {
            let seed = 1600 + 10 * k as u64;
            let what = format!(
                "table {st:?}{} axis {axis}, index {si:?} with repeats",
                if view { " (view)" } else { "" }
            );
            let family = if op == OpId::IndexSelect {
                Family::Exact
            } else {
                Family::Reduce
            };
            case(what, family, move |dev| {
                let a = usize::try_from(axis).expect("axis >= 0");
                let idx = ints(si, 0, st[a] as i64, seed, DType::I64, dev)?;
                if op == OpId::IndexSelect {
                    let (t, tv) = maybe_view(st, view, |s| any(s, seed + 1, d, dev))?;
                    return with_grads(
                        "y",
                        tv.index_select(axis, &idx)?,
                        &[("table", &t)],
                        seed + 2,
                    );
                }
                // index_add into a non-zero target, src shaped like index_select's output.
                let mut src_shape: Vec<usize> = st[..a].to_vec();
                src_shape.extend_from_slice(si);
                src_shape.extend_from_slice(&st[a + 1..]);
                let target = any(st, seed + 3, d, dev)?;
                let src = any(&src_shape, seed + 4, d, dev)?;
                target.index_add_(axis, &idx, &src)?;
                Ok(vec![out("target", target)])
            })
        })
        .collect()
}

pub(crate) fn cross_entropy_cases(op: OpId, d: DType) -> Vec<Case> {
    // (N, C, ignore_index, logit range)
    let configs: [(usize, usize, i64, f64); 4] = [
        (6, 5, 2, 2.0),
        (64, 10, -100, 4.0),
        (3, 1031, -100, 4.0),
        (16, 7, 3, 60.0),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (n, c, ignore, range))| {
            let seed = 1700 + 10 * k as u64;
            let what = format!("[{n}, {c}] ignore_index {ignore}, logits within ±{range}");
            case(what, Family::Reduce, move |dev| {
                let labels = ints(&[n], 0, c as i64, seed, DType::I64, dev)?;
                let logits = leaf(uni(&[n, c], -range, range, seed + 1, d, dev)?);
                if op == OpId::CrossEntropy {
                    let loss = Tensor::cross_entropy(&logits, &labels, ignore)?;
                    return with_grads("loss", loss, &[("logits", &logits)], seed + 2);
                }
                let dloss = uni(&[n], -1.0, 1.0, seed + 3, d, dev)?;
                let dx = Tensor::cross_entropy_backward(&logits.detach(), &labels, &dloss, ignore)?;
                Ok(vec![out("dlogits", dx)])
            })
        })
        .collect()
}

/// Runs `steps` optimizer steps on a seeded parameter of `shape` with a
/// seeded loss (`sum(p^2 w)`, or with `strided_grad` `sum(p^T w^T)`, whose
/// gradient reaches `p` as a transposed view); the parameter after them.
fn optimizer_run(
    dev: &Device,
    (shape, steps, strided_grad): (&[usize], usize, bool),
    d: DType,
    seed: u64,
    make: &dyn Fn(Tensor) -> crate::Result<Box<dyn crate::optim::Optimizer>>,
) -> Res<Vec<Out>> {
    let p = leaf(uni(shape, -1.0, 1.0, seed, d, dev)?);
    let mut opt = make(p.clone())?;
    for s in 0..steps {
        opt.zero_grad();
        let w = uni(shape, -1.0, 1.0, seed + 1 + s as u64, d, dev)?;
        let loss = if strided_grad {
            p.transpose(0, 1)?.mul(&w.transpose(0, 1)?)?.sum_all()?
        } else {
            p.mul(&p)?.mul(&w)?.sum_all()?
        };
        loss.backward()?;
        opt.step()?;
    }
    Ok(vec![out("p", p.detach())])
}

/// The shapes the optimizer cases run: a scalar-like, a matrix, one split
/// over the thread pool, and one whose gradient is a transposed view.
const OPTIMIZER_SHAPES: [(&[usize], usize, bool); 4] = [
    (&[7], 3, false),
    (&[64, 33], 4, false),
    (&[(1 << 17) + 3], 2, false),
    (&[16, 9], 3, true),
];

/// Builds an optimizer over named parameters.
type MakeOptimizer<'a> =
    dyn Fn(Vec<(String, Tensor)>) -> crate::Result<Box<dyn crate::optim::Optimizer>> + 'a;

/// Runs `steps` optimizer steps of one optimizer over a parameter of each
/// of [`OPTIMIZER_SHAPES`] at once (the multi-tensor ops), each with its
/// loss as in [`optimizer_run`]; the parameters after them.
fn multi_optimizer_run(
    dev: &Device,
    steps: usize,
    d: DType,
    seed: u64,
    make: &MakeOptimizer<'_>,
) -> Res<Vec<Out>> {
    let mut ps = Vec::new();
    for (k, (shape, _, _)) in OPTIMIZER_SHAPES.into_iter().enumerate() {
        ps.push(leaf(uni(shape, -1.0, 1.0, seed + 100 * k as u64, d, dev)?));
    }
    let named = ps
        .iter()
        .enumerate()
        .map(|(k, p)| (format!("p{k}"), p.clone()))
        .collect();
    let mut opt = make(named)?;
    for s in 0..steps {
        opt.zero_grad();
        let mut loss: Option<Tensor> = None;
        for (k, ((shape, _, strided), p)) in OPTIMIZER_SHAPES.into_iter().zip(&ps).enumerate() {
            let w = uni(
                shape,
                -1.0,
                1.0,
                seed + 100 * k as u64 + 1 + s as u64,
                d,
                dev,
            )?;
            let l = if strided {
                p.transpose(0, 1)?.mul(&w.transpose(0, 1)?)?.sum_all()?
            } else {
                p.mul(p)?.mul(&w)?.sum_all()?
            };
            loss = Some(match loss {
                Some(t) => t.add(&l)?,
                None => l,
            });
        }
        if let Some(l) = loss {
            l.backward()?;
        }
        opt.step()?;
    }
    Ok(ps
        .iter()
        .enumerate()
        .map(|(k, p)| out(format!("p{k}"), p.detach()))
        .collect())
}

/// One case per weight decay, all four parameters stepped together.
pub(crate) fn adamw_multi_cases(d: DType) -> Vec<Case> {
    [0.0, 0.01]
        .into_iter()
        .enumerate()
        .map(|(k, wd)| {
            let seed = 2000 + 10 * k as u64;
            let what = format!("4 parameters {OPTIMIZER_NAMES}, 3 steps, weight decay {wd}");
            case(what, Family::Elementwise, move |dev| {
                use crate::optim::{AdamW, AdamWOptions};
                let opts = AdamWOptions {
                    weight_decay: wd,
                    ..AdamWOptions::new(0.05)
                };
                multi_optimizer_run(dev, 3, d, seed, &|ps| Ok(Box::new(AdamW::new(ps, opts)?)))
            })
        })
        .collect()
}

/// Plain SGD, momentum with dampening, Nesterov; four parameters at once.
pub(crate) fn sgd_multi_cases(d: DType) -> Vec<Case> {
    [(0.0, false), (0.9, false), (0.9, true)]
        .into_iter()
        .enumerate()
        .map(|(k, (momentum, nesterov))| {
            let seed = 2100 + 10 * k as u64;
            let what = format!(
                "4 parameters {OPTIMIZER_NAMES}, 3 steps, momentum {momentum}{}",
                if nesterov { ", Nesterov" } else { "" }
            );
            case(what, Family::Elementwise, move |dev| {
                use crate::optim::{Sgd, SgdOptions};
                let opts = SgdOptions {
                    momentum,
                    dampening: if momentum != 0.0 && !nesterov {
                        0.1
                    } else {
                        0.0
                    },
                    nesterov,
                    weight_decay: 0.01,
                    ..SgdOptions::new(0.05)
                };
                multi_optimizer_run(dev, 3, d, seed, &|ps| Ok(Box::new(Sgd::new(ps, opts)?)))
            })
        })
        .collect()
}

/// [`OPTIMIZER_SHAPES`] in a case name.
const OPTIMIZER_NAMES: &str = "[7], [64, 33], [131075], [16, 9] (transposed gradient)";

pub(crate) fn adamw_cases(d: DType) -> Vec<Case> {
    let weight_decay = [0.0, 0.01, 0.1, 0.01];
    OPTIMIZER_SHAPES
        .into_iter()
        .zip(weight_decay)
        .enumerate()
        .map(|(k, (config, wd))| {
            let seed = 1800 + 10 * k as u64;
            let (shape, steps, strided) = config;
            let what = format!(
                "{shape:?}, {steps} steps, weight decay {wd}{}",
                if strided { ", transposed gradient" } else { "" }
            );
            case(what, Family::Elementwise, move |dev| {
                use crate::optim::{AdamW, AdamWOptions};
                let opts = AdamWOptions {
                    weight_decay: wd,
                    ..AdamWOptions::new(0.05)
                };
                optimizer_run(dev, config, d, seed, &|p| {
                    Ok(Box::new(AdamW::new(vec![("p".into(), p)], opts)?))
                })
            })
        })
        .collect()
}

pub(crate) fn sgd_cases(d: DType) -> Vec<Case> {
    // Momentum 0.9 with weight decay throughout (without momentum the host
    // does not call the op); Nesterov on every other case.
    OPTIMIZER_SHAPES
        .into_iter()
        .enumerate()
        .map(|(k, config)| {
            let seed = 1900 + 10 * k as u64;
            let nesterov = k % 2 == 1;
            let (shape, steps, strided) = config;
            let what = format!(
                "{shape:?}, {steps} steps, momentum 0.9{}{}",
                if nesterov {
                    ", Nesterov"
                } else {
                    ", dampening 0.1"
                },
                if strided { ", transposed gradient" } else { "" }
            );
            case(what, Family::Elementwise, move |dev| {
                use crate::optim::{Sgd, SgdOptions};
                let opts = SgdOptions {
                    momentum: 0.9,
                    dampening: if nesterov { 0.0 } else { 0.1 },
                    nesterov,
                    weight_decay: 0.01,
                    ..SgdOptions::new(0.05)
                };
                optimizer_run(dev, config, d, seed, &|p| {
                    Ok(Box::new(Sgd::new(vec![("p".into(), p)], opts)?))
                })
            })
        })
        .collect()
}
