//! The machine the loom tests run the kernel's code on: a page-table tree of
//! a few slots (PGD, PUD and PMD entry 0, one PTE table), 34 page frames
//! with one data word each, their page descriptors, a per-CPU "interrupts
//! off" flag, and an optional hashed-page-table model of one HPTE. Physical
//! addresses are the kernel's (64 KiB frames); `virt` maps the table ones to
//! the slots here, as the linear map does on the machine.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::Mutex as StdMutex;

use kernel::mm::collapse::{CollapseArch, CollapseFlush};
use kernel::mm::gup::{GupError, Point, RaceHooks};
use kernel::mm::page::{flags, Page, PageArray};
use kernel::mm::pagetable::{Entry, MapError, Prot, Slot};
use kernel::mm::{Frame, FRAME_SIZE};
use kernel::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

/// Explores `body` (one execution each) within `default_bound`: whether
/// some execution returned true, and how many executions there were.
pub fn any_execution(default_bound: usize, body: impl Fn() -> bool + Sync + Send + 'static) -> (bool, u64) {
    let found = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = found.clone();
    let executions = check(default_bound, move || {
        if body() {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    (found.load(std::sync::atomic::Ordering::Relaxed), executions)
}

/// Preemptions loom may force per execution, unless LOOM_MAX_PREEMPTIONS
/// says otherwise. The GUP-fast and hash-fault models are small enough to
/// explore completely: they need no more than this (the execution counts
/// are the same at 40), so the bound does not cut anything off there.
pub const RACE_BOUND: usize = 20;
/// The RCU model (two CPUs spinning on grace periods) grows much faster:
/// 10 s at 3, 2 min at 4.
pub const RCU_BOUND: usize = 3;

/// A loom model builder with `default` as its bound (or LOOM_MAX_PREEMPTIONS).
pub fn builder(default: usize) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(default);
    }
    builder
}

/// The bound `builder(default)` explores.
pub fn bound(default: usize) -> usize {
    builder(default).preemption_bound.unwrap_or(default)
}

/// Runs `body` once per execution loom explores; returns how many there were.
pub fn check(default_bound: usize, body: impl Fn() + Sync + Send + 'static) -> u64 {
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = executions.clone();
    builder(default_bound).check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        body();
    });
    let executions = executions.load(std::sync::atomic::Ordering::Relaxed);
    executions
}

pub const PGD: u64 = 0x1_0000;
pub const PUD: u64 = 0x2_0000;
pub const PMD_TABLE: u64 = 0x3_0000;
pub const PTE_TABLE: u64 = 0x4_0000;
/// The user address of the 2 MiB: index 0 at every upper level.
pub const BASE: u64 = 0;
/// The small pages mapped at PTE 0 and 1; the rest of the table is empty.
pub const SMALL: [u64; 2] = [0x1fe_0000, 0x1ff_0000];
/// The 2 MiB page collapse copies into.
pub const HUGE: u64 = 0x200_0000;
/// The page GUP-fast pins (PTE index).
pub const TARGET: u64 = 1;
/// A page somebody else owns: what a freed and reused PTE table points at
/// (`POISON`), so that a walker reading such a table pins it.
pub const REUSED: u64 = 0x220_0000;
const FIRST: u64 = SMALL[0];
const FRAMES: usize = 35;
const RW_USER: Prot = Prot::READ.union(Prot::WRITE).union(Prot::USER);

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cpu(pub usize);

impl Cpu {
    fn name(self) -> &'static str {
        ["CPU B (walker)", "CPU A (collapse)"][self.0]
    }
}

/// What happened in one execution, in order (outside loom's model).
#[derive(Clone, Default)]
pub struct Events(std::sync::Arc<StdMutex<Vec<String>>>);

impl Events {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

pub struct World {
    pgd: Slot,
    pud: Slot,
    pmd: Slot,
    pte: Vec<Slot>,
    /// One word of data per frame (what copy_page copies).
    data: Vec<AtomicU64>,
    pages: Vec<Page>,
    /// How often each frame went back to the allocator (bookkeeping outside
    /// loom's model: read only after the threads are joined).
    frees: Vec<std::sync::atomic::AtomicU32>,
    interrupts_off: [AtomicBool; 2],
    /// Set when GUP-fast pinned `REUSED`: it walked a freed (reused) table.
    pub walked_freed_table: std::sync::atomic::AtomicBool,
    events: Events,
    /// The hashed page table's entry for the target page: the physical
    /// address it translates to, 0 if none.
    pub hpte: AtomicU64,
    /// Model the hash MMU (flushes remove the recorded HPTE) or radix.
    pub hash: bool,
    /// What collapse's `defer_table` does with the old PTE table.
    pub table_free: TableFree,
    /// Tables waiting for their grace period (`TableFree::Rcu`).
    deferred: StdMutex<kernel::rcu::Deferred<u64>>,
}

/// How the model frees a PTE table collapse unhooked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TableFree {
    /// Never (the table outlives the execution).
    Kept,
    /// Through the kernel's sched-RCU (`kernel::rcu::Deferred`), as the
    /// kernel does: the collapse side drives grace periods until it is due.
    Rcu,
    /// At once (Jann Horn's bug): a control that must be caught.
    Immediate,
}

