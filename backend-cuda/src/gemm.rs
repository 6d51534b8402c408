//! `matmul` through cuBLAS: one `cublas{S,D}gemmStridedBatched` call when
//! every operand's batch offsets follow one stride (broadcast batch dims
//! have stride 0), else one GEMM per batch index. Transposes are strides:
//! an operand with unit stride in either of its last two dims goes to
//! cuBLAS as is (op N or T); any other layout is first copied into a
//! contiguous temporary. Row-major `C = A B` is computed as column-major
//! `C^T = B^T A^T`, so nothing is transposed in memory.
//!
//! Precision: cuBLAS runs in `CUBLAS_DEFAULT_MATH` (strict f32, no TF32)
//! unless `SUNRISE_CUDA_TF32=1` set `CUBLAS_TF32_TENSOR_OP_MATH` on the
//! handle. The op set has no fused matmul + bias/activation op yet, so no
//! caller wants a cuBLASLt epilogue; cuBLASLt is probed (cuBLAS needs it)
//! but not called.

use cudarc::cublas::sys as blas;
use cudarc::driver::sys::CUdeviceptr;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result, StatusCode};

use crate::device::Ctx;
use crate::elementwise::{check_arity, copy, views};
use crate::launch::{Strided, View};

/// Matmul on f32 and f64.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    crate::pairs(&[OpId::Matmul], &[DType::F32, DType::F64])
}

/// One operand as cuBLAS takes it: base address, transpose flag, leading
/// dimension, and its per-batch element offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operand {
    pub ptr: CUdeviceptr,
    pub trans: bool,
    pub ld: i64,
    pub offsets: Vec<i64>,
}

/// How a row-major `rows x cols` matrix with strides `(rs, cs)` maps onto a
/// column-major operand of its transpose: `Some((trans, ld))`, or `None`
/// when neither stride is 1 (the caller copies it). A dim of extent 1 has
/// no meaningful stride and is normalised.
pub(crate) fn blas_layout(rows: i64, cols: i64, rs: i64, cs: i64) -> Option<(bool, i64)> {
    let rs = if rows <= 1 { cols.max(1) } else { rs };
    let cs = if cols <= 1 { 1 } else { cs };
    // Row-major with unit column stride: its transpose (cols x rows) is
    // column-major with ld = rs, op N.
    if cs == 1 && rs >= cols.max(1) {
        return Some((false, rs));
    }
    // Unit row stride: the matrix itself is column-major with ld = cs, so
    // its transpose is op T of it.
    if rs == 1 && cs >= rows.max(1) {
        return Some((true, cs));
    }
    None
}

/// Element offsets of every batch index of `batch_shape` under `strides`,
/// in row-major order of the batch shape.
pub(crate) fn batch_offsets(batch_shape: &[i64], strides: &[i64]) -> Vec<i64> {
    let count: i64 = batch_shape.iter().product();
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for mut i in 0..count {
        let mut off = 0;
        for d in (0..batch_shape.len()).rev() {
            off += (i % batch_shape[d]) * strides[d];
            i /= batch_shape[d];
        }
        out.push(off);
    }
    out
}

/// The one stride that generates `offsets` (`offsets[i] = i * s`), if any.
pub(crate) fn uniform_stride(offsets: &[i64]) -> Option<i64> {
    match offsets {
        [] | [_] => Some(0),
        [first, second, ..] => {
            let s = second - first;
            (*first == 0 && offsets.iter().enumerate().all(|(i, &o)| o == i as i64 * s))
                .then_some(s)
        }
    }
}

fn too_large(what: &str) -> BackendError {
    BackendError::unsupported(format!("cuda matmul: {what} exceeds cuBLAS's 32-bit int"))
}

fn int(v: i64, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| too_large(what))
}

