//! Convolution geometry: the checked sizes every conv kernel shares.

use sunrise_backend_api::ops::Conv2dParams;
use sunrise_backend_api::{BackendError, Result};

/// Largest stride, padding, dilation or group count accepted (keeps every
/// index computation far from overflow).
const PARAM_MAX: i64 = i32::MAX as i64;

/// Validated sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geom {
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Filter height.
    pub r: usize,
    /// Filter width.
    pub s: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Stride (h, w).
    pub stride: [usize; 2],
    /// Padding (h, w).
    pub pad: [usize; 2],
    /// Dilation (h, w).
    pub dil: [usize; 2],
    /// Groups.
    pub groups: usize,
    /// Input channels per group.
    pub cg: usize,
    /// Output channels per group.
    pub kg: usize,
}

/// Output extent `(input + 2 pad - dil (window - 1) - 1) / stride + 1`, or
/// `None` when the dilated window does not fit the padded input.
pub(crate) fn out_extent(
    input: usize,
    window: usize,
    stride: usize,
    pad: usize,
    dil: usize,
) -> Option<usize> {
    let span = dil.checked_mul(window.checked_sub(1)?)?.checked_add(1)?;
    let padded = input.checked_add(pad.checked_mul(2)?)?;
    Some(padded.checked_sub(span)? / stride + 1)
}

fn param(op: &str, what: &str, v: i64, min: i64) -> Result<usize> {
    if v < min || v > PARAM_MAX {
        return Err(BackendError::invalid(format!(
            "{op}: {what} {v} must be in {min}..={PARAM_MAX}"
        )));
    }
    Ok(v as usize)
}

fn rank4(op: &str, what: &str, shape: &[usize]) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(shape).map_err(|_| {
        BackendError::invalid(format!(
            "{op}: {what} must have rank 4, got shape {shape:?}"
        ))
    })
}

/// Stride, padding, dilation and groups, checked.
#[allow(clippy::type_complexity, reason = "the four params of Conv2dParams")]
fn params(op: &str, p: &Conv2dParams) -> Result<([usize; 2], [usize; 2], [usize; 2], usize)> {
    let pair = |what: &str, v: [i64; 2], min: i64| -> Result<[usize; 2]> {
        Ok([param(op, what, v[0], min)?, param(op, what, v[1], min)?])
    };
    Ok((
        pair("stride", p.stride, 1)?,
        pair("padding", p.padding, 0)?,
        pair("dilation", p.dilation, 1)?,
        param(op, "groups", p.groups, 1)?,
    ))
}

impl Geom {
    /// Checks params and the shapes of the image `x` `[N, C, H, W]`, the
    /// weights `w` `[K, C/groups, R, S]` and the output-side tensor `y`
    /// `[N, K, OH, OW]`, whichever of them are the op's inputs or output.
    pub(super) fn new(
        op: &str,
        p: &Conv2dParams,
        x: &[usize],
        w: &[usize],
        y: &[usize],
    ) -> Result<Geom> {
        let [n, c, h, wd] = rank4(op, "the image (x or dx)", x)?;
        let [k, cg, r, s] = rank4(op, "the weights (w or dw)", w)?;
        let [yn, yk, oh, ow] = rank4(op, "the output-side tensor (y or dy)", y)?;
        let (stride, pad, dil, groups) = params(op, p)?;
        if c % groups != 0 || k % groups != 0 {
            return Err(BackendError::invalid(format!(
                "{op}: groups {groups} must divide input channels {c} and output channels {k}"
            )));
        }
        if cg != c / groups || r == 0 || s == 0 {
            return Err(BackendError::invalid(format!(
                "{op}: weights {w:?} must be [K, C/groups = {}, R >= 1, S >= 1]",
                c / groups
            )));
        }
        let want_oh = out_extent(h, r, stride[0], pad[0], dil[0]);
        let want_ow = out_extent(wd, s, stride[1], pad[1], dil[1]);
        let (Some(want_oh), Some(want_ow)) = (want_oh, want_ow) else {
            return Err(BackendError::invalid(format!(
                "{op}: the dilated {r}x{s} window (dilation {dil:?}) does not fit the {h}x{wd} input padded by {pad:?}"
            )));
        };
        if [yn, yk, oh, ow] != [n, k, want_oh, want_ow] {
            return Err(BackendError::invalid(format!(
                "{op}: output-side shape {y:?} must be [N, K, OH, OW] = {:?} for input {x:?}, weights {w:?}, stride {stride:?}, padding {pad:?}, dilation {dil:?}",
                [n, k, want_oh, want_ow]
            )));
        }
        Ok(Geom {
            n,
            c,
            h,
            w: wd,
            k,
            r,
            s,
            oh,
            ow,
            stride,
            pad,
            dil,
            groups,
            cg,
            kg: k / groups,
        })
    }

