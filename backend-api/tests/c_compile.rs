//! The checked-in C header, seen by a real C compiler.
//!
//! 1. A C file with a `_Static_assert` for the size, alignment and the offset
//!    and size of every field of every ABI struct, with the numbers taken
//!    from Rust (`size_of`, `offset_of!`), and for every constant and op id.
//! 2. A small backend plugin written in C against the header alone, built as
//!    a shared object (`cc -shared -fPIC`), then loaded with `dlopen` and
//!    driven through `TableBackend`, the host's own wrapper: probe, init,
//!    device properties, buffers, one op, an unsupported op's status, logs.
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

/// Runs `cc` with strict warnings and `args`; panics with its output on failure.
fn run_cc(cc: &str, args: &[&str]) {
    let include = include_dir();
    let out = Command::new(cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-I",
        ])
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
    run_cc(&cc, &["-c", path_str(&c), "-o", path_str(&obj)]);
    assert!(obj.is_file(), "{} was not written", obj.display());
    // Kept on failure for a look; removed once the asserts hold.
    let _ = std::fs::remove_dir_all(&dir);
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("scratch paths are UTF-8")
}

/// A complete backend in C, written against the header alone: one device,
/// host-memory buffers, and `neg` on contiguous f32 tensors.
const C_PLUGIN: &str = r#"/* A sunrise backend written in C against sunrise_backend.h alone. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sunrise_backend.h"

/* The opaque types are completed by the plugin that owns them. */
struct SrBuffer {
    uint64_t bytes;
    unsigned char *data;
};

struct SrBackend {
    SrOpSupport ops[1];
    SrAttribute attributes[1];
};

static void release_heap(SrStatus *status) { free(status); }

static void release_static(SrStatus *status) { (void)status; }

static SrStatus out_of_memory = {
    sizeof(SrStatus), NULL, SR_OUT_OF_MEMORY, 0, "out of memory", NULL, NULL, release_static,
};

/* A status owning a copy of `message` in the same allocation. */
static SrStatus *status(SrStatusCode code, const char *message) {
    size_t len = strlen(message) + 1;
    SrStatus *s = malloc(sizeof(SrStatus) + len);
    if (s == NULL) {
        return &out_of_memory;
    }
    memset(s, 0, sizeof(SrStatus));
    s->struct_size = sizeof(SrStatus);
    s->code = code;
    s->message = memcpy((char *)(s + 1), message, len);
    s->release = release_heap;
    return s;
}

