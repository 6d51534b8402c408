//! `include/sunrise_backend.h` is generated from the Rust definitions and
//! checked in. This test regenerates it in memory with cbindgen (source
//! parsing only: no `cargo metadata`, no network, no compiler) and fails when
//! the checked-in copy differs. `SUNRISE_BLESS=1` rewrites the file instead.
//!
//! cbindgen cannot see `OpId`, which `ops.rs` declares inside a macro, so the
//! op id `#define`s are generated here from `OpId::ALL` and put at the start
//! of cbindgen's trailer, in a marked section.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use sunrise_backend_api::{OpId, Params};

/// The command that regenerates the header.
const BLESS: &str = "SUNRISE_BLESS=1 cargo test -p sunrise-backend-api --test header";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("include").join("sunrise_backend.h")
}

/// The C name of the params struct `op` takes, found by asking
/// `Params::from_raw` which struct it reads for `op`.
fn params_struct(op: OpId) -> Option<&'static str> {
    // Large enough for any v1 params struct; `struct_size` says so.
    let mut raw = [0u64; 32];
    raw[0] = std::mem::size_of_val(&raw) as u64;
    // SAFETY: `raw` is live, readable for the size its first word states,
    // and that size covers every params struct of op set v1.
    let params = unsafe { Params::from_raw(op, raw.as_ptr() as *const c_void) };
    let params = params.unwrap_or_else(|e| panic!("params of {op}: {e}"));
    let name = match params {
        Params::None => return None,
        Params::UnaryBackward(_) => "SrUnaryBackwardParams",
        Params::Fill(_) => "SrFillParams",
        Params::Axis(_) => "SrAxisParams",
        Params::Reduce(_) => "SrReduceParams",
        Params::Matmul(_) => "SrMatmulParams",
        Params::Conv2d(_) => "SrConv2dParams",
        Params::Pool2d(_) => "SrPool2dParams",
        Params::Norm(_) => "SrNormParams",
        Params::CrossEntropy(_) => "SrCrossEntropyParams",
        Params::AdamW(_) => "SrAdamWParams",
        Params::Sgd(_) => "SrSgdParams",
    };
    Some(name)
}

/// `SR_OP_<NAME>`, the C name of an op id.
fn op_macro(op: OpId) -> String {
    format!("SR_OP_{}", op.name().to_ascii_uppercase())
}

/// The marked section of op id `#define`s.
fn op_id_section() -> String {
    let width = OpId::ALL
        .iter()
        .map(|op| op_macro(*op).len())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    s.push_str("/* BEGIN op ids: generated from the op set by backend-api/tests/header.rs */\n\n");
    s.push_str("/*\n * Op ids of op set v1 (the `op` argument of `execute`, `SrOpSupport.op`).\n");
    s.push_str(" * Append-only: an id is never renumbered or reused. Each line gives the\n");
    s.push_str(" * op's name, its input and output counts, and its params struct (pass null\n");
    s.push_str(" * when it takes none). Each op's inputs in order, outputs, params and\n");
    s.push_str(" * semantics: the backend author's guide, GUIDE.md (installed as\n");
    s.push_str(" * /usr/share/doc/sunrise-backend-dev/GUIDE.md; backend-api/doc/GUIDE.md\n");
    s.push_str(" * in the source).\n */\n");
    for op in OpId::ALL {
        let inputs = match op.input_count() {
            Some(n) => n.to_string(),
            None => "variable".to_owned(),
        };
        let outputs = match op.output_count() {
            Some(n) => n.to_string(),
            None => "variable".to_owned(),
        };
        let params = params_struct(*op).unwrap_or("no params");
        s.push_str(&format!(
            "#define {:<width$} {:>2}  /* {}: {} in, {} out, {} */\n",
            op_macro(*op),
            *op as u32,
            op.name(),
            inputs,
            outputs,
            params,
        ));
    }
    s.push_str("\n/* END op ids */\n");
    s
}

