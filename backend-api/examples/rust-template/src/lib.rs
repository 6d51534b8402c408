//! Template of a sunrise device backend in Rust: `mydevice`, one device of
//! host memory, with `neg` and `fill` on f32 views of any layout. Replace
//! the buffers with your device's memory and add kernels; list each new
//! (op, dtype) pair in `PAIRS` and run `sunrise conformance --device
//! mydevice` after each.
//!
//! `export_backend!` at the bottom generates the two C entry points
//! (`sunrise_backend_probe_v1`, `sunrise_backend_init_v1`) and the plugin
//! table from the `Backend` and `Plugin` impls, with every entry inside
//! `catch_unwind`: a panic becomes an `SR_PANIC` status, never an abort.
//! Everything else is the contract of GUIDE.md: answer `Unsupported` for a
//! pair you lack (the host then runs that call on its CPU), `InvalidArgument`
//! for a call you do not accept, check every byte range, and accept calls
//! from any thread at once.

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use sunrise_backend_api::abi::{SrOpSupport, SrTensorDesc, SR_DEVICE_CPU, SR_MAX_RANK};
use sunrise_backend_api::{
    Backend, BackendError, BufferHandle, DType, DeviceInfo, HostInfo, OpCall, OpId, Params, Plugin,
    ProbeReport, Result, StatusCode,
};

/// The backend's name: what `--device` and `SUNRISE_DEVICE` select, and the
/// `<name>` of `libsunrise_backend_<name>.so`.
const NAME: &str = "mydevice";

/// Buffers are at least this aligned (the ABI requires 64).
const ALIGN: usize = 64;

/// The (op, dtype) pairs implemented. The dtype is the first input's (the
/// output's for `fill`, which has no input).
const PAIRS: &[SrOpSupport] = &[
    SrOpSupport {
        op: OpId::Neg as u32,
        dtype: DType::F32 as u32,
    },
    SrOpSupport {
        op: OpId::Fill as u32,
        dtype: DType::F32 as u32,
    },
];

/// One buffer: its memory and the size the host asked for.
struct Buffer {
    ptr: NonNull<u8>,
    bytes: usize,
    layout: Layout,
}

/// The backend instance. The host calls it from any thread, concurrently:
/// shared mutable state must be atomic or behind a mutex (here, one counter).
#[derive(Debug, Default)]
pub struct MyDevice {
    bytes_in_use: AtomicU64,
}

fn check_device(device: u32) -> Result<()> {
    if device == 0 {
        Ok(())
    } else {
        Err(BackendError::invalid(format!(
            "{NAME} has one device (0), not {device}"
        )))
    }
}

/// The buffer behind a handle.
///
/// # Safety
/// `h` came from this backend's `alloc` and has not been freed.
unsafe fn buffer<'a>(h: BufferHandle) -> &'a Buffer {
    // SAFETY: per the caller, `h` points to a live `Buffer` made by `alloc`.
    unsafe { h.cast::<Buffer>().as_ref() }
}

fn check_range(b: &Buffer, offset: usize, len: usize) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= b.bytes => Ok(()),
        _ => Err(BackendError::invalid(format!(
            "{NAME}: bytes {offset}..+{len} are outside a buffer of {} bytes",
            b.bytes
        ))),
    }
}

