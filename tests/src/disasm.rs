//! Checking that the built kernel has the barriers its correctness argument rests on:
//! the image is disassembled (`llvm-objdump -d -C`) and, in each named function, the
//! barrier must come where the argument puts it. Removing a barrier from the source makes
//! the check fail, whatever the compiler did with the rest.

use std::path::Path;
use std::process::Command;

/// One instruction: its address, mnemonic and operands as llvm-objdump prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub address: u64,
    pub mnemonic: String,
    pub operands: String,
}

/// The functions of a disassembly, by demangled name, each with its instructions.
pub fn functions(disassembly: &str) -> Vec<(String, Vec<Instruction>)> {
    let mut functions: Vec<(String, Vec<Instruction>)> = Vec::new();
    for line in disassembly.lines() {
        // "000000000005e1a0 <kernel::rcu::quiescent_state>:"
        if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")).map(|(_, n)| n) {
            functions.push((name.to_string(), Vec::new()));
            continue;
        }
        // "   5e228:      \tstdcx. 4, 30, 3"
        let Some((address, rest)) = line.split_once(':') else { continue };
        let Ok(address) = u64::from_str_radix(address.trim(), 16) else { continue };
        let rest = rest.trim();
        if rest.is_empty() {
            continue;
        }
        let (mnemonic, operands) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if let Some((_, instructions)) = functions.last_mut() {
            instructions.push(Instruction {
                address,
                mnemonic: mnemonic.to_string(),
                operands: operands.trim().to_string(),
            });
        }
    }
    functions
}

/// A store to the function's own stack frame (base register r1, or r31 as the frame
/// pointer): a prologue's saves, invisible to other CPUs' pairings.
fn stack_store(instruction: &Instruction) -> bool {
    instruction.mnemonic.starts_with("st")
        && !instruction.mnemonic.ends_with("cx.")
        && (instruction.operands.ends_with("(1)") || instruction.operands.ends_with("(31)"))
}

/// A plain store (`std`, `stw`, `stdx`...: not a store-conditional) other than to the stack.
fn shared_store(instruction: &Instruction) -> bool {
    instruction.mnemonic.starts_with("st") && !instruction.mnemonic.ends_with("cx.") && !stack_store(instruction)
}

/// Whether an instruction reads or writes memory, or leaves the function (a call may).
pub fn touches_memory(instruction: &Instruction) -> bool {
    let m = instruction.mnemonic.as_str();
    let barrier_or_immediate = matches!(m, "li" | "lis" | "lwsync" | "isync" | "sync" | "hwsync" | "ptesync" | "eieio");
    if barrier_or_immediate {
        return false;
    }
    m.starts_with('l') || m.starts_with("st") || m.starts_with("dcb") || m.starts_with("bl") || m == "bctrl"
}

