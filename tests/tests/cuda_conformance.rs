//! Cross-backend conformance on a GPU: every (op, dtype) pair the CUDA
//! plugin lists in `supported_ops`, on seeded random inputs, run on `cuda:0`
//! and on the CPU backend linked into the core, through the core's public
//! API, forward and backward (autograd gradients where the op is
//! differentiable), compared within a tolerance per op family. Then the
//! main job, training the digits CNN, on the GPU against the CPU.
//!
//! Without a usable GPU the plugin's probe says why, and each test prints
//! `skipped: <reason>` and passes: CI has no GPU. `scripts/gpu-check.sh`
//! runs this binary, built on a machine with Rust, on a GPU machine.
//!
//! Finding the plugin: when `SUNRISE_BACKEND_PATH` is set (as
//! `gpu-check.sh` sets it), the core's normal discovery; otherwise the
//! plugin built from this tree (with cargo, as the other plugin tests do).
//!
//! Inputs: every case builds its inputs from seeds on the host (the same
//! values on both devices), with several shapes including odd sizes, at
//! least one non-contiguous view, and broadcasting for binary ops.
//!
//! Tolerances: an output matches when, for every element,
//! `|gpu - cpu| <= tol * (|cpu| + 0.1 * max|cpu|)`: relative, with a floor
//! at a tenth of the tensor's largest value so that values near zero (where
//! summation order decides the last bits) are held to the tensor's scale.
//! | family | f32 | f64 |
//! |---|---|---|
//! | exact (copies, casts, fill, concat, where, compares, index_select, max/min, argmax, max pooling) | bit-exact | bit-exact |
//! | elementwise (unary, binary, unary_backward) | 1e-5 | 1e-12 |
//! | reductions, softmax, losses, average pooling, index_add | 1e-5 | 1e-12 |
//! | layer/batch norm | 1e-4 | 1e-10 |
//! | matmul, convolution (another summation order) | 1e-4 | 1e-10 |
//!
//! Gradients (through several kernels) get ten times their family's
//! tolerance (an exact family's gradients that of elementwise). Integer and
//! mask outputs are always compared exactly. An (op, dtype) pair the plugin
//! lists but then answers `Unsupported` for (so the core ran it on the CPU)
//! is a failure: conformance must compare the GPU's kernels.

mod common;

use std::sync::OnceLock;
use std::time::Instant;

use common::{TempDir, CUDA_PLUGIN};
use sunrise::plugin::{
    discover, discover_in, Outcome, PathOrigin, SearchPath, SkipKind, BACKEND_PATH_VAR,
};
use sunrise::{Conv2dOptions, DType, Device, OpId, Pool2dOptions, Tensor, UnaryOp};
use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{Backend, BufferHandle, OpCall, Params};

// ---- the device --------------------------------------------------------------------

/// `cuda:0`, or why there is none (the plugin's probe says unusable).
fn cuda() -> Result<Device, String> {
    static CUDA: OnceLock<Result<Device, String>> = OnceLock::new();
    CUDA.get_or_init(find_cuda).clone()
}

fn find_cuda() -> Result<Device, String> {
    let (discovery, _dir) = if std::env::var_os(BACKEND_PATH_VAR).is_some() {
        (discover(), None)
    } else {
        let dir = TempDir::new("cuda-conformance");
        dir.copy_in(&common::cuda_plugin(), CUDA_PLUGIN);
        let d = discover_in(vec![SearchPath::new(dir.path(), PathOrigin::Env)]);
        (d, Some(dir))
    };
    let searched: Vec<String> = discovery
        .searched
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let cand = discovery
        .candidates
        .iter()
        .find(|c| c.path.file_name().is_some_and(|f| f == CUDA_PLUGIN))
        .unwrap_or_else(|| {
            panic!(
                "{CUDA_PLUGIN} was not found; searched: {}",
                searched.join(", ")
            )
        });
    match &cand.outcome {
        Outcome::Skipped(r) if r.kind == SkipKind::Unusable => return Err(r.to_string()),
        Outcome::Skipped(r) => panic!("{} could not be used: {r}", cand.path.display()),
        Outcome::Loaded { .. } => {}
    }
    let p = discovery
        .plugins
        .into_iter()
        .find(|p| p.name == "cuda")
        .expect("the loaded cuda plugin");
    println!("cuda plugin: {}", p.path.display());
    let dev = Device::from_backend(p.backend, 0, "cuda:0");
    let info = dev.backend().device_info(0).map_err(|e| e.to_string())?;
    println!(
        "cuda:0: {} (compute {:?}), {:?}, {:?}",
        info.name, info.compute_capability, info.driver_version, info.library_versions
    );
    for (k, v) in &info.attributes {
        if k == "tf32" && v == "on" {
            panic!("TF32 is on (SUNRISE_CUDA_TF32): conformance compares strict f32; unset it");
        }
    }
    Ok(dev)
}

/// The device, or `None` after printing why the test is skipped. With
/// `SUNRISE_CUDA_REQUIRE=1` (CI's run on the CPU emulator, tests/cuda-emu,
/// and scripts/gpu-check.sh) a skip is a failure instead.
fn cuda_or_skip() -> Option<Device> {
    match cuda() {
        Ok(d) => Some(d),
        Err(reason) => {
            assert!(
                std::env::var_os("SUNRISE_CUDA_REQUIRE").is_none(),
                "SUNRISE_CUDA_REQUIRE is set but cuda:0 is unusable: {reason}"
            );
            println!("skipped: {reason}");
            None
        }
    }
}

// ---- inputs ------------------------------------------------------------------------

/// SplitMix64: seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// A tensor of `dtype` on `dev` from f64 values (rounded for integers).
fn tensor_of(vals: &[f64], shape: &[usize], dtype: DType, dev: &Device) -> sunrise::Result<Tensor> {
    match dtype {
        DType::F32 => Tensor::from_slice(
            &vals.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            shape,
            dev,
        ),
        DType::F64 => Tensor::from_slice(vals, shape, dev),
        DType::I64 => Tensor::from_slice(
            &vals.iter().map(|&v| v.floor() as i64).collect::<Vec<_>>(),
            shape,
            dev,
        ),
        DType::U8 => Tensor::from_slice(
            &vals
                .iter()
                .map(|&v| v.floor().clamp(0.0, 255.0) as u8)
                .collect::<Vec<_>>(),
            shape,
            dev,
        ),
    }
}

