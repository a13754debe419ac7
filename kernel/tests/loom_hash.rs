//! Why hash still needs the collapse IPI, model-checked: the hash MMU's
//! fault path (the kernel's `hash_fault`, interrupts off) walks the tree
//! without locks, like GUP-fast, but no recheck can save it: it inserts the
//! HPTE first and records it in the PTE after, and if collapse's
//! `flush_hash_table_pmd_range` read the PTEs in between, the HPTE outlives
//! the flush and translates to the page collapse discards.
//!
//! - IPI off: loom finds that execution (the test requires it, and prints
//!   the interleaving);
//! - IPI on: collapse reads the PTEs only after the fault path has left,
//!   so the recorded HPTE goes with the flush: no execution within the bound
//!   leaves a stale HPTE.
//!
//! Run: `make loom`, or
//! `RUSTFLAGS="--cfg loom" cargo test -p kernel --release --test loom_hash`.
#![cfg(loom)]

mod model;

use std::sync::Mutex as StdMutex;

use kernel::mm::collapse::Outcome;
use kernel::mm::hash_fault::hash_fault;
use kernel::mm::FRAME_SIZE;
use loom::sync::Arc;
use model::{Cpu, Events, ModelHpt, World, BASE, TARGET};

/// One execution: CPU 0 takes a hash fault on the target page while CPU 1
/// collapses. True if an HPTE is left that translates the target to a page
/// the tree no longer maps there.
fn race(ipi: bool, events: &Events) -> bool {
    let world = Arc::new(World::with_mmu(events.clone(), true));
    world.install();
    let address = BASE + TARGET * FRAME_SIZE;
    let faulting = {
        let world = world.clone();
        loom::thread::spawn(move || {
            world.install();
            let cpu = Cpu(0);
            world.interrupts_off(cpu);
            // SAFETY: the model's CPU has interrupts off until the fault is done.
            let read_side = unsafe { kernel::mm::pagetable::ReadSide::assume_interrupts_off() };
            let table = ModelHpt { world: &world, cpu };
            let result = hash_fault(model::PGD, address, model::virt, &table, &world.hooks(cpu), &read_side);
            world.interrupts_on(cpu);
            world.log(cpu, &format!("hash fault: {result:?}"));
        })
    };
    let outcome = world.collapse(Cpu(1), ipi);
    assert_eq!(outcome, Outcome::Collapsed, "nothing is pinned: collapse always goes ahead");
    faulting.join().unwrap();
    let hpte = world.hpte.load(std::sync::atomic::Ordering::Acquire);
    hpte != 0 && hpte != world.mapped(address)
}

fn explore(ipi: bool) -> Option<Vec<String>> {
    let found: std::sync::Arc<StdMutex<Option<Vec<String>>>> = Default::default();
    let executions = {
        let found = found.clone();
        model::check(model::RACE_BOUND, move || {
            let events = Events::default();
            if race(ipi, &events) {
                found.lock().unwrap().get_or_insert_with(|| events.take());
            }
        })
    };
    eprintln!(
        "loom: hash fault vs collapse, ipi={ipi}: {executions} executions explored (preemption bound {})",
        model::bound(model::RACE_BOUND)
    );
    let found = found.lock().unwrap().take();
    found
}

#[test]
fn hash_fault_without_ipi_leaves_a_stale_hpte() {
    let interleaving = explore(false).expect("loom found no execution leaving a stale HPTE without the IPI");
    eprintln!("counter-example (hash, IPI off):");
    eprintln!("  (steps in the order loom ran them; a load may still return a value older than a store listed before it, as on POWER)");
    for step in &interleaving {
        eprintln!("  {step}");
    }
}

#[test]
fn hash_fault_with_ipi_leaves_none() {
    if let Some(interleaving) = explore(true) {
        panic!("with the IPI, an HPTE outlived collapse:\n  {}", interleaving.join("\n  "));
    }
}
