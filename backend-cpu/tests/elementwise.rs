//! The elementwise op family through the backend's `execute`: every op
//! against an f64 reference computed here, on contiguous, transposed,
//! sliced (offset, gaps) and broadcast (stride 0) inputs and on strided
//! outputs; backward ops against central differences; casts and their
//! edge cases; and typed errors for bad input.
//!
//! The helpers live in `elementwise/common.rs`, the tests by op group in the
//! other files of `elementwise/`.

#[path = "elementwise/binary.rs"]
mod binary;
#[path = "elementwise/common.rs"]
mod common;
#[path = "elementwise/data.rs"]
mod data;
#[path = "elementwise/errors.rs"]
mod errors;
#[path = "elementwise/unary.rs"]
mod unary;
