//! A hashed page table the kernel owns: on bare metal (powernv) the kernel is
//! the hypervisor, the MMU reads the HPT from RAM and nobody else writes it,
//! so the kernel does itself what a hypervisor does for a partition (the
//! operations of Linux's hash_native.c).
//!
//! This module is the table logic over a slice of atomics: which slot an
//! entry goes to, the per-entry lock, the ISA 3.0 format, which translations
//! to invalidate. The barriers and `tlbie`s are [`Step`]s that a [`Hardware`]
//! executes: the arch with instructions, the host tests with a recorder that
//! can look at the table at each step.
//!
//! The table is two big-endian doublewords per entry (the MMU reads it that
//! way whatever the kernel's byte order), so every access byte-swaps on a
//! little-endian kernel. Entries are given and returned in the old
//! (pre-ISA 3.0) format of `kernel::mm::hash` and converted at the table.
//!
//! Locking (Linux native_lock_hpte): dword 0's software bit `v::LOCK`, taken
//! with an atomic OR (Acquire) and released by the store that ends the
//! update (Release): the store of a new dword 0 (insert, remove) or an
//! atomic AND (protect, or giving up). The MMU ignores software bits and
//! never writes dword 0, so the lock only orders software against software.
//! A lock holder that validates an entry stores dword 1 first, then `eieio`,
//! then dword 0, so the MMU never finds a valid dword 0 with a stale dword 1
//! (Power ISA Book III, "Page Table Update Synchronization Requirements"),
//! then `ptesync` so later accesses may use it.
//!
//! Invalidation: removing or reprotecting an entry ends with a broadcast
//! `tlbie` of its VPN, even when the entry was no longer there (as Linux
//! native_hpte_invalidate and native_hpte_updatepp do): an entry evicted
//! from a full group is dropped without one, so the TLB may still hold its
//! translation. The VPN comes from the caller's `v` and the slot
//! (`hash::decode_vpn`), not from the table.
//!
//! Reference and change bits: the MMU may set R and C in dword 1 of an
//! entry it uses, racing with software. What makes that harmless is that
//! the kernel never reads them back and never needs them set by the MMU:
//! `hash::encode_r` sets both at insert, so the MMU has nothing to record
//! (it need not store R or C that are already 1). Protect still changes only
//! PP0, PP and N, by compare-and-swap on dword 1, so it never writes back a
//! stale copy of the rest (an MMU update between its load and its store,
//! if the processor makes one, cancels the reservation and the loop
//! retries); remove drops the entry whole, whatever R/C said.

use core::sync::atomic::{AtomicU64, Ordering};

use boot::processor::{IsaLevel, TlbieErrata};
use heapless::Vec;

use super::hash::{self as hpt, SegmentSize, HPTES_PER_GROUP};
pub use super::mmu::Scope;

/// The layout of entries in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Power ISA 2.07 and earlier: the format `kernel::mm::hash` builds.
    Isa207,
    /// Power ISA 3.0 (POWER9 on): B in dword 1 (`hash::to_isa300`).
    Isa300,
}

impl Format {
    /// What a processor of `isa` reads.
    pub fn of(isa: IsaLevel) -> Format {
        if isa >= IsaLevel::V3_00 {
            Format::Isa300
        } else {
            Format::Isa207
        }
    }
}

/// Why a table operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeError {
    /// All eight slots of the group are valid.
    GroupFull,
    /// The slot does not hold a valid entry with the caller's AVPN.
    NotFound,
    /// The slot is beyond the table, or a group start is not one.
    BadSlot,
    /// The entry cannot be written in the table's format (an AVPN for a VA
    /// wider than 68 bits, or RPN bits where ISA 3.0 keeps B).
    BadEntry,
}

/// One barrier or invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `eieio`: the dword-1 store before the dword-0 store, for the MMU.
    Eieio,
    /// `ptesync`: table stores done before what follows (accesses, `tlbie`).
    Ptesync,
    /// `tlbie RB, RS = 0, RIC = 0, PRS = 0, R = 0`: the hash translation RB
    /// names (`hash::tlbie_rb`), in LPID 0 (the host, which the kernel is).
    TlbieHash { rb: u64 },
    /// `tlbie RB, RS = 0, RIC = 0, PRS = 0, R = 1`: POWER9's ERAT fix-up,
    /// every TLB entry of LPID 0 (RB = IS 2, `ERAT_FIXUP_RB`).
    TlbieRadixLpid { rb: u64 },
    /// `eieio; tlbsync; ptesync`: every CPU has finished the invalidations.
    EndBroadcast,
    /// `tlbiel RB, RS = 0, RIC = 0, PRS = 0, R = 0`: drops the hash
    /// translation RB names from this CPU's TLB only.
    TlbielHash { rb: u64 },
}

/// RB of the ERAT fix-up: IS = 2 (bits 10..11, counted from the least
/// significant; Linux's PPC_BIT(52)), all entries of the LPID in RS.
pub const ERAT_FIXUP_RB: u64 = 2 << 10;

/// What executes [`Step`]s.
pub trait Hardware {
    fn execute(&self, step: Step);
}

