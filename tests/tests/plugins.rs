//! Plugin discovery and loading, end to end with real shared objects: the
//! fixture plugins (each broken in one way) and the real CPU plugin, copied
//! into scratch directories and found through `discover_in`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{
    plugin_dir, TempDir, CPU_PLUGIN, PANIC_TEXT, UNUSABLE_COMPONENT, UNUSABLE_HINT, UNUSABLE_REASON,
};
use sunrise::plugin::*;
use sunrise_backend_api::abi::{SrTensorDesc, SR_ABI_MINOR, SR_DEVICE_CPU};
use sunrise_backend_api::ops::FillParams;
use sunrise_backend_api::{Backend, BufferHandle, DType, OpCall, OpId, Params, StatusCode};

fn env_path(path: &Path) -> Vec<SearchPath> {
    vec![SearchPath::new(path, PathOrigin::Env)]
}

fn outcome_of<'a>(d: &'a Discovery, file: &str) -> &'a Outcome {
    let c = d
        .candidates
        .iter()
        .find(|c| c.path.file_name().is_some_and(|n| n == file))
        .unwrap_or_else(|| panic!("{file} is not a candidate: {:#?}", d.candidates));
    &c.outcome
}

fn skip_of<'a>(d: &'a Discovery, file: &str) -> &'a SkipReason {
    match outcome_of(d, file) {
        Outcome::Skipped(r) => r,
        other => panic!("{file} was not skipped: {other:?}"),
    }
}

