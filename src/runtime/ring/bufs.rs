//! The provided-buffer ring a shard's multishot receives pick their buffers from.
//!
//! ```text
//!   data:  [ buf 0 | buf 1 | ... | buf N-1 ]   N × BUF_SIZE bytes, allocated once
//!   ring:  [ entry ... ] + tail               page-aligned, registered with the kernel
//!
//!   kernel: takes the entry at head, receives into that buffer, posts a CQE naming it
//!   weft:   hands the bytes to `data_received` where they lie, then puts the
//!           buffer back at the tail (`give_back`)
//! ```
//!
//! Every buffer is at any time either on the ring (the kernel may write into it) or
//! held by exactly one connection (queued for `data_received`, or being read by it;
//! only weft touches it). The memory
//! must outlive every receive that may still pick a buffer: the owner (`Ring` in
//! `mod.rs`) frees the pool only after the ring has no request in flight, and leaks
//! it rather than free it if that cannot be established.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// Bytes per provided buffer.
pub(crate) const BUF_SIZE: usize = 8 * 1024;
/// The fewest and the most buffers a shard's connection pool may have (a power of
/// two between; the default is `config::DEFAULT_RECEIVE_BUFFERS`).
pub(crate) const RECEIVE_BUFFERS_RANGE: std::ops::RangeInclusive<usize> = 16..=32768;
/// The buffer group id the receives name.
pub(crate) const BGID: u16 = 0;

pub(crate) struct BufPool {
    /// Its buffer group id, its number of buffers (a power of two) and their size.
    bgid: u16,
    count: usize,
    size: usize,
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    data: *mut u8,
    data_layout: Layout,
    /// The next tail to publish (the kernel owns entries between its head and this).
    tail: u16,
    /// Buffers currently on the ring (the kernel may pick them).
    pub(crate) free: usize,
}

impl BufPool {
    /// Allocates the connections' pool of `count` buffers (group `BGID`),
    /// registers it with `ring` and hands every buffer to the kernel.
    pub(crate) fn new(ring: &IoUring, count: usize) -> io::Result<BufPool> {
        if !count.is_power_of_two() || !RECEIVE_BUFFERS_RANGE.contains(&count) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("receive buffers: {count} is not a power of two from 16 to 32768"),
            ));
        }
        BufPool::with_shape(ring, BGID, count, BUF_SIZE)
    }

    /// Allocates a pool of `count` (a power of two, at most 32768) buffers of `size`
    /// bytes as buffer group `bgid`, registers it with `ring` and hands every buffer
    /// to the kernel. Datagram ports each have one, sized for their datagrams.
    pub(crate) fn with_shape(
        ring: &IoUring,
        bgid: u16,
        count: usize,
        size: usize,
    ) -> io::Result<BufPool> {
        if !count.is_power_of_two() || count > 1 << 15 || size == 0 {
            return Err(io::Error::other("bad buffer pool shape"));
        }
        let ring_layout =
            Layout::from_size_align(count * std::mem::size_of::<BufRingEntry>(), 4096)
                .map_err(|_| io::Error::other("bad buffer-ring layout"))?;
        let data_layout = Layout::from_size_align(count * size, 4096)
            .map_err(|_| io::Error::other("bad buffer layout"))?;
        // SAFETY: both layouts have a non-zero size.
        let (ring_mem, data) = unsafe { (alloc_zeroed(ring_layout), alloc_zeroed(data_layout)) };
        if ring_mem.is_null() || data.is_null() {
            // SAFETY: each pointer, when non-null, came from alloc_zeroed with its layout.
            unsafe {
                if !ring_mem.is_null() {
                    dealloc(ring_mem, ring_layout);
                }
                if !data.is_null() {
                    dealloc(data, data_layout);
                }
            }
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut pool = BufPool {
            bgid,
            count,
            size,
            ring: ring_mem.cast(),
            ring_layout,
            data,
            data_layout,
            tail: 0,
            free: 0,
        };
        // SAFETY: `pool.ring` is page-aligned, zeroed (a valid empty ring: tail 0) and
        // `count` entries long; it stays allocated until `pool` is dropped, which
        // the owner does only after the ring is gone or idle (see the module doc).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                pool.ring as u64,
                count as u16,
                bgid,
                0,
            )?;
        }
        for bid in 0..count as u16 {
            pool.push(bid);
        }
        pool.publish();
        Ok(pool)
    }

    /// Writes buffer `bid` into the entry at the local tail (not yet visible).
    fn push(&mut self, bid: u16) {
        let idx = (self.tail as usize) & (self.count - 1);
        // SAFETY: `idx < count`, so the entry is inside the ring allocation. The
        // kernel reads only entries between its head and the published tail; at most
        // `count` buffers exist and `bid` is not on the ring (its owner just gave it
        // back), so this slot is not one the kernel may be reading.
        let entry = unsafe { &mut *self.ring.add(idx) };
        entry.set_addr(self.buf_ptr(bid) as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.free += 1;
    }

    /// Makes every pushed entry visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field is the `resv` of entry 0, inside the allocation, and
        // u16-aligned; the kernel reads it with acquire semantics, so a release store
        // makes the entries written before it visible first.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Returns buffer `bid` to the kernel.
    pub(crate) fn give_back(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Accounts for a buffer the kernel picked (a CQE named it).
    pub(crate) fn taken(&mut self) {
        self.free = self.free.saturating_sub(1);
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        debug_assert!((bid as usize) < self.count);
        // SAFETY: `bid < count`, so the offset stays inside the data allocation.
        unsafe { self.data.add(bid as usize * self.size) }
    }

    /// Returns the buffer group id receives from this pool name.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Returns the size of each buffer.
    pub(crate) fn buffer_size(&self) -> usize {
        self.size
    }

    /// The first `len` bytes the kernel received into buffer `bid`, from `off`.
    pub(crate) fn bytes(&self, bid: u16, off: usize, len: usize) -> &[u8] {
        assert!((bid as usize) < self.count && off <= len && len <= self.size);
        // SAFETY: in bounds (asserted); the buffer is held by a receive queue, so the
        // kernel no longer writes into it until it is given back, and the slice's
        // lifetime is tied to `&self`, which `give_back` (needing `&mut self`) ends.
        unsafe { std::slice::from_raw_parts(self.buf_ptr(bid).add(off), len - off) }
    }
}

impl Drop for BufPool {
    fn drop(&mut self) {
        // SAFETY: both pointers came from alloc_zeroed with these layouts. The owner
        // drops the pool only when no receive can still write into it (module doc).
        unsafe {
            dealloc(self.ring.cast(), self.ring_layout);
            dealloc(self.data, self.data_layout);
        }
    }
}
