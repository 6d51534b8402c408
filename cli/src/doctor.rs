//! `sunrise doctor`: everything a user (or a bug report) needs to know about
//! why a device is or is not used. It initialises every usable plugin, so
//! that it can list their devices.

use std::process::ExitCode;

use serde_json::{json, Value};
use sunrise::plugin::{Candidate, Outcome, SearchPath};
use sunrise::registry::{DeviceEntry, Registry};

fn search_json(s: &SearchPath) -> Value {
    json!({
        "path": s.path.display().to_string(),
        "origin": s.origin.to_string(),
        "exists": s.exists,
        "note": s.note,
    })
}

fn candidate_json(c: &Candidate) -> Value {
    let path = c.path.display().to_string();
    match &c.outcome {
        Outcome::Loaded {
            name,
            score,
            abi_minor,
            devices,
        } => json!({
            "path": path,
            "status": if c.outcome.is_initialised() { "loaded" } else { "probed" },
            "name": name,
            "file_stem": c.file_stem(),
            "score": score,
            "abi": abi_minor.map(|m| format!("1.{m}")),
            "devices": devices,
            "warning": name_warning(c),
        }),
        Outcome::Skipped(r) => json!({
            "path": path,
            "status": "skipped",
            "file_stem": c.file_stem(),
            "kind": r.kind.name(),
            "kind_text": r.kind.to_string(),
            "reason": r.message,
            "component": r.component,
            "hint": r.hint,
        }),
    }
}

/// The warning for a plugin whose file name and probe name differ (but a
/// `cpu` plugin, which the built-in CPU shadows whatever its file name: the
/// note on it says so).
fn name_warning(c: &Candidate) -> Option<String> {
    let (stem, name) = c.name_mismatch().filter(|(_, name)| *name != "cpu")?;
    Some(format!(
        "{} is named for backend `{stem}`, but its probe calls it `{name}`: \
         select it with --device {name} (--device {stem} finds nothing)",
        c.path.display()
    ))
}

/// The (op, dtype) pairs the built-in CPU implements that this device's
/// backend does not list: each runs on the CPU, one call at a time, when
/// used there (a listed pair may still fall back when the backend answers
/// `Unsupported`; the fallback counts say so).
fn unlisted_pairs(d: &sunrise::Device) -> Vec<(sunrise::OpId, sunrise::DType)> {
    if d.is_builtin_cpu() {
        return Vec::new();
    }
    let cpu = sunrise::Device::cpu();
    sunrise::OpId::ALL
        .iter()
        .flat_map(|&op| sunrise::DType::ALL.iter().map(move |&t| (op, t)))
        .filter(|&(op, t)| cpu.supports(op, t) && !d.supports(op, t))
        .collect()
}

fn devices_json(devices: &[DeviceEntry]) -> Vec<Value> {
    devices
        .iter()
        .map(|e| {
            let d = &e.device;
            let info = d.backend().device_info(d.ordinal());
            match info {
                Ok(i) => json!({
                    "device": d.label(),
                    "backend": d.backend().name(),
                    "score": e.score,
                    "name": i.name,
                    "total_memory": i.total_memory,
                    "free_memory": i.free_memory,
                    "compute_capability": i.compute_capability.map(|(a, b)| format!("{a}.{b}")),
                    "driver_version": i.driver_version,
                    "library_versions": i.library_versions,
                    "attributes": i.attributes.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "ops": d.backend().supported_ops().len(),
                    "unlisted": unlisted_pairs(d)
                        .into_iter()
                        .map(|(op, t)| json!({"op": op.name(), "dtype": t.name()}))
                        .collect::<Vec<_>>(),
                }),
                Err(err) => json!({ "device": d.label(), "error": err.to_string() }),
            }
        })
        .collect()
}

fn report(reg: &Registry, request: &str) -> (Value, bool) {
    let isa = sunrise::cpu_isa();
    let devices = reg.init_all();
    let chosen = reg.device(request);
    let disc = reg.discovery();
    let ok = chosen.is_ok();
    let fallbacks: Vec<Value> = sunrise::registry::fallback_report()
        .into_iter()
        .map(|f| {
            json!({
                "backend": f.backend,
                "op": f.op.name(),
                "dtype": f.dtype.name(),
                "reason": f.reason.name(),
                "count": f.count,
            })
        })
        .collect();
    let warnings: Vec<String> = disc.candidates.iter().filter_map(name_warning).collect();
    let v = json!({
        "version": sunrise::VERSION,
        "abi": format!("{}.{}", sunrise::ABI_MAJOR, sunrise::ABI_MINOR),
        "cpu": {
            "tier": isa.active.name(),
            "detected": isa.detected.name(),
            "reason": isa.reason,
            "features": isa.features,
            "threads": sunrise_backend_cpu::threads::num_threads(),
        },
        "system_dir": disc.system_dir.as_ref().map(|p| p.display().to_string()),
        "searched": disc.searched.iter().map(search_json).collect::<Vec<_>>(),
        "candidates": disc.candidates.iter().map(candidate_json).collect::<Vec<_>>(),
        "shadowed_cpu_plugins": reg.shadowed(),
        "devices": devices_json(&devices),
        "fallbacks": fallbacks,
        "warnings": warnings,
        "requested": request,
        "selected": chosen.as_ref().ok().map(|d| d.label().to_string()),
        "error": chosen.as_ref().err().map(|e| e.to_string()),
    });
    (v, ok)
}

