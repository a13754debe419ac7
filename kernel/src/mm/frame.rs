//! Physical frame allocator: one bit per 64 KiB frame over the span of RAM.
//!
//! Built at boot from the device-tree memory map: everything starts in use,
//! the usable ranges are freed, and what must stay untouched (kernel image,
//! exception vectors, the platform's firmware, the bitmap itself) is reserved again.
//! Contiguous, aligned runs are supported because THP needs 2 MiB frames.
//! A double free or a free of a frame never handed out is a kernel bug and
//! panics with the frame's address.

use core::fmt;

/// The kernel's base page size: 64 KiB, as Linux uses on POWER.
pub const FRAME_SHIFT: u32 = 16;
pub const FRAME_SIZE: u64 = 1 << FRAME_SHIFT;

/// A physical frame, by its physical address (always frame aligned).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame(u64);

impl Frame {
    #[inline]
    pub fn from_address(address: u64) -> Option<Frame> {
        address.is_multiple_of(FRAME_SIZE).then_some(Frame(address))
    }

    #[inline]
    pub fn address(self) -> u64 {
        self.0
    }

    #[inline]
    pub fn number(self) -> u64 {
        self.0 >> FRAME_SHIFT
    }

    /// The frame `frames` frames after this one (still aligned).
    #[inline]
    pub fn after(self, frames: u64) -> Frame {
        Frame(self.0 + frames * FRAME_SIZE)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:#x})", self.0)
    }
}

pub struct FrameAllocator<'a> {
    /// Bit set = frame in use (or not RAM).
    bits: &'a mut [u64],
    first_frame: u64,
    frames: u64,
    free: u64,
    /// Where the next single-frame search starts (next-fit).
    hint: u64,
}

impl<'a> FrameAllocator<'a> {
    /// Bitmap words needed to cover `[start, end)`.
    pub fn bitmap_words(start: u64, end: u64) -> usize {
        let frames = (align_up(end, FRAME_SIZE) - align_down(start, FRAME_SIZE)) >> FRAME_SHIFT;
        frames.div_ceil(64) as usize
    }

    /// An allocator for `[start, end)` with every frame in use; `bits` must
    /// have at least `bitmap_words(start, end)` words.
    pub fn new(bits: &'a mut [u64], start: u64, end: u64) -> Self {
        let first_frame = start >> FRAME_SHIFT;
        let frames = (align_up(end, FRAME_SIZE) >> FRAME_SHIFT) - first_frame;
        assert!(bits.len() as u64 * 64 >= frames, "frame bitmap too small");
        bits.fill(u64::MAX);
        FrameAllocator { bits, first_frame, frames, free: 0, hint: 0 }
    }

    /// Marks the whole frames inside `[start, end)` free.
    pub fn add_free_range(&mut self, start: u64, end: u64) {
        let (first, last) = self.clip(align_up(start, FRAME_SIZE), align_down(end, FRAME_SIZE));
        for index in first..last {
            if self.test(index) {
                self.clear(index);
                self.free += 1;
            }
        }
    }

    /// Marks every frame touching `[start, end)` in use.
    pub fn reserve(&mut self, start: u64, end: u64) {
        let (first, last) = self.clip(align_down(start, FRAME_SIZE), align_up(end, FRAME_SIZE));
        for index in first..last {
            if !self.test(index) {
                self.set(index);
                self.free -= 1;
            }
        }
    }

    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames covered by the bitmap (RAM and holes).
    pub fn span_frames(&self) -> u64 {
        self.frames
    }

    pub fn is_free(&self, frame: Frame) -> bool {
        self.index_of(frame).is_some_and(|index| !self.test(index))
    }

    /// One frame, or `None` when memory is exhausted.
    pub fn alloc(&mut self) -> Option<Frame> {
        if self.free == 0 {
            return None;
        }
        let words = self.bits.len() as u64;
        let start_word = self.hint / 64;
        for step in 0..=words {
            let word = (start_word + step) % words;
            let bits = self.bits[word as usize];
            if bits != u64::MAX {
                let index = word * 64 + (!bits).trailing_zeros() as u64;
                if index < self.frames {
                    self.set(index);
                    self.free -= 1;
                    self.hint = index + 1;
                    return Some(self.frame_at(index));
                }
            }
        }
        None
    }

