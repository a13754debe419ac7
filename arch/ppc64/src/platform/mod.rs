//! The platform seam (Linux's `ppc_md`): what differs between running as a
//! partition under a hypervisor (pseries: hypervisor calls, firmware
//! services, an interrupt controller and an HPT the hypervisor owns) and running on the machine itself (powernv: OPAL, a
//! partition table and an HPT in RAM). The rest of the kernel asks the
//! `Machine` chosen at boot and never names a platform's calls.
//!
//! Three traits, each for one thing: `Machine` (console, interrupt modes,
//! MMU-table registration, CPU start, power-off), `IrqController` (IPIs and
//! external interrupts) and `HpteOps` (Linux's `mmu_hash_ops`: the hashed
//! page table's entries, behind which the hypervisor's table and a native
//! one are siblings).

pub mod powernv;
pub mod pseries;

use boot::BootInfo;
use kernel::cmdline::MmuMode;
pub use kernel::mm::mmu::Scope;

/// An HPTE as the table holds it: dword 0 (`v`: AVPN, valid, bolted,
/// secondary) and dword 1 (`r`: real page, rights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hpte {
    pub v: u64,
    pub r: u64,
}

/// Why an HPTE operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpteError {
    /// All eight slots of the group are valid.
    GroupFull,
    /// No such entry, or its AVPN did not match.
    NotFound,
    /// The platform refused the arguments (its status code).
    Parameter(i64),
    /// The platform reported a hardware error.
    Hardware,
    /// Any other status the platform returned.
    Other(i64),
}

/// The hashed page table's entries (Linux's `mmu_hash_ops`). `ptex` is a
/// slot index (group * 8 + slot); `v` names the entry an operation expects
/// there, compared by AVPN, so a slot reused by another page is left alone.
/// `scope` says which CPUs may hold the translation an operation drops:
/// `Local` lets a table the kernel owns invalidate with `tlbiel` (Linux's
/// `local` argument); a hypervisor's table decides for itself.
pub trait HpteOps: Sync {
    /// Inserts `(v, r)` into a free slot of the group starting at
    /// `group_ptex`; returns the slot's ptex.
    fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, HpteError>;
    /// Removes the entry at `ptex` if it is still `v`'s; returns what it held.
    fn remove(&self, ptex: u64, v: u64, scope: Scope) -> Result<Hpte, HpteError>;
    /// Gives the entry at `ptex` (if still `v`'s) the PP and N bits of `r`.
    fn protect(&self, ptex: u64, v: u64, r: u64, scope: Scope) -> Result<(), HpteError>;
    /// Reads the entry at `ptex`.
    fn read(&self, ptex: u64) -> Result<Hpte, HpteError>;
    /// Reads the four entries at `ptex & !3`.
    fn read4(&self, ptex: u64) -> Result<[Hpte; 4], HpteError> {
        let base = ptex & !3;
        let mut four = [Hpte { v: 0, r: 0 }; 4];
        for (i, hpte) in four.iter_mut().enumerate() {
            *hpte = self.read(base + i as u64)?;
        }
        Ok(four)
    }
    /// The POWER9 `tlbie` fix-ups this table's invalidations apply
    /// (`TlbieErrata::name`): none where the platform invalidates for us.
    fn tlbie_fixups(&self) -> &'static str {
        "none"
    }
    /// Removes up to four entries; `Err` for the first that was not there
    /// (the others may or may not be gone: callers fall back to `remove`).
    fn remove_four(&self, entries: &[(u64, u64)], scope: Scope) -> Result<(), HpteError> {
        entries.iter().try_for_each(|&(ptex, v)| self.remove(ptex, v, scope).map(drop))
    }
}

/// Interrupt delivery between CPUs and from devices (one controller per
/// platform: pseries's through hypervisor calls; doorbells on powernv).
pub trait IrqController: Sync {
    /// Lets this CPU take interrupts of every priority.
    fn init_cpu(&self) -> Result<(), &'static str>;
    /// Interrupts the CPU with interrupt server `server`.
    fn send_ipi(&self, server: u32);
    /// The vector the IPIs `send_ipi` sends arrive at; `handle_external`
    /// runs for it, and an interrupt at the other IPI-like vector is
    /// unexpected (nothing asked for it).
    fn ipi_vector(&self) -> u64;
    /// Handles this CPU's pending external interrupts, calling `on_ipi` for
    /// each IPI; returns how many other sources it saw and ended.
    fn handle_external(&self, my_server: u32, on_ipi: &dyn Fn()) -> u32;
}

/// What the radix MMU needs the platform to know about its tables.
#[derive(Debug, Clone, Copy)]
pub struct ProcessTable {
    /// Physical address of the process table.
    pub base: u64,
    /// Its size as log2 bytes minus 12 (the PRTS field).
    pub size_field: u64,
    /// Dword 0 of the kernel's own entry (tree size, root, index size):
    /// on bare metal the partition table's entry points partition-scoped
    /// translation at the same tree, as Linux's radix_init_native does.
    pub kernel_entry: u64,
}