/// Where a barrier must follow.
#[derive(Clone, Copy, Debug)]
pub enum Anchor {
    /// The first instruction with this mnemonic (e.g. the `stdcx.` of an atomic RMW).
    First(&'static str),
    /// Every call (`bl`) to a function whose name contains one of these (the
    /// compiler may call the MMU's dispatcher or, having inlined it, each
    /// backend's own function).
    CallTo(&'static [&'static str]),
    /// Every `mnemonic` unless one of the 4 instructions before it has the mnemonic
    /// `unless_after`: e.g. every `stwcx.` of GUP-fast's pins (a small page's `count +
    /// 1024`, a huge page's `count + n * 1024`, both inlined), but not the `sub` of an
    /// unpin when it backs off.
    Every { mnemonic: &'static str, unless_after: &'static str },
    /// The function's entry: the barrier must come before its first access other than
    /// the prologue's saves to its own stack frame (e.g. a `fence(SeqCst)` that opens
    /// the function, ordering the caller's stores before the function's loads).
    Entry,
    /// Every Release store: a plain store (not to the stack) with an `lwsync` before
    /// it and no access between the two (e.g. the PMD clear that unhooks a PTE table,
    /// which must then be followed by `ptesync`). At least one must exist.
    ReleaseStore,
    /// The first instruction with this mnemonic, which the barrier must come *before*:
    /// walking back from it in address order, the barrier comes before any access
    /// (e.g. the `lwsync` that makes a compare-exchange's `stdcx.` a Release store).
    Before(&'static str),
}

impl Anchor {
    pub fn describe(&self) -> String {
        match *self {
            Anchor::First(mnemonic) => format!("`{mnemonic}`"),
            Anchor::CallTo(callees) => format!("call to {}", callees.join(" or ")),
            Anchor::Every { mnemonic, unless_after } => format!("`{mnemonic}` (not after a `{unless_after}`)"),
            Anchor::Entry => "function's entry".to_string(),
            Anchor::ReleaseStore => "Release store (`lwsync` then a store)".to_string(),
            Anchor::Before(mnemonic) => format!("first `{mnemonic}`"),
        }
    }
}

/// What the functions whose names contain `function` must contain (at least one must
/// exist): after each `after`, `barrier` comes before the next instruction that touches
/// memory, on the straight-line path (unconditional branches within the function
/// followed); for `Anchor::Before`, before the anchor and after the last access.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub function: &'static str,
    pub after: Anchor,
    pub barrier: &'static str,
    /// Why, for the failure message.
    pub why: &'static str,
}

/// The barriers the kernel's correctness argument rests on: the ones the litmus tests
/// (`litmus/`) model.
pub const EXPECTATIONS: &[Expectation] = &[
    Expectation {
        function: "kernel::rcu::quiescent_state",
        after: Anchor::First("stdcx."),
        barrier: "sync",
        why: "RCU's quiescent-state report must be ordered before the CPU's next read-side loads (lwsync does not order a store before a later load): litmus/rcu-report-vs-gp-snapshot",
    },
    Expectation {
        function: "kernel::rcu::note_quiescent",
        after: Anchor::First("stdcx."),
        barrier: "sync",
        why: "the idle loop's quiescent-state report, as quiescent_state's",
    },
    Expectation {
        function: ">::pin_pages_fast_only_as",
        after: Anchor::Every { mnemonic: "stwcx.", unless_after: "sub" },
        barrier: "sync",
        why: "each of GUP-fast's pins (small and huge pages) must be ordered before its PMD recheck, against collapse's PMD clear and refcount read (store buffering): litmus/gup-pin-vs-pmd-clear",
    },
    Expectation {
        function: "kernel::mm::collapse::pmdp_collapse_flush::<",
        after: Anchor::CallTo(&["flush_collapsed_pmd", "flush_hash_table_pmd_range"]),
        barrier: "sync",
        why: "collapse's cleared PMD and flush (radix or hash) must be ordered before the isolation check's refcount reads: litmus/gup-pin-vs-pmd-clear",
    },
    Expectation {
        function: "kernel::mm::collapse::pmdp_collapse_flush::<",
        after: Anchor::ReleaseStore,
        barrier: "ptesync",
        why: "the PMD clear that unhooks the PTE table (clear_pmd_table: lwsync; std; ptesync) must be ordered before the grace-period reads that let the table be freed, and before the MMU's next walk: litmus/table-free-after-report",
    },
    Expectation {
        function: "<kernel::mm::cpumask::SpaceCpus>::note_user",
        after: Anchor::First("stdcx."),
        barrier: "sync",
        why: "a walker's CPU bit in the space's mask must be ordered before its walk's table loads, against collapse's PMD clear and mask read (store buffering): litmus/gup-cpumask-vs-pmd-clear",
    },
    Expectation {
        function: "ppc64_kernel::mmu::serialize_against_pte_lookup",
        after: Anchor::Entry,
        barrier: "sync",
        why: "collapse's cleared PMD must be ordered before its read of the CPU mask that decides whom the IPI reaches: litmus/gup-cpumask-vs-pmd-clear",
    },
    Expectation {
        function: "<kernel::mm::cpumask::SpaceCpus>::flush_scope",
        after: Anchor::Entry,
        barrier: "sync",
        why: "a table change must be ordered before the mask read that decides whether its flush may stay on this CPU (the same store buffering as litmus/gup-cpumask-vs-pmd-clear, against note_user)",
    },
    Expectation {
        function: "kernel::mm::hash_fault::record_base_slot::<",
        after: Anchor::Before("stdcx."),
        barrier: "lwsync",
        why: "the hash fault's HPTE insert (an hcall or a store to the HPT) must be ordered before the slot record that tells a flush where it is (compare_exchange AcqRel): litmus/hash-hpte-insert-vs-remove",
    },
    Expectation {
        function: "KernelFrames>>>::map",
        after: Anchor::CallTo(&["alloc_table"]),
        barrier: "lwsync",
        why: "a new table's zeroing must be ordered before the store of the entry that links it (Slot::store Release), against a lockless walker's load and the load through it (address dependency): litmus/pte-publish+addr-only",
    },
    Expectation {
        function: "KernelFrames>>>::map",
        after: Anchor::CallTo(&["Entry>::leaf"]),
        barrier: "lwsync",
        why: "a new leaf is published with a Release store, like a new table: litmus/pte-publish",
    },
];

