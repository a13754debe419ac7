//! Self-tests of the boot facts: the device tree's CPUs and memory, the
//! memory map and what it reserves, the timebase.

use kernel::ktest::{fail, ktest, Env, TestResult};
use kernel::{kassert, kassert_eq, kskip};

use crate::{cpu, ksyms};

#[ktest]
fn cpus_match_expected(env: &Env<'_>) -> TestResult {
    let Some(expected) = env.options.expect_cpus else { kskip!("no expect_cpus= on the command line") };
    kassert_eq!(env.boot.cpus.len(), expected as usize);
    Ok(())
}

#[ktest]
fn memory_matches_expected(env: &Env<'_>) -> TestResult {
    let Some(expected) = env.options.expect_mem else { kskip!("no expect_mem= on the command line") };
    kassert_eq!(env.boot.memory_size(), expected);
    Ok(())
}

#[ktest]
fn boot_cpu_is_listed(env: &Env<'_>) -> TestResult {
    let pir = cpu::pir();
    kassert!(env.boot.cpus.iter().any(|c| c.server == pir), "PIR {pir} not among the device tree's interrupt servers");
    Ok(())
}

/// Memory ranges are disjoint, `available` lies inside memory, and neither
/// the kernel image nor what the platform's firmware keeps is listed as
/// available (the firmware claimed them).
#[ktest]
fn memory_map_is_consistent(env: &Env<'_>) -> TestResult {
    let boot = env.boot;
    for pair in boot.memory.windows(2) {
        kassert!(pair[0].end() <= pair[1].start, "memory ranges overlap: {:?}", pair);
    }
    for a in &boot.available {
        kassert!(
            boot.memory.iter().any(|m| m.start <= a.start && a.end() <= m.end()),
            "available {a:?} outside memory"
        );
        let overlaps = |start: u64, end: u64| a.start < end && start < a.end();
        let image = (kernel::mm::virt_to_phys(ksyms::load_base()), kernel::mm::virt_to_phys(ksyms::image_end()));
        kassert!(!overlaps(image.0, image.1), "kernel image listed as available in {a:?}");
        if let Some(kept) = crate::platform::machine().reserved(boot) {
            kassert!(!overlaps(kept.start, kept.end), "{} listed as available in {a:?}", kept.what);
        }
    }
    kassert!(boot.real_mode_limit > 0 && boot.real_mode_limit <= boot.memory_size());
    Ok(())
}

#[ktest]
fn reserved_ranges_not_free(env: &Env<'_>) -> TestResult {
    let allocator = kernel::mm::FRAMES.lock();
    let allocator = allocator.as_ref().ok_or_else(|| fail("no frame allocator"))?;
    for range in crate::memory::reserved_ranges(env.boot, ksyms::load_base()) {
        let mut frame = range.start & !(kernel::mm::FRAME_SIZE - 1);
        while frame < range.end {
            let f = kernel::mm::Frame::from_address(frame).expect("aligned");
            kassert!(!allocator.is_free(f), "{} frame {frame:#x} is free", range.what);
            frame += kernel::mm::FRAME_SIZE;
        }
    }
    Ok(())
}

#[ktest]
fn timebase_advances(env: &Env<'_>) -> TestResult {
    kassert!(env.boot.timebase_frequency >= 1_000_000, "timebase {} Hz", env.boot.timebase_frequency);
    let start = cpu::timebase();
    let mut later = start;
    for _ in 0..1_000_000 {
        later = cpu::timebase();
        if later > start {
            break;
        }
    }
    kassert!(later > start, "timebase stuck at {start}");
    Ok(())
}
