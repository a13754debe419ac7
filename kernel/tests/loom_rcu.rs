//! Page tables freed through RCU vs a lockless walker, model-checked with
//! the kernel's own sched-RCU (`kernel::rcu`: quiescent states, grace
//! periods, `Deferred`) and tree walk (`pagetable::walk`): CPU 1 walks the
//! tree to the target PTE, its read-side sections ending at quiescent
//! states (as ticks and idle loops end them); CPU 0 unhooks the PTE table,
//! hands it to `Deferred` and frees it (overwrites it, as reuse would) once
//! `drain_due` lets it go. The walker must never read the freed table.
//! A control frees the table without the grace period: loom must catch
//! the walker reading it, or the check proves nothing.
//!
//! Run: `make loom`, or
//! `RUSTFLAGS="--cfg loom" cargo test -p kernel --release --test loom_rcu`.
#![cfg(loom)]

mod model;

use kernel::mm::pagetable::{self, Entry};
use kernel::mm::FRAME_SIZE;
use kernel::rcu::{self, Deferred};
use kernel::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use model::{poison, Events, World, BASE, TARGET};

/// One execution; true if the walker read the freed table.
fn run(grace_period: bool) -> bool {
    model::rcu_on(model::Cpu(0));
    let world = Arc::new(World::new(Events::default()));
    world.install();
    let done = Arc::new(AtomicBool::new(false));
    let walker = {
        let (world, done) = (world.clone(), done.clone());
        loom::thread::spawn(move || {
            model::rcu_on(model::Cpu(1));
            world.install();
            let mut read_freed = false;
            // Two read-side sections, each ended by a quiescent state.
            for _ in 0..2 {
                // SAFETY: a read-side section of the model's CPU 1, ended by
                // the quiescent state below; nothing interrupts the thread.
                let read_side = unsafe { pagetable::ReadSide::assume_interrupts_off() };
                if let Some(found) = pagetable::walk(model::PGD, BASE + TARGET * FRAME_SIZE, model::virt, &read_side) {
                    read_freed |= found.entry == poison();
                }
                rcu::quiescent_state();
            }
            // Then idle, as a CPU does: quiescent until told to stop.
            while !done.load(Ordering::Acquire) {
                rcu::quiescent_state();
                loom::thread::yield_now();
            }
            read_freed
        })
    };
    // CPU 0: an earlier unhooked table gets a grace period going (the new
    // table must not ride on one that began before it was unhooked); then
    // unhook the target's table and free it.
    let mut deferred = Deferred::new();
    deferred.push(0);
    rcu::quiescent_state();
    world.pmd_slot().store(Entry::EMPTY, Ordering::Release);
    if grace_period {
        deferred.push(model::PTE_TABLE);
        let mut freed = false;
        while !freed {
            rcu::quiescent_state();
            deferred.drain_due(|table| {
                if table == model::PTE_TABLE {
                    world.free_pte_table();
                    freed = true;
                }
            });
            loom::thread::yield_now();
        }
    } else {
        world.free_pte_table();
    }
    done.store(true, Ordering::Release);
    walker.join().unwrap()
}

fn explore(grace_period: bool) -> bool {
    let (found, executions) = model::any_execution(model::RCU_BOUND, move || run(grace_period));
    eprintln!(
        "loom: RCU, grace period {grace_period}: {executions} executions explored (preemption bound {})",
        model::bound(model::RCU_BOUND)
    );
    found
}

#[test]
fn walker_never_reads_a_table_freed_after_a_grace_period() {
    assert!(!explore(true), "a lockless walker read a page table that RCU let go");
}

#[test]
fn control_freeing_at_once_is_caught() {
    assert!(explore(false), "loom did not catch the walker reading a table freed without a grace period");
}
