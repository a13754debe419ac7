//! Radix TLB invalidations as data: which `tlbie`/`tlbiel` operands each flush of the
//! [`TlbFlush`](super::mmu::TlbFlush) interface issues, POWER9's errata fix-ups included.
//! The arch executes a [`Sequence`] with the barriers around it; keeping the choice here
//! lets host tests check what is emitted for each processor, which TCG cannot show (it
//! has none of the errata).
//!
//! Operands (Power ISA Book III, 6.11.3.2): RB = EPN | IS << 10 | AP << 5, RS = PID << 32,
//! PRS = 1 (process-scoped), R = 1 (radix), RIC 0/1/2 = TLB / page-walk cache / both.

use boot::processor::TlbieErrata;
use heapless::Vec;

use super::mmu::{Scope, SpaceId, KERNEL_SPACE};
use super::pagetable::PageSize;

/// What an invalidation drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ric {
    Tlb = 0,
    PageWalkCache = 1,
    All = 2,
}

/// IS: which entries RB selects.
pub const IS_VA: u64 = 0;
pub const IS_PID: u64 = 1;

/// One `tlbie` (or `tlbiel`), and whether a `ptesync` goes before it (the errata
/// fix-ups' own barrier; the one before the whole sequence is the executor's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalidation {
    pub rb: u64,
    pub rs: u64,
    pub ric: Ric,
    pub ptesync_before: bool,
}

/// Above this many pages a range flush becomes a PID flush (as Linux's
/// tlb_single_page_flush_ceiling).
pub const RANGE_CEILING_PAGES: u64 = 32;

/// The longest sequence: the page-walk cache, 32 pages, two fix-ups.
pub const MAX_SEQUENCE: usize = 1 + RANGE_CEILING_PAGES as usize + 2;
pub type Sequence = Vec<Invalidation, MAX_SEQUENCE>;

/// AP (actual page size) encodings (`ibm,processor-radix-AP-encodings`).
pub fn ap(size: PageSize) -> u64 {
    match size {
        PageSize::Base => 5,
        PageSize::Huge2M => 1,
        PageSize::Huge1G => 2,
    }
}

pub fn by_address(address: u64, size: PageSize, pid: SpaceId, ric: Ric) -> Invalidation {
    Invalidation {
        rb: (address & !0xfff) | (IS_VA << 10) | (ap(size) << 5),
        rs: (pid as u64) << 32,
        ric,
        ptesync_before: false,
    }
}

pub fn by_pid(pid: SpaceId, ric: Ric) -> Invalidation {
    Invalidation { rb: (IS_PID << 10) | (ap(PageSize::Base) << 5), rs: (pid as u64) << 32, ric, ptesync_before: false }
}

/// The address the store-queue fix-up of a PID flush names: any will do, Linux picks
/// the last 64K page below 2^52, which is probably unused.
const UNUSED_ADDRESS: u64 = (1 << 52) - 1;

/// What a flush issues, for one processor's errata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planner {
    pub errata: TlbieErrata,
}

impl Planner {
    /// Broadcast invalidations get the errata fix-ups; local ones (`tlbiel`) need none.
    fn fixups(&self, scope: Scope) -> TlbieErrata {
        match scope {
            Scope::Global => self.errata,
            Scope::Local => TlbieErrata::default(),
        }
    }

    /// fixup_tlbie_va(_range): after invalidations by address, the last one again, with
    /// PID 0 for the ERAT bug and with its own PID for the store-queue bug.
    fn after_by_address(&self, sequence: &mut Sequence, scope: Scope, last: Invalidation) {
        let errata = self.fixups(scope);
        if errata.erat {
            push(sequence, Invalidation { rs: 0, ric: Ric::Tlb, ptesync_before: true, ..last });
        }
        if errata.store_queue {
            push(sequence, Invalidation { ric: Ric::Tlb, ptesync_before: true, ..last });
        }
    }

    /// fixup_tlbie_pid: after a PID flush of the TLB, PID 0's TLB for the ERAT bug and
    /// an invalidation by an unused address of the PID for the store-queue bug. A flush
    /// of the page-walk cache alone gets none (as Linux's _tlbie_pid with RIC_FLUSH_PWC).
    fn after_by_pid(&self, sequence: &mut Sequence, scope: Scope, pid: SpaceId, ric: Ric) {
        let errata = self.fixups(scope);
        if ric == Ric::PageWalkCache {
            return;
        }
        if errata.erat {
            push(sequence, Invalidation { ptesync_before: true, ..by_pid(KERNEL_SPACE, Ric::Tlb) });
        }
        if errata.store_queue {
            let unused = by_address(UNUSED_ADDRESS, PageSize::Base, pid, Ric::Tlb);
            push(sequence, Invalidation { ptesync_before: true, ..unused });
        }
    }

