//! CUDA C kernels compiled by NVRTC at first use, for the device's exact
//! architecture, and cached on disk under `$XDG_CACHE_HOME/sunrise/cuda/`
//! (or `$SUNRISE_CUDA_CACHE_DIR`). The cache key covers the source, the
//! options, NVRTC's version, the architecture, the driver's version and this
//! plugin's version. Entries are written to a temporary file and renamed
//! into place; each carries a checksum, and an entry that fails it is
//! rebuilt, never loaded.

use std::ffi::{c_char, CString};
use std::io::Write;
use std::path::{Path, PathBuf};

use cudarc::nvrtc::sys;

/// One CUDA C source: a module of kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KernelSource {
    /// Module name (also the cache file prefix).
    pub name: &'static str,
    /// The CUDA C++ text.
    pub code: &'static str,
}

/// What NVRTC produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Image {
    /// Machine code for the exact architecture.
    Cubin(Vec<u8>),
    /// PTX (NUL-terminated) for the driver to compile, when NVRTC does not
    /// know the device's architecture.
    Ptx(Vec<u8>),
}

impl Image {
    /// The bytes `cuModuleLoadData` takes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Image::Cubin(b) | Image::Ptx(b) => b,
        }
    }
}

/// The options every module is compiled with, before the architecture.
pub(crate) const OPTIONS: [&str; 2] = ["--std=c++17", "-DSUNRISE_NVRTC=1"];

/// Compiles `src` with NVRTC for `sm_{major}{minor}` (a cubin); when NVRTC
/// does not support that architecture, for the newest `compute_` it has
/// that is not newer (PTX). The error is NVRTC's log.
pub(crate) fn compile(src: &KernelSource, arch: (i32, i32)) -> Result<Image, String> {
    let sm = arch.0 * 10 + arch.1;
    let supported = supported_archs()?;
    if supported.contains(&sm) {
        return compile_with(src, &format!("--gpu-architecture=sm_{sm}"), true).map(Image::Cubin);
    }
    let best = supported
        .iter()
        .copied()
        .filter(|&a| a <= sm)
        .max()
        .ok_or_else(|| {
            format!("NVRTC supports no architecture up to sm_{sm} (it has {supported:?})")
        })?;
    let mut ptx = compile_with(src, &format!("--gpu-architecture=compute_{best}"), false)?;
    if ptx.last() != Some(&0) {
        ptx.push(0);
    }
    Ok(Image::Ptx(ptx))
}

/// The architectures NVRTC can compile for, as `90` for sm_90.
pub(crate) fn supported_archs() -> Result<Vec<i32>, String> {
    crate::libs::guarded("nvrtcGetSupportedArchs", || {
        let mut n = 0;
        // SAFETY: one out-pointer to a live i32.
        let r = unsafe { sys::nvrtcGetNumSupportedArchs(&mut n) };
        check(r, "nvrtcGetNumSupportedArchs")?;
        let mut archs = vec![0; n.max(0) as usize];
        // SAFETY: `archs` holds the number of entries NVRTC just reported.
        let r = unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) };
        check(r, "nvrtcGetSupportedArchs")?;
        Ok(archs)
    })?
}

fn check(r: sys::nvrtcResult, what: &str) -> Result<(), String> {
    if r == sys::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(format!("{what} failed: {r:?}"))
    }
}

