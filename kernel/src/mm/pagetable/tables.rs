//! Memory for page tables. Radix tables with 64 KiB pages are 64 KiB (PGD),
//! 4 KiB (PUD, PMD) and 256 bytes (PTE), each aligned to its size, so smaller
//! tables are carved out of 64 KiB frames (as Linux's pte_frag does) and a
//! frame goes back to the frame allocator when its last table is freed.

use alloc::collections::BTreeMap;

use crate::mm::frame::{FRAME_SHIFT, FRAME_SIZE};

/// Where tables come from and how the kernel reaches them.
pub trait TableMemory {
    /// A zeroed table of `bytes` (a power of two, at most a frame), aligned
    /// to its size; its physical address.
    fn alloc_table(&mut self, bytes: usize) -> Option<u64>;
    fn free_table(&mut self, table: u64, bytes: usize);
    /// The kernel's pointer to physical address `physical`.
    fn virt(&self, physical: u64) -> *mut u8;
    /// Orders table updates before later accesses that the MMU may translate
    /// with them (`ptesync` on POWER); a no-op where no MMU walks the tables.
    fn sync(&self) {}
}

/// Whole frames: the physical allocator underneath `TableAllocator`.
pub trait FrameSource {
    fn alloc_frame(&mut self) -> Option<u64>;
    fn free_frame(&mut self, frame: u64);
    fn virt(&self, physical: u64) -> *mut u8;
    fn sync(&self) {}
    /// Zeroes `bytes` at `physical`, a table just carved from a frame of
    /// this source (256 bytes to a whole frame, aligned to its size): with
    /// the compiler's `write_bytes` unless the source has faster stores.
    ///
    /// # Safety
    /// `[physical, physical + bytes)` lies inside a frame this source
    /// handed out and nothing else uses it.
    unsafe fn zero(&self, physical: u64, bytes: usize) {
        // SAFETY: the caller's contract; `virt` maps the frame.
        unsafe { core::ptr::write_bytes(self.virt(physical), 0, bytes) };
    }
}

/// A frame split into tables of one size; bit set = table in use.
struct Fragments {
    used: [u64; 4],
    count: u32,
}

pub struct TableAllocator<F: FrameSource> {
    frames: F,
    /// Per table size (log2), the frames carved into that size.
    carved: BTreeMap<u32, BTreeMap<u64, Fragments>>,
    frames_in_use: u64,
}

impl<F: FrameSource> TableAllocator<F> {
    pub fn new(frames: F) -> Self {
        TableAllocator { frames, carved: BTreeMap::new(), frames_in_use: 0 }
    }

    /// Frames currently holding tables.
    pub fn frames_in_use(&self) -> u64 {
        self.frames_in_use
    }

    pub fn frame_source(&mut self) -> &mut F {
        &mut self.frames
    }

    /// Whether the carved table `table` (of `bytes`, less than a frame: a
    /// whole-frame table is the frame allocator's to track) is allocated:
    /// handed out and not freed. For tests that a table a lockless walker
    /// may still read is not freed early.
    pub fn holds(&self, table: u64, bytes: usize) -> bool {
        assert!((bytes as u64) < FRAME_SIZE, "holds() tracks carved tables only, not {bytes}-byte ones");
        let shift = bytes.trailing_zeros();
        let frame = table >> FRAME_SHIFT << FRAME_SHIFT;
        let index = ((table - frame) >> shift) as u32;
        self.carved
            .get(&shift)
            .and_then(|class| class.get(&frame))
            .is_some_and(|fragments| fragments.used[(index / 64) as usize] & (1 << (index % 64)) != 0)
    }

    fn zero(&self, physical: u64, bytes: usize) {
        // SAFETY: the range is a table this allocator just handed out,
        // inside a frame it owns.
        unsafe { self.frames.zero(physical, bytes) };
    }
}

impl<F: FrameSource> TableMemory for TableAllocator<F> {
    fn alloc_table(&mut self, bytes: usize) -> Option<u64> {
        assert!(bytes.is_power_of_two() && bytes as u64 <= FRAME_SIZE && bytes >= 256, "table size {bytes}");
        if bytes as u64 == FRAME_SIZE {
            let frame = self.frames.alloc_frame()?;
            self.frames_in_use += 1;
            self.zero(frame, bytes);
            return Some(frame);
        }
        let shift = bytes.trailing_zeros();
        let per_frame = (FRAME_SIZE >> shift) as u32;
        let class = self.carved.entry(shift).or_default();
        let (&frame, fragments) = match class.iter_mut().find(|(_, f)| f.count < per_frame) {
            Some(found) => found,
            None => {
                let frame = self.frames.alloc_frame()?;
                self.frames_in_use += 1;
                class.insert(frame, Fragments { used: [0; 4], count: 0 });
                let (frame, fragments) = class.iter_mut().find(|(&f, _)| f == frame).expect("just inserted");
                (frame, fragments)
            }
        };
        let index =
            (0..per_frame).find(|&i| fragments.used[(i / 64) as usize] & (1 << (i % 64)) == 0).expect("free slot");
        fragments.used[(index / 64) as usize] |= 1 << (index % 64);
        fragments.count += 1;
        let table = frame + ((index as u64) << shift);
        self.zero(table, bytes);
        Some(table)
    }

