//! One real boot per row of `tests/matrix.cfg`, run in parallel, each judged and checked
//! against the row's expectation. Our own runner rather than libtest's, so that rows are
//! read at run time and a per-row summary is printed at the end.
//!
//! Selection: `HARNESS_ONLY=<substring>`, or libtest-style filter arguments
//! (`cargo test -p harness --test matrix -- slof`, `--exact`, `--skip`, `--list`).
//! Parallelism: `--test-threads N`, else `HARNESS_JOBS`, else the number of host CPUs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use harness::matrix::{self, Row};
use harness::{image, qemu};

/// The libtest options that make sense for boots; other `-` options (`--nocapture`, `-q`,
/// ...) are accepted and mean nothing here.
#[derive(Default)]
struct Arguments {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    ignored_only: bool,
    jobs: Option<usize>,
}

impl Arguments {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut parsed = Arguments::default();
        while let Some(arg) = args.next() {
            let (flag, inline_value) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = || inline_value.clone().or_else(|| args.next()).ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--list" => parsed.list = true,
                "--exact" => parsed.exact = true,
                "--ignored" => parsed.ignored_only = true,
                "--skip" => parsed.skips.push(value()?),
                "--test-threads" => {
                    let text = value()?;
                    parsed.jobs =
                        Some(text.parse().ok().filter(|&jobs| jobs > 0).ok_or(format!("bad --test-threads `{text}`"))?);
                }
                "--color" | "--format" | "--logfile" | "-Z" => {
                    value()?;
                }
                _ if flag.starts_with('-') => {}
                _ => parsed.filters.push(arg),
            }
        }
        Ok(parsed)
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |pattern: &String| {
            if self.exact {
                name == pattern
            } else {
                name.contains(pattern.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(matches)) && !self.skips.iter().any(matches)
    }
}

struct RowResult {
    name: String,
    passed: bool,
    /// Not booted: this host cannot run the row (KVM without a POWER host); `note` says why.
    skipped: bool,
    elapsed: Duration,
    /// Why the row failed, or how an expected failure failed.
    note: String,
}

fn main() -> ExitCode {
    let arguments = match Arguments::parse(std::env::args().skip(1)) {
        Ok(arguments) => arguments,
        Err(error) => {
            eprintln!("matrix: {error}");
            return ExitCode::FAILURE;
        }
    };
    let rows = match matrix::load(&matrix::default_path()) {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("matrix: {error}");
            return ExitCode::FAILURE;
        }
    };
    let only = std::env::var("HARNESS_ONLY").ok().filter(|only| !only.is_empty());
    let selected: Vec<Row> = rows
        .into_iter()
        .filter(|row| row.selected_by(only.as_deref()) && arguments.selects(&row.name) && !arguments.ignored_only)
        .collect();

    if arguments.list {
        for row in &selected {
            println!("{}: test", row.name);
        }
        return ExitCode::SUCCESS;
    }
    println!("\nrunning {} matrix boot{}", selected.len(), if selected.len() == 1 { "" } else { "s" });
    if selected.is_empty() {
        return ExitCode::SUCCESS;
    }

    let qemu_binary = qemu::binary_from_env();
    let results = match prepare(&qemu_binary) {
        Ok((kernel, env_timeout)) => run_rows(&selected, &qemu_binary, &kernel, env_timeout, jobs(&arguments)),
        Err(error) => {
            // Every selected boot fails with the reason (e.g. the build error): never skipped.
            println!("matrix: cannot boot:\n{error}");
            let failed = |row: &Row| RowResult {
                name: row.name.clone(),
                passed: false,
                skipped: false,
                elapsed: Duration::ZERO,
                note: first_line(&error).to_string(),
            };
            selected.iter().map(failed).collect()
        }
    };
    print_summary(&results)
}

/// QEMU's version, `BOOT_TIMEOUT` and the kernel image (built here if need be).
fn prepare(qemu_binary: &Path) -> Result<(PathBuf, Option<Duration>), String> {
    let version = qemu::version(qemu_binary)?;
    println!("QEMU: {} ({version})", qemu_binary.display());
    let env_timeout = qemu::timeout_from_env()?;
    let kernel = image::kernel_image()?;
    println!("kernel: {}", kernel.display());
    Ok((kernel, env_timeout))
}

fn jobs(arguments: &Arguments) -> usize {
    let from_env = || std::env::var("HARNESS_JOBS").ok()?.parse().ok().filter(|&jobs: &usize| jobs > 0);
    let host = || thread::available_parallelism().map_or(1, usize::from);
    arguments.jobs.or_else(from_env).unwrap_or_else(host)
}

