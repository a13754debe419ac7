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

/// Takes over from skiboot (OPAL is recorded already, `opal::init`): reads
/// the flattened device tree at `fdt`, turns machine checks on and decides
/// the MMU. A tree the kernel cannot use is a panic naming what is wrong.
/// The boot CPU is the one running this (its PIR); the tree's header names
/// it too, and a disagreement is reported.
///
/// # Safety
/// `fdt`, `opal_base` and `opal_entry` must be what skiboot passed in r3,
/// r8 and r9, and this must run once, in real mode, on the boot CPU.
pub unsafe fn take_over(fdt: u64, opal_base: u64, opal_entry: u64) -> BootInfo {
    cpu::enable_machine_checks();
    // SAFETY: skiboot passed the device tree's real address in r3, and real
    // mode reaches it at that address (the caller's contract).
    let tree = unsafe { boot::fdt::Fdt::from_raw(fdt as *const u8) }
        .unwrap_or_else(|why| panic!("skiboot's device tree at {fdt:#x}: {why}"));
    let info = BootInfo::read_fdt(&tree).unwrap_or_else(|error| panic!("{error}"));
    match info.opal {
        // Entered by something other than skiboot itself (a kexec from
        // petitboot passes only the device tree): OPAL is where the tree
        // says, and the console starts working only now.
        Some(opal) if opal_entry == 0 => super::opal::init(opal.base, opal.entry),
        Some(opal) if opal.base != opal_base || opal.entry != opal_entry => warn!(
            "powernv: /ibm,opal says OPAL is at {:#x} (entry {:#x}), skiboot passed {opal_base:#x} ({opal_entry:#x}); using skiboot's",
            opal.base, opal.entry
        ),
        _ => {}
    }
    if let Some(boot_cpu) = info.boot_cpu.filter(|&pir| pir != cpu::pir()) {
        warn!("powernv: the device tree names PIR {boot_cpu} the boot CPU, but this is PIR {}", cpu::pir());
    }
    MMU.store(choose_mmu(info.bootargs()) as u8, Ordering::Relaxed);
    info
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
    match MMU.load(Ordering::Relaxed) {
        x if x == MmuMode::Radix as u8 => MmuMode::Radix,
        x if x == MmuMode::Hash as u8 => MmuMode::Hash,
        _ => MmuMode::Off,
    }
}