/// The instructions from `from` on, in execution order along the straight-line path:
/// an unconditional branch (`b`) to an address inside the function continues there.
fn straight_line(instructions: &[Instruction], from: usize) -> Vec<&Instruction> {
    let mut path = Vec::new();
    let mut i = from;
    while i < instructions.len() && path.len() < instructions.len() {
        let instruction = &instructions[i];
        if instruction.mnemonic == "b" {
            let target = instruction
                .operands
                .split_whitespace()
                .next()
                .and_then(|t| u64::from_str_radix(t.trim_start_matches("0x"), 16).ok());
            match target.and_then(|t| instructions.iter().position(|x| x.address == t)) {
                Some(next) => {
                    i = next;
                    continue;
                }
                None => break, // a tail call: the function ends here
            }
        }
        path.push(instruction);
        i += 1;
    }
    path
}

/// Checks `expectation` against the disassembled `functions`; `Err` says what is wrong.
pub fn check(functions: &[(String, Vec<Instruction>)], expectation: &Expectation) -> Result<(), String> {
    let pattern = expectation.function;
    let matching: Vec<&(String, Vec<Instruction>)> = functions.iter().filter(|(f, _)| f.contains(pattern)).collect();
    if matching.is_empty() {
        return Err(format!("{pattern}: no such function in the image (renamed or inlined everywhere?)"));
    }
    let what = expectation.after.describe();
    for (name, instructions) in matching {
        let anchors: Vec<usize> = match expectation.after {
            Anchor::First(mnemonic) | Anchor::Before(mnemonic) => {
                instructions.iter().position(|i| i.mnemonic == mnemonic).into_iter().collect()
            }
            Anchor::CallTo(callees) => instructions
                .iter()
                .enumerate()
                .filter(|(_, i)| i.mnemonic == "bl" && callees.iter().any(|callee| i.operands.contains(callee)))
                .map(|(at, _)| at)
                .collect(),
            Anchor::Every { mnemonic, unless_after } => (0..instructions.len())
                .filter(|&at| {
                    instructions[at].mnemonic == mnemonic
                        && !instructions[at.saturating_sub(4)..at].iter().any(|i| i.mnemonic == unless_after)
                })
                .collect(),
            Anchor::Entry => vec![0].into_iter().filter(|_| !instructions.is_empty()).collect(),
            Anchor::ReleaseStore => (0..instructions.len())
                .filter(|&at| {
                    shared_store(&instructions[at])
                        && instructions[..at]
                            .iter()
                            .rev()
                            .find(|i| i.mnemonic == "lwsync" || touches_memory(i))
                            .is_some_and(|i| i.mnemonic == "lwsync")
                })
                .collect(),
        };
        if anchors.is_empty() {
            return Err(format!("{name}: no {what}"));
        }
        for at in anchors {
            match expectation.after {
                Anchor::Before(_) => {
                    let back: Vec<&Instruction> = instructions[..at].iter().rev().collect();
                    check_path(name, &what, "before", &back, expectation, touches_memory)?
                }
                // The entry's own instruction is on the path; the prologue's saves are not accesses.
                Anchor::Entry => check_path(
                    name,
                    &what,
                    "after",
                    &straight_line(instructions, 0),
                    expectation,
                    |i: &Instruction| touches_memory(i) && !stack_store(i),
                )?,
                _ => {
                    check_path(name, &what, "after", &straight_line(instructions, at + 1), expectation, touches_memory)?
                }
            }
        }
    }
    Ok(())
}

