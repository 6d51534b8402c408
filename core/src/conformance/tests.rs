//! The suite has teeth: a backend with a wrong kernel, one that lists a
//! pair but answers `Unsupported`, and one that accepts bad descriptors all
//! fail, each with a message naming the op, the dtype and what went wrong.

use std::sync::Arc;

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{
    Backend, BackendError, BufferHandle, DeviceInfo, OpCall, OpId, Result as BResult,
};
use sunrise_backend_cpu::CpuBackend;

use super::{run, Options, Row};
use crate::{DType, Device};

/// How [`Faulty`] misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// `add` runs `sub`.
    WrongAdd,
    /// Lists `matmul` but answers `Unsupported` for it.
    LyingMatmul,
    /// Runs `neg` on any descriptors without checking them against the
    /// output (a bad input count is accepted).
    UncheckedNeg,
    /// None: the CPU kernels as they are.
    None,
}

/// The CPU kernels behind a short list of f32 pairs, with one fault.
struct Faulty {
    cpu: CpuBackend,
    fault: Fault,
    ops: Vec<SrOpSupport>,
}

impl Faulty {
    fn device(fault: Fault) -> Device {
        let ops = [OpId::Add, OpId::Matmul, OpId::Neg, OpId::IndexAdd]
            .iter()
            .map(|&op| SrOpSupport {
                op: op as u32,
                dtype: DType::F32 as u32,
            })
            .collect();
        let b = Faulty {
            cpu: CpuBackend::new(),
            fault,
            ops,
        };
        Device::from_backend(Arc::new(b), 0, "faulty:0")
    }
}

impl Backend for Faulty {
    fn name(&self) -> &str {
        "faulty"
    }
    fn device_count(&self) -> u32 {
        1
    }
    fn device_info(&self, device: u32) -> BResult<DeviceInfo> {
        self.cpu.device_info(device)
    }
    fn supported_ops(&self) -> &[SrOpSupport] {
        &self.ops
    }
    fn alloc(&self, device: u32, bytes: usize) -> BResult<BufferHandle> {
        self.cpu.alloc(device, bytes)
    }
    unsafe fn free(&self, buffer: BufferHandle) {
        // SAFETY: forwarded; the buffers are the CPU backend's.
        unsafe { self.cpu.free(buffer) }
    }
    unsafe fn write(&self, buffer: BufferHandle, offset: usize, src: &[u8]) -> BResult<()> {
        // SAFETY: forwarded.
        unsafe { self.cpu.write(buffer, offset, src) }
    }
    unsafe fn read(&self, buffer: BufferHandle, offset: usize, dst: &mut [u8]) -> BResult<()> {
        // SAFETY: forwarded.
        unsafe { self.cpu.read(buffer, offset, dst) }
    }
    fn synchronize(&self, device: u32) -> BResult<()> {
        self.cpu.synchronize(device)
    }
    unsafe fn execute(&self, device: u32, call: &OpCall<'_>) -> BResult<()> {
        let mut call = *call;
        match (self.fault, call.op) {
            (Fault::WrongAdd, OpId::Add) => call.op = OpId::Sub,
            (Fault::LyingMatmul, OpId::Matmul) => {
                return Err(BackendError::unsupported("matmul is listed but missing"))
            }
            (Fault::UncheckedNeg, OpId::Neg) if call.inputs.len() > 1 => {
                call.inputs = &call.inputs[..1];
            }
            _ => {}
        }
        // SAFETY: forwarded with the caller's descriptors.
        unsafe { self.cpu.execute(device, &call) }
    }
}

fn run_on(fault: Fault, ops: &[&str]) -> super::Report {
    let opts = Options {
        ops: ops.iter().map(|s| s.to_string()).collect(),
        training: false,
    };
    run(&Faulty::device(fault), &opts, &mut |_| {})
}

#[test]
fn a_wrong_kernel_fails_naming_op_dtype_and_largest_error() {
    let r = run_on(Fault::WrongAdd, &["add", "neg"]);
    assert_eq!((r.passed(), r.failed()), (1, 1), "{r:#?}");
    let add = r
        .pairs
        .iter()
        .find(|p| p.op == OpId::Add)
        .expect("an add row");
    assert_eq!((add.op, add.dtype), (OpId::Add, DType::F32));
    assert!(!add.failures.is_empty());
    let first = &add.failures[0];
    assert!(
        first.starts_with("add f32 [")
            && first.contains("largest error")
            && first.contains("> tolerance 1e-5"),
        "{first}"
    );
    assert!(
        add.worst > 1.0,
        "the worst column shows the failing error: {}",
        add.accuracy()
    );
    assert_eq!(r.summary(), "1 passed, 1 failed");
}

#[test]
fn a_listed_pair_that_runs_on_the_cpu_fails() {
    let r = run_on(Fault::LyingMatmul, &["matmul"]);
    assert_eq!(r.failed(), 1);
    assert!(
        r.failures()
            .all(|f| f.contains("ran on the CPU, not on faulty:0")),
        "{:#?}",
        r.failures().collect::<Vec<_>>()
    );
}

#[test]
fn an_accepted_bad_descriptor_fails() {
    let r = run_on(Fault::UncheckedNeg, &["neg"]);
    let f: Vec<&str> = r.failures().collect();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0],
        "neg f32 [errors] 2 inputs instead of 1: accepted, expected invalid argument"
    );
}

#[test]
fn the_cpu_backend_passes_its_own_error_paths_and_buffers() {
    let mut rows = Vec::new();
    let opts = Options {
        training: false,
        ..Options::default()
    };
    // Only the error paths and buffers matter here: a pattern would skip
    // buffers, so run everything once but look at those parts.
    let r = run(&Device::cpu(), &opts, &mut |row| {
        if let Row::Check(c) = row {
            rows.push(c.name);
        }
    });
    assert_eq!(rows, ["buffers"]);
    let f: Vec<&str> = r.failures().collect();
    assert!(f.is_empty(), "{f:#?}");
    assert!(r.pairs.iter().map(|p| p.error_paths).sum::<usize>() > 300);
}

#[test]
fn index_add_is_keyed_on_its_src_dtype_not_its_index() {
    // The backend lists (index_add, f32) only: the host must send it the
    // f32 calls (whose first input is the i64 index), not fall back.
    let r = run_on(Fault::None, &["index_add"]);
    let f: Vec<&str> = r.failures().collect();
    assert!(f.is_empty(), "{f:#?}");
    assert_eq!(r.pairs.len(), 1);
    assert_eq!(
        (r.pairs[0].op, r.pairs[0].dtype),
        (OpId::IndexAdd, DType::F32)
    );
    assert!(r.pairs[0].outputs > 0);
}