/// Everything that differs between platforms, chosen once at boot.
pub trait Machine: Sync {
    fn name(&self) -> &'static str;
    /// Writes console bytes ("\n" as the terminal needs it); never hangs.
    fn console_write(&self, bytes: &[u8]);
    /// The MMU the platform agreed to run: what `mmu=` asked for, or the
    /// fallback (hash where radix cannot be had), decided while the
    /// firmware was still there.
    fn mmu(&self) -> MmuMode;
    /// Confirms the platform granted the MMU about to be turned on (`radix`
    /// or hash): a partition checks what the hypervisor wrote back.
    fn check_mmu(&self, info: &BootInfo, radix: bool) -> Result<(), &'static str>;
    /// Makes interrupts enter little-endian (LPCR[ILE] or its equivalent).
    fn take_interrupts_little_endian(&self) -> Result<(), &'static str>;
    /// Makes interrupts taken with translation on land relocated at
    /// 0xc000000000004000 + vector (AIL 3).
    fn relocate_interrupts(&self) -> Result<(), &'static str>;
    /// Switches the partition to radix with this process table (and guest
    /// `tlbie`, GTSE).
    fn register_radix(&self, table: ProcessTable) -> Result<(), &'static str>;
    /// Says the hash MMU (HPT and SLB) is used, on processors with a
    /// process table (ISA 3.00 and later); a no-op before.
    fn register_hash(&self) -> Result<(), &'static str>;
    /// log2 of the hashed page table's size in bytes: the hypervisor's
    /// (pseries), or one the kernel allocates and owns (bare metal).
    fn hash_table(&self, info: &BootInfo) -> Result<u32, &'static str>;
    /// The hashed page table's entries, if the platform has one.
    fn hpte(&self) -> Option<&'static dyn HpteOps>;
    /// The interrupt controller.
    fn irq(&self) -> &'static dyn IrqController;
    /// Waits, called with interrupts off, until an interrupt is pending
    /// for this CPU (at once if one already is), and resumes at the next
    /// instruction: the idle loop's sleep (a partition cedes the processor
    /// to its hypervisor; bare metal: `stop` with PSSCR[EC] = 0). May return with interrupts on; the
    /// caller turns them on, which takes the interrupt. A platform without
    /// such a wait returns at once, and the idle loop spins.
    fn idle_wait(&self) {}
    /// Whether `idle_wait` waits on this machine (the self-tests ask).
    fn can_idle_wait(&self) -> bool {
        false
    }
    /// Starts the stopped CPU `server` in the kernel's secondary entry
    /// (asm/entry.s) so that it finds PerCpu area `index`. `Err` says why it
    /// could not.
    fn start_cpu(&self, info: &BootInfo, server: u32, index: usize) -> Result<(), StartError>;
    /// What a CPU `start_cpu` started needs before the kernel's own
    /// per-CPU setup (on bare metal: machine checks on, LPCR and the
    /// partition table as the boot CPU has them).
    fn init_secondary(&self);
    /// Memory the platform's firmware keeps using after boot, which the
    /// frame allocator must never hand out.
    fn reserved(&self, info: &BootInfo) -> Option<kernel::mm::Reserved>;
    /// Logs what the platform's firmware left for the kernel.
    fn describe(&self, info: &BootInfo);
    /// Powers the machine off; returns only if the platform refused, saying why.
    fn power_off(&self) -> &'static str;
}

/// Why a CPU was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// The platform cannot start CPUs (no call for it).
    Unsupported,
    /// The CPU is not stopped (it runs firmware or something else).
    NotStopped,
    /// The platform's call failed.
    Failed(i64),
}

static MACHINE: kernel::sync::BootOnce<&'static dyn Machine> = kernel::sync::BootOnce::new();

/// Records the platform the kernel runs on (once, first thing at boot).
pub fn install(machine: &'static dyn Machine) {
    // SAFETY: called by the boot CPU's first Rust code, before it starts any
    // other CPU.
    unsafe { MACHINE.set(machine) };
}

/// The platform, once `install`ed. Before that (the first instructions
/// of boot) nothing may ask.
pub fn machine() -> &'static dyn Machine {
    *MACHINE.get().expect("the platform is installed before anything asks for it")
}

/// The platform if installed, for the fatal path (which may run before).
pub fn try_machine() -> Option<&'static dyn Machine> {
    MACHINE.get().copied()
}

/// The console sink installed into `kernel::console`.
pub fn console_write(bytes: &[u8]) {
    if let Some(machine) = try_machine() {
        machine.console_write(bytes);
    }
}
