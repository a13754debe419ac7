//! The seed thread's race, model-checked: loom explores the interleavings
//! (and the weak-memory outcomes its model allows) of the kernel's own
//! `gup_fast_one` on one CPU against the kernel's own `collapse_pmd` on
//! another, within a preemption bound. Only the MMU is a model here: page
//! tables are a handful of slots, a flush is a full fence (what tlbie and
//! H_REMOVE's ptesync give the walker), "interrupts off" is a per-CPU flag
//! and the IPI waits until it has seen every other CPU's flag down.
//!
//! - recheck off, IPI off: an execution exists in which GUP-fast returns a
//!   page collapse discarded and a write through the pin is lost; the test
//!   requires loom to find it and prints its interleaving;
//! - recheck on (radix today), or the IPI (the old fix): no execution within
//!   the bound returns a discarded page or loses the write;
//! - in every execution, each small page that ends with no reference went
//!   back to the allocator exactly once: a GUP-fast that backs off after
//!   collapse dropped the mapping's reference frees the page itself.
//! - Jann Horn's bug (Linux 2ba99c5e0881): collapse frees the old PTE table
//!   through the kernel's own sched-RCU (`kernel::rcu::Deferred`), and no
//!   execution lets the walker read it freed and reused; a control that
//!   frees it at once must be caught doing so.
//!
//! Run: `make loom`, or one model:
//! `RUSTFLAGS="--cfg loom" cargo test -p kernel --release --test loom_race -- recheck_on`.
#![cfg(loom)]

mod model;

use std::sync::Mutex as StdMutex;

use kernel::mm::collapse::Outcome;
use kernel::mm::gup::GupError;
use kernel::mm::{Frame, FRAME_SIZE};
use loom::sync::Arc;
use model::{Cpu, Events, TableFree, World, BASE, TARGET};

/// What one execution ended with.
struct Ending {
    gup: Result<Frame, GupError>,
    collapsed: bool,
    /// GUP's page is mapped nowhere any more (collapse discarded it).
    stale: bool,
    /// The value written through the pin is not what the mapping shows.
    lost: bool,
}

/// Runs the race once: CPU 0 GUP-fasts the target page and writes through
/// its pin; CPU 1 collapses the 2 MiB.
fn race(recheck_pmd: bool, ipi: bool, events: &Events) -> Ending {
    let world = Arc::new(World::new(events.clone()));
    world.install();
    let walker = {
        let world = world.clone();
        loom::thread::spawn(move || {
            world.install();
            let cpu = Cpu(0);
            let result = world.gup_fast_target(cpu, recheck_pmd);
            world.log(cpu, &format!("GUP-fast returns {}", model::describe(&result)));
            if let Ok(frame) = result {
                world.write_through_pin(frame, 999);
            }
            result
        })
    };
    let collapsed = world.collapse(Cpu(1), ipi) == Outcome::Collapsed;
    let gup = walker.join().unwrap();
    let (stale, lost) = match gup {
        Ok(frame) => {
            let stale = world.page_array().head(frame).unwrap().mapcount() == 0;
            (stale, world.read_through_mapping(BASE + TARGET * FRAME_SIZE) != 999)
        }
        Err(_) => (false, false),
    };
    if let Ok(frame) = gup {
        world.unpin(frame);
    }
    // Whatever the order, a page collapse and a backed-off GUP both drop
    // is freed exactly once.
    if let Err(why) = world.check_frees() {
        panic!(
            "{why} (GUP-fast: {}, collapsed: {collapsed}); interleaving:\n  {}",
            model::describe(&gup),
            events.take().join("\n  ")
        );
    }
    Ending { gup, collapsed, stale, lost }
}

/// Explores the race; returns the first execution (its event log) in which
/// GUP returned a discarded page, if any.
/// With `expect_loss`, only an execution that also loses the write counts.
fn explore(recheck_pmd: bool, ipi: bool, expect_loss: bool) -> Option<Vec<String>> {
    let found: std::sync::Arc<StdMutex<Option<Vec<String>>>> = Default::default();
    let executions = {
        let found = found.clone();
        model::check(model::RACE_BOUND, move || {
            let events = Events::default();
            let ending = race(recheck_pmd, ipi, &events);
            // A write through a pin of a page that stays mapped is never lost.
            assert!(
                ending.stale || !ending.lost,
                "lost a write through a pin of a mapped page: {:?}, collapsed {}",
                ending.gup,
                ending.collapsed
            );
            // The seed thread's outcome: GUP returned a discarded page (a
            // write that lands before collapse's copy survives by luck; the
            // counter-example wanted is one where it is lost).
            let bad = if expect_loss { ending.stale && ending.lost } else { ending.stale || ending.lost };
            if bad {
                found.lock().unwrap().get_or_insert_with(|| events.take());
            }
        })
    };
    eprintln!(
        "loom: recheck_pmd={recheck_pmd} ipi={ipi}: {executions} executions explored (preemption bound {})",
        model::bound(model::RACE_BOUND)
    );
    let found = found.lock().unwrap().take();
    found
}

