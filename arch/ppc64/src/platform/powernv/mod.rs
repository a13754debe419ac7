//! powernv: the kernel on the machine itself, as the hypervisor (QEMU
//! `-M powernv9`, POWER9 hardware), booted by skiboot. There is no
//! hypervisor to ask: the kernel keeps the partition table (PTCR) and LPCR
//! itself, owns the hashed page table in RAM and invalidates it with
//! `tlbie` (hpt.rs), sends IPIs as hypervisor doorbells (doorbell.rs), and
//! asks OPAL (opal.rs) only for what firmware still does on bare metal: the
//! console, CPU start, interrupt endianness and MMU mode, power-off.

pub mod doorbell;
pub mod firmware;
pub mod hpt;
pub mod opal;
#[deny(unsafe_code)]
pub mod selftests;

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use boot::BootInfo;
use kernel::cmdline::MmuMode;
use kernel::info;
use kernel::mm::{self, FRAME_SIZE};

use crate::cpu;
use crate::platform::{HpteOps, IrqController, Machine, ProcessTable, StartError};

/// SPRs the hypervisor owns (Power ISA v3.0B, Book III; Linux reg.h).
const SPR_LPCR: u32 = 318;
const SPR_PTCR: u32 = 464;
/// The Processor Stop Status and Control Register (ISA 3.0, Book III 10.3).
const SPR_PSSCR: u32 = 855;

/// LPCR fields.
pub mod lpcr {
    /// Alternate interrupt location 3: interrupts taken with translation on
    /// land at 0xc000000000004000 + vector.
    pub const AIL_3: u64 = 0x0180_0000;
    pub const AIL_MASK: u64 = 0x0180_0000;
    /// Use the process table (radix, or hash with a process table).
    pub const UPRT: u64 = 0x0040_0000;
    /// Host radix: the hypervisor translates with radix trees.
    pub const HR: u64 = 0x0010_0000;
    /// Hypervisor decrementer interrupts (unused: off).
    pub const HDICE: u64 = 0x1;
    /// Logical partitioning environment selectors: 0 sends external
    /// interrupts to the hypervisor, saving HSRR0/1 (`trap::uses_hsrr`).
    pub const LPES: u64 = 0xc;
}

/// Partition-table entry bits (big-endian in memory, as the process table).
pub mod pate {
    /// Dword 0: the partition translates with radix.
    pub const HOST_RADIX: u64 = 1 << 63;
    /// Dword 1: the process table holds radix entries.
    pub const GUEST_RADIX: u64 = 1 << 63;
    /// HTABSIZE counts from 2^18 bytes.
    pub const HTABSIZE_BASE: u32 = 18;
}

/// The partition table: 2^(12 + PATS) bytes, one 16-byte entry per LPID;
/// the kernel is LPID 0. PATS 4 = 64 KiB, one frame.
const PATS: u64 = 4;
const _: () = assert!(1 << (12 + PATS) == FRAME_SIZE);

/// HPT size limits (ISA: at least 2^18 bytes; Linux caps at 2^46).
const HPT_MIN_LOG2: u32 = 18;
const HPT_MAX_LOG2: u32 = 46;

/// What the boot CPU set, for each secondary to copy (LPCR and PTCR are
/// per thread; OPAL starts threads with skiboot's values).
static LPCR: AtomicU64 = AtomicU64::new(0);
static PTCR: AtomicU64 = AtomicU64::new(0);
static PARTITION_TABLE: AtomicU64 = AtomicU64::new(0);

pub fn mfspr_lpcr() -> u64 {
    let value: u64;
    // SAFETY: reads LPCR (hypervisor state).
    unsafe { asm!("mfspr {0}, {spr}", out(reg) value, spr = const SPR_LPCR, options(nomem, nostack)) };
    value
}

