//! The `sunrise` command end to end: doctor (text and JSON, with real
//! fixture plugins and an explicit device that cannot be met), info, and
//! bench.

#[path = "../../tests/tests/common/mod.rs"]
mod common;
mod support;

use support::{sunrise, text};

#[test]
fn doctor_reports_the_cpu_tier_and_honours_the_cap() {
    let o = sunrise(&["doctor"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let detected = sunrise_backend_cpu::isa::detect().0;
    assert!(
        text(&o).contains(&format!("CPU tier: {detected}")),
        "{}",
        text(&o)
    );
    let o = sunrise(&["doctor", "--json"], &[("SUNRISE_CPU_ISA", "sse2")]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(v["cpu"]["tier"], "sse2");
        assert!(v["cpu"]["reason"]
            .as_str()
            .unwrap()
            .contains("SUNRISE_CPU_ISA"));
    }
    assert_eq!(v["selected"], "cpu");
}

#[test]
fn doctor_lists_every_bad_plugin_with_its_reason_and_survives() {
    let dir = common::plugin_dir();
    let path = dir.path().to_str().unwrap();
    let o = sunrise(&["doctor", "--json"], &[("SUNRISE_BACKEND_PATH", path)]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let cands = v["candidates"].as_array().unwrap();
    let kind_of = |file: &str| {
        cands
            .iter()
            .find(|c| c["path"].as_str().unwrap().ends_with(file))
            .map(|c| {
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["kind"].as_str().unwrap_or("").to_string(),
                )
            })
            .unwrap_or_else(|| panic!("{file} not listed: {cands:?}"))
    };
    assert_eq!(kind_of("libsunrise_backend_abi2.so").1, "abi_mismatch");
    assert_eq!(kind_of("libsunrise_backend_panics.so").1, "init_failed");
    assert_eq!(kind_of("libsunrise_backend_noentry.so").1, "missing_symbol");
    assert_eq!(kind_of("libsunrise_backend_unusable.so").1, "unusable");
    assert_eq!(kind_of("libsunrise_backend_notelf.so").1, "not_loadable");
    assert_eq!(kind_of("libsunrise_backend_cpu.so").0, "loaded");
    let unusable = cands
        .iter()
        .find(|c| c["path"].as_str().unwrap().ends_with("unusable.so"))
        .unwrap();
    assert_eq!(unusable["component"], common::UNUSABLE_COMPONENT);
    assert_eq!(unusable["hint"], common::UNUSABLE_HINT);
    let t = sunrise(&["doctor"], &[("SUNRISE_BACKEND_PATH", path)]);
    assert!(text(&t).contains(common::UNUSABLE_REASON), "{}", text(&t));
    assert!(text(&t).contains("hint: install the package libfrob3"));
}

#[test]
fn explicit_cuda_without_a_plugin_fails_with_the_reason_and_a_hint() {
    let o = sunrise(&["doctor"], &[("SUNRISE_DEVICE", "cuda")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("UNUSABLE"), "{t}");
    assert!(t.contains("libsunrise_backend_cuda.so"), "{t}");
    // Without the plugin the hint names its package; with the plugin built
    // beside the binary (any `cargo build` of the workspace), the plugin's
    // own probe names the missing driver library.
    assert!(
        t.contains("sunrise-backend-cuda") || t.contains("libcuda.so.1"),
        "{t}"
    );
    let o = sunrise(&["--device", "cuda:0", "info"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = sunrise(&["info"], &[]);
    assert!(o.status.success());
    assert!(text(&o).contains("backend ABI 1.3"), "{}", text(&o));
}

#[test]
fn bench_prints_every_tier_beside_portable() {
    let o = sunrise(
        &["bench", "--filter", "add", "--seconds", "0.01", "--json"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    for tier in sunrise_backend_cpu::isa::available_tiers() {
        assert!(
            rows.iter().any(|r| r["op"] == "add"
                && r["isa"] == tier.name()
                && r["value"].as_f64().unwrap() > 0.0),
            "no add figure for {tier}: {rows:?}"
        );
        assert!(rows
            .iter()
            .any(|r| r["op"] == "memcpy" && r["isa"] == tier.name()));
    }
}

#[test]
fn bench_train_measures_steps_and_dispatch_and_names_a_missing_peer() {
    let best = sunrise_backend_cpu::isa::available_tiers()
        .last()
        .expect("a tier")
        .name();
    let args = [
        "bench",
        "train",
        "--seconds",
        "0",
        "--threads",
        "1",
        "--tiers",
        best,
    ];
    let no_peer = ["--python", "/nonexistent/python3"];
    for filter in ["digits", "add-f32"] {
        let mut a = args.to_vec();
        a.extend(["--filter", filter, "--json"]);
        a.extend(no_peer);
        let o = sunrise(&a, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!(r["suite"], "train");
        assert!(r["ours_seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            r["peer_error"]
                .as_str()
                .unwrap()
                .contains("/nonexistent/python3"),
            "{r}"
        );
        if filter == "digits" {
            assert_eq!(r["kind"], "step");
            let split = r["split"].as_object().expect("a split");
            assert!(
                split.contains_key("conv") && split.contains_key("outside ops"),
                "{r}"
            );
        } else {
            assert_eq!(r["kind"], "dispatch");
            assert!(r["direct_seconds"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    // The table.
    let mut a = args.to_vec();
    a.extend(["--filter", "digits"]);
    a.extend(no_peer);
    let o = sunrise(&a, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for want in ["digits-cnn", "ours by family: ", "peer: unavailable"] {
        assert!(t.contains(want), "{want:?} missing from:\n{t}");
    }
}

#[test]
fn sunrise_profile_prints_the_op_time_of_a_command() {
    let o = sunrise(
        &["train", "--epochs", "1", "--quiet"],
        &[("SUNRISE_PROFILE", "1")],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for want in [
        "op time (SUNRISE_PROFILE)",
        "conv2d_backward_filter",
        "family",
    ] {
        assert!(t.contains(want), "{want:?} missing from:\n{t}");
    }
    let o = sunrise(&["train", "--epochs", "1", "--quiet"], &[]);
    assert!(!text(&o).contains("op time"), "{}", text(&o));
}

#[test]
fn train_save_and_eval_round_trip_and_bad_files_are_reported() {
    let dir = common::TempDir::new("cli-train");
    let ckpt = dir.path().join("m.safetensors");
    let ck = ckpt.to_str().unwrap();
    let o = sunrise(&["train", "--epochs", "2", "--quiet", "--save", ck], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    for want in [
        "held-out accuracy",
        "samples/s",
        "CPU tier",
        "device cpu",
        "saved",
    ] {
        assert!(t.contains(want), "{want:?} missing from:\n{t}");
    }
    let e = sunrise(&["eval", "--load", ck], &[]);
    assert!(e.status.success(), "{}", text(&e));
    assert!(text(&e).contains("held-out accuracy"));

    let bad = dir.path().join("ragged.csv");
    std::fs::write(&bad, "1,2,3,0\n4,5,1\n").unwrap();
    let o = sunrise(&["train", "--data", bad.to_str().unwrap(), "--quiet"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.contains("ragged.csv") && t.contains('2'),
        "names file and line: {t}"
    );

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint at all").unwrap();
    let o = sunrise(&["eval", "--load", junk.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("junk.safetensors"), "{}", text(&o));
}

#[test]
fn train_and_doctor_report_fallbacks_per_dtype_and_reason() {
    let dir = common::TempDir::new("cli-partial");
    dir.copy_cdylib("sunrise-fixture-partial", "libsunrise_backend_partial.so");
    let path = dir.path().to_str().unwrap();
    let o = sunrise(
        &["--device", "partial", "train", "--epochs", "1", "--quiet"],
        &[
            ("SUNRISE_BACKEND_PATH", path),
            ("SUNRISE_LOG", "sunrise=debug"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let summary = out
        .lines()
        .find_map(|l| l.strip_prefix("ops that fell back to the CPU: "))
        .unwrap_or_else(|| panic!("no fallback summary:\n{out}"));
    let items: Vec<String> = summary
        .split("), ")
        .map(|i| i.strip_suffix(')').unwrap_or(i).to_string() + ")")
        .collect();
    for item in &items {
        // `matmul f32 x180 (partial, unlisted)`
        let (head, tail) = item
            .split_once(" (")
            .expect("op dtype xN (backend, reason)");
        let words: Vec<&str> = head.split(' ').collect();
        assert_eq!(words.len(), 3, "{item}");
        assert!(
            sunrise::DType::ALL.iter().any(|t| t.name() == words[1]),
            "{item}"
        );
        assert!(
            words[2]
                .strip_prefix('x')
                .is_some_and(|n| n.parse::<u64>().is_ok()),
            "{item}"
        );
        assert!(
            tail == "partial, unlisted)" || tail == "partial, unsupported)",
            "{item}"
        );
    }
    assert!(
        items.iter().any(|i| i.starts_with("matmul f32 x")),
        "{summary}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("matmul on f32 runs on the CPU"))
        .unwrap_or_else(|| panic!("no debug line for matmul:\n{err}"));
    for part in ["backend partial does not list (matmul, f32)", "unlisted"] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }

    let o = sunrise(
        &["--device", "partial", "doctor", "--json"],
        &[("SUNRISE_BACKEND_PATH", path)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let dev = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "partial:0")
        .unwrap_or_else(|| panic!("no partial:0 in {v:#}"))
        .clone();
    let unlisted = dev["unlisted"].as_array().expect("unlisted pairs");
    let has = |op: &str, dtype: &str| {
        unlisted
            .iter()
            .any(|p| p["op"] == op && p["dtype"] == dtype)
    };
    assert!(
        has("matmul", "f32") && has("add", "i64") && has("add", "f64"),
        "{dev}"
    );
    assert!(
        !has("add", "f32") && !has("mul", "f64"),
        "listed pairs are not unlisted: {dev}"
    );
    let cpu = v["devices"][0]["unlisted"].as_array().unwrap();
    assert!(cpu.is_empty(), "the built-in CPU lists everything: {cpu:?}");
    let t = sunrise(
        &["--device", "partial", "doctor"],
        &[("SUNRISE_BACKEND_PATH", path)],
    );
    let t = text(&t);
    assert!(t.contains("pair(s) the CPU has are not listed here"), "{t}");
    assert!(t.contains("add f64/i64"), "{t}");
}
