//! Benchmarks (`bench=`, after the self-tests, as KTAP tests of suite
//! `bench`): `#[ktest]` functions of this module, which main takes out of
//! the self-test plan and runs, those `bench=` names, in source order. Each
//! result is min/median/max over `bench_reps=` repetitions, timed with the
//! timebase, printed as `# BENCH {json}` (kernel::bench, `report`).
//! They never fail on a timing; they fail only if they could not run.
//! `make bench` boots the kernel with `bench=all` on both MMUs at 1, 2, 4
//! and 8 CPUs on pseries and puts the results beside Linux's (bench/linux),
//! and at 1 and 4 CPUs on powernv beside pseries's.

// Unsafe code only in the items that say so (each block with its SAFETY).
#![deny(unsafe_code)]

use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::cmdline::CollapseIpi;
use kernel::ktest::{fail, ktest, Env, Failure, TestResult};
use kernel::mm::collapse::Outcome;
use kernel::mm::mmu::{Scope, TlbFlush};
use kernel::mm::pagetable::{PageSize, Prot};
use kernel::mm::vm::{MmArch, RaceSettings};
use kernel::mm::{self, Frame, FRAME_SIZE};
use kernel::{kskip, time};

use crate::exceptions;
use crate::mmu::{hash, radix};
use crate::selftests::{inside, new_mm, ok, online_secondaries};
use crate::{cpu, mmu, smp, vm};

mod report;

use report::{print, report_rate, report_us, ticks_to_us};

/// The benchmarks' suite: this module's name.
pub const SUITE: &str = kernel::ktest::suite_of(module_path!());

/// Set by main: when the first test began (timebase).
pub static FIRST_TEST_TB: AtomicU64 = AtomicU64::new(0);
/// Set by the first benchmark: when the self-tests ended.
static SELFTESTS_END_TB: AtomicU64 = AtomicU64::new(0);

/// Untimed repetitions before the timed ones: QEMU's first touch of guest
/// memory costs the host a page fault (very slow when the host is itself a
/// VM), which would time the emulator, not the kernel. The frame allocator
/// is first-fit, so the timed repetitions reuse the warmed frames.
const WARM_UP: usize = 1;
const MIB: u64 = 1 << 20;
const RW: Prot = Prot::READ.union(Prot::WRITE);
const SMALL: u64 = 0x1000_0000;
const HUGE: u64 = 0x4000_0000;

fn reps(env: &Env<'_>) -> usize {
    env.options.bench_reps as usize
}

/// Boot to the first self-test, and the self-test run before the benchmarks.
#[ktest]
fn boot(env: &Env<'_>) -> TestResult {
    let now = cpu::timebase();
    SELFTESTS_END_TB.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire).ok();
    let first = FIRST_TEST_TB.load(Ordering::Acquire);
    let end = SELFTESTS_END_TB.load(Ordering::Acquire);
    let boot = ticks_to_us(first as f64);
    print(env, "boot_to_first_selftest", "us", (boot, boot, boot), 1);
    let entry = ticks_to_us(crate::timer::kernel_entry() as f64);
    print(env, "boot_to_kernel_entry", "us", (entry, entry, entry), 1);
    if env.options.selftest != "none" {
        let run = ticks_to_us(end.saturating_sub(first) as f64);
        print(env, "selftest_run", "us", (run, run, run), 1);
    }
    Ok(())
}

/// One page of `mm` mapped, touched and unmapped: the flush an unmap makes,
/// which a fault's or a floor's repetition starts after.
fn unmap_flush(mm: &vm::UserMm) -> TestResult {
    ok(mm.map(SMALL, FRAME_SIZE, RW, false))?;
    let _ = inside(mm, || exceptions::try_store(SMALL, 1));
    ok(mm.unmap(SMALL, FRAME_SIZE))
}

/// Frame `i` of the contiguous run starting at `run`.
fn frame_of(run: Frame, i: u64) -> Frame {
    Frame::from_address(run.address() + i * FRAME_SIZE).expect("aligned")
}

