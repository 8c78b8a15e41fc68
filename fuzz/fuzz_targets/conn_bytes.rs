//! `conn_bytes`: see tests/props/conn_bytes.rs for the input format and the properties.
//! This binary also counts heap bytes (a global allocator), so the property can bound the
//! allocation peak of one connection, which stable `cargo test` (no `unsafe`) cannot.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/mod.rs"]
mod props;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BASE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak. libFuzzer runs the target on
/// one thread, so the counts are this input's (libFuzzer's own C++ allocations bypass it).
struct Counting;

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counters are plain atomics and never affect the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Probe;

impl props::conn_bytes::MemoryProbe for Probe {
    fn reset(&self) {
        let live = LIVE.load(Relaxed);
        BASE.store(live, Relaxed);
        PEAK.store(live, Relaxed);
    }

    fn peak_growth(&self) -> Option<usize> {
        Some(PEAK.load(Relaxed).saturating_sub(BASE.load(Relaxed)))
    }
}

fuzz_target!(|data: &[u8]| props::conn_bytes::check(data, &Probe));