/// Uniform values in `[lo, hi)` (integer dtypes: their floors).
fn uni(
    shape: &[usize],
    lo: f64,
    hi: f64,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> sunrise::Result<Tensor> {
    let mut rng = Rng(seed);
    let v: Vec<f64> = (0..numel(shape)).map(|_| rng.uniform(lo, hi)).collect();
    tensor_of(&v, shape, dtype, dev)
}

/// Integer values in `[lo, hi)` in any dtype (floats too: ties on purpose).
fn ints(
    shape: &[usize],
    lo: i64,
    hi: i64,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> sunrise::Result<Tensor> {
    let mut rng = Rng(seed);
    let v: Vec<f64> = (0..numel(shape))
        .map(|_| rng.uniform(lo as f64, hi as f64).floor())
        .collect();
    tensor_of(&v, shape, dtype, dev)
}

/// Values of the dtype's natural range: floats in [-2, 2), i64 in
/// [-1000, 1000), u8 over all of 0..=255.
fn any(shape: &[usize], seed: u64, dtype: DType, dev: &Device) -> sunrise::Result<Tensor> {
    match dtype {
        DType::F32 | DType::F64 => uni(shape, -2.0, 2.0, seed, dtype, dev),
        DType::I64 => ints(shape, -1000, 1000, seed, dtype, dev),
        DType::U8 => ints(shape, 0, 256, seed, dtype, dev),
    }
}

/// A leaf that gradients flow to (a no-op for integer dtypes).
fn leaf(t: Tensor) -> Tensor {
    t.set_requires_grad(true)
}

/// A non-contiguous view of logical `shape` over a tensor `make` builds:
/// the last two dims transposed (rank >= 2), or every other element
/// (rank 1). The tensor `make` returns is the leaf gradients reach.
fn strided_view(
    shape: &[usize],
    make: impl FnOnce(&[usize]) -> sunrise::Result<Tensor>,
) -> sunrise::Result<(Tensor, Tensor)> {
    match shape.len() {
        0 => {
            let t = make(shape)?;
            Ok((t.clone(), t))
        }
        1 => {
            let base = make(&[2 * shape[0]])?;
            let v = base.slice(0, 0, 2 * shape[0], 2)?;
            Ok((base, v))
        }
        r => {
            let mut s = shape.to_vec();
            s.swap(r - 1, r - 2);
            let base = make(&s)?;
            let v = base.transpose(-1, -2)?;
            Ok((base, v))
        }
    }
}

// ---- cases -------------------------------------------------------------------------

/// Why a case could not run.
#[derive(Debug)]
struct Fail(String);

impl From<sunrise::Error> for Fail {
    fn from(e: sunrise::Error) -> Fail {
        Fail(e.to_string())
    }
}

type Res<T> = Result<T, Fail>;

/// One output of a case.
struct Out {
    name: String,
    t: Tensor,
    grad: bool,
}

fn out(name: impl Into<String>, t: Tensor) -> Out {
    Out {
        name: name.into(),
        t,
        grad: false,
    }
}

/// How closely a family of ops must match.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Exact,
    Elementwise,
    Reduce,
    Norm,
    Dense,
}

impl Family {
    /// The tolerance for an output of `dtype` (`None`: bit-exact).
    fn tol(self, dtype: DType, grad: bool) -> Option<f64> {
        if !dtype.is_float() {
            return None;
        }
        let f64_ = dtype == DType::F64;
        let base = match (self, grad) {
            (Family::Exact, false) => return None,
            (Family::Exact | Family::Elementwise | Family::Reduce, _) => {
                if f64_ {
                    1e-12
                } else {
                    1e-5
                }
            }
            (Family::Norm | Family::Dense, _) => {
                if f64_ {
                    1e-10
                } else {
                    1e-4
                }
            }
        };
        Some(if grad { base * 10.0 } else { base })
    }
}

type Run = Box<dyn Fn(&Device) -> Res<Vec<Out>>>;

/// One input configuration of one (op, dtype) pair.
struct Case {
    what: String,
    family: Family,
    run: Run,
}

fn case(
    what: impl Into<String>,
    family: Family,
    run: impl Fn(&Device) -> Res<Vec<Out>> + 'static,
) -> Case {
    Case {
        what: what.into(),
        family,
        run: Box::new(run),
    }
}

/// `y`, then (float `y` only) the gradients of `sum(y * w)`, `w` seeded
/// random, with respect to each named leaf.
fn with_grads(name: &str, y: Tensor, leaves: &[(&str, &Tensor)], seed: u64) -> Res<Vec<Out>> {
    let mut outs = vec![out(name, y.detach())];
    if y.dtype().is_float() && leaves.iter().any(|(_, l)| l.requires_grad()) {
        let w = uni(y.shape(), -1.0, 1.0, seed, y.dtype(), y.device())?;
        y.mul(&w)?.sum_all()?.backward()?;
        for (n, l) in leaves {
            if !l.requires_grad() {
                continue;
            }
            let g = l
                .grad()
                .ok_or_else(|| Fail(format!("no gradient reached {n}")))?;
            outs.push(Out {
                name: format!("d{n}"),
                t: g,
                grad: true,
            });
        }
    }
    Ok(outs)
}

fn unary_of(op: OpId) -> Option<UnaryOp> {
    UnaryOp::ALL.into_iter().find(|u| u.op_id() == op)
}

/// Inputs of unary op `u`: in its domain, and wide enough to reach the
/// saturated ends of sigmoid, tanh and GELU.
fn unary_input(
    u: UnaryOp,
    shape: &[usize],
    seed: u64,
    d: DType,
    dev: &Device,
) -> sunrise::Result<Tensor> {
    match u {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => uni(shape, 0.05, 6.0, seed, d, dev),
        _ => uni(shape, -6.0, 6.0, seed, d, dev),
    }
}

const SHAPES: [&[usize]; 4] = [&[1], &[1031], &[7, 33], &[3, 5, 129]];

fn unary_cases(op: OpId, d: DType) -> Vec<Case> {
    let u = unary_of(op).expect("a unary op");
    let mut v = Vec::new();
    if !d.is_float() {
        // The core's unary ops take floats; integer kernels are reached
        // through the ABI directly, on both backends.
        for (what, shape, strides, phys) in [
            ("[1031]", vec![1031], vec![1], 1031),
            ("[7, 33] transposed view", vec![7, 33], vec![1, 7], 231),
        ] {
            v.push(case(what, Family::Exact, move |dev| {
                let mut rng = Rng(11);
                let host: Vec<i64> = (0..phys)
                    .map(|_| rng.uniform(-1000.0, 1000.0).floor() as i64)
                    .collect();
                let y = abi_unary_i64(dev, op, &host, &shape, &strides)?;
                Ok(vec![out("y", y)])
            }));
        }
        return v;
    }
    for (k, shape) in SHAPES.iter().enumerate() {
        let seed = 100 + k as u64;
        v.push(case(
            format!("{shape:?}"),
            Family::Elementwise,
            move |dev| {
                let x = leaf(unary_input(u, shape, seed, d, dev)?);
                with_grads("y", x.unary(u)?, &[("x", &x)], seed + 50)
            },
        ));
        v.push(case(
            format!("{shape:?} strided view"),
            Family::Elementwise,
            move |dev| {
                let (x, xv) =
                    strided_view(shape, |s| Ok(leaf(unary_input(u, s, seed + 7, d, dev)?)))?;
                with_grads("y", xv.unary(u)?, &[("x", &x)], seed + 51)
            },
        ));
    }
    v
}

fn unary_backward_cases(d: DType) -> Vec<Case> {
    let mut v = Vec::new();
    for u in UnaryOp::ALL {
        for (k, shape) in [&[1031][..], &[7, 33]].into_iter().enumerate() {
            let seed = 200 + k as u64;
            v.push(case(
                format!("{u:?} {shape:?} strided x"),
                Family::Elementwise,
                move |dev| {
                    let (_, x) = strided_view(shape, |s| unary_input(u, s, seed, d, dev))?;
                    let dy = uni(shape, -1.0, 1.0, seed + 1, d, dev)?;
                    Ok(vec![out("dx", x.unary_backward(u, &dy)?)])
                },
            ));
        }
    }
    v
}

fn binary_apply(op: OpId, a: &Tensor, b: &Tensor) -> sunrise::Result<Tensor> {
    match op {
        OpId::Add => a.add(b),
        OpId::Sub => a.sub(b),
        OpId::Mul => a.mul(b),
        OpId::Div => a.div(b),
        OpId::Pow => a.pow(b),
        OpId::Maximum => a.maximum(b),
        OpId::Minimum => a.minimum(b),
        OpId::Eq => a.eq(b),
        OpId::Ne => a.ne(b),
        OpId::Lt => a.lt(b),
        OpId::Le => a.le(b),
        OpId::Gt => a.gt(b),
        OpId::Ge => a.ge(b),
        other => unreachable!("{other} is not binary"),
    }
}

/// Operand `which` (0: `a`, 1: `b`) of an arithmetic binary op: `b` away
/// from zero for div, `a` positive for pow (both small for integer pow).
fn operand(
    op: OpId,
    which: u8,
    shape: &[usize],
    seed: u64,
    d: DType,
    dev: &Device,
) -> sunrise::Result<Tensor> {
    match (op, d.is_float(), which) {
        (OpId::Div, true, 1) => uni(shape, 0.5, 2.5, seed, d, dev),
        (OpId::Div, false, 1) => ints(shape, 1, 50, seed, d, dev),
        (OpId::Pow, true, 0) => uni(shape, 0.25, 2.5, seed, d, dev),
        (OpId::Pow, false, 0) => ints(shape, 0, 8, seed, d, dev),
        (OpId::Pow, false, _) => ints(shape, 0, 6, seed, d, dev),
        _ => any(shape, seed, d, dev),
    }
}

/// Shapes of `a` and `b`: broadcasting both ways, a scalar-like operand,
/// same shapes, and `a` as a transposed view.
const BINARY_SHAPES: [(&[usize], &[usize], bool); 5] = [
    (&[4, 1, 9], &[5, 9], false),
    (&[1031], &[1], false),
    (&[3, 5, 7], &[3, 5, 7], false),
    (&[6, 9], &[6, 9], true),
    (&[2, 1, 65], &[2, 129, 1], false),
];

/// `make(shape)` as a leaf, itself or (`view`) reached through a
/// non-contiguous view: `(leaf, what to compute with)`.
fn maybe_view(
    shape: &[usize],
    view: bool,
    make: impl FnOnce(&[usize]) -> sunrise::Result<Tensor>,
) -> sunrise::Result<(Tensor, Tensor)> {
    if view {
        strided_view(shape, |s| Ok(leaf(make(s)?)))
    } else {
        let t = leaf(make(shape)?);
        Ok((t.clone(), t))
    }
}

fn binary_cases(op: OpId, d: DType) -> Vec<Case> {
    BINARY_SHAPES
        .iter()
        .enumerate()
        .map(|(k, &(sa, sb, view))| {
            let seed = 300 + 10 * k as u64;
            let what = format!("{sa:?}{} with {sb:?}", if view { " (view)" } else { "" });
            case(what, Family::Elementwise, move |dev| {
                let (a, av) = maybe_view(sa, view, |s| operand(op, 0, s, seed, d, dev))?;
                let b = leaf(operand(op, 1, sb, seed + 1, d, dev)?);
                let y = binary_apply(op, &av, &b)?;
                with_grads("y", y, &[("a", &a), ("b", &b)], seed + 5)
            })
        })
        .collect()
}

fn comparison_cases(op: OpId, d: DType) -> Vec<Case> {
    let mut v: Vec<Case> = BINARY_SHAPES
        .iter()
        .enumerate()
        .map(|(k, &(sa, sb, view))| {
            let seed = 400 + 10 * k as u64;
            case(
                format!("{sa:?} with {sb:?}, ties"),
                Family::Exact,
                move |dev| {
                    let (_, a) = maybe_view(sa, view, |s| ints(s, 0, 4, seed, d, dev))?;
                    let b = ints(sb, 0, 4, seed + 1, d, dev)?;
                    Ok(vec![out("mask", binary_apply(op, &a, &b)?)])
                },
            )
        })
        .collect();
    v.push(case("[1031] natural range", Family::Exact, move |dev| {
        let (a, b) = (any(&[1031], 470, d, dev)?, any(&[1031], 471, d, dev)?);
        Ok(vec![out("mask", binary_apply(op, &a, &b)?)])
    }));
    v
}

fn where_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for d in DType::ALL {
        for (k, (sm, sa, sb)) in [
            (&[4, 1, 9][..], &[5, 9][..], &[1][..]),
            (&[1031], &[1031], &[1031]),
            (&[6, 9], &[1, 9], &[6, 1]),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 500 + 10 * k as u64;
            let view = k == 2;
            v.push(case(
                format!("{d} data, mask {sm:?}, a {sa:?}, b {sb:?}"),
                Family::Exact,
                move |dev| {
                    let (_, m) = maybe_view(sm, view, |s| ints(s, 0, 2, seed, DType::U8, dev))?;
                    let a = leaf(any(sa, seed + 1, d, dev)?);
                    let b = leaf(any(sb, seed + 2, d, dev)?);
                    with_grads(
                        "y",
                        Tensor::where_(&m, &a, &b)?,
                        &[("a", &a), ("b", &b)],
                        seed + 3,
                    )
                },
            ));
        }
    }
    v
}

