//! OpenBLAS, the GEMM peer: bench-only and optional at run time. Nothing in
//! sunrise links it; `sunrise bench gemm` dlopens Debian's `libopenblas`
//! (`apt-get install libopenblas0-pthread`, or `scripts/setup-bench-peers.sh`)
//! and looks up `cblas_sgemm` and `openblas_set_num_threads`.

use std::ffi::{c_char, c_int, CStr};
use std::mem::ManuallyDrop;

use libloading::Library;

/// The variable that sets how long OpenBLAS's worker threads busy-wait
/// after a call before they sleep (lower waits less), read when the
/// library loads.
pub(crate) const THREAD_TIMEOUT_VAR: &str = "OPENBLAS_THREAD_TIMEOUT";

/// The value each bench child gets unless the caller set one: the
/// shortest. The suite alternates single calls of ours and OpenBLAS's,
/// and with the default wait OpenBLAS's idle threads kept spinning through
/// our next call: 25088x576x64 on 2 threads (AVX2) read 94-103 GFLOP/s
/// (one core's worth) in three runs, 173-186 with this value, while
/// OpenBLAS's own figure stayed at 115-133 either way.
pub(crate) const THREAD_TIMEOUT: &str = "4";

/// Names tried in order: OpenBLAS's own soname, the development link, then
/// whatever BLAS Debian's alternatives point `libblas.so.3` at.
const NAMES: [&str; 3] = ["libopenblas.so.0", "libopenblas.so", "libblas.so.3"];

/// `cblas_sgemm` with 32-bit `blasint` (Debian's `libopenblas0`; the 64-bit
/// interface lives in `libopenblas64_0`, which is not tried).
type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);
type SetThreads = unsafe extern "C" fn(c_int);
type GetThreads = unsafe extern "C" fn() -> c_int;
type GetString = unsafe extern "C" fn() -> *const c_char;

const CBLAS_ROW_MAJOR: c_int = 101;
const CBLAS_NO_TRANS: c_int = 111;

/// A loaded OpenBLAS (or other CBLAS).
#[derive(Debug)]
pub(crate) struct OpenBlas {
    /// Never unloaded: OpenBLAS's parked worker threads live in its code
    /// until the process exits, so `dlclose` is not safe to call.
    _lib: ManuallyDrop<Library>,
    sgemm: Sgemm,
    set_threads: Option<SetThreads>,
    get_threads: Option<GetThreads>,
    /// The soname loaded, the library's configuration and core.
    pub description: String,
}

/// Why a GEMM could not be handed to OpenBLAS.
#[derive(Debug)]
pub(crate) struct ShapeError(pub String);

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "openblas sgemm: {}", self.0)
    }
}

impl std::error::Error for ShapeError {}

/// Reads a C string returned by an OpenBLAS info function.
fn info_string(lib: &Library, name: &[u8]) -> Option<String> {
    // SAFETY: these OpenBLAS symbols have the `GetString` signature.
    let f: GetString = unsafe { *lib.get::<GetString>(name).ok()? };
    // SAFETY: the function takes no argument and returns a pointer to a
    // static NUL-terminated string (or null, checked below).
    let p = unsafe { f() };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated and static, per OpenBLAS.
    Some(
        unsafe { CStr::from_ptr(p) }
            .to_string_lossy()
            .trim()
            .to_string(),
    )
}

impl OpenBlas {
    /// Loads the first library of [`NAMES`] that has `cblas_sgemm`; the
    /// error is the reason to print after `peer: unavailable`.
    pub fn load() -> Result<OpenBlas, String> {
        for name in NAMES {
            // SAFETY: loading runs the library's initialisers; OpenBLAS's
            // only start its thread pool and read the environment.
            let Ok(lib) = (unsafe { Library::new(name) }) else {
                continue;
            };
            // SAFETY: `cblas_sgemm` has the CBLAS signature `Sgemm` spells.
            let Ok(sgemm) = (unsafe { lib.get::<Sgemm>(b"cblas_sgemm\0") }).map(|s| *s) else {
                continue;
            };
            // SAFETY: OpenBLAS's `void openblas_set_num_threads(int)`.
            let set_threads = unsafe { lib.get::<SetThreads>(b"openblas_set_num_threads\0") }
                .ok()
                .map(|s| *s);
            // SAFETY: OpenBLAS's `int openblas_get_num_threads(void)`.
            let get_threads = unsafe { lib.get::<GetThreads>(b"openblas_get_num_threads\0") }
                .ok()
                .map(|s| *s);
            let config = info_string(&lib, b"openblas_get_config\0");
            let core = info_string(&lib, b"openblas_get_corename\0");
            let description = match (config, core) {
                (Some(c), Some(k)) => format!("{name}: {c}, core {k}"),
                (Some(c), None) => format!("{name}: {c}"),
                _ => format!("{name} (not OpenBLAS: thread count not settable)"),
            };
            return Ok(OpenBlas {
                _lib: ManuallyDrop::new(lib),
                sgemm,
                set_threads,
                get_threads,
                description,
            });
        }
        Err("install libopenblas0".into())
    }

    /// Sets OpenBLAS's thread count; returns the count it reports after
    /// (None where the library cannot say).
    pub fn set_threads(&self, n: usize) -> Option<usize> {
        let n = c_int::try_from(n).unwrap_or(c_int::MAX);
        if let Some(f) = self.set_threads {
            // SAFETY: a plain setter taking the thread count.
            unsafe { f(n) };
        }
        // SAFETY: a plain getter.
        self.get_threads.map(|f| unsafe { f() }.max(0) as usize)
    }

    /// `c = a @ b` for row-major `a` (m x k), `b` (k x n), `c` (m x n).
    pub fn sgemm(
        &self,
        (m, k, n): (usize, usize, usize),
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
    ) -> Result<(), ShapeError> {
        if a.len() != m * k || b.len() != k * n || c.len() != m * n {
            return Err(ShapeError(format!(
                "buffers of {}, {}, {} elements for {m}x{k}x{n}",
                a.len(),
                b.len(),
                c.len()
            )));
        }
        let dim = |d: usize| {
            c_int::try_from(d).map_err(|_| ShapeError(format!("{d} does not fit a 32-bit blasint")))
        };
        let (mi, ki, ni) = (dim(m)?, dim(k)?, dim(n)?);
        // SAFETY: `a`, `b`, `c` hold exactly m*k, k*n and m*n f32 (checked
        // above), row-major with leading dimensions k, n and n; `c` is
        // written only, and does not alias `a` or `b` (a `&mut` borrow).
        unsafe {
            (self.sgemm)(
                CBLAS_ROW_MAJOR,
                CBLAS_NO_TRANS,
                CBLAS_NO_TRANS,
                mi,
                ni,
                ki,
                1.0,
                a.as_ptr(),
                ki,
                b.as_ptr(),
                ni,
                0.0,
                c.as_mut_ptr(),
                ni,
            );
        }
        Ok(())
    }
}