fn print_text(v: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    println!(
        "sunrise {} (backend ABI {})",
        s(&v["version"]),
        s(&v["abi"])
    );
    let cpu = &v["cpu"];
    println!(
        "\nCPU tier: {} (detected: {}; {} threads)",
        s(&cpu["tier"]),
        s(&cpu["detected"]),
        cpu["threads"]
    );
    println!("  why: {}", s(&cpu["reason"]));
    println!("\nPlugin search (in order):");
    match v["system_dir"].as_str() {
        Some(d) => println!("  system directory compiled in: {d}"),
        None => println!(
            "  no system directory compiled in (SUNRISE_BACKEND_DIR was unset at build time)"
        ),
    }
    for p in v["searched"].as_array().into_iter().flatten() {
        let state = if p["exists"].as_bool() == Some(true) {
            ""
        } else {
            "  [absent]"
        };
        let note = p["note"]
            .as_str()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        println!("  {:<24} {}{state}{note}", s(&p["origin"]), s(&p["path"]));
    }
    println!("\nCandidates:");
    let cands = v["candidates"].as_array().cloned().unwrap_or_default();
    if cands.is_empty() {
        println!("  none found");
    }
    for c in cands {
        if c["status"] == "loaded" {
            println!(
                "  loaded   {} -> backend {:?}, ABI {}, {} device(s)",
                s(&c["path"]),
                s(&c["name"]),
                s(&c["abi"]),
                c["devices"]
            );
        } else if c["status"] == "probed" {
            println!(
                "  probed   {} -> backend {:?}, usable, not initialised",
                s(&c["path"]),
                s(&c["name"]),
            );
        } else {
            println!(
                "  skipped  {}: [{}] {}",
                s(&c["path"]),
                s(&c["kind_text"]),
                s(&c["reason"])
            );
            if let Some(comp) = c["component"].as_str() {
                println!("           missing: {comp}");
            }
            if let Some(h) = c["hint"].as_str() {
                println!("           hint: {h}");
            }
        }
    }
    for p in v["shadowed_cpu_plugins"].as_array().into_iter().flatten() {
        println!(
            "  note     {} is a cpu plugin; the built-in cpu backend takes precedence",
            s(p)
        );
    }
    println!("\nDevices:");
    for d in v["devices"].as_array().into_iter().flatten() {
        let mut line = format!("  {:<8} {}", s(&d["device"]), s(&d["name"]));
        if let Some(cc) = d["compute_capability"].as_str() {
            line.push_str(&format!(", compute {cc}"));
        }
        if let Some(m) = d["total_memory"].as_u64().filter(|&m| m > 0) {
            line.push_str(&format!(", {:.1} GiB", m as f64 / (1u64 << 30) as f64));
        }
        if let Some(dv) = d["driver_version"].as_str() {
            line.push_str(&format!(", driver {dv}"));
        }
        if let Some(lv) = d["library_versions"].as_str() {
            line.push_str(&format!(", {lv}"));
        }
        println!("{line}");
        if let Some(pairs) = d["unlisted"].as_array().filter(|a| !a.is_empty()) {
            print_unlisted(pairs);
        }
    }
    let fb = v["fallbacks"].as_array().cloned().unwrap_or_default();
    if !fb.is_empty() {
        println!("\nOps that fell back to the CPU:");
        for f in fb {
            println!(
                "  {} {} {}: {} ({})",
                s(&f["backend"]),
                s(&f["op"]),
                s(&f["dtype"]),
                f["count"],
                s(&f["reason"])
            );
        }
    }
    let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
    if !warnings.is_empty() {
        println!("\nWarnings:");
        for w in warnings {
            println!("  warning: {}", s(&w));
        }
    }
    println!();
    match v["selected"].as_str() {
        Some(d) => println!("Requested device {:?}: OK, using {d}", s(&v["requested"])),
        None => println!(
            "Requested device {:?}: UNUSABLE: {}",
            s(&v["requested"]),
            s(&v["error"])
        ),
    }
}

/// Prints a device's unlisted (op, dtype) pairs, grouped by op, wrapped.
fn print_unlisted(pairs: &[Value]) {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for p in pairs {
        let (op, t) = (
            p["op"].as_str().unwrap_or(""),
            p["dtype"].as_str().unwrap_or(""),
        );
        match groups.last_mut() {
            Some((last, ts)) if last == op => ts.push(t.to_string()),
            _ => groups.push((op.to_string(), vec![t.to_string()])),
        }
    }
    println!(
        "           {} (op, dtype) pair(s) the CPU has are not listed here and run on the CPU:",
        pairs.len()
    );
    let items: Vec<String> = groups
        .iter()
        .map(|(op, ts)| format!("{op} {}", ts.join("/")))
        .collect();
    let mut line = String::new();
    for item in items {
        if !line.is_empty() && line.len() + item.len() > 80 {
            println!("             {line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(&item);
    }
    if !line.is_empty() {
        println!("             {line}");
    }
}

/// Runs the doctor; exit status 1 when the requested device is unusable.
pub fn run(request: &str, json: bool) -> ExitCode {
    let reg = sunrise::registry::registry();
    let (v, ok) = report(reg, request);
    if json {
        println!("{v}");
    } else {
        print_text(&v);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