/// A checked f32 view: its first element, extents and strides (in
/// elements).
struct View {
    base: *mut f32,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl View {
    /// Checks `d` (rank, extents, strides, dtype, bounds) and views it.
    ///
    /// # Safety
    /// `d.buffer` is null or a live buffer of this backend.
    unsafe fn new(d: &SrTensorDesc, what: &str) -> Result<View> {
        // `SrTensorDesc::rank()` clamps; the raw field is what the host sent.
        if d.rank as usize > SR_MAX_RANK {
            return Err(BackendError::invalid(format!(
                "{NAME}: {what} has rank {} > {SR_MAX_RANK}",
                d.rank
            )));
        }
        if d.dtype() != Some(DType::F32) {
            return Err(BackendError::invalid(format!("{NAME}: {what} must be f32")));
        }
        let h = d
            .buffer()
            .ok_or_else(|| BackendError::invalid(format!("{NAME}: {what} has no buffer")))?;
        // SAFETY: per the caller.
        let b = unsafe { buffer(h) };
        // Last byte touched, or None for negative strides or overflow.
        let extent = d
            .byte_extent()
            .ok_or_else(|| BackendError::invalid(format!("{NAME}: {what} is not a valid view")))?;
        if extent > b.bytes as u64 || !d.byte_offset.is_multiple_of(4) {
            return Err(BackendError::invalid(format!(
                "{NAME}: {what} reaches byte {extent} of a buffer of {} bytes",
                b.bytes
            )));
        }
        // An empty view touches nothing (and its offset may be anything).
        let offset = if d.dims().contains(&0) {
            0
        } else {
            d.byte_offset as usize
        };
        Ok(View {
            // SAFETY: the offset is inside the buffer (checked above).
            base: unsafe { b.ptr.as_ptr().add(offset) } as *mut f32,
            shape: d.dims_usize(),
            strides: d.steps().iter().map(|&s| s as usize).collect(),
        })
    }
}

/// Calls `f` with the element offsets, in each of `N` operands of one
/// `shape`, of every element, the last dim fastest.
fn walk<const N: usize>(shape: &[usize], strides: [&[usize]; N], mut f: impl FnMut([usize; N])) {
    if shape.contains(&0) {
        return;
    }
    let mut index = vec![0usize; shape.len()];
    loop {
        f(std::array::from_fn(|j| {
            index.iter().zip(strides[j]).map(|(i, s)| i * s).sum()
        }));
        // Odometer over the dims.
        let mut k = shape.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
}

/// An output must not name one element twice.
fn check_no_overlap(v: &View) -> Result<()> {
    let mut dims: Vec<(usize, usize)> = v
        .strides
        .iter()
        .zip(&v.shape)
        .filter(|(_, &n)| n > 1)
        .map(|(&s, &n)| (s, n))
        .collect();
    if v.shape.contains(&0) {
        return Ok(());
    }
    dims.sort_unstable();
    let mut reach = 0usize;
    for (s, n) in dims {
        if s <= reach {
            return Err(BackendError::invalid(format!(
                "{NAME}: the output overlaps itself"
            )));
        }
        reach += s * (n - 1);
    }
    Ok(())
}

fn check_arity(call: &OpCall<'_>, inputs: usize) -> Result<()> {
    if call.inputs.len() == inputs && call.outputs.len() == 1 {
        Ok(())
    } else {
        Err(BackendError::invalid(format!(
            "{NAME}: {} takes {inputs} input(s) and 1 output, got {} and {}",
            call.op,
            call.inputs.len(),
            call.outputs.len()
        )))
    }
}

impl Backend for MyDevice {
    fn name(&self) -> &str {
        NAME
    }

    fn device_count(&self) -> u32 {
        1
    }

    fn device_info(&self, device: u32) -> Result<DeviceInfo> {
        check_device(device)?;
        Ok(DeviceInfo {
            kind: SR_DEVICE_CPU,
            name: "mydevice (host memory)".into(),
            attributes: vec![(
                "bytes_in_use".into(),
                self.bytes_in_use.load(Ordering::Relaxed).to_string(),
            )],
            ..DeviceInfo::default()
        })
    }

    fn supported_ops(&self) -> &[SrOpSupport] {
        PAIRS
    }

    fn alloc(&self, device: u32, bytes: usize) -> Result<BufferHandle> {
        check_device(device)?;
        let oom = || BackendError::new(StatusCode::OutOfMemory, format!("{bytes} bytes"));
        // A 0-byte buffer is still a real, distinct handle.
        let layout = Layout::from_size_align(bytes.max(1), ALIGN).map_err(|_| oom())?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc(layout) }).ok_or_else(oom)?;
        self.bytes_in_use.fetch_add(bytes as u64, Ordering::Relaxed);
        let b = Box::new(Buffer { ptr, bytes, layout });
        Ok(BufferHandle::from_ptr(NonNull::from(Box::leak(b))))
    }

    unsafe fn free(&self, h: BufferHandle) {
        // SAFETY: per the trait, `h` came from `alloc` and is freed once.
        let b = unsafe { Box::from_raw(h.cast::<Buffer>().as_ptr()) };
        self.bytes_in_use
            .fetch_sub(b.bytes as u64, Ordering::Relaxed);
        // SAFETY: allocated in `alloc` with this layout.
        unsafe { dealloc(b.ptr.as_ptr(), b.layout) };
    }

