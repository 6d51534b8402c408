//! Checks through the plugin ABI itself, below the tensor API: buffer
//! round trips, and the error paths a backend must answer with
//! `InvalidArgument` instead of crashing or writing out of bounds.

use std::panic::{catch_unwind, AssertUnwindSafe};

use sunrise_backend_api::abi::{SrTensorDesc, SR_MAX_RANK};
use sunrise_backend_api::{Backend, BackendError, BufferHandle, OpCall, Params, StatusCode};

use super::inputs::Rng;
use crate::shape::contiguous_strides;
use crate::{DType, Device, OpId};

/// Buffer sizes for the round trips: empty, odd, page-crossing, and large
/// (32 MiB: past every cache, and past any small-transfer path).
const SIZES: [usize; 6] = [0, 1, 7, 1023, 4097, 32 << 20];

/// The element count and shape of the descriptors the error paths use.
const SHAPE: [usize; 2] = [4, 5];

/// One named check of a group, and its failures.
pub(crate) struct Checked {
    /// How many individual checks ran.
    pub(crate) count: usize,
    /// What failed, one line each.
    pub(crate) failures: Vec<String>,
}

fn bytes_of(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..n).map(|_| (rng.next() >> 56) as u8).collect()
}

/// Runs `f` with a fresh buffer of `bytes` bytes on `dev`, freeing it after.
fn with_buffer<T>(
    dev: &Device,
    bytes: usize,
    f: impl FnOnce(BufferHandle) -> Result<T, String>,
) -> Result<T, String> {
    let b = dev.backend();
    let buf = b
        .alloc(dev.ordinal(), bytes)
        .map_err(|e| format!("alloc({bytes}): {e}"))?;
    let r = catch_unwind(AssertUnwindSafe(|| f(buf)))
        .unwrap_or_else(|_| Err("the check panicked".to_string()));
    // SAFETY: `buf` was allocated by this backend above and is freed once;
    // the closure's last use of it has returned.
    unsafe { b.free(buf) };
    r
}

/// A round trip of `n` bytes: write all, read all; then a sub-range at an
/// odd offset; then reads and writes past the end must be refused.
fn round_trip(dev: &Device, n: usize) -> Result<(), String> {
    let b: &dyn Backend = dev.backend().as_ref();
    with_buffer(dev, n, |buf| {
        let data = bytes_of(n, n as u64 + 1);
        // SAFETY: `buf` is a live buffer of this backend (n bytes).
        unsafe { b.write(buf, 0, &data) }.map_err(|e| format!("write({n} bytes): {e}"))?;
        let mut back = vec![0u8; n];
        // SAFETY: as above.
        unsafe { b.read(buf, 0, &mut back) }.map_err(|e| format!("read({n} bytes): {e}"))?;
        if back != data {
            let i = back.iter().zip(&data).position(|(a, b)| a != b);
            return Err(format!(
                "read back differs from what was written at byte {i:?}"
            ));
        }
        if n >= 3 {
            let (off, len) = (1 + n / 3, n / 3);
            let part = bytes_of(len, 99);
            // SAFETY: as above; `off + len <= n`.
            unsafe { b.write(buf, off, &part) }
                .map_err(|e| format!("write at offset {off}: {e}"))?;
            let mut got = vec![0u8; n];
            // SAFETY: as above.
            unsafe { b.read(buf, 0, &mut got) }.map_err(|e| format!("read: {e}"))?;
            let mut want = data.clone();
            want[off..off + len].copy_from_slice(&part);
            if got != want {
                return Err(format!(
                    "a write at offset {off} changed bytes outside its range, or missed some"
                ));
            }
        }
        let mut one = [0u8; 1];
        // SAFETY: the handle is live; the range is past its end, which the
        // backend must refuse before touching memory.
        let past_read = unsafe { b.read(buf, n, &mut one) };
        expect_invalid(
            past_read,
            &format!("read of 1 byte at offset {n} of a {n}-byte buffer"),
        )?;
        // SAFETY: as above.
        let past_write = unsafe { b.write(buf, n.saturating_sub(1), &[0u8, 0]) };
        if n > 0 {
            expect_invalid(
                past_write,
                &format!("write of 2 bytes at offset {} of a {n}-byte buffer", n - 1),
            )?;
        }
        Ok(())
    })
}

