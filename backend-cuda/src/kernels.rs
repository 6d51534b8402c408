//! The CUDA C kernel modules, each compiled by NVRTC as one unit with
//! `kernels/common.cuh` prepended. Module names are the cache file prefixes.

use crate::compile::KernelSource;

macro_rules! module {
    ($id:ident, $name:literal) => {
        #[doc = concat!("`kernels/", $name, ".cu`.")]
        pub(crate) static $id: KernelSource = KernelSource {
            name: $name,
            code: concat!(
                include_str!("kernels/common.cuh"),
                "\n#line 1 \"",
                $name,
                ".cu\"\n",
                include_str!(concat!("kernels/", $name, ".cu"))
            ),
        };
    };
}

module!(ELEMENTWISE, "elementwise");
module!(REDUCE, "reduce");
module!(SOFTMAX, "softmax");
module!(NORM, "norm");
module!(LOSS, "loss");
module!(POOL, "pool");
module!(INDEXING, "indexing");
module!(OPTIM, "optim");

/// Every module, for the compile-everything test.
#[cfg(test)]
pub(crate) static ALL: [&KernelSource; 8] = [
    &ELEMENTWISE,
    &REDUCE,
    &SOFTMAX,
    &NORM,
    &LOSS,
    &POOL,
    &INDEXING,
    &OPTIM,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile, Image};
    use crate::libs::{Presence, LIBS};

    /// NVRTC present here? CI installs the `nvidia-cuda-nvrtc-cu12` wheel
    /// and sets `SUNRISE_REQUIRE_NVRTC=1`, so there a skip is a failure.
    fn nvrtc_or_skip() -> bool {
        let nvrtc = LIBS
            .iter()
            .find(|l| l.soname.starts_with("libnvrtc"))
            .expect("listed");
        if nvrtc.presence() == Presence::Found {
            return true;
        }
        assert!(
            std::env::var_os("SUNRISE_REQUIRE_NVRTC").is_none(),
            "SUNRISE_REQUIRE_NVRTC is set but libnvrtc.so.12 cannot be opened"
        );
        eprintln!("skipped: libnvrtc.so.12 not found (set LD_LIBRARY_PATH to an NVRTC, e.g. the nvidia-cuda-nvrtc-cu12 wheel's lib/)");
        false
    }

    #[test]
    fn every_module_compiles_with_nvrtc_for_ampere_and_hopper() {
        if !nvrtc_or_skip() {
            return;
        }
        for arch in [(8, 0), (9, 0)] {
            for src in ALL {
                match compile(src, arch) {
                    Ok(Image::Cubin(b)) => {
                        assert!(b.len() > 64 && b.starts_with(b"\x7fELF"), "{}", src.name)
                    }
                    Ok(Image::Ptx(_)) => {
                        panic!("{}: NVRTC should know sm_{}{}", src.name, arch.0, arch.1)
                    }
                    Err(e) => panic!("sm_{}{}: {e}", arch.0, arch.1),
                }
            }
        }
    }

    #[test]
    fn a_broken_kernel_is_an_error_with_the_compiler_log() {
        if !nvrtc_or_skip() {
            return;
        }
        let bad = KernelSource {
            name: "broken",
            code: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        };
        let e = compile(&bad, (9, 0)).unwrap_err();
        assert!(
            e.contains("undefined_name") && e.contains("broken.cu"),
            "{e}"
        );
    }
}