#[test]
fn every_bad_plugin_is_skipped_with_its_reason_and_the_cpu_plugin_loads() {
    let dir = plugin_dir();
    let d = discover_in(env_path(dir.path()));

    assert_eq!(d.searched.len(), 1);
    assert!(d.searched[0].exists && d.searched[0].note.is_none());
    let names: Vec<String> = d
        .candidates
        .iter()
        .map(|c| c.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expect = ["abi2", "cpu", "noentry", "notelf", "panics", "unusable"]
        .map(|n| format!("libsunrise_backend_{n}.so"));
    assert_eq!(names, expect, "candidates are sorted by name");

    let abi2 = skip_of(&d, "libsunrise_backend_abi2.so");
    assert_eq!(abi2.kind, SkipKind::AbiMismatch, "{abi2}");
    assert!(abi2.message.contains("ABI major 2"), "{abi2}");
    assert!(abi2.message.contains("sunrise_backend_probe_v2"), "{abi2}");
    assert!(
        abi2.hint.as_deref().is_some_and(|h| h.contains("ABI 1")),
        "{abi2}"
    );

    let noentry = skip_of(&d, "libsunrise_backend_noentry.so");
    assert_eq!(noentry.kind, SkipKind::MissingSymbol, "{noentry}");
    assert!(
        noentry.message.contains("sunrise_backend_probe_v1"),
        "{noentry}"
    );

    let notelf = skip_of(&d, "libsunrise_backend_notelf.so");
    assert_eq!(notelf.kind, SkipKind::NotLoadable, "{notelf}");
    assert!(notelf.message.contains("not an ELF"), "{notelf}");

    let panics = skip_of(&d, "libsunrise_backend_panics.so");
    assert_eq!(panics.kind, SkipKind::InitFailed, "{panics}");
    assert!(panics.message.contains("panic"), "{panics}");
    assert!(panics.message.contains(PANIC_TEXT), "{panics}");

    let unusable = skip_of(&d, "libsunrise_backend_unusable.so");
    assert_eq!(unusable.kind, SkipKind::Unusable, "{unusable}");
    assert!(unusable.message.contains(UNUSABLE_REASON), "{unusable}");
    assert_eq!(unusable.component.as_deref(), Some(UNUSABLE_COMPONENT));
    assert_eq!(unusable.hint.as_deref(), Some(UNUSABLE_HINT));
    let line = unusable.to_string();
    for part in [UNUSABLE_REASON, UNUSABLE_COMPONENT, UNUSABLE_HINT] {
        assert!(line.contains(part), "{line}");
    }

    assert_eq!(
        outcome_of(&d, CPU_PLUGIN),
        &Outcome::Loaded {
            name: "cpu".into(),
            score: 10,
            abi_minor: Some(SR_ABI_MINOR),
            devices: Some(1)
        }
    );
    assert_eq!(d.plugins.len(), 1, "{:?}", d.plugins);
    let cpu = d.plugin("cpu").expect("the cpu plugin");
    assert_eq!(cpu.path, dir.path().join(CPU_PLUGIN));
    assert!(cpu.probe.usable);
    assert_eq!(d.skipped().count(), 5);
}

#[test]
fn a_scan_probes_every_candidate_and_initialises_none_until_asked() {
    let dir = plugin_dir();
    let mut d = scan_in(env_path(dir.path()));
    let panics = "libsunrise_backend_panics.so";
    // The panicking init has not run: its probe says usable.
    for file in [panics, CPU_PLUGIN] {
        assert!(
            matches!(
                outcome_of(&d, file),
                Outcome::Loaded {
                    abi_minor: None,
                    devices: None,
                    ..
                }
            ),
            "{file}: {:?}",
            outcome_of(&d, file)
        );
        assert!(!outcome_of(&d, file).is_initialised());
    }
    assert!(d.plugins.is_empty());
    let names: Vec<&str> = d.probed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cpu", "panics"]);
    assert_eq!(d.skipped().count(), 4, "the other four fail before init");

    let cpu = d.init("cpu").expect("a usable cpu").expect("its init");
    assert!(outcome_of(&d, CPU_PLUGIN).is_initialised());
    assert_eq!(d.plugins.len(), 1);
    let again = d.init("cpu").unwrap().unwrap();
    assert!(
        std::ptr::addr_eq(Arc::as_ptr(&cpu.backend), Arc::as_ptr(&again.backend)),
        "init runs once: the second call returns the same instance"
    );
    assert_eq!(d.plugins.len(), 1);
    assert!(d.init("nosuch").is_none());

    let err = d.init("panics").unwrap().expect_err("init panics");
    assert_eq!(err.kind, SkipKind::InitFailed, "{err}");
    assert_eq!(skip_of(&d, panics), &err, "recorded on the candidate");
    assert!(d.init("panics").unwrap().is_err(), "and never retried");
    assert_eq!(d.skipped().count(), 5);

    // Clones share the one init.
    let copy = d.clone();
    assert!(copy.probed_plugin("cpu").unwrap().initialised().is_some());
    assert_eq!(cpu.destroy(), Destroyed::Now);
    assert_eq!(again.destroy(), Destroyed::Already);
    assert_eq!(
        cpu.backend.device_count(),
        0,
        "no call reaches a destroyed plugin"
    );
}

#[test]
fn a_plugin_whose_file_and_probe_names_differ_is_flagged() {
    let dir = TempDir::new("misnamed");
    dir.copy_cdylib("sunrise-backend-cpu-plugin", "libsunrise_backend_mycpu.so");
    dir.copy_cdylib(
        "sunrise-fixture-init-panics",
        "libsunrise_backend_panics.so",
    );
    let d = scan_in(env_path(dir.path()));
    let stems: Vec<Option<&str>> = d.candidates.iter().map(|c| c.file_stem()).collect();
    assert_eq!(stems, [Some("mycpu"), Some("panics")]);
    assert_eq!(d.candidates[0].name_mismatch(), Some(("mycpu", "cpu")));
    assert_eq!(d.candidates[1].name_mismatch(), None);
    let any_name = TempDir::new("any-name-file");
    let custom = any_name.copy_cdylib("sunrise-backend-cpu-plugin", "custom.so.1");
    let d = scan_in(vec![SearchPath::new(&custom, PathOrigin::Env)]);
    assert_eq!(d.candidates[0].file_stem(), None);
    assert_eq!(d.candidates[0].name_mismatch(), None);
}

#[test]
fn load_plugin_reports_the_same_reasons_one_file_at_a_time() {
    let dir = plugin_dir();
    let cases = [
        ("abi2", SkipKind::AbiMismatch),
        ("noentry", SkipKind::MissingSymbol),
        ("notelf", SkipKind::NotLoadable),
        ("panics", SkipKind::InitFailed),
        ("unusable", SkipKind::Unusable),
    ];
    for (name, kind) in cases {
        let path = dir.path().join(format!("libsunrise_backend_{name}.so"));
        let err = load_plugin(&path).expect_err(name);
        assert_eq!(err.kind, kind, "{name}: {err}");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
    }
    let cpu = load_plugin(&dir.path().join(CPU_PLUGIN)).expect("the cpu plugin loads");
    assert_eq!(cpu.name, "cpu");
    assert_eq!(cpu.backend.name(), "cpu");
    let missing = load_plugin(&dir.path().join("libsunrise_backend_absent.so")).unwrap_err();
    assert_eq!(missing.kind, SkipKind::NotLoadable, "{missing}");
}

#[test]
fn a_truncated_plugin_is_refused_before_dlopen_can_crash_on_it() {
    // dlopen maps segments past the end of a truncated file and the process
    // dies of SIGBUS; the ELF pre-check must refuse it first.
    let dir = TempDir::new("truncated");
    let bytes = std::fs::read(common::cdylib("sunrise-backend-cpu-plugin")).unwrap();
    let path = dir.path().join("libsunrise_backend_truncated.so");
    for cut in [4096, 65536] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = load_plugin(&path).unwrap_err();
        assert_eq!(err.kind, SkipKind::NotLoadable, "{err}");
        assert!(err.message.contains("truncated"), "{err}");
    }
}