fn expect_invalid(r: Result<(), BackendError>, what: &str) -> Result<(), String> {
    expect_refused(r, what, false)
}

/// Checks that a bad call was refused with `InvalidArgument` (or, when
/// `or_unsupported`, with `Unsupported`: an unknown dtype id names no pair
/// the backend lists).
fn expect_refused(
    r: Result<(), BackendError>,
    what: &str,
    or_unsupported: bool,
) -> Result<(), String> {
    match r {
        Err(e) if e.code == StatusCode::InvalidArgument => Ok(()),
        Err(e) if or_unsupported && e.code == StatusCode::Unsupported => Ok(()),
        Err(e) => Err(format!(
            "{what}: answered {} ({}), expected invalid argument",
            e.code.name(),
            e.message
        )),
        Ok(()) => Err(format!(
            "{what}: accepted, expected invalid argument{}",
            if or_unsupported {
                " or unsupported"
            } else {
                ""
            }
        )),
    }
}

/// Buffer round trips at every size of [`SIZES`].
pub(crate) fn buffers(dev: &Device) -> Checked {
    let failures = SIZES
        .iter()
        .filter_map(|&n| {
            round_trip(dev, n)
                .err()
                .map(|e| format!("buffers [{n} bytes]: {e}"))
        })
        .collect();
    Checked {
        count: SIZES.len(),
        failures,
    }
}

/// True for the (op, dtype) pairs whose error paths are checked: the ops
/// without params and with a fixed arity whose inputs and output share the
/// output's shape (elementwise unary, binary, comparisons, `where`, `copy`).
pub(crate) fn has_error_paths(op: OpId) -> bool {
    op.is_unary() || op.is_binary() || op.is_comparison() || matches!(op, OpId::Where | OpId::Copy)
}

/// The dtype of input `k` of a valid call of `op` on `dtype`.
fn input_dtype(op: OpId, dtype: DType, k: usize) -> DType {
    if op == OpId::Where && k == 0 {
        DType::U8
    } else {
        dtype
    }
}

/// The dtype of the output of a valid call of `op` on `dtype`.
fn output_dtype(op: OpId, dtype: DType) -> DType {
    if op.is_comparison() {
        DType::U8
    } else {
        dtype
    }
}

/// A dtype other than `d`, for the dtype-mismatch path.
fn other_dtype(d: DType) -> DType {
    match d {
        DType::F32 => DType::F64,
        _ => DType::F32,
    }
}

/// The bad calls of one pair: what each breaks, and its descriptors.
/// A bad call: what it breaks, its inputs and outputs, and whether
/// `Unsupported` is an acceptable answer too.
type BadCall = (String, Vec<SrTensorDesc>, Vec<SrTensorDesc>, bool);