/// Anonymous fault-in: per 64 KiB page (32 pages per repetition) and per
/// 2 MiB huge page, touched through the MMU (the fault, the handler, the
/// zeroing, the retry); and the unmap of the 32 small pages, per page
/// (munmap: the tree, the flush, the frames back).
///
/// With them, in the same repetitions, their floors: zeroing 32 separate
/// 64 KiB frames as 32 faults do (`PageMemory::zero`: VSX stores of 16
/// bytes) and a 2 MiB page as a THP fault does. Each half of a repetition
/// starts after an unmap (whose flush empties QEMU's software TLB: the
/// memory then costs a TLB fill per 4 KiB, which the faults pay too) and
/// uses the same frames each time, as the first-fit allocator hands the
/// faults the same frames. Interleaved, a path and its floor see the same
/// host: on this emulator a whole boot, or part of one, can run 1.5-2x
/// slower than another, and their ratio should not move with it.
///
/// And what every fault pays besides its zeroing: an interrupt's round
/// trip through the kernel's entry, dispatch and exit that resolves
/// nothing (`trap_round_trip`: a `trap` resumed at its exception-table
/// fix-up; a fault pays more, the emulator's failed translation and the
/// retried access's TLB fill), and on hash the preload's insert of one
/// HPTE (`hpte_insert`: a hypervisor call on pseries, the kernel's own
/// HPTE store on bare metal), for pages nothing touches, removed untimed.
/// Both come last in a repetition, on warm translations, so they err low.
#[ktest]
fn fault(env: &Env<'_>) -> TestResult {
    use kernel::mm::vm::PageMemory;
    const PAGES: u64 = 32;
    let mm = new_mm()?;
    let zero_small = mm::alloc_contiguous(PAGES, PAGES).ok_or_else(|| fail("no 2 MiB run of frames"))?;
    let zero_huge = mm::alloc_contiguous(PAGES, PAGES).ok_or_else(|| fail("no 2 MiB run of frames"))?;
    let memory = vm::KernelPages;
    let (mut small, mut huge, mut unmaps) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floor_small, mut floor_huge) = (Vec::new(), Vec::new());
    let (mut traps, mut inserts) = (Vec::new(), Vec::new());
    let space = mm.with_arch(|arch| arch.space().id());
    let result = (|| {
        for rep in 0..WARM_UP + reps(env) {
            unmap_flush(&mm)?;
            let start = cpu::timebase();
            for i in 0..PAGES {
                memory.zero(frame_of(zero_small, i), 0);
            }
            let small_done = cpu::timebase();
            memory.zero(zero_huge, 5);
            let t_floor_huge = cpu::timebase() - small_done;
            let t_floor_small = small_done - start;

            unmap_flush(&mm)?;
            ok(mm.map(SMALL, PAGES * FRAME_SIZE, RW, false))?;
            ok(mm.map(HUGE, 2 * MIB, RW, true))?;
            let (t_small, t_huge) = inside(&mm, || {
                let start = cpu::timebase();
                for i in 0..PAGES {
                    let _ = exceptions::try_store(SMALL + i * FRAME_SIZE, i);
                }
                let middle = cpu::timebase();
                let _ = exceptions::try_store(HUGE, 1);
                (middle - start, cpu::timebase() - middle)
            });
            if mm.mapped_pages() != 2 * PAGES {
                return Err(fail(format!("{} pages mapped after the faults, not {}", mm.mapped_pages(), 2 * PAGES)));
            }
            let start = cpu::timebase();
            ok(mm.unmap(SMALL, PAGES * FRAME_SIZE))?;
            let t_unmap = cpu::timebase() - start;
            ok(mm.unmap(HUGE, 2 * MIB))?;
            let start = cpu::timebase();
            for _ in 0..PAGES {
                // SAFETY: probe_trap's trap has an exception-table entry.
                #[allow(unsafe_code)]
                let raised = unsafe { exceptions::probe_trap() };
                if raised != crate::trap::vector::PROGRAM {
                    return Err(fail(format!("probe_trap raised {raised:#x}, not a program interrupt")));
                }
            }
            let t_traps = cpu::timebase() - start;
            let t_inserts = match mmu::mode() {
                mmu::Mode::Hash => Some(time_hpte_inserts(space, zero_small, PAGES)?),
                _ => None,
            };
            if rep >= WARM_UP {
                small.push(t_small);
                huge.push(t_huge);
                unmaps.push(t_unmap);
                floor_small.push(t_floor_small);
                floor_huge.push(t_floor_huge);
                traps.push(t_traps);
                inserts.extend(t_inserts);
            }
        }
        Ok(())
    })();
    mm::free_contiguous(zero_small, PAGES);
    mm::free_contiguous(zero_huge, PAGES);
    result?;
    report_us(env, "fault_base_page", &mut small, PAGES);
    report_us(env, "fault_thp", &mut huge, 1);
    report_us(env, "unmap_base_page", &mut unmaps, PAGES);
    report_us(env, "zero_64k", &mut floor_small, PAGES);
    report_us(env, "zero_2m", &mut floor_huge, 1);
    report_us(env, "trap_round_trip", &mut traps, PAGES);
    if !inserts.is_empty() {
        report_us(env, "hpte_insert", &mut inserts, PAGES);
    }
    Ok(())
}