/// The header as it should be, generated from the current sources.
fn generate() -> String {
    let dir = crate_dir();
    let toml = dir.join("cbindgen.toml");
    let mut config = cbindgen::Config::from_file(&toml)
        .unwrap_or_else(|e| panic!("reading {}: {e}", toml.display()));
    let trailer = config.trailer.take().unwrap_or_default();
    config.trailer = Some(format!("{}\n{trailer}", op_id_section()));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src").join("abi.rs"))
        .with_src(dir.join("src").join("ops.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen failed: {e}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen wrote UTF-8")
}

/// Where `a` and `b` first differ, as a one-line report.
fn first_difference(a: &str, b: &str) -> String {
    let mut a_lines = a.lines();
    let mut b_lines = b.lines();
    for line in 1.. {
        match (a_lines.next(), b_lines.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => return "line endings differ".to_owned(),
            (x, y) => {
                return format!(
                    "line {line}: checked in {:?}, generated {:?}",
                    x.unwrap_or("<end of file>"),
                    y.unwrap_or("<end of file>")
                )
            }
        }
    }
    unreachable!("the loop above returns")
}

fn bless(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    eprintln!("wrote {}", path.display());
}

#[test]
fn checked_in_header_is_current() {
    let generated = generate();
    let path = header_path();
    if std::env::var_os("SUNRISE_BLESS").is_some_and(|v| v == "1") {
        bless(&path, &generated);
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is out of date with the Rust definitions ({}); regenerate it with\n    {BLESS}\nand \
         commit it (check the diff: a change to an existing struct breaks ABI v1)",
        path.display(),
        first_difference(&checked_in, &generated),
    );
}

/// Guards the cbindgen configuration: whatever is blessed must still declare
/// every ABI item, in C types only.
#[test]
fn header_declares_every_abi_item() {
    let h = generate();
    let mut expected: Vec<String> = [
        "#ifndef SUNRISE_BACKEND_H",
        "#endif  /* SUNRISE_BACKEND_H */",
        "#include <stdint.h>",
        "typedef struct SrBuffer SrBuffer;",
        "typedef struct SrBackend SrBackend;",
        "#define SR_ABI_MAJOR 1",
        "#define SR_ABI_MINOR 3",
        "#define SR_MAX_RANK 8",
        "typedef void (*SrProbeFnV1)(struct SrProbeInfo *info);",
        "typedef SrStatusPtr (*SrInitFnV1)(const struct SrHostApi *host, struct SrPluginApi *plugin);",
        "void sunrise_backend_probe_v1(SrProbeInfo *info);",
        "SrStatus *sunrise_backend_init_v1(const SrHostApi *host, SrPluginApi *plugin);",
        "int64_t shape[SR_MAX_RANK];",
        "char name[32];",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for name in [
        "SrStatus",
        "SrTensorDesc",
        "SrOpSupport",
        "SrAttribute",
        "SrDeviceProps",
        "SrProbeInfo",
        "SrHostApi",
        "SrPluginApi",
        "SrUnaryBackwardParams",
        "SrFillParams",
        "SrAxisParams",
        "SrReduceParams",
        "SrMatmulParams",
        "SrConv2dParams",
        "SrPool2dParams",
        "SrNormParams",
        "SrCrossEntropyParams",
        "SrAdamWParams",
        "SrSgdParams",
    ] {
        expected.push(format!("typedef struct {name} {{"));
    }
    for code in [
        "SR_OK 0",
        "SR_INVALID_ARGUMENT 1",
        "SR_UNSUPPORTED 2",
        "SR_OUT_OF_MEMORY 3",
        "SR_UNAVAILABLE 4",
        "SR_ABI_MISMATCH 5",
        "SR_PANIC 6",
        "SR_INTERNAL 7",
        "SR_DTYPE_F32 0",
        "SR_DTYPE_F64 1",
        "SR_DTYPE_I64 2",
        "SR_DTYPE_U8 3",
        "SR_DEVICE_CPU 0",
        "SR_DEVICE_CUDA 1",
        "SR_LOG_ERROR 1",
        "SR_LOG_TRACE 5",
    ] {
        expected.push(format!("#define {code}"));
    }
    for op in OpId::ALL {
        let id = *op as u32;
        let line = h
            .lines()
            .find(|l| l.starts_with(&format!("#define {} ", op_macro(*op))));
        let line = line.unwrap_or_else(|| panic!("no #define for op {op}"));
        assert!(
            line.contains(&format!(" {id}  /* {}:", op.name())),
            "{line}"
        );
    }
    assert!(
        h.trim_end().ends_with("#endif  /* SUNRISE_BACKEND_H */"),
        "the include guard must close the header"
    );
    for item in &expected {
        assert!(
            h.contains(item.as_str()),
            "generated header lacks `{item}`:\n{h}"
        );
    }
    for rust_only in ["size_t", "uintptr_t", "bool", "Option", "NoParams", "Vec"] {
        let found = h
            .lines()
            .filter(|l| !l.trim_start().starts_with('*'))
            .find(|l| {
                l.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .any(|w| w == rust_only)
            });
        assert!(found.is_none(), "non-C type `{rust_only}` in: {found:?}");
    }
}

/// What must never appear in the header: it is read by C programmers, so its
/// comments (generated from the Rust doc comments) speak C. Each entry is a
/// needle and why it is wrong.
const NOT_C: &[(&str, &str)] = &[
    ("::", "a Rust path (write the C name)"),
    ("[`", "a rustdoc intra-doc link"),
    ("[crate", "a rustdoc intra-doc link"),
    ("`]", "a rustdoc intra-doc link"),
    ("size_of", "Rust's size_of (write sizeof(T))"),
    ("offset_of", "Rust's offset_of! (write offsetof(T, field))"),
    (
        "has_field",
        "a Rust-only helper (write the struct_size comparison)",
    ),
    ("negotiated_minor", "a Rust-only helper"),
    ("Option<", "a Rust type"),
    ("Result<", "a Rust type"),
    ("Vec<", "a Rust type"),
    ("&[", "a Rust slice"),
    ("&str", "a Rust string"),
    ("0..", "a Rust range (write \"0 to n\")"),
    ("..=", "a Rust range"),
    (
        "panic",
        "Rust wording (C has no panics; say crash or abort)",
    ),
    ("`tracing`", "a Rust crate"),
    ("OpId", "the Rust op enum (write SR_OP_*)"),
    (
        "src/ops.rs",
        "a Rust source file the package does not ship (point to GUIDE.md)",
    ),
    ("unsafe", "Rust wording"),
];

/// The header's comments read as C: no Rust paths, types, helpers or links.
#[test]
fn header_reads_as_c() {
    let h = generate();
    let mut bad = Vec::new();
    for (n, line) in h.lines().enumerate() {
        for (needle, why) in NOT_C {
            // The status code SR_PANIC and its comment name a Rust panic on
            // purpose: a plugin written in Rust reports it.
            if *needle == "panic" && (line.contains("SR_PANIC") || line.contains("caught panic")) {
                continue;
            }
            // The provenance line names the Rust sources the header comes from.
            if line.contains("Generated by cbindgen from") {
                continue;
            }
            if line.contains(needle) {
                bad.push(format!("line {}: {why}: {line}", n + 1));
            }
        }
    }
    assert!(h.contains("GUIDE.md"), "the header must point to the guide");
    assert!(
        bad.is_empty(),
        "the generated header has Rust-isms in it; reword the doc comments in src/abi.rs or \
         src/ops.rs:\n{}",
        bad.join("\n")
    );
}
