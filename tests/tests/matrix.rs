//! One real boot per row of `tests/matrix.cfg`, run in parallel, each judged and checked
//! against the row's expectation. Our own runner rather than libtest's, so that rows are
//! read at run time and a per-row summary is printed at the end.
//!
//! The boots are an explicit step: like libtest's `#[ignore]`d tests they are listed but
//! not run unless asked for, so that `cargo test` alone never starts QEMU. They run with
//! `HARNESS_MATRIX=1`, with `HARNESS_ONLY=<substring>` (those rows only), or with
//! `--ignored`/`--include-ignored` (`make test` sets `HARNESS_MATRIX=1`).
//!
//! Selection: `HARNESS_ONLY=<substring>`, or libtest-style filter arguments
//! (`cargo test -p harness --test matrix -- slof`, `--exact`, `--skip`, `--list`).
//! Parallelism: `--test-threads N`, else `HARNESS_JOBS`, else the number of host CPUs.
//! Each row leaves its files in `build/results/<row>/`, the run `build/results/matrix.json`
//! and `build/results/junit.xml` (see `harness::results`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use harness::backtrace::{self, KernelImage};
use harness::ktap::Counts;
use harness::matrix::{self, Row};
use harness::results::{self, BootRecord, RowSummary, Status};
use harness::{image, qemu};

/// The libtest options that make sense for boots; other `-` options (`--nocapture`, `-q`,
/// ...) are accepted and mean nothing here.
#[derive(Default)]
struct Arguments {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    /// `--ignored` or `--include-ignored`: boot the rows (see the module's comment).
    include_ignored: bool,
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
                "--ignored" | "--include-ignored" => parsed.include_ignored = true,
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
    status: Status,
    elapsed: Duration,
    /// Why the row failed, how an expected failure failed, or why it was skipped.
    note: String,
    /// The results its console showed, if it booted.
    tests: Option<Counts>,
}