fn fill_cases(d: DType) -> Vec<Case> {
    let values: [f64; 2] = match d {
        DType::F32 | DType::F64 => [2.5, -0.1],
        DType::I64 => [-3.0, 1e12],
        DType::U8 => [7.0, 255.0],
    };
    let mut v = Vec::new();
    for shape in [&[1][..], &[1031], &[3, 5, 7], &[0, 3], &[64, 1024]] {
        for value in values {
            v.push(case(
                format!("{shape:?} = {value}"),
                Family::Exact,
                move |dev| Ok(vec![out("y", Tensor::full(shape, value, d, dev)?)]),
            ));
        }
    }
    v
}

fn copy_cases(d: DType) -> Vec<Case> {
    type View = fn(&Tensor) -> sunrise::Result<Tensor>;
    let views: [(&str, &[usize], View); 7] = [
        ("contiguous [1031]", &[1031], |t| Ok(t.clone())),
        ("transpose of [33, 7]", &[33, 7], |t| t.t()),
        ("slice step 3 of [6, 10]", &[6, 10], |t| t.slice(1, 1, 9, 3)),
        ("permute (2, 0, 1) of [3, 5, 7]", &[3, 5, 7], |t| {
            t.permute(&[2, 0, 1])
        }),
        ("broadcast [5, 1] to [5, 7]", &[5, 1], |t| {
            t.broadcast_to(&[5, 7])
        }),
        ("every other of [2062]", &[2062], |t| t.slice(0, 0, 2062, 2)),
        ("empty [0, 3]", &[0, 3], |t| t.t()),
    ];
    views
        .into_iter()
        .enumerate()
        .map(|(k, (what, shape, view))| {
            case(what, Family::Exact, move |dev| {
                let t = any(shape, 600 + k as u64, d, dev)?;
                Ok(vec![out("y", view(&t)?.deep_copy()?)])
            })
        })
        .collect()
}

fn cast_cases(d: DType) -> Vec<Case> {
    let mut v = Vec::new();
    for to in DType::ALL {
        for (k, shape) in [&[1031][..], &[7, 33]].into_iter().enumerate() {
            let seed = 700 + 10 * k as u64;
            v.push(case(
                format!("to {to}, {shape:?} strided"),
                Family::Exact,
                move |dev| {
                    let make = |s: &[usize]| -> sunrise::Result<Tensor> {
                        if d.is_float() {
                            // Fractions of both signs, and exact zeros.
                            let mut rng = Rng(seed);
                            let vals: Vec<f64> = (0..numel(s))
                                .map(|i| {
                                    if i % 7 == 0 {
                                        0.0
                                    } else {
                                        rng.uniform(-300.0, 300.0)
                                    }
                                })
                                .collect();
                            tensor_of(&vals, s, d, dev)
                        } else {
                            any(s, seed, d, dev)
                        }
                    };
                    let (_, x) = strided_view(shape, make)?;
                    Ok(vec![out("y", x.cast(to)?)])
                },
            ));
        }
    }
    v
}

fn concat_cases(d: DType) -> Vec<Case> {
    let mut v = Vec::new();
    for axis in [0isize, 1, -1] {
        v.push(case(
            format!("three along axis {axis}, one a view"),
            Family::Exact,
            move |dev| {
                let a = leaf(any(&[4, 6, 5], 800, d, dev)?);
                let b = leaf(any(&[4, 6, 5], 801, d, dev)?);
                let bv = b.transpose(0, 2)?.contiguous()?.transpose(0, 2)?;
                let c = leaf(any(&[4, 6, 5], 802, d, dev)?);
                let y = Tensor::concat(&[&a, &bv, &c], axis)?;
                with_grads("y", y, &[("a", &a), ("b", &b), ("c", &c)], 803)
            },
        ));
    }
    v
}

fn reduce_apply(op: OpId, x: &Tensor, axes: &[isize], keep: bool) -> sunrise::Result<Tensor> {
    match op {
        OpId::Sum => x.sum(axes, keep),
        OpId::Mean => x.mean(axes, keep),
        OpId::Max => x.max(axes, keep),
        OpId::Min => x.min(axes, keep),
        OpId::Argmax => x.argmax(axes[0], keep),
        other => unreachable!("{other} is not a reduction"),
    }
}

/// A reduction's input shape, the permutation viewing it, axes, keepdim.
type ReduceCfg = (&'static [usize], Option<&'static [usize]>, Vec<isize>, bool);