/// Replaces every occurrence of `from` in `bytes` with `to` (same length);
/// true when there was one.
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) -> bool {
    assert_eq!(from.len(), to.len());
    let mut found = false;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + i..at + i + to.len()].copy_from_slice(to);
        at += i + to.len();
        found = true;
    }
    found
}

#[test]
fn a_plugin_whose_library_is_missing_names_it_as_the_component() {
    // Rename a DT_NEEDED entry of a real plugin to a library that does not
    // exist: dlopen refuses, and the reason names the missing library.
    let mut bytes = std::fs::read(common::cdylib("sunrise-fixture-unusable")).unwrap();
    let patched = patch(&mut bytes, b"libgcc_s.so.1\0", b"libsr_nope.so\0")
        || patch(&mut bytes, b"libc.so.6\0", b"libq.so.6\0");
    assert!(
        patched,
        "the fixture names neither libgcc_s.so.1 nor libc.so.6"
    );
    let dir = TempDir::new("needs");
    let path = dir.path().join("libsunrise_backend_needs.so");
    std::fs::write(&path, &bytes).unwrap();

    let d = discover_in(env_path(dir.path()));
    let err = skip_of(&d, "libsunrise_backend_needs.so");
    assert_eq!(err.kind, SkipKind::NotLoadable, "{err}");
    assert!(err.message.starts_with("dlopen failed: "), "{err}");
    let component = err.component.as_deref().expect("a component");
    assert!(["libsr_nope.so", "libq.so.6"].contains(&component), "{err}");
    assert!(
        err.hint.as_deref().is_some_and(|h| h.contains(component)),
        "{err}"
    );
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn read_f32(b: &dyn Backend, h: BufferHandle, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; n * 4];
    // SAFETY: `h` is a live buffer of `b` of at least `n * 4` bytes.
    unsafe { b.read(h, 0, &mut bytes) }.expect("read back");
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn run(b: &dyn Backend, op: OpId, params: Params, inputs: &[SrTensorDesc], out: SrTensorDesc) {
    let call = OpCall {
        op,
        params,
        inputs,
        outputs: &[out],
    };
    // SAFETY: every descriptor names a live buffer of `b` and stays within it.
    unsafe { b.execute(0, &call) }.unwrap_or_else(|e| panic!("{op} through the plugin: {e}"));
}

#[test]
fn the_cpu_plugin_allocates_writes_runs_ops_and_reads_back() {
    let dir = plugin_dir();
    let d = discover_in(env_path(dir.path()));
    let cpu = d.plugin("cpu").expect("the cpu plugin").backend.clone();
    let b: &dyn Backend = cpu.as_ref();

    assert_eq!(b.device_count(), 1);
    let info = b.device_info(0).expect("device info");
    assert_eq!(info.kind, SR_DEVICE_CPU);
    assert!(!info.name.is_empty());
    let isa = info.attributes.iter().find(|(k, _)| k == "cpu.isa");
    assert!(
        isa.is_some_and(|(_, v)| !v.is_empty()),
        "{:?}",
        info.attributes
    );
    assert!(b.device_info(1).is_err());
    for op in [OpId::Fill, OpId::Copy, OpId::Add] {
        assert!(b.supports(op, DType::F32), "cpu lists {op} on f32");
    }

    let a_host: Vec<f32> = (1..=6).map(|i| i as f32).collect();
    let [a, half, t, out] = [0; 4].map(|_| b.alloc(0, 6 * 4).expect("alloc"));
    // SAFETY: `a` is a live 24-byte buffer of `b`.
    unsafe { b.write(a, 0, &f32_bytes(&a_host)) }.expect("write");

    let fill = Params::Fill(FillParams {
        struct_size: FillParams::SIZE,
        value: 0.5,
    });
    let contiguous = |h| SrTensorDesc::new(DType::F32, &[3, 2], &[2, 1], h, 0);
    run(b, OpId::Fill, fill, &[], contiguous(half));
    // `a` is 2x3 row-major; read it as its 3x2 transpose and copy that out.
    let a_t = SrTensorDesc::new(DType::F32, &[3, 2], &[1, 3], a, 0);
    run(b, OpId::Copy, Params::None, &[a_t], contiguous(t));
    run(
        b,
        OpId::Add,
        Params::None,
        &[contiguous(t), contiguous(half)],
        contiguous(out),
    );

    assert_eq!(read_f32(b, half, 6), vec![0.5; 6]);
    assert_eq!(read_f32(b, t, 6), vec![1., 4., 2., 5., 3., 6.]);
    let expect: Vec<f32> = [1., 4., 2., 5., 3., 6.].iter().map(|x| x + 0.5).collect();
    assert_eq!(read_f32(b, out, 6), expect);

    // A bad call comes back as a typed error through the ABI.
    let bad = OpCall {
        op: OpId::Add,
        params: Params::None,
        inputs: &[contiguous(t)],
        outputs: &[contiguous(out)],
    };
    // SAFETY: every descriptor names a live buffer of `b` and stays within it.
    let err = unsafe { b.execute(0, &bad) }.expect_err("add with one input");
    assert_eq!(err.code, StatusCode::InvalidArgument, "{err}");
    // SAFETY: 8 bytes at offset 20 run past the 24-byte buffer; the plugin
    // must refuse, not write.
    let err = unsafe { b.write(a, 20, &[0u8; 8]) }.expect_err("out-of-range write");
    assert_eq!(err.code, StatusCode::InvalidArgument, "{err}");

    for h in [a, half, t, out] {
        // SAFETY: each buffer was allocated by `b` above and is freed once.
        unsafe { b.free(h) };
    }
}

#[test]
fn of_two_plugins_with_one_name_the_first_in_search_order_wins() {
    let first = TempDir::new("dup-first");
    let second = TempDir::new("dup-second");
    first.copy_cdylib("sunrise-backend-cpu-plugin", CPU_PLUGIN);
    second.copy_cdylib("sunrise-backend-cpu-plugin", "libsunrise_backend_cpu.so");
    second.copy_cdylib(
        "sunrise-backend-cpu-plugin",
        "libsunrise_backend_cpu_again.so",
    );
    let mut paths = env_path(first.path());
    paths.extend(env_path(second.path()));
    let d = discover_in(paths);

    assert_eq!(d.plugins.len(), 1);
    assert_eq!(d.plugins[0].path, first.path().join(CPU_PLUGIN));
    assert_eq!(d.candidates.len(), 3);
    assert!(matches!(d.candidates[0].outcome, Outcome::Loaded { .. }));
    for c in &d.candidates[1..] {
        let Outcome::Skipped(r) = &c.outcome else {
            panic!("{} should be a duplicate", c.path.display());
        };
        assert_eq!(r.kind, SkipKind::Duplicate, "{r}");
        assert!(r.message.contains("`cpu`"), "{r}");
        assert!(
            r.message.contains(&first.path().display().to_string()),
            "{r}"
        );
    }
}

#[test]
fn one_file_reached_twice_is_considered_once_and_file_entries_load_by_any_name() {
    let dir = TempDir::new("same-file");
    let plugin = dir.copy_cdylib("sunrise-backend-cpu-plugin", CPU_PLUGIN);
    let other = TempDir::new("any-name");
    let custom = other.copy_cdylib("sunrise-backend-cpu-plugin", "custom-cpu-build.so.1");
    let link = other.path().join("link-to-dir");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();

    let paths = vec![
        SearchPath::new(&plugin, PathOrigin::Env),
        SearchPath::new(dir.path(), PathOrigin::Env),
        SearchPath::new(&link, PathOrigin::Env),
        SearchPath::new(&custom, PathOrigin::Env),
    ];
    let d = discover_in(paths);
    assert!(d.searched.iter().all(|s| s.exists && s.note.is_none()));
    let found: Vec<&PathBuf> = d.candidates.iter().map(|c| &c.path).collect();
    assert_eq!(
        found,
        [&plugin, &custom],
        "the same file is considered once"
    );
    assert_eq!(d.plugins.len(), 1);
    let Outcome::Skipped(r) = &d.candidates[1].outcome else {
        panic!("the second cpu build must be a duplicate");
    };
    assert_eq!(r.kind, SkipKind::Duplicate);
}

#[test]
fn relative_and_missing_paths_are_never_searched() {
    let missing = TempDir::new("gone");
    let gone = missing.path().join("no-such-dir");
    let mut forged = SearchPath::new("relative/plugins", PathOrigin::Env);
    forged.exists = true;
    forged.note = None;
    let paths = vec![
        SearchPath::new(".", PathOrigin::Env),
        SearchPath::new("", PathOrigin::Env),
        forged,
        SearchPath::new(&gone, PathOrigin::System),
    ];
    let d = discover_in(paths);
    assert!(d.candidates.is_empty(), "{:?}", d.candidates);
    assert!(d.plugins.is_empty());
    for s in &d.searched[..3] {
        assert!(!s.exists, "{s:?}");
        assert_eq!(s.note.as_deref(), Some(RELATIVE_NOTE), "{s:?}");
    }
    assert_eq!(d.searched[3].path, gone);
    assert!(!d.searched[3].exists);
    assert_eq!(d.searched[3].note, None);
}

#[test]
fn a_directory_entry_offers_only_plugin_named_files() {
    let dir = TempDir::new("names");
    for name in [
        "libsunrise_fixture_unusable.so",
        "libsunrise_backend_.so",
        "libsunrise_backend_cpu.so.1",
        "sunrise_backend_cpu.so",
    ] {
        dir.copy_cdylib("sunrise-fixture-unusable", name);
    }
    std::fs::create_dir(dir.path().join("libsunrise_backend_dir.so")).unwrap();
    let d = discover_in(env_path(dir.path()));
    assert!(d.candidates.is_empty(), "{:?}", d.candidates);
    assert!(d.searched[0].exists);
}

#[test]
fn skip_kinds_and_reasons_print_on_one_line() {
    let r = SkipReason::new(SkipKind::Unusable, "no driver")
        .with_component("libcuda.so.1")
        .with_hint("install the package libcuda1");
    assert_eq!(
        r.to_string(),
        "unusable here: no driver (component: libcuda.so.1); hint: install the package libcuda1"
    );
    let bare = SkipReason::new(SkipKind::Duplicate, "x")
        .with_component("")
        .with_hint("");
    assert_eq!(bare.component, None);
    assert_eq!(bare.hint, None);
    assert_eq!(bare.to_string(), "duplicate: x");
}

#[test]
fn backend_options_cross_the_abi_and_unknown_ones_are_typed_errors() {
    let dir = plugin_dir();
    let d = discover_in(env_path(dir.path()));
    let cpu = d.plugin("cpu").expect("the cpu plugin").backend.clone();
    // ABI 1.1's set_option reaches the plugin, whose CPU backend has no
    // options: a typed refusal made in the plugin, not a crash or a no-op.
    let e = cpu.set_option("tf32", "on").unwrap_err();
    assert_eq!(e.code, StatusCode::InvalidArgument, "{e:?}");
    assert!(e.message.contains("no option \"tf32\""), "{}", e.message);
    // The same through the core's device API.
    let dev = sunrise::Device::from_backend(cpu, 0, "cpu-plugin:0");
    let e = dev.set_backend_option("threads", "2").unwrap_err();
    assert!(e.to_string().contains("no option"), "{e}");
}

/// Whether some mapping of this process is the file `path` (kept in
/// `/proc/self/maps` with " (deleted)" once the file is removed).
fn is_mapped(path: &Path) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let name = path.to_string_lossy();
    maps.lines().any(|l| {
        let file = l.split_whitespace().nth(5).unwrap_or("");
        file == name
    })
}