/// Entries one invalidation sequence covers (Linux batches a flush the same
/// way; four is what `HpteOps::remove_four` hands over).
pub const MAX_BATCH: usize = 4;
/// The longest sequence: `ptesync`, the batch, two fix-ups with their
/// `ptesync`s, the end.
pub const MAX_STEPS: usize = 1 + MAX_BATCH + 2 + 2 + 1;
pub type Steps = Vec<Step, MAX_STEPS>;

/// The broadcast invalidation of the translations `rbs` name, with POWER9's
/// fix-ups after the last one (Linux fixup_tlbie_vpn, as in its
/// native_flush_hash_range): for the ERAT bug a radix-format invalidation of
/// all of LPID 0, for the store-queue bug the last invalidation again, each
/// after a `ptesync` so it cannot be reordered before the ones it repairs.
///
/// With `Scope::Local` (only this CPU used the address space) the same
/// translations go from this CPU's TLB only: `ptesync`, `tlbiel` each,
/// `ptesync` (Linux's native flush with `local`); the errata concern only
/// broadcasts.
pub fn invalidation(rbs: &[u64], errata: TlbieErrata, scope: Scope) -> Steps {
    let mut steps = Steps::new();
    let Some(&last) = rbs.last() else { return steps };
    let mut push = |step| steps.push(step).expect("MAX_STEPS covers a batch of MAX_BATCH");
    push(Step::Ptesync);
    if scope == Scope::Local {
        for &rb in rbs {
            push(Step::TlbielHash { rb });
        }
        push(Step::Ptesync);
        return steps;
    }
    for &rb in rbs {
        push(Step::TlbieHash { rb });
    }
    if errata.erat {
        push(Step::Ptesync);
        push(Step::TlbieRadixLpid { rb: ERAT_FIXUP_RB });
    }
    if errata.store_queue {
        push(Step::Ptesync);
        push(Step::TlbieHash { rb: last });
    }
    push(Step::EndBroadcast);
    steps
}

/// The lock bit as the table holds it (big-endian).
const LOCK_RAW: u64 = hpt::v::LOCK.to_be();
/// What a removal or reprotection compares: all of dword 0 but its low seven
/// bits (AVPN and B; as Linux HPTE_V_COMPARE).
const AVPN_COMPARE: u64 = !0x7f;
/// What protect changes in dword 1.
const RIGHTS: u64 = hpt::r::PP0 | hpt::r::PP_MASK | hpt::r::N;

fn get(word: &AtomicU64, order: Ordering) -> u64 {
    u64::from_be(word.load(order))
}

fn put(word: &AtomicU64, value: u64, order: Ordering) {
    word.store(value.to_be(), order)
}

/// Spins until this CPU holds the lock of the entry whose dword 0 is `d0`.
fn lock(d0: &AtomicU64) {
    loop {
        if d0.fetch_or(LOCK_RAW, Ordering::Acquire) & LOCK_RAW == 0 {
            return;
        }
        // Wait with loads, not with more atomic ORs that would take the
        // line away from the holder.
        while d0.load(Ordering::Relaxed) & LOCK_RAW != 0 {
            core::hint::spin_loop();
        }
    }
}

fn unlock(d0: &AtomicU64) {
    d0.fetch_and(!LOCK_RAW, Ordering::Release);
}

fn same_page(a: u64, b: u64) -> bool {
    (a ^ b) & AVPN_COMPARE == 0
}

/// An HPT in memory the kernel owns, as `words` (two per entry).
pub struct NativeTable<'a, H> {
    words: &'a [AtomicU64],
    format: Format,
    errata: TlbieErrata,
    hash_mask: u64,
    hardware: H,
}

impl<'a, H: Hardware> NativeTable<'a, H> {
    /// `words` is the whole table: a power of two of groups of eight
    /// entries. `errata` are the invalidation fix-ups of the processor.
    pub fn new(words: &'a [AtomicU64], format: Format, errata: TlbieErrata, hardware: H) -> Self {
        let group_words = 2 * HPTES_PER_GROUP as usize;
        let groups = words.len() / group_words;
        assert!(
            groups.is_power_of_two() && groups * group_words == words.len(),
            "an HPT is a power of two of groups ({} dwords)",
            words.len()
        );
        NativeTable { words, format, errata, hash_mask: groups as u64 - 1, hardware }
    }

    /// Slots in the table (entries, valid or not).
    pub fn slots(&self) -> u64 {
        self.words.len() as u64 / 2
    }

    pub fn hash_mask(&self) -> u64 {
        self.hash_mask
    }

    /// The `tlbie` fix-ups its invalidations apply.
    pub fn errata(&self) -> TlbieErrata {
        self.errata
    }

    pub fn hardware(&self) -> &H {
        &self.hardware
    }

    /// Dwords 0 and 1 of slot `ptex`.
    fn entry(&self, ptex: u64) -> Result<(&'a AtomicU64, &'a AtomicU64), NativeError> {
        if ptex >= self.slots() {
            return Err(NativeError::BadSlot);
        }
        let first = ptex as usize * 2;
        Ok((&self.words[first], &self.words[first + 1]))
    }

    fn encode_entry(&self, v: u64, r: u64) -> (u64, u64) {
        match self.format {
            Format::Isa207 => (v, r),
            Format::Isa300 => hpt::to_isa300(v, r),
        }
    }

