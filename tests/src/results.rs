//! The files each harness boot leaves behind, for people and for CI to pick up: under
//! `build/results/<row>/` for a matrix row and `build/results/run/` for `kboot`,
//!
//! - `console.txt`: the console transcript (QEMU's stdout and stderr as they came), as the
//!   kernel printed it;
//! - `ktap.txt`: its KTAP lines alone ([`ktap::ktap_only`]);
//! - `qemu.log`: QEMU's guest-error log (`-d guest_errors,unimp -D`; QEMU writes it there),
//!   empty when QEMU logged nothing;
//! - `verdict.json`: [`verdict_json`];
//!
//! and after a matrix run `build/results/matrix.json` ([`matrix_json`]) and
//! `build/results/junit.xml` ([`junit_xml`]), for the rows that run selected.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::judge::{AllowedBy, Verdict};
use crate::ktap::{self, Counts};
use crate::qemu::BootOutput;

/// Where the results go, relative to the workspace root.
pub const DIRECTORY: &str = "build/results";
/// `kboot`'s directory under [`DIRECTORY`]; no matrix row may have this name.
pub const KBOOT_NAME: &str = "run";

pub const CONSOLE_FILE: &str = "console.txt";
pub const KTAP_FILE: &str = "ktap.txt";
pub const QEMU_LOG_FILE: &str = "qemu.log";
pub const VERDICT_FILE: &str = "verdict.json";
pub const MATRIX_FILE: &str = "matrix.json";
pub const JUNIT_FILE: &str = "junit.xml";

/// `build/results` in the workspace.
pub fn root() -> PathBuf {
    crate::image::workspace_root().join(DIRECTORY)
}

/// The directory of the boot called `name` (a matrix row, or [`KBOOT_NAME`]).
pub fn boot_dir(name: &str) -> PathBuf {
    root().join(name)
}

/// The files a boot leaves in its directory.
pub const BOOT_FILES: &[&str] = &[CONSOLE_FILE, KTAP_FILE, QEMU_LOG_FILE, VERDICT_FILE];