/// Sets this thread's LPCR and records it for the secondaries.
fn set_lpcr(value: u64) {
    // SAFETY: the callers change only the fields named in `lpcr`, each of
    // which the kernel is ready for when it changes (vectors installed
    // before AIL, tables before HR/UPRT); isync makes it take effect.
    unsafe { asm!("mtspr {spr}, {0}", "isync", in(reg) value, spr = const SPR_LPCR, options(nostack)) };
    LPCR.store(value, Ordering::Relaxed);
}

fn set_ptcr(value: u64) {
    // SAFETY: PTCR points at the partition table, whose entry 0 was
    // written (and made visible with ptesync) before; translation is off
    // while it changes on the boot CPU and on secondaries.
    unsafe { asm!("ptesync", "mtspr {spr}, {0}", "isync", in(reg) value, spr = const SPR_PTCR, options(nostack)) };
}

/// Writes LPID 0's partition-table entry (allocating the table the first
/// time) and points PTCR at it.
fn set_partition_entry(dw0: u64, dw1: u64) -> Result<(), &'static str> {
    let mut table = PARTITION_TABLE.load(Ordering::Acquire);
    if table == 0 {
        let frame = mm::alloc_frame().ok_or("no frame for the partition table")?;
        table = frame.address();
        // SAFETY: a frame just allocated, reached through its linear-map address.
        unsafe { core::ptr::write_bytes(mm::phys_to_virt(table), 0, FRAME_SIZE as usize) };
        PARTITION_TABLE.store(table, Ordering::Release);
    }
    let entry = mm::phys_to_virt(table) as *const AtomicU64;
    // SAFETY: entry 0 of the live partition-table frame; big-endian, as
    // the MMU reads it.
    unsafe {
        (*entry.add(1)).store(dw1.to_be(), Ordering::Relaxed);
        (*entry).store(dw0.to_be(), Ordering::Release);
    }
    let ptcr = table | PATS;
    set_ptcr(ptcr);
    PTCR.store(ptcr, Ordering::Relaxed);
    Ok(())
}

