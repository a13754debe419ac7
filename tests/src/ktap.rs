//! Reading the kernel's console: KTAP v1 results, the `selftests:` summary line and `FATAL:`
//! lines. Parsing only records what is there; deciding what is wrong is the judge's job.
//!
//! The console is also firmware output (SLOF ends lines with "\r\r\n") and ordinary kernel
//! log lines, which may come between KTAP lines but never start with `ok ` or `not ok `.

use std::fmt;

pub const HEADER: &str = "KTAP version 1";
pub const FATAL_PREFIX: &str = "FATAL: ";
pub const SUMMARY_PREFIX: &str = "selftests:";

/// The console's lines without carriage returns or trailing blanks. Leading blanks are kept:
/// an indented `ok` belongs to a nested KTAP block, not to the top level.
pub fn lines(console: &str) -> impl Iterator<Item = &str> {
    console.split('\n').map(|line| line.trim_start_matches('\r').trim_end())
}

/// The console with line endings normalised, for pattern matching and display.
pub fn normalise(console: &str) -> String {
    lines(console).collect::<Vec<_>>().join("\n")
}

/// The console's KTAP lines alone, as a KTAP reader takes them: from the first header on,
/// headers, plans, results (nested ones too) and `#` diagnostics, each ending in `\n`;
/// firmware output, kernel log lines, `FATAL:` reports and the summary line are left out.
pub fn ktap_only(console: &str) -> String {
    let mut text = String::new();
    let mut started = false;
    for line in lines(console) {
        let body = line.trim_start();
        started |= body == HEADER;
        let is_ktap = body == HEADER
            || body.starts_with('#')
            || body.starts_with("ok ")
            || body.starts_with("not ok ")
            || parse_plan(body).is_some();
        if started && is_ktap {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// One `ok`/`not ok` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    pub number: u32,
    pub name: String,
    pub outcome: Outcome,
    /// The SKIP reason, or what follows `#` on a `not ok` line.
    pub reason: Option<String>,
}

/// Numbers of passed, failed and skipped tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
}

impl fmt::Display for Counts {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped)
    }
}

/// Everything of interest found on a console.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// How many `KTAP version 1` lines there were (exactly one is right).
    pub headers: usize,
    /// The N of every `1..N` plan line after the header.
    pub plans: Vec<u32>,
    /// Test results after the header, in console order.
    pub results: Vec<TestResult>,
    /// Lines after the header that start like a result or summary but do not parse.
    pub malformed: Vec<String>,
    /// Every `selftests:` summary line, anywhere on the console.
    pub summaries: Vec<Counts>,
    /// Every `FATAL:` line, anywhere on the console.
    pub fatal: Vec<String>,
}

impl Report {
    /// The results counted as the summary line counts them.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for result in &self.results {
            match result.outcome {
                Outcome::Pass => counts.passed += 1,
                Outcome::Fail => counts.failed += 1,
                Outcome::Skip => counts.skipped += 1,
            }
        }
        counts
    }
}

pub fn parse(console: &str) -> Report {
    let mut report = Report::default();
    for line in lines(console) {
        if line.starts_with(FATAL_PREFIX) {
            report.fatal.push(line.to_string());
        }
        if line.starts_with(SUMMARY_PREFIX) {
            match parse_summary(line) {
                Some(counts) => report.summaries.push(counts),
                None => report.malformed.push(line.to_string()),
            }
            continue;
        }
        if line == HEADER {
            report.headers += 1;
            continue;
        }
        if report.headers == 0 {
            // Firmware and early boot output: not KTAP yet.
            continue;
        }
        if let Some(planned) = parse_plan(line) {
            report.plans.push(planned);
        } else if let Some(result) = parse_result(line) {
            match result {
                Some(result) => report.results.push(result),
                None => report.malformed.push(line.to_string()),
            }
        }
    }
    report
}

/// `1..N` (optionally followed by a `#` comment).
fn parse_plan(line: &str) -> Option<u32> {
    let rest = line.strip_prefix("1..")?;
    let count = rest.split_once(" #").map_or(rest, |(count, _)| count);
    count.parse().ok()
}

/// `None` if `line` is not a result line at all; `Some(None)` if it is a malformed one.
fn parse_result(line: &str) -> Option<Option<TestResult>> {
    let (ok, rest) = if let Some(rest) = line.strip_prefix("ok ") {
        (true, rest)
    } else if let Some(rest) = line.strip_prefix("not ok ") {
        (false, rest)
    } else {
        return None;
    };
    let (body, directive) = match rest.split_once('#') {
        Some((body, directive)) => (body.trim(), Some(directive.trim())),
        None => (rest.trim(), None),
    };
    let (number, name) = body.split_once(' ').unwrap_or((body, ""));
    let Ok(number) = number.parse() else {
        return Some(None);
    };
    let skip_reason = directive.and_then(strip_skip);
    let (outcome, reason) = match (ok, skip_reason) {
        (false, _) => (Outcome::Fail, directive),
        (true, Some(reason)) => (Outcome::Skip, Some(reason)),
        (true, None) => (Outcome::Pass, None),
    };
    Some(Some(TestResult {
        number,
        name: name.trim().to_string(),
        outcome,
        reason: reason.filter(|reason| !reason.is_empty()).map(str::to_string),
    }))
}

