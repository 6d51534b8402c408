//! What the CPU device is: name, memory, and the ISA tier in use.

use sunrise_backend_api::abi::SR_DEVICE_CPU;
use sunrise_backend_api::DeviceInfo;

use crate::isa;

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Describes the one CPU device.
pub fn info() -> DeviceInfo {
    let c = isa::choice();
    DeviceInfo {
        kind: SR_DEVICE_CPU,
        name: cpu_name(),
        total_memory: meminfo("MemTotal:"),
        free_memory: meminfo("MemAvailable:"),
        compute_capability: None,
        driver_version: None,
        library_versions: None,
        attributes: vec![
            ("cpu.isa".into(), c.active.name().into()),
            ("cpu.isa.detected".into(), c.detected.name().into()),
            ("cpu.isa.reason".into(), c.reason.clone()),
            ("cpu.features".into(), c.features.join(" ")),
            (
                "cpu.threads".into(),
                crate::threads::num_threads().to_string(),
            ),
            ("arch".into(), std::env::consts::ARCH.into()),
            (
                sunrise_backend_api::ops::CONV2D_CHANNELS_LAST_OUTPUT.into(),
                "yes".into(),
            ),
        ],
    }
}
