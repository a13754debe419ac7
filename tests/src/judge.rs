//! Deciding whether a boot passed: a pure function of what QEMU printed, how it exited and
//! whether it was killed at the deadline. RTAS power-off makes QEMU exit 0 whatever
//! happened, so the console is the real status.

use std::fmt;
use std::time::Duration;

use crate::banner::Banner;
use crate::ktap::{self, Counts, Outcome};
use crate::qemu::{BootOutput, Nmi};

pub use crate::qemu::Machine;

/// One reason a boot failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    TimedOut {
        after: Duration,
        /// What the NMI at the deadline came to, and how many CPUs the kernel then
        /// reported (`NMI: CPU <n> (PIR <p>) at ...` lines on the console).
        nmi: Option<Nmi>,
        cpus_reported: usize,
    },
    QemuExit {
        code: Option<i32>,
    },
    QemuError {
        line: String,
    },
    /// A line of QEMU's guest-error log (`-d guest_errors,unimp`) no allowance covers.
    GuestLog {
        line: String,
        count: usize,
    },
    Fatal {
        line: String,
    },
    NotOk {
        number: u32,
        name: String,
        reason: Option<String>,
    },
    NoBanner,
    BannerMismatch {
        key: &'static str,
        expected: String,
        found: String,
    },
    NoHeader,
    RepeatedHeader {
        count: usize,
    },
    NoPlan,
    RepeatedPlan {
        count: usize,
    },
    Malformed {
        line: String,
    },
    Duplicate {
        number: u32,
    },
    OutOfOrder {
        expected: u32,
        found: u32,
    },
    ResultCount {
        planned: u32,
        found: u32,
    },
    NoSummary,
    RepeatedSummary {
        count: usize,
    },
    SummaryMismatch {
        summary: Counts,
        counted: Counts,
    },
    SummaryFailed {
        failed: u32,
    },
}

/// Every [`Failure::kind`], for validating the matrix's `expect_reason`.
pub const KINDS: &[&str] = &[
    "timeout",
    "qemu-exit",
    "qemu-stderr",
    "qemu-log",
    "fatal",
    "not-ok",
    "banner",
    "ktap",
    "numbering",
    "count",
    "summary",
    "summary-failed",
];

/// Kinds that say how a boot ended, or what QEMU saw the guest do wrong, rather than what
/// its tests reported. A boot expected to fail must not also end in one of these unless it
/// expects it: a kernel meant to report `not ok` that hangs instead, or that also made QEMU
/// log a guest error, has failed for the wrong reason.
pub const ABNORMAL_END_KINDS: &[&str] = &["timeout", "qemu-exit", "qemu-stderr", "qemu-log", "fatal"];

