//! The kernel image for POWER: a pseries partition (QEMU `-M pseries`, KVM
//! guests) or the machine's own hypervisor under skiboot (powernv: QEMU
//! `-M powernv9`, POWER9 hardware). One image boots both; the MSR at entry
//! says which.
//!
//! Boot order: entry.s (endianness, relocation, BSS, stack) → firmware phase
//! (device tree, platform services) → exception vectors → command line → banner → frames
//! and heap → self-tests → deliberate failure if `inject=` asks → power-off.
#![no_std]
#![no_main]

extern crate alloc;

mod bench;
mod cpu;
mod exceptions;
mod fatal;
mod inject;
mod khugepaged;
mod ksyms;
mod memory;
mod mmu;
mod nmi;
mod percpu;
mod platform;
mod process;
mod sched;
mod secondary;
mod selftests;
mod smp;
mod timer;
mod trap;
mod vector;
mod vm;

use core::arch::global_asm;
use core::sync::atomic::Ordering;

use boot::BootInfo;
use kernel::cmdline::{self, Inject};
use kernel::ktest::{self, Env, SUMMARY};
use kernel::mm::{self, FRAME_SIZE};
use kernel::{console, debug, info, println, warn};

global_asm!(include_str!("asm/entry.s"));

const VERSION: &str = env!("CARGO_PKG_VERSION");

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// Called by entry.s on the boot CPU, relocated, on the boot stack, in real
/// mode, with interrupts off, with what the firmware passed: pseries's
/// client interface (r5), or skiboot's device tree (r3) and OPAL (r8, r9),
/// and the MSR it entered with.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
extern "C" fn boot_cpu_entry(
    client_interface: u64,
    fdt: u64,
    _initrd_size: u64,
    load_base: u64,
    bad_relocations: u64,
    opal_base: u64,
    opal_entry: u64,
    entry_msr: u64,
) -> ! {
    timer::record_kernel_entry();
    kernel::time::set_clock(cpu::timebase, 512_000_000);
    // Entered in hypervisor state: skiboot on bare metal; otherwise a
    // pseries partition's firmware (SLOF or VOF).
    let bare_metal = entry_msr & cpu::msr::HV != 0;
    if bare_metal {
        // OPAL is recorded from the device tree (firmware::take_over); the
        // console works from then on.
        platform::install(&platform::powernv::POWERNV);
    } else {
        platform::install(&platform::pseries::PSERIES);
    }
    console::set_sink(platform::console_write);
    fatal::set_readable_limit(mm::virt_to_phys(ksyms::image_end()));
    if bad_relocations != 0 {
        panic!("entry: {bad_relocations} dynamic relocations are not R_PPC64_RELATIVE; the image cannot run");
    }
    debug_assert_eq!(load_base, ksyms::load_base());

    let info = BOOT_INFO.call_once(|| {
        if bare_metal {
            // SAFETY: what skiboot passed, read once, in real mode.
            unsafe { platform::powernv::firmware::take_over(fdt, opal_base, opal_entry) }
        } else {
            // SAFETY: the entry the firmware passed us, called once, in real
            // mode, before anything overwrote firmware memory.
            unsafe { platform::pseries::firmware::take_over(client_interface) }
        }
    });
    fatal::set_readable_limit(info.real_mode_limit);

    percpu::init_boot_cpu();
    cpu::disable_fp_and_vector();
    let machine = platform::machine();
    machine.take_interrupts_little_endian().unwrap_or_else(|why| panic!("{}: {why}", machine.name()));
    // SAFETY: translation is off and the firmware is quiesced, so the vector
    // area is ours.
    unsafe { exceptions::install(info.dcache_block_size as usize, info.icache_block_size as usize) };

    let mut problems: heapless::Vec<cmdline::Problem<'_>, 16> = heapless::Vec::new();
    let options = cmdline::parse(info.bootargs(), |problem| {
        let _ = problems.push(problem);
    });
    console::set_loglevel(options.loglevel);
    for problem in &problems {
        warn!("cmdline: {problem}");
    }

    memory::init(info, load_base);
    // The race knobs, for every caller that does not choose for itself.
    mm::knobs::set_collapse_ipi(options.collapse_ipi);
    mm::knobs::set_gup_pmd_recheck(options.gup_pmd_recheck);
    // What the firmware phase negotiated: `mmu=`, or hash where radix was
    // asked for and the processor or platform has none.
    let translating = mmu::init(info, machine.mmu()).unwrap_or_else(|(mmu, why)| panic!("{mmu}: {why}"));
    if translating {
        // Translation reaches all RAM now, not just the real-mode area.
        let added = mm::add_memory_above(info, info.real_mode_limit);
        if added > 0 {
            info!("memory: {} MiB above the real-mode limit now usable", (added * FRAME_SIZE) >> 20);
        }
        fatal::set_readable_limit(info.memory.iter().map(|r| r.end()).max().unwrap_or(0));
    }
    kernel::time::set_clock(cpu::timebase, info.timebase_frequency);
    timer::init(info.timebase_frequency);
    if let Err(why) = machine.irq().init_cpu() {
        warn!("irq: {why}; no IPIs");
    }
    smp::init_rcu();
    process::note_scv(cpu::enable_scv());
    let online = secondary::start_secondaries(info);
    print_banner(info, online);

    // From here the boot CPU runs with interrupts on: it takes IPIs and
    // ticks, and so passes RCU quiescent states like every other CPU.
    sched::init_cpu();
    timer::arm();
    cpu::enable_interrupts();
    let env = Env { boot: info, options: &options, online_cpus: online };
    run_selftests(&env);
    if let Some(inject) = options.inject.filter(|&i| i != Inject::NotOk) {
        inject::fail(inject);
    }
    let _ = SUMMARY.write(&mut ConsoleWriter);
    fatal::power_off()
}