std::thread_local!(static CURRENT: Cell<*const World> = const { Cell::new(std::ptr::null()) });

/// The kernel's pointer to a page table of the current execution.
pub fn virt(physical: u64) -> *mut u8 {
    let world = CURRENT.with(|c| c.get());
    assert!(!world.is_null(), "no world installed on this thread");
    // SAFETY: installed by the execution that owns the world, which
    // outlives every thread of that execution.
    let world = unsafe { &*world };
    let slot: *const Slot = match physical {
        PGD => &world.pgd,
        PUD => &world.pud,
        PMD_TABLE => &world.pmd,
        PTE_TABLE => world.pte.as_ptr(),
        _ => panic!("the model has no table at {physical:#x}"),
    };
    slot as *mut u8
}

pub fn describe(result: &Result<Frame, GupError>) -> String {
    match result {
        Ok(frame) => format!("a pin of {:#x}", frame.address()),
        Err(error) => format!("{error:?}"),
    }
}

fn index(physical: u64) -> usize {
    let i = ((physical - FIRST) / FRAME_SIZE) as usize;
    assert!(i < FRAMES, "no frame at {physical:#x}");
    i
}

impl World {
    pub fn new(events: Events) -> World {
        Self::with_mmu(events, false)
    }

    /// A world whose collapse flush is the hash MMU's (`hash`) or radix's.
    /// A radix world whose collapse frees the old PTE table as `table_free` says.
    pub fn with_table_free(events: Events, table_free: TableFree) -> World {
        World { table_free, ..Self::with_mmu(events, false) }
    }

    pub fn with_mmu(events: Events, hash: bool) -> World {
        let pte: Vec<Slot> = (0..32)
            .map(|i| {
                if (i as usize) < SMALL.len() {
                    Slot::new(Entry::leaf(SMALL[i as usize], RW_USER))
                } else {
                    Slot::new(Entry::EMPTY)
                }
            })
            .collect();
        let world = World {
            pgd: Slot::new(Entry::directory(PUD, 9)),
            pud: Slot::new(Entry::directory(PMD_TABLE, 9)),
            pmd: Slot::new(Entry::directory(PTE_TABLE, 5)),
            pte,
            data: (0..FRAMES).map(|i| AtomicU64::new(100 + i as u64)).collect(),
            pages: (0..FRAMES).map(|_| Page::new()).collect(),
            frees: (0..FRAMES).map(|_| std::sync::atomic::AtomicU32::new(0)).collect(),
            interrupts_off: [AtomicBool::new(false), AtomicBool::new(false)],
            walked_freed_table: std::sync::atomic::AtomicBool::new(false),
            events,
            hpte: AtomicU64::new(0),
            hash,
            table_free: TableFree::Kept,
            deferred: StdMutex::new(kernel::rcu::Deferred::new()),
        };
        for &small in &SMALL {
            world.page_array().init_allocated(Frame::from_address(small).unwrap(), flags::ANONYMOUS).map();
        }
        // Somebody else's page, mapped elsewhere.
        world.page_array().init_allocated(Frame::from_address(REUSED).unwrap(), flags::ANONYMOUS).map();
        world
    }

    /// Makes `virt` find this world on the calling thread.
    pub fn install(&self) {
        CURRENT.with(|c| c.set(self as *const World));
    }

