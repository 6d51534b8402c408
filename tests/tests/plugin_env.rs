//! Discovery driven by the real environment: `SUNRISE_BACKEND_PATH` and the
//! current working directory are process-global, so this test binary holds
//! a single test that sets them.

mod common;

use std::path::{Path, PathBuf};

use common::{TempDir, CPU_PLUGIN};
use sunrise::plugin::*;

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn discover_follows_the_environment_and_never_the_working_directory() {
    let plugins = TempDir::new("env-plugins");
    let cpu = plugins.copy_cdylib("sunrise-backend-cpu-plugin", CPU_PLUGIN);
    // A working directory full of plugin-named files, one of them loadable.
    let cwd = TempDir::new("env-cwd");
    cwd.copy_cdylib("sunrise-backend-cpu-plugin", "libsunrise_backend_cwdcpu.so");
    cwd.copy_cdylib("sunrise-fixture-unusable", "libsunrise_backend_cwd.so");
    std::fs::create_dir(cwd.path().join("sub")).unwrap();
    cwd.copy_cdylib(
        "sunrise-backend-cpu-plugin",
        "sub/libsunrise_backend_subcpu.so",
    );

    let value = format!(
        "{dir}::.:sub:{file}:",
        dir = plugins.path().display(),
        file = cpu.display()
    );
    let old_cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir(cwd.path()).unwrap();
    std::env::set_var(BACKEND_PATH_VAR, &value);
    let paths = search_paths();
    let d = discover();
    std::env::set_current_dir(old_cwd).unwrap();
    std::env::remove_var(BACKEND_PATH_VAR);

    // Search order: the env entries (empty ones dropped), system, exe dir.
    let exe_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut expect = vec![
        (plugins.path().to_path_buf(), PathOrigin::Env),
        (PathBuf::from("."), PathOrigin::Env),
        (PathBuf::from("sub"), PathOrigin::Env),
        (cpu.clone(), PathOrigin::Env),
    ];
    expect.extend(system_dir().map(|p| (p, PathOrigin::System)));
    expect.push((exe_dir, PathOrigin::ExeDir));
    let got: Vec<(PathBuf, PathOrigin)> = d
        .searched
        .iter()
        .map(|s| (s.path.clone(), s.origin))
        .collect();
    assert_eq!(got, expect);
    assert_eq!(paths, d.searched, "discover() searches search_paths()");
    assert_eq!(d.system_dir, system_dir());
    for s in &d.searched[1..3] {
        assert!(!s.exists, "{s:?}");
        assert_eq!(s.note.as_deref(), Some(RELATIVE_NOTE));
    }

    // Nothing from the working directory, however it was reached.
    let cwd_real = canonical(cwd.path());
    for c in &d.candidates {
        assert!(
            !canonical(&c.path).starts_with(&cwd_real),
            "loaded from the working directory: {}",
            c.path.display()
        );
    }

    // The env directory's plugin wins; the same file as an explicit entry is
    // not considered again; a cpu build next to this test binary (if any) is
    // a duplicate.
    assert_eq!(d.candidates[0].path, cpu);
    assert!(matches!(&d.candidates[0].outcome, Outcome::Loaded { name, .. } if name == "cpu"));
    let cpu_real = canonical(&cpu);
    let same = d
        .candidates
        .iter()
        .filter(|c| canonical(&c.path) == cpu_real);
    assert_eq!(same.count(), 1);
    // The CUDA plugin, when a workspace build left it beside this binary,
    // is a candidate of its own (unusable without a GPU); it is no cpu.
    let is_cuda = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n == "libsunrise_backend_cuda.so")
    };
    let plugins: Vec<_> = d.plugins.iter().filter(|p| !is_cuda(&p.path)).collect();
    assert_eq!(plugins.len(), 1, "{:?}", d.plugins);
    assert_eq!(d.plugins[0].path, cpu);
    for c in d.candidates[1..].iter().filter(|c| !is_cuda(&c.path)) {
        let Outcome::Skipped(r) = &c.outcome else {
            panic!("{} should not load: cpu came first", c.path.display());
        };
        assert!(
            c.path.starts_with(&d.searched.last().unwrap().path),
            "{c:?}"
        );
        assert_eq!(r.kind, SkipKind::Duplicate, "{r}");
    }

    // The plugin works once the environment is gone.
    let b = &d.plugins[0].backend;
    let h = b.alloc(0, 16).expect("alloc");
    // SAFETY: `h` is a live 16-byte buffer of `b`, freed once below.
    unsafe {
        b.write(h, 0, &[7u8; 16]).expect("write");
        let mut back = [0u8; 16];
        b.read(h, 0, &mut back).expect("read");
        assert_eq!(back, [7u8; 16]);
        b.free(h);
    }

    // With the variable unset, only the system and executable directories.
    let bare = search_paths();
    assert!(bare.iter().all(|s| s.origin != PathOrigin::Env), "{bare:?}");
    assert_eq!(bare.last().map(|s| s.origin), Some(PathOrigin::ExeDir));
}
