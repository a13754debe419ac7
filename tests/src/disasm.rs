//! Checking that the built kernel has the barriers its correctness argument rests on:
//! the image is disassembled (`llvm-objdump -d -C`) and, in each named function, the
//! barrier must come where the argument puts it. Removing a barrier from the source makes
//! the check fail, whatever the compiler did with the rest.

use std::path::Path;
use std::process::Command;

/// One instruction: its mnemonic and operands as llvm-objdump prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
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
        if address.trim().is_empty() || !address.trim().chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let rest = rest.trim();
        if rest.is_empty() {
            continue;
        }
        let (mnemonic, operands) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if let Some((_, instructions)) = functions.last_mut() {
            instructions.push(Instruction { mnemonic: mnemonic.to_string(), operands: operands.trim().to_string() });
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

/// What one function must contain: after the first `after` instruction (e.g. the
/// `stdcx.` of an atomic read-modify-write), `barrier` comes before the next instruction
/// that touches memory.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub function: &'static str,
    pub after: &'static str,
    pub barrier: &'static str,
    /// Why, for the failure message.
    pub why: &'static str,
}

/// The barriers the kernel's correctness argument rests on.
pub const EXPECTATIONS: &[Expectation] = &[
    Expectation {
        function: "kernel::rcu::quiescent_state",
        after: "stdcx.",
        barrier: "sync",
        why: "RCU's quiescent-state report must be ordered before the CPU's next read-side loads (lwsync does not order a store before a later load)",
    },
    Expectation {
        function: "kernel::rcu::note_quiescent",
        after: "stdcx.",
        barrier: "sync",
        why: "the idle loop's quiescent-state report, as quiescent_state's",
    },
];

/// Checks `expectation` against the disassembled `functions`; `Err` says what is wrong.
pub fn check(functions: &[(String, Vec<Instruction>)], expectation: &Expectation) -> Result<(), String> {
    let name = expectation.function;
    let (_, instructions) = functions
        .iter()
        .find(|(f, _)| f == name)
        .ok_or_else(|| format!("{name}: not in the image (renamed or inlined everywhere?)"))?;
    let start = instructions
        .iter()
        .position(|i| i.mnemonic == expectation.after)
        .ok_or_else(|| format!("{name}: no `{}`", expectation.after))?;
    for instruction in &instructions[start + 1..] {
        if instruction.mnemonic == expectation.barrier {
            return Ok(());
        }
        if touches_memory(instruction) {
            return Err(format!(
                "{name}: after `{}`, `{} {}` touches memory before any `{}`: {}",
                expectation.after, instruction.mnemonic, instruction.operands, expectation.barrier, expectation.why
            ));
        }
    }
    Err(format!("{name}: no `{}` after `{}`: {}", expectation.barrier, expectation.after, expectation.why))
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
        assert_eq!(f[0].1[2], Instruction { mnemonic: "stdcx.".into(), operands: "4, 30, 3".into() });
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
        assert!(missing.contains("not in the image"), "{missing}");
    }

    #[test]
    fn what_touches_memory() {
        let i = |m: &str| Instruction { mnemonic: m.into(), operands: String::new() };
        for m in ["ld", "lbarx", "stw", "stdcx.", "bl", "bctrl", "dcbz"] {
            assert!(touches_memory(&i(m)), "{m}");
        }
        for m in ["li", "lis", "lwsync", "sync", "addi", "bf-", "isync"] {
            assert!(!touches_memory(&i(m)), "{m}");
        }
    }
}