    pub fn page_array(&self) -> PageArray<'_> {
        PageArray::new(FIRST, &self.pages)
    }

    pub fn log(&self, cpu: Cpu, what: &str) {
        self.events.0.lock().unwrap().push(format!("{}: {what}", cpu.name()));
    }

    pub fn hooks(&self, cpu: Cpu) -> Hooks<'_> {
        Hooks { world: self, cpu }
    }

    /// local_irq_disable as collapse's IPI sees it: from the flag on, an
    /// IPI to this CPU waits. The fence is the interrupt's own ordering: an
    /// IPI taken after this point sees everything the CPU did before.
    pub fn interrupts_off(&self, cpu: Cpu) {
        self.interrupts_off[cpu.0].store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    pub fn interrupts_on(&self, cpu: Cpu) {
        self.interrupts_off[cpu.0].store(false, Ordering::SeqCst);
    }

    /// What a device does with the pin: DMA into the page.
    pub fn write_through_pin(&self, frame: Frame, value: u64) {
        self.data[index(frame.address())].store(value, Ordering::Relaxed);
    }

    /// What the process sees at `address` through its page table.
    pub fn read_through_mapping(&self, address: u64) -> u64 {
        let pmd = self.pmd.load(Ordering::Acquire);
        let physical = if pmd.is_leaf() {
            pmd.physical() + (address & 0x1f_ffff)
        } else {
            let pte = self.pte[((address >> 16) & 31) as usize].load(Ordering::Acquire);
            assert!(pte.is_leaf(), "target unmapped at the end");
            pte.physical()
        };
        self.data[index(physical)].load(Ordering::Relaxed)
    }

    pub fn unpin(&self, frame: Frame) {
        self.page_array().unpin(frame, |head, order| self.free(Cpu(0), head, order));
    }

    /// A page going back to the allocator, counted and logged.
    pub fn free(&self, cpu: Cpu, head: Frame, _order: u32) {
        self.frees[index(head.address())].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.log(cpu, &format!("freed the page at {:#x}", head.address()));
    }

    /// Every small page nobody references any more went back to the
    /// allocator exactly once, and none that is still referenced did: the
    /// accounting a leak (a back-off that drops the last reference and does
    /// not free) or a double free would break. Call after every thread is done.
    pub fn check_frees(&self) -> Result<(), String> {
        for &small in &SMALL {
            let i = index(small);
            let refs = self.pages[i].refcount();
            let frees = self.frees[i].load(std::sync::atomic::Ordering::Relaxed);
            match (refs, frees) {
                (0, 1) => {}
                (r, 0) if r > 0 => {}
                (0, 0) => {
                    return Err(format!("the page at {small:#x} has no reference left and was never freed (leaked)"))
                }
                (r, f) => return Err(format!("the page at {small:#x} has {r} references and was freed {f} times")),
            }
        }
        Ok(())
    }

    pub fn pte_slot(&self, index: usize) -> &Slot {
        &self.pte[index]
    }

    pub fn pmd_slot(&self) -> &Slot {
        &self.pmd
    }
}

/// The race points, logged.
pub struct Hooks<'a> {
    world: &'a World,
    cpu: Cpu,
}

impl RaceHooks for Hooks<'_> {
    fn at(&self, point: Point) {
        let what = match point {
            Point::GupRead => "read the PMD and the PTE",
            Point::GupPinned => {
                let reused = self.world.page_array().frame(Frame::from_address(REUSED).unwrap()).unwrap().refcount();
                if reused >= kernel::mm::page::PIN_BIAS {
                    self.world.walked_freed_table.store(true, std::sync::atomic::Ordering::Relaxed);
                    "pinned somebody else's page through a freed, reused PTE table"
                } else {
                    "pinned the page (then rechecks)"
                }
            }
            Point::HashWalked => "walked the tree (hash fault), inserting the HPTE next",
            Point::CollapseIsolated => "isolation check passed: nothing pinned; copies next",
        };
        self.world.log(self.cpu, what);
    }
}

/// Collapse's MMU, modelled: tlbie (radix) or H_REMOVE (hash) followed by
/// ptesync is a full fence as far as a walker on another CPU is concerned.
pub struct ModelArch<'a> {
    pub world: &'a World,
    pub cpu: Cpu,
}

