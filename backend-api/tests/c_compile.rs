//! The checked-in C header, seen by a real C compiler.
//!
//! 1. A C file with a `_Static_assert` for the size, alignment and the offset
//!    and size of every field of every ABI struct, with the numbers taken
//!    from Rust (`size_of`, `offset_of!`), and for every constant and op id.
//! 2. The example backend plugin in C99 (`examples/c/example_backend.c`,
//!    written against the header alone), built as a shared object with
//!    `-std=c99 -Wpedantic -Werror`, loaded with `dlopen` and driven through
//!    `TableBackend`, the host's own wrapper: probe, init, device properties,
//!    buffers and their bounds, every op it lists on strided and broadcast
//!    views, the `Unsupported` and `InvalidArgument` statuses, logs; and its
//!    deliberately wrong `add` (`-DSUNRISE_EXAMPLE_WRONG_ADD`).
//!
//! Needs a C compiler (`$CC`, else `cc`); without one each test prints why it
//! is skipped and passes.
#![cfg(target_pointer_width = "64")]

use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use sunrise_backend_api::abi::*;
use sunrise_backend_api::ops::*;
use sunrise_backend_api::OpId;

/// The C compiler to use, if one runs.
fn compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let ok = Command::new(&cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(cc)
    } else {
        eprintln!("skipped: no working C compiler `{cc}` on PATH (set CC to use another)");
        None
    }
}

