//! conv2d forward, backward-data and backward-filter through cuDNN's
//! convolution API (NCHW, packed). The algorithm is chosen once per shape
//! from cuDNN's heuristics (`cudnnGet*Algorithm_v7`, the choice PyTorch
//! makes with `cudnn.benchmark` off), cached per device, and its workspace
//! comes from the device's grow-only cuDNN workspace. Strict f32 sets
//! `CUDNN_FMA_MATH` on the convolution descriptor (cuDNN's default math
//! would use TF32 tensor cores); `SUNRISE_CUDA_TF32=1` sets
//! `CUDNN_TENSOR_OP_MATH` instead. Non-contiguous operands are copied into
//! contiguous temporaries first; the bias of `conv2d` is added by a kernel.

use std::ffi::c_void;

use cudarc::cudnn::sys as dnn;
use cudarc::driver::sys::CUdeviceptr;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::ops::Conv2dParams;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result, StatusCode};

use crate::device::Ctx;
use crate::elementwise::{bias_add, copy, views};
use crate::launch::{Strided, View};

/// The three conv ops on f32 and f64.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    crate::pairs(
        &[
            OpId::Conv2d,
            OpId::Conv2dBackwardData,
            OpId::Conv2dBackwardFilter,
        ],
        &[DType::F32, DType::F64],
    )
}

/// Everything an algorithm choice depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConvKey {
    op: u32,
    dtype: u32,
    x: [i32; 4],
    w: [i32; 4],
    pad: [i32; 2],
    stride: [i32; 2],
    dil: [i32; 2],
    groups: i32,
    tf32: bool,
}

/// Geometry: x `[n, c, h, w]`, weights `[k, c/g, r, s]`, y `[n, k, oh, ow]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    pub x: [i32; 4],
    pub w: [i32; 4],
    pub y: [i32; 4],
    pub stride: [i32; 2],
    pub pad: [i32; 2],
    pub dil: [i32; 2],
    pub groups: i32,
}

fn param(op: OpId, what: &str, v: i64, min: i64) -> Result<i32> {
    if v < min || v > i64::from(i32::MAX) {
        return Err(BackendError::invalid(format!(
            "{op}: {what} {v} must be in {min}..={}",
            i32::MAX
        )));
    }
    Ok(v as i32)
}

fn rank4(op: OpId, what: &str, d: &[i64]) -> Result<[i32; 4]> {
    let a: [i64; 4] = d.try_into().map_err(|_| {
        BackendError::invalid(format!("{op}: {what} must have rank 4, got shape {d:?}"))
    })?;
    let mut out = [0; 4];
    for (o, v) in out.iter_mut().zip(a) {
        *o = i32::try_from(v).map_err(|_| {
            BackendError::unsupported(format!("{op}: {what} extent {v} exceeds cuDNN's int"))
        })?;
    }
    Ok(out)
}

/// `(input + 2 pad - dil (window - 1) - 1) / stride + 1`, or `None` when
/// the dilated window does not fit.
pub(crate) fn out_extent(input: i64, window: i64, stride: i64, pad: i64, dil: i64) -> Option<i64> {
    let span = dil * (window - 1) + 1;
    let padded = input + 2 * pad;
    (window >= 1 && padded >= span).then(|| (padded - span) / stride + 1)
}