    /// An entry read from the table in the old format, without the lock bit.
    fn decode_entry(&self, v: u64, r: u64) -> (u64, u64) {
        let (v, r) = match self.format {
            Format::Isa207 => (v, r),
            Format::Isa300 => hpt::from_isa300(v, r),
        };
        (v & !hpt::v::LOCK, r)
    }

    /// Whether converting loses nothing (the conversion drops those bits).
    fn can_hold(&self, v: u64, r: u64) -> bool {
        match self.format {
            Format::Isa207 => true,
            Format::Isa300 => {
                v & hpt::v::AVPN_MASK & !hpt::isa300::V_COMMON_BITS == 0 && r & hpt::isa300::R_SSIZE_MASK == 0
            }
        }
    }

    /// Puts `(v, r)` (old format; VALID is added) into the first free slot
    /// of the group starting at `group_ptex`; returns the slot.
    pub fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, NativeError> {
        if !group_ptex.is_multiple_of(HPTES_PER_GROUP) {
            return Err(NativeError::BadSlot);
        }
        self.entry(group_ptex)?;
        if !self.can_hold(v, r) {
            return Err(NativeError::BadEntry);
        }
        // The final store writes this dword 0, which also drops the lock.
        let (new_v, new_r) = self.encode_entry((v | hpt::v::VALID) & !hpt::v::LOCK, r);
        for ptex in group_ptex..group_ptex + HPTES_PER_GROUP {
            let (d0, d1) = self.entry(ptex)?;
            // A look without the lock skips valid slots cheaply; the look
            // under it decides.
            if get(d0, Ordering::Relaxed) & hpt::v::VALID != 0 {
                continue;
            }
            lock(d0);
            if get(d0, Ordering::Relaxed) & hpt::v::VALID != 0 {
                unlock(d0);
                continue;
            }
            put(d1, new_r, Ordering::Relaxed);
            self.hardware.execute(Step::Eieio);
            put(d0, new_v, Ordering::Release);
            self.hardware.execute(Step::Ptesync);
            return Ok(ptex);
        }
        Err(NativeError::GroupFull)
    }

    /// Empties slot `ptex` if it holds `v`'s page, under the entry's lock;
    /// returns what it held.
    fn take(&self, d0: &AtomicU64, d1: &AtomicU64, v: u64) -> Option<(u64, u64)> {
        lock(d0);
        let (old_v, old_r) = self.decode_entry(get(d0, Ordering::Relaxed), get(d1, Ordering::Relaxed));
        if old_v & hpt::v::VALID != 0 && same_page(old_v, v) {
            // Zero, lock bit included: the entry is free and unlocked.
            put(d0, 0, Ordering::Release);
            Some((old_v, old_r))
        } else {
            unlock(d0);
            None
        }
    }

    /// Removes the entry at `ptex` if it is `v`'s page (AVPN and B equal),
    /// returning it; invalidates `v`'s translation either way, in `scope`.
    pub fn remove(&self, ptex: u64, v: u64, scope: Scope) -> Result<(u64, u64), NativeError> {
        let (d0, d1) = self.entry(ptex)?;
        let taken = self.take(d0, d1, v);
        self.invalidate(&[(ptex, v)], scope);
        taken.ok_or(NativeError::NotFound)
    }

    /// Removes `(ptex, v)` entries as `remove` does, with one invalidation
    /// sequence per `MAX_BATCH` of them; the first error, after trying all.
    pub fn remove_batch(&self, entries: &[(u64, u64)], scope: Scope) -> Result<(), NativeError> {
        let mut result = Ok(());
        for chunk in entries.chunks(MAX_BATCH) {
            let mut in_table = Vec::<(u64, u64), MAX_BATCH>::new();
            for &(ptex, v) in chunk {
                let outcome = self.entry(ptex).map(|(d0, d1)| self.take(d0, d1, v));
                match outcome {
                    Ok(taken) => {
                        in_table.push((ptex, v)).expect("chunks of MAX_BATCH");
                        if taken.is_none() {
                            result = result.and(Err(NativeError::NotFound));
                        }
                    }
                    Err(error) => result = result.and(Err(error)),
                }
            }
            self.invalidate(&in_table, scope);
        }
        result
    }

    /// Gives the entry at `ptex`, if it is `v`'s page, the PP0, PP and N
    /// bits of `r` and keeps the rest of its dword 1 (RPN, R, C, WIMG, B);
    /// invalidates `v`'s translation either way, so the old rights go.
    pub fn protect(&self, ptex: u64, v: u64, r: u64, scope: Scope) -> Result<(), NativeError> {
        let (d0, d1) = self.entry(ptex)?;
        lock(d0);
        let (old_v, _) = self.decode_entry(get(d0, Ordering::Relaxed), get(d1, Ordering::Relaxed));
        let found = old_v & hpt::v::VALID != 0 && same_page(old_v, v);
        if found {
            // PP0, PP and N are where they are in both formats.
            let mut raw = d1.load(Ordering::Relaxed);
            loop {
                let new = (u64::from_be(raw) & !RIGHTS) | (r & RIGHTS);
                match d1.compare_exchange_weak(raw, new.to_be(), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(seen) => raw = seen,
                }
            }
        }
        unlock(d0);
        self.invalidate(&[(ptex, v)], scope);
        if found {
            Ok(())
        } else {
            Err(NativeError::NotFound)
        }
    }

