//! The firmware phase of a bare-metal boot: what skiboot handed over (the
//! flattened device tree, OPAL) is read into `BootInfo` while nothing has
//! overwritten it yet, and the MMU is decided, as the pseries firmware phase
//! negotiates it with the hypervisor.

use core::sync::atomic::{AtomicU8, Ordering};

use boot::BootInfo;
use kernel::cmdline::{self, MmuMode};
use kernel::warn;

use crate::cpu;

/// The MMU chosen in `take_over` (an `MmuMode` as u8).
static MMU: AtomicU8 = AtomicU8::new(MmuMode::Off as u8);

/// Takes over from skiboot: reads the flattened device tree at `fdt`,
/// records OPAL from its `/ibm,opal` (as Linux does: skiboot also passes
/// OPAL's base and entry in r8/r9, a kexec's purgatory need not, so those
/// are only compared), turns machine checks on and decides the MMU. A tree
/// the kernel cannot use is a panic naming what is wrong; until OPAL is
/// known it can only be reported through r8/r9, when they look like OPAL.
/// The boot CPU is the one running this (its PIR); the tree's header names
/// it too, and a disagreement is reported.
///
/// # Safety
/// `fdt`, `opal_base` and `opal_entry` must be what the firmware passed in
/// r3, r8 and r9, and this must run once, in real mode, on the boot CPU.
pub unsafe fn take_over(fdt: u64, opal_base: u64, opal_entry: u64) -> BootInfo {
    cpu::enable_machine_checks();
    // No heap yet: errors are reported as they are, after the console is
    // made to work if it can.
    let console_from_registers = || {
        if plausible_opal(opal_base, opal_entry) {
            super::opal::init(opal_base, opal_entry);
        }
    };
    // SAFETY: the firmware passed the device tree's real address in r3, and
    // real mode reaches it at that address (the caller's contract).
    let tree = unsafe { boot::fdt::Fdt::from_raw(fdt as *const u8) }.unwrap_or_else(|why| {
        console_from_registers();
        panic!("the device tree at {fdt:#x}: {why}")
    });
    let info = BootInfo::read_fdt(&tree).unwrap_or_else(|error| {
        console_from_registers();
        panic!("{error}")
    });
    let opal = info.opal.expect("BootInfo::read_fdt requires /ibm,opal under skiboot");
    super::opal::init(opal.base, opal.entry);
    if opal_entry != 0 && (opal.base != opal_base || opal.entry != opal_entry) {
        warn!(
            "powernv: the firmware passed OPAL at {opal_base:#x} (entry {opal_entry:#x}); /ibm,opal says {:#x} ({:#x}), which is used",
            opal.base, opal.entry
        );
    }
    if let Some(boot_cpu) = info.boot_cpu.filter(|&pir| pir != cpu::pir()) {
        warn!("powernv: the device tree names PIR {boot_cpu} the boot CPU, but this is PIR {}", cpu::pir());
    }
    MMU.store(choose_mmu(info.bootargs()) as u8, Ordering::Relaxed);
    info
}

/// r8/r9 as skiboot sets them: an entry within the first 16 MiB above a
/// 64 KiB-aligned base (skiboot's runtime image is smaller).
fn plausible_opal(base: u64, entry: u64) -> bool {
    base != 0 && base.is_multiple_of(0x1_0000) && entry > base && entry - base < 16 << 20
}

/// `mmu=`, where the processor has it: POWER8 (ISA 2.07) has no radix.
fn choose_mmu(bootargs: &str) -> MmuMode {
    match cmdline::parse(bootargs, |_| {}).mmu {
        MmuMode::Radix if !cpu::processor().isa.has_radix() => {
            let cpu = cpu::processor();
            warn!("mmu: {} (ISA {}) has no radix MMU; falling back to hash", cpu.name, cpu.isa.name());
            MmuMode::Hash
        }
        mode => mode,
    }
}

/// The MMU `take_over` chose.
pub fn chosen_mmu() -> MmuMode {
    MmuMode::from_u8(MMU.load(Ordering::Relaxed))
}
