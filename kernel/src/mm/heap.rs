//! The kernel heap: `linked_list_allocator` behind a spin lock, carved from
//! frames at boot. An allocation that cannot be satisfied is reported with
//! the request and the heap's state before Rust's allocation-error path turns
//! it into a fatal error.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};

use linked_list_allocator::Heap;
use spin::Mutex;

pub struct KernelHeap {
    heap: Mutex<Heap>,
    failures: AtomicU64,
}

/// Heap statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    pub size: usize,
    pub used: usize,
    pub failures: u64,
}

impl KernelHeap {
    pub const fn empty() -> Self {
        KernelHeap { heap: Mutex::new(Heap::empty()), failures: AtomicU64::new(0) }
    }

    /// # Safety
    /// `[start, start + size)` must be writable memory used by nothing else,
    /// for as long as the heap lives; call once.
    pub unsafe fn init(&self, start: *mut u8, size: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.heap.lock().init(start, size) };
    }

    pub fn stats(&self) -> HeapStats {
        let heap = self.heap.lock();
        HeapStats { size: heap.size(), used: heap.used(), failures: self.failures.load(Ordering::Relaxed) }
    }
}

// SAFETY: all state is behind the lock; allocate_first_fit returns blocks of at
// least `layout.size()` bytes aligned to `layout.align()`, never handed out twice.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
        match heap.allocate_first_fit(layout) {
            Ok(block) => block.as_ptr(),
            Err(()) => {
                let (size, used) = (heap.size(), heap.used());
                drop(heap);
                self.failures.fetch_add(1, Ordering::Relaxed);
                crate::error!(
                    "heap: out of memory: request of {} bytes (align {}) failed; heap {} bytes, {} used, {} free",
                    layout.size(),
                    layout.align(),
                    size,
                    used,
                    size - used
                );
                ptr::null_mut()
            }
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(block) = NonNull::new(block) else { return };
        // SAFETY: GlobalAlloc's contract: `block` came from `alloc` with `layout`.
        unsafe { self.heap.lock().deallocate(block, layout) };
    }
}

#[cfg_attr(target_os = "none", global_allocator)]
pub static HEAP: KernelHeap = KernelHeap::empty();

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[repr(align(4096))]
    struct Arena([u8; 64 * 1024]);

    #[test]
    fn allocates_frees_and_reports_exhaustion() {
        let arena = std::boxed::Box::leak(std::boxed::Box::new(Arena([0; 64 * 1024])));
        let heap = KernelHeap::empty();
        // SAFETY: the arena is leaked, so it outlives the heap and nothing else uses it.
        unsafe { heap.init(arena.0.as_mut_ptr(), arena.0.len()) };
        let layout = Layout::from_size_align(1000, 64).unwrap();
        // SAFETY: layout has a non-zero size; each block is freed once with its layout.
        unsafe {
            let a = heap.alloc(layout);
            assert!(!a.is_null() && (a as usize).is_multiple_of(64));
            assert!(heap.stats().used >= 1000);
            let too_big = heap.alloc(Layout::from_size_align(128 * 1024, 8).unwrap());
            assert!(too_big.is_null());
            assert_eq!(heap.stats().failures, 1);
            heap.dealloc(a, layout);
        }
        assert_eq!(heap.stats().used, 0);
    }
}
