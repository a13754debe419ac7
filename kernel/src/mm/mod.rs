//! Memory management: physical frames and the kernel heap.
//!
//! The submodules marked `deny(unsafe_code)` need none; the others touch
//! memory through raw pointers (tables, the heap, page copies).

pub mod collapse;
#[deny(unsafe_code)]
pub mod cpumask;
#[deny(unsafe_code)]
pub mod frame;
#[deny(unsafe_code)]
pub mod gup;
#[deny(unsafe_code)]
pub mod hash;
#[deny(unsafe_code)]
pub mod hash_fault;
pub mod heap;
#[deny(unsafe_code)]
pub mod hpt_native;
#[deny(unsafe_code)]
pub mod jitter;
#[deny(unsafe_code)]
pub mod khugepaged;
#[deny(unsafe_code)]
pub mod knobs;
#[deny(unsafe_code)]
pub mod mmu;
#[deny(unsafe_code)]
pub mod page;
pub mod pagetable;
pub mod selftests;
#[deny(unsafe_code)]
pub mod tlbie;
pub mod vm;

use boot::{BootInfo, Range};
use spin::Mutex;

pub use frame::{Frame, FrameAllocator, FRAME_SHIFT, FRAME_SIZE};

/// The system's frame allocator, set up once by `init`.
pub static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

/// A physical range the frame allocator must never hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub start: u64,
    pub end: u64,
    pub what: &'static str,
}

/// RAM the kernel may use: the firmware's `available` ranges when it publishes
/// them (they exclude what the firmware claimed), else all of `memory`; then
/// clipped below `limit` (the real-mode limit while translation is off).
pub fn usable_ranges(boot: &BootInfo, limit: u64) -> impl Iterator<Item = Range> + '_ {
    let source = if boot.available.is_empty() { &boot.memory } else { &boot.available };
    source
        .iter()
        .filter(move |r| r.start < limit)
        .map(move |r| Range { start: r.start, size: r.end().min(limit) - r.start })
}

/// The lowest frame-aligned address of `size` bytes inside `usable` that
/// overlaps no `reserved` range.
pub fn find_gap(usable: impl Iterator<Item = Range>, reserved: &[Reserved], size: u64) -> Option<u64> {
    for range in usable {
        let mut candidate = frame::align_up(range.start, FRAME_SIZE);
        'search: while candidate + size <= range.end() {
            for r in reserved {
                if candidate < r.end && r.start < candidate + size {
                    candidate = frame::align_up(r.end, FRAME_SIZE);
                    continue 'search;
                }
            }
            return Some(candidate);
        }
    }
    None
}

/// Facts about the frame allocator after `init`, for the boot log.
#[derive(Debug, Clone, Copy)]
pub struct FramesReport {
    pub free_frames: u64,
    pub bitmap: Reserved,
}

/// Builds the global frame allocator from the boot memory map. The bitmap
/// spans all RAM, but only memory below `limit` (what the kernel can reach
/// now) is made free; `add_memory_above` frees the rest once it can.
///
/// # Safety
/// Physical memory must be reachable through `phys_to_virt`, every
/// range the kernel or firmware still uses must be in `reserved`, and this
/// must run once, before anything allocates frames.
pub unsafe fn init(boot: &BootInfo, limit: u64, reserved: &[Reserved]) -> Result<FramesReport, &'static str> {
    let span_start = boot.memory.first().map_or(0, |r| r.start);
    let span_end = boot.memory.iter().map(|r| r.end()).max().unwrap_or(0);
    let words = FrameAllocator::bitmap_words(span_start, span_end);
    let bytes = (words * 8) as u64;
    let bitmap_start = find_gap(usable_ranges(boot, limit), reserved, bytes).ok_or("no room for the frame bitmap")?;
    let bitmap = Reserved { start: bitmap_start, end: bitmap_start + bytes, what: "frame bitmap" };
    // SAFETY: the caller guarantees identity-mapped memory; find_gap chose
    // usable RAM outside every reserved range, and it is reserved below, so
    // nothing else will ever use it.
    let bits = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(bitmap_start) as *mut u64, words) };
    let mut allocator = FrameAllocator::new(bits, span_start, span_end);
    for range in usable_ranges(boot, limit) {
        allocator.add_free_range(range.start, range.end());
    }
    for r in reserved.iter().chain(core::iter::once(&bitmap)) {
        allocator.reserve(r.start, r.end);
    }
    let report = FramesReport { free_frames: allocator.free_frames(), bitmap };
    *FRAMES.lock() = Some(allocator);
    Ok(report)
}