static void copy_name(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void destroy(SrBackend *backend) { free(backend); }

static uint32_t device_count(SrBackend *backend) {
    (void)backend;
    return 1;
}

static SrStatusPtr device_props(SrBackend *backend, uint32_t device, SrDeviceProps *out) {
    if (device != 0) {
        return status(SR_INVALID_ARGUMENT, "ctest has one device");
    }
    if (out->struct_size < sizeof(SrDeviceProps)) {
        return status(SR_ABI_MISMATCH, "SrDeviceProps too small");
    }
    out->kind = SR_DEVICE_CPU;
    out->name = "ctest device";
    out->total_memory = 1u << 20;
    out->driver_version = "c11";
    out->attribute_count = 1;
    out->attributes = backend->attributes;
    return NULL;
}

static SrStatusPtr supported_ops(SrBackend *backend, uint64_t *count,
                                 const SrOpSupport **pairs) {
    *count = 1;
    *pairs = backend->ops;
    return NULL;
}

static SrStatusPtr buffer_alloc(SrBackend *backend, uint32_t device, uint64_t bytes,
                                SrBuffer **out) {
    (void)backend;
    if (device != 0 || bytes > ((uint64_t)1 << 40)) {
        return status(SR_INVALID_ARGUMENT, "bad device or size");
    }
    SrBuffer *b = malloc(sizeof(SrBuffer));
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    size_t rounded = (size_t)((bytes + 63) / 64 * 64);
    unsigned char *data = aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (b == NULL || data == NULL) {
        free(b);
        free(data);
        return status(SR_OUT_OF_MEMORY, "ctest buffer");
    }
    b->bytes = bytes;
    b->data = data;
    *out = b;
    return NULL;
}

static void buffer_free(SrBackend *backend, SrBuffer *buffer) {
    (void)backend;
    free(buffer->data);
    free(buffer);
}

static int out_of_range(const SrBuffer *b, uint64_t offset, uint64_t len) {
    return offset > b->bytes || len > b->bytes - offset;
}

static SrStatusPtr buffer_write(SrBackend *backend, SrBuffer *buffer, uint64_t offset,
                                const void *src, uint64_t len) {
    (void)backend;
    if (out_of_range(buffer, offset, len)) {
        return status(SR_INVALID_ARGUMENT, "write out of range");
    }
    memcpy(buffer->data + offset, src, (size_t)len);
    return NULL;
}

static SrStatusPtr buffer_read(SrBackend *backend, SrBuffer *buffer, uint64_t offset,
                               void *dst, uint64_t len) {
    (void)backend;
    if (out_of_range(buffer, offset, len)) {
        return status(SR_INVALID_ARGUMENT, "read out of range");
    }
    memcpy(dst, buffer->data + offset, (size_t)len);
    return NULL;
}

static SrStatusPtr synchronize(SrBackend *backend, uint32_t device) {
    (void)backend;
    return device == 0 ? NULL : status(SR_INVALID_ARGUMENT, "ctest has one device");
}

/* Elements of a contiguous f32 view within its buffer, or -1. */
static int64_t contiguous_f32(const SrTensorDesc *t) {
    int64_t n = 1;
    if (t->dtype != SR_DTYPE_F32 || t->rank > SR_MAX_RANK || t->buffer == NULL) {
        return -1;
    }
    for (uint32_t k = t->rank; k-- > 0;) {
        if (t->shape[k] < 0 || (t->shape[k] != 1 && t->strides[k] != n)) {
            return -1;
        }
        n *= t->shape[k];
    }
    return out_of_range(t->buffer, t->byte_offset, (uint64_t)n * 4) ? -1 : n;
}

static SrStatusPtr execute(SrBackend *backend, uint32_t device, uint32_t op, const void *params,
                           const SrTensorDesc *inputs, uint64_t input_count,
                           const SrTensorDesc *outputs, uint64_t output_count) {
    (void)backend;
    (void)params;
    if (op != SR_OP_NEG) {
        return status(SR_UNSUPPORTED, "ctest implements only neg");
    }
    if (device != 0 || input_count != 1 || output_count != 1) {
        return status(SR_INVALID_ARGUMENT, "neg takes one input and one output");
    }
    int64_t n = contiguous_f32(&inputs[0]);
    if (n < 0 || n != contiguous_f32(&outputs[0]) || inputs[0].rank != outputs[0].rank) {
        return status(SR_INVALID_ARGUMENT, "ctest wants contiguous f32 of one shape");
    }
    const unsigned char *x = inputs[0].buffer->data + inputs[0].byte_offset;
    unsigned char *y = outputs[0].buffer->data + outputs[0].byte_offset;
    for (int64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, x + 4 * i, 4);
        v = -v;
        memcpy(y + 4 * i, &v, 4);
    }
    return NULL;
}

void sunrise_backend_probe_v1(SrProbeInfo *info) {
    if (info == NULL || info->struct_size < sizeof(SrProbeInfo)) {
        return;
    }
    info->abi_major = SR_ABI_MAJOR;
    info->abi_minor = SR_ABI_MINOR;
    info->usable = 1;
    info->score = 5;
    copy_name(info->name, sizeof info->name, "ctest");
}

SrStatus *sunrise_backend_init_v1(const SrHostApi *host, SrPluginApi *plugin) {
    if (host == NULL || plugin == NULL || host->abi_major != SR_ABI_MAJOR ||
        plugin->struct_size < sizeof(SrPluginApi)) {
        return status(SR_ABI_MISMATCH, "ctest needs ABI 1 tables");
    }
    SrBackend *b = malloc(sizeof(SrBackend));
    if (b == NULL) {
        return &out_of_memory;
    }
    b->ops[0].op = SR_OP_NEG;
    b->ops[0].dtype = SR_DTYPE_F32;
    b->attributes[0].key = "lang";
    b->attributes[0].value = "c";
    memset(plugin, 0, sizeof(SrPluginApi));
    plugin->struct_size = sizeof(SrPluginApi);
    plugin->abi_major = SR_ABI_MAJOR;
    plugin->abi_minor = SR_ABI_MINOR;
    plugin->backend = b;
    plugin->destroy = destroy;
    plugin->device_count = device_count;
    plugin->device_props = device_props;
    plugin->supported_ops = supported_ops;
    plugin->buffer_alloc = buffer_alloc;
    plugin->buffer_free = buffer_free;
    plugin->buffer_write = buffer_write;
    plugin->buffer_read = buffer_read;
    plugin->synchronize = synchronize;
    plugin->execute = execute;
    if (host->log != NULL) {
        host->log(host->user_data, SR_LOG_INFO, "ctest", "ctest backend ready");
    }
    return NULL;
}

