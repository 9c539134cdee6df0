//! Process-wide CPU settings, applied once at start-up. Each one was found by profiling
//! training and inference steps (BENCHMARKS.md, "What the CLI sets up"); each can be
//! overridden through the environment.
//!
//! - glibc's malloc returns every freed buffer above its adaptive mmap threshold to the
//!   kernel, so the megabyte-sized activations and gemm packing buffers of every step are
//!   page-faulted in afresh: ~2,900 faults per inference batch, a third of its time in the
//!   kernel. Fixed, high mmap and trim thresholds keep that memory in the process. Those
//!   thresholds bind only the main arena: the per-thread arenas that rayon's workers get
//!   are 64 MiB heaps that glibc unmaps as soon as they empty, so a step larger than that
//!   (PLE's) still faulted ~11,000 pages in per training step. One arena for all threads
//!   removes them (a step makes a few hundred large allocations; the lock is uncontended).
//! - candle runs its element-wise kernels on a second pool (`candle-bp-*`) whose workers
//!   spin between ops; next to rayon's gemm workers that is more busy threads than cores,
//!   and the spinning steals the gemm's cycles. The element-wise ops are memory-bound, so
//!   they stay on one thread unless `CANDLE_NUM_THREADS` says otherwise.
//! - The command runs on a rayon worker, so the gemm calls made by a step are shared with
//!   the calling thread instead of handed to two sleeping workers and waited for.
//! - Under `mpirun`, the ranks on one machine share its cores: each gets its share of
//!   threads, since more busy threads than cores slows every rank down.
//! - Rust ignores SIGPIPE, so `adaftr inspect ... | head` panicked on its next write once
//!   `head` had read enough; the default disposition ends the process quietly, as other
//!   command-line tools do.

/// Call first thing in `main`, before any other thread exists.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets allocator parameters; no allocation is in flight.
        unsafe {
            if unset("MALLOC_MMAP_THRESHOLD_") && unset("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
            }
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
            // SAFETY: restoring a signal's default disposition before any thread exists.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // candle reads it when its pool is first used, which is after this.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Runs `f` on a worker of a rayon pool (sized by `RAYON_NUM_THREADS`, else one thread per
/// core, shared among the MPI ranks on this machine), so that the parallel kernels it
/// calls use the current thread too.
pub fn run_in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    // 8 MiB, like a main thread: candle walks the autograd graph recursively.
    let mut pool = rayon::ThreadPoolBuilder::new().stack_size(8 << 20);
    if let (None, Some(ranks)) = (std::env::var_os("RAYON_NUM_THREADS"), crate::distributed::ranks_on_this_machine()) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        pool = pool.num_threads((cores / ranks.max(1)).max(1));
    }
    match pool.build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}