/// Compiles with one architecture option; returns the cubin or the PTX.
fn compile_with(src: &KernelSource, arch_opt: &str, cubin: bool) -> Result<Vec<u8>, String> {
    let code = CString::new(src.code).map_err(|_| "kernel source holds a NUL byte".to_string())?;
    let name = CString::new(format!("{}.cu", src.name)).map_err(|e| e.to_string())?;
    let opts: Vec<CString> = OPTIONS
        .iter()
        .copied()
        .chain(std::iter::once(arch_opt))
        .map(|o| CString::new(o).expect("options hold no NUL"))
        .collect();
    let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    crate::libs::guarded("nvrtc", || {
        let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated strings; no headers.
        let r = unsafe {
            sys::nvrtcCreateProgram(
                &mut prog,
                code.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        check(r, "nvrtcCreateProgram")?;
        let out = build(prog, &opt_ptrs, cubin, src.name);
        // SAFETY: `prog` was created above and is not used after this.
        unsafe { sys::nvrtcDestroyProgram(&mut prog) };
        out
    })?
}

/// Compiles `prog` and fetches its output.
fn build(
    prog: sys::nvrtcProgram,
    opts: &[*const c_char],
    cubin: bool,
    name: &str,
) -> Result<Vec<u8>, String> {
    // SAFETY: `prog` is live; `opts` point to live NUL-terminated strings.
    let r = unsafe { sys::nvrtcCompileProgram(prog, opts.len() as i32, opts.as_ptr()) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!(
            "NVRTC could not compile {name}.cu ({r:?}):\n{}",
            log(prog)
        ));
    }
    let mut size = 0usize;
    // SAFETY: `prog` compiled; `size` is a live out-pointer.
    let r = unsafe {
        if cubin {
            sys::nvrtcGetCUBINSize(prog, &mut size)
        } else {
            sys::nvrtcGetPTXSize(prog, &mut size)
        }
    };
    check(r, "nvrtcGet{CUBIN,PTX}Size")?;
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` holds the `size` bytes NVRTC just reported.
    let r = unsafe {
        if cubin {
            sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast())
        } else {
            sys::nvrtcGetPTX(prog, buf.as_mut_ptr().cast())
        }
    };
    check(r, "nvrtcGet{CUBIN,PTX}")?;
    Ok(buf)
}

/// The program's compile log.
fn log(prog: sys::nvrtcProgram) -> String {
    let mut size = 0usize;
    // SAFETY: live program and out-pointer.
    if unsafe { sys::nvrtcGetProgramLogSize(prog, &mut size) } != sys::nvrtcResult::NVRTC_SUCCESS {
        return String::from("(no log)");
    }
    let mut buf = vec![0u8; size.max(1)];
    // SAFETY: `buf` holds at least `size` bytes.
    unsafe { sys::nvrtcGetProgramLog(prog, buf.as_mut_ptr().cast()) };
    String::from_utf8_lossy(&buf)
        .trim_end_matches('\0')
        .trim()
        .to_string()
}

/// The cache directory: `$SUNRISE_CUDA_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/sunrise/cuda`, else `~/.cache/sunrise/cuda`.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = nonempty("SUNRISE_CUDA_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = nonempty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("sunrise/cuda"));
    }
    nonempty("HOME").map(|h| PathBuf::from(h).join(".cache/sunrise/cuda"))
}

/// Everything the compiled image depends on.
#[derive(Debug, Clone)]
pub(crate) struct CacheKey<'a> {
    pub source: &'a KernelSource,
    pub arch: (i32, i32),
    pub nvrtc: (i32, i32),
    pub driver: i32,
}

impl CacheKey<'_> {
    /// The entry's file name: module, arch and a 128-bit hash of the key.
    pub(crate) fn file_name(&self) -> String {
        let mut text = Vec::new();
        for part in [
            self.source.code,
            &OPTIONS.join(" "),
            &format!("nvrtc {}.{}", self.nvrtc.0, self.nvrtc.1),
            &format!("sm {}.{}", self.arch.0, self.arch.1),
            &format!("driver {}", self.driver),
            &format!("plugin {}", env!("CARGO_PKG_VERSION")),
        ] {
            text.extend_from_slice(part.as_bytes());
            text.push(0);
        }
        format!(
            "{}-sm{}{}-{:016x}{:016x}.bin",
            self.source.name,
            self.arch.0,
            self.arch.1,
            fnv1a(&text, 0xcbf2_9ce4_8422_2325),
            fnv1a(&text, 0x6c62_272e_07bb_0142)
        )
    }
}

/// FNV-1a, 64-bit, from `seed`: stable across builds and Rust versions.
pub(crate) fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const MAGIC_CUBIN: &[u8; 8] = b"SRCUBIN1";
const MAGIC_PTX: &[u8; 8] = b"SRCUPTX1";

/// Encodes an entry: magic, payload length, payload checksum, payload.
pub(crate) fn encode(image: &Image) -> Vec<u8> {
    let (magic, payload) = match image {
        Image::Cubin(b) => (MAGIC_CUBIN, b),
        Image::Ptx(b) => (MAGIC_PTX, b),
    };
    let mut out = Vec::with_capacity(24 + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&fnv1a(payload, 0xcbf2_9ce4_8422_2325).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes an entry; `None` for anything truncated, altered or foreign.
pub(crate) fn decode(bytes: &[u8]) -> Option<Image> {
    let (head, payload) = bytes.split_at_checked(24)?;
    let len = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let sum = u64::from_le_bytes(head[16..24].try_into().ok()?);
    if len != payload.len() as u64 || sum != fnv1a(payload, 0xcbf2_9ce4_8422_2325) {
        return None;
    }
    match &head[..8] {
        m if m == MAGIC_CUBIN => Some(Image::Cubin(payload.to_vec())),
        m if m == MAGIC_PTX => Some(Image::Ptx(payload.to_vec())),
        _ => None,
    }
}

/// Reads a valid entry from `dir`, if there is one.
pub(crate) fn load_cached(dir: &Path, key: &CacheKey<'_>) -> Option<Image> {
    let bytes = std::fs::read(dir.join(key.file_name())).ok()?;
    let image = decode(&bytes);
    if image.is_none() {
        crate::log_warn(&format!(
            "ignoring corrupt kernel cache entry {} (it will be rebuilt)",
            dir.join(key.file_name()).display()
        ));
    }
    image
}

/// Writes an entry: a temporary file in `dir`, then a rename over the
/// final name, so a reader never sees half an entry.
pub(crate) fn store_cached(dir: &Path, key: &CacheKey<'_>, image: &Image) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = key.file_name();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&encode(image))?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(&name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The image for `key`: from the cache when a valid entry is there, else
/// compiled and stored (a cache that cannot be written is logged, not fatal).
/// Returns whether it came from the cache.
pub(crate) fn image_for(key: &CacheKey<'_>) -> Result<(Image, bool), String> {
    let dir = cache_dir();
    if let Some(img) = dir.as_deref().and_then(|d| load_cached(d, key)) {
        return Ok((img, true));
    }
    let img = compile(key.source, key.arch)?;
    if let Some(d) = dir.as_deref() {
        if let Err(e) = store_cached(d, key, &img) {
            crate::log_warn(&format!(
                "cannot write the kernel cache in {}: {e}",
                d.display()
            ));
        }
    }
    Ok((img, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: KernelSource = KernelSource {
        name: "t",
        code: "extern \"C\" __global__ void k(float* x) { x[threadIdx.x] = 1.0f; }",
    };

    fn key(driver: i32) -> CacheKey<'static> {
        CacheKey {
            source: &SRC,
            arch: (9, 0),
            nvrtc: (12, 4),
            driver,
        }
    }

    #[test]
    fn entries_round_trip_and_reject_damage() {
        for img in [
            Image::Cubin(vec![1, 2, 3, 4]),
            Image::Ptx(b".version 8.0\0".to_vec()),
        ] {
            let e = encode(&img);
            assert_eq!(decode(&e), Some(img.clone()));
            for cut in 0..e.len() {
                assert_eq!(decode(&e[..cut]), None, "truncated at {cut}");
            }
            for i in 0..e.len() {
                let mut bad = e.clone();
                bad[i] ^= 0x40;
                assert_eq!(decode(&bad), None, "byte {i} flipped");
            }
        }
    }

    #[test]
    fn key_changes_with_every_part() {
        let base = key(12040).file_name();
        assert!(base.starts_with("t-sm90-"), "{base}");
        assert_ne!(base, key(12050).file_name());
        let mut k = key(12040);
        k.arch = (8, 0);
        assert_ne!(base, k.file_name());
        k = key(12040);
        k.nvrtc = (12, 5);
        assert_ne!(base, k.file_name());
        let other = KernelSource {
            name: "t",
            code: "// other",
        };
        k = key(12040);
        k.source = &other;
        assert_ne!(base, k.file_name());
        assert_eq!(base, key(12040).file_name(), "stable");
    }

    #[test]
    fn store_then_load_and_corruption_is_rebuilt_not_trusted() {
        let dir =
            std::env::temp_dir().join(format!("sunrise-cuda-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let k = key(12040);
        assert_eq!(load_cached(&dir, &k), None);
        let img = Image::Cubin(vec![7; 1000]);
        store_cached(&dir, &k, &img).unwrap();
        assert_eq!(load_cached(&dir, &k), Some(img.clone()));
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // Corrupt it: the entry is refused.
        let path = dir.join(k.file_name());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load_cached(&dir, &k), None);
        // Rewriting replaces it.
        store_cached(&dir, &k, &img).unwrap();
        assert_eq!(load_cached(&dir, &k), Some(img));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
