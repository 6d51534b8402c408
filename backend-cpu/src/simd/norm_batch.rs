//! `batch_norm` and `batch_norm_backward` (see `norm.rs` for the contract).
//! `x` is walked as `N * C` contiguous blocks of `S = H * W * ..` elements;
//! per-block partial sums run on the pool and are combined per channel in
//! block order. The backward sums of a block accumulate in f64 over a fixed
//! number of lanes, through kernels compiled per tier that give the same
//! bits on every tier.

use rayon::prelude::*;
use sunrise_backend_api::ops::NormParams;
use sunrise_backend_api::{BackendError, OpCall, OpId, Result};

use super::{input, input_desc, out_slice, NormElem};
use crate::element::Element;
use crate::reduce::out_view;
use crate::strided::check_arity;
use crate::threads;

/// `(N, C, S)` of a batch-norm input, checking rank and axis.
fn geometry(op: OpId, shape: &[usize], axis: u32) -> Result<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(BackendError::invalid(format!(
            "{op}: x must have rank >= 2, got {shape:?}"
        )));
    }
    if axis != 1 {
        return Err(BackendError::invalid(format!(
            "{op}: the channel axis must be 1, got {axis}"
        )));
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// `f(block index, block)` for every `s`-element block of `xs`, in order.
fn map_blocks<T: NormElem, R: Send>(
    xs: &[T],
    s: usize,
    f: impl Fn(usize, &[T]) -> R + Sync,
) -> Vec<R> {
    if threads::split(xs.len()) {
        threads::install(|| xs.par_chunks(s).enumerate().map(|(b, x)| f(b, x)).collect())
    } else {
        xs.chunks(s).enumerate().map(|(b, x)| f(b, x)).collect()
    }
}

/// `f(block index, output block)` for every `s`-element block of `ys`.
fn write_blocks<T: NormElem>(ys: &mut [T], s: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if threads::split(ys.len()) {
        threads::install(|| ys.par_chunks_mut(s).enumerate().for_each(|(b, y)| f(b, y)));
    } else {
        ys.chunks_mut(s).enumerate().for_each(|(b, y)| f(b, y));
    }
}

/// Per-channel totals of per-block values (blocks ordered `(n, c)`).
fn per_channel(v: &[f64], c: usize) -> Vec<f64> {
    let mut t = vec![0f64; c];
    // (No channels means no blocks either.)
    for row in v.chunks(c.max(1)) {
        for (t, &x) in t.iter_mut().zip(row) {
            *t += x;
        }
    }
    t
}

/// Lanes of [`block_sums`]: fixed, so that its additions, and so its
/// results, are the same on every tier and thread count; 16 gives AVX-512
/// two independent accumulators and covers the 4x4 planes of small CNNs
/// without a scalar tail.
const LANES: usize = 16;

/// Elements per piece of the `dy * xh` buffer of [`block_sums`]; a
/// multiple of `LANES`, so that lanes line up across pieces.
const PIECE: usize = 8 * LANES;

/// `(sum dy, sum dy * xh)` over one block, `xh = (x - mean) * rstd`, in
/// f64: lane `l` sums the elements `j = l mod LANES` in order, then the
/// lanes are added pairwise. `buf` is scratch.
#[inline(always)]
fn block_sums<T: NormElem>(
    x: &[T],
    dy: &[T],
    (mean, rstd): (f64, f64),
    buf: &mut [f64; PIECE],
) -> (f64, f64) {
    let (mut sb, mut sg) = ([0f64; LANES], [0f64; LANES]);
    lane_add(&mut sb, dy);
    // `dy * xh` through the buffer: an element-wise loop, then the same
    // lane sums (both compile to vector operations; one fused loop does not).
    for (xp, dp) in x.chunks(PIECE).zip(dy.chunks(PIECE)) {
        let b = &mut buf[..xp.len().min(dp.len())];
        for ((o, &v), &d) in b.iter_mut().zip(xp).zip(dp) {
            *o = d.to_f64() * ((v.to_f64() - mean) * rstd);
        }
        lane_add(&mut sg, b);
    }
    (fold(sb), fold(sg))
}

/// Adds `a[j]` into `acc[j mod LANES]`, in order (see [`block_sums`]).
#[inline(always)]
fn lane_add<U: Element>(acc: &mut [f64; LANES], a: &[U]) {
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l].to_f64();
        }
    }
    for (s, v) in acc.iter_mut().zip(tail) {
        *s += v.to_f64();
    }
}

