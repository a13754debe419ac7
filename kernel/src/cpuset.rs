//! Sets of CPUs by index: the one type every CPU mask of the kernel is
//! (the online CPUs, an address space's users, RCU's view of who must pass
//! a quiescent state, the targets of a cross-call).
//!
//! A fixed bitmap of `MAX_CPUS` bits in 64-bit atomic words, so a set can
//! be a static (`CpuSet::new` is `const`), shared between CPUs without a
//! lock, and small enough for a stack (32 bytes at 256 CPUs). Each
//! operation on one CPU is a single atomic access to the word holding its
//! bit, with the ordering the caller asks for; operations on the whole set
//! read the words one by one, so they are not a snapshot of the set at one
//! instant, but each CPU's bit is read once, after whatever barrier the
//! caller made. Iteration skips zero words: it costs O(words + CPUs in the
//! set), never O(MAX_CPUS).
//!
//! The atomics are `kernel::sync`'s, so a loom model explores the accesses.

use core::fmt;

use crate::sync::atomic::{AtomicU64, Ordering};

/// CPUs the kernel can run on: the limit `boot` records CPU threads of the
/// device tree up to (the kernel crate depends on `boot`, so it is defined
/// there, once); CPUs beyond it are left stopped. A loom model has two, so
/// that it creates few modelled atomics per execution.
#[cfg(not(loom))]
pub const MAX_CPUS: usize = boot::info::MAX_CPUS;
#[cfg(loom)]
pub const MAX_CPUS: usize = 2;

const WORD_BITS: usize = u64::BITS as usize;
/// Words of a set.
const WORDS: usize = MAX_CPUS.div_ceil(WORD_BITS);

pub struct CpuSet {
    words: [AtomicU64; WORDS],
}

impl CpuSet {
    /// The empty set.
    #[cfg(not(loom))]
    pub const fn new() -> CpuSet {
        CpuSet { words: [const { AtomicU64::new(0) }; WORDS] }
    }

    #[cfg(loom)]
    pub fn new() -> CpuSet {
        CpuSet { words: core::array::from_fn(|_| AtomicU64::new(0)) }
    }

    /// The set of CPU `cpu` alone.
    #[cfg(not(loom))]
    pub const fn single(cpu: usize) -> CpuSet {
        let (word, bit) = Self::position(cpu);
        let mut words = [const { AtomicU64::new(0) }; WORDS];
        words[word] = AtomicU64::new(bit);
        CpuSet { words }
    }

    #[cfg(loom)]
    pub fn single(cpu: usize) -> CpuSet {
        let (word, bit) = Self::position(cpu);
        CpuSet { words: core::array::from_fn(|i| AtomicU64::new(if i == word { bit } else { 0 })) }
    }

    /// The word holding `cpu`'s bit, and the bit. An index beyond MAX_CPUS
    /// is a caller's bug: no CPU has it (smp leaves such CPUs stopped).
    const fn position(cpu: usize) -> (usize, u64) {
        assert!(cpu < MAX_CPUS, "CPU index beyond MAX_CPUS");
        (cpu / WORD_BITS, 1 << (cpu % WORD_BITS))
    }

    /// Adds `cpu` with one read-modify-write (`fetch_or`) of `order` on its
    /// word; whether it was absent.
    #[inline]
    pub fn insert(&self, cpu: usize, order: Ordering) -> bool {
        let (word, bit) = Self::position(cpu);
        self.words[word].fetch_or(bit, order) & bit == 0
    }

    /// Takes `cpu` out with one `fetch_and` of `order`; whether it was there.
    #[inline]
    pub fn remove(&self, cpu: usize, order: Ordering) -> bool {
        let (word, bit) = Self::position(cpu);
        self.words[word].fetch_and(!bit, order) & bit != 0
    }

    /// Whether `cpu` is in the set: one load of `order` (false for an index
    /// beyond MAX_CPUS, which no CPU has).
    #[inline]
    pub fn contains(&self, cpu: usize, order: Ordering) -> bool {
        cpu < MAX_CPUS && {
            let (word, bit) = Self::position(cpu);
            self.words[word].load(order) & bit != 0
        }
    }

    /// Empties the set: a store of `order` to each word.
    pub fn clear(&self, order: Ordering) {
        for word in &self.words {
            word.store(0, order);
        }
    }

    #[inline]
    pub fn is_empty(&self, order: Ordering) -> bool {
        self.words.iter().all(|word| word.load(order) == 0)
    }

    /// Whether a CPU other than `cpu` is in the set (`cpu` itself may or may
    /// not be): the "only me?" question of a flush that could stay local.
    #[inline]
    pub fn any_other_than(&self, cpu: usize, order: Ordering) -> bool {
        self.words.iter().enumerate().any(|(i, word)| {
            let mine = if cpu / WORD_BITS == i { 1 << (cpu % WORD_BITS) } else { 0 };
            word.load(order) & !mine != 0
        })
    }

    /// CPUs in the set.
    #[inline]
    pub fn len(&self, order: Ordering) -> usize {
        self.words.iter().map(|word| word.load(order).count_ones() as usize).sum()
    }

    /// The CPUs in the set, in increasing index order. Each word is loaded
    /// (with `order`) once, when the iteration reaches it.
    #[inline]
    pub fn iter(&self, order: Ordering) -> Iter<'_> {
        Iter { set: self, order, next_word: 0, base: 0, bits: 0 }
    }
}

