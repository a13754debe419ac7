//! In-kernel self-tests, printed as KTAP version 1.
//!
//! A test is a function `fn name(env: &Env<'_>) -> TestResult` marked
//! `#[ktest]`, which registers it (`Registration`): on the kernel's target in
//! the `.ktest` link section, read back by `registered`. Its suite is the last
//! segment of its module's path, so one module (one file) is one suite, and
//! its name is the function's: KTAP prints `suite.function`. A `Plan` groups
//! the registered tests into suites, orders the suites by the list of names
//! the kernel gives (the order they run in) and each suite's tests by where
//! they stand in the source (file, then line). A registered suite missing from
//! that list, a listed suite without tests and a test registered twice are
//! the plan's problems, which the run reports first, as the failing test
//! `ktest.registration`: nothing is skipped without a `not ok`.
//!
//! `selftest=` on the command line selects tests by pattern; the runner prints
//! `KTAP version 1`, a plan, one `ok`/`not ok` line per test and then the
//! summary line `selftests: N passed, M failed, K skipped` alone on its line.
//! A test fails by returning `Err` (the `kassert*!` macros do that); a panic
//! inside a test is fatal for the whole run and is reported as a failure.

use alloc::string::String;
use alloc::vec::Vec;
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

/// The registrations in the image's `.ktest` section: every `#[ktest]`
/// function of every crate linked in, in link order.
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub fn registered() -> &'static [Registration] {
    extern "C" {
        // linker.ld: the bounds of the .ktest output section.
        static __ktest_start: u8;
        static __ktest_end: u8;
    }
    let start = core::ptr::addr_of!(__ktest_start) as usize;
    let end = core::ptr::addr_of!(__ktest_end) as usize;
    let size = core::mem::size_of::<Registration>();
    assert!(
        end >= start
            && (end - start).is_multiple_of(size)
            && start.is_multiple_of(core::mem::align_of::<Registration>()),
        "ktest: the .ktest section ({start:#x}..{end:#x}) is not an array of {size}-byte registrations"
    );
    // SAFETY: the section holds only the Registration statics #[ktest]
    // emits (linker.ld keeps them, between these symbols). A type's size is
    // a multiple of its alignment and the compiler does not pad globals
    // that have an explicit section, so they lie back to back: an array,
    // checked above, initialised (relocated by entry.s) and never written.
    unsafe { core::slice::from_raw_parts(start as *const Registration, (end - start) / size) }
}

/// A suite as it runs: its registered tests in source order.
pub struct Suite<'r> {
    pub name: &'r str,
    pub tests: Vec<&'r Test>,
}

/// What a run runs: the registered tests grouped into suites, the suites in
/// the order given, each one's tests by (file, line); and the problems of
/// the registrations, which `run` reports as a failing test.
pub struct Plan<'r> {
    suites: Vec<Suite<'r>>,
    problems: Vec<String>,
}