impl CollapseFlush for ModelArch<'_> {
    fn clear_pmd_table(&mut self, _address: u64) -> Result<u64, MapError> {
        let old = self.world.pmd.load(Ordering::Acquire);
        if !old.is_directory() {
            return Err(MapError::NotMapped);
        }
        self.world.pmd.store(Entry::EMPTY, Ordering::Release);
        // ptesync after the page-table store.
        fence(Ordering::SeqCst);
        self.world.log(self.cpu, "cleared the PMD");
        Ok(old.next_table())
    }

    fn read_pte_table(&mut self, _table: u64) -> [Entry; 32] {
        let ptes: [Entry; 32] = core::array::from_fn(|i| self.world.pte[i].load(Ordering::Acquire));
        if self.world.hash {
            let seen = if kernel::mm::hash_fault::is_hashed(ptes[TARGET as usize]) {
                "records an HPTE"
            } else {
                "records no HPTE"
            };
            self.world.log(self.cpu, &format!("read the old PTEs: the target's {seen}"));
        }
        ptes
    }

    fn serialize_against_pte_lookup(&mut self) {
        for (cpu, flag) in self.world.interrupts_off.iter().enumerate() {
            if cpu != self.cpu.0 {
                while flag.load(Ordering::SeqCst) {
                    loom::thread::yield_now();
                }
            }
        }
        fence(Ordering::SeqCst);
        self.world.log(self.cpu, "IPI answered by every other CPU");
    }

    fn flush_collapsed_pmd(&mut self, _address: u64, old_ptes: &[Entry]) {
        if self.world.hash {
            // flush_hash_table_pmd_range: remove the HPTE the old PTE records.
            let recorded = old_ptes[TARGET as usize];
            if kernel::mm::hash_fault::is_hashed(recorded) {
                self.world.hpte.store(0, Ordering::Release);
                self.world.log(self.cpu, "removed the HPTE the old PTE records");
            }
        }
        fence(Ordering::SeqCst);
        self.world.log(self.cpu, "flushed the old translations");
    }
}

impl CollapseArch for ModelArch<'_> {
    fn restore_pmd(&mut self, _address: u64, table: u64) -> Result<(), MapError> {
        self.world.pmd.store(Entry::directory(table, 5), Ordering::Release);
        self.world.log(self.cpu, "restored the PMD (gave up)");
        Ok(())
    }

    fn install_huge(&mut self, _address: u64, physical: u64, prot: Prot) -> Result<(), MapError> {
        self.world.pmd.store(Entry::leaf(physical, prot), Ordering::Release);
        self.world.log(self.cpu, "installed the huge PMD");
        Ok(())
    }

    fn defer_table(&mut self, table: u64) {
        match self.world.table_free {
            TableFree::Kept => {}
            TableFree::Immediate => {
                self.world.free_pte_table();
                self.world.log(self.cpu, "freed the old PTE table at once");
            }
            TableFree::Rcu => {
                self.world.deferred.lock().unwrap().push(table);
                self.world.log(self.cpu, "handed the old PTE table to RCU");
            }
        }
    }

    fn copy_page(&mut self, from: u64, to: u64) {
        let value = self.world.data[index(from)].load(Ordering::Relaxed);
        self.world.data[index(to)].store(value, Ordering::Relaxed);
    }

    fn zero_page(&mut self, to: u64) {
        self.world.data[index(to)].store(0, Ordering::Relaxed);
    }

    fn virt(&self, physical: u64) -> *mut u8 {
        virt(physical)
    }

    fn free_page(&mut self, head: Frame, order: u32) {
        self.world.free(self.cpu, head, order);
    }
}

/// The hashed page table, modelled as the one HPTE the target page can
/// have: the physical address it translates to (0: none).
pub struct ModelHpt<'a> {
    pub world: &'a World,
    pub cpu: Cpu,
}

impl kernel::mm::hash_fault::HashTable for ModelHpt<'_> {
    type Error = ();

    fn insert(&self, _page: u64, physical: u64, _prot: Prot) -> Result<u64, ()> {
        self.world.hpte.store(physical, Ordering::Release);
        self.world.log(self.cpu, &format!("inserted an HPTE for {physical:#x}"));
        Ok(kernel::mm::hash_fault::slot_bits(1, false))
    }

    fn remove(&self, _page: u64, _bits: u64) {
        self.world.hpte.store(0, Ordering::Release);
        self.world.log(self.cpu, "removed its HPTE (the PTE changed)");
    }

    /// The fault came after collapse installed the huge page: keep the HPTE
    /// while the leaf is the one walked (the arch checks under its lock).
    fn record_huge(&self, _page: u64, leaf: &Slot, seen: Entry, _bits: u64) {
        if leaf.load(Ordering::Acquire) != seen {
            self.world.hpte.store(0, Ordering::Release);
        }
    }
}

impl World {
    /// The kernel's `gup_fast_one` of the target page for writing, as CPU
    /// `cpu`, inside its interrupts-off section (GUP-fast's read side).
    pub fn gup_fast_target(&self, cpu: Cpu, recheck_pmd: bool) -> Result<Frame, GupError> {
        self.interrupts_off(cpu);
        // SAFETY: the model's CPU has interrupts off (above) until the walk
        // is done: nothing interrupts the thread standing for it.
        let read_side = unsafe { kernel::mm::pagetable::ReadSide::assume_interrupts_off() };
        let result = kernel::mm::gup::gup_fast_one(
            PGD,
            BASE + TARGET * FRAME_SIZE,
            true,
            recheck_pmd,
            &self.page_array(),
            virt,
            |head, order| self.free(cpu, head, order),
            &self.hooks(cpu),
            &read_side,
        );
        self.interrupts_on(cpu);
        result
    }