/// Boots every row, `jobs` at a time; results in row order.
fn run_rows(
    rows: &[Row],
    qemu_binary: &Path,
    kernel: &Path,
    env_timeout: Option<Duration>,
    jobs: usize,
) -> Vec<RowResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RowResult>>> = Mutex::new(rows.iter().map(|_| None).collect());
    thread::scope(|scope| {
        for _ in 0..jobs.min(rows.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(row) = rows.get(index) else { break };
                let result = run_row(row, qemu_binary, kernel, env_timeout);
                results.lock().unwrap_or_else(|poisoned| poisoned.into_inner())[index] = Some(result);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    results.into_iter().map(|result| result.expect("every row ran")).collect()
}

/// Boots one row and prints its result: on failure, with the whole console.
fn run_row(row: &Row, qemu_binary: &Path, kernel: &Path, env_timeout: Option<Duration>) -> RowResult {
    if let Some(why) = row.skip_reason() {
        println!("test {} ... skipped: {why}", row.name);
        return RowResult {
            name: row.name.clone(),
            passed: true,
            skipped: true,
            elapsed: Duration::ZERO,
            note: format!("skipped: {why}"),
        };
    }
    let config = row.boot_config(qemu_binary, kernel, env_timeout);
    let (assessment, elapsed, transcript, qemu_log, allowed) = match qemu::run(&config, &mut |_, _| {}) {
        Ok(output) => {
            let verdict = row.judge(&output);
            (row.assess(&output, &verdict), output.elapsed, output.transcript, output.qemu_log, verdict.allowed)
        }
        Err(error) => (Err(format!("cannot boot: {error}")), Duration::ZERO, String::new(), String::new(), Vec::new()),
    };
    let seconds = elapsed.as_secs_f64();
    let mut report = String::new();
    match &assessment {
        Ok(note) if note.is_empty() => report.push_str(&format!("test {} ... ok ({seconds:.2} s)\n", row.name)),
        Ok(note) => report.push_str(&format!("test {} ... ok ({seconds:.2} s; {note})\n", row.name)),
        Err(reason) => {
            report.push_str(&format!("test {} ... FAILED ({seconds:.2} s)\n", row.name));
            report.push_str(&format!("  reason:  {reason}\n  command: {}\n", config.display_command()));
        }
    }
    // Allowed guest-log lines are reported whatever the outcome: an allowance is never silent.
    for allowed in &allowed {
        report.push_str(&format!("  {allowed}\n"));
    }
    if assessment.is_err() {
        report.push_str(&format!("---- {} console (stdout+stderr) ----\n", row.name));
        report.push_str(&transcript);
        if !transcript.is_empty() && !transcript.ends_with('\n') {
            report.push('\n');
        }
        report.push_str(&format!("---- end of {} console ----\n", row.name));
        if !qemu_log.is_empty() {
            report.push_str(&format!("---- {} QEMU guest log ({}) ----\n", row.name, config.qemu_log.display()));
            report.push_str(&shorten_log(&qemu_log, 40));
            report.push_str(&format!("---- end of {} QEMU guest log ----\n", row.name));
        }
    }
    // One write per row, so that parallel rows' reports do not interleave.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(report.as_bytes()).and_then(|()| stdout.flush());

    let (passed, note) = match assessment {
        Ok(note) => (true, note),
        Err(reason) => (false, reason),
    };
    RowResult { name: row.name.clone(), passed, skipped: false, elapsed, note }
}

/// The first `limit` lines of a guest log (one bad instruction in a loop can log
/// thousands), and how many were left out.
fn shorten_log(log: &str, limit: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut text: String = lines.iter().take(limit).map(|line| format!("{line}\n")).collect();
    if lines.len() > limit {
        text.push_str(&format!("... {} more lines\n", lines.len() - limit));
    }
    text
}

fn print_summary(results: &[RowResult]) -> ExitCode {
    let width = results.iter().map(|result| result.name.len()).max().unwrap_or(0);
    println!("\nmatrix summary:");
    for result in results {
        let verdict = match (result.skipped, result.passed) {
            (true, _) => "skip",
            (false, true) => "pass",
            (false, false) => "FAIL",
        };
        let seconds = result.elapsed.as_secs_f64();
        let note = shorten(first_line(&result.note), 100);
        println!("  {:width$}  {verdict}  {seconds:6.2} s  {note}", result.name);
    }
    let failed = results.iter().filter(|result| !result.passed).count();
    let skipped = results.iter().filter(|result| result.skipped).count();
    let outcome = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {outcome}. {} passed; {failed} failed; {skipped} ignored\n",
        results.len() - failed - skipped
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}
