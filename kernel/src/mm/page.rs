//! Page descriptors: one per 64 KiB frame, as Linux's `struct page`/folio.
//!
//! - `refcount` counts references; a GUP pin adds `PIN_BIAS` (Linux's
//!   GUP_PIN_COUNTING_BIAS for FOLL_PIN), so a pinned page is one whose
//!   count exceeds what its mappings explain by at least the bias;
//! - `mapcount` counts page-table entries mapping the page;
//! - a 2 MiB page is compound: 32 frames whose head holds the counts and
//!   whose tails point at the head.
//!
//! GUP-fast takes its reference with `try_get` (add unless zero), so a page
//! whose count already dropped to zero (being freed) is never resurrected;
//! THP collapse tells a pinned page from a merely mapped one by comparing
//! `refcount` with `mapcount` plus the references it holds itself.

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::frame::{Frame, FRAME_SHIFT};

/// What one GUP pin adds to the refcount (Linux: GUP_PIN_COUNTING_BIAS).
pub const PIN_BIAS: u32 = 1024;

/// Flag bits of a page descriptor.
pub mod flags {
    /// First frame of a compound (2 MiB) page.
    pub const HEAD: u32 = 1 << 0;
    /// Later frame of a compound page: `head` says which.
    pub const TAIL: u32 = 1 << 1;
    /// Anonymous memory of an address space.
    pub const ANONYMOUS: u32 = 1 << 2;
}

#[derive(Debug)]
pub struct Page {
    refcount: AtomicU32,
    mapcount: AtomicU32,
    flags: AtomicU32,
    /// Tails: the head's frame number. Heads: log2 of the frames in the page.
    head_or_order: AtomicU64,
}

impl Page {
    #[cfg(not(loom))]
    pub const fn new() -> Page {
        Page {
            refcount: AtomicU32::new(0),
            mapcount: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            head_or_order: AtomicU64::new(0),
        }
    }

    /// Loom's atomics are not const-constructible.
    #[cfg(loom)]
    pub fn new() -> Page {
        Page {
            refcount: AtomicU32::new(0),
            mapcount: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            head_or_order: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn refcount(&self) -> u32 {
        self.refcount.load(Ordering::Acquire)
    }

    #[inline]
    pub fn mapcount(&self) -> u32 {
        self.mapcount.load(Ordering::Acquire)
    }

    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// Takes a reference unless the count is zero (the page is free or being
    /// freed): the lockless walker's way in.
    #[inline]
    pub fn try_get(&self) -> bool {
        self.refcount.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| (c != 0).then(|| c + 1)).is_ok()
    }

    /// Takes a reference on a page the caller already holds one on.
    #[inline]
    pub fn get(&self) {
        let old = self.refcount.fetch_add(1, Ordering::AcqRel);
        assert!(old != 0, "get on a page with no references");
    }

    /// Drops a reference; true when it was the last.
    #[inline]
    pub fn put(&self) -> bool {
        let old = self.refcount.fetch_sub(1, Ordering::AcqRel);
        assert!(old != 0, "put on a page with no references");
        old == 1
    }

    /// A GUP pin (FOLL_PIN), unless the page is being freed.
    #[inline]
    pub fn try_pin(&self) -> bool {
        self.refcount
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| (c != 0).then(|| c.checked_add(PIN_BIAS)).flatten())
            .is_ok()
    }