    /// The kernel's `gup_fast_range` of both small pages (PTEs 0 and 1)
    /// for writing, as CPU `cpu`, inside its interrupts-off section: what
    /// it returned and the frames it pinned.
    pub fn gup_fast_both(&self, cpu: Cpu, recheck_pmd: bool) -> (Result<(), (usize, GupError)>, Vec<Frame>) {
        self.interrupts_off(cpu);
        // SAFETY: as gup_fast_target's.
        let read_side = unsafe { kernel::mm::pagetable::ReadSide::assume_interrupts_off() };
        let mut pinned = Vec::new();
        let result = kernel::mm::gup::gup_fast_range(
            PGD,
            BASE,
            SMALL.len(),
            true,
            recheck_pmd,
            &self.page_array(),
            virt,
            |head, order| self.free(cpu, head, order),
            &mut pinned,
            &self.hooks(cpu),
            &read_side,
        );
        self.interrupts_on(cpu);
        (result, pinned)
    }

    /// The kernel's `collapse_pmd` of the 2 MiB at BASE into HUGE, as CPU
    /// `cpu`, with the IPI or without; the outcome, logged.
    pub fn collapse(&self, cpu: Cpu, ipi: bool) -> kernel::mm::collapse::Outcome {
        let mut arch = ModelArch { world: self, cpu };
        let outcome = kernel::mm::collapse::collapse_pmd(
            &mut arch,
            BASE,
            Frame::from_address(HUGE).unwrap(),
            RW_USER,
            ipi,
            &self.page_array(),
            &kernel::mm::collapse::Counters::new(),
            &self.hooks(cpu),
        );
        self.log(cpu, &format!("collapse: {outcome:?}"));
        outcome
    }

    /// The physical page the tree maps at `address` now.
    pub fn mapped(&self, address: u64) -> u64 {
        let pmd = self.pmd.load(Ordering::Acquire);
        if pmd.is_leaf() {
            pmd.physical() + (address & 0x1f_ffff & !(FRAME_SIZE - 1))
        } else {
            self.pte[((address >> 16) & 31) as usize].load(Ordering::Acquire).physical()
        }
    }
}

impl World {
    /// Frees the PTE table as a reused frame would look: every slot
    /// overwritten with `POISON`.
    pub fn free_pte_table(&self) {
        for slot in &self.pte {
            slot.store(poison(), Ordering::Relaxed);
        }
    }
}

/// What a freed table holds once reused: leaves mapping somebody else's page.
pub fn poison() -> Entry {
    Entry::leaf(REUSED, RW_USER)
}

impl World {
    /// The collapse side after `TableFree::Rcu`: passes quiescent states
    /// (driving grace periods, as the kernel's ticks do) until the old PTE
    /// table is due, then frees it (overwrites it, as reuse would).
    pub fn free_deferred_tables(&self, cpu: Cpu) {
        loop {
            let mut freed = false;
            kernel::rcu::quiescent_state();
            self.deferred.lock().unwrap().drain_due(|_| {
                self.free_pte_table();
                freed = true;
            });
            if freed || self.deferred.lock().unwrap().is_empty() {
                if freed {
                    self.log(cpu, "freed the old PTE table after a grace period");
                }
                return;
            }
            loom::thread::yield_now();
        }
    }
}

loom::thread_local! {
    static RCU_CPU: Cell<usize> = Cell::new(0);
}

fn rcu_this_cpu() -> usize {
    RCU_CPU.with(|c| c.get())
}

fn rcu_online() -> &'static kernel::cpuset::CpuSet {
    loom::lazy_static! {
        static ref ONLINE: kernel::cpuset::CpuSet = [0, 1].into_iter().collect();
    }
    &ONLINE
}

fn rcu_relax() {
    loom::thread::yield_now();
}

static RCU_PLATFORM: kernel::rcu::Platform =
    kernel::rcu::Platform { this_cpu: rcu_this_cpu, online: rcu_online, relax: rcu_relax };

/// Makes the kernel's RCU see two CPUs, the calling thread being `cpu`
/// (call on every thread of an execution that uses RCU).
pub fn rcu_on(cpu: Cpu) {
    kernel::rcu::set_platform(&RCU_PLATFORM);
    RCU_CPU.with(|c| c.set(cpu.0));
}