impl Failure {
    /// A short stable name, used by the matrix's `expect_reason`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::TimedOut { .. } => "timeout",
            Failure::QemuExit { .. } => "qemu-exit",
            Failure::QemuError { .. } => "qemu-stderr",
            Failure::GuestLog { .. } => "qemu-log",
            Failure::Fatal { .. } => "fatal",
            Failure::NotOk { .. } => "not-ok",
            Failure::NoBanner | Failure::BannerMismatch { .. } => "banner",
            Failure::NoHeader
            | Failure::RepeatedHeader { .. }
            | Failure::NoPlan
            | Failure::RepeatedPlan { .. }
            | Failure::Malformed { .. } => "ktap",
            Failure::Duplicate { .. } | Failure::OutOfOrder { .. } => "numbering",
            Failure::ResultCount { .. } => "count",
            Failure::NoSummary | Failure::RepeatedSummary { .. } | Failure::SummaryMismatch { .. } => "summary",
            Failure::SummaryFailed { .. } => "summary-failed",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TimedOut { after, nmi, cpus_reported } => {
                write!(formatter, "timed out after {:.1} s", after.as_secs_f64())?;
                let Some(nmi) = nmi else { return write!(formatter, "; QEMU killed") };
                let waited = nmi.waited.as_secs_f64();
                match &nmi.sent {
                    Err(why) => write!(formatter, "; no NMI ({why}); QEMU killed"),
                    Ok(()) => {
                        let cpus = if *cpus_reported == 1 { "CPU" } else { "CPUs" };
                        write!(
                            formatter,
                            "; NMI sent through QMP: {cpus_reported} {cpus} reported (`NMI: CPU` blocks)"
                        )?;
                        match nmi.qemu_exited {
                            true => write!(formatter, ", QEMU exited {waited:.1} s later"),
                            false => write!(formatter, ", QEMU killed {waited:.1} s later"),
                        }
                    }
                }
            }
            Failure::QemuExit { code: Some(code) } => {
                write!(formatter, "QEMU exited with status {code}")
            }
            Failure::QemuExit { code: None } => write!(formatter, "QEMU was killed by a signal"),
            Failure::QemuError { line } => write!(formatter, "QEMU error: {line}"),
            Failure::GuestLog { line, count: 1 } => write!(formatter, "QEMU guest log: {line}"),
            Failure::GuestLog { line, count } => {
                write!(formatter, "QEMU guest log ({count} times): {line}")
            }
            Failure::Fatal { line } => write!(formatter, "kernel: {line}"),
            Failure::NotOk { number, name, reason } => {
                write!(formatter, "not ok {number} {name}")?;
                match reason {
                    Some(reason) => write!(formatter, " ({reason})"),
                    None => Ok(()),
                }
            }
            Failure::NoBanner => write!(formatter, "no `{}` banner line", crate::banner::PREFIX.trim_end()),
            Failure::BannerMismatch { key, expected, found } => {
                write!(formatter, "banner says {key}={found}, but QEMU was given {expected}")
            }
            Failure::NoHeader => write!(formatter, "no `{}` line", ktap::HEADER),
            Failure::RepeatedHeader { count } => {
                write!(formatter, "`{}` printed {count} times", ktap::HEADER)
            }
            Failure::NoPlan => write!(formatter, "no test plan (`1..N`)"),
            Failure::RepeatedPlan { count } => write!(formatter, "{count} test plans"),
            Failure::Malformed { line } => write!(formatter, "malformed KTAP line: {line}"),
            Failure::Duplicate { number } => {
                write!(formatter, "test number {number} reported twice")
            }
            Failure::OutOfOrder { expected, found } => {
                write!(formatter, "test number {found} out of order (expected {expected})")
            }
            Failure::ResultCount { planned, found } => {
                let results = if *found == 1 { "result was" } else { "results were" };
                write!(formatter, "plan says {planned} tests, but {found} {results} reported")
            }
            Failure::NoSummary => write!(formatter, "no `selftests: P passed, F failed, S skipped` line"),
            Failure::RepeatedSummary { count } => write!(formatter, "{count} summary lines"),
            Failure::SummaryMismatch { summary, counted } => {
                write!(formatter, "summary says {summary}, but the results were {counted}")
            }
            Failure::SummaryFailed { failed } => {
                write!(formatter, "summary reports {failed} failed")
            }
        }
    }
}

/// The judge's decision: passed iff there are no failures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Most telling first: how the boot ended, then what the kernel reported.
    pub failures: Vec<Failure>,
    /// The results counted from the console.
    pub counted: Counts,
    /// The guest-log lines allowances let through, per allowance that matched any.
    pub allowed: Vec<Allowed>,
}

/// Where an allowance for guest-log lines comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowedBy {
    /// The machine's firmware logs it on every boot ([`crate::qemu::FirmwareLogLine`]).
    Firmware,
    /// The caller listed it (a matrix row's `qemu_log_allow`).
    Caller,
}

/// How many guest-log lines one allowance let through: the judge says so even when the
/// boot passes, so that an allowance is never silent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub by: AllowedBy,
    pub pattern: String,
    pub reason: String,
    pub count: usize,
}

impl fmt::Display for Allowed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = if self.count == 1 { "line" } else { "lines" };
        let by = match self.by {
            AllowedBy::Firmware => "the machine's firmware",
            AllowedBy::Caller => "qemu_log_allow",
        };
        write!(formatter, "allowed {} QEMU guest-log {lines} /{}/ ({by}: {})", self.count, self.pattern, self.reason)
    }
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn has_kind(&self, kind: &str) -> bool {
        self.failures.iter().any(|failure| failure.kind() == kind)
    }

    /// All reasons on one line.
    pub fn reason(&self) -> String {
        self.failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }
}

/// A QEMU guest-log message a matrix row expects, and why it is not the kernel's fault.
#[derive(Clone, Debug)]
pub struct LogAllowance {
    pub pattern: regex::Regex,
    pub reason: String,
}

