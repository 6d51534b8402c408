//! The NVIDIA libraries this plugin opens at run time, how to tell whether
//! each is there before cudarc touches it (cudarc panics on a missing
//! library), their versions, and the Debian package that provides each.

use std::panic::{catch_unwind, AssertUnwindSafe};

use cudarc::{cublas, cublaslt, cudnn, driver, nvrtc};

/// One dlopened library.
#[derive(Debug)]
pub(crate) struct NativeLib {
    /// The name cudarc binds (CUDA 12 sonames, see the crate docs).
    pub soname: &'static str,
    /// What it is, for messages.
    pub what: &'static str,
    /// What to install on Debian.
    pub hint: &'static str,
    /// cudarc's own presence check (tries every name cudarc would dlopen).
    present: unsafe fn() -> bool,
    /// Names cudarc does not try: found under one of these, the library is
    /// there but of another major version, which the message says.
    other_names: &'static [&'static str],
}

/// Every library, in the order the probe checks them: the driver first
/// (without it nothing else matters).
pub(crate) const LIBS: [NativeLib; 5] = [
    NativeLib {
        soname: "libcuda.so.1",
        what: "the NVIDIA driver's CUDA library",
        hint: "install the NVIDIA driver: Debian's nvidia-driver (brings libcuda1), or libnvidia-tesla-cuda1",
        present: driver::sys::is_culib_present,
        other_names: &[],
    },
    NativeLib {
        soname: "libcublas.so.12",
        what: "cuBLAS",
        hint: "install libcublas12 (Debian non-free, from nvidia-cuda-toolkit's libraries)",
        present: cublas::sys::is_culib_present,
        other_names: &["libcublas.so.13", "libcublas.so.11"],
    },
    NativeLib {
        soname: "libcublasLt.so.12",
        what: "cuBLASLt",
        hint: "install libcublaslt12 (Debian non-free, comes with libcublas12)",
        present: cublaslt::sys::is_culib_present,
        other_names: &["libcublasLt.so.13", "libcublasLt.so.11"],
    },
    NativeLib {
        soname: "libcudnn.so.9",
        what: "cuDNN 9",
        hint: "install cuDNN 9 for CUDA 12 (Debian contrib: nvidia-cudnn, which downloads it; \
               or NVIDIA's libcudnn9-cuda-12)",
        present: cudnn::sys::is_culib_present,
        other_names: &["libcudnn.so.8"],
    },
    NativeLib {
        soname: "libnvrtc.so.12",
        what: "NVRTC, the CUDA runtime compiler",
        hint: "install libnvrtc12 (Debian non-free, from nvidia-cuda-toolkit's libraries)",
        present: nvrtc::sys::is_culib_present,
        other_names: &["libnvrtc.so.13", "libnvrtc.so.11.2"],
    },
];

/// What the presence check found for one library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Presence {
    /// cudarc will find it.
    Found,
    /// Not under any name cudarc tries, but under this other one.
    OtherVersion(&'static str),
    /// Not found at all.
    Missing,
}

impl NativeLib {
    /// Checks presence without letting anything unwind out.
    pub(crate) fn presence(&self) -> Presence {
        // SAFETY: `present` only dlopens and closes candidate names; a
        // library's initialisers run, which is what loading it means.
        let found = catch_unwind(AssertUnwindSafe(|| unsafe { (self.present)() })).unwrap_or(false);
        if found {
            return Presence::Found;
        }
        for name in self.other_names {
            // SAFETY: as above; the handle is dropped (dlclose) at once.
            if unsafe { libloading::Library::new(*name) }.is_ok() {
                return Presence::OtherVersion(name);
            }
        }
        Presence::Missing
    }
}

/// Runs `f`, turning a cudarc panic (missing symbol) into an error string.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        format!("{what}: {msg}")
    })
}

/// The driver's CUDA version as `major * 1000 + minor * 10` (12040 = 12.4).
pub(crate) fn driver_version() -> Result<i32, String> {
    guarded("cuDriverGetVersion", || {
        let mut v = 0;
        // SAFETY: one out-pointer to a live i32; needs no cuInit.
        let r = unsafe { driver::sys::cuDriverGetVersion(&mut v) };
        (r == driver::sys::CUresult::CUDA_SUCCESS)
            .then_some(v)
            .ok_or_else(|| format!("cuDriverGetVersion failed: {r:?}"))
    })?
}

/// NVRTC's version `(major, minor)`.
pub(crate) fn nvrtc_version() -> Result<(i32, i32), String> {
    guarded("nvrtcVersion", || {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two out-pointers to live i32s.
        let r = unsafe { nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        (r == nvrtc::sys::nvrtcResult::NVRTC_SUCCESS)
            .then_some((major, minor))
            .ok_or_else(|| format!("nvrtcVersion failed: {r:?}"))
    })?
}

/// cuDNN's version number (`90100` = 9.1.0).
pub(crate) fn cudnn_version() -> Result<usize, String> {
    // SAFETY: takes no arguments.
    guarded("cudnnGetVersion", || unsafe {
        cudnn::sys::cudnnGetVersion()
    })
}

/// cuBLAS's version `(major, minor, patch)`.
pub(crate) fn cublas_version() -> Result<(i32, i32, i32), String> {
    use cublas::sys::libraryPropertyType as P;
    guarded("cublasGetProperty", || {
        let mut v = [0; 3];
        for (slot, prop) in v
            .iter_mut()
            .zip([P::MAJOR_VERSION, P::MINOR_VERSION, P::PATCH_LEVEL])
        {
            // SAFETY: one out-pointer to a live i32.
            unsafe { cublas::sys::cublasGetProperty(prop, slot) };
        }
        (v[0], v[1], v[2])
    })
}

/// `12040` as `12.4`.
pub(crate) fn cuda_version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// `90100` as `9.1.0`.
pub(crate) fn cudnn_version_string(v: usize) -> String {
    format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings() {
        assert_eq!(cuda_version_string(12040), "12.4");
        assert_eq!(cuda_version_string(13000), "13.0");
        assert_eq!(cudnn_version_string(90100), "9.1.0");
        assert_eq!(cudnn_version_string(91302), "9.13.2");
    }

    #[test]
    fn every_library_has_a_hint_that_fits_the_probe_struct() {
        // SrProbeInfo: component 64 bytes, hint 128, both NUL-terminated.
        for lib in &LIBS {
            assert!(lib.hint.starts_with("install "), "{}", lib.soname);
            assert!(
                lib.hint.len() < 128,
                "{} hint is {} bytes",
                lib.soname,
                lib.hint.len()
            );
            assert!(lib.soname.starts_with("lib") && lib.soname.len() < 64);
        }
    }

    #[test]
    fn guarded_turns_panics_into_errors() {
        let e = guarded("x", || -> i32 { panic!("Missing symbol foo") }).unwrap_err();
        assert!(e.contains("Missing symbol foo"), "{e}");
        assert_eq!(guarded("x", || 3), Ok(3));
    }
}