fn reduce_cases(op: OpId, d: DType) -> Vec<Case> {
    let mut configs: Vec<ReduceCfg> = vec![
        (&[3, 5, 7], Some(&[2, 0, 1]), vec![0, 2], false),
        (&[3, 5, 7], Some(&[2, 0, 1]), vec![1], true),
        (&[3, 5, 7], None, vec![2], false),
        (&[1031, 257], None, vec![0], false),
        (&[1031, 257], None, vec![1], true),
        (&[1031, 257], None, vec![0, 1], false),
        (&[1 << 20], None, vec![0], false),
        (&[8, 16, 7, 7], None, vec![0, 2, 3], false),
    ];
    if op == OpId::Argmax {
        configs.retain(|c| c.2.len() == 1);
        configs.push((&[3, 5, 7], Some(&[2, 0, 1]), vec![0], false));
    }
    let family = if matches!(op, OpId::Max | OpId::Min | OpId::Argmax) {
        Family::Exact
    } else {
        Family::Reduce
    };
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (shape, perm, axes, keep))| {
            let seed = 900 + k as u64;
            let what = format!(
                "{shape:?}{} over {axes:?}{}",
                perm.map_or(String::new(), |p| format!(" permuted {p:?}")),
                if keep { " keepdim" } else { "" }
            );
            case(what, family, move |dev| {
                let x = leaf(any(shape, seed, d, dev)?);
                let xv = match perm {
                    Some(p) => x.permute(p)?,
                    None => x.clone(),
                };
                with_grads(
                    "y",
                    reduce_apply(op, &xv, &axes, keep)?,
                    &[("x", &x)],
                    seed + 50,
                )
            })
        })
        .collect()
}

fn matmul_cases(d: DType) -> Vec<Case> {
    // (a's shape, b's shape, a as a transposed view, b as a transposed view)
    let configs: [(&[usize], &[usize], bool, bool); 6] = [
        (&[2, 37, 19], &[19, 23], false, true),
        (&[64, 64], &[64, 48], false, false),
        (&[1, 129], &[129, 1], false, false),
        (&[129, 257], &[257, 65], true, false),
        (&[3, 1, 5, 7], &[4, 7, 6], false, false),
        (&[128, 128], &[128, 128], true, true),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (sa, sb, ta, tb))| {
            let seed = 1000 + 10 * k as u64;
            let what = format!(
                "{sa:?}{} x {sb:?}{}",
                if ta { "ᵀview" } else { "" },
                if tb { "ᵀview" } else { "" }
            );
            case(what, Family::Dense, move |dev| {
                let (a, av) = maybe_view(sa, ta, |s| any(s, seed, d, dev))?;
                let (b, bv) = maybe_view(sb, tb, |s| any(s, seed + 1, d, dev))?;
                with_grads("y", av.matmul(&bv)?, &[("a", &a), ("b", &b)], seed + 2)
            })
        })
        .collect()
}

/// One convolution configuration.
#[derive(Clone, Copy)]
struct ConvCfg {
    x: [usize; 4],
    w: [usize; 4],
    bias: bool,
    o: Conv2dOptions,
    /// `x` as a channels-last view.
    nhwc: bool,
}

fn conv_configs() -> Vec<ConvCfg> {
    let o = |s: [usize; 2], p: [usize; 2], dl: [usize; 2], g: usize| Conv2dOptions {
        stride: s,
        padding: p,
        dilation: dl,
        groups: g,
    };
    vec![
        ConvCfg {
            x: [2, 4, 9, 9],
            w: [6, 2, 3, 3],
            bias: true,
            o: o([2, 1], [1, 1], [1, 2], 2),
            nhwc: false,
        },
        ConvCfg {
            x: [3, 3, 11, 13],
            w: [5, 3, 3, 3],
            bias: true,
            o: o([1, 1], [1, 1], [1, 1], 1),
            nhwc: false,
        },
        ConvCfg {
            x: [2, 8, 7, 7],
            w: [16, 8, 1, 1],
            bias: false,
            o: o([1, 1], [0, 0], [1, 1], 1),
            nhwc: false,
        },
        ConvCfg {
            x: [2, 3, 23, 23],
            w: [8, 3, 7, 7],
            bias: true,
            o: o([2, 2], [3, 3], [1, 1], 1),
            nhwc: false,
        },
        ConvCfg {
            x: [2, 4, 9, 9],
            w: [6, 4, 3, 3],
            bias: false,
            o: o([1, 1], [1, 1], [1, 1], 1),
            nhwc: true,
        },
        ConvCfg {
            x: [4, 32, 14, 14],
            w: [32, 32, 3, 3],
            bias: true,
            o: o([1, 1], [1, 1], [1, 1], 1),
            nhwc: false,
        },
    ]
}

impl ConvCfg {
    fn what(&self) -> String {
        format!(
            "x {:?}{} w {:?} stride {:?} pad {:?} dilation {:?} groups {}{}",
            self.x,
            if self.nhwc { " (NHWC view)" } else { "" },
            self.w,
            self.o.stride,
            self.o.padding,
            self.o.dilation,
            self.o.groups,
            if self.bias { " bias" } else { "" }
        )
    }

    /// The leaf `x` and the (maybe channels-last view) tensor to convolve.
    fn input(&self, seed: u64, d: DType, dev: &Device) -> sunrise::Result<(Tensor, Tensor)> {
        let [n, c, h, w] = self.x;
        if self.nhwc {
            let x = leaf(any(&[n, h, w, c], seed, d, dev)?);
            let v = x.permute(&[0, 3, 1, 2])?;
            Ok((x, v))
        } else {
            let x = leaf(any(&self.x, seed, d, dev)?);
            Ok((x.clone(), x))
        }
    }

    fn y_shape(&self) -> sunrise::Result<Vec<usize>> {
        self.o.output_shape("conv2d", &self.x, &self.w)
    }
}

/// `to_channels_last`, then conv (64 channels: the CPU's blocked kernels'
/// whole tiles), relu, a broadcast add and a strided conv: the format
/// kept where the device keeps it (conv on the CPU, elementwise outputs
/// everywhere), values and gradients equal across devices.
fn channels_last_block(d: DType) -> Case {
    case(
        "channels-last conv, relu, add, conv",
        Family::Dense,
        move |dev| {
            let x = leaf(any(&[2, 8, 9, 10], 1190, d, dev)?);
            let w1 = leaf(any(&[64, 8, 3, 3], 1191, d, dev)?);
            let b1 = leaf(any(&[64], 1192, d, dev)?);
            let w2 = leaf(any(&[16, 64, 3, 3], 1193, d, dev)?);
            let shift = any(&[1, 64, 1, 1], 1194, d, dev)?;
            let pad = Conv2dOptions {
                padding: [1, 1],
                ..Default::default()
            };
            let down = Conv2dOptions {
                stride: [2, 2],
                ..pad
            };
            let r = x.to_channels_last()?.conv2d(&w1, Some(&b1), &pad)?.relu()?;
            if !r.is_channels_last() && dev.writes_channels_last_conv() {
                return Err(Fail(format!(
                    "{dev}: relu of a channels-last conv lost the format"
                )));
            }
            let y = r.add(&shift)?.conv2d(&w2, None, &down)?;
            let leaves = [("x", &x), ("w1", &w1), ("b1", &b1), ("w2", &w2)];
            with_grads("y", y, &leaves, 1195)
        },
    )
}

fn conv_cases(op: OpId, d: DType) -> Vec<Case> {
    let extra = (op == OpId::Conv2d).then(|| channels_last_block(d));
    conv_configs()
        .into_iter()
        .enumerate()
        .map(|(k, cfg)| {
            let seed = 1100 + 10 * k as u64;
            case(cfg.what(), Family::Dense, move |dev| {
                let (x, xv) = cfg.input(seed, d, dev)?;
                let w = leaf(any(&cfg.w, seed + 1, d, dev)?);
                let o = &cfg.o;
                match op {
                    OpId::Conv2d => {
                        let b = leaf(any(&[cfg.w[0]], seed + 2, d, dev)?);
                        let y = xv.conv2d(&w, cfg.bias.then_some(&b), o)?;
                        let mut leaves = vec![("x", &x), ("w", &w)];
                        if cfg.bias {
                            leaves.push(("bias", &b));
                        }
                        with_grads("y", y, &leaves, seed + 3)
                    }
                    OpId::Conv2dBackwardData => {
                        let dy = any(&cfg.y_shape()?, seed + 4, d, dev)?;
                        Ok(vec![out(
                            "dx",
                            Tensor::conv2d_backward_data(&dy, &w.detach(), &cfg.x, o)?,
                        )])
                    }
                    _ => {
                        let dy = any(&cfg.y_shape()?, seed + 4, d, dev)?;
                        let dw = Tensor::conv2d_backward_filter(&xv.detach(), &dy, &cfg.w, o)?;
                        Ok(vec![out("dw", dw)])
                    }
                }
            })
        })
        .chain(extra)
        .collect()
}

