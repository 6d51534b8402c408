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

/// Whether an op over `elements` elements goes to the pool: more than one
/// thread, and at least [`PAR_THRESHOLD`] elements. Callers test this
/// before [`install`], so a one-thread pool never pays a hand-off.
pub fn split(elements: usize) -> bool {
    elements >= PAR_THRESHOLD && num_threads() > 1
}

/// Runs `f` inside the pool, where `rayon::join` and `par_iter` use its
/// threads; runs it directly when the caller is already one of them.
///
/// Even with one thread `f` runs on the pool: run here instead, its
/// parallel iterators would go to rayon's global pool (sized by the core
/// count), and `SUNRISE_NUM_THREADS=1` would not hold. Callers avoid that
/// hand-off by testing [`split`] first.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let p = pool();
    if p.current_thread_index().is_some() {
        f()
    } else {
        p.install(f)
    }
}

/// How long [`for_each_index`]'s caller spins for the other threads to
/// finish before it sleeps.
const SPIN_WAIT: std::time::Duration = std::time::Duration::from_micros(50);

/// Runs `f(i)` for every `i < count` on up to [`num_threads`] threads with
/// the caller among them. From outside the pool the caller takes indices
/// itself while at most `num_threads - 1` pool threads, woken once, take
/// the rest; [`install`] instead hands everything to the pool and waits,
/// which wakes a worker and then the others in turn before any work starts
/// (on a 2-core machine that made a 256^3 GEMM on 2 threads slower than
/// OpenBLAS's by a third). Inside the pool it is a plain parallel loop.
/// Done with its own indices, the caller spins up to [`SPIN_WAIT`] for
/// the others before it sleeps. A panic in `f` reaches the caller once
/// the other threads have stopped.
pub fn for_each_index(count: usize, f: impl Fn(usize) + Sync) {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let p = pool();
    let nt = p.current_num_threads();
    if count <= 1 || nt == 1 {
        (0..count).for_each(f);
        return;
    }
    if p.current_thread_index().is_some() {
        (0..count).into_par_iter().for_each(&f);
        return;
    }
    let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        f(i);
        done.fetch_add(1, Ordering::Release);
    };
    p.in_place_scope(|s| {
        for _ in 0..(nt - 1).min(count - 1) {
            s.spawn(|_| work());
        }
        work();
        // Wait for the indices still running elsewhere by spinning a
        // while before the scope's blocking wait: waking a sleeping caller
        // took 7-26 us of a 2-thread 256^3 GEMM of about 200 us. Bounded,
        // so that a caller sharing its core with the worker it waits for
        // soon gets out of that worker's way.
        let start = std::time::Instant::now();
        while done.load(Ordering::Acquire) < count && start.elapsed() < SPIN_WAIT {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    });
}

/// Runs `f(i, chunk)` for every `chunk_len`-long chunk of `data` (the
/// last may be shorter), `i` its index, spread as [`for_each_index`]
/// spreads indices: the caller among the threads.
pub fn for_each_chunk_mut<T: Send>(
    data: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    let count = data.len().div_ceil(chunk_len);
    let chunks = std::sync::Mutex::new(data.chunks_mut(chunk_len).enumerate());
    for_each_index(count, |_| {
        let next = chunks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next();
        if let Some((i, chunk)) = next {
            f(i, chunk);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn for_each_index_runs_every_index_once_from_anywhere() {
        for count in [0, 1, 2, 3, 17, 1000] {
            let seen = Mutex::new(vec![0u32; count]);
            let threads = Mutex::new(std::collections::HashSet::new());
            let run = || {
                for_each_index(count, |i| {
                    seen.lock().unwrap()[i] += 1;
                    threads.lock().unwrap().insert(std::thread::current().id());
                })
            };
            run();
            install(run);
            assert!(
                seen.lock().unwrap().iter().all(|&n| n == 2),
                "count {count}"
            );
            let used = threads.lock().unwrap().len();
            assert!(used <= num_threads() + 1, "{used} threads");
        }
        let total = AtomicUsize::new(0);
        for_each_index(64, |i| {
            total.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 63 * 64 / 2);
    }

    #[test]
    fn for_each_index_passes_a_panic_on_instead_of_waiting_forever() {
        for bad in [0, 5, 63] {
            let ran = AtomicUsize::new(0);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for_each_index(64, |i| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    assert!(i != bad, "index {i} fails");
                })
            }));
            assert!(r.is_err(), "index {bad}: the panic was lost");
            assert!(ran.load(Ordering::Relaxed) >= 1);
        }
    }

    #[test]
    fn for_each_chunk_mut_hands_out_every_chunk_once_with_its_index() {
        for (len, chunk) in [(0, 4), (1, 4), (7, 1), (33, 4), (1023, 100), (64, 0)] {
            let mut data = vec![0usize; len];
            let run = |data: &mut [usize]| {
                for_each_chunk_mut(data, chunk, |i, c| {
                    assert!(c.len() <= chunk.max(1) && !c.is_empty());
                    c.iter_mut().for_each(|v| *v += i + 1);
                })
            };
            run(&mut data);
            install(|| run(&mut data));
            for (k, v) in data.iter().enumerate() {
                assert_eq!(
                    *v,
                    2 * (k / chunk.max(1) + 1),
                    "len {len}, chunk {chunk}, k {k}"
                );
            }
        }
    }
}
