//! Shapes and strided layouts: views (reshape, transpose, permute, slice,
//! broadcast) change only the [`Layout`], never the data.

use crate::error::{Error, Result};
use sunrise_backend_api::abi::SR_MAX_RANK;

/// A strided view: element `idx` lives at `offset + sum(idx[k] * strides[k])`
/// (in elements) of the storage. Strides are never negative; 0 broadcasts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Extents.
    pub shape: Vec<usize>,
    /// Steps in elements.
    pub strides: Vec<usize>,
    /// Offset of element 0, in elements.
    pub offset: usize,
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1].max(1);
    }
    s
}

/// Product of extents.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Checks a rank fits the ABI.
pub fn check_rank(op: &'static str, rank: usize) -> Result<()> {
    if rank > SR_MAX_RANK {
        Err(Error::RankTooLarge { op, rank })
    } else {
        Ok(())
    }
}

/// Resolves a possibly negative axis against `rank`.
pub fn normalize_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        Err(Error::AxisOutOfRange { op, axis, rank })
    } else {
        Ok(a as usize)
    }
}

/// The NumPy broadcast of two shapes.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for k in 0..rank {
        let da = if k + a.len() >= rank {
            a[k + a.len() - rank]
        } else {
            1
        };
        let db = if k + b.len() >= rank {
            b[k + b.len() - rank]
        } else {
            1
        };
        out[k] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::Broadcast {
                    op,
                    lhs: a.to_vec(),
                    rhs: b.to_vec(),
                })
            }
        };
    }
    check_rank(op, rank)?;
    Ok(out)
}

impl Layout {
    /// The channels-last layout of a rank-4 `[N, C, H, W]` shape: memory in
    /// `[N, H, W, C]` order, strides `[H W C, 1, W C, C]`.
    pub fn channels_last(shape: &[usize]) -> Option<Layout> {
        let [_, c, h, w] = *shape else { return None };
        Some(Layout {
            shape: shape.to_vec(),
            strides: vec![h * w * c, 1, w * c, c],
            offset: 0,
        })
    }

    /// True for a dense channels-last rank-4 layout (see
    /// [`Layout::channels_last`]; size-1 dims may have any stride).
    pub fn is_channels_last(&self) -> bool {
        let [_, c, h, w] = self.shape[..] else {
            return false;
        };
        let want = [h * w * c, 1, w * c, c];
        (0..4).all(|k| self.shape[k] == 1 || self.strides[k] == want[k])
    }

    /// A contiguous layout of `shape`.
    pub fn contiguous(shape: &[usize]) -> Layout {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Row-major without gaps (size-1 dims may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1;
        for k in (0..self.rank()).rev() {
            if self.shape[k] != 1 && self.strides[k] != expect {
                return false;
            }
            expect *= self.shape[k];
        }
        true
    }

    /// One past the largest element index reached (0 when empty).
    pub fn span(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.offset
            + self
                .shape
                .iter()
                .zip(&self.strides)
                .map(|(&n, &s)| (n - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// This view broadcast to `shape` (NumPy rules), with stride 0 on new
    /// and stretched dims.
    pub fn broadcast_to(&self, op: &'static str, shape: &[usize]) -> Result<Layout> {
        check_rank(op, shape.len())?;
        if shape.len() < self.rank() {
            return Err(Error::Broadcast {
                op,
                lhs: self.shape.clone(),
                rhs: shape.to_vec(),
            });
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for k in 0..self.rank() {
            let (have, want) = (self.shape[k], shape[lead + k]);
            strides[lead + k] = if have == want {
                self.strides[k]
            } else if have == 1 {
                0
            } else {
                return Err(Error::Broadcast {
                    op,
                    lhs: self.shape.clone(),
                    rhs: shape.to_vec(),
                });
            };
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Dims reordered by `perm` (a permutation of `0..rank`).
    pub fn permute(&self, op: &'static str, perm: &[usize]) -> Result<Layout> {
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank() {
            return Err(Error::invalid(
                op,
                format!("permutation {perm:?} for rank {}", self.rank()),
            ));
        }
        for &p in perm {
            if p >= self.rank() || seen[p] {
                return Err(Error::invalid(
                    op,
                    format!("{perm:?} is not a permutation of 0..{}", self.rank()),
                ));
            }
            seen[p] = true;
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// A view of `shape` over the same elements, when the strides allow it
    /// without a copy (`None` when a copy is needed).
    pub fn reshaped(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout {
                shape: shape.to_vec(),
                strides: contiguous_strides(shape),
                offset: self.offset,
            });
        }
        // Split/merge groups of dims that are contiguous relative to each other.
        let old: Vec<(usize, usize)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(&n, _)| n != 1)
            .map(|(&n, &s)| (n, s))
            .collect();
        let mut strides = vec![0; shape.len()];
        let (mut i, mut j) = (0, 0);
        while j < shape.len() {
            if shape[j] == 1 {
                strides[j] = 0;
                j += 1;
                continue;
            }
            // take old dims i.. until their product matches a run of new dims j..
            let (mut po, mut pn) = (old.get(i)?.0, shape[j]);
            let (i0, j0) = (i, j);
            while po != pn {
                if po < pn {
                    i += 1;
                    let (n, s) = *old.get(i)?;
                    if old[i - 1].1 != n * s {
                        return None;
                    }
                    po *= n;
                } else {
                    j += 1;
                    pn *= *shape.get(j)?;
                }
            }
            // the old run i0..=i is one contiguous block with innermost stride old[i].1
            let mut st = old[i].1;
            for k in (j0..=j).rev() {
                if shape[k] == 1 {
                    strides[k] = 0;
                    continue;
                }
                strides[k] = st;
                st *= shape[k];
            }
            let _ = i0;
            i += 1;
            j += 1;
        }
        if i != old.len() {
            return None;
        }
        Some(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        assert_eq!(broadcast_shapes("t", &[3, 1], &[4]).unwrap(), vec![3, 4]);
        assert_eq!(broadcast_shapes("t", &[], &[2, 2]).unwrap(), vec![2, 2]);
        assert!(broadcast_shapes("t", &[3], &[4]).is_err());
        let l = Layout::contiguous(&[3, 1])
            .broadcast_to("t", &[2, 3, 4])
            .unwrap();
        assert_eq!(l.strides, vec![0, 1, 0]);
    }

    #[test]
    fn reshape_views() {
        let l = Layout::contiguous(&[2, 3, 4]);
        let t = l.permute("t", &[1, 0, 2]).unwrap(); // [3,2,4] strides [4,12,1]
        assert!(t.reshaped(&[3, 8]).is_none());
        let r = t.reshaped(&[3, 2, 2, 2]).unwrap();
        assert_eq!(r.strides, vec![4, 12, 2, 1]);
        let m = l.permute("t", &[0, 2, 1]).unwrap(); // [2,4,3] strides [12,1,4]
        assert_eq!(m.reshaped(&[2, 12]), None);
        let s = Layout {
            shape: vec![2, 3],
            strides: vec![8, 1],
            offset: 1,
        };
        assert_eq!(s.reshaped(&[6]), None);
        assert_eq!(s.reshaped(&[2, 1, 3]).unwrap().strides, vec![8, 0, 1]);
        assert_eq!(Layout::contiguous(&[4, 1]).span(), 4);
    }
}