fn pool_options() -> Vec<Pool2dOptions> {
    let p = |k: [usize; 2], s: [usize; 2], pad: [usize; 2], cip: bool| Pool2dOptions {
        kernel: k,
        stride: s,
        padding: pad,
        count_include_pad: cip,
    };
    vec![
        p([3, 3], [2, 2], [1, 1], false),
        p([3, 3], [2, 2], [1, 1], true),
        Pool2dOptions::square(2),
        p([3, 2], [1, 2], [1, 0], false),
    ]
}

fn pool_cases(op: OpId, d: DType) -> Vec<Case> {
    let family = if matches!(op, OpId::MaxPool2d | OpId::MaxPool2dBackward) {
        Family::Exact
    } else {
        Family::Reduce
    };
    let mut v = Vec::new();
    for (k, po) in pool_options().into_iter().enumerate() {
        for (j, (shape, nhwc)) in [
            ([2usize, 3, 9, 11], false),
            ([2, 5, 8, 7], true),
            ([4, 16, 28, 28], false),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 1200 + 10 * k as u64 + j as u64;
            let what = format!(
                "x {shape:?}{} kernel {:?} stride {:?} pad {:?}{}",
                if nhwc { " (NHWC view)" } else { "" },
                po.kernel,
                po.stride,
                po.padding,
                if po.count_include_pad {
                    " count_include_pad"
                } else {
                    ""
                }
            );
            v.push(case(what, family, move |dev| {
                let [n, c, h, w] = shape;
                let (x, xv) = if nhwc {
                    let x = leaf(any(&[n, h, w, c], seed, d, dev)?);
                    let v = x.permute(&[0, 3, 1, 2])?;
                    (x, v)
                } else {
                    let x = leaf(any(&shape, seed, d, dev)?);
                    (x.clone(), x)
                };
                let ext =
                    |k: usize| (shape[2 + k] + 2 * po.padding[k] - po.kernel[k]) / po.stride[k] + 1;
                let y_shape = [n, c, ext(0), ext(1)];
                match op {
                    OpId::MaxPool2d => with_grads("y", xv.max_pool2d(&po)?, &[("x", &x)], seed + 5),
                    OpId::AvgPool2d => with_grads("y", xv.avg_pool2d(&po)?, &[("x", &x)], seed + 5),
                    OpId::MaxPool2dBackward => {
                        let dy = any(&y_shape, seed + 6, d, dev)?;
                        Ok(vec![out(
                            "dx",
                            Tensor::max_pool2d_backward(&xv.detach(), &dy, &po)?,
                        )])
                    }
                    _ => {
                        let dy = any(&y_shape, seed + 6, d, dev)?;
                        Ok(vec![out(
                            "dx",
                            Tensor::avg_pool2d_backward(&dy, &shape, &po)?,
                        )])
                    }
                }
            }));
        }
    }
    if op == OpId::AvgPool2d {
        v.push(case(
            "global average of [4, 16, 7, 7]",
            family,
            move |dev| {
                let x = leaf(any(&[4, 16, 7, 7], 1290, d, dev)?);
                with_grads("y", x.global_avg_pool2d()?, &[("x", &x)], 1291)
            },
        ));
    }
    v
}

fn softmax_cases(op: OpId, d: DType) -> Vec<Case> {
    // (shape, axis, value range, input as a transposed view)
    let configs: [(&[usize], isize, f64, bool); 6] = [
        (&[6, 5], -1, 2.0, false),
        (&[6, 5], 0, 2.0, false),
        (&[3, 1031], -1, 4.0, false),
        (&[4, 7, 9], 1, 4.0, false),
        (&[9, 7], -1, 4.0, true),
        (&[8, 100], -1, 50.0, false),
    ];
    let log = matches!(op, OpId::LogSoftmax | OpId::LogSoftmaxBackward);
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (shape, axis, range, view))| {
            let seed = 1300 + 10 * k as u64;
            let what = format!(
                "{shape:?}{} axis {axis}, inputs within ±{range}",
                if view { " view" } else { "" }
            );
            case(what, Family::Reduce, move |dev| {
                let fwd = |x: &Tensor| {
                    if log {
                        x.log_softmax(axis)
                    } else {
                        x.softmax(axis)
                    }
                };
                let make = |s: &[usize], on: &Device| -> sunrise::Result<Tensor> {
                    uni(s, -range, range, seed, d, on)
                };
                if matches!(op, OpId::Softmax | OpId::LogSoftmax) {
                    let (x, xv) = maybe_view(shape, view, |s| make(s, dev))?;
                    return with_grads("y", fwd(&xv)?, &[("x", &x)], seed + 5);
                }
                // The backward kernel alone, from the CPU's forward output.
                let y = fwd(&make(shape, &Device::cpu())?)?.to(dev)?;
                let dy = uni(shape, -1.0, 1.0, seed + 6, d, dev)?;
                let dx = if log {
                    Tensor::log_softmax_backward(&y, &dy, axis)?
                } else {
                    Tensor::softmax_backward(&y, &dy, axis)?
                };
                Ok(vec![out("dx", dx)])
            })
        })
        .collect()
}

const EPS: f64 = 1e-5;

fn layer_norm_cases(op: OpId, d: DType) -> Vec<Case> {
    // (x's shape, gamma's shape, x as a transposed view)
    let configs: [(&[usize], &[usize], bool); 4] = [
        (&[4, 3, 5, 5], &[5, 5], false),
        (&[7, 1031], &[1031], false),
        (&[16, 64], &[64], false),
        (&[12, 40], &[40], true),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (sx, sg, view))| {
            let seed = 1400 + 10 * k as u64;
            let what = format!("x {sx:?}{} over {sg:?}", if view { " (view)" } else { "" });
            case(what, Family::Norm, move |dev| {
                let g = leaf(uni(sg, 0.5, 1.5, seed + 1, d, dev)?);
                let b = leaf(any(sg, seed + 2, d, dev)?);
                let (x, xv) = maybe_view(sx, view, |s| any(s, seed, d, dev))?;
                if op == OpId::LayerNorm {
                    let r = xv.layer_norm(&g, &b, EPS)?;
                    let mut outs = with_grads(
                        "y",
                        r.y,
                        &[("x", &x), ("gamma", &g), ("beta", &b)],
                        seed + 3,
                    )?;
                    outs.push(out("mean", r.mean));
                    outs.push(out("rstd", r.rstd));
                    return Ok(outs);
                }
                let cpu = Device::cpu();
                let (xc, gc) = (xv.detach().to(&cpu)?, g.detach().to(&cpu)?);
                let r = xc.layer_norm(&gc, &b.detach().to(&cpu)?, EPS)?;
                let dy = any(sx, seed + 4, d, dev)?;
                let (dx, dg, db) = Tensor::layer_norm_backward(
                    &xv.detach(),
                    &g.detach(),
                    &r.mean.to(dev)?,
                    &r.rstd.to(dev)?,
                    &dy,
                    EPS,
                )?;
                Ok(vec![out("dx", dx), out("dgamma", dg), out("dbeta", db)])
            })
        })
        .collect()
}