/// Runs `matmul`.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(ctx: &mut Ctx<'_>, device: u32, call: &OpCall<'_>) -> Result<()> {
    if call.op != OpId::Matmul {
        return Err(BackendError::unsupported(format!(
            "cuda gemm: {} is not a gemm op",
            call.op
        )));
    }
    let Params::Matmul(p) = call.params else {
        return Err(BackendError::invalid("matmul: expected MatmulParams"));
    };
    check_arity(call, 2, 1)?;
    // SAFETY: forwarded.
    let (ins, outs) = unsafe { views(call, device)? };
    let (a, b, c) = (&ins[0], &ins[1], &outs[0]);
    if !a.dtype.is_float() {
        return Err(BackendError::unsupported(format!(
            "matmul: dtype {} is not supported (f32, f64)",
            a.dtype
        )));
    }
    if b.dtype != a.dtype || c.dtype != a.dtype {
        return Err(BackendError::invalid(format!(
            "matmul: dtypes {}, {} -> {} differ",
            a.dtype, b.dtype, c.dtype
        )));
    }
    let (m, k, n) = check_shapes(a, b, c)?;
    let r = c.desc.rank();
    let batch_shape = &c.desc.dims()[..r - 2];
    let count: i64 = batch_shape.iter().product();
    if m == 0 || n == 0 || count == 0 {
        return Ok(());
    }
    let mut temps = Vec::new();
    let result = (|| {
        let opa = operand(ctx, a, m, k, batch_shape, &mut temps)?;
        let opb = operand(ctx, b, k, n, batch_shape, &mut temps)?;
        let offc = batch_offsets(batch_shape, &c.desc.steps()[..r - 2]);
        let dims = Dims { m, n, k };
        run(
            ctx, a.dtype, &dims, &opa, &opb, c.ptr, &offc, p.alpha, p.beta,
        )
    })();
    for t in temps {
        ctx.free_temp(t);
    }
    result
}

/// `(m, k, n)` after the CPU backend's checks.
fn check_shapes(a: &View<'_>, b: &View<'_>, c: &View<'_>) -> Result<(i64, i64, i64)> {
    let (ad, bd, cd) = (a.desc.dims(), b.desc.dims(), c.desc.dims());
    let r = cd.len();
    if r < 2 || ad.len() != r || bd.len() != r {
        return Err(BackendError::invalid(format!(
            "matmul: a, b and c need the same rank >= 2, got {ad:?}, {bd:?} and {cd:?}"
        )));
    }
    let (m, k, n) = (ad[r - 2], ad[r - 1], bd[r - 1]);
    if bd[r - 2] != k || cd[r - 2] != m || cd[r - 1] != n {
        return Err(BackendError::invalid(format!(
            "matmul: shapes {ad:?} x {bd:?} -> {cd:?} do not chain as [.., M, K] x [.., K, N] -> [.., M, N]"
        )));
    }
    if ad[..r - 2] != cd[..r - 2] || bd[..r - 2] != cd[..r - 2] {
        return Err(BackendError::invalid(format!(
            "matmul: batch dims of {ad:?} and {bd:?} must equal the output's {cd:?} (broadcast with stride 0)"
        )));
    }
    if !c.is_contiguous() {
        return Err(BackendError::invalid(
            "matmul: the output must be contiguous row-major",
        ));
    }
    Ok((m, k, n))
}

/// An input as a cuBLAS operand, copied into a contiguous temporary (kept
/// in `temps`) when its matrix strides do not suit cuBLAS.
fn operand(
    ctx: &mut Ctx<'_>,
    v: &View<'_>,
    rows: i64,
    cols: i64,
    batch_shape: &[i64],
    temps: &mut Vec<(CUdeviceptr, usize)>,
) -> Result<Operand> {
    let r = v.desc.rank();
    let st = v.desc.steps();
    if let Some((trans, ld)) = blas_layout(rows, cols, st[r - 2], st[r - 1]) {
        return Ok(Operand {
            ptr: v.ptr,
            trans,
            ld,
            offsets: batch_offsets(batch_shape, &st[..r - 2]),
        });
    }
    let dims = v.dims();
    let dst = Strided::contiguous(&dims);
    let bytes = dst.numel() * v.dtype.size();
    let t = ctx.temp(bytes)?;
    temps.push(t);
    copy(ctx, v.dtype, v.ptr, &v.strided(), t.0, &dst)?;
    let plane = rows * cols;
    Ok(Operand {
        ptr: t.0,
        trans: false,
        ld: cols.max(1),
        offsets: (0..batch_shape.iter().product::<i64>())
            .map(|i| i * plane)
            .collect(),
    })
}

#[derive(Debug)]
struct Dims {
    m: i64,
    n: i64,
    k: i64,
}