/// Creates `dir` and removes an earlier boot's files from it, so that none is taken for
/// this one's. Nothing else in it is touched (`kboot --results` may name any directory).
pub fn clear(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in BOOT_FILES {
        match std::fs::remove_file(dir.join(name)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

/// A boot's outcome: for a matrix row whether it turned out as the row expects (a row that
/// expects failure passes when the judge fails its boot for the stated reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// Not booted (a disabled row, KVM on a host without it).
    Skip,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// Seconds, to the millisecond.
fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

fn counts_json(counts: Counts) -> Value {
    json!({ "passed": counts.passed, "failed": counts.failed, "skipped": counts.skipped })
}

/// What one boot is recorded as.
#[derive(Clone, Debug)]
pub struct BootRecord<'a> {
    /// The row's name, or [`KBOOT_NAME`].
    pub name: &'a str,
    pub status: Status,
    /// Why it failed, how it failed as expected, or why it was skipped; empty for a pass.
    pub reason: String,
    /// Whether the boot is meant to fail (a matrix row's `expect = fail`), for the reasons
    /// in `expect_reasons`.
    pub expect_failure: bool,
    pub expect_reasons: &'a [String],
    /// QEMU's command line, if it got that far.
    pub command: Option<String>,
    /// What QEMU printed and the judge made of it; `None` if QEMU never ran.
    pub boot: Option<(&'a BootOutput, &'a Verdict)>,
    /// The fatal reports' lines with their source lines ([`crate::backtrace`]).
    pub decoded: &'a [String],
}

/// `verdict.json`:
///
/// ```text
/// { "name": "inject-panic", "status": "pass" | "fail" | "skip", "reason": "...",
///   "expect": "pass" | "fail", "expect_reasons": ["fatal"],
///   "judge": { "passed": false, "failures": [{ "kind": "fatal", "message": "kernel: FATAL: ..." }],
///              "allowed_qemu_log": [{ "by": "firmware" | "qemu_log_allow", "pattern": "...",
///                                     "reason": "...", "count": 9 }] },
///   "tests": { "planned": 79, "summary": { "passed": 1, "failed": 1, "skipped": 0 },
///              "counted": { "passed": 1, "failed": 0, "skipped": 0 } },
///   "seconds": 1.234, "exit_code": 0, "timed_out": false,
///   "command": "qemu-system-ppc64 -M ...", "decoded": [" [1] 0x... <f+0x10> at a.rs:3"] }
/// ```
///
/// `tests.planned` is the plan's `1..N` and `tests.summary` the kernel's `selftests:` line
/// (what was expected; `null` if missing), `tests.counted` the results the console shows.
/// `judge`, `tests` and `exit_code` are `null` when QEMU did not run (or was killed).
pub fn verdict_json(record: &BootRecord<'_>) -> Value {
    let expect = if record.expect_failure { "fail" } else { "pass" };
    let (judge, tests, elapsed, exit_code, timed_out) = match record.boot {
        Some((output, verdict)) => {
            let report = ktap::parse(&output.console);
            let failures: Vec<Value> = verdict
                .failures
                .iter()
                .map(|failure| json!({ "kind": failure.kind(), "message": failure.to_string() }))
                .collect();
            let allowed: Vec<Value> = verdict
                .allowed
                .iter()
                .map(|allowed| {
                    let by = match allowed.by {
                        AllowedBy::Firmware => "firmware",
                        AllowedBy::Caller => "qemu_log_allow",
                    };
                    json!({ "by": by, "pattern": allowed.pattern, "reason": allowed.reason, "count": allowed.count })
                })
                .collect();
            let judge = json!({ "passed": verdict.passed(), "failures": failures, "allowed_qemu_log": allowed });
            let tests = json!({
                "planned": report.plans.first(),
                "summary": report.summaries.first().copied().map(counts_json),
                "counted": counts_json(verdict.counted),
            });
            (judge, tests, output.elapsed, output.exit_code, output.timed_out)
        }
        None => (Value::Null, Value::Null, Duration::ZERO, None, false),
    };
    json!({
        "name": record.name,
        "status": record.status.name(),
        "reason": record.reason,
        "expect": expect,
        "expect_reasons": record.expect_reasons,
        "judge": judge,
        "tests": tests,
        "seconds": seconds(elapsed),
        "exit_code": exit_code,
        "timed_out": timed_out,
        "command": record.command,
        "decoded": record.decoded,
    })
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
    text.push('\n');
    text
}

/// Writes `record`'s files into `dir` (which [`clear`] cleared before the boot; QEMU may
/// have written `qemu.log` there since): `verdict.json` always, the console's files and
/// the guest log when QEMU ran.
pub fn write_boot(dir: &Path, record: &BootRecord<'_>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some((output, _)) = record.boot {
        std::fs::write(dir.join(CONSOLE_FILE), &output.transcript)?;
        std::fs::write(dir.join(KTAP_FILE), ktap::ktap_only(&output.console))?;
        // What QEMU logged (the harness read it all), or an empty file if it logged nothing.
        std::fs::write(dir.join(QEMU_LOG_FILE), &output.qemu_log)?;
    }
    std::fs::write(dir.join(VERDICT_FILE), pretty(&verdict_json(record)))
}

/// One row of a matrix run, for `matrix.json` and `junit.xml`.
#[derive(Clone, Debug, PartialEq)]
pub struct RowSummary {
    pub name: String,
    pub status: Status,
    /// As in `verdict.json`: why it failed, how it failed as expected, why it was skipped.
    pub reason: String,
    pub elapsed: Duration,
    /// The results its console showed; `None` if it did not boot.
    pub tests: Option<Counts>,
}

/// `matrix.json`:
///
/// ```text
/// { "rows": [{ "name": "vof-smp1", "status": "pass" | "fail" | "skip", "reason": "",
///              "seconds": 1.234, "tests": { "passed": 69, "failed": 0, "skipped": 10 } | null }],
///   "passed": 40, "failed": 0, "skipped": 1, "seconds": 301.5 }
/// ```
///
/// `seconds` at the top is the sum of the rows' (they boot in parallel).
pub fn matrix_json(rows: &[RowSummary]) -> Value {
    let count = |status| rows.iter().filter(|row| row.status == status).count();
    let entries: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "name": row.name,
                "status": row.status.name(),
                "reason": row.reason,
                "seconds": seconds(row.elapsed),
                "tests": row.tests.map(counts_json),
            })
        })
        .collect();
    json!({
        "rows": entries,
        "passed": count(Status::Pass),
        "failed": count(Status::Fail),
        "skipped": count(Status::Skip),
        "seconds": seconds(rows.iter().map(|row| row.elapsed).sum()),
    })
}

