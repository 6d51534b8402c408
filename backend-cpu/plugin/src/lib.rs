//! The CPU backend exported through the plugin ABI: `export_backend!` on
//! [`sunrise_backend_cpu::CpuBackend`], built as a cdylib. The kernels are
//! the very ones the core links, so a run through this plugin must match a
//! linked run bit for bit; that is how every CI run drives the whole plugin
//! path without a GPU.
//!
//! It is a crate of its own because the entry points must exist only in the
//! shared object: exported from the rlib, they would collide in any other
//! plugin built on the CPU kernels.

sunrise_backend_api::export_backend!(sunrise_backend_cpu::CpuBackend);
