//! Creating a shard's ring, and the kernel it needs.
//!
//! weft needs Linux 6.1: multishot receive (6.0) for every connection and
//! `IORING_SETUP_DEFER_TASKRUN` (6.1), which runs completions only when the shard
//! enters the ring, so the kernel never interrupts a busy shard. Older kernels, or
//! io_uring disabled by sysctl or seccomp, are refused at start with a message that
//! says which.

use std::io;

use io_uring::IoUring;

/// The oldest kernel weft runs on.
pub(crate) const MIN_KERNEL: (u32, u32) = (6, 1);

/// Submission queue entries per ring.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: room for a burst of multishot completions.
const CQ_ENTRIES: u32 = 8192;

/// The running kernel's (major, minor) version.
pub(crate) fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Builds a ring for the calling thread (it must be the only one to submit).
///
/// # Errors
/// The kernel is too old, io_uring is unavailable, or the memlock limit is too low;
/// the error's message names the cause.
pub(crate) fn build() -> io::Result<IoUring> {
    if let Some(v) = kernel_version() {
        if v < MIN_KERNEL {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "weft needs Linux {}.{} or later (multishot receive, DEFER_TASKRUN); this kernel is {}.{}",
                    MIN_KERNEL.0, MIN_KERNEL.1, v.0, v.1
                ),
            ));
        }
    }
    let mut b = IoUring::builder();
    b.setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .setup_submit_all();
    b.build(SQ_ENTRIES).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::ENOSYS) => "this kernel has no io_uring",
            Some(libc::EPERM) => {
                "io_uring is disabled for this process (sysctl kernel.io_uring_disabled, or a seccomp filter such as a container's)"
            }
            Some(libc::ENOMEM) => "the memlock limit is too low: raise `ulimit -l` (8 MiB or more)",
            Some(libc::EINVAL) => "this kernel lacks an io_uring feature weft needs (Linux 6.1 or later)",
            _ => "io_uring cannot be set up",
        };
        io::Error::new(e.kind(), format!("{hint}: {e}"))
    })
}
