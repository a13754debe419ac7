//! In-kernel self-tests, printed as KTAP version 1.
//!
//! Suites are static tables (`Suite`), listed once by the kernel's init code.
//! `selftest=` on the command line selects tests by pattern; the runner prints
//! `KTAP version 1`, a plan, one `ok`/`not ok` line per test and then the
//! summary line `selftests: N passed, M failed, K skipped` alone on its line.
//! A test fails by returning `Err` (the `kassert*!` macros do that); a panic
//! inside a test is fatal for the whole run and is reported as a failure.

use alloc::string::String;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};

use boot::BootInfo;

use crate::cmdline::Options;

/// Why a test did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Fail(String),
    Skip(String),
}

pub type TestResult = Result<(), Failure>;

/// What a test may look at: the boot facts and the command line.
pub struct Env<'a> {
    pub boot: &'a BootInfo,
    pub options: &'a Options<'a>,
    /// CPUs running kernel code (1 until secondaries are started).
    pub online_cpus: usize,
}

pub struct Test {
    pub name: &'static str,
    pub run: fn(&Env<'_>) -> TestResult,
}

/// Registers a test function: `#[ktest] fn name(env: &Env<'_>) -> TestResult`.
/// See `Registration` for what it records.
pub use ktest_macros::ktest;

/// A test as `#[ktest]` registers it: one record per test function, in the
/// `.ktest` link section on the kernel's target.
pub struct Registration {
    /// The suite: the last segment of the test function's module path
    /// (`suite_of(module_path!())`), so one module is one suite.
    pub suite: &'static str,
    /// The test: named as its function is.
    pub test: Test,
    /// Where the attribute stands: a suite's tests run in this order.
    pub file: &'static str,
    pub line: u32,
}

/// The suite of a test in module `module_path`: the path's last segment
/// (`ppc64_kernel::selftests::mmu` -> `mmu`).
pub const fn suite_of(module_path: &'static str) -> &'static str {
    let bytes = module_path.as_bytes();
    let mut start = bytes.len();
    while start > 0 && bytes[start - 1] != b':' {
        start -= 1;
    }
    let (_, last) = bytes.split_at(start);
    match core::str::from_utf8(last) {
        Ok(segment) => segment,
        Err(_) => panic!("a module path is UTF-8"),
    }
}

pub struct Suite {
    pub name: &'static str,
    pub tests: &'static [Test],
}

/// Fails the current test unless `cond` holds.
#[macro_export]
macro_rules! kassert {
    ($cond:expr) => {
        if !$cond {
            return Err($crate::ktest::Failure::Fail(alloc::format!(
                "{}:{}: assertion failed: {}", file!(), line!(), stringify!($cond)
            )));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::ktest::Failure::Fail(alloc::format!(
                "{}:{}: assertion failed: {}: {}", file!(), line!(), stringify!($cond), format_args!($($arg)+)
            )));
        }
    };
}

/// Fails the current test unless both sides are equal, showing both.
#[macro_export]
macro_rules! kassert_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (left, right) => {
                if *left != *right {
                    return Err($crate::ktest::Failure::Fail(alloc::format!(
                        "{}:{}: {} == {} failed: left {:?}, right {:?}",
                        file!(),
                        line!(),
                        stringify!($left),
                        stringify!($right),
                        left,
                        right
                    )));
                }
            }
        }
    };
}

/// Ends the current test as skipped.
#[macro_export]
macro_rules! kskip {
    ($($arg:tt)+) => {
        return Err($crate::ktest::Failure::Skip(alloc::format!($($arg)+)))
    };
}

/// A failure with a message, for `?` on fallible steps inside tests.
pub fn fail(why: impl Into<String>) -> Failure {
    Failure::Fail(why.into())
}

/// Skips unless at least `n` CPUs are online.
pub fn require_cpus(env: &Env<'_>, n: usize) -> TestResult {
    if env.online_cpus < n {
        return Err(Failure::Skip(alloc::format!("needs {n} CPUs, {} online", env.online_cpus)));
    }
    Ok(())
}