/* The entry points have the header's pointer types. */
const SrProbeFnV1 sunrise_ctest_probe = sunrise_backend_probe_v1;
const SrInitFnV1 sunrise_ctest_init = sunrise_backend_init_v1;
"#;

/// `dlopen` from the C library, without a crate for it.
#[cfg(target_os = "linux")]
mod dl {
    use std::ffi::{c_char, c_int, c_void, CStr, CString};
    use std::path::Path;

    const RTLD_NOW: c_int = 2;

    extern "C" {
        fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        fn dlerror() -> *mut c_char;
        fn dlclose(handle: *mut c_void) -> c_int;
    }

    /// The last `dlerror` message.
    fn last_error() -> String {
        // SAFETY: dlerror returns null or a NUL-terminated thread-local string.
        let p = unsafe { dlerror() };
        if p.is_null() {
            "unknown dl error".to_owned()
        } else {
            // SAFETY: non-null and NUL-terminated, read before the next dl call.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    }

    /// A shared object loaded with `RTLD_NOW | RTLD_LOCAL`, closed on drop.
    #[derive(Debug)]
    pub struct Library(*mut c_void);

    // SAFETY: a dlopen handle may be used and closed from any thread.
    unsafe impl Send for Library {}
    // SAFETY: dlsym on one handle from several threads is thread-safe.
    unsafe impl Sync for Library {}

    impl Library {
        /// Loads the shared object at `path`.
        pub fn open(path: &Path) -> Result<Library, String> {
            let c =
                CString::new(path.to_str().ok_or("non-UTF-8 path")?).map_err(|e| e.to_string())?;
            // SAFETY: a NUL-terminated path; RTLD_LOCAL is 0.
            let handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW) };
            if handle.is_null() {
                Err(last_error())
            } else {
                Ok(Library(handle))
            }
        }

        /// The address of `name` (NUL-terminated).
        pub fn symbol(&self, name: &[u8]) -> Result<*mut c_void, String> {
            let name = CStr::from_bytes_with_nul(name).map_err(|e| e.to_string())?;
            // SAFETY: a live handle and a NUL-terminated name.
            let p = unsafe { dlsym(self.0, name.as_ptr()) };
            if p.is_null() {
                Err(last_error())
            } else {
                Ok(p)
            }
        }
    }

    impl Drop for Library {
        fn drop(&mut self) {
            // SAFETY: the handle is live and closed once; whoever holds this
            // keeps every pointer into the library alive no longer than it.
            unsafe { dlclose(self.0) };
        }
    }
}

#[cfg(target_os = "linux")]
mod plugin {
    use std::sync::{Arc, Mutex};

    use sunrise_backend_api::abi::*;
    use sunrise_backend_api::host::TableBackend;
    use sunrise_backend_api::{log, Backend, DType, OpCall, OpId, Params, ProbeReport, StatusCode};

    use super::{compiler, dl, path_str, run_cc, work_dir, C_PLUGIN};