fn print_banner(info: &BootInfo, online: usize) {
    println!(
        "ppc64-kernel {VERSION}: firmware={} cpus={} online={online} memory={}MiB mmu={} tlbie_fixups={} cmdline=\"{}\"",
        info.firmware.unwrap_or(boot::Firmware::Unknown).name(),
        info.cpus_in_tree(),
        info.memory_size() >> 20,
        mmu::backend().name(),
        mmu::backend().tlbie_fixups(),
        info.bootargs()
    );
    info!(
        "cpu: PVR {:#010x}, PIR {}, timebase {} Hz, MSR {:#x}",
        cpu::pvr(),
        cpu::pir(),
        info.timebase_frequency,
        cpu::msr()
    );
    for cpu in &info.cpus {
        debug!("cpu: interrupt server {} (core {} thread {})", cpu.server, cpu.core, cpu.thread);
    }
    debug!(
        "mmu: hash table 2^{} bytes, SLB {} entries, radix page sizes {:x?}",
        info.hpt_size_log2.unwrap_or(0),
        info.slb_size.unwrap_or(0),
        info.radix_page_sizes.as_slice()
    );
    for range in &info.memory {
        info!("memory: {:#014x}-{:#014x} ({} MiB)", range.start, range.end(), range.size >> 20);
    }
    info!("real-mode limit: {:#x}", info.real_mode_limit);
    platform::machine().describe(info);
}

fn run_selftests(env: &Env<'_>) {
    let mut plan = ktest::Plan::new(ktest::registered(), selftests::ORDER);
    let bench_suite = plan.remove(bench::SUITE);
    let filter = ktest::Filter::new(env.options.selftest);
    for pattern in filter.unmatched(plan.suites()) {
        warn!("selftest: pattern '{pattern}' matches no test");
    }
    // Benchmarks (bench=, patterns of their names) run after the self-tests,
    // then the injected failure.
    let benchmarks = ktest::Filter::new(env.options.bench);
    let mut extra: alloc::vec::Vec<(&'static str, &ktest::Test)> = bench_suite
        .iter()
        .flat_map(|suite| suite.tests.iter())
        .filter(|test| benchmarks.matches(test.name, test.name))
        .map(|&test| (bench::SUITE, test))
        .collect();
    if env.options.bench != "none" && extra.is_empty() {
        warn!("bench: '{}' selects no benchmark", env.options.bench);
    }
    if env.options.inject == Some(Inject::NotOk) {
        extra.push(("inject", &inject::NOT_OK_TEST));
    }
    let now = cpu::timebase();
    bench::FIRST_TEST_TB.store(now, Ordering::Release);
    let frequency = env.boot.timebase_frequency.max(1);
    println!(
        "# boot: kernel entry at timebase {} ({} us after reset), first self-test at {} us",
        timer::kernel_entry(),
        timer::kernel_entry() * 1_000_000 / frequency,
        now * 1_000_000 / frequency
    );
    selftests::accounting::record_baseline();
    let _ = ktest::run(&plan, &extra, filter, env, &SUMMARY, &mut ConsoleWriter);
}

/// The console as a `fmt::Write`, taking the console lock per formatted
/// write so that each KTAP line stays whole.
struct ConsoleWriter;

impl core::fmt::Write for ConsoleWriter {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        console::write_fmt(format_args!("{text}"));
        Ok(())
    }

    fn write_fmt(&mut self, args: core::fmt::Arguments<'_>) -> core::fmt::Result {
        console::write_fmt(args);
        Ok(())
    }
}

pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot info is read before anything asks for it")
}
