//! Typed, checked views of tensor descriptors, and strided iteration.

use std::marker::PhantomData;

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{BackendError, Result};

use crate::element::Element;
use crate::storage::checked_base;

/// A typed strided view of one descriptor, valid for one `execute` call.
#[derive(Debug, Clone)]
pub struct View<T> {
    /// Address of element 0.
    pub ptr: *mut T,
    /// Extents.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub strides: Vec<usize>,
    _t: PhantomData<T>,
}

// SAFETY: a view is a raw window into a buffer; the kernels that share one
// across threads write disjoint elements.
unsafe impl<T: Send> Send for View<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for View<T> {}

impl<T: Element> View<T> {
    /// Checks `d` (dtype `T`, bounds inside its buffer) and views it.
    ///
    /// # Safety
    /// `d` names a live buffer of this backend, and the view is not used
    /// after the `execute` call it was made for.
    pub unsafe fn new(d: &SrTensorDesc) -> Result<Self> {
        if d.dtype != T::DTYPE as u32 {
            return Err(BackendError::invalid(format!(
                "expected dtype {}, got {}",
                T::DTYPE,
                d.dtype().map_or("unknown", |t| t.name())
            )));
        }
        // SAFETY: per the caller.
        let base = unsafe { checked_base(d) }?;
        Ok(View {
            ptr: base as *mut T,
            shape: d.dims_usize(),
            strides: d.steps().iter().map(|&s| s as usize).collect(),
            _t: PhantomData,
        })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Row-major without gaps?
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1;
        for k in (0..self.shape.len()).rev() {
            if self.shape[k] != 1 && self.strides[k] != expect {
                return false;
            }
            expect *= self.shape[k];
        }
        true
    }

    /// The elements as a slice when contiguous.
    ///
    /// # Safety
    /// Nothing writes the viewed elements while the slice lives.
    pub unsafe fn as_slice<'a>(&self) -> Option<&'a [T]> {
        // SAFETY: contiguous views span exactly numel elements from ptr,
        // inside the buffer (checked in `new`).
        self.is_contiguous()
            .then(|| unsafe { std::slice::from_raw_parts(self.ptr, self.numel()) })
    }

    /// The elements as a mutable slice when contiguous.
    ///
    /// # Safety
    /// Nothing else reads or writes the viewed elements while the slice lives.
    pub unsafe fn as_mut_slice<'a>(&self) -> Option<&'a mut [T]> {
        // SAFETY: as `as_slice`, exclusive per the caller.
        self.is_contiguous()
            .then(|| unsafe { std::slice::from_raw_parts_mut(self.ptr, self.numel()) })
    }

    /// A contiguous row-major copy of the elements.
    ///
    /// # Safety
    /// Nothing writes the viewed elements meanwhile.
    pub unsafe fn to_vec(&self) -> Vec<T> {
        // SAFETY: per the caller.
        if let Some(s) = unsafe { self.as_slice() } {
            return s.to_vec();
        }
        // SAFETY: per the caller.
        if let Some(v) = unsafe { self.channels_last_f32_to_vec() } {
            return v;
        }
        let mut out = Vec::with_capacity(self.numel());
        for_each_offset(&self.shape, &self.strides, |off| {
            // SAFETY: offsets from in-bounds indices stay inside the view.
            out.push(unsafe { *self.ptr.add(off) });
        });
        out
    }

    /// [`Self::to_vec`] of a dense channels-last f32 image batch (`[N, C,
    /// H, W]` stored as `[N, H, W, C]`, as convolutions write it), one
    /// tiered transpose per image: element by element, the copy took as
    /// long as a batch norm of a 3x32x32 CNN's channels-last activations.
    ///
    /// # Safety
    /// As [`Self::to_vec`].
    unsafe fn channels_last_f32_to_vec(&self) -> Option<Vec<T>> {
        let [n, c, h, w] = self.shape[..] else {
            return None;
        };
        if std::any::TypeId::of::<T>() != std::any::TypeId::of::<f32>()
            || self.strides != [h * w * c, 1, w * c, c]
            || c < 2
        {
            return None;
        }
        let mut out = vec![T::default(); self.numel()];
        let transpose = crate::transpose::f32();
        for i in 0..n {
            // SAFETY: T is f32; image i is `[H W, C]` in the view and
            // `[C, H W]` in `out`.
            unsafe {
                transpose(
                    self.ptr.add(i * h * w * c).cast(),
                    c,
                    out.as_mut_ptr().add(i * c * h * w).cast(),
                    h * w,
                    (h * w, c),
                    None,
                )
            };
        }
        Some(out)
    }

