//! [`Tensor`]: shared storage plus a strided layout. Views (reshape,
//! transpose, permute, slice, broadcast/expand) share the storage; ops
//! allocate fresh contiguous outputs. A tensor that takes part in autograd
//! carries a handle to its graph node (see [`crate::autograd`]); clones
//! share it, views record their own.

use std::sync::Arc;

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{DType, OpId, Params};

use crate::autograd::{grad_fns, Node};
use crate::device::Device;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::shape::{check_rank, normalize_axis, numel, Layout};
use crate::storage::Storage;

/// An n-dimensional array on a device.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
    dtype: DType,
    /// The autograd node: a leaf that requires grad, or the op that made
    /// this tensor. `None` for tensors outside any graph.
    node: Option<Arc<Node>>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({}{:?} on {})",
            self.dtype,
            self.layout.shape,
            self.storage.device()
        )
    }
}

impl Tensor {
    /// A contiguous tensor whose contents are unspecified (ops overwrite them).
    pub(crate) fn alloc(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        check_rank("alloc", shape.len())?;
        let bytes = numel(shape)
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::invalid("alloc", format!("shape {shape:?} is too large")))?;
        Ok(Tensor {
            storage: Arc::new(Storage::alloc(device, bytes)?),
            layout: Layout::contiguous(shape),
            dtype,
            node: None,
        })
    }

    /// [`Tensor::alloc`] in channels-last memory (see
    /// [`Layout::channels_last`]) when `channels_last` and `shape` has rank 4.
    pub(crate) fn alloc_format(
        shape: &[usize],
        dtype: DType,
        device: &Device,
        channels_last: bool,
    ) -> Result<Tensor> {
        let t = Tensor::alloc(shape, dtype, device)?;
        match Layout::channels_last(shape) {
            Some(l) if channels_last => Ok(t.with_layout(l)),
            _ => Ok(t),
        }
    }

    /// A tensor holding `data` (row-major) with `shape`, on `device`.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize], device: &Device) -> Result<Tensor> {
        let n = numel(shape);
        if data.len() != n {
            return Err(Error::DataLength {
                op: "from_slice",
                len: data.len(),
                shape: shape.to_vec(),
                numel: n,
            });
        }
        let t = Tensor::alloc(shape, T::DTYPE, device)?;
        t.storage.write(0, T::as_bytes(data))?;
        Ok(t)
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar<T: Element>(value: T, device: &Device) -> Result<Tensor> {
        Tensor::from_slice(&[value], &[], device)
    }

    /// A 1-D tensor from a vector.
    pub fn from_vec<T: Element>(data: Vec<T>, device: &Device) -> Result<Tensor> {
        let n = data.len();
        Tensor::from_slice(&data, &[n], device)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// The strides, in elements.
    pub fn strides(&self) -> &[usize] {
        &self.layout.strides
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Number of dims.
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device.
    pub fn device(&self) -> &Device {
        self.storage.device()
    }

    /// Row-major without gaps?
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// True for a rank-4 `[N, C, H, W]` tensor stored channels-last, in
    /// `[N, H, W, C]` order (see [`Tensor::to_channels_last`]).
    pub fn is_channels_last(&self) -> bool {
        self.layout.is_channels_last() && !self.layout.is_contiguous()
    }

    /// True when both tensors view the same storage.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// The ABI descriptor of this view.
    pub(crate) fn desc(&self) -> SrTensorDesc {
        SrTensorDesc::new(
            self.dtype,
            &self.layout.shape,
            &self.layout.strides,
            self.storage.handle(),
            self.layout.offset * self.dtype.size(),
        )
    }

    /// The same storage under another layout (already validated), outside
    /// any autograd graph.
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
            node: None,
        }
    }

    /// The autograd node, if this tensor is part of a graph.
    pub(crate) fn node(&self) -> Option<&Arc<Node>> {
        self.node.as_ref()
    }

    /// This tensor with its autograd node replaced.
    pub(crate) fn with_node(mut self, node: Option<Arc<Node>>) -> Tensor {
        self.node = node;
        self
    }

    /// True when this handle is the only one on its storage and covers all
    /// of it, contiguously: nobody else can observe an in-place write.
    pub(crate) fn owns_storage(&self) -> bool {
        Arc::strong_count(&self.storage) == 1
            && self.is_contiguous()
            && self.layout.offset == 0
            && self.numel() * self.dtype.size() == self.storage.bytes()
    }

    /// Errors unless the dtype is `want`.
    pub(crate) fn expect_dtype(&self, op: &'static str, want: DType) -> Result<()> {
        if self.dtype == want {
            Ok(())
        } else {
            Err(Error::DType {
                op,
                expected: want.name().into(),
                got: self.dtype,
            })
        }
    }

    /// Errors unless the dtype is f32 or f64.
    pub(crate) fn expect_float(&self, op: &'static str) -> Result<()> {
        if self.dtype.is_float() {
            Ok(())
        } else {
            Err(Error::DType {
                op,
                expected: "f32 or f64".into(),
                got: self.dtype,
            })
        }
    }

    // ----- views -----

    /// A view with another shape over the same elements; copies only when
    /// the strides make a view impossible. One extent may be `usize::MAX`
    /// meaning "infer".
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let out = self.reshape_untracked(shape)?;
        Ok(grad_fns::reshape(self, out))
    }

    /// [`Tensor::reshape`] without recording autograd history.
    pub(crate) fn reshape_untracked(&self, shape: &[usize]) -> Result<Tensor> {
        let shape = self.infer_shape(shape)?;
        check_rank("reshape", shape.len())?;
        match self.layout.reshaped(&shape) {
            Some(l) => Ok(self.with_layout(l)),
            None => Ok(self
                .contiguous_untracked()?
                .with_layout(Layout::contiguous(&shape))),
        }
    }

    fn infer_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let unknown = shape.iter().filter(|&&d| d == usize::MAX).count();
        let known: usize = shape.iter().filter(|&&d| d != usize::MAX).product();
        let n = self.numel();
        let out: Vec<usize> = match unknown {
            0 => shape.to_vec(),
            1 if known > 0 && n.is_multiple_of(known) => shape
                .iter()
                .map(|&d| if d == usize::MAX { n / known } else { d })
                .collect(),
            _ => {
                return Err(Error::shape(
                    "reshape",
                    format!("cannot infer {shape:?} for {n} elements"),
                ))
            }
        };
        if numel(&out) != n {
            return Err(Error::shape(
                "reshape",
                format!("{:?} ({n} elements) cannot become {out:?}", self.shape()),
            ));
        }
        Ok(out)
    }

    /// Flattens to 1-D.
    pub fn flatten(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])
    }

    /// Dims reordered by `perm`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let out = self.with_layout(self.layout.permute("permute", perm)?);
        Ok(grad_fns::permute(self, perm, out))
    }

    /// Swaps two dims (negative axes count from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let r = self.rank();
        let (a, b) = (
            normalize_axis("transpose", a, r)?,
            normalize_axis("transpose", b, r)?,
        );
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of the last two dims.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::invalid(
                "t",
                format!("needs rank >= 2, got {}", self.rank()),
            ));
        }
        self.transpose(-2, -1)
    }

    /// Elements `start..end` stepping `step` along `axis`, as a view.
    pub fn slice(&self, axis: isize, start: usize, end: usize, step: usize) -> Result<Tensor> {
        let a = normalize_axis("slice", axis, self.rank())?;
        let n = self.shape()[a];
        if step == 0 || start > end || end > n {
            return Err(Error::invalid(
                "slice",
                format!("range {start}..{end} step {step} on a dimension of size {n}"),
            ));
        }
        let mut l = self.layout.clone();
        l.offset += start * l.strides[a];
        l.shape[a] = (end - start).div_ceil(step);
        l.strides[a] *= step;
        Ok(grad_fns::slice(
            self,
            a,
            start,
            end,
            step,
            self.with_layout(l),
        ))
    }

    /// `len` elements from `start` along `axis`, as a view.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        self.slice(axis, start, start.saturating_add(len), 1)
    }

    /// Broadcasts to `shape` (NumPy rules) without copying.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        let out = self.broadcast_untracked(shape)?;
        Ok(grad_fns::broadcast(self, out))
    }

    /// [`Tensor::broadcast_to`] without recording autograd history.
    pub(crate) fn broadcast_untracked(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.broadcast_to("broadcast_to", shape)?))
    }

    /// Same as [`Tensor::broadcast_to`] (PyTorch's name).
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        self.broadcast_to(shape)
    }

    /// Inserts a dim of extent 1 at `axis` (`-rank-1..=rank`).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let out = self.unsqueeze_untracked(axis)?;
        Ok(grad_fns::reshape(self, out))
    }

    /// [`Tensor::unsqueeze`] without recording autograd history.
    pub(crate) fn unsqueeze_untracked(&self, axis: isize) -> Result<Tensor> {
        let a = normalize_axis("unsqueeze", axis, self.rank() + 1)?;
        check_rank("unsqueeze", self.rank() + 1)?;
        let mut l = self.layout.clone();
        let st = l.strides.get(a).map_or(1, |&s| s * l.shape[a]);
        l.shape.insert(a, 1);
        l.strides.insert(a, st);
        Ok(self.with_layout(l))
    }

    /// Removes a dim of extent 1.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = normalize_axis("squeeze", axis, self.rank())?;
        if self.shape()[a] != 1 {
            return Err(Error::invalid(
                "squeeze",
                format!("dimension {a} has size {}, not 1", self.shape()[a]),
            ));
        }
        let mut l = self.layout.clone();
        l.shape.remove(a);
        l.strides.remove(a);
        Ok(grad_fns::reshape(self, self.with_layout(l)))
    }

    // ----- host transfer -----

    /// Copies the elements, row-major, to the host.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.expect_dtype("to_vec", T::DTYPE)?;
        let c = self.contiguous_untracked()?;
        let mut out = vec![T::default(); c.numel()];
        c.storage
            .read(c.layout.offset * T::DTYPE.size(), T::as_bytes_mut(&mut out))?;
        Ok(out)
    }

    /// The one element of a tensor with one element, as f64.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "item",
                format!("tensor has {} elements, not 1", self.numel()),
            ));
        }
        Ok(match self.dtype {
            DType::F32 => self.to_vec::<f32>()?[0] as f64,
            DType::F64 => self.to_vec::<f64>()?[0],
            DType::I64 => self.to_vec::<i64>()?[0] as f64,
            DType::U8 => self.to_vec::<u8>()?[0] as f64,
        })
    }

    /// A copy on `device` (this tensor itself when already there).
    /// Differentiable: the gradient moves back to this tensor's device.
    pub fn to(&self, device: &Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let out = self.to_untracked(device)?;
        Ok(grad_fns::to_device(self, out))
    }

    /// [`Tensor::to`] without recording autograd history.
    pub(crate) fn to_untracked(&self, device: &Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let src = if self.is_contiguous()
            || self
                .device()
                .supports(sunrise_backend_api::OpId::Copy, self.dtype)
        {
            self.contiguous_untracked()?
        } else {
            // The source backend cannot gather: bring the spanned bytes to
            // the CPU as they are and gather there.
            let (_, view) = self.span_on_cpu()?;
            view.contiguous_untracked()?
        };
        let bytes = src.raw_bytes()?;
        let t = Tensor::alloc(self.shape(), self.dtype, device)?;
        t.storage.write(0, &bytes)?;
        Ok(t)
    }

    /// The part of this view's storage it reaches (from its first element
    /// to one past its last), copied to the CPU as it is: the copy, and
    /// this view's layout over it.
    fn span_on_cpu(&self) -> Result<(Tensor, Tensor)> {
        let size = self.dtype.size();
        let start = self.layout.offset;
        let len = self.layout.span().saturating_sub(start);
        let mut bytes = vec![0u8; len * size];
        self.storage.read(start * size, &mut bytes)?;
        let window = Tensor::alloc(&[len], self.dtype, &Device::cpu())?;
        window.storage.write(0, &bytes)?;
        let mut layout = self.layout.clone();
        layout.offset = 0;
        let view = window.with_layout(layout);
        Ok((window, view))
    }

    /// Writes `src` into this (strided) view without its device's `copy`:
    /// the span of storage the view reaches is read to the host, the CPU
    /// backend copies the elements into it there, and the span is written
    /// back (the elements between the view's are written back unchanged).
    pub(crate) fn scatter_via_host(&self, src: &Tensor) -> Result<()> {
        if self.numel() == 0 {
            return Ok(());
        }
        let (window, view) = self.span_on_cpu()?;
        let src = src.to_untracked(window.device())?;
        crate::ops::execute_on(window.device(), OpId::Copy, Params::None, &[&src], &[&view])?;
        let bytes = window.raw_bytes()?;
        self.storage
            .write(self.layout.offset * self.dtype.size(), &bytes)
    }

    /// The bytes of a contiguous tensor.
    pub(crate) fn raw_bytes(&self) -> Result<Vec<u8>> {
        debug_assert!(self.is_contiguous());
        let mut bytes = vec![0u8; self.numel() * self.dtype.size()];
        self.storage
            .read(self.layout.offset * self.dtype.size(), &mut bytes)?;
        Ok(bytes)
    }

    /// Overwrites the elements of a contiguous tensor with raw bytes.
    pub(crate) fn write_raw_bytes(&self, bytes: &[u8]) -> Result<()> {
        debug_assert!(self.is_contiguous() && bytes.len() == self.numel() * self.dtype.size());
        self.storage
            .write(self.layout.offset * self.dtype.size(), bytes)
    }

    /// A tensor from an `ndarray` array.
    pub fn from_ndarray<T: Element, S, D>(
        a: &ndarray::ArrayBase<S, D>,
        device: &Device,
    ) -> Result<Tensor>
    where
        S: ndarray::Data<Elem = T>,
        D: ndarray::Dimension,
    {
        let data: Vec<T> = a.iter().copied().collect();
        Tensor::from_slice(&data, a.shape(), device)
    }

    /// The elements as an `ndarray` array on the host.
    pub fn to_ndarray<T: Element>(&self) -> Result<ndarray::ArrayD<T>> {
        let v = self.to_vec::<T>()?;
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(self.shape()), v)
            .map_err(|e| Error::invalid("to_ndarray", e.to_string()))
    }

    /// Normalises an axis against this tensor's rank.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        normalize_axis(op, axis, self.rank())
    }
}
