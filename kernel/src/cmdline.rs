//! The kernel command line (`-append` on QEMU, `/chosen/bootargs`).
//!
//! Options are whitespace-separated `name=value` words. An unknown or
//! malformed option is reported to the caller and ignored, and the boot goes on
//! with the default for that option. Every option is listed in README.md.

use core::fmt;

use crate::console;

/// What `inject=` makes the kernel do after its self-tests, to prove that
/// failures are reported and judged as failures (the harness runs these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// `panic!()` from kernel code.
    Panic,
    /// Spin forever with interrupts off, printing nothing more.
    Hang,
    /// Add a self-test that reports `not ok`.
    NotOk,
    /// Execute a trap instruction with no fix-up: an unexpected 0x700.
    Program,
    /// Execute an illegal instruction: a program interrupt (0x700) in a
    /// partition, a hypervisor emulation assistance interrupt (0xe40, state
    /// in HSRR0/1) in hypervisor state.
    Illegal,
    /// Allocate more than the heap holds.
    OutOfMemory,
    /// A misaligned `lwarx`: an unexpected alignment interrupt (0x600).
    Alignment,
    /// A load from an unmapped kernel address: an unexpected data storage
    /// interrupt (0x300) with translation on.
    Unmapped,
    /// Something QEMU reports as a guest error and otherwise survives: a
    /// `tlbie` by address of a kernel (quadrant 3) address under radix, an
    /// unimplemented platform call otherwise. The boot itself passes; only the
    /// harness's QEMU-log judge can fail it.
    GuestError,
    /// `sched::yield_now` with interrupts off (inside a read-side section):
    /// refused with a fatal report naming the caller.
    YieldIrqsOff,
}

impl Inject {
    const ALL: [(&'static str, Inject); 10] = [
        ("panic", Inject::Panic),
        ("hang", Inject::Hang),
        ("notok", Inject::NotOk),
        ("program", Inject::Program),
        ("illegal", Inject::Illegal),
        ("oom", Inject::OutOfMemory),
        ("align", Inject::Alignment),
        ("unmapped", Inject::Unmapped),
        ("guest_error", Inject::GuestError),
        ("yield_irqs_off", Inject::YieldIrqsOff),
    ];

    pub fn name(self) -> &'static str {
        Inject::ALL.iter().find(|(_, i)| *i == self).map_or("?", |(n, _)| n)
    }
}

/// Which MMU the kernel runs with (`mmu=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmuMode {
    /// Radix tree translation (POWER9's default): negotiated with the
    /// platform, translation on.
    Radix,
    /// The hashed page table, filled from the software tree on demand.
    Hash,
    /// Translation off: the kernel stays in real mode (only the real-mode
    /// area is usable). For bring-up and comparison.
    Off,
}

impl MmuMode {
    const ALL: [MmuMode; 3] = [MmuMode::Radix, MmuMode::Hash, MmuMode::Off];

    /// The mode stored as `mode as u8` (in an atomic, by a platform's
    /// firmware phase); anything else reads as `Off`.
    pub fn from_u8(value: u8) -> MmuMode {
        MmuMode::ALL.into_iter().find(|&mode| mode as u8 == value).unwrap_or(MmuMode::Off)
    }

    pub fn name(self) -> &'static str {
        match self {
            MmuMode::Radix => "radix",
            MmuMode::Hash => "hash",
            MmuMode::Off => "off",
        }
    }
}

/// Whether `pmdp_collapse_flush` IPIs the CPUs that may walk the address
/// space locklessly and waits for them (`serialize_against_pte_lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollapseIpi {
    /// As Linux today: on for hash (its fault path walks locklessly), off
    /// for radix (GUP-fast rechecks the PMD instead).
    Auto,
    On,
    Off,
}