    /// `count` contiguous frames whose first frame number is a multiple of
    /// `align` frames (e.g. 32 for a 2 MiB page).
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<Frame> {
        assert!(count > 0 && align > 0 && align.is_power_of_two());
        if count > self.free {
            return None;
        }
        // Candidate starts are aligned in physical frame numbers, not indexes.
        let mut number = align_up(self.first_frame, align);
        while number + count <= self.first_frame + self.frames {
            let index = number - self.first_frame;
            match (index..index + count).find(|&i| self.test(i)) {
                None => {
                    for i in index..index + count {
                        self.set(i);
                    }
                    self.free -= count;
                    return Some(self.frame_at(index));
                }
                // Skip past the used frame to the next aligned start.
                Some(used) => number = align_up(self.first_frame + used + 1, align),
            }
        }
        None
    }

    pub fn free(&mut self, frame: Frame) {
        self.free_contiguous(frame, 1);
    }

    pub fn free_contiguous(&mut self, frame: Frame, count: u64) {
        let Some(first) = self.index_of(frame) else {
            panic!("frame allocator: free of {frame:?}, outside managed memory");
        };
        assert!(first + count <= self.frames, "frame allocator: free of {count} frames at {frame:?} runs past memory");
        for index in first..first + count {
            if !self.test(index) {
                panic!("frame allocator: {:?} freed twice (or never allocated)", self.frame_at(index));
            }
            self.clear(index);
        }
        self.free += count;
    }

    fn clip(&self, start: u64, end: u64) -> (u64, u64) {
        let first = (start >> FRAME_SHIFT).max(self.first_frame) - self.first_frame;
        let last = ((end >> FRAME_SHIFT).max(self.first_frame) - self.first_frame).min(self.frames);
        (first, last.max(first))
    }

    fn index_of(&self, frame: Frame) -> Option<u64> {
        let number = frame.number();
        (number >= self.first_frame && number < self.first_frame + self.frames).then(|| number - self.first_frame)
    }

    fn frame_at(&self, index: u64) -> Frame {
        Frame((self.first_frame + index) << FRAME_SHIFT)
    }

    fn test(&self, index: u64) -> bool {
        self.bits[(index / 64) as usize] & (1 << (index % 64)) != 0
    }

    fn set(&mut self, index: u64) {
        self.bits[(index / 64) as usize] |= 1 << (index % 64);
    }

    fn clear(&mut self, index: u64) {
        self.bits[(index / 64) as usize] &= !(1 << (index % 64));
    }
}

pub const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