    /// Multiply-adds of the op (saturating), to decide on threading.
    pub fn work(&self) -> usize {
        [self.k, self.crs(), self.oh, self.ow]
            .iter()
            .fold(self.n, |acc, &d| acc.saturating_mul(d))
    }

    /// Rows of the `im2col` matrix: `C/g R S`.
    pub fn crs(&self) -> usize {
        self.cg * self.r * self.s
    }

    /// True for 1x1, stride 1, no padding: the input planes are the `im2col` matrix.
    pub fn is_pointwise(&self) -> bool {
        self.r == 1 && self.s == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }

    /// The pixel stride of input planes with strides `st` when this is a
    /// pointwise convolution that reads them as its `im2col` matrix.
    pub fn direct_stride(&self, st: &[usize; 4]) -> Option<usize> {
        if self.is_pointwise() {
            plane_stride(self.h, self.w, st[2], st[3])
        } else {
            None
        }
    }

    /// Output rows per `im2col` chunk of at most `bytes`, and the scratch
    /// elements of size `elem` it takes; all rows and none when `direct`
    /// (no `im2col`).
    pub fn col_chunk(&self, bytes: usize, elem: usize, direct: bool) -> (usize, usize) {
        if direct {
            (self.oh, 0)
        } else {
            let rows = self.chunk_rows(bytes, elem);
            (rows, self.crs() * rows * self.ow)
        }
    }

    /// True for depthwise convolutions (`groups == C == K`).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.c && self.c == self.k
    }

    /// Output rows per `im2col` chunk so the buffer stays under `bytes`.
    pub fn chunk_rows(&self, bytes: usize, elem: usize) -> usize {
        let per_row = (self.crs() * self.ow * elem).max(1);
        (bytes / per_row).clamp(1, self.oh.max(1))
    }

    /// Calls `f(y, x, w)` with the dense NCHW output, input and `[K, C/g,
    /// R, S]` weight indices of every multiply-add of the convolution whose
    /// input tap lies inside the image: the naive reference of the tests.
    #[cfg(test)]
    pub fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = (self.oh, self.ow);
        for y in 0..self.n * self.k * oh * ow {
            let (n, k) = (y / (self.k * oh * ow), y / (oh * ow) % self.k);
            let (i, j) = (y / ow % oh, y % ow);
            let c0 = k / self.kg * self.cg;
            for (cc, r, s) in (0..self.cg * self.r * self.s)
                .map(|t| (t / (self.r * self.s), t / self.s % self.r, t % self.s))
            {
                let ih = (i * self.stride[0]) as isize + self.tap(0, r);
                let iw = (j * self.stride[1]) as isize + self.tap(1, s);
                if (0..self.h as isize).contains(&ih) && (0..self.w as isize).contains(&iw) {
                    let x = ((n * self.c + c0 + cc) * self.h + ih as usize) * self.w + iw as usize;
                    f(y, x, ((k * self.cg + cc) * self.r + r) * self.s + s);
                }
            }
        }
    }

    /// Input offset of filter tap `t` along an axis (`t dil - pad`).
    pub fn tap(&self, axis: usize, t: usize) -> isize {
        (t * self.dil[axis]) as isize - self.pad[axis] as isize
    }
}

/// Output positions `o < count` whose input `o stride + off` lies in
/// `0..len`, as a half-open range.
pub(super) fn valid_range(count: usize, stride: usize, off: isize, len: usize) -> (usize, usize) {
    let lo = if off >= 0 {
        0
    } else {
        off.unsigned_abs().div_ceil(stride)
    };
    let hi = if off >= len as isize {
        0
    } else {
        ((len as isize - off) as usize).div_ceil(stride)
    };
    let lo = lo.min(count);
    (lo, hi.clamp(lo, count))
}

/// The stride between consecutive pixels of a plane `[h, w]` with strides
/// `(sh, sw)` read as one row of `h w` elements, if it is uniform.
pub(super) fn plane_stride(h: usize, w: usize, sh: usize, sw: usize) -> Option<usize> {
    if w == 1 {
        Some(sh)
    } else if h == 1 || sh == w * sw {
        Some(sw)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_matches_brute_force() {
        for count in 0..7 {
            for stride in 1..4 {
                for off in -6isize..6 {
                    for len in 0..6 {
                        let ok: Vec<usize> = (0..count)
                            .filter(|&o| {
                                (0..len as isize).contains(&(o as isize * stride as isize + off))
                            })
                            .collect();
                        let (lo, hi) = valid_range(count, stride, off, len);
                        assert_eq!(
                            (lo..hi).collect::<Vec<_>>(),
                            ok,
                            "{count} {stride} {off} {len}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn out_extent_formula() {
        assert_eq!(out_extent(5, 3, 1, 1, 1), Some(5));
        assert_eq!(out_extent(7, 3, 2, 0, 2), Some(2));
        assert_eq!(out_extent(2, 3, 1, 0, 1), None);
        assert_eq!(out_extent(4, 1, 3, 0, 1), Some(2));
    }
}