/// Judges one boot of `machine`; any line of QEMU's guest log fails it unless the machine's
/// firmware logs it on every boot.
pub fn judge(output: &BootOutput, machine: Machine) -> Verdict {
    judge_allowing(output, machine, &[])
}

/// Judges one boot of `machine`; a guest-log line fails it unless the machine's firmware
/// logs it on every boot or one of `allowed` matches.
pub fn judge_allowing(output: &BootOutput, machine: Machine, allowed: &[LogAllowance]) -> Verdict {
    let mut failures = Vec::new();
    let firmware_allowances: Vec<LogAllowance> = machine
        .firmware_log
        .iter()
        .map(|line| LogAllowance {
            pattern: regex::Regex::new(line.pattern).expect("a firmware log pattern is a valid regex"),
            reason: line.reason.to_string(),
        })
        .collect();
    let allowances: Vec<(AllowedBy, &LogAllowance)> = firmware_allowances
        .iter()
        .map(|allowance| (AllowedBy::Firmware, allowance))
        .chain(allowed.iter().map(|allowance| (AllowedBy::Caller, allowance)))
        .collect();

    if output.timed_out {
        failures.push(Failure::TimedOut {
            after: output.nmi.as_ref().map_or(output.elapsed, |nmi| nmi.at),
            nmi: output.nmi.clone(),
            cpus_reported: nmi_reports(&output.console),
        });
    } else if output.exit_code != Some(0) {
        failures.push(Failure::QemuExit { code: output.exit_code });
    }
    failures.extend(qemu_errors(&output.stderr).map(|line| Failure::QemuError { line: line.to_string() }));
    let (log_failures, allowed) = guest_log_failures(&output.qemu_log, &allowances);
    failures.extend(log_failures);

    let report = ktap::parse(&output.console);
    failures.extend(report.fatal.iter().map(|line| Failure::Fatal { line: line.clone() }));
    failures.extend(report.results.iter().filter(|result| result.outcome == Outcome::Fail).map(|result| {
        Failure::NotOk { number: result.number, name: result.name.clone(), reason: result.reason.clone() }
    }));

    check_banner(&output.console, machine, &mut failures);
    check_structure(&report, &mut failures);

    let counted = report.counts();
    match report.summaries.as_slice() {
        [] => failures.push(Failure::NoSummary),
        [summary, rest @ ..] => {
            if !rest.is_empty() {
                failures.push(Failure::RepeatedSummary { count: report.summaries.len() });
            }
            if *summary != counted {
                failures.push(Failure::SummaryMismatch { summary: *summary, counted });
            }
            if summary.failed > 0 {
                failures.push(Failure::SummaryFailed { failed: summary.failed });
            }
        }
    }

    Verdict { failures, counted, allowed }
}

/// How many CPUs reported after an NMI: the kernel starts each CPU's report with
/// `NMI: CPU <index> (PIR <pir>) at <address> <symbol>`.
fn nmi_reports(console: &str) -> usize {
    ktap::lines(console)
        .filter_map(|line| line.strip_prefix("NMI: CPU "))
        .filter(|rest| {
            rest.split_once(' ').is_some_and(|(index, pir)| index.parse::<u32>().is_ok() && pir.starts_with("(PIR "))
        })
        .count()
}

/// One failure per distinct guest-log line no allowance matches, in first-seen order, with
/// how often it came (a wrong `tlbie` form in a loop logs the same line hundreds of times);
/// and how many lines each allowance let through (the first that matches a line counts it).
fn guest_log_failures(log: &str, allowances: &[(AllowedBy, &LogAllowance)]) -> (Vec<Failure>, Vec<Allowed>) {
    let mut failures: Vec<Failure> = Vec::new();
    let mut counts = vec![0; allowances.len()];
    for line in ktap::lines(log).map(str::trim_end).filter(|line| !line.is_empty()) {
        if let Some(index) = allowances.iter().position(|(_, allowance)| allowance.pattern.is_match(line)) {
            counts[index] += 1;
            continue;
        }
        let seen = failures.iter_mut().find_map(|failure| match failure {
            Failure::GuestLog { line: seen, count } if seen == line => Some(count),
            _ => None,
        });
        match seen {
            Some(count) => *count += 1,
            None => failures.push(Failure::GuestLog { line: line.to_string(), count: 1 }),
        }
    }
    let allowed = allowances
        .iter()
        .zip(counts)
        .filter(|&(_, count)| count > 0)
        .map(|((by, allowance), count)| Allowed {
            by: *by,
            pattern: allowance.pattern.as_str().to_string(),
            reason: allowance.reason.clone(),
            count,
        })
        .collect();
    (failures, allowed)
}