    /// `count` GUP pins at once (Linux's try_grab_folio with a count: a huge
    /// page pinned for `count` of its base pages), unless the page is being
    /// freed or the count would overflow.
    #[inline]
    pub fn try_pin_many(&self, count: u32) -> bool {
        let Some(add) = PIN_BIAS.checked_mul(count) else { return false };
        self.refcount
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| (c != 0).then(|| c.checked_add(add)).flatten())
            .is_ok()
    }

    /// Drops `count` pins; true when that released the page's last reference.
    pub fn unpin_many(&self, count: u32) -> bool {
        let sub = PIN_BIAS * count;
        let old = self.refcount.fetch_sub(sub, Ordering::AcqRel);
        assert!(old >= sub, "unpin of {count} pins of a page with fewer");
        old == sub
    }

    /// Drops a pin; true when that released the page's last reference.
    #[inline]
    pub fn unpin(&self) -> bool {
        let old = self.refcount.fetch_sub(PIN_BIAS, Ordering::AcqRel);
        assert!(old >= PIN_BIAS, "unpin of a page that is not pinned");
        old == PIN_BIAS
    }

    #[inline]
    pub fn map(&self) {
        self.mapcount.fetch_add(1, Ordering::AcqRel);
    }

    #[inline]
    pub fn unmap(&self) {
        let old = self.mapcount.fetch_sub(1, Ordering::AcqRel);
        assert!(old != 0, "unmap of a page that is not mapped");
    }

    /// Whether references beyond the mappings and `held` (the caller's own)
    /// include a pin: Linux's folio_maybe_dma_pinned, as collapse uses it.
    #[inline]
    pub fn maybe_pinned(&self, held: u32) -> bool {
        self.refcount().saturating_sub(self.mapcount() + held) >= PIN_BIAS
    }

    /// Whether every reference is explained by the mappings and `held`
    /// (khugepaged's check before it copies a page away).
    #[inline]
    pub fn only_mapped(&self, held: u32) -> bool {
        self.refcount() == self.mapcount() + held
    }

    fn set_flags(&self, flags: u32) {
        self.flags.store(flags, Ordering::Release);
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::new()
    }
}

/// The descriptors of every frame in a span of physical memory.
pub struct PageArray<'a> {
    first_frame: u64,
    pages: &'a [Page],
}

impl<'a> PageArray<'a> {
    /// Descriptors for frames starting at physical address `start`.
    pub fn new(start: u64, pages: &'a [Page]) -> Self {
        PageArray { first_frame: start >> FRAME_SHIFT, pages }
    }

    /// Every descriptor, in frame order (for audits).
    pub fn descriptors(&self) -> &[Page] {
        self.pages
    }

    /// The descriptor of `frame` itself (a tail stays a tail).
    #[inline]
    pub fn frame(&self, frame: Frame) -> Option<&Page> {
        let index = frame.number().checked_sub(self.first_frame)?;
        self.pages.get(index as usize)
    }

    /// The descriptor that holds the counts for `frame`: its compound head.
    #[inline]
    pub fn head(&self, frame: Frame) -> Option<&Page> {
        let page = self.frame(frame)?;
        if page.flags() & flags::TAIL != 0 {
            let head = page.head_or_order.load(Ordering::Acquire);
            return self.frame(Frame::from_address(head << FRAME_SHIFT)?);
        }
        Some(page)
    }

    /// The frame that holds `frame`'s counts (its compound head, or itself)
    /// and the order of the page it belongs to.
    pub fn head_frame(&self, frame: Frame) -> Option<(Frame, u32)> {
        let page = self.frame(frame)?;
        let flags = page.flags();
        if flags & flags::TAIL != 0 {
            let head = Frame::from_address(page.head_or_order.load(Ordering::Acquire) << FRAME_SHIFT)?;
            let order = self.frame(head)?.head_or_order.load(Ordering::Acquire) as u32;
            return Some((head, order));
        }
        let order = if flags & flags::HEAD != 0 { page.head_or_order.load(Ordering::Acquire) as u32 } else { 0 };
        Some((frame, order))
    }

    /// Drops one mapping of the page holding `frame` and the reference that
    /// mapping held; when that was the last reference, the page (all its
    /// frames) goes to `free` as (head, order), its descriptors cleared.
    pub fn release_mapping(&self, frame: Frame, free: impl FnOnce(Frame, u32)) {
        let Some((head, order)) = self.head_frame(frame) else { return };
        let page = self.frame(head).expect("head in the array");
        page.unmap();
        if page.put() {
            self.free_page(head, order, free);
        }
    }

    /// Drops a GUP pin of the page holding `frame` (Linux's unpin_user_page);
    /// if the page was unmapped meanwhile, the pin was its last reference and
    /// the page goes to `free`.
    #[inline]
    pub fn unpin(&self, frame: Frame, free: impl FnOnce(Frame, u32)) {
        let Some((head, order)) = self.head_frame(frame) else { return };
        if self.frame(head).expect("head in the array").unpin() {
            self.free_page(head, order, free);
        }
    }