/// `text` as XML attribute or element text: markup escaped, characters XML 1.0 cannot hold
/// (control characters a console may carry) dropped.
fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if (c as u32) < 0x20 => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// The matrix as JUnit XML: one test suite, a test case per row, `<failure>` or
/// `<skipped>` with the reason.
pub fn junit_xml(rows: &[RowSummary]) -> String {
    let count = |status| rows.iter().filter(|row| row.status == status).count();
    let (tests, failures, skipped) = (rows.len(), count(Status::Fail), count(Status::Skip));
    let time = seconds(rows.iter().map(|row| row.elapsed).sum());
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let totals =
        format!("tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time}\"");
    let _ = writeln!(xml, "<testsuites name=\"matrix\" {totals}>");
    let _ = writeln!(xml, "  <testsuite name=\"matrix\" {totals}>");
    for row in rows {
        let name = xml_escape(&row.name);
        let case = format!("<testcase classname=\"matrix\" name=\"{name}\" time=\"{}\"", seconds(row.elapsed));
        let reason = xml_escape(&row.reason);
        let _ = match row.status {
            Status::Pass => writeln!(xml, "    {case}/>"),
            Status::Fail => writeln!(
                xml,
                "    {case}>\n      <failure message=\"{reason}\">see {DIRECTORY}/{name}/</failure>\n    </testcase>"
            ),
            Status::Skip => writeln!(xml, "    {case}>\n      <skipped message=\"{reason}\"/>\n    </testcase>"),
        };
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// Writes `matrix.json` and `junit.xml` into `root`.
pub fn write_matrix(root: &Path, rows: &[RowSummary]) -> io::Result<()> {
    std::fs::create_dir_all(root)?;
    std::fs::write(root.join(MATRIX_FILE), pretty(&matrix_json(rows)))?;
    std::fs::write(root.join(JUNIT_FILE), junit_xml(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{Allowed, Failure};

    const CONSOLE: &str = "VOF\r\nppc64-kernel 0.1.0: firmware=vof cpus=1 memory=1024MiB\r\nKTAP version 1\r\n\
                           1..2\r\nok 1 a\r\nFATAL: panic at a.rs:1:1: boom\r\nCall trace:\r\n\
                           [0] 0xc000000000096e20 <f+0x40>\r\nselftests: 1 passed, 1 failed, 0 skipped\r\n";

    fn output() -> BootOutput {
        BootOutput {
            console: CONSOLE.into(),
            transcript: format!("{CONSOLE}qemu-system-ppc64: warning: x\n"),
            qemu_log: String::new(),
            exit_code: Some(0),
            elapsed: Duration::from_micros(1_234_567),
            ..BootOutput::default()
        }
    }

    fn verdict() -> Verdict {
        Verdict {
            failures: vec![
                Failure::Fatal { line: "FATAL: panic at a.rs:1:1: boom".into() },
                Failure::ResultCount { planned: 2, found: 1 },
            ],
            counted: Counts { passed: 1, failed: 0, skipped: 0 },
            allowed: vec![Allowed {
                by: AllowedBy::Firmware,
                pattern: "^OPB".into(),
                reason: "skiboot".into(),
                count: 1,
            }],
        }
    }

    #[test]
    fn verdict_of_a_boot() {
        let (output, verdict, reasons) = (output(), verdict(), vec!["fatal".to_string()]);
        let decoded = vec![" [0] 0xc000000000096e20 <f+0x40> at core/src/panicking.rs:75".to_string()];
        let record = BootRecord {
            name: "inject-panic",
            status: Status::Pass,
            reason: "failed as expected: kernel: FATAL: panic at a.rs:1:1: boom".into(),
            expect_failure: true,
            expect_reasons: &reasons,
            command: Some("qemu-system-ppc64 -M pseries".into()),
            boot: Some((&output, &verdict)),
            decoded: &decoded,
        };
        assert_eq!(
            verdict_json(&record),
            json!({
                "name": "inject-panic",
                "status": "pass",
                "reason": "failed as expected: kernel: FATAL: panic at a.rs:1:1: boom",
                "expect": "fail",
                "expect_reasons": ["fatal"],
                "judge": {
                    "passed": false,
                    "failures": [
                        { "kind": "fatal", "message": "kernel: FATAL: panic at a.rs:1:1: boom" },
                        { "kind": "count", "message": "plan says 2 tests, but 1 result was reported" },
                    ],
                    "allowed_qemu_log": [{ "by": "firmware", "pattern": "^OPB", "reason": "skiboot", "count": 1 }],
                },
                "tests": {
                    "planned": 2,
                    "summary": { "passed": 1, "failed": 1, "skipped": 0 },
                    "counted": { "passed": 1, "failed": 0, "skipped": 0 },
                },
                "seconds": 1.235,
                "exit_code": 0,
                "timed_out": false,
                "command": "qemu-system-ppc64 -M pseries",
                "decoded": [" [0] 0xc000000000096e20 <f+0x40> at core/src/panicking.rs:75"],
            })
        );
    }

    #[test]
    fn verdict_of_a_boot_that_never_ran() {
        let record = BootRecord {
            name: "kvm-smp4",
            status: Status::Skip,
            reason: "needs a POWER host".into(),
            expect_failure: false,
            expect_reasons: &[],
            command: None,
            boot: None,
            decoded: &[],
        };
        let value = verdict_json(&record);
        assert_eq!(value["status"], "skip");
        for null in ["judge", "tests", "exit_code", "command"] {
            assert!(value[null].is_null(), "{null}: {value}");
        }
        assert_eq!(value["seconds"], 0.0);
        assert_eq!(value["decoded"], json!([]));
    }

    fn rows() -> Vec<RowSummary> {
        vec![
            RowSummary {
                name: "vof-smp1".into(),
                status: Status::Pass,
                reason: String::new(),
                elapsed: Duration::from_millis(1500),
                tests: Some(Counts { passed: 69, failed: 0, skipped: 10 }),
            },
            RowSummary {
                name: "vof-hash".into(),
                status: Status::Fail,
                reason: "boot failed: not ok 3 a <b> & \"c\"\u{1b}".into(),
                elapsed: Duration::from_millis(2250),
                tests: Some(Counts { passed: 2, failed: 1, skipped: 0 }),
            },
            RowSummary {
                name: "kvm-smp4".into(),
                status: Status::Skip,
                reason: "KVM needs a POWER host".into(),
                elapsed: Duration::ZERO,
                tests: None,
            },
        ]
    }

    #[test]
    fn matrix_summary() {
        assert_eq!(
            matrix_json(&rows()),
            json!({
                "rows": [
                    { "name": "vof-smp1", "status": "pass", "reason": "", "seconds": 1.5,
                      "tests": { "passed": 69, "failed": 0, "skipped": 10 } },
                    { "name": "vof-hash", "status": "fail", "reason": "boot failed: not ok 3 a <b> & \"c\"\u{1b}",
                      "seconds": 2.25, "tests": { "passed": 2, "failed": 1, "skipped": 0 } },
                    { "name": "kvm-smp4", "status": "skip", "reason": "KVM needs a POWER host", "seconds": 0.0,
                      "tests": null },
                ],
                "passed": 1,
                "failed": 1,
                "skipped": 1,
                "seconds": 3.75,
            })
        );
    }

    #[test]
    fn matrix_as_junit() {
        let xml = junit_xml(&rows());
        let totals = "tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"3.75\"";
        assert_eq!(
            xml,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"matrix\" {totals}>\n  \
                 <testsuite name=\"matrix\" {totals}>\n    \
                 <testcase classname=\"matrix\" name=\"vof-smp1\" time=\"1.5\"/>\n    \
                 <testcase classname=\"matrix\" name=\"vof-hash\" time=\"2.25\">\n      \
                 <failure message=\"boot failed: not ok 3 a &lt;b&gt; &amp; &quot;c&quot;\">see \
                 build/results/vof-hash/</failure>\n    </testcase>\n    \
                 <testcase classname=\"matrix\" name=\"kvm-smp4\" time=\"0\">\n      \
                 <skipped message=\"KVM needs a POWER host\"/>\n    </testcase>\n  </testsuite>\n</testsuites>\n"
            )
        );
    }

    #[test]
    fn files_of_a_boot_and_a_matrix() {
        let dir = std::env::temp_dir().join(format!("harness-results-{}", std::process::id()));
        let boot = dir.join("row");
        std::fs::create_dir_all(&boot).unwrap();
        for name in BOOT_FILES {
            std::fs::write(boot.join(name), "from an earlier boot").unwrap();
        }
        std::fs::write(boot.join("notes.txt"), "someone else's").unwrap();
        clear(&boot).unwrap();
        assert!(BOOT_FILES.iter().all(|name| !boot.join(name).exists()));
        assert!(boot.join("notes.txt").exists());
        clear(&dir.join("new")).unwrap();
        assert!(dir.join("new").is_dir());

        let (output, verdict) = (output(), verdict());
        let record = BootRecord {
            name: "row",
            status: Status::Fail,
            reason: "boot failed".into(),
            expect_failure: false,
            expect_reasons: &[],
            command: Some("q".into()),
            boot: Some((&output, &verdict)),
            decoded: &[],
        };
        write_boot(&boot, &record).unwrap();
        let read = |name: &str| std::fs::read_to_string(boot.join(name)).unwrap();
        assert_eq!(read(CONSOLE_FILE), output.transcript);
        assert_eq!(read(KTAP_FILE), "KTAP version 1\n1..2\nok 1 a\n");
        assert_eq!(read(QEMU_LOG_FILE), "");
        let written: Value = serde_json::from_str(&read(VERDICT_FILE)).unwrap();
        assert_eq!(written, verdict_json(&record));

        write_matrix(&dir, &rows()).unwrap();
        let matrix: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(MATRIX_FILE)).unwrap()).unwrap();
        assert_eq!(matrix, matrix_json(&rows()));
        assert_eq!(std::fs::read_to_string(dir.join(JUNIT_FILE)).unwrap(), junit_xml(&rows()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