/// Whether the rows are booted: `HARNESS_MATRIX` (set and not `0`), `HARNESS_ONLY` or
/// `--ignored`; otherwise they are listed as ignored.
fn boots_asked_for(arguments: &Arguments, only: Option<&str>) -> bool {
    let matrix = std::env::var("HARNESS_MATRIX").is_ok_and(|value| !value.is_empty() && value != "0");
    matrix || only.is_some() || arguments.include_ignored
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
    let selected: Vec<Row> =
        rows.into_iter().filter(|row| row.selected_by(only.as_deref()) && arguments.selects(&row.name)).collect();

    if arguments.list {
        for row in &selected {
            println!("{}: test", row.name);
        }
        return ExitCode::SUCCESS;
    }
    let plural = |count: usize| if count == 1 { "" } else { "s" };
    if !boots_asked_for(&arguments, only.as_deref()) {
        // As libtest reports ignored tests: named, counted, not run.
        println!("\nrunning {} matrix boot{}", selected.len(), plural(selected.len()));
        for row in &selected {
            println!("test {} ... ignored, boots QEMU", row.name);
        }
        println!(
            "matrix: not booting QEMU; run the boots with HARNESS_MATRIX=1 (all rows), HARNESS_ONLY=<row> \
             or `-- --ignored`:\n  HARNESS_MATRIX=1 cargo test -p harness --test matrix"
        );
        println!("\ntest result: ok. 0 passed; 0 failed; {} ignored\n", selected.len());
        return ExitCode::SUCCESS;
    }
    println!("\nrunning {} matrix boot{}", selected.len(), plural(selected.len()));
    if selected.is_empty() {
        return ExitCode::SUCCESS;
    }

    let qemu_binary = qemu::binary_from_env();
    let results = match prepare(&qemu_binary) {
        Ok((kernel, env_timeout)) => run_rows(&selected, &qemu_binary, &kernel, env_timeout, jobs(&arguments)),
        Err(error) => {
            // Every selected boot fails with the reason (e.g. the build error): never skipped.
            println!("matrix: cannot boot:\n{error}");
            let failed = |row: &Row| {
                let note = first_line(&error).to_string();
                write_results(row, Status::Fail, &note, None, None, &[]);
                RowResult { name: row.name.clone(), status: Status::Fail, elapsed: Duration::ZERO, note, tests: None }
            };
            selected.iter().map(failed).collect()
        }
    };
    write_summary(&results);
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
    // One image for all rows: its DWARF is read once, when the first report needs it.
    let image = image::debug_info(kernel);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RowResult>>> = Mutex::new(rows.iter().map(|_| None).collect());
    thread::scope(|scope| {
        for _ in 0..jobs.min(rows.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(row) = rows.get(index) else { break };
                let result = run_row(row, qemu_binary, &image, env_timeout);
                results.lock().unwrap_or_else(|poisoned| poisoned.into_inner())[index] = Some(result);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    results.into_iter().map(|result| result.expect("every row ran")).collect()
}

/// Records `row`'s result files (see `harness::results`), saying so if they cannot be written;
/// a boot's verdict never depends on them.
fn write_results(
    row: &Row,
    status: Status,
    reason: &str,
    command: Option<String>,
    boot: Option<(&qemu::BootOutput, &harness::judge::Verdict)>,
    decoded: &[String],
) {
    let dir = row.results_dir();
    let record = BootRecord {
        name: &row.name,
        status,
        reason: reason.to_string(),
        expect_failure: row.expect == matrix::Expect::Fail,
        expect_reasons: &row.expect_reasons,
        command,
        boot,
        decoded,
    };
    // A row that did not boot has only its verdict; no other file of an earlier run remains.
    let written =
        if boot.is_none() { results::clear(&dir) } else { Ok(()) }.and_then(|()| results::write_boot(&dir, &record));
    if let Err(error) = written {
        println!("matrix: cannot write {}: {error}", dir.display());
    }
}

/// Boots one row, records its result files and prints its result: on failure, with the
/// whole console, each fatal report's addresses decoded to source lines.
fn run_row(row: &Row, qemu_binary: &Path, image: &KernelImage, env_timeout: Option<Duration>) -> RowResult {
    let skipped = |why: String| {
        println!("test {} ... skipped: {why}", row.name);
        write_results(row, Status::Skip, &why, None, None, &[]);
        RowResult {
            name: row.name.clone(),
            status: Status::Skip,
            elapsed: Duration::ZERO,
            note: format!("skipped: {why}"),
            tests: None,
        }
    };
    if let Some(why) = row.skip_reason() {
        return skipped(why);
    }
    let config = row.boot_config(qemu_binary, image.path(), env_timeout);
    if let Err(error) = results::clear(&row.results_dir()) {
        println!("matrix: cannot prepare {}: {error}", row.results_dir().display());
    }
    let booted = qemu::run(&config, &mut |_, _| {}).map(|output| {
        let verdict = row.judge(&output);
        (output, verdict)
    });
    let (assessment, elapsed, tests) = match &booted {
        Ok((output, verdict)) => (row.assess(output, verdict), output.elapsed, Some(verdict.counted)),
        Err(error) => (Err(format!("cannot boot: {error}")), Duration::ZERO, None),
    };
    let (status, note) = match &assessment {
        Ok(note) => (Status::Pass, note.clone()),
        Err(reason) => (Status::Fail, reason.clone()),
    };
    let decoded = match &booted {
        Ok((output, _)) => backtrace::decode(image, &output.transcript),
        Err(_) => backtrace::DecodedText::default(),
    };
    let boot = booted.as_ref().ok().map(|(output, verdict)| (output, verdict));
    write_results(row, status, &note, Some(config.display_command()), boot, &decoded.lines);

    let seconds = elapsed.as_secs_f64();
    let mut report = String::new();
    match &assessment {
        Ok(note) if note.is_empty() => report.push_str(&format!("test {} ... ok ({seconds:.2} s)\n", row.name)),
        Ok(note) => report.push_str(&format!("test {} ... ok ({seconds:.2} s; {note})\n", row.name)),
        Err(reason) => {
            report.push_str(&format!("test {} ... FAILED ({seconds:.2} s)\n", row.name));
            report.push_str(&format!("  reason:  {reason}\n  command: {}\n", config.display_command()));
            report.push_str(&format!("  results: {}\n", row.results_dir().display()));
        }
    }
    // Allowed guest-log lines are reported whatever the outcome: an allowance is never silent.
    for allowed in booted.iter().flat_map(|(_, verdict)| &verdict.allowed) {
        report.push_str(&format!("  {allowed}\n"));
    }
    if let (Err(_), Ok((output, _))) = (&assessment, &booted) {
        if let Some(why) = &decoded.unavailable {
            report.push_str(&format!("  note: {why}\n"));
        }
        let transcript = &decoded.text;
        report.push_str(&format!("---- {} console (stdout+stderr) ----\n", row.name));
        report.push_str(transcript);
        if !transcript.is_empty() && !transcript.ends_with('\n') {
            report.push('\n');
        }
        report.push_str(&format!("---- end of {} console ----\n", row.name));
        if !output.qemu_log.is_empty() {
            report.push_str(&format!("---- {} QEMU guest log ({}) ----\n", row.name, config.qemu_log.display()));
            report.push_str(&shorten_log(&output.qemu_log, 40));
            report.push_str(&format!("---- end of {} QEMU guest log ----\n", row.name));
        }
    }
    // One write per row, so that parallel rows' reports do not interleave.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(report.as_bytes()).and_then(|()| stdout.flush());

    RowResult { name: row.name.clone(), status, elapsed, note, tests }
}

/// `build/results/matrix.json` and `junit.xml` for the rows this run booted.
fn write_summary(results: &[RowResult]) {
    let rows: Vec<RowSummary> = results
        .iter()
        .map(|result| RowSummary {
            name: result.name.clone(),
            status: result.status,
            reason: result.note.strip_prefix("skipped: ").unwrap_or(&result.note).to_string(),
            elapsed: result.elapsed,
            tests: result.tests,
        })
        .collect();
    let root = results::root();
    match results::write_matrix(&root, &rows) {
        Ok(()) => {
            println!("\nmatrix: results in {}/ ({}, {})", root.display(), results::MATRIX_FILE, results::JUNIT_FILE)
        }
        Err(error) => println!("\nmatrix: cannot write {}: {error}", root.display()),
    }
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
        let verdict = match result.status {
            Status::Skip => "skip",
            Status::Pass => "pass",
            Status::Fail => "FAIL",
        };
        let seconds = result.elapsed.as_secs_f64();
        let note = shorten(first_line(&result.note), 100);
        println!("  {:width$}  {verdict}  {seconds:6.2} s  {note}", result.name);
    }
    let failed = results.iter().filter(|result| result.status == Status::Fail).count();
    let skipped = results.iter().filter(|result| result.status == Status::Skip).count();
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