impl CollapseIpi {
    /// Whether the IPI is sent under the hash MMU (`hash`) or radix.
    pub fn enabled(self, hash: bool) -> bool {
        match self {
            CollapseIpi::Auto => hash,
            CollapseIpi::On => true,
            CollapseIpi::Off => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options<'a> {
    /// `mmu=`: translation mode.
    pub mmu: MmuMode,
    /// `collapse_ipi=`: see CollapseIpi.
    pub collapse_ipi: CollapseIpi,
    /// `gup_pmd_recheck=`: GUP-fast rechecks the PMD after pinning (the 2022
    /// fix); off recreates the kernels before it.
    pub gup_pmd_recheck: bool,
    /// `loglevel=`: console threshold, Linux numbering (messages below it print).
    pub loglevel: u8,
    /// `selftest=`: comma-separated patterns selecting self-tests (see ktest).
    pub selftest: &'a str,
    /// `inject=`: deliberate failure after the self-tests.
    pub inject: Option<Inject>,
    /// `expect_cpus=`: CPU count the device-tree self-test expects (as `-smp`).
    pub expect_cpus: Option<u32>,
    /// `expect_mem=`: memory size the device-tree self-test expects (as `-m`).
    pub expect_mem: Option<u64>,
    /// `bench=`: comma-separated patterns selecting benchmarks (run after the
    /// self-tests, as KTAP tests of suite `bench`); `none` by default.
    pub bench: &'a str,
    /// `bench_reps=`: repetitions per benchmark result.
    pub bench_reps: u32,
    /// `race_jitter=`: the longest delay, in microseconds, the stress
    /// suite's race points spin (`kernel::mm::jitter`); 0 turns it off;
    /// `None`: the suite's default.
    pub race_jitter_us: Option<u32>,
    /// `race_seed=`: the seed of those delays; `None`: one taken from the
    /// clock, printed so that a run can be replayed.
    pub race_seed: Option<u64>,
    /// `stress_rounds=`: collapse/split rounds per stress configuration;
    /// `None`: the suite's default.
    pub stress_rounds: Option<u32>,
}

/// Repetitions per benchmark result unless `bench_reps=` says otherwise.
pub const DEFAULT_BENCH_REPS: u32 = 20;

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            mmu: MmuMode::Radix,
            collapse_ipi: CollapseIpi::Auto,
            gup_pmd_recheck: true,
            loglevel: console::DEFAULT_LOGLEVEL,
            selftest: "all",
            inject: None,
            expect_cpus: None,
            expect_mem: None,
            bench: "none",
            bench_reps: DEFAULT_BENCH_REPS,
            race_jitter_us: None,
            race_seed: None,
            stress_rounds: None,
        }
    }
}

/// Something wrong with one word of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem<'a> {
    Unknown { word: &'a str },
    Malformed { word: &'a str, expected: &'static str },
}

impl fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unknown { word } => write!(f, "unknown option '{word}' ignored"),
            Problem::Malformed { word, expected } => {
                write!(f, "malformed option '{word}' ignored (expected {expected})")
            }
        }
    }
}