fn batch_norm_cases(op: OpId, d: DType) -> Vec<Case> {
    let mut v = Vec::new();
    for (k, (shape, nhwc)) in [
        ([4usize, 3, 5, 5], false),
        ([8, 16, 7, 7], false),
        ([4, 6, 5, 3], true),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 1500 + 10 * k as u64;
        let c = shape[1];
        let what = format!("x {shape:?}{}", if nhwc { " (NHWC view)" } else { "" });
        let input = move |dev: &Device| -> sunrise::Result<(Tensor, Tensor)> {
            let [n, c, h, w] = shape;
            if nhwc {
                let x = leaf(any(&[n, h, w, c], seed, d, dev)?);
                let v = x.permute(&[0, 3, 1, 2])?;
                Ok((x, v))
            } else {
                let x = leaf(any(&shape, seed, d, dev)?);
                Ok((x.clone(), x))
            }
        };
        if op == OpId::BatchNorm {
            v.push(case(
                format!("{what}, training"),
                Family::Norm,
                move |dev| {
                    let (x, xv) = input(dev)?;
                    let g = leaf(uni(&[c], 0.5, 1.5, seed + 1, d, dev)?);
                    let b = leaf(any(&[c], seed + 2, d, dev)?);
                    let r = xv.batch_norm_train(&g, &b, EPS)?;
                    let mut outs = with_grads(
                        "y",
                        r.y,
                        &[("x", &x), ("gamma", &g), ("beta", &b)],
                        seed + 3,
                    )?;
                    outs.push(out("mean", r.mean));
                    outs.push(out("rstd", r.rstd));
                    Ok(outs)
                },
            ));
            v.push(case(
                format!("{what}, inference"),
                Family::Norm,
                move |dev| {
                    let (x, xv) = input(dev)?;
                    let g = leaf(uni(&[c], 0.5, 1.5, seed + 1, d, dev)?);
                    let b = leaf(any(&[c], seed + 2, d, dev)?);
                    let mean = any(&[c], seed + 4, d, dev)?;
                    let var = uni(&[c], 0.2, 3.0, seed + 5, d, dev)?;
                    let y = xv.batch_norm_infer(&g, &b, &mean, &var, EPS)?;
                    with_grads("y", y, &[("x", &x), ("gamma", &g), ("beta", &b)], seed + 6)
                },
            ));
        } else {
            v.push(case(what, Family::Norm, move |dev| {
                let (_, xv) = input(dev)?;
                let g = uni(&[c], 0.5, 1.5, seed + 1, d, dev)?;
                let cpu = Device::cpu();
                let r = xv.detach().to(&cpu)?.batch_norm_train(
                    &g.to(&cpu)?,
                    &any(&[c], seed + 2, d, &cpu)?,
                    EPS,
                )?;
                let dy = any(&shape, seed + 7, d, dev)?;
                let (dx, dg, db) = Tensor::batch_norm_backward(
                    &xv.detach(),
                    &g,
                    &r.mean.to(dev)?,
                    &r.rstd.to(dev)?,
                    &dy,
                    EPS,
                )?;
                Ok(vec![out("dx", dx), out("dgamma", dg), out("dbeta", db)])
            }));
        }
    }
    v
}

fn index_cases(op: OpId, d: DType) -> Vec<Case> {
    // (table's shape, axis, index shape, index range, table as a transposed view)
    let configs: [(&[usize], isize, &[usize], bool); 4] = [
        (&[5, 4], 0, &[6], false),
        (&[5, 4], 1, &[2, 3], false),
        (&[7, 9], 0, &[11], true),
        (&[1000, 64], 0, &[4096], false),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (st, axis, si, view))| {
            let seed = 1600 + 10 * k as u64;
            let what = format!(
                "table {st:?}{} axis {axis}, index {si:?} with repeats",
                if view { " (view)" } else { "" }
            );
            let family = if op == OpId::IndexSelect {
                Family::Exact
            } else {
                Family::Reduce
            };
            case(what, family, move |dev| {
                let a = usize::try_from(axis).expect("axis >= 0");
                let idx = ints(si, 0, st[a] as i64, seed, DType::I64, dev)?;
                if op == OpId::IndexSelect {
                    let (t, tv) = maybe_view(st, view, |s| any(s, seed + 1, d, dev))?;
                    return with_grads(
                        "y",
                        tv.index_select(axis, &idx)?,
                        &[("table", &t)],
                        seed + 2,
                    );
                }
                // index_add into a non-zero target, src shaped like index_select's output.
                let mut src_shape: Vec<usize> = st[..a].to_vec();
                src_shape.extend_from_slice(si);
                src_shape.extend_from_slice(&st[a + 1..]);
                let target = any(st, seed + 3, d, dev)?;
                let src = any(&src_shape, seed + 4, d, dev)?;
                target.index_add_(axis, &idx, &src)?;
                Ok(vec![out("target", target)])
            })
        })
        .collect()
}

fn cross_entropy_cases(op: OpId, d: DType) -> Vec<Case> {
    // (N, C, ignore_index, logit range)
    let configs: [(usize, usize, i64, f64); 4] = [
        (6, 5, 2, 2.0),
        (64, 10, -100, 4.0),
        (3, 1031, -100, 4.0),
        (16, 7, 3, 60.0),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(k, (n, c, ignore, range))| {
            let seed = 1700 + 10 * k as u64;
            let what = format!("[{n}, {c}] ignore_index {ignore}, logits within ±{range}");
            case(what, Family::Reduce, move |dev| {
                let labels = ints(&[n], 0, c as i64, seed, DType::I64, dev)?;
                let logits = leaf(uni(&[n, c], -range, range, seed + 1, d, dev)?);
                if op == OpId::CrossEntropy {
                    let loss = Tensor::cross_entropy(&logits, &labels, ignore)?;
                    return with_grads("loss", loss, &[("logits", &logits)], seed + 2);
                }
                let dloss = uni(&[n], -1.0, 1.0, seed + 3, d, dev)?;
                let dx = Tensor::cross_entropy_backward(&logits.detach(), &labels, &dloss, ignore)?;
                Ok(vec![out("dlogits", dx)])
            })
        })
        .collect()
}

/// The cases of one (op, dtype) pair; `None` for a pair this test does not
/// know (a failure: every listed pair must be compared).
fn cases_for(op: OpId, d: DType) -> Option<Vec<Case>> {
    use OpId::*;
    Some(match op {
        _ if op.is_unary() => unary_cases(op, d),
        _ if op.is_binary() => binary_cases(op, d),
        _ if op.is_comparison() => comparison_cases(op, d),
        UnaryBackward if d.is_float() => unary_backward_cases(d),
        Where if d == DType::U8 => where_cases(),
        Fill => fill_cases(d),
        Copy => copy_cases(d),
        Cast => cast_cases(d),
        Concat => concat_cases(d),
        Sum | Mean | Max | Min | Argmax => reduce_cases(op, d),
        Matmul if d.is_float() => matmul_cases(d),
        Conv2d | Conv2dBackwardData | Conv2dBackwardFilter if d.is_float() => conv_cases(op, d),
        MaxPool2d | MaxPool2dBackward | AvgPool2d | AvgPool2dBackward if d.is_float() => {
            pool_cases(op, d)
        }
        Softmax | SoftmaxBackward | LogSoftmax | LogSoftmaxBackward if d.is_float() => {
            softmax_cases(op, d)
        }
        LayerNorm | LayerNormBackward if d.is_float() => layer_norm_cases(op, d),
        BatchNorm | BatchNormBackward if d.is_float() => batch_norm_cases(op, d),
        IndexSelect | IndexAdd => index_cases(op, d),
        CrossEntropy | CrossEntropyBackward if d.is_float() => cross_entropy_cases(op, d),
        _ => return None,
    })
}

// ---- the ABI path for pairs the core's API does not reach -------------------------

fn abi<T>(what: &str, r: sunrise_backend_api::Result<T>) -> Res<T> {
    r.map_err(|e| Fail(format!("{what}: {e}")))
}

