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
}

/// What the functions whose names contain `function` must contain (at least one must
/// exist): after each `after`, `barrier` comes before the next instruction that touches
/// memory, on the straight-line path (unconditional branches within the function
/// followed).
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
    for (name, instructions) in matching {
        let anchors: Vec<usize> = match expectation.after {
            Anchor::First(mnemonic) => instructions.iter().position(|i| i.mnemonic == mnemonic).into_iter().collect(),
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
        };
        let what = match expectation.after {
            Anchor::First(mnemonic) => format!("`{mnemonic}`"),
            Anchor::CallTo(callees) => format!("call to {}", callees.join(" or ")),
            Anchor::Every { mnemonic, unless_after } => format!("`{mnemonic}` (not after a `{unless_after}`)"),
        };
        if anchors.is_empty() {
            return Err(format!("{name}: no {what}"));
        }
        for at in anchors {
            check_after(name, &what, &straight_line(instructions, at + 1), expectation)?;
        }
    }
    Ok(())
}

fn check_after(name: &str, what: &str, path: &[&Instruction], expectation: &Expectation) -> Result<(), String> {
    for instruction in path {
        if instruction.mnemonic == expectation.barrier {
            return Ok(());
        }
        if touches_memory(instruction) {
            return Err(format!(
                "{name}: after the {what}, `{} {}` touches memory before any `{}`: {}",
                instruction.mnemonic, instruction.operands, expectation.barrier, expectation.why
            ));
        }
    }
    Err(format!("{name}: no `{}` after the {what}: {}", expectation.barrier, expectation.why))
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