/// Lines of QEMU's stderr that are errors: everything but `<program>: warning: ...`.
fn qemu_errors(stderr: &str) -> impl Iterator<Item = &str> {
    ktap::lines(stderr).filter(|line| !line.is_empty() && !is_warning(line))
}

fn is_warning(line: &str) -> bool {
    let message = line.split_once(": ").map_or(line, |(_program, message)| message);
    message.starts_with("warning: ") || line.starts_with("warning: ")
}

fn check_banner(console: &str, machine: Machine, failures: &mut Vec<Failure>) {
    let Some(banner) = Banner::find(console) else {
        failures.push(Failure::NoBanner);
        return;
    };
    if banner.cpus() != Some(machine.cpus) {
        failures.push(Failure::BannerMismatch {
            key: "cpus",
            expected: format!("-smp {}", machine.cpus),
            found: banner.get("cpus").unwrap_or("(missing)").to_string(),
        });
    }
    if banner.memory_mib() != Some(machine.memory_mib) {
        failures.push(Failure::BannerMismatch {
            key: "memory",
            expected: format!("-m {}M", machine.memory_mib),
            found: banner.get("memory").unwrap_or("(missing)").to_string(),
        });
    }
}

/// The KTAP block's shape: one header, one plan, results numbered 1, 2, 3... matching it.
fn check_structure(report: &ktap::Report, failures: &mut Vec<Failure>) {
    failures.extend(report.malformed.iter().map(|line| Failure::Malformed { line: line.clone() }));
    match report.headers {
        0 => {
            failures.push(Failure::NoHeader);
            return;
        }
        1 => {}
        count => failures.push(Failure::RepeatedHeader { count }),
    }

    // Only the first numbering error is reported: after one, every later number is off too.
    let mut seen = Vec::new();
    for result in &report.results {
        let expected = seen.len() as u32 + 1;
        if result.number != expected {
            failures.push(if seen.contains(&result.number) {
                Failure::Duplicate { number: result.number }
            } else {
                Failure::OutOfOrder { expected, found: result.number }
            });
            break;
        }
        seen.push(result.number);
    }

    match report.plans.as_slice() {
        [] => failures.push(Failure::NoPlan),
        [planned, rest @ ..] => {
            if !rest.is_empty() {
                failures.push(Failure::RepeatedPlan { count: report.plans.len() });
            }
            let found = report.results.len() as u32;
            if found != *planned {
                failures.push(Failure::ResultCount { planned: *planned, found });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: Machine = Machine { cpus: 2, memory_mib: 1024, firmware_log: &[] };
    const BANNER: &str =
        "ppc64-kernel 0.1.0 firmware=vof cpus=2 memory=1024MiB mmu=radix cmdline=\"selftest=* loglevel=info\"";

    /// A clean QEMU exit with `console` on stdout.
    fn boot(console: &str) -> BootOutput {
        BootOutput {
            console: console.into(),
            transcript: console.into(),
            exit_code: Some(0),
            elapsed: Duration::from_millis(700),
            ..BootOutput::default()
        }
    }

    /// A good run's console with `body` between the plan and the summary.
    fn console(plan: &str, body: &str, summary: &str) -> String {
        format!("VOF firmware\n{BANNER}\nKTAP version 1\n{plan}\n{body}{summary}\n")
    }

    fn passing_console() -> String {
        console(
            "1..3",
            "# mm: 3 regions\nok 1 mm_alloc\n[ 0.2] unrelated log\nok 2 dt_cpus\nok 3 radix # SKIP hash mode\n",
            "selftests: 2 passed, 0 failed, 1 skipped",
        )
    }

    fn kinds(verdict: &Verdict) -> Vec<&'static str> {
        verdict.failures.iter().map(Failure::kind).collect()
    }

    #[test]
    fn passing_boot() {
        let verdict = judge(&boot(&passing_console()), MACHINE);
        assert!(verdict.passed(), "{}", verdict.reason());
        assert_eq!(verdict.counted, Counts { passed: 2, failed: 0, skipped: 1 });
    }

    #[test]
    fn passing_boot_with_slof_line_endings_and_qemu_warning() {
        let mut output = boot(&passing_console().replace('\n', "\r\r\n"));
        output.stderr = "qemu-system-ppc64: warning: TCG doesn't support requested feature\n".into();
        let verdict = judge(&output, MACHINE);
        assert!(verdict.passed(), "{}", verdict.reason());
    }

    #[test]
    fn not_ok() {
        let text =
            console("1..2", "ok 1 a\nnot ok 2 b # expected 4 got 5\n", "selftests: 1 passed, 1 failed, 0 skipped");
        let verdict = judge(&boot(&text), MACHINE);
        assert_eq!(kinds(&verdict), ["not-ok", "summary-failed"]);
        assert_eq!(verdict.failures[0].to_string(), "not ok 2 b (expected 4 got 5)");
    }

    #[test]
    fn no_ktap_header() {
        let text = passing_console().replace("KTAP version 1\n", "");
        let verdict = judge(&boot(&text), MACHINE);
        // Without a header the result lines are not KTAP; the summary then disagrees too.
        assert_eq!(kinds(&verdict), ["ktap", "summary"]);
        assert_eq!(verdict.failures[0], Failure::NoHeader);
    }

    #[test]
    fn repeated_header() {
        let text = passing_console().replace("1..3\n", "1..3\nKTAP version 1\n");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::RepeatedHeader { count: 2 }]);
    }

    #[test]
    fn missing_plan() {
        let text = passing_console().replace("1..3\n", "");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::NoPlan]);
    }

    #[test]
    fn repeated_plan() {
        let text = passing_console().replace("1..3\n", "1..3\n1..3\n");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::RepeatedPlan { count: 2 }]);
    }

    #[test]
    fn fewer_results_than_planned() {
        let text = passing_console().replace("1..3", "1..4");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::ResultCount { planned: 4, found: 3 }]);
    }

    #[test]
    fn more_results_than_planned() {
        let text = passing_console().replace("1..3", "1..2");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::ResultCount { planned: 2, found: 3 }]);
    }

    #[test]
    fn duplicate_number() {
        let text = console("1..2", "ok 1 a\nok 1 b\n", "selftests: 2 passed, 0 failed, 0 skipped");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::Duplicate { number: 1 }]);
    }

    #[test]
    fn out_of_order_number() {
        let text = console("1..2", "ok 2 b\nok 1 a\n", "selftests: 2 passed, 0 failed, 0 skipped");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::OutOfOrder { expected: 1, found: 2 }]);
    }

    #[test]
    fn malformed_result() {
        let text = passing_console().replace("ok 2 dt_cpus", "ok two dt_cpus");
        let verdict = judge(&boot(&text), MACHINE);
        assert!(verdict.failures.contains(&Failure::Malformed { line: "ok two dt_cpus".into() }));
    }

    #[test]
    fn fatal_panic() {
        let text = console(
            "1..3",
            "ok 1 mm_alloc\nFATAL: panic at kernel/src/x.rs:10:5: msg\n r0 = 0000000000000000 r31 = 0000000000000001\n\
             Call trace:\n [0] 0x0000000000412345 kernel::x::f+0x24\n",
            "selftests: 1 passed, 1 failed, 0 skipped",
        );
        let verdict = judge(&boot(&text), MACHINE);
        assert_eq!(kinds(&verdict), ["fatal", "count", "summary", "summary-failed"]);
        assert_eq!(verdict.failures[0].to_string(), "kernel: FATAL: panic at kernel/src/x.rs:10:5: msg");
    }

    #[test]
    fn fatal_before_any_ktap() {
        let text = format!(
            "{BANNER}\nFATAL: exception 0x700 (program) at 0x4123 <f+0x8>\nselftests: 0 passed, 1 failed, 0 skipped\n"
        );
        let verdict = judge(&boot(&text), MACHINE);
        assert_eq!(kinds(&verdict), ["fatal", "ktap", "summary", "summary-failed"]);
    }

    #[test]
    fn no_summary() {
        let text = passing_console().replace("selftests: 2 passed, 0 failed, 1 skipped\n", "");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::NoSummary]);
    }

    #[test]
    fn summary_not_alone_on_its_line_is_malformed() {
        let text = passing_console()
            .replace("selftests: 2 passed, 0 failed, 1 skipped", "selftests: 2 passed, 0 failed, 1 skipped!");
        assert_eq!(kinds(&judge(&boot(&text), MACHINE)), ["ktap", "summary"]);
    }

    #[test]
    fn repeated_summary() {
        let text = passing_console() + "selftests: 2 passed, 0 failed, 1 skipped\n";
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::RepeatedSummary { count: 2 }]);
    }

    #[test]
    fn summary_disagrees_with_results() {
        let text = passing_console().replace("2 passed, 0 failed, 1 skipped", "3 passed, 0 failed, 0 skipped");
        let counted = Counts { passed: 2, failed: 0, skipped: 1 };
        let summary = Counts { passed: 3, failed: 0, skipped: 0 };
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::SummaryMismatch { summary, counted }]);
    }

    #[test]
    fn summary_reports_failures() {
        // A failure the kernel counted without printing `not ok` (e.g. a test that panicked).
        let text = console("1..1", "ok 1 a\n", "selftests: 1 passed, 1 failed, 0 skipped");
        assert_eq!(kinds(&judge(&boot(&text), MACHINE)), ["summary", "summary-failed"]);
    }

    #[test]
    fn timeout() {
        let mut output = boot(&format!("{BANNER}\nKTAP version 1\n1..3\nok 1 a\n"));
        output.timed_out = true;
        output.exit_code = None;
        output.elapsed = Duration::from_secs(10);
        let verdict = judge(&output, MACHINE);
        assert_eq!(kinds(&verdict), ["timeout", "count", "summary"]);
        assert_eq!(verdict.failures[0].to_string(), "timed out after 10.0 s; QEMU killed");
    }

    /// What the kernel prints after the NMI, cut short (the real one has all registers).
    const NMI_REPORT: &str = "\nNMI: CPU 0 (PIR 0) at 0xc000000000426738 \
        <ppc64_kernel::inject::hang_with_interrupts_off+0x18>\n  system reset: not recoverable (SRR1[RI]=0)\n\
        Call trace:\n [0] 0xc000000000426738 <ppc64_kernel::inject::hang_with_interrupts_off+0x18>\n\
        \nNMI: CPU 1 (PIR 4) at 0xc000000000004900 <decrementer vector 0x900+0x0>\nCall trace:\n\
        NMI: CPU 2 did not report within 1 s; going on without it\n\
        NMI: 2 of 3 online CPUs reported\nselftests: 1 passed, 1 failed, 0 skipped\n";

    #[test]
    fn timeout_with_an_nmi_counts_the_cpus_that_reported() {
        let mut output = boot(&format!("{BANNER}\nKTAP version 1\n1..1\nok 1 a\n{NMI_REPORT}"));
        output.timed_out = true;
        output.exit_code = None;
        output.elapsed = Duration::from_millis(10_400);
        let nmi =
            Nmi { at: Duration::from_secs(10), sent: Ok(()), waited: Duration::from_millis(400), qemu_exited: true };
        output.nmi = Some(nmi.clone());
        let verdict = judge(&output, MACHINE);
        // The kernel's summary after the report counts the hang as a failure.
        assert_eq!(kinds(&verdict), ["timeout", "summary", "summary-failed"]);
        assert_eq!(
            verdict.failures[0].to_string(),
            "timed out after 10.0 s; NMI sent through QMP: 2 CPUs reported (`NMI: CPU` blocks), QEMU exited 0.4 s later"
        );

        output.console = format!("{BANNER}\nKTAP version 1\n1..1\nok 1 a\n");
        output.nmi = Some(Nmi { waited: Duration::from_secs(5), qemu_exited: false, ..nmi });
        assert_eq!(
            judge(&output, MACHINE).failures[0].to_string(),
            "timed out after 10.0 s; NMI sent through QMP: 0 CPUs reported (`NMI: CPU` blocks), QEMU killed 5.0 s later"
        );

        output.nmi = Some(Nmi {
            at: Duration::from_secs(10),
            sent: Err("cannot connect to the QMP socket /x: No such file or directory".into()),
            waited: Duration::ZERO,
            qemu_exited: false,
        });
        assert_eq!(
            judge(&output, MACHINE).failures[0].to_string(),
            "timed out after 10.0 s; no NMI (cannot connect to the QMP socket /x: No such file or directory); QEMU killed"
        );
    }

    #[test]
    fn qemu_exit_status() {
        let mut output = boot(&passing_console());
        output.exit_code = Some(1);
        assert_eq!(judge(&output, MACHINE).failures, [Failure::QemuExit { code: Some(1) }]);
        output.exit_code = None;
        assert_eq!(judge(&output, MACHINE).failures, [Failure::QemuExit { code: None }]);
    }

    #[test]
    fn guest_log_lines_fail_the_boot_unless_allowed() {
        let mut output = boot(&passing_console());
        output.qemu_log = "helper_tlbie_isa300: attempt to invalidate a translation outside of quadrant 0\n".repeat(3)
            + "Unimplemented SPAPR hcall 0x0000000000000002\n";
        let verdict = judge(&output, MACHINE);
        assert_eq!(kinds(&verdict), ["qemu-log", "qemu-log"]);
        assert_eq!(
            verdict.failures[0].to_string(),
            "QEMU guest log (3 times): helper_tlbie_isa300: attempt to invalidate a translation outside of quadrant 0"
        );
        assert_eq!(verdict.failures[1].to_string(), "QEMU guest log: Unimplemented SPAPR hcall 0x0000000000000002");
        let allowed =
            [LogAllowance { pattern: regex::Regex::new("^Unimplemented SPAPR hcall").unwrap(), reason: "test".into() }];
        let verdict = judge_allowing(&output, MACHINE, &allowed);
        assert_eq!(kinds(&verdict), ["qemu-log"]);
        assert_eq!(verdict.allowed.len(), 1);
        assert_eq!((verdict.allowed[0].by, verdict.allowed[0].count), (AllowedBy::Caller, 1));
        assert_eq!(
            verdict.allowed[0].to_string(),
            "allowed 1 QEMU guest-log line /^Unimplemented SPAPR hcall/ (qemu_log_allow: test)"
        );
        output.qemu_log = "Unimplemented SPAPR hcall 0x2\n\n".into();
        assert!(judge_allowing(&output, MACHINE, &allowed).passed());
        assert!(!judge(&output, MACHINE).passed());
    }

    /// What skiboot prints before the kernel starts (from a real powernv9 boot) and a
    /// power-down message after it.
    const SKIBOOT_BEFORE: &str = "[    0.018194177,5] OPAL v7.1-106-g785a5e30 starting...\r\n\
        [    0.018707746,6] CPU: P9 generation processor (max 4 threads/core)\r\n\
        [    0.036873724,6] PLAT: AST SIO unavailable!\r\n\
        [    0.397362667,5] INIT: Assuming kernel at 0x20000000\r\n\
        [    0.422434841,5] INIT: Starting kernel at 0x20010000, fdt at 0x30760958 25521 bytes\r\n";
    const SKIBOOT_AFTER: &str = "[    1.102030405,5] OPAL: Shutdown request type 0x0...\r\n";

    /// What QEMU logs for skiboot on powernv9 (real boot, QEMU 10.0.2).
    fn skiboot_log() -> String {
        let chiptod: String = ["13", "0", "1", "2", "3", "4", "5", "6", "10"]
            .iter()
            .map(|register| format!("pnv_chiptod: unimplemented register: Ox{register}\n"))
            .collect();
        format!("OPB write failed at @0xd001002e\n{chiptod}")
    }

    fn powernv() -> Machine {
        Machine {
            firmware_log: crate::qemu::firmware_log_lines(crate::qemu::MachineType::Powernv, "POWER9"),
            ..MACHINE
        }
    }

    #[test]
    fn skiboot_output_around_the_kernel_passes() {
        let text = format!("{SKIBOOT_BEFORE}{}{SKIBOOT_AFTER}", passing_console().replace("VOF firmware\n", ""))
            .replace("firmware=vof", "firmware=skiboot");
        let mut output = boot(&text);
        output.qemu_log = skiboot_log();
        let verdict = judge(&output, powernv());
        assert!(verdict.passed(), "{}", verdict.reason());
        assert_eq!(verdict.counted, Counts { passed: 2, failed: 0, skipped: 1 });
        assert_eq!(verdict.allowed.len(), 2);
        assert_eq!((verdict.allowed[0].by, verdict.allowed[0].count), (AllowedBy::Firmware, 1));
        assert_eq!((verdict.allowed[1].by, verdict.allowed[1].count), (AllowedBy::Firmware, 9));
        assert_eq!(
            verdict.allowed[1].to_string(),
            "allowed 9 QEMU guest-log lines /^pnv_chiptod: unimplemented register: Ox[0-9a-f]+$/ (the machine's \
             firmware: skiboot's time-of-day set-up accesses ChipTOD registers QEMU's model does not implement)"
        );
    }

    #[test]
    fn skiboot_allowances_cover_nothing_else() {
        let mut output = boot(&passing_console());
        output.qemu_log = skiboot_log() + "invalid/unsupported opcode: 00 - 00 - 00 - 00 (00000000) 0000000000000000\n";
        let verdict = judge(&output, powernv());
        assert_eq!(
            verdict.failures,
            [Failure::GuestLog {
                line: "invalid/unsupported opcode: 00 - 00 - 00 - 00 (00000000) 0000000000000000".into(),
                count: 1
            }]
        );
        assert_eq!(verdict.allowed.iter().map(|allowed| allowed.count).sum::<usize>(), 10);
    }

    #[test]
    fn pseries_allows_no_skiboot_line() {
        let mut output = boot(&passing_console());
        output.qemu_log = "pnv_chiptod: unimplemented register: Ox13\n".into();
        let verdict = judge(&output, MACHINE);
        assert_eq!(kinds(&verdict), ["qemu-log"]);
        assert!(verdict.allowed.is_empty());
    }

    #[test]
    fn qemu_error_on_stderr() {
        let mut output = boot(&passing_console());
        output.stderr =
            "qemu-system-ppc64: warning: fine\nqemu-system-ppc64: Trying to execute code outside RAM or ROM at 0x0\n"
                .into();
        let verdict = judge(&output, MACHINE);
        assert_eq!(
            verdict.failures,
            [Failure::QemuError { line: "qemu-system-ppc64: Trying to execute code outside RAM or ROM at 0x0".into() }]
        );
    }

    #[test]
    fn banner_cpus_and_memory_must_match() {
        let text = passing_console().replace("cpus=2 memory=1024MiB", "cpus=1 memory=512MiB");
        let verdict = judge(&boot(&text), MACHINE);
        assert_eq!(
            verdict.reason(),
            "banner says cpus=1, but QEMU was given -smp 2; banner says memory=512MiB, but QEMU was given -m 1024M"
        );
    }

    #[test]
    fn banner_missing_fields() {
        let text = passing_console().replace("cpus=2 memory=1024MiB", "");
        assert_eq!(kinds(&judge(&boot(&text), MACHINE)), ["banner", "banner"]);
    }

    #[test]
    fn no_banner() {
        let text = passing_console().replace(BANNER, "");
        assert_eq!(judge(&boot(&text), MACHINE).failures, [Failure::NoBanner]);
    }

    #[test]
    fn empty_console_fails_for_every_missing_part() {
        let verdict = judge(&boot(""), MACHINE);
        assert_eq!(kinds(&verdict), ["banner", "ktap", "summary"]);
    }

    #[test]
    fn every_kind_is_listed() {
        let failures = [
            Failure::TimedOut { after: Duration::ZERO, nmi: None, cpus_reported: 0 },
            Failure::QemuExit { code: None },
            Failure::QemuError { line: String::new() },
            Failure::GuestLog { line: String::new(), count: 1 },
            Failure::Fatal { line: String::new() },
            Failure::NotOk { number: 1, name: String::new(), reason: None },
            Failure::NoBanner,
            Failure::NoHeader,
            Failure::Duplicate { number: 1 },
            Failure::ResultCount { planned: 1, found: 0 },
            Failure::NoSummary,
            Failure::SummaryFailed { failed: 1 },
        ];
        let kinds: Vec<_> = failures.iter().map(Failure::kind).collect();
        assert_eq!(kinds, KINDS);
        assert!(ABNORMAL_END_KINDS.iter().all(|kind| KINDS.contains(kind)));
    }
}