    /// The entry at `ptex` in the old format, lock bit clear. Without the
    /// lock: dword 0 is read again after dword 1, and a change between
    /// (an insert, removal or reprotection) makes it read both again, so
    /// the pair was in the table together unless the slot went through a
    /// removal and an insert of the same dword 0 in between, when dword 1
    /// is the new entry's. Callers use what they read as a hint (a victim
    /// to evict, an entry to remove) and name it to `remove`, which
    /// compares under the lock.
    pub fn read(&self, ptex: u64) -> Result<(u64, u64), NativeError> {
        let (d0, d1) = self.entry(ptex)?;
        loop {
            let v = d0.load(Ordering::Acquire);
            // Acquire: the second load of dword 0 cannot be satisfied first.
            let r = d1.load(Ordering::Acquire);
            if d0.load(Ordering::Relaxed) == v {
                return Ok(self.decode_entry(u64::from_be(v), u64::from_be(r)));
            }
            core::hint::spin_loop();
        }
    }

    /// Invalidates the translations of `(ptex, v)` pairs (at most
    /// MAX_BATCH): a `v` with a reserved segment size names none.
    fn invalidate(&self, entries: &[(u64, u64)], scope: Scope) {
        let mut rbs = Vec::<u64, MAX_BATCH>::new();
        for &(ptex, v) in entries {
            let Some(segment) = SegmentSize::from_b_field(v >> hpt::v::SSIZE_SHIFT) else { continue };
            let Some(vpn) = hpt::decode_vpn(v, ptex, self.hash_mask) else { continue };
            rbs.push(hpt::tlbie_rb(vpn, segment)).expect("at most MAX_BATCH entries");
        }
        for step in invalidation(&rbs, self.errata, scope) {
            self.hardware.execute(step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::hash::{encode_r, encode_v, hash, r, v, vpn, HptGeometry, PAGE_SHIFT};
    use boot::processor::Processor;
    use proptest::prelude::*;
    use std::sync::Mutex;
    use std::vec::Vec as StdVec;

    /// 128 groups: the smallest table `decode_vpn` finds every page back in.
    const SIZE_LOG2: u32 = 14;
    const GROUPS: u64 = (1 << SIZE_LOG2) / hpt::PTEG_BYTES;
    const POWER9_DD22: u32 = 0x004e_1202;
    const POWER9_DD23: u32 = 0x004e_0203;
    const POWER10: u32 = 0x0080_1200;

    fn errata(pvr: u32) -> TlbieErrata {
        Processor::from_pvr(pvr).unwrap().tlbie_errata()
    }

    fn memory() -> StdVec<AtomicU64> {
        (0..(1 << SIZE_LOG2) / 8).map(|_| AtomicU64::new(0)).collect()
    }

    /// Records each step with the table's words as they were then.
    struct Recorder<'t> {
        words: &'t [AtomicU64],
        log: Mutex<StdVec<(Step, StdVec<u64>)>>,
    }

    impl<'t> Recorder<'t> {
        fn new(words: &'t [AtomicU64]) -> Self {
            Recorder { words, log: Mutex::new(StdVec::new()) }
        }

        fn steps(&self) -> StdVec<Step> {
            self.log.lock().unwrap().iter().map(|(step, _)| *step).collect()
        }

        fn clear(&self) {
            self.log.lock().unwrap().clear();
        }
    }

    impl Hardware for &Recorder<'_> {
        fn execute(&self, step: Step) {
            let snapshot = self.words.iter().map(|w| w.load(Ordering::Relaxed)).collect();
            self.log.lock().unwrap().push((step, snapshot));
        }
    }

    /// Executes nothing: the threaded tests look at the table only.
    struct Quiet;
    impl Hardware for Quiet {
        fn execute(&self, _step: Step) {}
    }

    fn table<'t>(words: &'t [AtomicU64], recorder: &'t Recorder<'t>, pvr: u32) -> NativeTable<'t, &'t Recorder<'t>> {
        NativeTable::new(words, Format::Isa300, errata(pvr), recorder)
    }

    /// A 1T page of the kernel's kind: (vpn, v, r).
    fn page(vsid: u64, ea: u64) -> (u64, u64, u64) {
        let n = vpn(vsid, ea, SegmentSize::T1);
        (n, encode_v(n, SegmentSize::T1), encode_r(0x0123_0000, true, false, true))
    }

    fn primary_group(vpn: u64) -> u64 {
        HptGeometry { size_log2: SIZE_LOG2 }.group_slot(hash(vpn, PAGE_SHIFT, SegmentSize::T1), false)
    }

    fn no_lock_bits(words: &[AtomicU64]) -> bool {
        words.iter().step_by(2).all(|w| w.load(Ordering::Relaxed) & LOCK_RAW == 0)
    }

    fn broadcast(rb: u64) -> StdVec<Step> {
        std::vec![Step::Ptesync, Step::TlbieHash { rb }, Step::EndBroadcast]
    }

    #[test]
    fn insert_fills_a_group_then_reports_it_full() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let group = 5 * HPTES_PER_GROUP;
        for i in 0..HPTES_PER_GROUP {
            let (_, hv, hr) = page(0x1000 + i, 0);
            assert_eq!(t.insert(group, hv, hr), Ok(group + i));
        }
        let (_, hv, hr) = page(0x2000, 0);
        assert_eq!(t.insert(group, hv, hr), Err(NativeError::GroupFull));
        // The neighbours are untouched and nothing stays locked.
        assert!(words[..(group * 2) as usize].iter().all(|w| w.load(Ordering::Relaxed) == 0));
        assert!(words[((group + HPTES_PER_GROUP) * 2) as usize..].iter().all(|w| w.load(Ordering::Relaxed) == 0));
        assert!(no_lock_bits(&words));
    }

    #[test]
    fn insert_takes_the_first_free_slot_of_a_partial_group() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let group = 9 * HPTES_PER_GROUP;
        for i in 0..4 {
            let (_, hv, hr) = page(0x3000 + i, 0);
            t.insert(group, hv, hr).unwrap();
        }
        let (_, hv1, _) = page(0x3001, 0);
        t.remove(group + 1, hv1, Scope::Global).unwrap();
        let (_, hv, hr) = page(0x4000, 0);
        assert_eq!(t.insert(group, hv, hr), Ok(group + 1));
        assert_eq!(t.insert(group, hv, hr), Ok(group + 4));
        assert!(no_lock_bits(&words));
    }

    /// The bytes in memory are the big-endian ISA 3.0 entry: B in dword 1
    /// bits 58..59, dword 0 below bit 52.
    #[test]
    fn entries_are_big_endian_in_the_isa300_format() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let (n, hv, hr) = page(0xea1b217, 0xc000_0000_0001_0000);
        let ptex = t.insert(primary_group(n), hv | v::BOLTED, hr).unwrap();
        let (new_v, new_r) = hpt::to_isa300(hv | v::BOLTED | v::VALID, hr);
        assert_eq!(new_v, 0x000e_a1b2_1700_0015);
        assert_eq!(new_r >> 58, 1);
        let d0 = words[ptex as usize * 2].load(Ordering::Relaxed).to_ne_bytes();
        let d1 = words[ptex as usize * 2 + 1].load(Ordering::Relaxed).to_ne_bytes();
        assert_eq!(d0, [0x00, 0x0e, 0xa1, 0xb2, 0x17, 0x00, 0x00, 0x15]);
        assert_eq!(d1, new_r.to_be_bytes());
        assert_eq!(t.read(ptex), Ok((hv | v::BOLTED | v::VALID, hr)));
        // A POWER8 table holds the old format as it is.
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = NativeTable::new(&words, Format::Isa207, TlbieErrata::default(), &recorder);
        let ptex = t.insert(0, hv, hr).unwrap();
        assert_eq!(words[ptex as usize * 2].load(Ordering::Relaxed), (hv | v::VALID).to_be());
        assert_eq!(words[ptex as usize * 2 + 1].load(Ordering::Relaxed), hr.to_be());
    }

    /// dword 1 is in the table before `eieio`, dword 0 (valid, unlocked)
    /// only after it, and `ptesync` follows.
    #[test]
    fn insert_stores_dword_1_then_eieio_then_dword_0() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let (n, hv, hr) = page(0x1234, 0x42_0000);
        let ptex = t.insert(primary_group(n), hv, hr).unwrap() as usize;
        let (new_v, new_r) = hpt::to_isa300(hv, hr);
        let log = recorder.log.lock().unwrap();
        assert_eq!(log.iter().map(|(s, _)| *s).collect::<StdVec<_>>(), [Step::Eieio, Step::Ptesync]);
        let at_eieio = &log[0].1;
        assert_eq!(at_eieio[ptex * 2 + 1], new_r.to_be());
        assert_eq!(u64::from_be(at_eieio[ptex * 2]), v::LOCK, "locked, not yet valid");
        let at_ptesync = &log[1].1;
        assert_eq!(at_ptesync[ptex * 2], new_v.to_be());
    }

    #[test]
    fn remove_returns_the_entry_and_invalidates_its_page() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let (n, hv, hr) = page(0x1ab_cdef, 0xfe_dcba_0000);
        let group = HptGeometry { size_log2: SIZE_LOG2 }.group_slot(hash(n, PAGE_SHIFT, SegmentSize::T1), true);
        let ptex = t.insert(group, hv | v::SECONDARY, hr).unwrap();
        recorder.clear();
        assert_eq!(t.remove(ptex, hv | v::SECONDARY, Scope::Global), Ok((hv | v::SECONDARY, hr)));
        assert_eq!(words[ptex as usize * 2].load(Ordering::Relaxed), 0);
        assert_eq!(recorder.steps(), broadcast(hpt::tlbie_rb(n, SegmentSize::T1)));
        // Gone: a second removal finds nothing, and still invalidates.
        recorder.clear();
        assert_eq!(t.remove(ptex, hv | v::SECONDARY, Scope::Global), Err(NativeError::NotFound));
        assert_eq!(recorder.steps(), broadcast(hpt::tlbie_rb(n, SegmentSize::T1)));
    }

    /// The slot now holds another page: it stays, unlocked, and the
    /// caller's page is invalidated anyway (its translation may outlive an
    /// eviction).
    #[test]
    fn remove_of_another_page_keeps_the_entry_but_invalidates() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let (a, hv_a, hr_a) = page(0x5555, 0x10_0000);
        let ptex = t.insert(primary_group(a), hv_a, hr_a).unwrap();
        // Same group bits, another AVPN: a page of another VSID.
        let (b, hv_b, _) = page(0x5555 ^ (1 << 20), 0x10_0000);
        recorder.clear();
        assert_eq!(t.remove(ptex, hv_b, Scope::Global), Err(NativeError::NotFound));
        assert_eq!(t.read(ptex), Ok((hv_a, hr_a)));
        assert!(no_lock_bits(&words));
        let steps = recorder.steps();
        assert_eq!(steps.len(), 3);
        // The RB is the caller's page as the slot decodes it: its AVPN bits,
        // the slot's group for the bits below 23.
        assert_eq!(hpt::decode_vpn(hv_b, ptex, t.hash_mask()), Some(b));
        assert_eq!(steps[1], Step::TlbieHash { rb: hpt::tlbie_rb(b, SegmentSize::T1) });
        // An invalid slot: nothing to match either.
        assert_eq!(t.remove(ptex + 1, hv_a, Scope::Global), Err(NativeError::NotFound));
    }

    #[test]
    fn protect_changes_only_pp_and_n() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let (n, hv, hr) = page(0x7777, 0x30_0000);
        let ptex = t.insert(primary_group(n), hv, hr).unwrap();
        // As if the MMU had left C clear (it sets only, but be general).
        let d1 = &words[ptex as usize * 2 + 1];
        d1.store((u64::from_be(d1.load(Ordering::Relaxed)) & !r::CHANGED).to_be(), Ordering::Relaxed);
        recorder.clear();
        let user_ro = encode_r(0x0999_0000, false, true, false);
        assert_eq!(t.protect(ptex, hv, user_ro, Scope::Global), Ok(()));
        let (_, now) = t.read(ptex).unwrap();
        assert_eq!(now & RIGHTS, user_ro & RIGHTS);
        assert_eq!(now & !RIGHTS, hr & !RIGHTS & !r::CHANGED, "RPN, R, M, LP kept; C as the table had it");
        assert_eq!(u64::from_be(d1.load(Ordering::Relaxed)) >> 58, 1, "B stays in dword 1");
        assert_eq!(recorder.steps(), broadcast(hpt::tlbie_rb(n, SegmentSize::T1)));
        assert!(no_lock_bits(&words));
    }

    #[test]
    fn protect_of_a_missing_entry_still_invalidates() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let (n, hv, hr) = page(0x7777, 0x30_0000);
        let ptex = primary_group(n) + 2;
        assert_eq!(t.protect(ptex, hv, hr, Scope::Global), Err(NativeError::NotFound));
        assert_eq!(recorder.steps(), broadcast(hpt::tlbie_rb(n, SegmentSize::T1)));
        assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
    }

    /// POWER9's fix-ups after the invalidation (Linux fixup_tlbie_vpn): the
    /// ERAT one on every POWER9, the store-queue one before Nimbus DD2.3.
    #[test]
    fn power9_invalidations_get_the_errata_fixups() {
        let (n, hv, hr) = page(0x1234, 0x42_0000);
        let rb = hpt::tlbie_rb(n, SegmentSize::T1);
        let erat = [Step::Ptesync, Step::TlbieRadixLpid { rb: ERAT_FIXUP_RB }];
        let store_queue = [Step::Ptesync, Step::TlbieHash { rb }];
        for (pvr, fixups) in [
            (POWER9_DD22, [&erat[..], &store_queue[..]].concat()),
            (POWER9_DD23, erat.to_vec()),
            (POWER10, StdVec::new()),
        ] {
            let words = memory();
            let recorder = Recorder::new(&words);
            let t = table(&words, &recorder, pvr);
            let ptex = t.insert(primary_group(n), hv, hr).unwrap();
            recorder.clear();
            t.remove(ptex, hv, Scope::Global).unwrap();
            let expected =
                [&[Step::Ptesync, Step::TlbieHash { rb }][..], &fixups[..], &[Step::EndBroadcast][..]].concat();
            assert_eq!(recorder.steps(), expected, "PVR {pvr:#x}");
        }
        assert_eq!(ERAT_FIXUP_RB, 1 << (63 - 52), "PPC_BIT(52)");
    }

    /// Where only this CPU used the space, removal and reprotection drop the
    /// translation from this CPU's TLB alone: `tlbiel` between `ptesync`s,
    /// no broadcast, no fix-ups (they repair broadcasts), even on a POWER9
    /// with both errata; a batch is one such sequence.
    #[test]
    fn local_scope_invalidates_with_tlbiel_only() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER9_DD22);
        let (n, hv, hr) = page(0x1234, 0x42_0000);
        let rb = hpt::tlbie_rb(n, SegmentSize::T1);
        let local = [Step::Ptesync, Step::TlbielHash { rb }, Step::Ptesync];
        let ptex = t.insert(primary_group(n), hv, hr).unwrap();
        recorder.clear();
        t.protect(ptex, hv, hr & !r::PP_MASK, Scope::Local).unwrap();
        assert_eq!(recorder.steps(), local);
        recorder.clear();
        t.remove(ptex, hv, Scope::Local).unwrap();
        assert_eq!(recorder.steps(), local);
        let mut entries = StdVec::new();
        let mut steps = StdVec::from([Step::Ptesync]);
        for i in 0..3u64 {
            let (n, hv, hr) = page(0x200 + i, i << 16);
            entries.push((t.insert(primary_group(n), hv, hr).unwrap(), hv));
            steps.push(Step::TlbielHash { rb: hpt::tlbie_rb(n, SegmentSize::T1) });
        }
        steps.push(Step::Ptesync);
        recorder.clear();
        t.remove_batch(&entries, Scope::Local).unwrap();
        assert_eq!(recorder.steps(), steps);
    }

    /// Six removals: one invalidation sequence with four `tlbie`s and one set
    /// of fix-ups (after the last), then one for the other two; a missing
    /// entry is reported after all were tried, and still invalidated.
    #[test]
    fn remove_batch_invalidates_four_at_a_time() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER9_DD22);
        let mut entries = StdVec::new();
        let mut rbs = StdVec::new();
        for i in 0..5u64 {
            let (n, hv, hr) = page(0x100 + i, i << 16);
            entries.push((t.insert(primary_group(n), hv, hr).unwrap(), hv));
            rbs.push(hpt::tlbie_rb(n, SegmentSize::T1));
        }
        let (missing_n, missing_v, _) = page(0x999, 0);
        entries.insert(2, (primary_group(missing_n), missing_v));
        rbs.insert(2, hpt::tlbie_rb(missing_n, SegmentSize::T1));
        recorder.clear();
        assert_eq!(t.remove_batch(&entries, Scope::Global), Err(NativeError::NotFound));
        // Removal zeroes dword 0 (dword 1 stays until the slot is reused).
        assert!(words.iter().step_by(2).all(|w| w.load(Ordering::Relaxed) == 0), "all five removed");
        let tail = |last| {
            std::vec![
                Step::Ptesync,
                Step::TlbieRadixLpid { rb: ERAT_FIXUP_RB },
                Step::Ptesync,
                Step::TlbieHash { rb: last },
                Step::EndBroadcast
            ]
        };
        let mut expected = std::vec![Step::Ptesync];
        expected.extend(rbs[..4].iter().map(|&rb| Step::TlbieHash { rb }));
        expected.extend(tail(rbs[3]));
        expected.extend([Step::Ptesync, Step::TlbieHash { rb: rbs[4] }, Step::TlbieHash { rb: rbs[5] }]);
        expected.extend(tail(rbs[5]));
        assert_eq!(recorder.steps(), expected);
    }

    #[test]
    fn bad_slots_and_entries_are_refused_untouched() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER9_DD22);
        let (_, hv, hr) = page(0x1234, 0);
        let slots = GROUPS * HPTES_PER_GROUP;
        assert_eq!(t.slots(), slots);
        assert_eq!(t.insert(slots, hv, hr), Err(NativeError::BadSlot));
        assert_eq!(t.insert(3, hv, hr), Err(NativeError::BadSlot));
        assert_eq!(t.remove(slots, hv, Scope::Global), Err(NativeError::BadSlot));
        assert_eq!(t.protect(slots + 7, hv, hr, Scope::Global), Err(NativeError::BadSlot));
        assert_eq!(t.read(slots), Err(NativeError::BadSlot));
        // An AVPN for a 69-bit VA, RPN bits where ISA 3.0 keeps B.
        assert_eq!(t.insert(0, hv | (1 << 52), hr), Err(NativeError::BadEntry));
        assert_eq!(t.insert(0, hv, hr | (1 << 58)), Err(NativeError::BadEntry));
        assert!(recorder.steps().is_empty(), "no invalidation for a slot that does not exist");
        assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
    }

    /// `read` reports an entry without the lock bit and leaves the lock alone.
    #[test]
    fn read_hides_the_lock_bit() {
        let words = memory();
        let recorder = Recorder::new(&words);
        let t = table(&words, &recorder, POWER10);
        let (_, hv, hr) = page(0x1234, 0);
        let ptex = t.insert(16, hv, hr).unwrap();
        words[ptex as usize * 2].fetch_or(LOCK_RAW, Ordering::Relaxed);
        assert_eq!(t.read(ptex), Ok((hv, hr)));
        assert_ne!(words[ptex as usize * 2].load(Ordering::Relaxed) & LOCK_RAW, 0);
    }

    /// CPUs inserting into one group at once get distinct slots, eight in
    /// all, and the rest find the group full.
    #[test]
    fn concurrent_inserts_take_distinct_slots() {
        let words = memory();
        let t = NativeTable::new(&words, Format::Isa300, TlbieErrata::default(), Quiet);
        let got = Mutex::new(StdVec::new());
        std::thread::scope(|s| {
            for cpu in 0..4u64 {
                let (t, got) = (&t, &got);
                s.spawn(move || {
                    for i in 0..4 {
                        let (_, hv, hr) = page(0x10 * cpu + i + 1, 0);
                        got.lock().unwrap().push(t.insert(24, hv, hr));
                    }
                });
            }
        });
        let mut slots: StdVec<u64> = got.lock().unwrap().iter().filter_map(|r| r.ok()).collect();
        slots.sort();
        assert_eq!(slots, (24..32).collect::<StdVec<_>>());
        assert_eq!(got.lock().unwrap().iter().filter(|r| **r == Err(NativeError::GroupFull)).count(), 8);
        assert!(no_lock_bits(&words));
    }

    /// CPUs inserting and removing their own pages in one group, over and
    /// over: every removal finds its entry, the group ends empty, unlocked.
    #[test]
    fn concurrent_insert_and_remove_keep_entries_apart() {
        let words = memory();
        let t = NativeTable::new(&words, Format::Isa300, TlbieErrata::default(), Quiet);
        std::thread::scope(|s| {
            for cpu in 0..4u64 {
                let t = &t;
                s.spawn(move || {
                    for round in 0..2000u64 {
                        let (_, hv, hr) = page(0x100 * (cpu + 1) + round % 2, 0);
                        let ptex = t.insert(40, hv, hr).unwrap();
                        assert_eq!(t.remove(ptex, hv, Scope::Global), Ok((hv | v::VALID, hr)));
                    }
                });
            }
        });
        assert!(words.iter().step_by(2).all(|w| w.load(Ordering::Relaxed) == 0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert { page: u64, secondary: bool },
        Remove { page: u64, slot: u64, secondary: bool },
        Protect { page: u64, slot: u64, secondary: bool, writable: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        let page = 0u64..24;
        prop_oneof![
            (page.clone(), any::<bool>()).prop_map(|(page, secondary)| Op::Insert { page, secondary }),
            (page.clone(), 0..HPTES_PER_GROUP, any::<bool>()).prop_map(|(page, slot, secondary)| Op::Remove {
                page,
                slot,
                secondary
            }),
            (page, 0..HPTES_PER_GROUP, any::<bool>(), any::<bool>())
                .prop_map(|(page, slot, secondary, writable)| Op::Protect { page, slot, secondary, writable }),
        ]
    }

    proptest! {
        /// Random operations on pages that crowd few groups (two VSIDs whose
        /// pages share hashes), against a model of the slots: the same
        /// results and contents, one invalidation per removal or
        /// reprotection (found or not) and none per insert, and never a lock
        /// bit left set.
        #[test]
        fn operations_agree_with_a_model(ops in proptest::collection::vec(op(), 1..60)) {
            let words = memory();
            let recorder = Recorder::new(&words);
            let t = table(&words, &recorder, POWER10);
            let geometry = HptGeometry { size_log2: SIZE_LOG2 };
            let mut model: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
            // Pages 0..24: 3 EAs in each of 8 VSIDs that differ only above
            // the group bits, so many pages share a group.
            let describe = |p: u64| {
                let n = vpn(0x40 + ((p / 3) << 12), (p % 3) << PAGE_SHIFT, SegmentSize::T1);
                (n, encode_v(n, SegmentSize::T1), hash(n, PAGE_SHIFT, SegmentSize::T1))
            };
            for op in ops {
                recorder.clear();
                match op {
                    Op::Insert { page, secondary } => {
                        let (_, hv, h) = describe(page);
                        let hv = hv | if secondary { v::SECONDARY } else { 0 };
                        let group = geometry.group_slot(h, secondary);
                        let hr = encode_r(page << PAGE_SHIFT, true, false, false);
                        let free = (group..group + HPTES_PER_GROUP).find(|s| !model.contains_key(s));
                        let got = t.insert(group, hv, hr);
                        match free {
                            Some(slot) => {
                                prop_assert_eq!(got, Ok(slot));
                                model.insert(slot, (hv | v::VALID, hr));
                            }
                            None => prop_assert_eq!(got, Err(NativeError::GroupFull)),
                        }
                        // Barriers only (none when full), no invalidation.
                        let steps = recorder.steps();
                        prop_assert!(steps.is_empty() || steps == [Step::Eieio, Step::Ptesync], "{:?}", steps);
                    }
                    Op::Remove { page, slot, secondary } => {
                        let (_, hv, h) = describe(page);
                        let hv = hv | if secondary { v::SECONDARY } else { 0 };
                        let ptex = geometry.group_slot(h, secondary) + slot;
                        let expected = match model.get(&ptex) {
                            Some(&(mv, mr)) if same_page(mv, hv) => {
                                model.remove(&ptex);
                                Ok((mv, mr))
                            }
                            _ => Err(NativeError::NotFound),
                        };
                        prop_assert_eq!(t.remove(ptex, hv, Scope::Global), expected);
                        prop_assert_eq!(recorder.steps().len(), 3);
                    }
                    Op::Protect { page, slot, secondary, writable } => {
                        let (_, hv, h) = describe(page);
                        let hv = hv | if secondary { v::SECONDARY } else { 0 };
                        let ptex = geometry.group_slot(h, secondary) + slot;
                        let rights = encode_r(0, writable, true, true);
                        let expected = match model.get_mut(&ptex) {
                            Some((mv, mr)) if same_page(*mv, hv) => {
                                *mr = (*mr & !RIGHTS) | (rights & RIGHTS);
                                Ok(())
                            }
                            _ => Err(NativeError::NotFound),
                        };
                        prop_assert_eq!(t.protect(ptex, hv, rights, Scope::Global), expected);
                        prop_assert_eq!(recorder.steps().len(), 3);
                    }
                }
                prop_assert!(no_lock_bits(&words));
                for ptex in 0..t.slots() {
                    let want = model.get(&ptex).copied();
                    let got = t.read(ptex).unwrap();
                    match want {
                        Some(entry) => prop_assert_eq!(got, entry),
                        None => prop_assert_eq!(got.0 & v::VALID, 0),
                    }
                }
            }
        }
    }
}