    /// Every translation and cached table of address space `space`.
    pub fn space(&self, space: SpaceId, scope: Scope) -> Sequence {
        let mut sequence = Sequence::new();
        push(&mut sequence, by_pid(space, Ric::All));
        self.after_by_pid(&mut sequence, scope, space, Ric::All);
        sequence
    }

    /// The page-walk cache of `space`.
    pub fn page_walk_cache(&self, space: SpaceId, scope: Scope) -> Sequence {
        let mut sequence = Sequence::new();
        push(&mut sequence, by_pid(space, Ric::PageWalkCache));
        self.after_by_pid(&mut sequence, scope, space, Ric::PageWalkCache);
        sequence
    }

    /// `pages` pages of `size` from `start`. An invalidation by address can only name a
    /// quadrant-0 address when it is process-scoped (the EA's top two bits 0): kernel
    /// addresses are in quadrant 3, so the kernel's space is flushed whole, as Linux's
    /// radix__flush_tlb_kernel_range (`_tlbie_pid(0, RIC_FLUSH_ALL)`). Beyond the
    /// ceiling a range becomes a PID flush.
    pub fn range(&self, space: SpaceId, start: u64, size: PageSize, pages: u64, scope: Scope) -> Sequence {
        if space == KERNEL_SPACE || pages > RANGE_CEILING_PAGES {
            return self.space(space, scope);
        }
        let mut sequence = Sequence::new();
        let first = start & !(size.bytes() - 1);
        for page in 0..pages {
            push(&mut sequence, by_address(first + page * size.bytes(), size, space, Ric::Tlb));
        }
        if let Some(&last) = sequence.last() {
            self.after_by_address(&mut sequence, scope, last);
        }
        sequence
    }

    pub fn page(&self, space: SpaceId, address: u64, size: PageSize, scope: Scope) -> Sequence {
        self.range(space, address, size, 1, scope)
    }

    /// As Linux's radix__flush_tlb_collapsed_pmd with 64K pages: the page-walk cache of
    /// the PID, then each base page of the 2 MiB range, then the fix-ups of the range.
    pub fn collapsed_pmd(&self, space: SpaceId, address: u64, scope: Scope) -> Sequence {
        if space == KERNEL_SPACE {
            return self.space(space, scope);
        }
        let mut sequence = Sequence::new();
        push(&mut sequence, by_pid(space, Ric::PageWalkCache));
        let start = address & !(PageSize::Huge2M.bytes() - 1);
        let mut page = start;
        while page < start + PageSize::Huge2M.bytes() {
            push(&mut sequence, by_address(page, PageSize::Base, space, Ric::Tlb));
            page += PageSize::Base.bytes();
        }
        let last = by_address(page - PageSize::Base.bytes(), PageSize::Base, space, Ric::Tlb);
        self.after_by_address(&mut sequence, scope, last);
        sequence
    }
}

fn push(sequence: &mut Sequence, invalidation: Invalidation) {
    sequence.push(invalidation).expect("MAX_SEQUENCE covers every flush");
}

#[cfg(test)]
mod tests {
    use super::*;
    use boot::processor::Processor;

    fn planner(pvr: u32) -> Planner {
        Planner { errata: Processor::from_pvr(pvr).unwrap().tlbie_errata() }
    }
    const POWER9_DD22: u32 = 0x004e_1202;
    const POWER9_DD23: u32 = 0x004e_0203;
    const POWER10: u32 = 0x0080_1200;
    const USER: u64 = 0x0000_1000_0000_0000;

    fn va(address: u64, pid: SpaceId, ric: Ric, ptesync_before: bool) -> Invalidation {
        Invalidation { ptesync_before, ..by_address(address, PageSize::Base, pid, ric) }
    }

    #[test]
    fn operands() {
        let i = by_address(0x1234_5678, PageSize::Huge2M, 7, Ric::Tlb);
        assert_eq!(i.rb, 0x1234_5000 | (1 << 5));
        assert_eq!(i.rs, 7 << 32);
        assert_eq!(by_pid(9, Ric::All).rb, (1 << 10) | (5 << 5));
    }