/// Parses `cmdline`, calling `report` for each word it cannot use.
pub fn parse<'a>(cmdline: &'a str, mut report: impl FnMut(Problem<'a>)) -> Options<'a> {
    let mut options = Options::default();
    for word in cmdline.split_ascii_whitespace() {
        let (name, value) = match word.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (word, None),
        };
        let result = match (name, value) {
            ("loglevel", Some(v)) => parse_loglevel(v)
                .map(|l| options.loglevel = l)
                .ok_or("a level 0-8 or one of quiet, error, warn, notice, info, debug"),
            ("selftest", Some(v)) if !v.is_empty() => {
                options.selftest = v;
                Ok(())
            }
            ("selftest", _) => Err("selftest=<pattern>[,<pattern>...] | all | none"),
            ("bench", Some(v)) if !v.is_empty() => {
                options.bench = v;
                Ok(())
            }
            ("bench", _) => Err("bench=<pattern>[,<pattern>...] | all | none"),
            ("bench_reps", Some(v)) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .map(|n| options.bench_reps = n)
                .ok_or("a repetition count 1-10000"),
            ("bench_reps", None) => Err("name=value"),
            ("race_jitter", Some(v)) => v
                .parse::<u32>()
                .ok()
                .filter(|&us| us <= 10_000)
                .map(|us| options.race_jitter_us = Some(us))
                .ok_or("a delay in microseconds, 0-10000"),
            ("race_seed", Some(v)) => {
                parse_u64(v).map(|s| options.race_seed = Some(s)).ok_or("a number (decimal or 0x hex)")
            }
            ("stress_rounds", Some(v)) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .map(|n| options.stress_rounds = Some(n))
                .ok_or("a round count 1-100000"),
            ("inject", Some(v)) => Inject::ALL
                .iter()
                .find(|(n, _)| *n == v)
                .map(|&(_, i)| options.inject = Some(i))
                .ok_or("inject=panic|hang|notok|program|illegal|oom|align|unmapped|guest_error|yield_irqs_off"),
            ("expect_cpus", Some(v)) => {
                v.parse::<u32>().ok().filter(|&n| n > 0).map(|n| options.expect_cpus = Some(n)).ok_or("a CPU count")
            }
            ("mmu", Some("radix")) => {
                options.mmu = MmuMode::Radix;
                Ok(())
            }
            ("mmu", Some("hash")) => {
                options.mmu = MmuMode::Hash;
                Ok(())
            }
            ("mmu", Some("off")) => {
                options.mmu = MmuMode::Off;
                Ok(())
            }
            ("mmu", _) => Err("mmu=radix|hash|off"),
            ("collapse_ipi", Some(v)) => match v {
                "auto" => Some(CollapseIpi::Auto),
                "on" => Some(CollapseIpi::On),
                "off" => Some(CollapseIpi::Off),
                _ => None,
            }
            .map(|c| options.collapse_ipi = c)
            .ok_or("collapse_ipi=auto|on|off"),
            ("collapse_ipi", None) => Err("collapse_ipi=auto|on|off"),
            ("gup_pmd_recheck", Some("on")) => {
                options.gup_pmd_recheck = true;
                Ok(())
            }
            ("gup_pmd_recheck", Some("off")) => {
                options.gup_pmd_recheck = false;
                Ok(())
            }
            ("gup_pmd_recheck", _) => Err("gup_pmd_recheck=on|off"),
            ("expect_mem", Some(v)) => {
                parse_size(v).map(|s| options.expect_mem = Some(s)).ok_or("a size such as 1024M or 2G")
            }
            (
                "loglevel" | "inject" | "expect_cpus" | "expect_mem" | "race_jitter" | "race_seed" | "stress_rounds",
                None,
            ) => Err("name=value"),
            _ => {
                report(Problem::Unknown { word });
                continue;
            }
        };
        if let Err(expected) = result {
            report(Problem::Malformed { word, expected });
        }
    }
    options
}

