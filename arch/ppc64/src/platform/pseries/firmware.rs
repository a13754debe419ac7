//! The firmware phase of boot: while SLOF or VOF is still alive, read the
//! device tree through the client interface, instantiate RTAS, then quiesce
//! the firmware. After this the kernel owns the machine.

use core::sync::atomic::{AtomicU8, Ordering};

use boot::cas::{self, MmuRequest};
use boot::of::ClientInterface;
use boot::tree::{self, DeviceTree};
use boot::BootInfo;
use kernel::cmdline::{self, MmuMode};

/// RTAS is instantiated on a 4 KiB boundary (as Linux's prom_init does).
const RTAS_ALIGN: u32 = 0x1000;

/// Reads everything the kernel needs from the firmware and instantiates RTAS.
/// A missing required node or property is a panic naming it.
///
/// # Safety
/// `client_interface` must be the entry the firmware passed at boot, and this
/// must run once, in real mode, before anything overwrites firmware memory.
pub unsafe fn take_over(client_interface: u64) -> BootInfo {
    // SAFETY: forwarded from the caller; firmware_call_be32 implements the
    // calling convention.
    let ci = unsafe { ClientInterface::new(client_interface, super::realmode::firmware_call_be32) };

    // RTAS first, so that later fatal errors can power the machine off.
    let rtas_node = ci.find("/rtas").unwrap_or_else(|| panic!("device tree has no node /rtas"));
    let rtas_size = read_u32(&ci, rtas_node, "/rtas", "rtas-size");
    let power_off = read_u32(&ci, rtas_node, "/rtas", "power-off");
    let base = ci
        .claim(rtas_size, RTAS_ALIGN)
        .unwrap_or_else(|| panic!("firmware: cannot claim {rtas_size:#x} bytes for RTAS"));
    let entry = ci.instantiate_rtas(base).unwrap_or_else(|| panic!("firmware: instantiate-rtas at {base:#x} failed"));
    let mut rtas = boot::Rtas { size: rtas_size, base: base as u64, entry: entry as u64, ..Default::default() };
    rtas.tokens.power_off = power_off;
    super::rtas::init(&rtas);

    // The MMU is chosen before the tree is read: CAS may rewrite it.
    let chosen = match early_mmu_choice(&ci) {
        MmuMode::Radix => negotiate_radix(&ci),
        MmuMode::Hash => negotiate(&ci, MmuRequest::Hash),
        MmuMode::Off => MmuMode::Off,
    };
    NEGOTIATED_MMU.store(chosen as u8, Ordering::Relaxed);

    // Read after the claim, so `available` already excludes RTAS.
    let mut info = BootInfo::read(&ci).unwrap_or_else(|error| panic!("{error}"));
    info.rtas.base = rtas.base;
    info.rtas.entry = rtas.entry;
    super::rtas::init(&info.rtas);

    if let Some(termno) = info.console_termno {
        super::hvc::set_termno(termno);
    }
    // SLOF stops its devices; VOF has nothing to stop. Failure is harmless.
    if ci.quiesce().is_err() {
        kernel::debug!("firmware: quiesce not supported");
    }
    info
}

/// `mmu=` from /chosen/bootargs, read before BootInfo exists. Problems with
/// the command line are reported later, when it is parsed for real.
fn early_mmu_choice(ci: &ClientInterface) -> MmuMode {
    let mut bootargs = [0u8; boot::info::MAX_BOOTARGS];
    let text = ci
        .find("/chosen")
        .and_then(|chosen| ci.getprop(chosen, "bootargs", &mut bootargs))
        .map(|len| tree::first_string(&bootargs[..len.min(bootargs.len())]))
        .and_then(|bytes| core::str::from_utf8(bytes).ok())
        .unwrap_or("");
    cmdline::parse(text, |_| {}).mmu
}

/// The MMU the firmware phase negotiated (an `MmuMode` as u8): what `mmu=`
/// asked for, or hash where radix was asked for but cannot be had.
static NEGOTIATED_MMU: AtomicU8 = AtomicU8::new(MmuMode::Off as u8);

/// The MMU to turn on, as negotiated with the platform in the firmware phase.
pub fn negotiated_mmu() -> MmuMode {
    MmuMode::from_u8(NEGOTIATED_MMU.load(Ordering::Relaxed))
}

/// Asks for radix with GTSE and XICS through `ibm,client-architecture-support`;
/// where the processor or the platform has no radix, falls back to hash with
/// a warning, as Linux does.
fn negotiate_radix(ci: &ClientInterface) -> MmuMode {
    let cpu = crate::cpu::processor();
    if !cpu.isa.has_radix() {
        kernel::warn!("mmu: {} (ISA {}) has no radix MMU; falling back to hash", cpu.name, cpu.isa.name());
        return negotiate(ci, MmuRequest::Hash);
    }
    let chosen = ci.find("/chosen").unwrap_or_else(|| panic!("device tree has no node /chosen"));
    let mut support = [0u8; 16];
    let len = ci.getprop(chosen, "ibm,arch-vec-5-platform-support", &mut support).unwrap_or(0);
    if !cas::platform_offers_radix(&support[..len.min(support.len())]) {
        kernel::warn!(
            "mmu: the platform does not offer radix (/chosen ibm,arch-vec-5-platform-support); falling back to hash"
        );
        return negotiate(ci, MmuRequest::Hash);
    }
    negotiate(ci, MmuRequest::RadixGtse)
}

fn negotiate(ci: &ClientInterface, mmu: MmuRequest) -> MmuMode {
    let cpu = crate::cpu::processor();
    let vector = cas::vector(mmu, &cpu);
    if let Err(error) = ci.client_architecture_support(&vector) {
        panic!("ibm,client-architecture-support refused {mmu:?} for {} (ISA {}): {error:?}", cpu.name, cpu.isa.name());
    }
    match mmu {
        MmuRequest::RadixGtse => MmuMode::Radix,
        MmuRequest::Hash => MmuMode::Hash,
    }
}

fn read_u32(ci: &ClientInterface, node: u32, path: &str, property: &str) -> u32 {
    let mut buf = [0u8; 4];
    match ci.getprop(node, property, &mut buf) {
        Some(4) => u32::from_be_bytes(buf),
        Some(_) => panic!("device tree node {path}: property \"{property}\" is not a 32-bit cell"),
        None => panic!("device tree node {path} lacks required property \"{property}\""),
    }
}