/// The `selftest=` selection: comma-separated patterns matched against
/// `suite.test`; `*` matches any run of characters; a pattern without a dot
/// selects whole suites; `all` selects everything and `none` nothing.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    patterns: &'a str,
}

impl<'a> Filter<'a> {
    pub fn new(patterns: &'a str) -> Self {
        Filter { patterns }
    }

    pub fn matches(&self, suite: &str, test: &str) -> bool {
        self.patterns.split(',').filter(|p| !p.is_empty()).any(|pattern| match pattern {
            "all" => true,
            "none" => false,
            p if !p.contains('.') => glob(p, suite),
            p => {
                let (ps, pt) = p.split_once('.').unwrap_or((p, "*"));
                glob(ps, suite) && glob(pt, test)
            }
        })
    }

    /// Patterns that select no test at all (likely typos), for a warning.
    pub fn unmatched<'s>(&self, suites: &'s [&'s Suite]) -> impl Iterator<Item = &'a str> + 's
    where
        'a: 's,
    {
        self.patterns.split(',').filter(move |p| {
            !p.is_empty()
                && *p != "none"
                && !suites.iter().any(|s| s.tests.iter().any(|t| Filter::new(p).matches(s.name, t.name)))
        })
    }
}

/// Glob match with `*` only.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(mut remaining) = text.strip_prefix(prefix) else { return false };
            loop {
                if glob(rest, remaining) {
                    return true;
                }
                let mut chars = remaining.chars();
                if chars.next().is_none() {
                    return false;
                }
                remaining = chars.as_str();
            }
        }
    }
}

/// Counts of the run so far; global so that a fatal error can still print a
/// summary that counts itself as a failure.
pub struct Summary {
    passed: AtomicU32,
    failed: AtomicU32,
    skipped: AtomicU32,
}

pub static SUMMARY: Summary = Summary::new();

impl Summary {
    pub const fn new() -> Self {
        Summary { passed: AtomicU32::new(0), failed: AtomicU32::new(0), skipped: AtomicU32::new(0) }
    }

    pub fn counts(&self) -> (u32, u32, u32) {
        (self.passed.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed), self.skipped.load(Ordering::Relaxed))
    }

    pub fn record_failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the summary line, alone on its line.
    pub fn write(&self, out: &mut impl Write) -> fmt::Result {
        let (passed, failed, skipped) = self.counts();
        writeln!(out, "selftests: {passed} passed, {failed} failed, {skipped} skipped")
    }
}

impl Default for Summary {
    fn default() -> Self {
        Summary::new()
    }
}