impl Default for CpuSet {
    fn default() -> Self {
        CpuSet::new()
    }
}

/// A set of the CPUs an iterator yields (for building a cross-call's
/// targets, or a test's set).
impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(cpus: I) -> Self {
        let set = CpuSet::new();
        for cpu in cpus {
            set.insert(cpu, Ordering::Relaxed);
        }
        set
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter(Ordering::Relaxed)).finish()
    }
}

/// The CPUs of a set (`CpuSet::iter`).
pub struct Iter<'a> {
    set: &'a CpuSet,
    order: Ordering,
    /// The next word to load.
    next_word: usize,
    /// The index of bit 0 of `bits`.
    base: usize,
    /// Bits of the current word not yet returned.
    bits: u64,
}

impl Iterator for Iter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            let word = self.set.words.get(self.next_word)?;
            self.bits = word.load(self.order);
            self.base = self.next_word * WORD_BITS;
            self.next_word += 1;
        }
        let cpu = self.base + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(cpu)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::vec::Vec;

    const R: Ordering = Ordering::Relaxed;

    fn cpus(set: &CpuSet) -> Vec<usize> {
        set.iter(R).collect()
    }

    #[test]
    fn capacity_is_the_boot_limit() {
        assert_eq!(MAX_CPUS, boot::info::MAX_CPUS);
        const { assert!(MAX_CPUS >= 256, "a two-socket POWER9 has 176 threads") };
        assert_eq!(core::mem::size_of::<CpuSet>(), MAX_CPUS / 8);
    }

    #[test]
    fn empty() {
        let set = CpuSet::new();
        assert!(set.is_empty(R));
        assert_eq!(set.len(R), 0);
        assert_eq!(set.iter(R).next(), None);
        assert!(!set.contains(0, R));
        assert!(!set.any_other_than(0, R));
        assert!(!set.remove(5, R), "removing an absent CPU");
        static EMPTY: CpuSet = CpuSet::new();
        assert!(EMPTY.is_empty(R));
    }

    #[test]
    fn bits_across_word_boundaries() {
        let set = CpuSet::new();
        for cpu in [255, 64, 0, 63] {
            assert!(set.insert(cpu, Ordering::SeqCst), "CPU {cpu} was absent");
        }
        assert!(!set.insert(64, Ordering::SeqCst), "CPU 64 was present");
        for cpu in [0, 63, 64, 255] {
            assert!(set.contains(cpu, R), "CPU {cpu}");
        }
        for cpu in [1, 62, 65, 127, 128, 191, 192, 254] {
            assert!(!set.contains(cpu, R), "CPU {cpu}");
        }
        assert!(!set.contains(MAX_CPUS, R), "beyond the set");
        assert_eq!(set.len(R), 4);
        assert_eq!(cpus(&set), [0, 63, 64, 255], "in increasing order");
        assert_eq!(std::format!("{set:?}"), "{0, 63, 64, 255}");
    }

    #[test]
    fn insert_and_remove() {
        let set = CpuSet::new();
        set.insert(7, R);
        set.insert(200, R);
        assert!(set.remove(7, R));
        assert!(!set.remove(7, R));
        assert_eq!(cpus(&set), [200]);
        assert!(set.remove(200, R));
        assert!(set.is_empty(R));
        let set: CpuSet = [3, 130, 3, 129].into_iter().collect();
        assert_eq!(cpus(&set), [3, 129, 130]);
        set.clear(R);
        assert!(set.is_empty(R));
    }

    #[test]
    fn single() {
        for cpu in [0, 63, 64, 255] {
            let set = CpuSet::single(cpu);
            assert_eq!(cpus(&set), [cpu]);
        }
        static LAST: CpuSet = CpuSet::single(MAX_CPUS - 1);
        assert_eq!(cpus(&LAST), [MAX_CPUS - 1]);
    }

    #[test]
    fn others_than_me() {
        let set = CpuSet::new();
        assert!(!set.any_other_than(64, R));
        set.insert(64, R);
        assert!(!set.any_other_than(64, R), "only me");
        assert!(set.any_other_than(0, R));
        assert!(set.any_other_than(63, R), "same bit position, other word");
        assert!(set.any_other_than(128, R));
        set.insert(65, R);
        assert!(set.any_other_than(64, R), "a neighbour in my word");
        set.remove(65, R);
        set.insert(255, R);
        assert!(set.any_other_than(64, R), "one in another word");
        assert!(set.any_other_than(255, R));
        set.remove(64, R);
        assert!(!set.any_other_than(255, R), "only me, in the last word");
    }

    #[test]
    fn iteration_visits_each_member_once_in_order() {
        let every_third: Vec<usize> = (0..MAX_CPUS).step_by(3).collect();
        let set: CpuSet = every_third.iter().copied().collect();
        assert_eq!(cpus(&set), every_third);
        let full: CpuSet = (0..MAX_CPUS).collect();
        assert_eq!(cpus(&full), (0..MAX_CPUS).collect::<Vec<_>>());
        assert_eq!(full.len(R), MAX_CPUS);
        let ends: CpuSet = [0, MAX_CPUS - 1].into_iter().collect();
        assert_eq!(cpus(&ends), [0, MAX_CPUS - 1], "zero words in between are skipped");
    }

    #[test]
    #[should_panic(expected = "beyond MAX_CPUS")]
    fn inserting_beyond_the_limit_is_a_bug() {
        CpuSet::new().insert(MAX_CPUS, R);
    }
}