    /// Drops `count` GUP pins of the page holding `frame` at once (a huge
    /// page's, taken together by GUP-fast), freeing it as `unpin` does.
    pub fn unpin_many(&self, frame: Frame, count: u32, free: impl FnOnce(Frame, u32)) {
        let Some((head, order)) = self.head_frame(frame) else { return };
        if self.frame(head).expect("head in the array").unpin_many(count) {
            self.free_page(head, order, free);
        }
    }

    fn free_page(&self, head: Frame, order: u32, free: impl FnOnce(Frame, u32)) {
        if order > 0 {
            self.clear_compound(head);
        } else {
            self.frame(head).expect("head in the array").set_flags(0);
        }
        free(head, order);
    }

    /// Makes the `1 << order` frames from `head` one compound page.
    pub fn make_compound(&self, head: Frame, order: u32, extra_flags: u32) {
        let first = self.frame(head).expect("head frame in the array");
        first.head_or_order.store(order as u64, Ordering::Relaxed);
        first.set_flags(flags::HEAD | extra_flags);
        for i in 1..1u64 << order {
            let tail = Frame::from_address(head.address() + (i << FRAME_SHIFT)).expect("aligned");
            let page = self.frame(tail).expect("tail frame in the array");
            page.head_or_order.store(head.number(), Ordering::Relaxed);
            page.set_flags(flags::TAIL | extra_flags);
        }
    }

    /// Undoes `make_compound` (when the huge page is freed or split).
    pub fn clear_compound(&self, head: Frame) {
        let first = self.frame(head).expect("head frame in the array");
        let order = first.head_or_order.load(Ordering::Acquire) as u32;
        for i in 0..1u64 << order {
            let frame = Frame::from_address(head.address() + (i << FRAME_SHIFT)).expect("aligned");
            let page = self.frame(frame).expect("frame in the array");
            page.set_flags(0);
            page.head_or_order.store(0, Ordering::Relaxed);
        }
    }

    /// Gives a freshly allocated frame its first reference.
    pub fn init_allocated(&self, frame: Frame, flags: u32) -> &Page {
        self.init(frame, flags, 0)
    }

    /// `init_allocated` and `map` of a page about to be mapped once: its
    /// reference and its mapping with plain stores, since no other CPU can
    /// reach the page before the entry that maps it is published (after a
    /// release fence), where `map` is an atomic read-modify-write.
    pub fn init_mapped(&self, frame: Frame, flags: u32) -> &Page {
        self.init(frame, flags, 1)
    }