/// Walks `path` (forwards after the anchor, or backwards before it): the barrier must
/// come before the first instruction that `access` says touches memory.
fn check_path(
    name: &str,
    what: &str,
    side: &str,
    path: &[&Instruction],
    expectation: &Expectation,
    access: impl Fn(&Instruction) -> bool,
) -> Result<(), String> {
    for instruction in path {
        if instruction.mnemonic == expectation.barrier {
            return Ok(());
        }
        if access(instruction) {
            return Err(format!(
                "{name}: {side} the {what}, `{} {}` touches memory before any `{}`: {}",
                instruction.mnemonic, instruction.operands, expectation.barrier, expectation.why
            ));
        }
    }
    Err(format!("{name}: no `{}` {side} the {what}: {}", expectation.barrier, expectation.why))
}

/// The llvm-objdump to use: `LLVM_OBJDUMP`, else llvm-objdump-22 or llvm-objdump on PATH.
pub fn objdump() -> Result<String, String> {
    if let Ok(path) = std::env::var("LLVM_OBJDUMP") {
        return Ok(path);
    }
    for candidate in ["llvm-objdump-22", "llvm-objdump"] {
        if Command::new(candidate).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Ok(candidate.to_string());
        }
    }
    Err("no llvm-objdump-22 or llvm-objdump on PATH (scripts/deps.sh objdump installs llvm-22)".into())
}