pub const fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::BTreeSet;
    use std::vec;

    const MIB: u64 = 1 << 20;

    fn with_allocator(start: u64, end: u64, body: impl FnOnce(&mut FrameAllocator<'_>)) {
        let mut bits = vec![0u64; FrameAllocator::bitmap_words(start, end)];
        let mut allocator = FrameAllocator::new(&mut bits, start, end);
        body(&mut allocator);
    }

    #[test]
    fn starts_full_then_frees_whole_frames_only() {
        with_allocator(0, 16 * MIB, |a| {
            assert_eq!(a.free_frames(), 0);
            assert_eq!(a.alloc(), None);
            // A range with ragged ends frees only the frames entirely inside it.
            a.add_free_range(FRAME_SIZE / 2, 4 * FRAME_SIZE + 1);
            assert_eq!(a.free_frames(), 3);
            a.add_free_range(0, 16 * MIB);
            assert_eq!(a.free_frames(), 256);
        });
    }

    #[test]
    fn reserve_covers_partially_touched_frames() {
        with_allocator(0, 4 * MIB, |a| {
            a.add_free_range(0, 4 * MIB);
            a.reserve(FRAME_SIZE - 1, FRAME_SIZE + 1);
            assert_eq!(a.free_frames(), 62);
            assert!(!a.is_free(Frame(0)) && !a.is_free(Frame(FRAME_SIZE)));
            assert!(a.is_free(Frame(2 * FRAME_SIZE)));
            a.reserve(0, 2 * FRAME_SIZE); // idempotent on reserved frames
            assert_eq!(a.free_frames(), 62);
        });
    }

    #[test]
    fn never_hands_out_a_frame_twice_and_exhausts_cleanly() {
        with_allocator(32 * MIB, 40 * MIB, |a| {
            a.add_free_range(32 * MIB, 40 * MIB);
            a.reserve(33 * MIB, 34 * MIB);
            let expected = a.free_frames();
            let mut seen = BTreeSet::new();
            while let Some(frame) = a.alloc() {
                assert!(frame.address() >= 32 * MIB && frame.address() < 40 * MIB);
                assert!(!(33 * MIB..34 * MIB).contains(&frame.address()), "reserved frame handed out");
                assert!(seen.insert(frame), "{frame:?} handed out twice");
            }
            assert_eq!(seen.len() as u64, expected);
            assert_eq!(a.free_frames(), 0);
            assert_eq!(a.alloc(), None);
            assert_eq!(a.alloc_contiguous(1, 1), None);
            for frame in &seen {
                a.free(*frame);
            }
            assert_eq!(a.free_frames(), expected);
        });
    }

    #[test]
    fn freed_frames_are_reused() {
        with_allocator(0, MIB, |a| {
            a.add_free_range(0, MIB);
            let all: vec::Vec<Frame> = core::iter::from_fn(|| a.alloc()).collect();
            a.free(all[5]);
            assert_eq!(a.alloc(), Some(all[5]));
        });
    }

    #[test]
    fn contiguous_aligned_runs() {
        with_allocator(0, 64 * MIB, |a| {
            a.add_free_range(0, 64 * MIB);
            a.reserve(0, FRAME_SIZE); // first 2 MiB block no longer whole
            let huge = a.alloc_contiguous(32, 32).unwrap();
            assert_eq!(huge.address(), 2 * MIB);
            for i in 0..32 {
                assert!(!a.is_free(Frame(huge.address() + i * FRAME_SIZE)));
            }
            // Fragment the next block and check that it is skipped.
            a.reserve(4 * MIB + 3 * FRAME_SIZE, 4 * MIB + 4 * FRAME_SIZE);
            assert_eq!(a.alloc_contiguous(32, 32).unwrap().address(), 6 * MIB);
            // Unaligned runs can use the holes.
            assert_eq!(a.alloc_contiguous(3, 1).unwrap().address(), FRAME_SIZE);
            a.free_contiguous(huge, 32);
            assert_eq!(a.alloc_contiguous(32, 32).unwrap().address(), 2 * MIB);
            // More than is free fails without side effects.
            let free = a.free_frames();
            assert_eq!(a.alloc_contiguous(free + 1, 1), None);
            assert_eq!(a.free_frames(), free);
        });
    }

    #[test]
    fn alignment_is_in_physical_frame_numbers() {
        // Span starting at an odd frame: an aligned run must start at an
        // address that is a multiple of the alignment, not an index.
        with_allocator(FRAME_SIZE, 8 * MIB, |a| {
            a.add_free_range(FRAME_SIZE, 8 * MIB);
            let frame = a.alloc_contiguous(4, 4).unwrap();
            assert_eq!(frame.address() % (4 * FRAME_SIZE), 0);
        });
    }

    #[test]
    #[should_panic(expected = "freed twice")]
    fn double_free_panics() {
        with_allocator(0, MIB, |a| {
            a.add_free_range(0, MIB);
            let frame = a.alloc().unwrap();
            a.free(frame);
            a.free(frame);
        });
    }

    #[test]
    #[should_panic(expected = "outside managed memory")]
    fn foreign_free_panics() {
        with_allocator(MIB, 2 * MIB, |a| a.free(Frame(0)));
    }
}