impl Geom {
    /// Checks shapes as the CPU backend does: `x` image side, `w` weights
    /// side, `y` output side.
    pub(crate) fn new(op: OpId, p: &Conv2dParams, x: &[i64], w: &[i64], y: &[i64]) -> Result<Geom> {
        let xs = rank4(op, "the image (x or dx)", x)?;
        let ws = rank4(op, "the weights (w or dw)", w)?;
        let ys = rank4(op, "the output-side tensor (y or dy)", y)?;
        let pair = |what: &str, v: [i64; 2], min: i64| -> Result<[i32; 2]> {
            Ok([param(op, what, v[0], min)?, param(op, what, v[1], min)?])
        };
        let (stride, pad, dil) = (
            pair("stride", p.stride, 1)?,
            pair("padding", p.padding, 0)?,
            pair("dilation", p.dilation, 1)?,
        );
        let groups = param(op, "groups", p.groups, 1)?;
        let (c, k) = (xs[1], ws[0]);
        if c % groups != 0 || k % groups != 0 {
            return Err(BackendError::invalid(format!(
                "{op}: groups {groups} must divide input channels {c} and output channels {k}"
            )));
        }
        if ws[1] != c / groups || ws[2] == 0 || ws[3] == 0 {
            return Err(BackendError::invalid(format!(
                "{op}: weights {w:?} must be [K, C/groups = {}, R >= 1, S >= 1]",
                c / groups
            )));
        }
        let ext = |d: usize| {
            out_extent(
                i64::from(xs[d + 2]),
                i64::from(ws[d + 2]),
                i64::from(stride[d]),
                i64::from(pad[d]),
                i64::from(dil[d]),
            )
        };
        let (Some(oh), Some(ow)) = (ext(0), ext(1)) else {
            return Err(BackendError::invalid(format!(
                "{op}: the dilated {}x{} window (dilation {dil:?}) does not fit the {}x{} input padded by {pad:?}",
                ws[2], ws[3], xs[2], xs[3]
            )));
        };
        let want = [xs[0], k, oh as i32, ow as i32];
        if ys != want {
            return Err(BackendError::invalid(format!(
                "{op}: output-side shape {y:?} must be [N, K, OH, OW] = {want:?} for input {x:?}, weights {w:?}, \
                 stride {stride:?}, padding {pad:?}, dilation {dil:?}"
            )));
        }
        Ok(Geom {
            x: xs,
            w: ws,
            y: ys,
            stride,
            pad,
            dil,
            groups,
        })
    }
}

/// Runs one conv op.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    let Params::Conv2d(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{op}: expected Conv2dParams"
        )));
    };
    let arity_ok = match op {
        OpId::Conv2d => (2..=3).contains(&call.inputs.len()),
        OpId::Conv2dBackwardData | OpId::Conv2dBackwardFilter => call.inputs.len() == 2,
        _ => {
            return Err(BackendError::unsupported(format!(
                "cuda conv: {op} is not a conv op"
            )))
        }
    };
    if !arity_ok || call.outputs.len() != 1 {
        return Err(BackendError::invalid(format!(
            "{op}: wrong number of tensors: {} input(s), {} output(s)",
            call.inputs.len(),
            call.outputs.len()
        )));
    }
    // SAFETY: forwarded.
    let (ins, outs) = unsafe { views(call, device)? };
    let dtype = ins[0].dtype;
    if !dtype.is_float() {
        return Err(BackendError::unsupported(format!(
            "{op}: dtype {dtype} is not supported (f32, f64)"
        )));
    }
    if ins.iter().chain(&outs).any(|v| v.dtype != dtype) {
        return Err(BackendError::invalid(format!(
            "{op}: every tensor must be {dtype}"
        )));
    }
    let out = &outs[0];
    if !out.is_contiguous() {
        return Err(BackendError::invalid(format!(
            "{op}: the output must be contiguous row-major"
        )));
    }
    let (a, b, o) = (ins[0].desc.dims(), ins[1].desc.dims(), out.desc.dims());
    let g = match op {
        OpId::Conv2d => Geom::new(op, &p, a, b, o)?,
        OpId::Conv2dBackwardData => Geom::new(op, &p, o, b, a)?,
        _ => Geom::new(op, &p, a, o, b)?,
    };
    if let Some(bias) = ins.get(2) {
        if bias.desc.dims() != [i64::from(g.w[0])] {
            return Err(BackendError::invalid(format!(
                "conv2d: bias must have shape [{}], got {:?}",
                g.w[0],
                bias.desc.dims()
            )));
        }
    }
    if out.numel() == 0 {
        return Ok(());
    }
    let mut temps = Vec::new();
    let result = (|| {
        let in0 = contiguous(ctx, &ins[0], &mut temps)?;
        let in1 = contiguous(ctx, &ins[1], &mut temps)?;
        let descs = Descs::new(&g, dtype, ctx.gpu.tf32())?;
        run(ctx, op, &g, dtype, &descs, in0, in1, out.ptr)?;
        if let Some(bias) = ins.get(2) {
            let bp = contiguous(ctx, bias, &mut temps)?;
            let hw = (g.y[2] as usize) * (g.y[3] as usize);
            bias_add(
                ctx,
                dtype,
                out.ptr,
                g.y[0] as usize,
                g.y[1] as usize,
                hw,
                bp,
            )?;
        }
        Ok(())
    })();
    for t in temps {
        ctx.free_temp(t);
    }
    result
}

