//! pseries: the kernel as a partition under a PAPR hypervisor (QEMU
//! `-M pseries`, PowerVM, KVM). Booted by SLOF or VOF through the Open
//! Firmware client interface; everything the platform does for the kernel
//! goes through hypervisor calls (hcall.rs, the one table of them) or RTAS
//! (rtas.rs): the console (hvc.rs), interrupt modes (H_SET_MODE), the
//! MMU's tables (H_REGISTER_PROC_TBL), IPIs (xics.rs), HPTEs (lpar.rs),
//! CPU start and power-off (RTAS).

pub mod firmware;
pub mod hcall;
pub mod hvc;
pub mod lpar;
pub mod realmode;
pub mod rtas;
#[deny(unsafe_code)]
pub mod selftests;
pub mod xics;

use boot::processor::IsaLevel;
use boot::BootInfo;
use kernel::cmdline::MmuMode;

use crate::platform::{HpteOps, IrqController, Machine, ProcessTable, StartError};

/// H_REGISTER_PROC_TBL's flags (PAPR; Linux hvcall.h).
const PROC_TABLE_NEW: u64 = 0x18;
const PROC_TABLE_RADIX: u64 = 0x04;
const PROC_TABLE_GTSE: u64 = 0x01;

/// H_SET_MODE_RESOURCE_AIL's mflags 3: vectors at 0xc000000000004000 with
/// translation on (PAPR; Linux plpar_set_mode).
const AIL_0XC000000000004000: u64 = 3;

/// `query-cpu-stopped-state` result for a stopped CPU (PAPR).
const CPU_STOPPED: u32 = 0;

pub struct Pseries;
pub static PSERIES: Pseries = Pseries;

