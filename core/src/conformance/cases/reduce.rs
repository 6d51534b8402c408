//! Reductions.

use crate::conformance::compare::Family;
use crate::conformance::inputs::{any, leaf};
use crate::{DType, OpId, Tensor};

use super::{case, with_grads, Case};

pub(crate) fn reduce_apply(
    op: OpId,
    x: &Tensor,
    axes: &[isize],
    keep: bool,
) -> crate::Result<Tensor> {
    match op {
        OpId::Sum => x.sum(axes, keep),
        OpId::Mean => x.mean(axes, keep),
        OpId::Max => x.max(axes, keep),
        OpId::Min => x.min(axes, keep),
        OpId::Argmax => x.argmax(axes[0], keep),
        other => unreachable!("{other} is not a reduction"),
    }
}

/// A reduction's input shape, the permutation viewing it, axes, keepdim.
pub(crate) type ReduceCfg = (&'static [usize], Option<&'static [usize]>, Vec<isize>, bool);

pub(crate) fn reduce_cases(op: OpId, d: DType) -> Vec<Case> {
    let mut configs: Vec<ReduceCfg> = vec![
        (&[3, 5, 7], Some(&[2, 0, 1]), vec![0, 2], false),
        (&[3, 5, 7], Some(&[2, 0, 1]), vec![1], true),
        (&[3, 5, 7], None, vec![2], false),
        (&[1031, 257], None, vec![0], false),
        (&[1031, 257], None, vec![1], true),
        (&[1031, 257], None, vec![0, 1], false),
        (&[1 << 20], None, vec![0], false),
        (&[8, 16, 7, 7], None, vec![0, 2, 3], false),
    ];
    if op == OpId::Argmax {
        configs.retain(|c| c.2.len() == 1);
        configs.push((&[3, 5, 7], Some(&[2, 0, 1]), vec![0], false));
    }
    let family = if matches!(op, OpId::Max | OpId::Min | OpId::Argmax) {
        Family::Exact
    } else {
        Family::Reduce
    };
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (shape, perm, axes, keep))| {
            let seed = 900 + k as u64;
            let what = format!(
                "{shape:?}{} over {axes:?}{}",
                perm.map_or(String::new(), |p| format!(" permuted {p:?}")),
                if keep { " keepdim" } else { "" }
            );
            case(what, family, move |dev| {
                let x = leaf(any(shape, seed, d, dev)?);
                let xv = match perm {
                    Some(p) => x.permute(p)?,
                    None => x.clone(),
                };
                with_grads(
                    "y",
                    reduce_apply(op, &xv, &axes, keep)?,
                    &[("x", &x)],
                    seed + 50,
                )
            })
        })
        .collect()
}