/// The view's address if contiguous, else a contiguous copy's.
fn contiguous(
    ctx: &mut Ctx<'_>,
    v: &View<'_>,
    temps: &mut Vec<(CUdeviceptr, usize)>,
) -> Result<CUdeviceptr> {
    if v.is_contiguous() {
        return Ok(v.ptr);
    }
    let dst = Strided::contiguous(&v.dims());
    let t = ctx.temp(dst.numel() * v.dtype.size())?;
    temps.push(t);
    copy(ctx, v.dtype, v.ptr, &v.strided(), t.0, &dst)?;
    Ok(t.0)
}

fn check(st: dnn::cudnnStatus_t, what: &str) -> Result<()> {
    if st == dnn::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        return Ok(());
    }
    let code = if st == dnn::cudnnStatus_t::CUDNN_STATUS_ALLOC_FAILED {
        StatusCode::OutOfMemory
    } else {
        StatusCode::Internal
    };
    Err(BackendError::new(code, format!("{what} failed: {st:?}")).with_component("libcudnn.so.9"))
}

/// The four cuDNN descriptors of one convolution, destroyed on drop.
#[derive(Debug)]
struct Descs {
    x: dnn::cudnnTensorDescriptor_t,
    y: dnn::cudnnTensorDescriptor_t,
    w: dnn::cudnnFilterDescriptor_t,
    conv: dnn::cudnnConvolutionDescriptor_t,
}