/// Runs the selected tests of `suites` plus `extra` (tests added at run time,
/// as `inject=notok` does), printing KTAP to `out` and counting into `summary`.
pub fn run(
    suites: &[&Suite],
    extra: &[(&'static str, &Test)],
    filter: Filter<'_>,
    env: &Env<'_>,
    summary: &Summary,
    out: &mut impl Write,
) -> fmt::Result {
    let selected = || {
        suites
            .iter()
            .flat_map(|suite| suite.tests.iter().map(move |test| (suite.name, test)))
            .filter(|(suite, test)| filter.matches(suite, test.name))
            .chain(extra.iter().copied())
    };
    writeln!(out, "KTAP version 1")?;
    writeln!(out, "1..{}", selected().count())?;
    for (number, (suite, test)) in selected().enumerate() {
        let number = number + 1;
        match (test.run)(env) {
            Ok(()) => {
                summary.passed.fetch_add(1, Ordering::Relaxed);
                writeln!(out, "ok {number} {suite}.{}", test.name)?;
            }
            Err(Failure::Skip(why)) => {
                summary.skipped.fetch_add(1, Ordering::Relaxed);
                writeln!(out, "ok {number} {suite}.{} # SKIP {}", test.name, one_line(&why))?;
            }
            Err(Failure::Fail(why)) => {
                summary.failed.fetch_add(1, Ordering::Relaxed);
                for line in why.lines() {
                    writeln!(out, "# {line}")?;
                }
                writeln!(out, "not ok {number} {suite}.{} # {}", test.name, one_line(&why))?;
            }
        }
    }
    Ok(())
}

fn one_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    fn pass(_: &Env<'_>) -> TestResult {
        Ok(())
    }
    fn fail(_: &Env<'_>) -> TestResult {
        kassert_eq!(1 + 1, 3);
        Ok(())
    }
    fn skip(env: &Env<'_>) -> TestResult {
        require_cpus(env, 2)
    }
    fn multi_line(_: &Env<'_>) -> TestResult {
        Err(Failure::Fail(String::from("first\nsecond")))
    }

    static ALPHA: Suite =
        Suite { name: "alpha", tests: &[Test { name: "pass", run: pass }, Test { name: "fail", run: fail }] };
    static BETA: Suite = Suite {
        name: "beta",
        tests: &[Test { name: "skip", run: skip }, Test { name: "multi_line", run: multi_line }],
    };

    fn run_to_string(filter: &str, extra: &[(&'static str, &Test)]) -> (String, (u32, u32, u32)) {
        let boot = BootInfo::default();
        let options = Options::default();
        let env = Env { boot: &boot, options: &options, online_cpus: 1 };
        let summary = Summary::new();
        let mut out = String::new();
        run(&[&ALPHA, &BETA], extra, Filter::new(filter), &env, &summary, &mut out).unwrap();
        summary.write(&mut out).unwrap();
        (out, summary.counts())
    }

    #[test]
    fn ktap_output_for_all_outcomes() {
        let (out, counts) = run_to_string("all", &[]);
        let expected = "KTAP version 1\n1..4\nok 1 alpha.pass\n";
        assert!(out.starts_with(expected), "{out}");
        assert!(out.contains("\nnot ok 2 alpha.fail # kernel/src/ktest.rs:"), "{out}");
        assert!(out.contains("1 + 1 == 3 failed: left 2, right 3"), "{out}");
        assert!(out.contains("\nok 3 beta.skip # SKIP needs 2 CPUs, 1 online\n"), "{out}");
        assert!(out.contains("# first\n# second\nnot ok 4 beta.multi_line # first\n"), "{out}");
        assert!(out.ends_with("\nselftests: 1 passed, 2 failed, 1 skipped\n"), "{out}");
        assert_eq!(counts, (1, 2, 1));
    }

    #[test]
    fn filter_selects_and_plan_counts_only_selected() {
        let (out, counts) = run_to_string("alpha.pass,beta", &[]);
        assert!(out.starts_with("KTAP version 1\n1..3\nok 1 alpha.pass\nok 2 beta.skip"), "{out}");
        assert_eq!(counts, (1, 1, 1));
        let (out, counts) = run_to_string("none", &[]);
        assert_eq!(out, "KTAP version 1\n1..0\nselftests: 0 passed, 0 failed, 0 skipped\n");
        assert_eq!(counts, (0, 0, 0));
    }

    #[test]
    fn extra_tests_run_after_selected_ones() {
        static EXTRA: Test = Test { name: "injected", run: fail };
        let (out, counts) = run_to_string("alpha.pass", &[("inject", &EXTRA)]);
        assert!(out.starts_with("KTAP version 1\n1..2\nok 1 alpha.pass\n"), "{out}");
        assert!(out.contains("not ok 2 inject.injected"), "{out}");
        assert_eq!(counts, (1, 1, 0));
    }

    #[test]
    fn globbing() {
        let f = Filter::new("al*.p*s,*.multi_*");
        assert!(f.matches("alpha", "pass"));
        assert!(!f.matches("alpha", "fail"));
        assert!(f.matches("beta", "multi_line"));
        assert!(!f.matches("beta", "skip"));
        assert!(Filter::new("*").matches("x", "y"));
        assert!(Filter::new("a*").matches("alpha", "anything"));
        assert!(!Filter::new("").matches("alpha", "pass"));
        assert!(glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXbYY"));
    }

    #[test]
    fn unmatched_patterns_are_found() {
        let suites: [&Suite; 2] = [&ALPHA, &BETA];
        let f = Filter::new("alpha,gamma,beta.nope,none");
        let unmatched: std::vec::Vec<&str> = f.unmatched(&suites).collect();
        assert_eq!(unmatched, ["gamma", "beta.nope"]);
    }
}