/// Inserts HPTEs for `pages` 64 KiB pages of `space` that no region covers
/// (so nothing translates through them), pointing at the frames of the run
/// at `frames`, read-only to the kernel, with the insert a fault's preload
/// makes (`hash::insert_hashed`); returns the ticks the inserts took, then
/// removes them untimed.
fn time_hpte_inserts(space: kernel::mm::mmu::SpaceId, frames: Frame, pages: u64) -> Result<u64, Failure> {
    use kernel::mm::hash::{self as hpt, SegmentSize};
    const UNTOUCHED: u64 = 0x2000_0000;
    let entries: Vec<(u64, u64, u64)> = (0..pages)
        .map(|i| {
            let vpn =
                hash::page_vpn(space, UNTOUCHED + i * FRAME_SIZE).ok_or_else(|| fail("no segment for the page"))?;
            let hash = hpt::hash(vpn, hpt::PAGE_SHIFT, SegmentSize::T1);
            let r = hpt::encode_r(frame_of(frames, i).address(), false, false, false);
            Ok((hash, hpt::encode_v(vpn, SegmentSize::T1), r))
        })
        .collect::<Result<_, Failure>>()?;
    let mut inserted = Vec::with_capacity(entries.len());
    let start = cpu::timebase();
    for &(hash, v, r) in &entries {
        // The preload's insert: its primary group, else its secondary one.
        inserted
            .push(hash::insert_hashed(hash, v, r).map(|(ptex, secondary)| (ptex, v | hash::secondary_bit(secondary))));
    }
    let took = cpu::timebase() - start;
    // Four at a time, as the kernel's own flushes: on pseries every
    // removal call makes QEMU flush every vCPU's TLB, waking the idle ones.
    let (done, failed): (Vec<_>, Vec<_>) = inserted.into_iter().partition(Result::is_ok);
    let done: Vec<(u64, u64)> = done.into_iter().flatten().collect();
    hash::remove_all(&done, Scope::Global);
    match failed.into_iter().find_map(Result::err) {
        Some(error) => Err(fail(format!("HPTE insert: {error:?}"))),
        None => Ok(took),
    }
}

/// A process's cost as Linux's mmbench measures it from user mode: a
/// system call's round trip (getpid, 1000 per repetition) and the fault-in
/// of anonymous memory by the process's own stores (32 pages of 64 KiB per
/// repetition, after the same untimed, and unmapped, in the same process,
/// as Linux's loop warms up: user.s), each timed by the program with the
/// timebase (mftb works in problem state).
#[ktest]
fn user(env: &Env<'_>) -> TestResult {
    const CALLS: u64 = 1000;
    const PAGES: u64 = 32;
    let (mut calls, mut faults) = (Vec::new(), Vec::new());
    for rep in 0..WARM_UP + reps(env) {
        for (name, count, samples) in [("bench_syscalls", CALLS, &mut calls), ("bench_faults", PAGES, &mut faults)] {
            let program = crate::process::program(name).ok_or_else(|| fail(format!("no user program {name}")))?;
            let cpu = online_secondaries().next().unwrap_or(0);
            let process = crate::process::spawn(&program, cpu, [count, 0, 0])
                .map_err(|e| fail(format!("spawn {name}: {e:?}")))?;
            match process.wait(30_000_000) {
                Some(crate::process::Exit::Code(ticks)) if ticks != u64::MAX => {
                    if rep >= WARM_UP {
                        samples.push(ticks);
                    }
                }
                other => return Err(fail(format!("{name} ended {other:?}"))),
            }
        }
    }
    report_us(env, "syscall_getpid", &mut calls, CALLS);
    report_us(env, "user_fault_base_page", &mut faults, PAGES);
    Ok(())
}