impl Descs {
    fn new(g: &Geom, dtype: DType, tf32: bool) -> Result<Descs> {
        let dt = match dtype {
            DType::F64 => dnn::cudnnDataType_t::CUDNN_DATA_DOUBLE,
            _ => dnn::cudnnDataType_t::CUDNN_DATA_FLOAT,
        };
        let mut d = Descs {
            x: std::ptr::null_mut(),
            y: std::ptr::null_mut(),
            w: std::ptr::null_mut(),
            conv: std::ptr::null_mut(),
        };
        let packed = |s: [i32; 4]| [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
        let (xs, ys) = (packed(g.x), packed(g.y));
        // SAFETY: each create writes one handle into a field of `d`, which
        // Drop destroys (null ones are skipped); the set calls take the
        // handles just created and plain ints.
        unsafe {
            check(
                dnn::cudnnCreateTensorDescriptor(&mut d.x),
                "cudnnCreateTensorDescriptor",
            )?;
            check(
                dnn::cudnnCreateTensorDescriptor(&mut d.y),
                "cudnnCreateTensorDescriptor",
            )?;
            check(
                dnn::cudnnCreateFilterDescriptor(&mut d.w),
                "cudnnCreateFilterDescriptor",
            )?;
            check(
                dnn::cudnnCreateConvolutionDescriptor(&mut d.conv),
                "cudnnCreateConvolutionDescriptor",
            )?;
            check(
                dnn::cudnnSetTensor4dDescriptorEx(
                    d.x, dt, g.x[0], g.x[1], g.x[2], g.x[3], xs[0], xs[1], xs[2], xs[3],
                ),
                "cudnnSetTensor4dDescriptorEx(x)",
            )?;
            check(
                dnn::cudnnSetTensor4dDescriptorEx(
                    d.y, dt, g.y[0], g.y[1], g.y[2], g.y[3], ys[0], ys[1], ys[2], ys[3],
                ),
                "cudnnSetTensor4dDescriptorEx(y)",
            )?;
            check(
                dnn::cudnnSetFilter4dDescriptor(
                    d.w,
                    dt,
                    dnn::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                    g.w[0],
                    g.w[1],
                    g.w[2],
                    g.w[3],
                ),
                "cudnnSetFilter4dDescriptor",
            )?;
            check(
                dnn::cudnnSetConvolution2dDescriptor(
                    d.conv,
                    g.pad[0],
                    g.pad[1],
                    g.stride[0],
                    g.stride[1],
                    g.dil[0],
                    g.dil[1],
                    dnn::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                    dt,
                ),
                "cudnnSetConvolution2dDescriptor",
            )?;
            check(
                dnn::cudnnSetConvolutionGroupCount(d.conv, g.groups),
                "cudnnSetConvolutionGroupCount",
            )?;
            let math = if tf32 && dtype == DType::F32 {
                dnn::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
            } else {
                dnn::cudnnMathType_t::CUDNN_FMA_MATH
            };
            check(
                dnn::cudnnSetConvolutionMathType(d.conv, math),
                "cudnnSetConvolutionMathType",
            )?;
        }
        Ok(d)
    }
}

impl Drop for Descs {
    fn drop(&mut self) {
        // SAFETY: each non-null handle was created in `new` and is used by
        // no queued call after this (cuDNN reads descriptors at call time).
        unsafe {
            if !self.x.is_null() {
                dnn::cudnnDestroyTensorDescriptor(self.x);
            }
            if !self.y.is_null() {
                dnn::cudnnDestroyTensorDescriptor(self.y);
            }
            if !self.w.is_null() {
                dnn::cudnnDestroyFilterDescriptor(self.w);
            }
            if !self.conv.is_null() {
                dnn::cudnnDestroyConvolutionDescriptor(self.conv);
            }
        }
    }
}

/// cuDNN's algorithm performance record, with every enum read as a plain
/// int: a newer cuDNN may return values the bindings' Rust enums lack,
/// which must never be materialised as those enums. Same layout as
/// `cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Perf {
    algo: i32,
    status: i32,
    time: f32,
    memory: usize,
    determinism: i32,
    math_type: i32,
    reserved: [i32; 3],
}

const MAX_ALGOS: usize = 16;

/// The best usable heuristic choice: `(algo, workspace bytes)`.
fn pick(perf: &[Perf], count: i32, algo_count: i32) -> Option<(i32, usize)> {
    let ok = |p: &&Perf| p.status == 0 && (0..algo_count).contains(&p.algo);
    let usable: Vec<&Perf> = perf[..count.clamp(0, MAX_ALGOS as i32) as usize]
        .iter()
        .filter(ok)
        .collect();
    usable.first().map(|p| (p.algo, p.memory))
}

