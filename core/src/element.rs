//! Rust types that map to tensor dtypes.

use sunrise_backend_api::DType;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for i64 {}
    impl Sealed for u8 {}
}

/// A host element type: `f32`, `f64`, `i64`, `u8`.
pub trait Element:
    sealed::Sealed + Copy + Default + Send + Sync + std::fmt::Debug + 'static
{
    /// Its dtype.
    const DTYPE: DType;

    /// The elements' bytes.
    fn as_bytes(data: &[Self]) -> &[u8] {
        // SAFETY: every implementor is a plain number with no padding, so
        // its memory is initialised bytes; the length covers the slice.
        unsafe {
            std::slice::from_raw_parts(data.as_ptr() as *const u8, std::mem::size_of_val(data))
        }
    }

    /// The elements' bytes, writable.
    fn as_bytes_mut(data: &mut [Self]) -> &mut [u8] {
        // SAFETY: as `as_bytes`; every byte pattern is a valid value of
        // each implementor (f32, f64, i64, u8).
        unsafe {
            std::slice::from_raw_parts_mut(
                data.as_mut_ptr() as *mut u8,
                std::mem::size_of_val(data),
            )
        }
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for f64 {
    const DTYPE: DType = DType::F64;
}
impl Element for i64 {
    const DTYPE: DType = DType::I64;
}
impl Element for u8 {
    const DTYPE: DType = DType::U8;
}