/// The floor of collapse (the faults' are measured beside them, in
/// `fault`): copying a 2 MiB run page by page into another as collapse
/// does (`PageMemory::copy`: VSX), per 64 KiB page, on the same frames each
/// repetition, both runs zeroed just before (untimed), after an unmap.
/// Copied right after the unmap instead, with both runs' translations to
/// fill, a page costs about 14 us against 8.5 (one boot, radix), more than
/// a whole collapse's 10 us a page: collapse's copies do not start from an
/// empty TLB, for reasons not pinned down, so the floor does not either.
#[ktest]
fn floors(env: &Env<'_>) -> TestResult {
    use kernel::mm::vm::PageMemory;
    const PAGES: u64 = 32;
    let huge = mm::alloc_contiguous(PAGES, PAGES).ok_or_else(|| fail("no 2 MiB run of frames"))?;
    let from = mm::alloc_contiguous(PAGES, PAGES).ok_or_else(|| fail("no 2 MiB run of frames"))?;
    let memory = vm::KernelPages;
    let mut copy = Vec::new();
    let dummy = new_mm()?;
    for rep in 0..WARM_UP + reps(env) {
        unmap_flush(&dummy)?;
        for i in 0..PAGES {
            memory.zero(frame_of(from, i), 0);
        }
        memory.zero(huge, 5);
        let start = cpu::timebase();
        for i in 0..PAGES {
            memory.copy(frame_of(from, i), frame_of(huge, i));
        }
        if rep >= WARM_UP {
            copy.push(cpu::timebase() - start);
        }
    }
    mm::free_contiguous(from, PAGES);
    mm::free_contiguous(huge, PAGES);
    report_us(env, "copy_64k", &mut copy, PAGES);
    Ok(())
}

/// GUP-fast vs GUP-slow, pages pinned per second, for 1, 32 and 512 pages
/// of small and of huge mappings (all faulted in first: the slow path's
/// cost is its locks and walk, not faults).
#[ktest]
fn gup(env: &Env<'_>) -> TestResult {
    let mm = new_mm()?;
    ok(mm.map(SMALL, 512 * FRAME_SIZE, RW, false))?;
    ok(mm.map(HUGE, 512 * FRAME_SIZE, RW, true))?;
    let mut pins = Vec::with_capacity(512);
    ok(mm.pin_pages(SMALL, 512, true, &mut pins))?;
    ok(mm.pin_pages(HUGE, 512, true, &mut pins))?;
    pins.drain(..).for_each(|f| mm.unpin(f));
    for (kind, base) in [("small", SMALL), ("huge", HUGE)] {
        for pages in [1usize, 32, 512] {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            for _ in 0..reps(env) {
                let start = cpu::timebase();
                // The configured recheck (gup_pmd_recheck=), as any caller gets.
                let pinned = mm.pin_pages_fast_only(base, pages, true, &mut pins);
                fast.push(cpu::timebase() - start);
                if pinned != pages {
                    return Err(fail(format!("GUP-fast pinned {pinned} of {pages} {kind} pages")));
                }
                pins.drain(..).for_each(|f| mm.unpin(f));
                let start = cpu::timebase();
                ok(mm.pin_pages(base, pages, true, &mut pins))?;
                slow.push(cpu::timebase() - start);
                pins.drain(..).for_each(|f| mm.unpin(f));
            }
            report_rate(env, &format!("gup_fast_{kind}_{pages}"), &mut fast, pages as u64);
            report_rate(env, &format!("gup_slow_{kind}_{pages}"), &mut slow, pages as u64);
        }
    }
    Ok(())
}

/// GUP-fast as Linux's gup_test times it (PIN_FAST_BENCHMARK): a loop of
/// calls of 1 or 32 pages over a 512-page region (32 MiB of small pages,
/// or 16 huge ones), timed once around the loop, pins only; then the
/// unpins of the whole region, timed once. Pages per second.
#[ktest]
fn gup_loop(env: &Env<'_>) -> TestResult {
    const REGION: usize = 512;
    let mm = new_mm()?;
    ok(mm.map(SMALL, REGION as u64 * FRAME_SIZE, RW, false))?;
    ok(mm.map(HUGE, REGION as u64 * FRAME_SIZE, RW, true))?;
    let mut pins = Vec::with_capacity(REGION);
    for base in [SMALL, HUGE] {
        ok(mm.pin_pages(base, REGION, true, &mut pins))?;
        pins.drain(..).for_each(|f| mm.unpin(f));
    }
    for (kind, base) in [("small", SMALL), ("huge", HUGE)] {
        for per_call in [1usize, 32] {
            let (mut pin, mut unpin) = (Vec::new(), Vec::new());
            for rep in 0..WARM_UP + reps(env) {
                let start = cpu::timebase();
                for first in (0..REGION).step_by(per_call) {
                    mm.pin_pages_fast_only(base + first as u64 * FRAME_SIZE, per_call, true, &mut pins);
                }
                let pinned = cpu::timebase();
                if pins.len() != REGION {
                    return Err(fail(format!("GUP-fast pinned {} of {REGION} {kind} pages", pins.len())));
                }
                pins.drain(..).for_each(|f| mm.unpin(f));
                if rep >= WARM_UP {
                    pin.push(pinned - start);
                    unpin.push(cpu::timebase() - pinned);
                }
            }
            report_rate(env, &format!("gup_loop_{kind}_{per_call}"), &mut pin, REGION as u64);
            report_rate(env, &format!("gup_loop_{kind}_{per_call}_unpin"), &mut unpin, REGION as u64);
        }
    }
    Ok(())
}