#[allow(clippy::too_many_arguments)] // reason: one cuDNN call's operands
fn run(
    ctx: &mut Ctx<'_>,
    op: OpId,
    g: &Geom,
    dtype: DType,
    d: &Descs,
    in0: CUdeviceptr,
    in1: CUdeviceptr,
    out: CUdeviceptr,
) -> Result<()> {
    let handle = ctx.dnn()?;
    let key = ConvKey {
        op: op as u32,
        dtype: dtype as u32,
        x: g.x,
        w: g.w,
        pad: g.pad,
        stride: g.stride,
        dil: g.dil,
        groups: g.groups,
        tf32: ctx.gpu.tf32(),
    };
    let (algo, ws_bytes) = match ctx.st.conv_algos.get(&key) {
        Some(&v) => v,
        None => {
            let v = choose(handle, op, d)?;
            ctx.st.conv_algos.insert(key, v);
            v
        }
    };
    let ws = ctx.workspace(ws_bytes)? as *mut c_void;
    let (one32, zero32, one64, zero64) = (1.0f32, 0.0f32, 1.0f64, 0.0f64);
    let (alpha, beta): (*const c_void, *const c_void) = match dtype {
        DType::F64 => (
            (&one64 as *const f64).cast(),
            (&zero64 as *const f64).cast(),
        ),
        _ => (
            (&one32 as *const f32).cast(),
            (&zero32 as *const f32).cast(),
        ),
    };
    let (p0, p1, po) = (
        in0 as *const c_void,
        in1 as *const c_void,
        out as *mut c_void,
    );
    // SAFETY: descriptors describe the packed operands (checked shapes, or
    // contiguous temporaries); the algorithm id was returned by cuDNN for
    // these descriptors and range-checked against the enum before the
    // transmute (all three enums are `repr(u32)` with values 0..COUNT);
    // the workspace holds `ws_bytes`; alpha/beta are host scalars of the
    // compute type.
    let st = unsafe {
        match op {
            OpId::Conv2d => dnn::cudnnConvolutionForward(
                handle,
                alpha,
                d.x,
                p0,
                d.w,
                p1,
                d.conv,
                std::mem::transmute::<u32, dnn::cudnnConvolutionFwdAlgo_t>(algo as u32),
                ws,
                ws_bytes,
                beta,
                d.y,
                po,
            ),
            OpId::Conv2dBackwardData => dnn::cudnnConvolutionBackwardData(
                handle,
                alpha,
                d.w,
                p1,
                d.y,
                p0,
                d.conv,
                std::mem::transmute::<u32, dnn::cudnnConvolutionBwdDataAlgo_t>(algo as u32),
                ws,
                ws_bytes,
                beta,
                d.x,
                po,
            ),
            _ => dnn::cudnnConvolutionBackwardFilter(
                handle,
                alpha,
                d.x,
                p0,
                d.y,
                p1,
                d.conv,
                std::mem::transmute::<u32, dnn::cudnnConvolutionBwdFilterAlgo_t>(algo as u32),
                ws,
                ws_bytes,
                beta,
                d.w,
                po,
            ),
        }
    };
    check(st, op.name())
}