    #[test]
    fn power10_page_flush_is_one_tlbie() {
        let s = planner(POWER10).page(3, USER, PageSize::Base, Scope::Global);
        assert_eq!(s.as_slice(), &[va(USER, 3, Ric::Tlb, false)]);
    }

    #[test]
    fn power9_page_flush_repeats_for_erat_and_store_queue() {
        let s = planner(POWER9_DD22).page(3, USER, PageSize::Base, Scope::Global);
        assert_eq!(
            s.as_slice(),
            &[va(USER, 3, Ric::Tlb, false), va(USER, 0, Ric::Tlb, true), va(USER, 3, Ric::Tlb, true)]
        );
        // DD2.3 fixed the store-queue bug, not the ERAT one.
        let s = planner(POWER9_DD23).page(3, USER, PageSize::Base, Scope::Global);
        assert_eq!(s.as_slice(), &[va(USER, 3, Ric::Tlb, false), va(USER, 0, Ric::Tlb, true)]);
    }

    #[test]
    fn local_flushes_need_no_fixups() {
        let p9 = planner(POWER9_DD22);
        assert_eq!(p9.page(3, USER, PageSize::Base, Scope::Local).len(), 1);
        assert_eq!(p9.space(3, Scope::Local).as_slice(), &[by_pid(3, Ric::All)]);
        assert_eq!(p9.collapsed_pmd(3, USER, Scope::Local).len(), 33);
    }

    #[test]
    fn power9_pid_flush_fixups() {
        let s = planner(POWER9_DD22).space(5, Scope::Global);
        let unused = va(0x000f_ffff_ffff_f000, 5, Ric::Tlb, true);
        assert_eq!(
            s.as_slice(),
            &[by_pid(5, Ric::All), Invalidation { ptesync_before: true, ..by_pid(0, Ric::Tlb) }, unused]
        );
        // The page-walk cache alone: none.
        assert_eq!(planner(POWER9_DD22).page_walk_cache(5, Scope::Global).as_slice(), &[by_pid(5, Ric::PageWalkCache)]);
    }

    #[test]
    fn range_fixups_name_the_last_page() {
        let s = planner(POWER9_DD22).range(4, USER, PageSize::Base, 3, Scope::Global);
        let last = USER + 2 * PageSize::Base.bytes();
        assert_eq!(s.len(), 5);
        assert_eq!(s[2], va(last, 4, Ric::Tlb, false));
        assert_eq!(&s[3..], &[va(last, 0, Ric::Tlb, true), va(last, 4, Ric::Tlb, true)]);
        // Beyond the ceiling: the PID, with the PID fix-ups.
        let s = planner(POWER9_DD22).range(4, USER, PageSize::Base, 33, Scope::Global);
        assert_eq!(s[0], by_pid(4, Ric::All));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn kernel_addresses_are_flushed_as_all_of_pid_0() {
        for planner in [planner(POWER10), planner(POWER9_DD22)] {
            let kernel = 0xc000_0000_1234_0000;
            for s in [
                planner.page(KERNEL_SPACE, kernel, PageSize::Base, Scope::Global),
                planner.range(KERNEL_SPACE, kernel, PageSize::Huge2M, 2, Scope::Global),
                planner.collapsed_pmd(KERNEL_SPACE, kernel, Scope::Global),
            ] {
                assert_eq!(s[0], by_pid(KERNEL_SPACE, Ric::All));
                // No invalidation by address outside quadrant 0.
                assert!(s.iter().all(|i| i.rb & (1 << 10) != 0 || i.rb >> 62 == 0), "{s:?}");
            }
        }
    }

    #[test]
    fn collapsed_pmd_is_pwc_then_each_page_then_fixups() {
        let s = planner(POWER9_DD22).collapsed_pmd(6, USER + 0x12_3456, Scope::Global);
        assert_eq!(s.len(), MAX_SEQUENCE);
        assert_eq!(s[0], by_pid(6, Ric::PageWalkCache));
        assert_eq!(s[1], va(USER, 6, Ric::Tlb, false));
        let last = USER + PageSize::Huge2M.bytes() - PageSize::Base.bytes();
        assert_eq!(s[32], va(last, 6, Ric::Tlb, false));
        assert_eq!(&s[33..], &[va(last, 0, Ric::Tlb, true), va(last, 6, Ric::Tlb, true)]);
        assert_eq!(planner(POWER10).collapsed_pmd(6, USER, Scope::Global).len(), 33);
    }
}