    /// The contiguous elements, borrowed when already contiguous, else copied.
    ///
    /// # Safety
    /// Nothing writes the viewed elements meanwhile.
    pub unsafe fn contiguous<'a>(&self) -> std::borrow::Cow<'a, [T]> {
        // SAFETY: per the caller.
        match unsafe { self.as_slice() } {
            Some(s) => std::borrow::Cow::Borrowed(s),
            // SAFETY: per the caller.
            None => std::borrow::Cow::Owned(unsafe { self.to_vec() }),
        }
    }

    /// Writes `src` (row-major, `numel` long) into the view.
    ///
    /// # Safety
    /// Nothing else touches the viewed elements meanwhile.
    pub unsafe fn scatter(&self, src: &[T]) {
        debug_assert_eq!(src.len(), self.numel());
        let mut i = 0;
        for_each_offset(&self.shape, &self.strides, |off| {
            // SAFETY: in-bounds offsets; exclusive per the caller.
            unsafe { *self.ptr.add(off) = src[i] };
            i += 1;
        });
    }
}

/// Calls `f` with the element offset of every index of `shape`, row-major.
pub fn for_each_offset(shape: &[usize], strides: &[usize], mut f: impl FnMut(usize)) {
    if shape.contains(&0) {
        return;
    }
    let rank = shape.len();
    if rank == 0 {
        f(0);
        return;
    }
    let mut idx = vec![0usize; rank];
    let mut off = 0usize;
    let (inner_n, inner_s) = (shape[rank - 1], strides[rank - 1]);
    loop {
        for i in 0..inner_n {
            f(off + i * inner_s);
        }
        // advance the outer index
        let mut k = rank - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            off += strides[k];
            if idx[k] < shape[k] {
                break;
            }
            off -= strides[k] * shape[k];
            idx[k] = 0;
        }
    }
}

/// Checks an op got the number of inputs and outputs it needs.
pub fn check_arity(
    op: &str,
    inputs: usize,
    outputs: usize,
    need_in: usize,
    need_out: usize,
) -> Result<()> {
    if inputs != need_in || outputs != need_out {
        return Err(BackendError::invalid(format!(
            "{op}: expected {need_in} inputs and {need_out} outputs, got {inputs} and {outputs}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_row_major() {
        let mut v = vec![];
        for_each_offset(&[2, 3], &[1, 2], |o| v.push(o));
        assert_eq!(v, [0, 2, 4, 1, 3, 5]);
        let mut v = vec![];
        for_each_offset(&[], &[], |o| v.push(o));
        assert_eq!(v, [0]);
        let mut v = vec![];
        for_each_offset(&[2, 0], &[1, 1], |o| v.push(o));
        assert!(v.is_empty());
    }

    #[test]
    fn channels_last_to_vec_is_the_row_major_copy() {
        // Odd sizes: the transpose's 8x8 blocks and its edges.
        for (n, c, h, w) in [(2, 3, 5, 7), (1, 16, 4, 4), (3, 9, 3, 11), (2, 1, 3, 3)] {
            let mem: Vec<f32> = (0..n * c * h * w).map(|i| i as f32 * 0.25 - 7.0).collect();
            let strides = vec![h * w * c, 1, w * c, c];
            let view = View {
                ptr: mem.as_ptr().cast_mut(),
                shape: vec![n, c, h, w],
                strides: strides.clone(),
                _t: PhantomData,
            };
            let mut want = Vec::new();
            for_each_offset(&view.shape, &strides, |o| want.push(mem[o]));
            // SAFETY: the view covers `mem`, which nothing writes.
            assert_eq!(unsafe { view.to_vec() }, want, "{n}x{c}x{h}x{w}");
        }
    }
}