/// Runs unary `op` on i64 `host` data (read with `shape`/`strides`) on
/// `dev`'s backend through the plugin ABI, and returns the contiguous
/// output (read back, and put on `dev` like every other case's outputs).
fn abi_unary_i64(
    dev: &Device,
    op: OpId,
    host: &[i64],
    shape: &[usize],
    strides: &[usize],
) -> Res<Tensor> {
    let b: &dyn Backend = dev.backend().as_ref();
    let ord = dev.ordinal();
    let n = numel(shape);
    let bytes: Vec<u8> = host.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let x = abi("alloc", b.alloc(ord, bytes.len()))?;
    let y = match b.alloc(ord, n * 8) {
        Ok(y) => y,
        Err(e) => {
            // SAFETY: `x` was allocated by `b` above and is freed once.
            unsafe { b.free(x) };
            return Err(Fail(format!("alloc: {e}")));
        }
    };
    let run = |x: BufferHandle, y: BufferHandle| -> Res<Vec<u8>> {
        // SAFETY: `x` is a live buffer of `bytes.len()` bytes.
        abi("write", unsafe { b.write(x, 0, &bytes) })?;
        let contiguous: Vec<usize> = {
            let mut s = vec![1; shape.len()];
            for k in (0..shape.len().saturating_sub(1)).rev() {
                s[k] = s[k + 1] * shape[k + 1];
            }
            s
        };
        let call = OpCall {
            op,
            params: Params::None,
            inputs: &[SrTensorDesc::new(DType::I64, shape, strides, x, 0)],
            outputs: &[SrTensorDesc::new(DType::I64, shape, &contiguous, y, 0)],
        };
        // SAFETY: both descriptors name live buffers of `b` and stay within
        // them (the caller's strides address `host.len()` elements).
        abi(op.name(), unsafe { b.execute(ord, &call) })?;
        let mut back = vec![0u8; n * 8];
        // SAFETY: `y` is a live buffer of `n * 8` bytes.
        abi("read", unsafe { b.read(y, 0, &mut back) })?;
        Ok(back)
    };
    let r = run(x, y);
    // SAFETY: both buffers were allocated by `b` above and are freed once.
    unsafe {
        b.free(x);
        b.free(y);
    }
    let vals: Vec<i64> = r?
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Ok(Tensor::from_slice(&vals, shape, dev)?)
}

// ---- comparison --------------------------------------------------------------------

/// Host values of any tensor as f64 (exact for every dtype used here).
fn host(t: &Tensor) -> sunrise::Result<Vec<f64>> {
    Ok(match t.dtype() {
        DType::F32 => t.to_vec::<f32>()?.into_iter().map(f64::from).collect(),
        DType::F64 => t.to_vec::<f64>()?,
        DType::I64 => t.to_vec::<i64>()?.into_iter().map(|v| v as f64).collect(),
        DType::U8 => t.to_vec::<u8>()?.into_iter().map(f64::from).collect(),
    })
}

/// Compares `gpu` with `cpu`; returns the worst relative error (0 when
/// exact) or why they differ.
fn compare(cpu: &Tensor, gpu: &Tensor, tol: Option<f64>) -> Result<f64, String> {
    if cpu.dtype() != gpu.dtype() || cpu.shape() != gpu.shape() {
        return Err(format!(
            "cpu gives {} {:?}, gpu {} {:?}",
            cpu.dtype(),
            cpu.shape(),
            gpu.dtype(),
            gpu.shape()
        ));
    }
    if cpu.dtype() == DType::I64 {
        let (c, g) = (
            cpu.to_vec::<i64>().map_err(|e| e.to_string())?,
            gpu.to_vec::<i64>().map_err(|e| e.to_string())?,
        );
        return match c.iter().zip(&g).position(|(a, b)| a != b) {
            None => Ok(0.0),
            Some(i) => Err(format!("element {i}: cpu {} gpu {}", c[i], g[i])),
        };
    }
    let c = host(cpu).map_err(|e| e.to_string())?;
    let g = host(gpu).map_err(|e| e.to_string())?;
    let Some(tol) = tol else {
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        return match c.iter().zip(&g).position(|(&a, &b)| !same(a, b)) {
            None => Ok(0.0),
            Some(i) => Err(format!(
                "element {i}: cpu {:e} gpu {:e} (exact match required)",
                c[i], g[i]
            )),
        };
    };
    let scale = c
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f64, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0f64, 0usize);
    for (i, (&a, &b)) in c.iter().zip(&g).enumerate() {
        if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
            if a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()) {
                return Err(format!("element {i}: cpu {a:e} gpu {b:e}"));
            }
            continue;
        }
        let err = (a - b).abs() / (a.abs() + 0.1 * scale + f64::MIN_POSITIVE);
        if err > worst {
            (worst, at) = (err, i);
        }
    }
    if worst > tol {
        return Err(format!(
            "element {at}: cpu {:e} gpu {:e}: error {worst:.2e} > tolerance {tol:.0e} (scale {scale:e})",
            c[at], g[at]
        ));
    }
    Ok(worst)
}

/// How often `op` fell back from `backend` to the CPU so far.
fn fallbacks_of(backend: &str, op: OpId) -> u64 {
    sunrise::registry::fallback_counts()
        .into_iter()
        .filter(|(b, o, _)| b == backend && o == op.name())
        .map(|(_, _, n)| n)
        .sum()
}

/// Runs every case of one pair on `dev` and on the CPU; returns the
/// summary line and the failures.
fn check_pair(dev: &Device, op: OpId, d: DType, cases: Vec<Case>) -> (String, Vec<String>) {
    let cpu = Device::cpu();
    let backend = dev.backend().name().to_string();
    let (mut outputs, mut worst, mut exact_only) = (0usize, 0f64, true);
    let mut failures = Vec::new();
    let mut tols = Vec::new();
    for c in &cases {
        let tag = format!("{op} {d} [{}]", c.what);
        let reference = match (c.run)(&cpu) {
            Ok(r) => r,
            Err(Fail(e)) => {
                failures.push(format!("{tag}: the CPU reference failed: {e}"));
                continue;
            }
        };
        let before = fallbacks_of(&backend, op);
        let got = (c.run)(dev);
        if fallbacks_of(&backend, op) > before {
            failures.push(format!(
                "{tag}: {op} ran on the CPU, not on {dev} (the plugin answered Unsupported, or does not list the pair)"
            ));
        }
        let got = match got {
            Ok(g) => g,
            Err(Fail(e)) => {
                failures.push(format!("{tag}: on {dev}: {e}"));
                continue;
            }
        };
        if got.len() != reference.len() {
            failures.push(format!(
                "{tag}: {} outputs on the CPU, {} on {dev}",
                reference.len(),
                got.len()
            ));
            continue;
        }
        for (r, g) in reference.iter().zip(&got) {
            if g.t.device() != dev {
                failures.push(format!(
                    "{tag}: output {} is on {}, not {dev}",
                    g.name,
                    g.t.device()
                ));
            }
            let tol = c.family.tol(r.t.dtype(), r.grad);
            if let Some(t) = tol {
                exact_only = false;
                if !tols.contains(&t) {
                    tols.push(t);
                }
            }
            match compare(&r.t, &g.t, tol) {
                Ok(e) => worst = worst.max(e / tol.unwrap_or(1.0)),
                Err(e) => failures.push(format!("{tag}: {}: {e}", r.name)),
            }
            outputs += 1;
        }
    }
    tols.sort_by(f64::total_cmp);
    let tol_text = if exact_only {
        "exact".to_string()
    } else {
        let t: Vec<String> = tols.iter().map(|t| format!("{t:.0e}")).collect();
        format!("worst {worst:.2} of tolerance ({})", t.join(", "))
    };
    let line = format!(
        "{:<24} {:<4} {:>3} cases {:>4} outputs  {:<44} {}",
        op.name(),
        d.name(),
        cases.len(),
        outputs,
        tol_text,
        if failures.is_empty() { "ok" } else { "FAILED" }
    );
    (line, failures)
}