#[test]
fn recheck_off_ipi_off_finds_the_race() {
    let interleaving = explore(false, false, true)
        .expect("loom found no execution in which GUP-fast returns a page collapse discarded");
    eprintln!("counter-example (recheck off, IPI off):");
    eprintln!("  (steps in the order loom ran them; a load may still return a value older than a store listed before it, as on POWER)");
    for step in &interleaving {
        eprintln!("  {step}");
    }
}

#[test]
fn recheck_on_ipi_off_is_safe() {
    if let Some(interleaving) = explore(true, false, false) {
        panic!("with the PMD recheck, GUP-fast returned a discarded page:\n  {}", interleaving.join("\n  "));
    }
}

#[test]
fn recheck_off_ipi_on_is_safe() {
    if let Some(interleaving) = explore(false, true, false) {
        panic!("with the IPI, GUP-fast returned a discarded page:\n  {}", interleaving.join("\n  "));
    }
}

/// GUP-fast of both small pages as one range (one PMD read, each pin with
/// its fence, one PMD recheck after the last pin) against collapse: whether
/// some execution left GUP holding a page collapse discarded.
fn range_finds_a_stale_pin(recheck_pmd: bool, ipi: bool) -> bool {
    let found = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let executions = {
        let found = found.clone();
        model::check(model::RACE_BOUND, move || {
            let world = Arc::new(World::new(Events::default()));
            world.install();
            let walker = {
                let world = world.clone();
                loom::thread::spawn(move || {
                    world.install();
                    world.gup_fast_both(Cpu(0), recheck_pmd)
                })
            };
            world.collapse(Cpu(1), ipi);
            let (_, pinned) = walker.join().unwrap();
            if pinned.iter().any(|&frame| world.page_array().head(frame).unwrap().mapcount() == 0) {
                found.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            for frame in pinned {
                world.unpin(frame);
            }
            if let Err(why) = world.check_frees() {
                panic!("{why} (GUP-fast of a range, recheck_pmd={recheck_pmd}, ipi={ipi})");
            }
        })
    };
    eprintln!("loom: range, recheck_pmd={recheck_pmd} ipi={ipi}: {executions} executions explored");
    found.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn range_recheck_on_ipi_off_is_safe() {
    assert!(!range_finds_a_stale_pin(true, false), "with the range's PMD recheck, GUP-fast kept a discarded page");
}

#[test]
fn range_recheck_off_ipi_off_finds_the_race() {
    assert!(range_finds_a_stale_pin(false, false), "loom found no execution in which a range pinned a discarded page");
}

/// One execution of GUP-fast against a collapse that frees the old PTE
/// table as `table_free` says; whether the walker read the table freed (and
/// reused: it pinned somebody else's page through it). The walker's
/// interrupts-off section is its RCU read side; after it the CPU passes
/// quiescent states (ticks, idle) until collapse is done.
fn table_race(table_free: TableFree) -> bool {
    let world = Arc::new(World::with_table_free(Events::default(), table_free));
    world.install();
    model::rcu_on(Cpu(1));
    let done = Arc::new(kernel::sync::atomic::AtomicBool::new(false));
    let walker = {
        let (world, done) = (world.clone(), done.clone());
        loom::thread::spawn(move || {
            world.install();
            let cpu = Cpu(0);
            model::rcu_on(cpu);
            let result = world.gup_fast_target(cpu, true);
            if let Ok(frame) = result {
                world.unpin(frame);
            }
            while !done.load(kernel::sync::atomic::Ordering::Acquire) {
                kernel::rcu::quiescent_state();
                loom::thread::yield_now();
            }
        })
    };
    world.collapse(Cpu(1), false);
    if table_free == TableFree::Rcu {
        world.free_deferred_tables(Cpu(1));
    }
    done.store(true, kernel::sync::atomic::Ordering::Release);
    walker.join().unwrap();
    world.walked_freed_table.load(std::sync::atomic::Ordering::Relaxed)
}

fn explore_table_free(table_free: TableFree) -> bool {
    let (found, executions) = model::any_execution(model::RCU_BOUND, move || table_race(table_free));
    eprintln!(
        "loom: old PTE table freed {table_free:?}: {executions} executions explored (preemption bound {})",
        model::bound(model::RCU_BOUND)
    );
    found
}

#[test]
fn old_table_freed_through_rcu_is_never_walked() {
    assert!(!explore_table_free(TableFree::Rcu), "GUP-fast walked a PTE table collapse freed through RCU");
}

#[test]
fn control_old_table_freed_at_once_is_caught() {
    assert!(
        explore_table_free(TableFree::Immediate),
        "loom did not catch GUP-fast walking a PTE table collapse freed at once"
    );
}
