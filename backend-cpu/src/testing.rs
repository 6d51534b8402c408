//! Helpers for tests and benches that drive kernels through the backend's
//! own buffers: build tensors from host data, run an op, read results.
//! Not part of the stable API.

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{Backend, BufferHandle, OpCall, OpId, Params, Result};

use crate::element::Element;
use crate::CpuBackend;

/// A tensor in a CPU buffer, freed on drop.
#[derive(Debug)]
pub struct HostTensor {
    /// The buffer.
    pub buffer: BufferHandle,
    /// The view of it the op sees.
    pub desc: SrTensorDesc,
    bytes: usize,
}

impl HostTensor {
    /// A contiguous tensor holding `data` in row-major order.
    pub fn new<T: Element>(data: &[T], shape: &[usize]) -> HostTensor {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "data does not fill the shape"
        );
        Self::strided(data, shape, &contiguous_strides(shape), 0)
    }

    /// A view with explicit element strides and offset over `backing`.
    pub fn strided<T: Element>(
        backing: &[T],
        shape: &[usize],
        strides: &[usize],
        offset: usize,
    ) -> HostTensor {
        let bytes = std::mem::size_of_val(backing);
        let buffer = CpuBackend::new().alloc(0, bytes).expect("host allocation");
        // SAFETY: reinterpreting plain numbers as bytes.
        let raw = unsafe { std::slice::from_raw_parts(backing.as_ptr() as *const u8, bytes) };
        // SAFETY: fresh buffer of `bytes` bytes.
        unsafe { CpuBackend::new().write(buffer, 0, raw) }.expect("write");
        let desc = SrTensorDesc::new(
            T::DTYPE,
            shape,
            strides,
            buffer,
            offset * std::mem::size_of::<T>(),
        );
        HostTensor {
            buffer,
            desc,
            bytes,
        }
    }

    /// A zero-filled contiguous tensor.
    pub fn zeros<T: Element>(shape: &[usize]) -> HostTensor {
        let n = shape.iter().product::<usize>();
        Self::new(&vec![T::default(); n], shape)
    }

    /// The viewed elements in row-major order.
    pub fn read<T: Element>(&self) -> Vec<T> {
        assert_eq!(
            self.desc.dtype,
            T::DTYPE as u32,
            "read with the wrong dtype"
        );
        // SAFETY: a live buffer of this backend, nothing writes it meanwhile.
        let v = unsafe { crate::strided::View::<T>::new(&self.desc) }.expect("valid view");
        // SAFETY: as above.
        unsafe { v.to_vec() }
    }

    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.desc.dims_usize()
    }
}

impl Drop for HostTensor {
    fn drop(&mut self) {
        let _ = self.bytes;
        // SAFETY: allocated in `strided`, freed once.
        unsafe { CpuBackend::new().free(self.buffer) };
    }
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// Runs `op` on the CPU backend.
pub fn run(
    op: OpId,
    params: Params,
    inputs: &[&HostTensor],
    outputs: &[&HostTensor],
) -> Result<()> {
    let ins: Vec<SrTensorDesc> = inputs.iter().map(|t| t.desc).collect();
    let outs: Vec<SrTensorDesc> = outputs.iter().map(|t| t.desc).collect();
    let call = OpCall {
        op,
        params,
        inputs: &ins,
        outputs: &outs,
    };
    // SAFETY: every descriptor views a live HostTensor buffer.
    unsafe { CpuBackend::new().execute(0, &call) }
}

/// A small deterministic generator (xorshift64*) for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// `n` uniform values in `[lo, hi)` converted to `T`.
    pub fn vec<T: Element>(&mut self, n: usize, lo: f64, hi: f64) -> Vec<T> {
        (0..n).map(|_| T::from_f64(self.uniform(lo, hi))).collect()
    }
}

/// `data` (row-major, `shape`) in one of three layouts: contiguous (0),
/// transposed, i.e. dims reversed in memory (1), or contiguous with a gap
/// after every element (2). Gaps hold 99 so a kernel that reads them shows.
pub fn lay<T: Element>(data: &[T], shape: &[usize], mode: usize) -> HostTensor {
    let rank = shape.len();
    let order: Vec<usize> = if mode == 1 {
        (0..rank).rev().collect()
    } else {
        (0..rank).collect()
    };
    let mut strides = vec![0; rank];
    let mut acc = if mode == 2 { 2 } else { 1 };
    for &k in order.iter().rev() {
        strides[k] = acc;
        acc *= shape[k];
    }
    let mut backing = vec![T::from_f64(99.0); acc + 1];
    for (i, &v) in data.iter().enumerate() {
        let (mut rem, mut off) = (i, 0);
        for k in (0..rank).rev() {
            off += (rem % shape[k]) * strides[k];
            rem /= shape[k];
        }
        backing[off] = v;
    }
    HostTensor::strided(&backing, shape, &strides, 0)
}