#[test]
fn a_library_whose_init_ran_stays_mapped_after_its_last_handle_goes() {
    // Init may leave code of the plugin referenced after destroy: the CPU
    // plugin's worker threads park in it, a panic in init registers state
    // of the plugin's own std. Unmapping it then crashed the process later
    // (SIGSEGV, at random). A library whose init ran is never unmapped; one
    // only probed is closed.
    let dir = TempDir::new("pinned");
    let cpu = dir.copy_cdylib("sunrise-backend-cpu-plugin", CPU_PLUGIN);
    let panics = dir.copy_cdylib(
        "sunrise-fixture-init-panics",
        "libsunrise_backend_panics.so",
    );
    let unusable = dir.copy_cdylib("sunrise-fixture-unusable", "libsunrise_backend_unusable.so");
    {
        let plugin = load_plugin(&cpu).expect("the cpu plugin");
        let b = plugin.backend.clone();
        // Large enough for the plugin's thread pool to start.
        let n = 1 << 18;
        let h = b.alloc(0, n * 4).expect("alloc");
        let fill = Params::Fill(FillParams {
            struct_size: FillParams::SIZE,
            value: 1.0,
        });
        let desc = SrTensorDesc::new(DType::F32, &[n], &[1], h, 0);
        run(b.as_ref(), OpId::Fill, fill, &[], desc);
        run(b.as_ref(), OpId::Add, Params::None, &[desc, desc], desc);
        // SAFETY: `h` was allocated by `b` above and is freed once.
        unsafe { b.free(h) };
        assert_eq!(plugin.destroy(), Destroyed::Now);
    }
    // On a thread of its own, which then ends: what the panic registered
    // on that thread no longer holds the library.
    let p = panics.clone();
    let err = std::thread::spawn(move || load_plugin(&p).expect_err("init panics"))
        .join()
        .expect("the loading thread");
    assert_eq!(err.kind, SkipKind::InitFailed, "{err}");
    // Closing a library is when the loader unmaps every unused one.
    let err = load_plugin(&unusable).expect_err("unusable");
    assert_eq!(err.kind, SkipKind::Unusable, "{err}");

    assert!(is_mapped(&cpu), "the cpu plugin was unmapped after init");
    assert!(is_mapped(&panics), "the panicking plugin was unmapped");
    assert!(!is_mapped(&unusable), "a probed-only library is closed");
}