/// Asks cuDNN's heuristics for the algorithm of `op` on these descriptors.
fn choose(handle: dnn::cudnnHandle_t, op: OpId, d: &Descs) -> Result<(i32, usize)> {
    let mut perf = [Perf::default(); MAX_ALGOS];
    let mut count = 0;
    // SAFETY: `perf` holds MAX_ALGOS records laid out as cuDNN's perf
    // structs (size checked by a test); cuDNN writes at most the requested
    // count and `count`.
    let (st, algo_count) = unsafe {
        match op {
            OpId::Conv2d => (
                dnn::cudnnGetConvolutionForwardAlgorithm_v7(
                    handle,
                    d.x,
                    d.w,
                    d.conv,
                    d.y,
                    MAX_ALGOS as i32,
                    &mut count,
                    perf.as_mut_ptr().cast(),
                ),
                dnn::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_COUNT as i32,
            ),
            OpId::Conv2dBackwardData => (
                dnn::cudnnGetConvolutionBackwardDataAlgorithm_v7(
                    handle,
                    d.w,
                    d.y,
                    d.conv,
                    d.x,
                    MAX_ALGOS as i32,
                    &mut count,
                    perf.as_mut_ptr().cast(),
                ),
                dnn::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT as i32,
            ),
            _ => (
                dnn::cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                    handle,
                    d.x,
                    d.y,
                    d.conv,
                    d.w,
                    MAX_ALGOS as i32,
                    &mut count,
                    perf.as_mut_ptr().cast(),
                ),
                dnn::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT
                    as i32,
            ),
        }
    };
    check(st, "cudnnGetConvolution*Algorithm_v7")?;
    pick(&perf, count, algo_count).ok_or_else(|| {
        BackendError::unsupported(format!("{op}: cuDNN offers no algorithm for this shape"))
            .with_component("libcudnn.so.9")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(stride: i64, pad: i64, dil: i64, groups: i64) -> Conv2dParams {
        Conv2dParams {
            struct_size: Conv2dParams::SIZE,
            stride: [stride; 2],
            padding: [pad; 2],
            dilation: [dil; 2],
            groups,
        }
    }

    #[test]
    fn perf_record_matches_cudnn_layout() {
        use std::mem::size_of;
        assert_eq!(
            size_of::<Perf>(),
            size_of::<dnn::cudnnConvolutionFwdAlgoPerf_t>()
        );
        assert_eq!(
            size_of::<Perf>(),
            size_of::<dnn::cudnnConvolutionBwdDataAlgoPerf_t>()
        );
        assert_eq!(
            size_of::<Perf>(),
            size_of::<dnn::cudnnConvolutionBwdFilterAlgoPerf_t>()
        );
        assert_eq!(std::mem::offset_of!(Perf, memory), 16);
    }

    #[test]
    fn geometry_checks_like_the_cpu() {
        let p = params(1, 1, 1, 1);
        let g = Geom::new(
            OpId::Conv2d,
            &p,
            &[32, 64, 56, 56],
            &[64, 64, 3, 3],
            &[32, 64, 56, 56],
        )
        .unwrap();
        assert_eq!(g.y, [32, 64, 56, 56]);
        let p2 = params(2, 3, 1, 1);
        assert!(Geom::new(
            OpId::Conv2d,
            &p2,
            &[32, 3, 224, 224],
            &[64, 3, 7, 7],
            &[32, 64, 112, 112]
        )
        .is_ok());
        // Wrong output.
        let e = Geom::new(
            OpId::Conv2d,
            &p,
            &[1, 4, 5, 5],
            &[2, 4, 3, 3],
            &[1, 2, 4, 4],
        )
        .unwrap_err();
        assert!(e.message.contains("[N, K, OH, OW]"), "{}", e.message);
        // Groups must divide.
        let e = Geom::new(
            OpId::Conv2d,
            &params(1, 0, 1, 3),
            &[1, 4, 5, 5],
            &[3, 1, 3, 3],
            &[1, 3, 3, 3],
        )
        .unwrap_err();
        assert!(e.message.contains("groups"), "{}", e.message);
        // Window too large.
        let e = Geom::new(
            OpId::Conv2d,
            &params(1, 0, 2, 1),
            &[1, 1, 3, 3],
            &[1, 1, 3, 3],
            &[1, 1, 1, 1],
        )
        .unwrap_err();
        assert!(e.message.contains("does not fit"), "{}", e.message);
        // Bad params.
        assert!(Geom::new(
            OpId::Conv2d,
            &params(0, 0, 1, 1),
            &[1, 1, 3, 3],
            &[1, 1, 1, 1],
            &[1, 1, 3, 3]
        )
        .is_err());
        // Rank.
        assert!(Geom::new(OpId::Conv2d, &p, &[1, 1, 3], &[1, 1, 1, 1], &[1, 1, 3, 3]).is_err());
    }

    #[test]
    fn out_extents() {
        assert_eq!(out_extent(224, 7, 2, 3, 1), Some(112));
        assert_eq!(out_extent(56, 3, 1, 1, 1), Some(56));
        assert_eq!(out_extent(3, 3, 1, 0, 2), None);
        assert_eq!(out_extent(5, 3, 1, 0, 2), Some(1));
    }

    #[test]
    fn picks_the_first_successful_known_algorithm() {
        let mut perf = [Perf::default(); MAX_ALGOS];
        perf[0] = Perf {
            algo: 99,
            ..Perf::default()
        }; // unknown id: skipped
        perf[1] = Perf {
            algo: 1,
            status: 3,
            ..Perf::default()
        }; // failed: skipped
        perf[2] = Perf {
            algo: 6,
            memory: 1024,
            ..Perf::default()
        };
        assert_eq!(pick(&perf, 3, 8), Some((6, 1024)));
        assert_eq!(pick(&perf, 2, 8), None);
        assert_eq!(pick(&perf, 100, 8), Some((6, 1024)));
    }
}