fn bad_calls(op: OpId, dtype: DType, bufs: &[BufferHandle]) -> Vec<BadCall> {
    let arity = op.input_count().unwrap_or(1);
    let strides = contiguous_strides(&SHAPE);
    let desc = |d: DType, shape: &[usize], buf: BufferHandle| {
        SrTensorDesc::new(d, shape, &contiguous_strides(shape), buf, 0)
    };
    let inputs: Vec<SrTensorDesc> = (0..arity)
        .map(|k| SrTensorDesc::new(input_dtype(op, dtype, k), &SHAPE, &strides, bufs[k], 0))
        .collect();
    let output = SrTensorDesc::new(output_dtype(op, dtype), &SHAPE, &strides, bufs[arity], 0);
    let mut calls = Vec::new();
    let mut more = inputs.clone();
    more.push(inputs[0]);
    calls.push((
        format!("{} inputs instead of {arity}", arity + 1),
        more,
        vec![output],
        false,
    ));
    if arity > 0 {
        calls.push((
            format!("{} inputs instead of {arity}", arity - 1),
            inputs[..arity - 1].to_vec(),
            vec![output],
            false,
        ));
    }
    calls.push(("no output".to_string(), inputs.clone(), Vec::new(), false));
    calls.push((
        "two outputs".to_string(),
        inputs.clone(),
        vec![output, output],
        false,
    ));
    let mut rank9 = inputs.clone();
    rank9[0].rank = SR_MAX_RANK as u32 + 1;
    calls.push((
        format!("input rank {}", SR_MAX_RANK + 1),
        rank9,
        vec![output],
        false,
    ));
    let mut wide = inputs.clone();
    let last = wide.len() - 1;
    wide[last] = desc(input_dtype(op, dtype, last), &[4, 6], bufs[last]);
    calls.push((
        "an input of shape [4, 6] for an output of [4, 5]".to_string(),
        wide,
        vec![output],
        false,
    ));
    if op != OpId::Where {
        let bad = other_dtype(output_dtype(op, dtype));
        let out_bad = SrTensorDesc::new(bad, &SHAPE, &strides, bufs[arity], 0);
        calls.push((
            format!("a {bad} output"),
            inputs.clone(),
            vec![out_bad],
            false,
        ));
    }
    let mut bad_dtype = inputs;
    bad_dtype[0].dtype = 0x7fff;
    calls.push((
        "an input of unknown dtype id 0x7fff".to_string(),
        bad_dtype,
        vec![output],
        true,
    ));
    calls
}

/// The error paths of one listed pair: every bad call must be answered with
/// `InvalidArgument`.
pub(crate) fn error_paths(dev: &Device, op: OpId, dtype: DType) -> Checked {
    let arity = op.input_count().unwrap_or(1);
    // One buffer per operand, each large enough for 4 x 6 f64 elements.
    let bytes = 4 * 6 * 8;
    let b: &dyn Backend = dev.backend().as_ref();
    let mut bufs = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..=arity {
        match b.alloc(dev.ordinal(), bytes) {
            Ok(h) => bufs.push(h),
            Err(e) => {
                failures.push(format!("{op} {dtype} errors: alloc({bytes}): {e}"));
                break;
            }
        }
    }
    let mut count = 0;
    if bufs.len() == arity + 1 {
        let zeros = vec![0u8; bytes];
        for &h in &bufs {
            // SAFETY: `h` is a live buffer of `bytes` bytes.
            if let Err(e) = unsafe { b.write(h, 0, &zeros) } {
                failures.push(format!("{op} {dtype} errors: write: {e}"));
            }
        }
        for (what, ins, outs, or_unsupported) in bad_calls(op, dtype, &bufs) {
            count += 1;
            let call = OpCall {
                op,
                params: Params::None,
                inputs: &ins,
                outputs: &outs,
            };
            let r = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: every descriptor names a live buffer of this
                // backend and addresses at most 4 x 6 elements of at most 8
                // bytes, within its `bytes` bytes; what is wrong with each
                // call is shape, dtype, rank or arity, which the backend
                // must check before it touches memory.
                unsafe { b.execute(dev.ordinal(), &call) }
            }));
            let r = r.unwrap_or_else(|_| {
                Err(BackendError::new(
                    StatusCode::Internal,
                    "the host side panicked",
                ))
            });
            if let Err(e) = expect_refused(r, &what, or_unsupported) {
                failures.push(format!("{op} {dtype} [errors] {e}"));
            }
        }
    }
    for h in bufs {
        // SAFETY: allocated above by this backend, freed once.
        unsafe { b.free(h) };
    }
    Checked { count, failures }
}