    fn free_table(&mut self, table: u64, bytes: usize) {
        assert_eq!(table % bytes as u64, 0, "table {table:#x} misaligned for {bytes} bytes");
        if bytes as u64 == FRAME_SIZE {
            self.frames.free_frame(table);
            self.frames_in_use -= 1;
            return;
        }
        let shift = bytes.trailing_zeros();
        let frame = table >> FRAME_SHIFT << FRAME_SHIFT;
        let index = ((table - frame) >> shift) as u32;
        let class = self.carved.get_mut(&shift).expect("table size was allocated");
        let fragments = class.get_mut(&frame).unwrap_or_else(|| panic!("table {table:#x} was not allocated"));
        let bit = 1 << (index % 64);
        assert!(fragments.used[(index / 64) as usize] & bit != 0, "table {table:#x} freed twice");
        fragments.used[(index / 64) as usize] &= !bit;
        fragments.count -= 1;
        if fragments.count == 0 {
            class.remove(&frame);
            self.frames.free_frame(frame);
            self.frames_in_use -= 1;
        }
    }

    fn virt(&self, physical: u64) -> *mut u8 {
        self.frames.virt(physical)
    }

    fn sync(&self) {
        self.frames.sync()
    }
}

#[cfg(test)]
pub mod emulated {
    //! Physical memory simulated in a host buffer, for host tests of the tree
    //! code (Redox's rmm EmulateArch does the same).
    extern crate std;
    use std::vec::Vec;

    use super::FrameSource;
    use crate::mm::frame::{FrameAllocator, FRAME_SIZE};

    pub struct EmulatedFrames {
        /// Fake physical base address, to catch code that confuses the two.
        pub base: u64,
        memory: Vec<u64>,
        pub allocator: FrameAllocator<'static>,
    }

    impl EmulatedFrames {
        pub fn new(frames: u64) -> Self {
            let base = 0x4000_0000;
            let end = base + frames * FRAME_SIZE;
            // Leaked: the bitmap must outlive the 'static allocator; tests are short.
            let bits = std::vec![0u64; FrameAllocator::bitmap_words(base, end)].leak();
            let mut allocator = FrameAllocator::new(bits, base, end);
            allocator.add_free_range(base, end);
            EmulatedFrames { base, memory: std::vec![0u64; (frames * FRAME_SIZE / 8) as usize], allocator }
        }

        pub fn free_frames(&self) -> u64 {
            self.allocator.free_frames()
        }

        /// The emulated memory as (physical base, host pointer, bytes), for
        /// `virt` functions that cannot borrow this.
        pub fn raw(&self) -> (u64, *mut u8, usize) {
            (self.base, self.memory.as_ptr() as *mut u8, self.memory.len() * 8)
        }
    }

    impl FrameSource for EmulatedFrames {
        fn alloc_frame(&mut self) -> Option<u64> {
            self.allocator.alloc().map(|f| f.address())
        }
        fn free_frame(&mut self, frame: u64) {
            self.allocator.free(crate::mm::Frame::from_address(frame).expect("aligned"));
        }
        fn virt(&self, physical: u64) -> *mut u8 {
            let offset = (physical - self.base) as usize;
            assert!(offset < self.memory.len() * 8, "physical {physical:#x} outside emulated memory");
            // SAFETY: in bounds (checked); tests access tables through these pointers only.
            unsafe { (self.memory.as_ptr() as *mut u8).add(offset) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::emulated::EmulatedFrames;
    use super::*;

    #[test]
    fn small_tables_share_frames_and_frames_return_when_empty() {
        let mut tables = TableAllocator::new(EmulatedFrames::new(16));
        let before = tables.frame_source().free_frames();
        let first: alloc::vec::Vec<u64> = (0..256).map(|_| tables.alloc_table(256).unwrap()).collect();
        assert_eq!(tables.frames_in_use(), 1, "256 tables of 256 B fill one 64 KiB frame");
        assert!(first.iter().all(|t| t % 256 == 0));
        let next = tables.alloc_table(256).unwrap();
        assert_eq!(tables.frames_in_use(), 2);
        let four_k = tables.alloc_table(4096).unwrap();
        assert_eq!(four_k % 4096, 0);
        assert_eq!(tables.frames_in_use(), 3);
        for t in first {
            tables.free_table(t, 256);
        }
        tables.free_table(next, 256);
        tables.free_table(four_k, 4096);
        assert_eq!(tables.frames_in_use(), 0);
        assert_eq!(tables.frame_source().free_frames(), before);
    }

    #[test]
    fn holds_tells_allocated_from_freed_tables() {
        let mut tables = TableAllocator::new(EmulatedFrames::new(4));
        let a = tables.alloc_table(256).unwrap();
        let b = tables.alloc_table(256).unwrap();
        assert!(tables.holds(a, 256) && tables.holds(b, 256));
        assert!(!tables.holds(b + 256, 256), "never handed out");
        tables.free_table(a, 256);
        assert!(!tables.holds(a, 256) && tables.holds(b, 256));
        tables.free_table(b, 256);
        assert!(!tables.holds(b, 256), "its frame went back too");
    }

    #[test]
    fn tables_come_back_zeroed() {
        let mut tables = TableAllocator::new(EmulatedFrames::new(4));
        let t = tables.alloc_table(4096).unwrap();
        // SAFETY: a 4 KiB table just allocated.
        unsafe { core::ptr::write_bytes(tables.virt(t), 0xff, 4096) };
        tables.free_table(t, 4096);
        let again = tables.alloc_table(4096).unwrap();
        // SAFETY: as above.
        let bytes = unsafe { core::slice::from_raw_parts(tables.virt(again), 4096) };
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    #[should_panic(expected = "freed twice")]
    fn double_free_of_a_table_panics() {
        let mut tables = TableAllocator::new(EmulatedFrames::new(4));
        let a = tables.alloc_table(4096).unwrap();
        let _b = tables.alloc_table(4096).unwrap();
        tables.free_table(a, 4096);
        tables.free_table(a, 4096);
    }
}