impl Machine for Pseries {
    fn name(&self) -> &'static str {
        "pseries"
    }

    fn console_write(&self, bytes: &[u8]) {
        hvc::write(bytes);
    }

    fn mmu(&self) -> MmuMode {
        firmware::negotiated_mmu()
    }

    /// CAS's answer, in `/chosen ibm,architecture-vec-5`, must match.
    fn check_mmu(&self, info: &BootInfo, radix: bool) -> Result<(), &'static str> {
        match (radix, boot::cas::negotiated_radix(&info.arch_vec5)) {
            (true, false) => Err("CAS did not grant radix (/chosen ibm,architecture-vec-5 byte 24)"),
            (false, true) => Err("CAS chose radix; mmu=hash needs the hash MMU"),
            _ => Ok(()),
        }
    }

    /// PAPR: a partition chooses the endianness of interrupts with
    /// H_SET_MODE; the firmware may have left them big-endian.
    fn take_interrupts_little_endian(&self) -> Result<(), &'static str> {
        let status = hcall::hcall4_retry(
            hcall::H_SET_MODE,
            hcall::H_SET_MODE_ENDIAN_LITTLE,
            hcall::H_SET_MODE_RESOURCE_LE,
            0,
            0,
        );
        match status {
            hcall::H_SUCCESS => Ok(()),
            _ => Err("H_SET_MODE refused little-endian interrupts"),
        }
    }

    fn relocate_interrupts(&self) -> Result<(), &'static str> {
        let status =
            hcall::hcall4_retry(hcall::H_SET_MODE, AIL_0XC000000000004000, hcall::H_SET_MODE_RESOURCE_AIL, 0, 0);
        match status {
            hcall::H_SUCCESS => Ok(()),
            _ => Err("H_SET_MODE refused relocation-on interrupts (AIL 3)"),
        }
    }

    /// H_REGISTER_PROC_TBL switches the partition to radix (CAS granted it
    /// with GTSE in the firmware phase), as Linux's radix_init_pseries.
    fn register_radix(&self, table: ProcessTable) -> Result<(), &'static str> {
        let status = hcall::hcall4_retry(
            hcall::H_REGISTER_PROC_TBL,
            PROC_TABLE_NEW | PROC_TABLE_RADIX | PROC_TABLE_GTSE,
            table.base,
            0,
            table.size_field,
        );
        match status {
            hcall::H_SUCCESS => Ok(()),
            _ => Err("H_REGISTER_PROC_TBL refused the process table"),
        }
    }

    /// ISA 3.0 hash partitions tell the hypervisor they use the HPT with
    /// SLBs (flags 0: keep the registration; a no-op under TCG, needed under
    /// KVM). Before ISA 3.0 there is no process table to register (Linux
    /// makes the call only with CPU_FTR_ARCH_300).
    fn register_hash(&self) -> Result<(), &'static str> {
        if crate::cpu::processor().isa < IsaLevel::V3_00 {
            return Ok(());
        }
        match hcall::hcall4_retry(hcall::H_REGISTER_PROC_TBL, 0, 0, 0, 0) {
            hcall::H_SUCCESS => Ok(()),
            _ => Err("H_REGISTER_PROC_TBL refused hash with SLBs"),
        }
    }

    /// The hypervisor sized and owns it (`ibm,pft-size`).
    fn hash_table(&self, info: &BootInfo) -> Result<u32, &'static str> {
        info.hpt_size_log2.ok_or("no ibm,pft-size: the platform has no hashed page table")
    }

    fn hpte(&self) -> Option<&'static dyn HpteOps> {
        Some(&lpar::LPAR)
    }

    fn irq(&self) -> &'static dyn IrqController {
        &xics::XICS
    }

    /// H_CEDE (PAPR 14.5.4.3.1): the hypervisor sets MSR[EE] and stops
    /// this processor until an interrupt is pending for it (an IPI or the
    /// decrementer), returning at once if one already is; the interrupt
    /// is then taken on the hcall's return, so one that arrived after the
    /// idle loop looked for work is not lost.
    fn idle_wait(&self) {
        let _ = hcall::hcall4(hcall::H_CEDE, 0, 0, 0, 0);
    }

    fn can_idle_wait(&self) -> bool {
        true
    }

    /// RTAS `start-cpu`, after `query-cpu-stopped-state` says it is stopped:
    /// it enters `secondary_start` with r3 = the PerCpu index.
    fn start_cpu(&self, info: &BootInfo, server: u32, index: usize) -> Result<(), StartError> {
        let entry = kernel::mm::virt_to_phys(crate::secondary::secondary_start as *const () as u64);
        let argument = index as u64;
        let start = info.rtas.tokens.start_cpu.ok_or(StartError::Unsupported)?;
        if let Some(query) = info.rtas.tokens.query_cpu_stopped_state {
            let mut state = [0u32];
            match rtas::call(query, &[server], &mut state) {
                Ok(rtas::RTAS_SUCCESS) if state[0] == CPU_STOPPED => {}
                Ok(rtas::RTAS_SUCCESS) => return Err(StartError::NotStopped),
                Ok(status) => return Err(StartError::Failed(status as i64)),
                Err(_) => return Err(StartError::Unsupported),
            }
        }
        match rtas::call(start, &[server, entry as u32, argument as u32], &mut []) {
            Ok(rtas::RTAS_SUCCESS) => Ok(()),
            Ok(status) => Err(StartError::Failed(status as i64)),
            Err(_) => Err(StartError::Unsupported),
        }
    }

    /// The hypervisor started the CPU as it starts a partition's: nothing
    /// more to set up.
    fn init_secondary(&self) {}

    /// RTAS, instantiated in the firmware phase, lives on.
    fn reserved(&self, info: &BootInfo) -> Option<kernel::mm::Reserved> {
        let rtas = &info.rtas;
        Some(kernel::mm::Reserved { start: rtas.base, end: rtas.base + rtas.size as u64, what: "RTAS" })
    }

    fn describe(&self, info: &BootInfo) {
        kernel::info!(
            "pseries: RTAS at {:#x} (entry {:#x}, {} bytes)",
            info.rtas.base,
            info.rtas.entry,
            info.rtas.size
        );
    }

    fn power_off(&self) -> &'static str {
        match rtas::power_off() {
            Ok(_) => "RTAS power-off returned",
            Err(why) => why,
        }
    }
}

/// An hcall number that is not a multiple of 4 names no hcall (PAPR): the
/// hypervisor answers H_FUNCTION.
const NO_SUCH_HCALL: u64 = 0x2;

/// Makes a call QEMU logs as a guest error (`-d unimp`) and survives it,
/// for `inject=guest_error`; says what it did.
pub fn plant_guest_error() -> alloc::string::String {
    let status = hcall::hcall4(NO_SUCH_HCALL, 0, 0, 0, 0);
    let name = if status == hcall::H_FUNCTION { " (H_FUNCTION)" } else { "" };
    alloc::format!("hcall {NO_SUCH_HCALL:#x} returned {status}{name}")
}