    fn init(&self, frame: Frame, flags: u32, mapcount: u32) -> &Page {
        let page = self.frame(frame).expect("frame in the array");
        page.refcount.store(1, Ordering::Relaxed);
        page.mapcount.store(mapcount as _, Ordering::Relaxed);
        page.set_flags(flags);
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn array(frames: usize) -> (Vec<Page>, u64) {
        ((0..frames).map(|_| Page::new()).collect(), 0x4000_0000)
    }

    #[test]
    fn references_and_add_unless_zero() {
        let (pages, base) = array(4);
        let pa = PageArray::new(base, &pages);
        let frame = Frame::from_address(base + 0x1_0000).unwrap();
        let page = pa.frame(frame).unwrap();
        assert!(!page.try_get(), "a free page must not be resurrected");
        pa.init_allocated(frame, flags::ANONYMOUS);
        assert!(page.try_get());
        assert_eq!(page.refcount(), 2);
        assert!(!page.put());
        assert!(page.put(), "the last reference");
        assert!(!page.try_get());
        assert!(!page.try_pin());
    }

    #[test]
    fn pins_are_told_from_mappings() {
        let (pages, base) = array(1);
        let pa = PageArray::new(base, &pages);
        let frame = Frame::from_address(base).unwrap();
        let page = pa.init_allocated(frame, flags::ANONYMOUS);
        // Mapped once: the mapping's reference is the allocation's.
        page.map();
        assert!(page.only_mapped(0));
        // Collapse holds one reference of its own while it looks.
        page.get();
        assert!(page.only_mapped(1) && !page.maybe_pinned(1));
        // A GUP-fast pin makes collapse back off.
        assert!(page.try_pin());
        assert_eq!(page.refcount(), 2 + PIN_BIAS);
        assert!(page.maybe_pinned(1) && !page.only_mapped(1));
        // A plain extra reference (not a pin) is not mistaken for one.
        assert!(!page.unpin());
        page.get();
        assert!(!page.maybe_pinned(1) && !page.only_mapped(1));
    }

    #[test]
    #[should_panic(expected = "not pinned")]
    fn unpin_without_pin_panics() {
        let (pages, base) = array(1);
        let pa = PageArray::new(base, &pages);
        pa.init_allocated(Frame::from_address(base).unwrap(), 0).unpin();
    }

    /// A huge page pinned for n of its base pages at once (GUP-fast's huge
    /// PMD) carries n pins; dropping them together frees it when they were
    /// its last references, once.
    #[test]
    fn many_pins_at_once() {
        let (pages, base) = array(32);
        let pa = PageArray::new(base, &pages);
        let head = Frame::from_address(base).unwrap();
        pa.init_allocated(head, flags::ANONYMOUS);
        pa.make_compound(head, 5, flags::ANONYMOUS);
        let page = pa.frame(head).unwrap();
        assert!(page.try_pin_many(3));
        assert_eq!(page.refcount(), 1 + 3 * PIN_BIAS);
        assert!(page.maybe_pinned(0));
        // The count overflowing the refcount is refused, not wrapped.
        assert!(!page.try_pin_many(u32::MAX / PIN_BIAS + 1));
        assert_eq!(page.refcount(), 1 + 3 * PIN_BIAS);
        let tail = Frame::from_address(base + (9 << FRAME_SHIFT)).unwrap();
        let mut freed = Vec::new();
        pa.unpin_many(tail, 3, |h, o| freed.push((h, o)));
        assert_eq!(page.refcount(), 1);
        assert!(freed.is_empty(), "still mapped");
        // The mapping goes first: then the pins are the last references.
        assert!(page.try_pin_many(2));
        assert!(!page.put());
        pa.unpin_many(tail, 2, |h, o| freed.push((h, o)));
        assert_eq!(freed, [(head, 5)]);
        // A page with no references cannot be pinned.
        assert!(!page.try_pin_many(1));
    }

    #[test]
    fn compound_pages_share_the_head() {
        let (pages, base) = array(64);
        let pa = PageArray::new(base, &pages);
        let head = Frame::from_address(base + (32 << FRAME_SHIFT)).unwrap();
        pa.init_allocated(head, 0);
        pa.make_compound(head, 5, flags::ANONYMOUS);
        for i in 0..32u64 {
            let frame = Frame::from_address(head.address() + (i << FRAME_SHIFT)).unwrap();
            let counted = pa.head(frame).unwrap();
            assert!(core::ptr::eq(counted, pa.frame(head).unwrap()), "frame {i} does not resolve to its head");
        }
        assert_eq!(pa.frame(head).unwrap().flags(), flags::HEAD | flags::ANONYMOUS);
        let tail = Frame::from_address(head.address() + (7 << FRAME_SHIFT)).unwrap();
        assert_eq!(pa.frame(tail).unwrap().flags(), flags::TAIL | flags::ANONYMOUS);
        // A pin through any tail lands on the head.
        assert!(pa.head(tail).unwrap().try_pin());
        assert_eq!(pa.frame(head).unwrap().refcount(), 1 + PIN_BIAS);
        pa.clear_compound(head);
        assert!(core::ptr::eq(pa.head(tail).unwrap(), pa.frame(tail).unwrap()));
        // Outside the array.
        assert!(pa.frame(Frame::from_address(base + (64 << FRAME_SHIFT)).unwrap()).is_none());
        assert!(pa.frame(Frame::from_address(0).unwrap()).is_none());
    }
}