/// Every pair `dev`'s backend lists, against the CPU; prints a line per
/// pair and returns `(pairs, failures)`.
fn conformance(dev: &Device) -> (usize, Vec<String>) {
    let started = Instant::now();
    let mut pairs: Vec<(OpId, DType)> = Vec::new();
    let mut failures = Vec::new();
    for p in dev.backend().supported_ops() {
        match (OpId::from_u32(p.op), DType::from_u32(p.dtype)) {
            (Some(op), Some(d)) => pairs.push((op, d)),
            _ => failures.push(format!(
                "{dev} lists an unknown pair: op {} dtype {}",
                p.op, p.dtype
            )),
        }
    }
    println!(
        "conformance: {} (op, dtype) pairs listed by {dev}; each against the CPU backend",
        pairs.len()
    );
    for &(op, d) in &pairs {
        let Some(cases) = cases_for(op, d) else {
            failures.push(format!(
                "{op} {d}: listed by {dev}, but this test has no case for it"
            ));
            continue;
        };
        let (line, f) = check_pair(dev, op, d, cases);
        println!("  {line}");
        failures.extend(f);
    }
    let missing: Vec<&str> = OpId::ALL
        .iter()
        .filter(|op| !pairs.iter().any(|(o, _)| o == *op))
        .map(|op| op.name())
        .collect();
    if !missing.is_empty() {
        println!(
            "  not listed by {dev} (they run on the CPU): {}",
            missing.join(", ")
        );
    }
    let other: Vec<String> = sunrise::registry::fallback_counts()
        .into_iter()
        .filter(|(b, _, _)| b == dev.backend().name())
        .map(|(_, op, n)| format!("{op} x{n}"))
        .collect();
    if !other.is_empty() {
        println!(
            "  ops that fell back from {dev} to the CPU during these checks: {}",
            other.join(", ")
        );
    }
    println!(
        "conformance: {} pairs, {} failures, {:.1} s",
        pairs.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    (pairs.len(), failures)
}

#[test]
fn every_listed_op_and_dtype_matches_the_cpu_backend() {
    let Some(dev) = cuda_or_skip() else {
        return;
    };
    let (pairs, failures) = conformance(&dev);
    assert!(pairs > 0, "the plugin lists no ops");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---- the harness itself, on the CPU plugin (runs everywhere, needs cargo) ----------

/// The CPU backend loaded as a plugin: a real device that lists every pair
/// of op set v1 and must match the linked CPU backend bit for bit.
fn cpu_plugin() -> (TempDir, Device) {
    let dir = TempDir::new("conformance-harness");
    dir.copy_cdylib("sunrise-backend-cpu-plugin", common::CPU_PLUGIN);
    let p = sunrise::plugin::load_plugin(&dir.path().join(common::CPU_PLUGIN))
        .expect("the CPU plugin loads");
    (dir, Device::from_backend(p.backend, 0, "cpu-plugin:0"))
}

#[test]
fn harness_has_a_case_for_every_pair_of_op_set_v1_and_passes_the_cpu_plugin() {
    let (_dir, dev) = cpu_plugin();
    let (pairs, failures) = conformance(&dev);
    assert!(pairs > 100, "the CPU plugin lists only {pairs} pairs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for op in OpId::ALL {
        assert!(
            DType::ALL.iter().any(|&d| dev.supports(*op, d)),
            "{op}: the CPU plugin lists it for no dtype, so no case of it ran here"
        );
    }
}

#[test]
fn harness_comparison_has_teeth() {
    let cpu = Device::cpu();
    let t = |v: &[f32]| Tensor::from_slice(v, &[v.len()], &cpu).unwrap();
    let a = t(&[1.0, -2.0, 100.0, 0.0]);
    // Exact: one ulp is a mismatch.
    let ulp = t(&[1.0, f32::from_bits((-2.0f32).to_bits() + 1), 100.0, 0.0]);
    assert!(compare(&a, &a, None).is_ok());
    assert!(compare(&a, &ulp, None).unwrap_err().contains("element 1"));
    // Tolerance: relative to |cpu| plus a tenth of the largest value.
    let near = t(&[1.0 + 1e-6, -2.0, 100.0, 1e-4]);
    let err = compare(&a, &near, Some(1e-5)).unwrap();
    assert!(err > 0.0 && err <= 1e-5, "{err}");
    let far = t(&[1.0, -2.0, 100.0, 0.2]);
    assert!(compare(&a, &far, Some(1e-5))
        .unwrap_err()
        .contains("element 3"));
    // Shapes, dtypes, NaN and integers.
    assert!(compare(&a, &t(&[1.0, -2.0, 100.0]), Some(1.0)).is_err());
    assert!(compare(&a, &a.cast(DType::F64).unwrap(), Some(1.0)).is_err());
    assert!(compare(&t(&[f32::NAN]), &t(&[1.0]), Some(1.0)).is_err());
    assert!(compare(&t(&[f32::NAN]), &t(&[f32::NAN]), None).is_ok());
    let i = |v: &[i64]| Tensor::from_slice(v, &[v.len()], &cpu).unwrap();
    assert!(compare(&i(&[1, 2]), &i(&[1, 3]), Some(1.0)).is_err());
    // Tolerances: integers exact; gradients looser than values.
    assert_eq!(Family::Dense.tol(DType::I64, true), None);
    assert_eq!(Family::Exact.tol(DType::F32, false), None);
    assert!(Family::Exact.tol(DType::F32, true).is_some());
    assert!(Family::Dense.tol(DType::F64, false) < Family::Dense.tol(DType::F32, false));
}

#[test]
fn harness_reports_an_op_that_ran_on_the_cpu_instead() {
    // The `partial` fixture lists only fill, copy, cast, add and mul on
    // f32: its matmul runs on the CPU (right values), which must still fail.
    let dir = TempDir::new("conformance-partial");
    let path = dir.copy_cdylib("sunrise-fixture-partial", "libsunrise_backend_partial.so");
    let p = sunrise::plugin::load_plugin(&path).expect("the partial plugin loads");
    let dev = Device::from_backend(p.backend, 0, "partial:0");
    let (line, failures) = check_pair(&dev, OpId::Matmul, DType::F32, matmul_cases(DType::F32));
    assert!(line.ends_with("FAILED"), "{line}");
    assert_eq!(failures.len(), 6, "{failures:#?}");
    assert!(
        failures
            .iter()
            .all(|f| f.contains("ran on the CPU, not on partial:0")),
        "{failures:#?}"
    );
    // What it does run passes.
    let (line, failures) = check_pair(
        &dev,
        OpId::Add,
        DType::F32,
        binary_cases(OpId::Add, DType::F32),
    );
    assert!(
        failures.is_empty() && line.ends_with("ok"),
        "{line}: {failures:#?}"
    );
}

// ---- the main job ------------------------------------------------------------------

#[test]
fn training_the_digits_cnn_on_the_gpu_reaches_the_cpu_accuracy_band() {
    use sunrise::data::{digits, Normalization};
    use sunrise::train::{fit, ModelSpec, TrainOptions};
    let Some(dev) = cuda_or_skip() else {
        return;
    };
    // The split and normalisation `sunrise train` uses.
    let all = digits().expect("the embedded digits");
    let (mut tr, mut te) = all.split_stratified(0.2, 7).expect("split");
    let norm = Normalization::new(0.0, 16.0).expect("normalisation");
    tr.normalize(&norm);
    te.normalize(&norm);
    let spec = ModelSpec::for_dataset(&tr, norm).expect("model spec");
    let opts = TrainOptions::default();
    let run = |d: &Device| {
        let t = Instant::now();
        let mut init = sunrise::nn::Init::new(opts.seed, DType::F32, d).expect("init");
        let model = spec.build(&mut init).expect("model");
        let stats = fit(&model, &tr, &te, d, &opts, &mut |_| {}, &mut |_| {})
            .unwrap_or_else(|e| panic!("training on {d}: {e}"));
        let last = *stats.last().expect("at least one epoch");
        println!(
            "train on {d}: {} epochs, final loss {:.4}, train acc {:.2}%, held-out acc {:.2}%, {:.1} s",
            stats.len(),
            last.loss,
            100.0 * last.train_accuracy,
            100.0 * last.test_accuracy,
            t.elapsed().as_secs_f64()
        );
        last
    };
    let cpu = run(&Device::cpu());
    let gpu = run(&dev);
    let fb: Vec<String> = sunrise::registry::fallback_counts()
        .into_iter()
        .filter(|(b, _, _)| b == dev.backend().name())
        .map(|(_, op, n)| format!("{op} x{n}"))
        .collect();
    if !fb.is_empty() {
        println!("ops that fell back to the CPU: {}", fb.join(", "));
    }
    assert!(
        gpu.loss.is_finite() && gpu.loss < 0.1,
        "the GPU run did not converge: {gpu:?}"
    );
    assert!(
        gpu.test_accuracy >= 0.95,
        "GPU held-out accuracy {:.4}",
        gpu.test_accuracy
    );
    assert!(
        (gpu.test_accuracy - cpu.test_accuracy).abs() <= 0.02,
        "held-out accuracy: cpu {:.4}, gpu {:.4}: more than 2 points apart",
        cpu.test_accuracy,
        gpu.test_accuracy
    );
}
