//! The generator's own CPU cost: per-thread CPU time from `getrusage(RUSAGE_THREAD)`.
//!
//! A load generator that is itself saturated measures itself, not the server. Each thread
//! reads its CPU time at the start and the end; the report divides by requests (cost per
//! request) and by wall time (utilisation, with a warning near 100 %).

/// Returns the CPU time (user + system) used so far by the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: rusage is plain old data; all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid for writes for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