/// The lanes of [`block_sums`] added pairwise: lane `l` and `l + 8`, then
/// `l` and `l + 4`, and so on (each step a new array, which stays in
/// registers).
#[inline(always)]
fn fold(a: [f64; LANES]) -> f64 {
    let (mut h8, mut h4) = ([0f64; 8], [0f64; 4]);
    for l in 0..8 {
        h8[l] = a[l] + a[l + 8];
    }
    for l in 0..4 {
        h4[l] = h8[l] + h8[l + 4];
    }
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

/// Per-channel constants of the `dx` pass.
#[derive(Debug, Clone, Copy)]
struct DxTerms {
    mean: f64,
    rstd: f64,
    /// `gamma * rstd / M`.
    scale: f64,
    /// `M`.
    m: f64,
    dbeta: f64,
    dgamma: f64,
}

/// `dx = scale * (M * dy - dbeta - xh * dgamma)` over one block.
#[inline(always)]
fn block_dx<T: NormElem>(x: &[T], dy: &[T], out: &mut [T], t: &DxTerms) {
    for ((o, &d), &v) in out.iter_mut().zip(dy).zip(x) {
        *o = t.dx(d, v);
    }
}

impl DxTerms {
    /// `dx` of one element from its `dy` and `x`.
    #[inline(always)]
    fn dx<T: NormElem>(&self, d: T, v: T) -> T {
        let xh = (v.to_f64() - self.mean) * self.rstd;
        T::from_f64(self.scale * (self.m * d.to_f64() - self.dbeta - xh * self.dgamma))
    }
}

/// What both backward passes read: `x` and `dy` as `N * C` blocks of `s`.
#[derive(Debug, Clone, Copy)]
struct Blocks<'a, T> {
    xs: &'a [T],
    gs: &'a [T],
    s: usize,
    c: usize,
}

impl<T: NormElem> Blocks<'_, T> {
    /// Block `i` of `x` and of `dy`.
    #[inline(always)]
    fn block(&self, i: usize) -> (&[T], &[T]) {
        let r = i * self.s..(i + 1) * self.s;
        (&self.xs[r.clone()], &self.gs[r])
    }
}

// The two loops below take no closures: a closure is compiled for the
// baseline, not for the features of the tier function it is called from.

/// [`block_sums`] of blocks `first..first + out.len()`, `stats` per channel.
#[inline(always)]
fn sums_from<T: NormElem>(
    b: Blocks<'_, T>,
    stats: &[(f64, f64)],
    first: usize,
    out: &mut [(f64, f64)],
) {
    let (mut k, mut buf) = (first % b.c, [0f64; PIECE]);
    for (i, o) in (first..).zip(out) {
        let (x, g) = b.block(i);
        *o = block_sums(x, g, stats[k], &mut buf);
        k = if k + 1 == b.c { 0 } else { k + 1 };
    }
}

/// [`block_dx`] of the blocks of `out` from block `first`, `terms` per
/// channel.
#[inline(always)]
fn dx_from<T: NormElem>(b: Blocks<'_, T>, terms: &[DxTerms], first: usize, out: &mut [T]) {
    let mut k = first % b.c;
    for (i, o) in (first..).zip(out.chunks_exact_mut(b.s)) {
        let (x, g) = b.block(i);
        block_dx(x, g, o, &terms[k]);
        k = if k + 1 == b.c { 0 } else { k + 1 };
    }
}

/// `(mean, rstd)` of a channel.
type Stats = (f64, f64);
/// `(sum dy, sum dy * xh)` of a block.
type Sums = (f64, f64);

