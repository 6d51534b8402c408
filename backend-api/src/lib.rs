//! `sunrise-backend-api`: the stable C ABI (version 1) between the sunrise
//! core and its device backends, and the safe Rust face over it.
//!
//! - [`abi`]: the `#[repr(C)]` tables, descriptors and status objects; the C
//!   header `include/sunrise_backend.h` is generated from it.
//! - [`ops`]: op set v1, append-only op ids and their params structs.
//! - [`Backend`] / [`Plugin`]: the trait every backend implements;
//!   [`export_backend!`] turns a `Plugin` into the C entry points, and
//!   [`host::TableBackend`] turns a loaded table back into a `Backend`.
//!
//! **Architecture invariant:** this crate depends on no other crate of the
//! workspace, and nothing but C types crosses its ABI.

pub mod abi;
mod backend;
mod error;
pub mod export;
pub mod host;
pub mod log;
pub mod ops;
mod types;

pub use backend::{Backend, HostInfo, OpCall, Plugin};
pub use error::{panic_message, BackendError, Result, StatusCode};
pub use ops::{OpId, Params};
pub use types::{
    read_c_buf, read_c_str, write_c_buf, BufferHandle, DType, DeviceInfo, ProbeReport,
};