/// Disassembles `image` with `objdump`, names demangled.
pub fn disassemble(objdump: &str, image: &Path) -> Result<String, String> {
    let output = Command::new(objdump)
        .args(["-d", "-C", "--no-show-raw-insn"])
        .arg(image)
        .output()
        .map_err(|e| format!("cannot run {objdump}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{objdump} -d {} failed: {}", image.display(), String::from_utf8_lossy(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_SYNC: &str = "\
000000000005e1a0 <kernel::rcu::quiescent_state>:
   5e220:      \tldarx 4, 30, 3
   5e224:      \taddi 4, 4, 1
   5e228:      \tstdcx. 4, 30, 3
   5e22c:      \tbf-\t2, 0x5e220 <kernel::rcu::quiescent_state+0x80>
   5e230:      \tlwsync
   5e234:      \taddi 29, 30, 4154
   5e238:      \tli 3, 1
   5e23c:      \tsync
   5e240:      \tlbarx 4, 0, 29

000000000005e300 <other>:
   5e300:      \tblr
";

    fn expectation() -> Expectation {
        EXPECTATIONS[0].clone()
    }

    #[test]
    fn parses_functions() {
        let f = functions(WITH_SYNC);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, "kernel::rcu::quiescent_state");
        assert_eq!(f[0].1.len(), 9);
        assert_eq!(f[0].1[2], Instruction { address: 0x5e228, mnemonic: "stdcx.".into(), operands: "4, 30, 3".into() });
        assert_eq!(f[1].1[0].mnemonic, "blr");
    }

    #[test]
    fn barrier_before_the_next_memory_access_passes() {
        assert_eq!(check(&functions(WITH_SYNC), &expectation()), Ok(()));
    }

    #[test]
    fn a_load_before_the_barrier_fails() {
        // The shape without the fence: lwsync; ldarx/stdcx.; lwsync, then the lock's lbarx.
        let without = WITH_SYNC.replace("\tsync\n", "\tnop\n").replace("\tli 3, 1", "\tlbz 4, 8(3)");
        let error = check(&functions(&without), &expectation()).unwrap_err();
        assert!(error.contains("`lbz 4, 8(3)` touches memory before any `sync`"), "{error}");
        let none = WITH_SYNC.replace("\tsync\n", "\tnop\n").replace("\tlbarx 4, 0, 29", "\tnop");
        assert!(check(&functions(&none), &expectation()).unwrap_err().contains("no `sync` after"));
        let missing = check(&functions("0 <x>:\n   0:  \tblr\n"), &expectation()).unwrap_err();
        assert!(missing.contains("no such function"), "{missing}");
    }

    const FLUSH: &str = "\
000000000000dda0 <kernel::mm::collapse::pmdp_collapse_flush::<X>>:
    df34:      \tbl 0x49278 <<R as T>::flush_collapsed_pmd+0x8>
    df38:      \tb 0xdf4c <kernel::mm::collapse::pmdp_collapse_flush::<X>+0x1ac>
    df3c:      \taddi 5, 31, 312
    df48:      \tbl 0x10348 <H::flush_hash_table_pmd_range+0x8>
    df4c:      \tsync
    df50:      \taddi 3, 30, 16
    df5c:      \tbl 0x7b4c8 <memcpy+0x8>
";

    #[test]
    fn calls_as_anchors_and_branches_followed() {
        let expectation = Expectation {
            function: "pmdp_collapse_flush::<",
            after: Anchor::CallTo(&["flush_collapsed_pmd"]),
            barrier: "sync",
            why: "test",
        };
        // The radix call branches over the hash call to the shared sync.
        assert_eq!(check(&functions(FLUSH), &expectation), Ok(()));
        let without = FLUSH.replace("\tsync\n", "\tnop\n");
        let error = check(&functions(&without), &expectation).unwrap_err();
        assert!(error.contains("`bl 0x7b4c8 <memcpy+0x8>` touches memory"), "{error}");
        let not_called = Expectation { after: Anchor::CallTo(&["nothing_like_it"]), ..expectation };
        assert!(check(&functions(FLUSH), &not_called).unwrap_err().contains("no call to nothing_like_it"));
    }

    const SHAPES: &str = "\
0000000000001000 <serialize>:
    1000:      \tmflr 0
    1004:      \tstd 31, -8(1)
    1008:      \tstdu 1, -160(1)
    100c:      \tstd 28, 128(31)
    1010:      \tsync
    1014:      \tlbz 4, -19389(6)
    1018:      \tblr

0000000000002000 <unhook>:
    2000:      \tld 9, 0(3)
    2004:      \tlwsync
    2008:      \tstd 6, 0(4)
    200c:      \tptesync
    2010:      \tldx 4, 27, 29
    2014:      \tstd 6, 8(4)

0000000000003000 <record>:
    3000:      \tldarx 9, 0, 3
    3004:      \tcmpld 9, 8
    3008:      \tlwsync
    300c:      \tori 9, 9, 32766
    3010:      \tstdcx. 9, 0, 3
";

    fn shape(function: &'static str, after: Anchor, barrier: &'static str) -> Expectation {
        Expectation { function, after, barrier, why: "test" }
    }

    #[test]
    fn entry_anchors_skip_the_prologue_saves() {
        let entry = shape("serialize", Anchor::Entry, "sync");
        assert_eq!(check(&functions(SHAPES), &entry), Ok(()));
        let without = SHAPES.replace("\tsync\n", "\tnop\n");
        let error = check(&functions(&without), &entry).unwrap_err();
        assert!(error.contains("after the function's entry, `lbz 4, -19389(6)` touches memory"), "{error}");
    }

    #[test]
    fn release_stores_need_the_barrier_after_them() {
        let unhook = shape("unhook", Anchor::ReleaseStore, "ptesync");
        // The std at 2014 is not a Release store (an ldx, no lwsync, before it).
        assert_eq!(check(&functions(SHAPES), &unhook), Ok(()));
        let no_ptesync = SHAPES.replace("\tptesync\n", "\tnop\n");
        let error = check(&functions(&no_ptesync), &unhook).unwrap_err();
        assert!(error.contains("`ldx 4, 27, 29` touches memory before any `ptesync`"), "{error}");
        // A Relaxed store (no lwsync) is no Release store at all.
        let relaxed = SHAPES.replace("\tlwsync\n    2008", "\tnop\n    2008");
        assert!(check(&functions(&relaxed), &unhook).unwrap_err().contains("no Release store"));
    }

    #[test]
    fn before_anchors_look_back_to_the_last_access() {
        let record = shape("record", Anchor::Before("stdcx."), "lwsync");
        assert_eq!(check(&functions(SHAPES), &record), Ok(()));
        let acquire_only = SHAPES.replace("\tlwsync\n    300c", "\tnop\n    300c");
        let error = check(&functions(&acquire_only), &record).unwrap_err();
        assert!(
            error.contains("before the first `stdcx.`, `ldarx 9, 0, 3` touches memory before any `lwsync`"),
            "{error}"
        );
    }

    #[test]
    fn every_store_conditional_but_the_subtractions() {
        let pins = "\
0000000000017000 <M::pin_pages_fast_only_as>:
   173ec:      \tlwarx 9, 0, 8
   173f8:      \taddi 10, 10, 1024
   17400:      \tstwcx. 10, 0, 8
   17404:      \tbf-\t2, 0x17414 <M::pin_pages_fast_only_as+0x354>
   17410:      \tb 0x17420 <M::pin_pages_fast_only_as+0x360>
   17414:      \tlwarx 5, 3, 6
   17418:      \tsub\t7, 5, 4
   1741c:      \tstwcx. 7, 3, 6
   17420:      \tsync
   17424:      \tld 7, 0(7)
   17428:      \tlwarx 5, 0, 4
   1742c:      \tstwcx. 7, 0, 4
   17430:      \tld 3, 0(22)
";
        let expectation = Expectation {
            function: "::pin_pages_fast_only_as",
            after: Anchor::Every { mnemonic: "stwcx.", unless_after: "sub" },
            barrier: "sync",
            why: "test",
        };
        // The second pin (at 1742c) has no sync after it; the unpin (1741c) does not count.
        let error = check(&functions(pins), &expectation).unwrap_err();
        assert!(error.contains("`ld 3, 0(22)` touches memory"), "{error}");
        let fixed = pins.replace("\tstwcx. 7, 0, 4\n", "\tstwcx. 7, 0, 4\n   1742e:      \tsync\n");
        assert_eq!(check(&functions(&fixed), &expectation), Ok(()));
    }

    #[test]
    fn what_touches_memory() {
        let i = |m: &str| Instruction { address: 0, mnemonic: m.into(), operands: String::new() };
        for m in ["ld", "lbarx", "stw", "stdcx.", "bl", "bctrl", "dcbz"] {
            assert!(touches_memory(&i(m)), "{m}");
        }
        for m in ["li", "lis", "lwsync", "sync", "addi", "bf-", "isync"] {
            assert!(!touches_memory(&i(m)), "{m}");
        }
    }
}