/// The 2022 fix's own cost: GUP-fast of 32 small pages with the PMD
/// recheck and without, and their ratio (medians of the same run).
#[ktest]
fn gup_recheck_cost(env: &Env<'_>) -> TestResult {
    let mm = new_mm()?;
    ok(mm.map(SMALL, 32 * FRAME_SIZE, RW, false))?;
    let mut pins = Vec::with_capacity(32);
    ok(mm.pin_pages(SMALL, 32, true, &mut pins))?;
    pins.drain(..).for_each(|f| mm.unpin(f));
    let (mut on, mut off) = (Vec::new(), Vec::new());
    // Interleaved, so that host noise hits both alike.
    for _ in 0..reps(env) * 4 {
        for (recheck, samples) in [(true, &mut on), (false, &mut off)] {
            let start = cpu::timebase();
            mm.pin_pages_fast_only_as(SMALL, 32, true, RaceSettings::recheck(recheck), &mut pins);
            samples.push(cpu::timebase() - start);
            pins.drain(..).for_each(|f| mm.unpin(f));
        }
    }
    let with = report_us(env, "gup_fast_recheck_on_32", &mut on, 32);
    let without = report_us(env, "gup_fast_recheck_off_32", &mut off, 32);
    if let (Some(with), Some(without)) = (with, without) {
        let ratio = with / without;
        print(env, "gup_fast_recheck_cost", "ratio", (ratio, ratio, ratio), 1);
    }
    Ok(())
}

static BUSY_ON: AtomicBool = AtomicBool::new(false);
static BUSY_GO: AtomicBool = AtomicBool::new(false);
/// How long the busy CPU keeps interrupts off once the collapse starts.
const BUSY_US: u64 = 2_000;

/// A CPU inside a long lockless walk of address space `space` (a thread of
/// the process in GUP-fast, say): interrupts off from before the collapse
/// starts (BUSY_GO) until BUSY_US after (or a second, if the collapse never
/// starts).
fn busy_with_interrupts_off(space: u64) -> u64 {
    let were_on = crate::percpu::disable_interrupts();
    mmu::note_space_user(space as kernel::mm::mmu::SpaceId);
    BUSY_ON.store(true, Ordering::Release);
    let give_up = time::deadline_us(1_000_000);
    while !BUSY_GO.load(Ordering::Acquire) && time::now() < give_up {
        core::hint::spin_loop();
    }
    let end = time::deadline_us(BUSY_US);
    while time::now() < end {
        core::hint::spin_loop();
    }
    BUSY_ON.store(false, Ordering::Release);
    BUSY_GO.store(false, Ordering::Release);
    if were_on {
        cpu::enable_interrupts();
    }
    0
}

