//! `sunrise_backend_probe_v1`: can this plugin run here? Checks, in order,
//! every library (before cudarc may panic on it), the driver's version, that
//! a GPU is visible, that NVRTC is no newer than the driver and that cuDNN is
//! version 9. Each failure names the component and the Debian package.

use cudarc::driver;
use sunrise_backend_api::abi::{SR_ABI_MAJOR, SR_ABI_MINOR};
use sunrise_backend_api::ProbeReport;

use crate::libs::{self, Presence, LIBS};

/// The oldest driver the bound API (cudarc's `cuda-12000`) accepts.
pub(crate) const MIN_DRIVER: i32 = 12000;

/// Score under `SUNRISE_DEVICE=auto`: above the CPU's 10.
pub(crate) const SCORE: i32 = 100;

/// Why the plugin cannot run: what, which component, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unusable {
    pub reason: String,
    pub component: String,
    pub hint: String,
}

impl Unusable {
    fn new(reason: String, component: &str, hint: &str) -> Self {
        Unusable {
            reason,
            component: component.to_string(),
            hint: hint.to_string(),
        }
    }
}

/// The probe's answer.
pub(crate) fn report() -> ProbeReport {
    let mut r = ProbeReport {
        abi_major: SR_ABI_MAJOR,
        abi_minor: SR_ABI_MINOR,
        usable: true,
        score: SCORE,
        name: "cuda".into(),
        ..ProbeReport::default()
    };
    if let Err(u) = check() {
        r.usable = false;
        r.reason = u.reason;
        r.component = u.component;
        r.hint = u.hint;
    }
    r
}

/// Every check; the first failure wins.
pub(crate) fn check() -> Result<(), Unusable> {
    check_libraries()?;
    let driver = check_driver()?;
    check_nvrtc(driver)?;
    check_cudnn()
}

fn check_libraries() -> Result<(), Unusable> {
    for lib in &LIBS {
        match lib.presence() {
            Presence::Found => {}
            Presence::Missing => {
                return Err(Unusable::new(
                    format!("{} not found ({})", lib.soname, lib.what),
                    lib.soname,
                    lib.hint,
                ))
            }
            Presence::OtherVersion(name) => {
                return Err(Unusable::new(
                    format!(
                        "{} not found ({}); {name} is installed, but this plugin binds the \
                         CUDA 12 library names",
                        lib.soname, lib.what
                    ),
                    lib.soname,
                    lib.hint,
                ))
            }
        }
    }
    Ok(())
}

/// Checks the driver's version and that it sees a GPU; returns the version.
fn check_driver() -> Result<i32, Unusable> {
    const DRIVER: &str = "libcuda.so.1";
    const UPGRADE: &str =
        "install a newer NVIDIA driver (Debian: nvidia-driver from a newer suite or backports)";
    let v = libs::driver_version().map_err(|e| Unusable::new(e, DRIVER, UPGRADE))?;
    if v < MIN_DRIVER {
        return Err(Unusable::new(
            format!(
                "the NVIDIA driver supports CUDA {}; this plugin needs CUDA {} or newer",
                libs::cuda_version_string(v),
                libs::cuda_version_string(MIN_DRIVER)
            ),
            DRIVER,
            UPGRADE,
        ));
    }
    let count = libs::guarded("cuInit", || {
        driver::result::init()?;
        driver::result::device::get_count()
    })
    .map_err(|e| Unusable::new(e, DRIVER, UPGRADE))?;
    match count {
        Ok(n) if n > 0 => Ok(v),
        Ok(_) => Err(Unusable::new(
            "the NVIDIA driver sees no GPU".into(),
            DRIVER,
            "check `nvidia-smi`, and CUDA_VISIBLE_DEVICES if it is set",
        )),
        Err(e) => Err(Unusable::new(
            format!("the NVIDIA driver cannot start: {e}"),
            DRIVER,
            "check `nvidia-smi`: the kernel module must match the driver's libcuda1, and the \
             user needs access to /dev/nvidia*",
        )),
    }
}

/// NVRTC must not be newer than the driver: the driver could not load what
/// it compiles.
fn check_nvrtc(driver: i32) -> Result<(), Unusable> {
    const NVRTC: &str = "libnvrtc.so.12";
    let (major, minor) =
        libs::nvrtc_version().map_err(|e| Unusable::new(e, NVRTC, LIBS[4].hint))?;
    if major > driver / 1000 {
        return Err(Unusable::new(
            format!(
                "NVRTC {major}.{minor} is newer than the driver's CUDA {}; the driver could \
                 not load the kernels it compiles",
                libs::cuda_version_string(driver)
            ),
            NVRTC,
            "install an NVRTC no newer than the driver, or a newer NVIDIA driver",
        ));
    }
    Ok(())
}

fn check_cudnn() -> Result<(), Unusable> {
    let v = libs::cudnn_version().map_err(|e| Unusable::new(e, "libcudnn.so.9", LIBS[3].hint))?;
    if v < 90000 {
        return Err(Unusable::new(
            format!("cuDNN {} is older than 9.0", libs::cudnn_version_string(v)),
            "libcudnn.so.9",
            LIBS[3].hint,
        ));
    }
    Ok(())
}