impl<'r> Plan<'r> {
    /// The plan for `records` with the suites in `order`. Every registered
    /// suite must be in `order`, every suite in `order` must have a test, and
    /// no `suite.test` may be registered twice; anything else is a problem
    /// (an unlisted suite's tests do not run, and the run fails saying so).
    pub fn new(records: &'r [Registration], order: &[&'r str]) -> Self {
        let mut problems = Vec::new();
        let mut suites = Vec::new();
        for (index, &name) in order.iter().enumerate() {
            if order[..index].contains(&name) {
                problems.push(alloc::format!("suite '{name}' is listed twice in the suite order"));
                continue;
            }
            let mut members: Vec<&Registration> = records.iter().filter(|r| r.suite == name).collect();
            if members.is_empty() {
                problems.push(alloc::format!("suite '{name}' is in the suite order but has no registered test"));
                continue;
            }
            members.sort_by_key(|r| (r.file, r.line));
            for (later, record) in members.iter().enumerate() {
                if let Some(first) = members[..later].iter().find(|r| r.test.name == record.test.name) {
                    problems.push(alloc::format!(
                        "test '{name}.{}' is registered twice ({}:{} and {}:{})",
                        record.test.name,
                        first.file,
                        first.line,
                        record.file,
                        record.line
                    ));
                }
            }
            suites.push(Suite { name, tests: members.iter().map(|r| &r.test).collect() });
        }
        for (index, record) in records.iter().enumerate() {
            let first_of_its_suite = !records[..index].iter().any(|r| r.suite == record.suite);
            if first_of_its_suite && !order.contains(&record.suite) {
                problems.push(alloc::format!(
                    "suite '{}' ({}:{}) is registered but not in the suite order: its tests do not run",
                    record.suite,
                    record.file,
                    record.line
                ));
            }
        }
        Plan { suites, problems }
    }

    /// The suites, in the order they run.
    pub fn suites(&self) -> &[Suite<'r>] {
        &self.suites
    }

    /// What is wrong with the registrations (empty when nothing is).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Takes suite `name` out of the run, for a caller that runs it only on
    /// request (the benchmarks, after the self-tests).
    pub fn remove(&mut self, name: &str) -> Option<Suite<'r>> {
        let index = self.suites.iter().position(|suite| suite.name == name)?;
        Some(self.suites.remove(index))
    }
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
    pub fn unmatched(&self, suites: &[Suite<'_>]) -> Vec<&'a str> {
        self.patterns
            .split(',')
            .filter(|p| {
                !p.is_empty()
                    && *p != "none"
                    && !suites.iter().any(|s| s.tests.iter().any(|t| Filter::new(p).matches(s.name, t.name)))
            })
            .collect()
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

/// Runs the selected tests of `plan` plus `extra` (tests added at run time,
/// as `inject=notok` and `bench=` do), printing KTAP to `out` and counting
/// into `summary`. The plan's problems, if it has any, come first as the
/// failing test `ktest.registration`, whatever the filter.
pub fn run(
    plan: &Plan<'_>,
    extra: &[(&'static str, &Test)],
    filter: Filter<'_>,
    env: &Env<'_>,
    summary: &Summary,
    out: &mut impl Write,
) -> fmt::Result {
    let selected = || {
        plan.suites
            .iter()
            .flat_map(|suite| suite.tests.iter().map(move |&test| (suite.name, test)))
            .filter(|(suite, test)| filter.matches(suite, test.name))
            .chain(extra.iter().map(|&(suite, test)| (suite, test)))
    };
    let problems = !plan.problems.is_empty();
    writeln!(out, "KTAP version 1")?;
    writeln!(out, "1..{}", usize::from(problems) + selected().count())?;
    let mut number = 0;
    if problems {
        number += 1;
        let why = Failure::Fail(plan.problems.join("\n"));
        report(number, "ktest", "registration", Err(why), summary, out)?;
    }
    for (suite, test) in selected() {
        number += 1;
        report(number, suite, test.name, (test.run)(env), summary, out)?;
    }
    Ok(())
}

/// Counts one test's result and prints its KTAP line (and a failure's
/// diagnostic lines before it).
fn report(
    number: usize,
    suite: &str,
    test: &str,
    result: TestResult,
    summary: &Summary,
    out: &mut impl Write,
) -> fmt::Result {
    match result {
        Ok(()) => {
            summary.passed.fetch_add(1, Ordering::Relaxed);
            writeln!(out, "ok {number} {suite}.{test}")
        }
        Err(Failure::Skip(why)) => {
            summary.skipped.fetch_add(1, Ordering::Relaxed);
            writeln!(out, "ok {number} {suite}.{test} # SKIP {}", one_line(&why))
        }
        Err(Failure::Fail(why)) => {
            summary.failed.fetch_add(1, Ordering::Relaxed);
            for line in why.lines() {
                writeln!(out, "# {line}")?;
            }
            writeln!(out, "not ok {number} {suite}.{test} # {}", one_line(&why))
        }
    }
}

fn one_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;
    use std::vec::Vec;

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

    const fn record(
        suite: &'static str,
        name: &'static str,
        run: fn(&Env<'_>) -> TestResult,
        file: &'static str,
        line: u32,
    ) -> Registration {
        Registration { suite, test: Test { name, run }, file, line }
    }

    /// As a link section may hold them: neither suites nor tests in order.
    static RECORDS: [Registration; 4] = [
        record("beta", "multi_line", multi_line, "b.rs", 30),
        record("alpha", "fail", fail, "a.rs", 12),
        record("beta", "skip", skip, "b.rs", 7),
        record("alpha", "pass", pass, "a.rs", 3),
    ];

    fn run_plan(plan: &Plan<'_>, filter: &str, extra: &[(&'static str, &Test)]) -> (String, (u32, u32, u32)) {
        let boot = BootInfo::default();
        let options = Options::default();
        let env = Env { boot: &boot, options: &options, online_cpus: 1 };
        let summary = Summary::new();
        let mut out = String::new();
        run(plan, extra, Filter::new(filter), &env, &summary, &mut out).unwrap();
        summary.write(&mut out).unwrap();
        (out, summary.counts())
    }

    fn run_to_string(filter: &str, extra: &[(&'static str, &Test)]) -> (String, (u32, u32, u32)) {
        run_plan(&Plan::new(&RECORDS, &["alpha", "beta"]), filter, extra)
    }

    /// `suite.test` of every KTAP result line, in order.
    fn names(out: &str) -> Vec<&str> {
        out.lines()
            .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
            .map(|l| l.split(' ').nth(if l.starts_with("ok ") { 2 } else { 3 }).unwrap())
            .collect()
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
        let plan = Plan::new(&RECORDS, &["alpha", "beta"]);
        let f = Filter::new("alpha,gamma,beta.nope,none");
        assert_eq!(f.unmatched(plan.suites()), ["gamma", "beta.nope"]);
    }

    #[test]
    fn suites_run_in_the_given_order_and_tests_in_source_order() {
        let plan = Plan::new(&RECORDS, &["beta", "alpha"]);
        assert!(plan.problems().is_empty(), "{:?}", plan.problems());
        let (out, _) = run_plan(&plan, "all", &[]);
        assert_eq!(names(&out), ["beta.skip", "beta.multi_line", "alpha.pass", "alpha.fail"]);
        // Within a suite: by file, then by line (not by line alone).
        static SPLIT: [Registration; 3] = [
            record("gamma", "third", pass, "z.rs", 1),
            record("gamma", "second", pass, "m.rs", 90),
            record("gamma", "first", pass, "m.rs", 10),
        ];
        let plan = Plan::new(&SPLIT, &["gamma"]);
        let (out, _) = run_plan(&plan, "all", &[]);
        assert_eq!(names(&out), ["gamma.first", "gamma.second", "gamma.third"]);
    }

    #[test]
    fn a_suite_missing_from_the_order_fails_the_run() {
        let plan = Plan::new(&RECORDS, &["alpha"]);
        assert_eq!(
            plan.problems(),
            ["suite 'beta' (b.rs:30) is registered but not in the suite order: its tests do not run"]
        );
        let (out, counts) = run_plan(&plan, "all", &[]);
        assert!(
            out.starts_with(
                "KTAP version 1\n1..3\n# suite 'beta' (b.rs:30) is registered but not in the suite order: \
                 its tests do not run\nnot ok 1 ktest.registration # suite 'beta' (b.rs:30)"
            ),
            "{out}"
        );
        assert_eq!(names(&out), ["ktest.registration", "alpha.pass", "alpha.fail"]);
        assert_eq!(counts, (1, 2, 0));
        // Whatever the filter selects, the problem is reported.
        let (out, counts) = run_plan(&plan, "none", &[]);
        assert!(out.starts_with("KTAP version 1\n1..1\n# suite 'beta'"), "{out}");
        assert_eq!(counts, (0, 1, 0));
    }

    #[test]
    fn empty_twice_listed_suites_and_twice_registered_tests_are_problems() {
        static TWICE: [Registration; 3] = [
            record("alpha", "pass", pass, "a.rs", 3),
            record("alpha", "pass", skip, "a2.rs", 5),
            record("beta", "skip", skip, "b.rs", 7),
        ];
        let plan = Plan::new(&TWICE, &["alpha", "gamma", "beta", "alpha"]);
        assert_eq!(
            plan.problems(),
            [
                "test 'alpha.pass' is registered twice (a.rs:3 and a2.rs:5)",
                "suite 'gamma' is in the suite order but has no registered test",
                "suite 'alpha' is listed twice in the suite order",
            ]
        );
        let (out, counts) = run_plan(&plan, "all", &[]);
        assert!(out.starts_with("KTAP version 1\n1..4\n# test 'alpha.pass'"), "{out}");
        assert!(out.contains("\n# suite 'gamma' is in the suite order but has no registered test\n"), "{out}");
        assert_eq!(names(&out), ["ktest.registration", "alpha.pass", "alpha.pass", "beta.skip"]);
        assert_eq!(counts, (1, 1, 2));
    }

    #[test]
    fn a_removed_suite_is_not_run() {
        let mut plan = Plan::new(&RECORDS, &["alpha", "beta"]);
        let beta = plan.remove("beta").expect("beta is planned");
        assert_eq!(beta.tests.iter().map(|t| t.name).collect::<Vec<_>>(), ["skip", "multi_line"]);
        assert!(plan.remove("beta").is_none());
        let (out, _) = run_plan(&plan, "all", &[]);
        assert_eq!(names(&out), ["alpha.pass", "alpha.fail"]);
    }

    #[test]
    fn the_suite_is_the_last_segment_of_the_module_path() {
        assert_eq!(suite_of("ppc64_kernel::selftests::mmu"), "mmu");
        assert_eq!(suite_of("kernel::mm::selftests::frames"), "frames");
        assert_eq!(suite_of("kernel"), "kernel");
        const AT_COMPILE_TIME: &str = suite_of(module_path!());
        assert_eq!(AT_COMPILE_TIME, "tests");
    }

    /// What #[ktest] expands to compiles here too, and leaves the function
    /// as it was.
    mod registered_here {
        use crate::ktest::{ktest, Env, TestResult};

        /// Documented, with other attributes beside.
        #[ktest]
        #[inline(never)]
        pub fn a_test(env: &Env<'_>) -> TestResult {
            crate::ktest::require_cpus(env, 1)
        }
    }

    #[test]
    fn an_attributed_function_is_still_a_function() {
        let boot = BootInfo::default();
        let options = Options::default();
        let env = Env { boot: &boot, options: &options, online_cpus: 1 };
        assert_eq!(registered_here::a_test(&env), Ok(()));
        let run: fn(&Env<'_>) -> TestResult = registered_here::a_test;
        assert_eq!(run(&Env { online_cpus: 0, ..env }), Err(Failure::Skip("needs 1 CPUs, 0 online".into())));
    }
}