fn reinit_cpus(flags: u64, what: &'static str) -> Result<(), &'static str> {
    match opal::call(opal::REINIT_CPUS, &[flags]) {
        opal::SUCCESS => Ok(()),
        _ => Err(what),
    }
}

/// PTCR as the boot CPU set it (0 before an MMU was registered).
pub fn ptcr() -> u64 {
    PTCR.load(Ordering::Relaxed)
}

/// LPID 0's partition-table entry, as the MMU reads it (None before one
/// was written).
pub fn partition_entry() -> Option<[u64; 2]> {
    let table = PARTITION_TABLE.load(Ordering::Acquire);
    if table == 0 {
        return None;
    }
    let entry = mm::phys_to_virt(table) as *const AtomicU64;
    // SAFETY: entry 0 of the live partition-table frame.
    let (dw0, dw1) = unsafe { ((*entry).load(Ordering::Acquire), (*entry.add(1)).load(Ordering::Relaxed)) };
    Some([u64::from_be(dw0), u64::from_be(dw1)])
}

/// The bare-metal platform.
pub struct PowerNv;
pub static POWERNV: PowerNv = PowerNv;

/// Sizes the hashed page table for `memory` bytes as QEMU sizes a pseries
/// guest's (`ibm,pft-size`: RAM / 128, at least 2^18), so that the hash
/// MMU runs with the same table on both platforms.
pub fn hpt_size_log2(memory: u64) -> u32 {
    let memory_log2 = 64 - memory.saturating_sub(1).leading_zeros();
    memory_log2.saturating_sub(7).clamp(HPT_MIN_LOG2, HPT_MAX_LOG2)
}

impl Machine for PowerNv {
    fn name(&self) -> &'static str {
        "powernv"
    }

    fn console_write(&self, bytes: &[u8]) {
        opal::console_write(bytes);
    }

    fn mmu(&self) -> MmuMode {
        firmware::chosen_mmu()
    }

    /// The hypervisor grants itself either MMU the processor has.
    fn check_mmu(&self, _info: &BootInfo, radix: bool) -> Result<(), &'static str> {
        if radix && !cpu::processor().isa.has_radix() {
            return Err("this processor has no radix MMU");
        }
        Ok(())
    }

    /// HID0[HILE] belongs to OPAL: OPAL_REINIT_CPUS sets it on every
    /// thread, which is why it runs before any secondary leaves OPAL.
    fn take_interrupts_little_endian(&self) -> Result<(), &'static str> {
        reinit_cpus(opal::REINIT_HILE_LE, "OPAL_REINIT_CPUS refused little-endian interrupts")?;
        // No hypervisor decrementer (the kernel ticks with DEC), and
        // external interrupts to the hypervisor, as the vector stubs expect,
        // whatever the firmware (or a kexec'd kernel before) left.
        set_lpcr(mfspr_lpcr() & !(lpcr::HDICE | lpcr::LPES));
        Ok(())
    }

    fn relocate_interrupts(&self) -> Result<(), &'static str> {
        set_lpcr((mfspr_lpcr() & !lpcr::AIL_MASK) | lpcr::AIL_3);
        Ok(())
    }

    /// OPAL switches every thread to radix (HID0), then LPID 0's
    /// partition-table entry gets the kernel's tree (HR) and the process
    /// table (dword 1), and LPCR turns on host radix with the process
    /// table (Linux radix_init_native, radix_init_partition_table).
    fn register_radix(&self, table: ProcessTable) -> Result<(), &'static str> {
        reinit_cpus(opal::REINIT_MMU_RADIX, "OPAL_REINIT_CPUS refused the radix MMU")?;
        set_partition_entry(pate::HOST_RADIX | table.kernel_entry, pate::GUEST_RADIX | table.base | table.size_field)?;
        set_lpcr(mfspr_lpcr() | lpcr::HR | lpcr::UPRT);
        Ok(())
    }

    /// OPAL switches every thread to hash, then LPID 0's partition-table
    /// entry gets the HPT (HTABORG | HTABSIZE, dword 1 unused) and LPCR
    /// turns off host radix and the process table (Linux
    /// hash_init_partition_table).
    fn register_hash(&self) -> Result<(), &'static str> {
        reinit_cpus(opal::REINIT_MMU_HASH, "OPAL_REINIT_CPUS refused the hash MMU")?;
        let (base, size_log2) = hpt::NATIVE_HPT.location().ok_or("the hashed page table was not allocated")?;
        set_partition_entry(base | (size_log2 - pate::HTABSIZE_BASE) as u64, 0)?;
        set_lpcr(mfspr_lpcr() & !(lpcr::HR | lpcr::UPRT));
        Ok(())
    }

    /// The kernel's own table, sized for all of RAM, aligned to its size
    /// (HTABORG's rule) and zeroed (no entry valid).
    fn hash_table(&self, info: &BootInfo) -> Result<u32, &'static str> {
        let size_log2 = hpt_size_log2(info.memory_size());
        let frames = (1u64 << size_log2).div_ceil(FRAME_SIZE);
        let table = mm::alloc_contiguous(frames, frames).ok_or("no memory for the hashed page table")?;
        let bytes = (frames * FRAME_SIZE) as usize;
        // SAFETY: frames just allocated, reached through the linear map.
        unsafe { core::ptr::write_bytes(mm::phys_to_virt(table.address()), 0, bytes) };
        // SAFETY: the frames are the table's for good: zeroed, aligned to
        // the table's size, reached through the linear map.
        unsafe { hpt::NATIVE_HPT.init(mm::phys_to_virt(table.address()) as u64, size_log2) };
        info!("powernv: hashed page table of 2^{size_log2} bytes at {:#x}", table.address());
        Ok(size_log2)
    }

    fn hpte(&self) -> Option<&'static dyn HpteOps> {
        Some(&hpt::NATIVE_HPT)
    }

    fn irq(&self) -> &'static dyn IrqController {
        &doorbell::DOORBELLS
    }

    /// `stop` with PSSCR = 0 (ISA 3.0: EC = 0, ESL = 0, level 0): the
    /// thread stops until any exception is pending, whatever MSR[EE] says,
    /// loses no state and resumes at the next instruction; the pending
    /// doorbell or decrementer is then taken when the caller turns
    /// interrupts on (skiboot idles the same way). POWER8 has no `stop`:
    /// its `nap` wakes at the system-reset vector, so there the idle loop
    /// spins as before.
    fn idle_wait(&self) {
        if !self.can_idle_wait() {
            return;
        }
        // SAFETY: PSSCR = 0 asks for the lightest stop, which keeps every
        // register; `stop` (0x4c0002e4, encoded by hand as the assembler
        // may not know it) then waits in hypervisor state for an exception
        // and continues after itself. Memory is clobbered: the interrupt
        // taken afterwards runs handlers.
        unsafe {
            asm!(
                "mtspr {spr}, {zero}",
                "isync",
                ".long 0x4c0002e4",
                zero = in(reg) 0u64,
                spr = const SPR_PSSCR,
                options(nostack)
            )
        };
    }

    fn can_idle_wait(&self) -> bool {
        cpu::processor().isa >= boot::processor::IsaLevel::V3_00
    }

    /// OPAL_START_CPU, for a thread OPAL says waits in OPAL (inactive).
    /// It enters `secondary_start_pir` with r3 = its PIR, hypervisor real
    /// mode, big-endian; that finds PerCpu area `index` by the PIR.
    fn start_cpu(&self, _info: &BootInfo, server: u32, _index: usize) -> Result<(), StartError> {
        match opal::cpu_status(server) {
            Ok(opal::THREAD_INACTIVE) => {}
            Ok(_) => return Err(StartError::NotStopped),
            Err(opal::UNSUPPORTED) => return Err(StartError::Unsupported),
            Err(status) => return Err(StartError::Failed(status)),
        }
        let entry = mm::virt_to_phys(crate::secondary::secondary_start_pir as *const () as u64);
        match opal::call(opal::START_CPU, &[server as u64, entry]) {
            opal::SUCCESS => Ok(()),
            opal::WRONG_STATE => Err(StartError::NotStopped),
            status => Err(StartError::Failed(status)),
        }
    }

    fn init_secondary(&self) {
        cpu::enable_machine_checks();
        let ptcr = PTCR.load(Ordering::Relaxed);
        if ptcr != 0 {
            set_ptcr(ptcr);
        }
        let lpcr = LPCR.load(Ordering::Relaxed);
        if lpcr != 0 {
            set_lpcr(lpcr);
        }
    }

    /// skiboot's memory is in the device tree's reserved ranges, which
    /// memory.rs keeps out of the allocator whatever the platform.
    fn reserved(&self, _info: &BootInfo) -> Option<kernel::mm::Reserved> {
        None
    }

    fn describe(&self, info: &BootInfo) {
        info!(
            "powernv: OPAL at {:#x} (entry {:#x}), LPCR {:#x}, PTCR {:#x}",
            opal::base(),
            opal::entry(),
            mfspr_lpcr(),
            PTCR.load(Ordering::Relaxed)
        );
        for range in &info.reserved {
            info!("powernv: firmware keeps {:#014x}-{:#014x}", range.start, range.end());
        }
    }

    /// OPAL_CEC_POWER_DOWN asks the BMC to power off, then OPAL's pollers
    /// must run (POLL_EVENTS) for the request to go out; QEMU exits when it
    /// arrives. Returns only if that does not happen within a few seconds.
    fn power_off(&self) -> &'static str {
        const ATTEMPTS: u32 = 1000;
        let mut status = opal::BUSY;
        for _ in 0..ATTEMPTS {
            status = opal::call(opal::CEC_POWER_DOWN, &[0]);
            if !opal::is_busy(status) {
                break;
            }
            opal::poll_events();
        }
        if status != opal::SUCCESS {
            return "OPAL_CEC_POWER_DOWN failed";
        }
        let deadline = cpu::timebase() + 10 * kernel::time::frequency();
        while cpu::timebase() < deadline {
            opal::poll_events();
        }
        "OPAL_CEC_POWER_DOWN was accepted but the machine is still on"
    }
}