/// [`sums_from`] and [`dx_from`] compiled for one tier: the same
/// operations in the same order, so the same results on every tier (Rust
/// never fuses a multiply and an add by itself).
#[derive(Debug, Clone, Copy)]
struct BwdKernels<T: 'static> {
    sums: unsafe fn(Blocks<'_, T>, &[Stats], usize, &mut [Sums]),
    dx: unsafe fn(Blocks<'_, T>, &[DxTerms], usize, &mut [T]),
}

#[cfg(target_arch = "x86_64")]
mod tiers {
    use super::{dx_from, sums_from, Blocks, DxTerms, NormElem};

    macro_rules! tier {
        ($feat:literal, $sums:ident, $dx:ident) => {
            #[doc = concat!("`sums_from` compiled for `", $feat, "`.")]
            ///
            /// # Safety
            /// The CPU supports the features named above.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $sums<T: NormElem>(
                b: Blocks<'_, T>,
                stats: &[(f64, f64)],
                first: usize,
                out: &mut [(f64, f64)],
            ) {
                sums_from(b, stats, first, out)
            }

            #[doc = concat!("`dx_from` compiled for `", $feat, "`.")]
            ///
            /// # Safety
            /// The CPU supports the features named above.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $dx<T: NormElem>(
                b: Blocks<'_, T>,
                terms: &[DxTerms],
                first: usize,
                out: &mut [T],
            ) {
                dx_from(b, terms, first, out)
            }
        };
    }
    tier!("avx2", avx2_sums, avx2_dx);
    tier!("avx512f", avx512_sums, avx512_dx);
}

impl<T: NormElem> BwdKernels<T> {
    /// The kernels for tier `isa` (portable below AVX2).
    fn for_tier(isa: crate::isa::Isa) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::isa::Isa;
            match isa {
                Isa::Avx512 => {
                    return BwdKernels {
                        sums: tiers::avx512_sums::<T>,
                        dx: tiers::avx512_dx::<T>,
                    }
                }
                Isa::Avx2 => {
                    return BwdKernels {
                        sums: tiers::avx2_sums::<T>,
                        dx: tiers::avx2_dx::<T>,
                    }
                }
                _ => {}
            }
        }
        let _ = isa;
        BwdKernels {
            sums: sums_from::<T>,
            dx: dx_from::<T>,
        }
    }
}

/// `batch_norm`, training or inference.
///
/// # Safety
/// As `norm::execute`.
pub(super) unsafe fn forward<T: NormElem>(call: &OpCall<'_>, p: &NormParams) -> Result<()> {
    let op = call.op;
    let shape = input_desc(call, 0)?.dims_usize();
    let (n, c, s) = geometry(op, &shape, p.axis)?;
    let (nin, nout) = match p.training {
        1 => (3, 3),
        0 => (5, 1),
        t => {
            return Err(BackendError::invalid(format!(
                "{op}: training must be 0 or 1, got {t}"
            )))
        }
    };
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), nin, nout)?;
    let cs = [c];
    // SAFETY: per the caller (every view below).
    let (x, gamma, beta, y) = unsafe {
        (
            input::<T>(call, 0, "x", &shape)?,
            input::<T>(call, 1, "gamma", &cs)?,
            input::<T>(call, 2, "beta", &cs)?,
            out_view::<T>(op, "y", &call.outputs[0], &shape)?,
        )
    };
    // SAFETY: inputs are not written during the call; `y` is a checked
    // contiguous output only touched here.
    let (xs, g, b, ys) = unsafe { (x.contiguous(), gamma.to_vec(), beta.to_vec(), out_slice(&y)) };
    let m = (n * s) as f64;
    let (mean, rstd): (Vec<f64>, Vec<f64>) = if p.training == 1 {
        // SAFETY: as above.
        let (mo, ro) = unsafe {
            (
                out_view::<T>(op, "mean", &call.outputs[1], &cs)?,
                out_view::<T>(op, "rstd", &call.outputs[2], &cs)?,
            )
        };
        let (mean, rstd) = if n * s == 0 {
            (vec![f64::NAN; c], vec![f64::NAN; c])
        } else {
            let mean: Vec<f64> = per_channel(&map_blocks(&xs, s, |_, x| T::sum(x)), c)
                .iter()
                .map(|v| v / m)
                .collect();
            let sq = per_channel(&map_blocks(&xs, s, |i, x| T::sq_dev(x, mean[i % c])), c);
            let rstd = sq.iter().map(|v| 1.0 / (v / m + p.eps).sqrt()).collect();
            (mean, rstd)
        };
        // SAFETY: checked contiguous outputs only touched here.
        let (ms, rs) = unsafe { (out_slice(&mo), out_slice(&ro)) };
        for k in 0..c {
            (ms[k], rs[k]) = (T::from_f64(mean[k]), T::from_f64(rstd[k]));
        }
        (mean, rstd)
    } else {
        // SAFETY: as above.
        let (rm, rv) = unsafe {
            (
                input::<T>(call, 3, "running_mean", &cs)?,
                input::<T>(call, 4, "running_var", &cs)?,
            )
        };
        // SAFETY: inputs are not written during the call.
        let (rm, rv) = unsafe { (rm.to_vec(), rv.to_vec()) };
        (
            rm.iter().map(|v| v.to_f64()).collect(),
            rv.iter()
                .map(|v| 1.0 / (v.to_f64() + p.eps).sqrt())
                .collect(),
        )
    };
    if n * s == 0 {
        return Ok(());
    }
    let a: Vec<f64> = (0..c).map(|k| rstd[k] * g[k].to_f64()).collect();
    let sh: Vec<f64> = (0..c).map(|k| b[k].to_f64() - mean[k] * a[k]).collect();
    write_blocks(ys, s, |i, yb| {
        T::scale_shift(&xs[i * s..(i + 1) * s], yb, a[i % c], sh[i % c])
    });
    Ok(())
}

