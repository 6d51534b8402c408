//! The backend's rayon pool, sized once from `SUNRISE_NUM_THREADS` (default:
//! all available cores). Kernels call [`install`] only for work large
//! enough to pay for waking the workers; small ops stay on the caller.

use std::sync::OnceLock;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// Threads the pool has (or will have).
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

fn requested() -> usize {
    std::env::var("SUNRISE_NUM_THREADS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The pool.
pub fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(requested())
            .thread_name(|i| format!("sunrise-cpu-{i}"))
            .build()
            .unwrap_or_else(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("a one-thread pool can always be built")
            })
    })
}

/// Elements below which memory-bound ops stay on the calling thread
/// (waking idle workers costs 75-150 us on the reference machine).
pub const PAR_THRESHOLD: usize = 1 << 17;

/// Runs `f` inside the pool (where `rayon::join`/`par_iter` use its
/// threads); runs it directly when already inside it or with one thread.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let p = pool();
    if p.current_num_threads() == 1 || rayon::current_thread_index().is_some() {
        f()
    } else {
        p.install(f)
    }
}
