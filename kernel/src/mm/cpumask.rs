//! The CPUs that use an address space (Linux's `mm_cpumask`): only they can
//! hold its translations, and only they can be inside a lockless walk of its
//! tables. Flushes use it to choose a local invalidation when no other CPU
//! ever used the space; THP collapse's IPI goes to the CPUs in it.
//!
//! Bits are set before a CPU activates the space or walks it locklessly, and
//! stay set until the space is freed, so a CPU that switched away is still
//! flushed and still waited for. The ordering argument, shared by the three
//! operations: a CPU publishes its bit and then makes a full barrier before
//! it reads the tables; a CPU that changed the tables makes a full barrier
//! before it reads the mask. So either the changer sees the bit, or the
//! user's reads come after the change and see it.

use super::mmu::Scope;
use crate::cpuset::CpuSet;
use crate::sync::atomic::{fence, Ordering};

pub struct SpaceCpus {
    cpus: CpuSet,
}

impl Default for SpaceCpus {
    fn default() -> Self {
        Self::new()
    }
}

impl SpaceCpus {
    #[cfg(not(loom))]
    pub const fn new() -> SpaceCpus {
        SpaceCpus { cpus: CpuSet::new() }
    }

    #[cfg(loom)]
    pub fn new() -> SpaceCpus {
        SpaceCpus { cpus: CpuSet::new() }
    }

    /// Forgets every user (the space id is handed out anew).
    pub fn reset(&self) {
        self.cpus.clear(Ordering::Release);
    }

    /// Records that CPU `me` uses the space, before it activates it or walks
    /// it locklessly. GUP-fast calls this on every walk, so a CPU already
    /// marked does nothing: the barrier made when its bit was set orders it
    /// against any later change (either that change's reader sees the bit,
    /// or this CPU saw the change then, and later reads cannot see older
    /// tables). The accesses: a relaxed load of the word holding the bit;
    /// if clear, a SeqCst fetch_or on that word, then the full barrier.
    #[inline(never)] // kept out of line under LTO: the barrier check (tests/src/disasm.rs) reads its code
    pub fn note_user(&self, me: usize) {
        if !self.cpus.contains(me, Ordering::Relaxed) {
            self.cpus.insert(me, Ordering::SeqCst);
            fence(Ordering::SeqCst);
        }
    }

    /// How far a flush of the space must reach, from CPU `me`, after the
    /// table change: this CPU alone if no other CPU has used it, else all.
    /// The full barrier before the read pairs with `note_user`'s.
    #[inline(never)] // kept out of line under LTO: the barrier check (tests/src/disasm.rs) reads its code
    pub fn flush_scope(&self, me: usize) -> Scope {
        fence(Ordering::SeqCst);
        if self.cpus.any_other_than(me, Ordering::Acquire) {
            Scope::Global
        } else {
            Scope::Local
        }
    }

    /// The CPUs other than `me` that use the space and are in `online`: the
    /// targets of collapse's IPI. The caller made the full barrier after its
    /// table change (serialize_against_pte_lookup does).
    pub fn others(&self, me: usize, online: &CpuSet) -> CpuSet {
        self.cpus.iter(Ordering::Acquire).filter(|&i| i != me && online.contains(i, Ordering::Acquire)).collect()
    }

    /// Whether CPU `cpu` is recorded as a user.
    pub fn contains(&self, cpu: usize) -> bool {
        self.cpus.contains(cpu, Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn a_space_only_this_cpu_used_is_flushed_locally() {
        let cpus = SpaceCpus::new();
        assert_eq!(cpus.flush_scope(3), Scope::Local);
        cpus.note_user(3);
        assert_eq!(cpus.flush_scope(3), Scope::Local);
        cpus.note_user(5);
        assert_eq!(cpus.flush_scope(3), Scope::Global);
        assert_eq!(cpus.flush_scope(5), Scope::Global);
    }

    #[test]
    fn others_are_the_online_users_but_me() {
        let cpus = SpaceCpus::new();
        for cpu in [0, 2, 7] {
            cpus.note_user(cpu);
        }
        let online = CpuSet::new();
        for cpu in [0, 2, 3] {
            online.insert(cpu, Ordering::Relaxed);
        }
        let others: Vec<usize> = cpus.others(0, &online).iter(Ordering::Relaxed).collect();
        assert_eq!(others, vec![2]);
        cpus.reset();
        assert!(!cpus.contains(2));
        assert_eq!(cpus.others(0, &online).iter(Ordering::Relaxed).count(), 0);
    }
}