/// Collapse latency of one 2 MiB region (split back to small pages before
/// each repetition), without and with the IPI, idle and with another CPU
/// inside a long interrupts-off section.
#[ktest]
fn collapse(env: &Env<'_>) -> TestResult {
    let mm = new_mm()?;
    ok(mm.map(HUGE, 2 * MIB, RW, true))?;
    if inside(&mm, || exceptions::try_store(HUGE, 1)).is_err() {
        return Err(fail("cannot fault in the region"));
    }
    let busy_cpu = online_secondaries().next();
    let mut cases: Vec<(&str, CollapseIpi, bool)> =
        alloc::vec![("collapse_noipi", CollapseIpi::Off, false), ("collapse_ipi", CollapseIpi::On, false)];
    if busy_cpu.is_some() {
        cases.push(("collapse_noipi_busy", CollapseIpi::Off, true));
        cases.push(("collapse_ipi_busy", CollapseIpi::On, true));
    }
    for (name, policy, busy) in cases {
        let mut samples = Vec::new();
        for rep in 0..WARM_UP + reps(env) {
            ok(mm.split(HUGE))?;
            if busy {
                let cpu = busy_cpu.expect("checked");
                if !smp::post(cpu, busy_with_interrupts_off, mm.with_arch(|arch| arch.space().id()) as u64) {
                    return Err(fail(format!("CPU {cpu} busy")));
                }
                while !BUSY_ON.load(Ordering::Acquire) {
                    core::hint::spin_loop();
                }
                BUSY_GO.store(true, Ordering::Release);
            }
            let start = cpu::timebase();
            let outcome = mm.collapse_as(HUGE, RaceSettings::ipi(policy));
            if rep >= WARM_UP {
                samples.push(cpu::timebase() - start);
            }
            if busy {
                smp::wait_for(busy_cpu.expect("checked")).ok_or_else(|| fail("busy CPU did not finish"))?;
            }
            if outcome != Outcome::Collapsed {
                return Err(fail(format!("{name}: {outcome:?}")));
            }
        }
        report_us(env, name, &mut samples, 1);
    }
    Ok(())
}

/// The flushes: radix `tlbie` (broadcast) vs `tlbiel` (this CPU) per page;
/// hash: the collapse flush of 32 hashed PTEs (flush_hash_table_pmd_range)
/// and per-HPTE removal four at a time vs one by one.
#[ktest]
fn flush(env: &Env<'_>) -> TestResult {
    let mm = new_mm()?;
    ok(mm.map(SMALL, 32 * FRAME_SIZE, RW, false))?;
    let space = mm.with_arch(|arch| arch.space().id());
    let touch_all = || {
        inside(&mm, || {
            for i in 0..32 {
                let _ = exceptions::try_load(SMALL + i * FRAME_SIZE);
            }
        })
    };
    let entries = || -> Vec<kernel::mm::pagetable::Entry> {
        mm.with_arch(|arch| {
            (0..32).filter_map(|i| arch.tree().translate(SMALL + i * FRAME_SIZE)).map(|t| t.entry).collect()
        })
    };
    touch_all();
    match mmu::mode() {
        mmu::Mode::Radix => {
            for (name, scope) in [("tlbie_page", Scope::Global), ("tlbiel_page", Scope::Local)] {
                let mut samples = Vec::new();
                for _ in 0..reps(env) {
                    touch_all();
                    let olds = entries();
                    let start = cpu::timebase();
                    for (i, &old) in olds.iter().enumerate() {
                        radix::RADIX_MMU.flush_page(space, SMALL + i as u64 * FRAME_SIZE, PageSize::Base, old, scope);
                    }
                    samples.push(cpu::timebase() - start);
                }
                report_us(env, name, &mut samples, 32);
            }
        }
        mmu::Mode::Hash => {
            let mut collapse_flush = Vec::new();
            for _ in 0..reps(env) {
                touch_all();
                let olds = entries();
                let start = cpu::timebase();
                hash::HASH_MMU.flush_hash_table_pmd_range(space, SMALL, &olds, Scope::Global);
                collapse_flush.push(cpu::timebase() - start);
            }
            report_us(env, "hash_collapse_flush_32", &mut collapse_flush, 1);
            let (mut bulk, mut single) = (Vec::new(), Vec::new());
            for _ in 0..reps(env) {
                for bulk_mode in [true, false] {
                    touch_all();
                    let slots: Vec<(u64, u64)> = entries()
                        .iter()
                        .enumerate()
                        .filter_map(|(i, &e)| hash::recorded_slot(space, SMALL + i as u64 * FRAME_SIZE, e))
                        .collect();
                    let start = cpu::timebase();
                    if bulk_mode {
                        for four in slots.chunks(4) {
                            let _ = hash::table().remove_four(four, Scope::Global);
                        }
                    } else {
                        for &(ptex, v) in &slots {
                            let _ = hash::table().remove(ptex, v, Scope::Global);
                        }
                    }
                    let took = cpu::timebase() - start;
                    let samples = if bulk_mode { &mut bulk } else { &mut single };
                    samples.push(took / slots.len().max(1) as u64);
                }
            }
            report_us(env, "h_bulk_remove_per_hpte", &mut bulk, 1);
            report_us(env, "h_remove_per_hpte", &mut single, 1);
        }
        mmu::Mode::Off => kskip!("translation is off"),
    }
    Ok(())
}