/// The reason of a `SKIP reason` directive (case-insensitive), or `None` for other text.
fn strip_skip(directive: &str) -> Option<&str> {
    let keyword = directive.get(..4)?;
    let rest = &directive[4..];
    if keyword.eq_ignore_ascii_case("skip") && (rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        Some(rest.trim())
    } else {
        None
    }
}

/// `selftests: P passed, F failed, S skipped`, exactly.
fn parse_summary(line: &str) -> Option<Counts> {
    let rest = line.strip_prefix("selftests: ")?;
    let mut parts = rest.split(", ");
    let mut count = |suffix: &str| parts.next()?.strip_suffix(suffix)?.parse().ok();
    let counts = Counts { passed: count(" passed")?, failed: count(" failed")?, skipped: count(" skipped")? };
    parts.next().is_none().then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(number: u32, name: &str, outcome: Outcome, reason: Option<&str>) -> TestResult {
        TestResult { number, name: name.into(), outcome, reason: reason.map(str::to_string) }
    }

    #[test]
    fn results_directives_and_noise() {
        let console = "SLOF noise\r\r\nok 99 before header is ignored\r\r\n\
            KTAP version 1\r\n1..4\r\n# diagnostic\r\n\
            ok 1 mm_alloc\r\n\
            [    0.1] some log line\n\
            ok 2 dt_cpus # SKIP no expect_cpus= given\n\
            not ok 3 timer_irq # timed out waiting\n\
            ok 4 smp_ipi # skip\n\
            \x20   ok 1 nested_is_not_top_level\n\
            selftests: 2 passed, 1 failed, 1 skipped\n";
        let report = parse(console);
        assert_eq!(report.headers, 1);
        assert_eq!(report.plans, [4]);
        assert_eq!(
            report.results,
            [
                result(1, "mm_alloc", Outcome::Pass, None),
                result(2, "dt_cpus", Outcome::Skip, Some("no expect_cpus= given")),
                result(3, "timer_irq", Outcome::Fail, Some("timed out waiting")),
                result(4, "smp_ipi", Outcome::Skip, None),
            ]
        );
        assert_eq!(report.counts(), Counts { passed: 1, failed: 1, skipped: 2 });
        assert_eq!(report.summaries, [Counts { passed: 2, failed: 1, skipped: 1 }]);
        assert!(report.malformed.is_empty() && report.fatal.is_empty());
    }

    #[test]
    fn skip_must_be_a_word() {
        let report = parse("KTAP version 1\nok 1 a # skipped_by_name\nok 2 b # SKIP\n");
        assert_eq!(report.results[0].outcome, Outcome::Pass);
        assert_eq!(report.results[1].outcome, Outcome::Skip);
    }

    #[test]
    fn not_ok_with_skip_is_a_failure() {
        let report = parse("KTAP version 1\nnot ok 1 a # SKIP why\n");
        assert_eq!(report.results[0].outcome, Outcome::Fail);
    }

    #[test]
    fn malformed_lines() {
        let report =
            parse("KTAP version 1\nok x name\nselftests: 1 passed\nselftests: 1 passed, 0 failed, 0 skipped, 2 lost\n");
        assert_eq!(report.malformed.len(), 3);
        assert!(report.results.is_empty() && report.summaries.is_empty());
    }

    #[test]
    fn fatal_lines_anywhere() {
        let report = parse("FATAL: early\nKTAP version 1\nFATAL: panic at kernel/src/x.rs:10:5: msg\n");
        assert_eq!(report.fatal, ["FATAL: early", "FATAL: panic at kernel/src/x.rs:10:5: msg"]);
    }

    #[test]
    fn plans_and_headers_are_counted() {
        let report = parse("KTAP version 1\n1..2\n1..3 # again\nKTAP version 1\n");
        assert_eq!(report.headers, 2);
        assert_eq!(report.plans, [2, 3]);
    }

    #[test]
    fn ktap_lines_alone() {
        let console = "SLOF noise\r\r\n# boot: kernel entry\r\nKTAP version 1\r\n1..3\r\n# diagnostic\r\n\
            ok 1 a\r\n[info] log line\nnot ok 2 b # why\n    ok 1 nested\nFATAL: panic at x.rs:1:1: boom\n\
            Call trace:\n [0] 0xc000000000096e20 <f+0x40>\nok 3 c # SKIP later\n\
            selftests: 1 passed, 1 failed, 1 skipped\nPowering off.\n";
        assert_eq!(
            ktap_only(console),
            "KTAP version 1\n1..3\n# diagnostic\nok 1 a\nnot ok 2 b # why\n    ok 1 nested\nok 3 c # SKIP later\n"
        );
        assert_eq!(ktap_only("no KTAP at all\nok 1 a\n"), "");
    }

    #[test]
    fn normalise_strips_carriage_returns() {
        assert_eq!(normalise("a\r\r\nb  \r\n"), "a\nb\n");
    }
}