/// A decimal or `0x` hexadecimal number.
fn parse_u64(value: &str) -> Option<u64> {
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// `loglevel=` accepts Linux's numbers or names: `loglevel=debug` shows
/// everything, `loglevel=warn` warnings and errors.
fn parse_loglevel(value: &str) -> Option<u8> {
    use console::Level;
    let threshold = match value {
        "quiet" => 0,
        "error" => Level::Error as u8 + 1,
        "warn" => Level::Warn as u8 + 1,
        "notice" => Level::Notice as u8 + 1,
        "info" => Level::Info as u8 + 1,
        "debug" => Level::Debug as u8 + 1,
        number => number.parse::<u8>().ok().filter(|&n| n <= 8)?,
    };
    Some(threshold)
}

/// Parses a size: a number with an optional K, M, G or T suffix (binary
/// multiples, as QEMU's `-m`), `0x` hex allowed. A bare number is bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        b't' | b'T' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let number = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    number.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn parse_all(line: &str) -> (Options<'_>, Vec<Problem<'_>>) {
        let mut problems = Vec::new();
        let options = parse(line, |p| problems.push(p));
        (options, problems)
    }

    #[test]
    fn empty_line_gives_defaults() {
        let (options, problems) = parse_all("   ");
        assert_eq!(options, Options::default());
        assert_eq!(options.selftest, "all");
        assert!(problems.is_empty());
    }

    #[test]
    fn known_options() {
        let (o, p) =
            parse_all("loglevel=debug selftest=frame,heap.* inject=program expect_cpus=4 expect_mem=2G mmu=off");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(o.mmu, MmuMode::Off);
        assert_eq!(o.collapse_ipi, CollapseIpi::Auto);
        let (ipi, ipi_problems) = parse_all("collapse_ipi=on collapse_ipi=sometimes");
        assert_eq!(ipi.collapse_ipi, CollapseIpi::On);
        assert!(matches!(ipi_problems[0], Problem::Malformed { word: "collapse_ipi=sometimes", .. }));
        assert!(CollapseIpi::Auto.enabled(true) && !CollapseIpi::Auto.enabled(false));
        assert!(CollapseIpi::On.enabled(false) && !CollapseIpi::Off.enabled(true));
        assert!(Options::default().gup_pmd_recheck);
        let (gup, gup_problems) = parse_all("gup_pmd_recheck=off gup_pmd_recheck=maybe");
        assert!(!gup.gup_pmd_recheck);
        assert!(matches!(gup_problems[0], Problem::Malformed { word: "gup_pmd_recheck=maybe", .. }));
        assert_eq!(o.loglevel, 8);
        assert_eq!(o.selftest, "frame,heap.*");
        assert_eq!(o.inject, Some(Inject::Program));
        assert_eq!(o.expect_cpus, Some(4));
        assert_eq!(o.expect_mem, Some(2 << 30));
        assert_eq!((o.bench, o.bench_reps), ("none", DEFAULT_BENCH_REPS));
        assert_eq!(parse_all("inject=illegal").0.inject, Some(Inject::Illegal));
        for mode in [MmuMode::Radix, MmuMode::Hash, MmuMode::Off] {
            assert_eq!(MmuMode::from_u8(mode as u8), mode);
        }
        assert_eq!(MmuMode::from_u8(200), MmuMode::Off);
        let (o, p) = parse_all("race_jitter=40 race_seed=0x2a stress_rounds=10000");
        assert!(p.is_empty());
        assert_eq!((o.race_jitter_us, o.race_seed, o.stress_rounds), (Some(40), Some(42), Some(10_000)));
        let (o, p) = parse_all("race_jitter=20000 race_seed=x stress_rounds=0 race_seed=7");
        assert_eq!(p.len(), 3);
        assert_eq!((o.race_jitter_us, o.race_seed, o.stress_rounds), (None, Some(7), None));
        let (o, p) = parse_all("bench=gup*,collapse bench_reps=5");
        assert!(p.is_empty());
        assert_eq!((o.bench, o.bench_reps), ("gup*,collapse", 5));
        let (o, p) = parse_all("bench= bench_reps=0 bench_reps");
        assert_eq!((o.bench, o.bench_reps, p.len()), ("none", DEFAULT_BENCH_REPS, 3));
    }

    #[test]
    fn numeric_loglevel_and_last_one_wins() {
        let (o, _) = parse_all("loglevel=3 loglevel=5");
        assert_eq!(o.loglevel, 5);
    }

    #[test]
    fn unknown_and_malformed_are_reported_and_defaults_kept() {
        let (o, p) = parse_all(
            "frobnicate=1 loglevel=loud expect_cpus=0 inject=explode expect_mem selftest= quiet mmu=segments",
        );
        assert_eq!(o, Options::default());
        assert_eq!(o.mmu, MmuMode::Radix);
        assert_eq!(p.len(), 8, "{p:?}");
        assert!(matches!(p[7], Problem::Malformed { word: "mmu=segments", .. }));
        assert_eq!(p[0], Problem::Unknown { word: "frobnicate=1" });
        assert!(matches!(p[1], Problem::Malformed { word: "loglevel=loud", .. }));
        assert!(matches!(p[2], Problem::Malformed { word: "expect_cpus=0", .. }));
        assert!(matches!(p[3], Problem::Malformed { word: "inject=explode", .. }));
        assert!(matches!(p[4], Problem::Malformed { word: "expect_mem", .. }));
        assert!(matches!(p[5], Problem::Malformed { word: "selftest=", .. }));
        assert_eq!(p[6], Problem::Unknown { word: "quiet" });
        let text = std::format!("{}", p[1]);
        assert!(text.contains("loglevel=loud") && text.contains("ignored"), "{text}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024M"), Some(1 << 30));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn inject_names_round_trip() {
        for (name, inject) in Inject::ALL {
            assert_eq!(inject.name(), name);
            let line = std::format!("inject={name}");
            assert_eq!(parse_all(&line).0.inject, Some(inject));
        }
    }
}