#[allow(clippy::too_many_arguments)] // reason: one cuBLAS call's worth of arguments
fn run(
    ctx: &mut Ctx<'_>,
    dtype: DType,
    d: &Dims,
    a: &Operand,
    b: &Operand,
    c: CUdeviceptr,
    offc: &[i64],
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let handle = ctx.blas()?;
    let esize = dtype.size() as u64;
    let op = |t: bool| {
        if t {
            blas::cublasOperation_t::CUBLAS_OP_T
        } else {
            blas::cublasOperation_t::CUBLAS_OP_N
        }
    };
    // Column-major C^T (n x m, ld n) = op(B^T) (n x k) * op(A^T) (k x m).
    let (mm, nn, kk) = (int(d.n, "N")?, int(d.m, "M")?, int(d.k, "K")?);
    let (lda, ldb, ldc) = (int(b.ld, "ld")?, int(a.ld, "ld")?, int(d.n, "ld")?);
    let uniform = (
        uniform_stride(&a.offsets),
        uniform_stride(&b.offsets),
        uniform_stride(offc),
    );
    let gemm = |pa: u64, pb: u64, pc: u64, sa: i64, sb: i64, sc: i64, count: i64| -> Result<()> {
        let count = int(count, "batch count")?;
        // SAFETY: the operands were checked against their buffers (or are
        // temporaries sized for them); the handle is on this device's
        // stream; alpha/beta point to host scalars of the GEMM's type.
        let st = unsafe {
            match dtype {
                DType::F32 => {
                    let (al, be) = (alpha as f32, beta as f32);
                    blas::cublasSgemmStridedBatched(
                        handle,
                        op(b.trans),
                        op(a.trans),
                        mm,
                        nn,
                        kk,
                        &al,
                        pb as *const f32,
                        lda,
                        sb,
                        pa as *const f32,
                        ldb,
                        sa,
                        &be,
                        pc as *mut f32,
                        ldc,
                        sc,
                        count,
                    )
                }
                _ => blas::cublasDgemmStridedBatched(
                    handle,
                    op(b.trans),
                    op(a.trans),
                    mm,
                    nn,
                    kk,
                    &alpha,
                    pb as *const f64,
                    lda,
                    sb,
                    pa as *const f64,
                    ldb,
                    sa,
                    &beta,
                    pc as *mut f64,
                    ldc,
                    sc,
                    count,
                ),
            }
        };
        if st != blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(BackendError::new(
                StatusCode::Internal,
                format!("cuBLAS gemm failed: {st:?}"),
            )
            .with_component("libcublas.so.12"));
        }
        Ok(())
    };
    if let (Some(sa), Some(sb), Some(sc)) = uniform {
        return gemm(a.ptr, b.ptr, c, sa, sb, sc, offc.len() as i64);
    }
    for (i, &oc) in offc.iter().enumerate() {
        gemm(
            a.ptr + a.offsets[i] as u64 * esize,
            b.ptr + b.offsets[i] as u64 * esize,
            c + oc as u64 * esize,
            0,
            0,
            0,
            1,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_cublas_takes() {
        // Row-major 3x4: transpose is column-major 4x3 with ld 4, op N.
        assert_eq!(blas_layout(3, 4, 4, 1), Some((false, 4)));
        // A padded row (ld 6).
        assert_eq!(blas_layout(3, 4, 6, 1), Some((false, 6)));
        // A transposed view of a row-major 4x3 (strides (1, 3)): op T, ld 3.
        assert_eq!(blas_layout(3, 4, 1, 3), Some((true, 3)));
        // Neither stride 1: copy.
        assert_eq!(blas_layout(3, 4, 8, 2), None);
        // Overlapping rows (ld < cols): copy.
        assert_eq!(blas_layout(3, 4, 2, 1), None);
        // Degenerate dims are normalised.
        assert_eq!(blas_layout(1, 4, 0, 1), Some((false, 4)));
        assert_eq!(blas_layout(3, 1, 5, 0), Some((false, 5)));
        assert_eq!(blas_layout(1, 1, 0, 0), Some((false, 1)));
    }

    #[test]
    fn batch_offsets_and_uniform_strides() {
        assert_eq!(batch_offsets(&[], &[]), vec![0]);
        assert_eq!(batch_offsets(&[2, 3], &[3, 1]), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(batch_offsets(&[2, 3], &[0, 10]), vec![0, 10, 20, 0, 10, 20]);
        assert_eq!(uniform_stride(&[0, 1, 2, 3]), Some(1));
        assert_eq!(uniform_stride(&[0, 0, 0]), Some(0));
        assert_eq!(uniform_stride(&[0]), Some(0));
        assert_eq!(uniform_stride(&[0, 10, 20, 0, 10, 20]), None);
        assert_eq!(uniform_stride(&[5, 6]), None);
    }

    #[test]
    fn only_floats() {
        let s = supported();
        assert_eq!(s.len(), 2);
    }
}