/// `batch_norm_backward` from batch statistics. With `xh = (x - mean) *
/// rstd` and `M = N * S` per channel: `dbeta = sum dy`, `dgamma = sum dy *
/// xh`, `dx = gamma * rstd / M * (M * dy - dbeta - xh * dgamma)`.
///
/// # Safety
/// As `norm::execute`.
pub(super) unsafe fn backward<T: NormElem>(call: &OpCall<'_>, p: &NormParams) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 5, 3)?;
    let shape = call.inputs[0].dims_usize();
    let (n, c, s) = geometry(op, &shape, p.axis)?;
    let cs = [c];
    // SAFETY: per the caller (every view below).
    let (x, gamma, mean, rstd, dy, dx, dg, db) = unsafe {
        (
            input::<T>(call, 0, "x", &shape)?,
            input::<T>(call, 1, "gamma", &cs)?,
            input::<T>(call, 2, "mean", &cs)?,
            input::<T>(call, 3, "rstd", &cs)?,
            input::<T>(call, 4, "dy", &shape)?,
            out_view::<T>(op, "dx", &call.outputs[0], &shape)?,
            out_view::<T>(op, "dgamma", &call.outputs[1], &cs)?,
            out_view::<T>(op, "dbeta", &call.outputs[2], &cs)?,
        )
    };
    // SAFETY: inputs are not written during the call; outputs are checked
    // contiguous, distinct, and only touched here.
    let (xs, gs, g, mu, rs, dxs, dgs, dbs) = unsafe {
        (
            x.contiguous(),
            dy.contiguous(),
            gamma.to_vec(),
            mean.to_vec(),
            rstd.to_vec(),
            out_slice(&dx),
            out_slice(&dg),
            out_slice(&db),
        )
    };
    if n * s * c == 0 {
        dgs.fill(T::from_f64(0.0));
        dbs.fill(T::from_f64(0.0));
        return Ok(());
    }
    // The tier in use (any tier gives the same results).
    let k = BwdKernels::<T>::for_tier(crate::isa::tier());
    let b = Blocks {
        xs: &xs,
        gs: &gs,
        s,
        c,
    };
    let stats: Vec<(f64, f64)> = (0..c).map(|k| (mu[k].to_f64(), rs[k].to_f64())).collect();
    // Blocks per piece on the pool; each block is computed alone, so the
    // split does not change results.
    let (par, per) = (threads::split(xs.len()), (n * c).div_ceil(64));
    let mut sums = vec![(0f64, 0f64); n * c];
    if par {
        threads::install(|| {
            sums.par_chunks_mut(per).enumerate().for_each(|(j, o)| {
                // SAFETY: `k` holds kernels for a tier this CPU runs.
                unsafe { (k.sums)(b, &stats, j * per, o) }
            })
        });
    } else {
        // SAFETY: as above.
        unsafe { (k.sums)(b, &stats, 0, &mut sums) }
    }
    let sb = per_channel(&sums.iter().map(|v| v.0).collect::<Vec<_>>(), c);
    let sg = per_channel(&sums.iter().map(|v| v.1).collect::<Vec<_>>(), c);
    for k in 0..c {
        (dgs[k], dbs[k]) = (T::from_f64(sg[k]), T::from_f64(sb[k]));
    }
    let m = (n * s) as f64;
    let terms: Vec<DxTerms> = (0..c)
        .map(|j| DxTerms {
            mean: stats[j].0,
            rstd: stats[j].1,
            scale: g[j].to_f64() * stats[j].1 / m,
            m,
            dbeta: sb[j],
            dgamma: sg[j],
        })
        .collect();
    if par {
        threads::install(|| {
            dxs.par_chunks_mut(per * s).enumerate().for_each(|(j, o)| {
                // SAFETY: as above.
                unsafe { (k.dx)(b, &terms, j * per, o) }
            })
        });
    } else {
        // SAFETY: as above.
        unsafe { (k.dx)(b, &terms, 0, dxs) }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{available_tiers, Isa};
    use crate::testing::Rng;

    /// Sums and `dx` of every block, through the kernels of `isa`.
    fn run_tier<T: NormElem>(isa: Isa, b: Blocks<'_, T>, stats: &[(f64, f64)]) -> Vec<u64> {
        let k = BwdKernels::<T>::for_tier(isa);
        let blocks = b.xs.len() / b.s;
        let mut sums = vec![(0f64, 0f64); blocks];
        let mut dx = vec![T::from_f64(0.0); b.xs.len()];
        let terms: Vec<DxTerms> = stats
            .iter()
            .map(|&(mean, rstd)| DxTerms {
                mean,
                rstd,
                scale: 0.7 * rstd,
                m: 3.0,
                dbeta: 0.25,
                dgamma: -1.5,
            })
            .collect();
        // SAFETY: `available_tiers` lists tiers this CPU runs.
        unsafe {
            (k.sums)(b, stats, 0, &mut sums[..blocks / 2]);
            (k.sums)(b, stats, blocks / 2, &mut sums[blocks / 2..]);
            (k.dx)(b, &terms, 0, &mut dx);
        }
        let mut bits: Vec<u64> = sums
            .iter()
            .flat_map(|&(a, c)| [a.to_bits(), c.to_bits()])
            .collect();
        bits.extend(dx.iter().map(|v| v.to_f64().to_bits()));
        bits
    }

    fn tiers_agree<T: NormElem>() {
        let mut rng = Rng::new(9);
        for s in [1, 7, 15, 16, 17, 64, 100, PIECE, PIECE + 5, 3 * PIECE - 1] {
            let c = 3;
            let len = 4 * c * s;
            let (xs, gs): (Vec<T>, Vec<T>) = (rng.vec(len, -3.0, 3.0), rng.vec(len, -1.0, 1.0));
            let stats: Vec<(f64, f64)> = (0..c)
                .map(|_| (rng.uniform(-1.0, 1.0), rng.uniform(0.5, 2.0)))
                .collect();
            let b = Blocks {
                xs: &xs,
                gs: &gs,
                s,
                c,
            };
            let want = run_tier(Isa::Portable, b, &stats);
            for t in available_tiers() {
                assert!(run_tier(t, b, &stats) == want, "tier {t}, block length {s}");
            }
        }
    }

    #[test]
    fn backward_kernels_give_the_same_bits_on_every_tier() {
        tiers_agree::<f32>();
        tiers_agree::<f64>();
    }
}
