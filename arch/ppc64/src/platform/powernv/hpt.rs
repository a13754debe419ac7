//! The hashed page table in RAM on powernv, behind `HpteOps` (Linux's
//! hash_native.c). The table logic (slot search, entry locks, the ISA 3.0
//! format, what to invalidate) is `kernel::mm::hpt_native`, host-tested;
//! this file gives it the table's memory and runs its steps as
//! instructions: `eieio`, `ptesync`, `tlbie`, `tlbsync`.
//!
//! The kernel is the hypervisor here (MSR[HV] = 1, LPID 0), so `tlbie` with
//! PRS = 0 is its to issue, and no lock serialises `tlbie`s: POWER5 and
//! later take concurrent broadcasts (Linux sets MMU_FTR_LOCKLESS_TLBIE).

use core::arch::asm;
use core::sync::atomic::AtomicU64;

use kernel::mm::hpt_native::{Format, Hardware, NativeError, NativeTable, Step};

use crate::platform::{Hpte, HpteError, HpteOps, Scope};

/// The smallest and largest table the partition table can describe:
/// HTABSIZE 0 to 28 gives 2^(18 + HTABSIZE) bytes (Power ISA 3.0).
const MIN_SIZE_LOG2: u32 = 18;
const MAX_SIZE_LOG2: u32 = 46;

/// `HpteError::Parameter` codes of the native table (it has no firmware
/// status to pass on).
const PARAMETER_SLOT: i64 = 1;
const PARAMETER_ENTRY: i64 = 2;

/// This CPU's instructions for the table's steps.
pub struct Power;

/// None of these is `nomem`: each is a compiler barrier too, so the table
/// stores before a step stay before it.
impl Hardware for Power {
    fn execute(&self, step: Step) {
        match step {
            // SAFETY: a barrier only.
            Step::Eieio => unsafe { asm!("eieio", options(nostack, preserves_flags)) },
            // SAFETY: a barrier only.
            Step::Ptesync => unsafe { asm!("ptesync", options(nostack, preserves_flags)) },
            // SAFETY: drops the hash translation RB names from every CPU's
            // TLB (RIC = 0, PRS = 0, R = 0; LPID 0 in RS); the MMU reloads it
            // from the table if it is still there. The kernel is in
            // hypervisor state on powernv, where this form is permitted.
            Step::TlbieHash { rb } => unsafe {
                asm!("tlbie {rb}, {rs}, 0, 0, 0", rb = in(reg) rb, rs = in(reg) 0u64, options(nostack, preserves_flags))
            },
            // SAFETY: the ERAT fix-up, R = 1 with IS = 2 in RB: drops every
            // translation of LPID 0, which the MMU reloads from the table;
            // permitted in hypervisor state as above.
            Step::TlbieRadixLpid { rb } => unsafe {
                asm!("tlbie {rb}, {rs}, 0, 0, 1", rb = in(reg) rb, rs = in(reg) 0u64, options(nostack, preserves_flags))
            },
            // SAFETY: barriers only (tlbsync waits for the broadcasts).
            Step::EndBroadcast => unsafe { asm!("eieio", "tlbsync", "ptesync", options(nostack, preserves_flags)) },
            // SAFETY: drops the translation from this CPU's TLB only, for a
            // space no other CPU used. The assembler takes only the
            // one-operand tlbiel, so it is encoded by hand as in radix.rs:
            // 0x7c000224 | RS << 21 | RB << 11 with RB = r3, RS = r4 = 0
            // (RIC = PRS = R = 0: a hash translation).
            Step::TlbielHash { rb } => unsafe {
                asm!(".long 0x7c801a24", in("r3") rb, in("r4") 0u64, options(nostack, preserves_flags))
            },
        }
    }
}

/// The table, once `init` has recorded it.
pub struct NativeHpt {
    table: spin::Once<NativeTable<'static, Power>>,
    /// Its physical address and log2 size, for the partition table.
    location: spin::Once<(u64, u32)>,
}

pub static NATIVE_HPT: NativeHpt = NativeHpt { table: spin::Once::new(), location: spin::Once::new() };

impl NativeHpt {
    /// Records the table the caller allocated: `size_log2` bytes at kernel
    /// address `table_virt`. Reads the processor's format and `tlbie` errata.
    ///
    /// # Safety
    /// The memory is RAM, zeroed, aligned to its size, reachable at
    /// `table_virt` for the rest of the kernel's life, and used by nothing
    /// but this table (and the MMU, once the partition table points at it).
    pub unsafe fn init(&self, table_virt: u64, size_log2: u32) {
        assert!(
            (MIN_SIZE_LOG2..=MAX_SIZE_LOG2).contains(&size_log2),
            "an HPT of 2^{size_log2} bytes is not one the MMU can use"
        );
        assert_eq!(table_virt & ((1 << size_log2) - 1), 0, "the HPT is aligned to its size");
        let processor = crate::cpu::processor();
        let dwords = (1usize << size_log2) / core::mem::size_of::<AtomicU64>();
        // SAFETY: the caller gives this memory to the table for good;
        // AtomicU64 has u64's layout and the address is 8-byte aligned (it
        // is aligned to the table's size). Every access goes through the
        // atomics, as the other CPUs' and the MMU's accesses are concurrent.
        let memory = unsafe { core::slice::from_raw_parts(table_virt as *const AtomicU64, dwords) };
        self.table.call_once(|| NativeTable::new(memory, Format::of(processor.isa), processor.tlbie_errata(), Power));
        self.location.call_once(|| (kernel::mm::virt_to_phys(table_virt), size_log2));
    }

    /// The table's physical address and log2 size, once `init` recorded it.
    pub fn location(&self) -> Option<(u64, u32)> {
        self.location.get().copied()
    }

    fn table(&self) -> &NativeTable<'static, Power> {
        self.table.get().expect("the native HPT is initialised before its entries are used")
    }
}

fn error(error: NativeError) -> HpteError {
    match error {
        NativeError::GroupFull => HpteError::GroupFull,
        NativeError::NotFound => HpteError::NotFound,
        NativeError::BadSlot => HpteError::Parameter(PARAMETER_SLOT),
        NativeError::BadEntry => HpteError::Parameter(PARAMETER_ENTRY),
    }
}

impl HpteOps for NativeHpt {
    fn tlbie_fixups(&self) -> &'static str {
        self.table().errata().name()
    }

    fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, HpteError> {
        self.table().insert(group_ptex, v, r).map_err(error)
    }

    fn remove(&self, ptex: u64, v: u64, scope: Scope) -> Result<Hpte, HpteError> {
        self.table().remove(ptex, v, scope).map(|(v, r)| Hpte { v, r }).map_err(error)
    }

    fn protect(&self, ptex: u64, v: u64, r: u64, scope: Scope) -> Result<(), HpteError> {
        self.table().protect(ptex, v, r, scope).map_err(error)
    }

    fn read(&self, ptex: u64) -> Result<Hpte, HpteError> {
        self.table().read(ptex).map(|(v, r)| Hpte { v, r }).map_err(error)
    }

    /// All of them, with one invalidation sequence (as Linux's
    /// native_flush_hash_range): `Err` if any was missing, the rest gone.
    fn remove_four(&self, entries: &[(u64, u64)], scope: Scope) -> Result<(), HpteError> {
        self.table().remove_batch(entries, scope).map_err(error)
    }
}
