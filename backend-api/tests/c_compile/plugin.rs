//! The example C99 plugin (`examples/c/example_backend.c`), built from the
//! source tree with the checked-in header, loaded with `dlopen` and driven
//! through `TableBackend` as the host drives any plugin.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sunrise_backend_api::abi::*;
use sunrise_backend_api::host::TableBackend;
use sunrise_backend_api::ops::FillParams;
use sunrise_backend_api::{
    log, Backend, BackendError, BufferHandle, DType, OpCall, OpId, Params, StatusCode,
};

use super::{compiler, dl, path_str, run_cc, work_dir, C_PLUGIN};

/// Builds the example plugin with extra `-D` flags; `None` without a compiler.
fn build(test: &str, defines: &[&str]) -> Option<PathBuf> {
    let cc = compiler()?;
    let dir = work_dir(test);
    let c = dir.join("example_backend.c");
    std::fs::write(&c, C_PLUGIN).unwrap_or_else(|e| panic!("writing {}: {e}", c.display()));
    let so = dir.join("libsunrise_backend_example.so");
    let mut args = vec!["-O2", "-shared", "-fPIC", "-Wl,--no-undefined"];
    args.extend_from_slice(defines);
    args.extend([path_str(&c), "-o", path_str(&so)]);
    // The example promises C99; the header must compile as C99 too.
    run_cc(&cc, "c99", &args);
    Some(so)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn f32_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A buffer of the plugin holding `values`.
fn upload(b: &TableBackend, values: &[f32]) -> BufferHandle {
    let h = b.alloc(0, values.len() * 4).expect("alloc");
    // SAFETY: a live buffer of this backend, as large as the values.
    unsafe { b.write(h, 0, &f32_bytes(values)) }.expect("write");
    h
}

fn download(b: &TableBackend, h: BufferHandle, n: usize) -> Vec<f32> {
    let mut out = vec![0u8; n * 4];
    // SAFETY: a live buffer of this backend of at least `n` f32s.
    unsafe { b.read(h, 0, &mut out) }.expect("read");
    f32_values(&out)
}

fn f32_desc(shape: &[usize], strides: &[usize], h: BufferHandle, offset: usize) -> SrTensorDesc {
    SrTensorDesc::new(DType::F32, shape, strides, h, offset)
}

fn run(
    b: &TableBackend,
    op: OpId,
    params: Params,
    inputs: &[SrTensorDesc],
    outputs: &[SrTensorDesc],
) -> Result<(), BackendError> {
    let call = OpCall {
        op,
        params,
        inputs,
        outputs,
    };
    // SAFETY: descriptors name live buffers of this backend; the plugin
    // checks that they stay within them (some of these calls test that).
    unsafe { b.execute(0, &call) }
}

#[test]
fn c_plugin_builds_loads_and_runs() {
    let Some(so) = build("plugin", &[]) else {
        return;
    };
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&logs);
    log::set_sink(Box::new(move |level, target, message| {
        let line = format!("{level:?} {target}: {message}");
        sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }));
    let (report, backend) = dl::load_backend(&so);
    assert_eq!(
        (
            report.abi_major,
            report.abi_minor,
            report.usable,
            report.score
        ),
        (1, 0, true, 1),
        "{report:?}"
    );
    assert_eq!(report.name, "example");
    let logged = logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let ready = "Info example: example backend ready: 1 device, 7 f32 ops";
    assert!(logged.iter().any(|l| l == ready), "{logged:?}");
    check_device(&backend);
    check_buffers(&backend);
    check_elementwise(&backend);
    check_fill_and_ranks(&backend);
    check_errors(&backend);
    drop(backend);
    if let Some(dir) = so.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn check_device(b: &TableBackend) {
    // The example implements ABI 1.0 (its table ends at `execute`).
    assert_eq!(b.abi_minor(), 0);
    assert_eq!(b.device_count(), 1);
    let d = b
        .device_info(0)
        .unwrap_or_else(|e| panic!("device_info: {e:?}"));
    assert_eq!(
        (d.kind, d.name.as_str()),
        (SR_DEVICE_CPU, "example C99 device (host memory)")
    );
    assert_eq!((d.total_memory, d.compute_capability), (0, None));
    assert_eq!(d.driver_version, None);
    assert!(d
        .attributes
        .contains(&("lang".to_owned(), "C99".to_owned())));
    // A status made in C crosses, is read, and is released by its own `release`.
    let e = b.device_info(1).unwrap_err();
    assert_eq!(e.code, StatusCode::InvalidArgument);
    assert_eq!(e.message, "example: no device 1 (it has one, 0)");
    assert!(b.synchronize(0).is_ok());
    assert_eq!(
        b.synchronize(3).unwrap_err().code,
        StatusCode::InvalidArgument
    );
    let mut listed: Vec<(u32, u32)> = b.supported_ops().iter().map(|p| (p.op, p.dtype)).collect();
    listed.sort_unstable();
    let mut want: Vec<(u32, u32)> = [
        OpId::Neg,
        OpId::Relu,
        OpId::Add,
        OpId::Sub,
        OpId::Mul,
        OpId::Fill,
        OpId::Copy,
    ]
    .iter()
    .map(|&op| (op as u32, SR_DTYPE_F32))
    .collect();
    want.sort_unstable();
    assert_eq!(listed, want);
    assert!(!b.supports(OpId::Add, DType::F64));
    // The 1.1 entry `set_option` is absent: refused by the host, never called.
    let e = b.set_option("tf32", "on").unwrap_err();
    assert_eq!(e.code, StatusCode::Unsupported, "{e:?}");
    assert!(e.message.contains("no options"), "{}", e.message);
}

fn check_buffers(b: &TableBackend) {
    // 0 bytes is a real handle; odd sizes round-trip exactly.
    for bytes in [0usize, 1, 3, 63, 64, 65, 1000] {
        let h = b.alloc(0, bytes).expect("alloc");
        assert_eq!(h.as_raw() as usize % 8, 0);
        let data: Vec<u8> = (0..bytes).map(|i| (i * 7 + 1) as u8).collect();
        // SAFETY: a live buffer of `bytes` bytes.
        unsafe { b.write(h, 0, &data) }.expect("write");
        let mut back = vec![0u8; bytes];
        // SAFETY: as above.
        unsafe { b.read(h, 0, &mut back) }.expect("read");
        assert_eq!(back, data);
        // One byte past the end, and an offset past the end: InvalidArgument.
        let mut one = [0u8; 1];
        // SAFETY: a live buffer; the plugin checks the range and refuses.
        let e = unsafe { b.read(h, bytes, &mut one) }.unwrap_err();
        assert_eq!(e.code, StatusCode::InvalidArgument, "{e:?}");
        // SAFETY: as above.
        let e = unsafe { b.write(h, bytes + 1, &[]) }.unwrap_err();
        assert_eq!(e.code, StatusCode::InvalidArgument, "{e:?}");
        // SAFETY: as above; offset + len overflows u64 inside the plugin.
        let e = unsafe { b.read(h, usize::MAX, &mut one) }.unwrap_err();
        assert_eq!(e.code, StatusCode::InvalidArgument, "{e:?}");
        // SAFETY: a live buffer of this backend, freed once.
        unsafe { b.free(h) };
    }
}

/// The reference of one op on one pair of values.
fn reference(op: OpId, a: f32, b: f32) -> f32 {
    match op {
        OpId::Neg => -a,
        OpId::Relu => {
            if 0.0 > a {
                0.0
            } else {
                a
            }
        }
        OpId::Copy => a,
        OpId::Add => a + b,
        OpId::Sub => a - b,
        OpId::Mul => a * b,
        _ => unreachable!("not an op of the example"),
    }
}

/// Every listed elementwise op on a transposed input, a broadcast input and
/// a strided output (every other element of a wider buffer).
fn check_elementwise(b: &TableBackend) {
    // a: a [3, 2] buffer seen transposed as [2, 3]; b: a row [3] broadcast
    // over 2 rows; c: [2, 3] at strides [8, 2] in a buffer of 16, offset 1.
    let av = [1.5f32, -2.0, 0.0, 3.0, 4.25, -0.5];
    let bv = [0.5f32, -1.0, 2.0];
    let (ha, hb, hc) = (upload(b, &av), upload(b, &bv), upload(b, &[9.0; 16]));
    let a = f32_desc(&[2, 3], &[1, 2], ha, 0);
    let bb = f32_desc(&[2, 3], &[0, 1], hb, 0);
    let c = f32_desc(&[2, 3], &[8, 2], hc, 4);
    for op in [
        OpId::Neg,
        OpId::Relu,
        OpId::Copy,
        OpId::Add,
        OpId::Sub,
        OpId::Mul,
    ] {
        let binary = matches!(op, OpId::Add | OpId::Sub | OpId::Mul);
        let inputs: &[SrTensorDesc] = if binary { &[a, bb] } else { &[a] };
        run(b, op, Params::None, inputs, &[c]).unwrap_or_else(|e| panic!("{op}: {e:?}"));
        let got = download(b, hc, 16);
        let mut want = [9.0f32; 16];
        for i in 0..2 {
            for j in 0..3 {
                want[1 + 8 * i + 2 * j] = reference(op, av[i + 2 * j], bv[j]);
            }
        }
        assert_eq!(got, want, "{op}");
    }
    // SAFETY: live buffers of this backend, freed once.
    unsafe {
        b.free(ha);
        b.free(hb);
        b.free(hc);
    }
}

fn check_fill_and_ranks(b: &TableBackend) {
    let fill = |value: f64| {
        Params::Fill(FillParams {
            struct_size: FillParams::SIZE,
            value,
        })
    };
    // Rank 0: one element.
    let h = upload(b, &[0.0; 2]);
    let scalar = f32_desc(&[], &[], h, 4);
    run(b, OpId::Fill, fill(2.5), &[], &[scalar]).expect("fill rank 0");
    assert_eq!(download(b, h, 2), [0.0, 2.5]);
    // Rank 8, every dim 2 (256 elements), the input broadcast along dim 3.
    let shape = [2usize; 8];
    let contiguous: Vec<usize> = (0..8).map(|k| 1 << (7 - k)).collect();
    let mut bcast = contiguous.clone();
    bcast[3] = 0;
    let x: Vec<f32> = (0..256).map(|i| i as f32 - 100.0).collect();
    let (hx, hy) = (upload(b, &x), upload(b, &[0.0; 256]));
    let xd = f32_desc(&shape, &bcast, hx, 0);
    let yd = f32_desc(&shape, &contiguous, hy, 0);
    run(b, OpId::Relu, Params::None, &[xd], &[yd]).expect("relu rank 8");
    let got = download(b, hy, 256);
    for (i, g) in got.iter().enumerate() {
        let src = i & !(1 << 4); // dim 3 has stride 16 in the contiguous layout
        assert_eq!(*g, x[src].max(0.0), "element {i}");
    }
    // relu keeps NaN (0 > NaN is false), as the CPU backend does.
    let hn = upload(b, &[f32::NAN, -1.0]);
    let n = f32_desc(&[2], &[1], hn, 0);
    let two = f32_desc(&[2], &[1], hy, 0);
    run(b, OpId::Relu, Params::None, &[n], &[two]).expect("relu NaN");
    let got = download(b, hy, 2);
    assert!(got[0].is_nan() && got[1] == 0.0, "{got:?}");
    // SAFETY: live buffers of this backend, freed once.
    unsafe {
        b.free(h);
        b.free(hx);
        b.free(hy);
        b.free(hn);
    }
}

fn check_errors(b: &TableBackend) {
    let (hx, hy) = (upload(b, &[1.0; 6]), upload(b, &[0.0; 6]));
    let x = f32_desc(&[2, 3], &[3, 1], hx, 0);
    let y = f32_desc(&[2, 3], &[3, 1], hy, 0);
    let code = |op, ins: &[SrTensorDesc], outs: &[SrTensorDesc]| {
        run(b, op, Params::None, ins, outs).unwrap_err().code
    };
    // Pairs it does not list: Unsupported (the host then runs them on the CPU).
    assert_eq!(code(OpId::Div, &[x, x], &[y]), StatusCode::Unsupported);
    assert_eq!(code(OpId::Exp, &[x], &[y]), StatusCode::Unsupported);
    let mut x64 = x;
    x64.dtype = SR_DTYPE_F64;
    x64.shape[1] = 1;
    assert_eq!(code(OpId::Add, &[x64, x64], &[y]), StatusCode::Unsupported);
    let mut xi = x;
    xi.dtype = SR_DTYPE_I64;
    xi.shape[1] = 1;
    assert_eq!(code(OpId::Neg, &[xi], &[y]), StatusCode::Unsupported);
    let e = run(b, OpId::Add, Params::None, &[x64, x64], &[y]).unwrap_err();
    assert!(e.message.contains("f32 only"), "{}", e.message);
    // Bad calls: InvalidArgument.
    let invalid = StatusCode::InvalidArgument;
    assert_eq!(code(OpId::Add, &[x], &[y]), invalid, "one input");
    assert_eq!(code(OpId::Neg, &[x], &[y, y]), invalid, "two outputs");
    assert_eq!(code(OpId::Neg, &[x, x], &[y]), invalid, "two inputs");
    let mut rank9 = x;
    rank9.rank = 9;
    assert_eq!(code(OpId::Neg, &[rank9], &[y]), invalid, "rank 9");
    assert_eq!(code(OpId::Neg, &[x], &[rank9]), invalid, "rank 9 output");
    let wide = f32_desc(&[3, 2], &[2, 1], hx, 0);
    assert_eq!(code(OpId::Add, &[x, wide], &[y]), invalid, "shapes");
    let mut y64 = y;
    y64.dtype = SR_DTYPE_F64;
    y64.shape[1] = 1;
    assert_eq!(code(OpId::Neg, &[x], &[y64]), invalid, "output dtype");
    let mut xu8 = x;
    xu8.dtype = SR_DTYPE_U8;
    assert_eq!(
        code(OpId::Mul, &[x, xu8], &[y]),
        invalid,
        "second input dtype"
    );
    let past = f32_desc(&[2, 3], &[3, 1], hx, 4);
    assert_eq!(code(OpId::Neg, &[past], &[y]), invalid, "view past the end");
    let overlapping = f32_desc(&[2, 3], &[0, 1], hy, 0);
    assert_eq!(code(OpId::Neg, &[x], &[overlapping]), invalid, "overlap");
    let mut null = y;
    null.buffer = std::ptr::null_mut();
    assert_eq!(code(OpId::Neg, &[x], &[null]), invalid, "null buffer");
    let e = run(b, OpId::Fill, Params::None, &[], &[y]).unwrap_err();
    assert_eq!(e.code, invalid, "fill without params");
    // The failed calls wrote nothing.
    assert_eq!(download(b, hy, 6), [0.0; 6]);
    // SAFETY: live buffers of this backend, freed once.
    unsafe {
        b.free(hx);
        b.free(hy);
    }
}

#[test]
fn wrong_add_is_wrong_by_a_thousandth() {
    let Some(so) = build("wrong-add", &["-DSUNRISE_EXAMPLE_WRONG_ADD"]) else {
        return;
    };
    let (report, b) = dl::load_backend(&so);
    assert_eq!(report.name, "example");
    let av = [1.0f32, -2.0, 100.0, 0.0];
    let (ha, hc) = (upload(&b, &av), upload(&b, &[0.0; 4]));
    let a = f32_desc(&[4], &[1], ha, 0);
    let c = f32_desc(&[4], &[1], hc, 0);
    run(&b, OpId::Add, Params::None, &[a, a], &[c]).expect("add");
    let got = download(&b, hc, 4);
    for (g, x) in got.iter().zip(av) {
        assert!(
            (g - (x + x + 1e-3 * x.abs())).abs() <= 1e-5 * x.abs(),
            "{g} for {x}"
        );
    }
    assert_ne!(got[0], 2.0);
    // The other kernels are untouched.
    run(&b, OpId::Sub, Params::None, &[a, a], &[c]).expect("sub");
    assert_eq!(download(&b, hc, 4), [0.0; 4]);
    // SAFETY: live buffers of this backend, freed once.
    unsafe {
        b.free(ha);
        b.free(hc);
    }
    drop(b);
    if let Some(dir) = so.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
