//! Memory at boot: the frame allocator over the RAM the device tree
//! describes, minus what is still in use (vectors, the image, what the
//! platform's firmware keeps), and the kernel heap.

use boot::BootInfo;
use kernel::info;
use kernel::mm::{self, Reserved, FRAME_SIZE};

use crate::{ksyms, platform, trap};

/// Heap size: a sixteenth of usable memory, within these bounds.
const HEAP_MIN: u64 = 4 << 20;
const HEAP_MAX: u64 = 64 << 20;

/// Builds the frame allocator and the heap.
pub fn init(info: &BootInfo, load_base: u64) {
    let reserved = reserved_ranges(info, load_base);
    // The image was placed without the firmware's map (at its load address,
    // or moved by entry.s): it must not sit on memory the firmware keeps.
    let image = (mm::virt_to_phys(load_base), mm::virt_to_phys(ksyms::image_end()));
    if let Some(kept) = info.reserved.iter().find(|r| r.start < image.1 && image.0 < r.end()) {
        panic!(
            "memory: the kernel image {:#x}-{:#x} overlaps {:#x}-{:#x}, which the firmware keeps",
            image.0,
            image.1,
            kept.start,
            kept.end()
        );
    }
    if info.available.is_empty() {
        info!("memory: firmware publishes no \"available\" ranges; it is quiesced, so its memory is reused");
    }
    // SAFETY: real mode (identity), every range still in use is in `reserved`,
    // and this runs once before any frame is allocated.
    let frames =
        unsafe { mm::init(info, info.real_mode_limit, &reserved) }.unwrap_or_else(|why| panic!("memory: {why}"));
    for r in reserved.iter().chain(core::iter::once(&frames.bitmap)) {
        info!("memory: reserved {:#012x}-{:#012x} {}", r.start, r.end, r.what);
    }

    mm::init_pages(info).unwrap_or_else(|why| panic!("memory: {why}"));
    let heap_bytes = (frames.free_frames * FRAME_SIZE / 16).clamp(HEAP_MIN, HEAP_MAX);
    let heap_frames = heap_bytes / FRAME_SIZE;
    let heap =
        mm::alloc_contiguous(heap_frames, 1).unwrap_or_else(|| panic!("memory: no {heap_bytes}-byte run for the heap"));
    // SAFETY: the frames were just taken from the allocator and are never
    // returned; real mode maps them at their physical address.
    unsafe { mm::heap::HEAP.init(mm::phys_to_virt(heap.address()), heap_bytes as usize) };
    info!(
        "memory: {} MiB free in {} frames of 64 KiB; heap {} MiB at {:#x}",
        (mm::free_frames() * FRAME_SIZE) >> 20,
        mm::free_frames(),
        heap_bytes >> 20,
        heap.address()
    );
}

/// Ranges the frame allocator keeps out: the fixed ones, the platform's,
/// and what the device tree says the firmware keeps.
const MAX_RESERVED: usize = 3 + boot::info::MAX_RESERVED_RANGES;

/// What the frame allocator must never hand out.
pub fn reserved_ranges(info: &BootInfo, load_base: u64) -> heapless::Vec<Reserved, MAX_RESERVED> {
    let mut ranges: heapless::Vec<Reserved, MAX_RESERVED> = heapless::Vec::new();
    let fixed = [
        Reserved { start: 0, end: trap::VECTOR_AREA_END, what: "exception vectors" },
        Reserved {
            start: mm::virt_to_phys(load_base),
            end: mm::virt_to_phys(ksyms::image_end()),
            what: "kernel image",
        },
    ];
    let firmware = info.reserved.iter().map(|range| Reserved {
        start: range.start,
        end: range.end(),
        what: "firmware (device tree reserved range)",
    });
    for range in fixed.into_iter().chain(platform::machine().reserved(info)).chain(firmware) {
        let _ = ranges.push(range);
    }
    ranges
}