/// Frees the usable RAM at or above `limit` (which `init` held back), for
/// when the kernel can reach all of it; returns the frames added.
pub fn add_memory_above(boot: &BootInfo, limit: u64) -> u64 {
    let mut frames = FRAMES.lock();
    let Some(allocator) = frames.as_mut() else { return 0 };
    let before = allocator.free_frames();
    for range in usable_ranges(boot, u64::MAX).filter(|r| r.end() > limit) {
        allocator.add_free_range(range.start.max(limit), range.end());
    }
    allocator.free_frames() - before
}

/// Where the kernel sees all of physical memory: the POWER kernel quadrant.
/// The linear map puts RAM there once translation is on; before that, real
/// mode ignores the top four address bits, so the same addresses work.
pub const LINEAR_MAP_BASE: u64 = 0xc000_0000_0000_0000;

pub fn phys_to_virt(physical: u64) -> *mut u8 {
    (physical | LINEAR_MAP_BASE) as *mut u8
}

/// The physical address of a linear-map (or kernel image) address.
pub fn virt_to_phys(address: u64) -> u64 {
    debug_assert!(address >= LINEAR_MAP_BASE, "{address:#x} is not a kernel address");
    address & !LINEAR_MAP_BASE
}

/// Every frame's page descriptor (set up by `init_pages`).
static PAGES: crate::sync::BootOnce<page::PageArray<'static>> = crate::sync::BootOnce::new();

/// Allocates the page descriptors for all of RAM from the frame allocator.
pub fn init_pages(boot: &BootInfo) -> Result<(), &'static str> {
    let start = boot.memory.first().map_or(0, |r| r.start);
    let end = boot.memory.iter().map(|r| r.end()).max().unwrap_or(0);
    let count = ((end - start) >> FRAME_SHIFT) as usize;
    let bytes = (count * core::mem::size_of::<page::Page>()) as u64;
    let frames = bytes.div_ceil(FRAME_SIZE);
    let run = alloc_contiguous(frames, 1).ok_or("no memory for page descriptors")?;
    let first = phys_to_virt(run.address()) as *mut page::Page;
    for i in 0..count {
        // SAFETY: the run was just allocated and holds `count` descriptors;
        // each is written once before the slice below is made.
        unsafe { first.add(i).write(page::Page::new()) };
    }
    // SAFETY: initialised above; the run is never freed.
    let pages = unsafe { core::slice::from_raw_parts(first, count) };
    // SAFETY: boot calls this on the boot CPU before it starts the others
    // (and before anything reads the descriptors).
    unsafe { PAGES.set(page::PageArray::new(start, pages)) };
    Ok(())
}

/// The page descriptors of all RAM.
pub fn pages() -> &'static page::PageArray<'static> {
    PAGES.get().expect("page descriptors are set up at boot")
}

/// Allocates one frame from the global allocator.
pub fn alloc_frame() -> Option<Frame> {
    FRAMES.lock().as_mut()?.alloc()
}

/// `count` contiguous frames, the first aligned to `align` frames.
pub fn alloc_contiguous(count: u64, align: u64) -> Option<Frame> {
    FRAMES.lock().as_mut()?.alloc_contiguous(count, align)
}

pub fn free_contiguous(frame: Frame, count: u64) {
    FRAMES.lock().as_mut().expect("frame allocator initialised").free_contiguous(frame, count)
}

pub fn free_frame(frame: Frame) {
    FRAMES.lock().as_mut().expect("frame allocator initialised").free(frame)
}

pub fn free_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |a| a.free_frames())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn gap_skips_reserved_ranges() {
        let usable = [Range { start: 0x1000, size: 8 * MIB }];
        let reserved = [
            Reserved { start: 0, end: 0x10000, what: "vectors" },
            Reserved { start: 0x20000, end: 0x50000, what: "kernel" },
        ];
        assert_eq!(find_gap(usable.iter().copied(), &reserved, 0x10000), Some(0x10000));
        assert_eq!(find_gap(usable.iter().copied(), &reserved, 0x20000), Some(0x50000));
        assert_eq!(find_gap(usable.iter().copied(), &reserved, 16 * MIB), None);
    }

    #[test]
    fn usable_prefers_available_and_clips_to_limit() {
        let mut boot = BootInfo::default();
        boot.memory.push(Range { start: 0, size: 4 * MIB }).unwrap();
        boot.memory.push(Range { start: 8 * MIB, size: 4 * MIB }).unwrap();
        let all: heapless::Vec<Range, 4> = usable_ranges(&boot, 10 * MIB).collect();
        assert_eq!(all.as_slice(), &[Range { start: 0, size: 4 * MIB }, Range { start: 8 * MIB, size: 2 * MIB }]);
        boot.available.push(Range { start: MIB, size: MIB }).unwrap();
        let avail: heapless::Vec<Range, 4> = usable_ranges(&boot, 10 * MIB).collect();
        assert_eq!(avail.as_slice(), &[Range { start: MIB, size: MIB }]);
    }
}