    unsafe fn write(&self, h: BufferHandle, offset: usize, src: &[u8]) -> Result<()> {
        // SAFETY: per the trait, `h` is live.
        let b = unsafe { buffer(h) };
        check_range(b, offset, src.len())?;
        // SAFETY: the range is inside the buffer; `src` is host memory.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), b.ptr.as_ptr().add(offset), src.len())
        };
        Ok(())
    }

    unsafe fn read(&self, h: BufferHandle, offset: usize, dst: &mut [u8]) -> Result<()> {
        // SAFETY: per the trait, `h` is live.
        let b = unsafe { buffer(h) };
        check_range(b, offset, dst.len())?;
        // SAFETY: the range is inside the buffer; `dst` is host memory.
        unsafe {
            std::ptr::copy_nonoverlapping(b.ptr.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    fn synchronize(&self, device: u32) -> Result<()> {
        // Every call runs to completion before it returns: nothing queued.
        check_device(device)
    }

    unsafe fn execute(&self, device: u32, call: &OpCall<'_>) -> Result<()> {
        let first = call.inputs.first().or(call.outputs.first());
        let dtype = first.and_then(SrTensorDesc::dtype);
        let listed = PAIRS
            .iter()
            .any(|p| p.op == call.op as u32 && Some(p.dtype) == dtype.map(|d| d as u32));
        if !listed {
            // The host runs this call on its CPU backend instead.
            return Err(BackendError::unsupported(format!(
                "{NAME}: {} is not implemented for {}",
                call.op,
                dtype.map_or("this dtype", DType::name)
            )));
        }
        check_device(device)?;
        match (call.op, call.params) {
            (OpId::Neg, _) => {
                check_arity(call, 1)?;
                // SAFETY: the host passes descriptors of live buffers of ours.
                let (x, y) = unsafe {
                    (
                        View::new(&call.inputs[0], "x")?,
                        View::new(&call.outputs[0], "y")?,
                    )
                };
                if x.shape != y.shape {
                    return Err(BackendError::invalid(format!(
                        "{NAME}: neg: x {:?} must have y's shape {:?} (inputs arrive broadcast)",
                        x.shape, y.shape
                    )));
                }
                check_no_overlap(&y)?;
                walk(&y.shape, [&y.strides, &x.strides], |[oy, ox]| {
                    // SAFETY: both offsets are inside views checked against
                    // their buffers; outputs never alias inputs.
                    unsafe { *y.base.add(oy) = -*x.base.add(ox) };
                });
                Ok(())
            }
            (OpId::Fill, Params::Fill(p)) => {
                check_arity(call, 0)?;
                // SAFETY: as above.
                let y = unsafe { View::new(&call.outputs[0], "y")? };
                check_no_overlap(&y)?;
                let v = p.value as f32;
                // SAFETY: the offset is inside the checked view.
                walk(&y.shape, [&y.strides], |[o]| unsafe { *y.base.add(o) = v });
                Ok(())
            }
            (op, _) => Err(BackendError::invalid(format!(
                "{NAME}: bad params for {op}"
            ))),
        }
    }
}

impl Plugin for MyDevice {
    fn probe() -> ProbeReport {
        // Cheap, no side effect: look for the driver here (and report
        // `usable: false` with a reason, component and hint when it is
        // missing), but set nothing up.
        ProbeReport {
            usable: true,
            // Below the built-in CPU's 10: `auto` keeps the CPU; raise it
            // once the device is faster.
            score: 1,
            name: NAME.into(),
            ..ProbeReport::default()
        }
    }

    fn init(host: &HostInfo) -> Result<Self> {
        // Device set-up goes here: init runs only when this backend's device
        // is chosen, or when `sunrise doctor` / `sunrise info` list devices.
        sunrise_backend_api::log::log(
            sunrise_backend_api::log::Level::Info,
            NAME,
            &format!("{NAME} ready (ABI 1.{})", host.abi_minor),
        );
        Ok(MyDevice::default())
    }
}

sunrise_backend_api::export_backend!(MyDevice);