    /// Builds the C plugin; `None` when there is no compiler.
    fn build() -> Option<std::path::PathBuf> {
        let cc = compiler()?;
        let dir = work_dir("plugin");
        let c = dir.join("plugin.c");
        std::fs::write(&c, C_PLUGIN).unwrap_or_else(|e| panic!("writing {}: {e}", c.display()));
        let so = dir.join("libsunrise_backend_ctest.so");
        let args = [
            "-shared",
            "-fPIC",
            "-Wl,--no-undefined",
            path_str(&c),
            "-o",
            path_str(&so),
        ];
        run_cc(&cc, &args);
        Some(so)
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    #[test]
    fn c_plugin_builds_loads_and_runs() {
        let Some(so) = build() else { return };
        let lib = dl::Library::open(&so).unwrap_or_else(|e| panic!("dlopen: {e}"));
        let probe = lib.symbol(SR_PROBE_SYMBOL_V1).expect("probe symbol");
        let init = lib.symbol(SR_INIT_SYMBOL_V1).expect("init symbol");
        // SAFETY: the C plugin defines these symbols with the header's
        // prototypes, which the compiler checked against SrProbeFnV1/SrInitFnV1.
        let (probe, init) = unsafe {
            (
                std::mem::transmute::<*mut std::ffi::c_void, SrProbeFnV1>(probe),
                std::mem::transmute::<*mut std::ffi::c_void, SrInitFnV1>(init),
            )
        };
        let mut info = SrProbeInfo::new();
        // SAFETY: a zeroed probe struct with struct_size set, as the ABI says.
        unsafe { probe(&mut info) };
        let report = ProbeReport::read_from(&info);
        assert_eq!(
            (report.abi_major, report.usable, report.score),
            (1, true, 5)
        );
        assert_eq!(report.name, "ctest");

        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        log::set_sink(Box::new(move |level, target, message| {
            let line = format!("{level:?} {target}: {message}");
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }));
        // SAFETY: `init` is the plugin's entry point; `lib` keeps it loaded
        // and is dropped by the backend after `destroy`.
        let backend = unsafe { TableBackend::init("ctest", init, Some(Box::new(lib))) }
            .unwrap_or_else(|e| panic!("init: {e:?}"));
        let logged = logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(
            logged
                .iter()
                .any(|l| l == "Info ctest: ctest backend ready"),
            "{logged:?}"
        );
        check_device(&backend);
        check_neg(&backend);
        drop(backend);
        if let Some(dir) = so.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn check_device(b: &TableBackend) {
        assert_eq!(b.abi_minor(), SR_ABI_MINOR);
        assert_eq!(b.device_count(), 1);
        let d = b
            .device_info(0)
            .unwrap_or_else(|e| panic!("device_info: {e:?}"));
        assert_eq!((d.kind, d.name.as_str()), (SR_DEVICE_CPU, "ctest device"));
        assert_eq!((d.total_memory, d.compute_capability), (1 << 20, None));
        assert_eq!(d.driver_version.as_deref(), Some("c11"));
        assert_eq!(d.attributes, [("lang".to_owned(), "c".to_owned())]);
        // A status made in C crosses, is read, and is released by its own `release`.
        let e = b.device_info(1).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (StatusCode::InvalidArgument, "ctest has one device")
        );
        assert!(b.synchronize(0).is_ok());
        assert!(b.supports(OpId::Neg, DType::F32));
        assert!(!b.supports(OpId::Add, DType::F32));
        // The C plugin leaves the 1.1 entry `set_option` null: refused
        // cleanly by the host, never called.
        let e = b.set_option("tf32", "on").unwrap_err();
        assert_eq!(e.code, StatusCode::Unsupported, "{e:?}");
        assert!(e.message.contains("no options"), "{}", e.message);
    }

    fn check_neg(b: &TableBackend) {
        let x = b.alloc(0, 24).unwrap_or_else(|e| panic!("alloc: {e:?}"));
        let y = b.alloc(0, 24).unwrap_or_else(|e| panic!("alloc: {e:?}"));
        let values = [1.5f32, -2.0, 0.0, 3.0, 4.25, -0.5];
        // SAFETY: live buffers of this backend, 24 bytes each.
        unsafe { b.write(x, 0, &f32_bytes(&values)) }.expect("write");
        let xd = SrTensorDesc::new(DType::F32, &[2, 3], &[3, 1], x, 0);
        let yd = SrTensorDesc::new(DType::F32, &[2, 3], &[3, 1], y, 0);
        let call = |op, inputs: &[SrTensorDesc], outputs: &[SrTensorDesc]| {
            let call = OpCall {
                op,
                params: Params::None,
                inputs,
                outputs,
            };
            // SAFETY: descriptors name live buffers and stay within them.
            unsafe { b.execute(0, &call) }
        };
        call(OpId::Neg, &[xd], &[yd]).unwrap_or_else(|e| panic!("neg: {e:?}"));
        let mut out = [0u8; 24];
        // SAFETY: a live buffer of this backend, 24 bytes.
        unsafe { b.read(y, 0, &mut out) }.expect("read");
        let negated: Vec<f32> = values.iter().map(|v| -v).collect();
        assert_eq!(out.to_vec(), f32_bytes(&negated));

        let e = call(OpId::Add, &[xd, xd], &[yd]).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (StatusCode::Unsupported, "ctest implements only neg")
        );
        let transposed = SrTensorDesc::new(DType::F32, &[3, 2], &[1, 3], y, 0);
        let e = call(OpId::Neg, &[xd], &[transposed]).unwrap_err();
        assert_eq!(e.code, StatusCode::InvalidArgument);
        // SAFETY: a live buffer; the plugin checks the range and refuses.
        let e = unsafe { b.read(y, 20, &mut out[..8]) }.unwrap_err();
        assert_eq!(e.code, StatusCode::InvalidArgument);
        // SAFETY: live buffers of this backend, freed once and not used again.
        unsafe {
            b.free(x);
            b.free(y);
        }
    }
}
