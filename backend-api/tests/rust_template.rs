//! The Rust template of a backend (`examples/rust-template/`, installed by
//! `sunrise-backend-dev` under
//! `/usr/share/doc/sunrise-backend-dev/examples/rust-template/`) builds as a
//! backend author would build it: the two files copied into a directory of
//! their own, the path dependency pointed at this crate, `cargo build
//! --offline` (the ABI crate depends on nothing, so no registry is needed).
//! The plugin it makes is then loaded with `dlopen` and driven through
//! `TableBackend`.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;

use sunrise_backend_api::abi::*;
use sunrise_backend_api::ops::FillParams;
use sunrise_backend_api::{Backend, DType, OpCall, OpId, Params, StatusCode};

#[path = "support/dl.rs"]
mod dl;

/// The template's dependency line, which a user edits to point at their
/// checkout (the test points it at this crate).
const DEP_LINE: &str = r#"sunrise-backend-api = { path = "../sunrise/backend-api" }"#;

fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rust-template")
}

/// Copies the template into a fresh directory outside any workspace and
/// builds it; returns the plugin's path.
fn build_template() -> PathBuf {
    let src = template_dir();
    let dir = std::env::temp_dir().join(format!("sunrise-rust-template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).expect("creating the template's copy");
    let manifest = std::fs::read_to_string(src.join("Cargo.toml")).expect("template Cargo.toml");
    assert!(
        manifest.contains(DEP_LINE),
        "the template's Cargo.toml no longer has the line `{DEP_LINE}` that users edit"
    );
    let here = env!("CARGO_MANIFEST_DIR");
    let manifest = manifest.replace(
        DEP_LINE,
        &format!("sunrise-backend-api = {{ path = {here:?} }}"),
    );
    // Its own workspace root, wherever the temporary directory is.
    let manifest = format!("{manifest}\n[workspace]\n");
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("writing Cargo.toml");
    std::fs::copy(src.join("src/lib.rs"), dir.join("src/lib.rs")).expect("copying src/lib.rs");

    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust-template-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(&cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap_or_else(|e| panic!("running {cargo}: {e}"));
    assert!(
        out.status.success(),
        "cargo build of the Rust template failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    let so = target.join("debug").join("libsunrise_backend_mydevice.so");
    assert!(so.is_file(), "{} was not built", so.display());
    so
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

#[test]
fn rust_template_builds_loads_and_runs() {
    let so = build_template();
    let (report, b) = dl::load_backend(&so);
    assert_eq!(
        (report.name.as_str(), report.usable, report.score),
        ("mydevice", true, 1)
    );
    assert_eq!(b.device_count(), 1);
    assert!(b.supports(OpId::Neg, DType::F32) && b.supports(OpId::Fill, DType::F32));
    assert!(!b.supports(OpId::Add, DType::F32));

    // neg of a [3, 2] buffer seen transposed as [2, 3].
    let x = b.alloc(0, 24).expect("alloc");
    let y = b.alloc(0, 24).expect("alloc");
    let xv = [1.0f32, -2.0, 3.5, 0.0, -0.25, 8.0];
    // SAFETY: live buffers of 24 bytes.
    unsafe { b.write(x, 0, &f32_bytes(&xv)) }.expect("write");
    let xd = SrTensorDesc::new(DType::F32, &[2, 3], &[1, 2], x, 0);
    let yd = SrTensorDesc::new(DType::F32, &[2, 3], &[3, 1], y, 0);
    let run = |op, params, ins: &[SrTensorDesc], outs: &[SrTensorDesc]| {
        let call = OpCall {
            op,
            params,
            inputs: ins,
            outputs: outs,
        };
        // SAFETY: descriptors of live buffers of this backend.
        unsafe { b.execute(0, &call) }
    };
    run(OpId::Neg, Params::None, &[xd], &[yd]).expect("neg");
    let mut out = [0u8; 24];
    // SAFETY: a live buffer of 24 bytes.
    unsafe { b.read(y, 0, &mut out) }.expect("read");
    let want: Vec<f32> = (0..2)
        .flat_map(|i| (0..3).map(move |j| -xv[i + 2 * j]))
        .collect();
    assert_eq!(out.to_vec(), f32_bytes(&want));

    let fill = Params::Fill(FillParams {
        struct_size: FillParams::SIZE,
        value: 0.5,
    });
    run(OpId::Fill, fill, &[], &[yd]).expect("fill");
    // SAFETY: as above.
    unsafe { b.read(y, 0, &mut out) }.expect("read");
    assert_eq!(out.to_vec(), f32_bytes(&[0.5; 6]));

    // What the guide asks of every backend.
    let code = |r: sunrise_backend_api::Result<()>| r.unwrap_err().code;
    assert_eq!(
        code(run(OpId::Add, Params::None, &[xd, xd], &[yd])),
        StatusCode::Unsupported
    );
    let mut rank9 = xd;
    rank9.rank = 9;
    assert_eq!(
        code(run(OpId::Neg, Params::None, &[rank9], &[yd])),
        StatusCode::InvalidArgument
    );
    assert_eq!(
        code(run(OpId::Neg, Params::None, &[xd, xd], &[yd])),
        StatusCode::InvalidArgument
    );
    let past = SrTensorDesc::new(DType::F32, &[2, 3], &[3, 1], x, 4);
    assert_eq!(
        code(run(OpId::Neg, Params::None, &[past], &[yd])),
        StatusCode::InvalidArgument
    );
    // SAFETY: a live buffer; the backend checks the range and refuses.
    let past_end = unsafe { b.read(y, 20, &mut out[..8]) };
    assert_eq!(past_end.unwrap_err().code, StatusCode::InvalidArgument);
    // SAFETY: live buffers, freed once.
    unsafe {
        b.free(x);
        b.free(y);
    }
}