/// A fresh directory for one test's files under cargo's test scratch area.
fn work_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("c_compile-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// Runs `cc` in C standard `std` (`c99`, `c11`) with strict warnings and
/// `args`; panics with its output on failure.
fn run_cc(cc: &str, std: &str, args: &[&str]) {
    let include = include_dir();
    let out = Command::new(cc)
        .arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-I"])
        .arg(&include)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Size of the field that `get` projects, without needing a value.
fn field_size<T, F>(_get: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Appends C asserts that `$c` (the C name of `$t`) has Rust's size,
/// alignment, field offsets and field sizes.
macro_rules! c_layout {
    ($out:expr, $t:ident => $c:literal { $($field:ident),+ $(,)? }) => {{
        let out: &mut String = $out;
        let (size, align) = (size_of::<$t>(), align_of::<$t>());
        let _ = writeln!(out, "_Static_assert(sizeof({}) == {size}, \"sizeof {}\");", $c, $c);
        let _ = writeln!(out, "_Static_assert(_Alignof({}) == {align}, \"align {}\");", $c, $c);
        $(
            let (name, off) = (stringify!($field), offset_of!($t, $field));
            let len = field_size(|v: &$t| &v.$field);
            let _ = writeln!(
                out,
                "_Static_assert(offsetof({c}, {name}) == {off}, \"offset {c}.{name}\");\n\
                 _Static_assert(sizeof((({c} *)0)->{name}) == {len}, \"size {c}.{name}\");",
                c = $c,
            );
        )+
        // Exhaustive: a field added or removed is a compile error here.
        let _exhaustive = |v: &$t| {
            let $t { $($field: _),+ } = v;
        };
    }};
}

/// The asserts for the ABI tables and descriptors.
fn abi_struct_asserts(out: &mut String) {
    c_layout!(out, SrStatus => "SrStatus" {
        struct_size, ext, code, reserved, message, component, hint, release,
    });
    c_layout!(out, SrTensorDesc => "SrTensorDesc" {
        struct_size, dtype, rank, shape, strides, buffer, byte_offset,
    });
    c_layout!(out, SrOpSupport => "SrOpSupport" { op, dtype });
    c_layout!(out, SrAttribute => "SrAttribute" { key, value });
    c_layout!(out, SrDeviceProps => "SrDeviceProps" {
        struct_size, ext, kind, reserved, name, total_memory, free_memory, compute_major,
        compute_minor, driver_version, library_versions, attribute_count, attributes,
    });
    c_layout!(out, SrProbeInfo => "SrProbeInfo" {
        struct_size, ext, abi_major, abi_minor, usable, score, name, reason, component, hint,
    });
    c_layout!(out, SrHostApi => "SrHostApi" {
        struct_size, ext, abi_major, abi_minor, user_data, log,
    });
    c_layout!(out, SrPluginApi => "SrPluginApi" {
        struct_size, ext, abi_major, abi_minor, backend, destroy, device_count, device_props,
        supported_ops, buffer_alloc, buffer_free, buffer_write, buffer_read, synchronize, execute,
        set_option,
    });
}

/// The asserts for the params structs (C names carry the `Sr` prefix).
fn params_struct_asserts(out: &mut String) {
    c_layout!(out, UnaryBackwardParams => "SrUnaryBackwardParams" { struct_size, op, reserved });
    c_layout!(out, FillParams => "SrFillParams" { struct_size, value });
    c_layout!(out, AxisParams => "SrAxisParams" { struct_size, axis, reserved });
    c_layout!(out, ReduceParams => "SrReduceParams" { struct_size, axes_mask });
    c_layout!(out, MatmulParams => "SrMatmulParams" { struct_size, alpha, beta });
    c_layout!(out, Conv2dParams => "SrConv2dParams" {
        struct_size, stride, padding, dilation, groups,
    });
    c_layout!(out, Pool2dParams => "SrPool2dParams" {
        struct_size, kernel, stride, padding, count_include_pad, reserved,
    });
    c_layout!(out, NormParams => "SrNormParams" { struct_size, eps, axis, training });
    c_layout!(out, CrossEntropyParams => "SrCrossEntropyParams" { struct_size, ignore_index });
    c_layout!(out, AdamWParams => "SrAdamWParams" {
        struct_size, lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2,
    });
    c_layout!(out, SgdParams => "SrSgdParams" {
        struct_size, lr, momentum, dampening, weight_decay, nesterov, first_step,
    });
}

/// The asserts for every constant and op id.
fn constant_asserts(out: &mut String) {
    let constants: [(&str, i64); 24] = [
        ("SR_ABI_MAJOR", SR_ABI_MAJOR.into()),
        ("SR_ABI_MINOR", SR_ABI_MINOR.into()),
        ("SR_MAX_RANK", SR_MAX_RANK as i64),
        ("SR_OK", SR_OK.into()),
        ("SR_INVALID_ARGUMENT", SR_INVALID_ARGUMENT.into()),
        ("SR_UNSUPPORTED", SR_UNSUPPORTED.into()),
        ("SR_OUT_OF_MEMORY", SR_OUT_OF_MEMORY.into()),
        ("SR_UNAVAILABLE", SR_UNAVAILABLE.into()),
        ("SR_ABI_MISMATCH", SR_ABI_MISMATCH.into()),
        ("SR_PANIC", SR_PANIC.into()),
        ("SR_INTERNAL", SR_INTERNAL.into()),
        ("SR_DTYPE_F32", SR_DTYPE_F32.into()),
        ("SR_DTYPE_F64", SR_DTYPE_F64.into()),
        ("SR_DTYPE_I64", SR_DTYPE_I64.into()),
        ("SR_DTYPE_U8", SR_DTYPE_U8.into()),
        ("SR_DEVICE_CPU", SR_DEVICE_CPU.into()),
        ("SR_DEVICE_CUDA", SR_DEVICE_CUDA.into()),
        ("SR_LOG_ERROR", SR_LOG_ERROR.into()),
        ("SR_LOG_WARN", SR_LOG_WARN.into()),
        ("SR_LOG_INFO", SR_LOG_INFO.into()),
        ("SR_LOG_DEBUG", SR_LOG_DEBUG.into()),
        ("SR_LOG_TRACE", SR_LOG_TRACE.into()),
        ("sizeof(SrStatusCode)", size_of::<SrStatusCode>() as i64),
        ("sizeof(SrDType)", size_of::<SrDType>() as i64),
    ];
    for (name, value) in constants {
        let _ = writeln!(out, "_Static_assert({name} == {value}, \"{name}\");");
    }
    for op in OpId::ALL {
        let name = format!("SR_OP_{}", op.name().to_ascii_uppercase());
        let _ = writeln!(out, "_Static_assert({name} == {}, \"{name}\");", *op as u32);
    }
}

#[test]
fn c_compiler_agrees_with_rust_layout() {
    let Some(cc) = compiler() else { return };
    let mut src = String::from("#include <stddef.h>\n#include \"sunrise_backend.h\"\n\n");
    abi_struct_asserts(&mut src);
    params_struct_asserts(&mut src);
    constant_asserts(&mut src);
    let dir = work_dir("layout");
    let c = dir.join("layout.c");
    std::fs::write(&c, &src).unwrap_or_else(|e| panic!("writing {}: {e}", c.display()));
    let obj = dir.join("layout.o");
    // `_Static_assert` is C11; the header itself is C99 (the plugin test).
    run_cc(&cc, "c11", &["-c", path_str(&c), "-o", path_str(&obj)]);
    assert!(obj.is_file(), "{} was not written", obj.display());
    // Kept on failure for a look; removed once the asserts hold.
    let _ = std::fs::remove_dir_all(&dir);
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("scratch paths are UTF-8")
}

/// The example plugin shipped for backend authors
/// (`examples/c/example_backend.c`, installed by `sunrise-backend-dev` under
/// `/usr/share/doc/sunrise-backend-dev/examples/c/`): C99 against the header
/// alone, f32 `fill`, `copy`, `neg`, `relu`, `add`, `sub`, `mul` on strided
/// views.
const C_PLUGIN: &str = include_str!("../examples/c/example_backend.c");

#[cfg(target_os = "linux")]
#[path = "support/dl.rs"]
mod dl;

#[cfg(target_os = "linux")]
#[path = "c_compile/plugin.rs"]
mod plugin;
