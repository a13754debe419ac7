//! The boot matrix, `tests/matrix.cfg`: one `[section]` per boot, `key = value` lines,
//! `#` comments, in the spirit of kvm-unit-tests' unittests.cfg. See that file's header for
//! the keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::{Regex, RegexBuilder};

use crate::judge::{self, LogAllowance, Machine, Verdict};
use crate::ktap;
use crate::qemu::{self, Accel, BootConfig, BootOutput, Firmware, MachineType};

/// Whether a row's boot should pass the judge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Pass,
    /// The judge must fail the boot, for each of the row's `expect_reason` kinds.
    Fail,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub machine_type: MachineType,
    pub firmware: Firmware,
    /// QEMU `-cpu` model under TCG; on powernv, the machine's processor.
    pub cpu: String,
    pub accel: Accel,
    pub cpus: u32,
    /// SMT threads per core (`smp = N,threads=T`).
    pub threads: u32,
    pub memory_mib: u64,
    pub append: String,
    /// `None`: `BOOT_TIMEOUT`, else the firmware's default.
    pub timeout: Option<Duration>,
    pub expect: Expect,
    /// [`judge::Failure::kind`]s the boot must fail with.
    pub expect_reasons: Vec<String>,
    /// Patterns the console must match (multi-line mode: `^`/`$` match at line ends).
    pub expect_output: Vec<Regex>,
    /// QEMU guest-log messages this row expects, each with the reason it is not a bug.
    pub qemu_log_allow: Vec<LogAllowance>,
    /// `disabled = <reason>`: the row is parsed and checked but not booted.
    pub disabled: Option<String>,
}

/// The matrix shipped with the harness.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("matrix.cfg")
}

pub fn load(path: &Path) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    parse(&text).map_err(|error| format!("{}:{error}", path.display()))
}

/// Parses a matrix; errors are "<line>: <message>".
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut sections: Vec<Section> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .map(str::trim)
                .filter(|name| !name.is_empty() && !name.contains(char::is_whitespace))
                .ok_or_else(|| format!("{number}: bad section header `{line}`"))?;
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || name.starts_with('.') {
                return Err(format!(
                    "{number}: row name `{name}` must be letters, digits, `-`, `_` and `.` (it names its results directory)"
                ));
            }
            if name == crate::results::KBOOT_NAME {
                return Err(format!("{number}: row name `{name}` is kept for kboot's results (build/results/{name}/)"));
            }
            if sections.iter().any(|section| section.name == name) {
                return Err(format!("{number}: row `{name}` defined twice"));
            }
            sections.push(Section { name: name.to_string(), line: number, entries: Vec::new() });
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{number}: expected `key = value`, `[name]` or a `#` comment"))?;
        let section = sections.last_mut().ok_or_else(|| format!("{number}: `{}` outside any [row]", key.trim()))?;
        section.entries.push((number, key.trim().to_string(), value.trim().to_string()));
    }
    sections.iter().map(Section::to_row).collect()
}

/// The `-cpu` models rows may name (QEMU's POWER models this kernel knows; powernv boots
/// POWER9 and POWER10 only).
pub const KNOWN_CPUS: &[&str] = &["POWER8", "POWER9", "POWER10"];

/// `qemu_log_allow = "<regex>" <reason>`: the pattern in double quotes (no quote inside;
/// write `\x22`), then a reason, which must be given.
fn parse_allowance(value: &str) -> Result<LogAllowance, String> {
    let shape = || format!("qemu_log_allow must be `\"<regex>\" <reason>`, not `{value}`");
    let rest = value.strip_prefix('"').ok_or_else(shape)?;
    let (pattern, reason) = rest.split_once('"').ok_or_else(shape)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(format!("qemu_log_allow `{pattern}` needs a reason after the pattern"));
    }
    let pattern = Regex::new(pattern).map_err(|error| format!("bad qemu_log_allow pattern: {error}"))?;
    Ok(LogAllowance { pattern, reason: reason.to_string() })
}

struct Section {
    name: String,
    line: usize,
    entries: Vec<(usize, String, String)>,
}

impl Section {
    fn to_row(&self) -> Result<Row, String> {
        let mut row = Row {
            name: self.name.clone(),
            machine_type: MachineType::Pseries,
            firmware: Firmware::Vof,
            cpu: qemu::DEFAULT_CPU.to_string(),
            accel: Accel::Tcg,
            cpus: 1,
            threads: 1,
            memory_mib: 1024,
            append: String::new(),
            timeout: None,
            expect: Expect::Pass,
            expect_reasons: Vec::new(),
            expect_output: Vec::new(),
            qemu_log_allow: Vec::new(),
            disabled: None,
        };
        let mut cpu_given = false;
        let mut seen: Vec<&str> = Vec::new();
        let mut firmware_given = false;
        for (number, key, value) in &self.entries {
            let fail = |message: String| format!("{number}: {message}");
            let repeatable = matches!(key.as_str(), "expect_reason" | "expect_output" | "qemu_log_allow");
            if !repeatable && seen.contains(&key.as_str()) {
                return Err(fail(format!("`{key}` given twice in [{}]", self.name)));
            }
            seen.push(key);
            match key.as_str() {
                "machine" => row.machine_type = value.parse().map_err(fail)?,
                "disabled" => {
                    if value.is_empty() {
                        return Err(fail("`disabled` needs a reason".into()));
                    }
                    row.disabled = Some(value.clone());
                }
                "firmware" => {
                    row.firmware = value.parse().map_err(fail)?;
                    firmware_given = true;
                }
                "smp" => (row.cpus, row.threads) = qemu::parse_smp(value).map_err(fail)?,
                "cpu" => {
                    if !KNOWN_CPUS.contains(&value.as_str()) {
                        return Err(fail(format!("unknown cpu `{value}` (one of: {})", KNOWN_CPUS.join(", "))));
                    }
                    row.cpu = value.clone();
                    cpu_given = true;
                }
                "accel" => row.accel = value.parse().map_err(fail)?,
                "qemu_log_allow" => row.qemu_log_allow.push(parse_allowance(value).map_err(fail)?),
                "mem" => row.memory_mib = qemu::parse_memory_size(value).map_err(fail)?,
                "append" => row.append = value.clone(),
                "timeout" => row.timeout = Some(qemu::parse_seconds(value).map_err(fail)?),
                "expect" => {
                    row.expect = match value.as_str() {
                        "pass" => Expect::Pass,
                        "fail" => Expect::Fail,
                        _ => return Err(fail(format!("expect must be `pass` or `fail`, not `{value}`"))),
                    }
                }
                "expect_reason" => {
                    if !judge::KINDS.contains(&value.as_str()) {
                        return Err(fail(format!("unknown reason `{value}` (one of: {})", judge::KINDS.join(", "))));
                    }
                    row.expect_reasons.push(value.clone());
                }
                "expect_output" => {
                    let pattern = RegexBuilder::new(value)
                        .multi_line(true)
                        .build()
                        .map_err(|error| fail(format!("bad expect_output pattern: {error}")))?;
                    row.expect_output.push(pattern);
                }
                _ => return Err(fail(format!("unknown key `{key}`"))),
            }
        }
        let at = |message: &str| format!("{}: [{}] {message}", self.line, self.name);
        // pseries has two firmwares to choose from; powernv has only skiboot.
        if !firmware_given {
            match row.machine_type {
                MachineType::Pseries => return Err(at("needs `firmware = vof|slof` (or `machine = powernv`)")),
                MachineType::Powernv => row.firmware = Firmware::Skiboot,
            }
        }
        if cpu_given && row.accel == Accel::Kvm {
            return Err(at("runs under KVM, where the processor is the host's: no `cpu`"));
        }
        qemu::check_combination(row.machine_type, row.firmware, &row.cpu, row.accel, row.memory_mib)
            .map_err(|error| at(&error))?;
        match row.expect {
            Expect::Fail if row.expect_reasons.is_empty() => {
                return Err(at("expects failure, so needs at least one `expect_reason`"))
            }
            Expect::Pass if !row.expect_reasons.is_empty() => {
                return Err(at("expects a pass, so cannot have an `expect_reason`"))
            }
            _ => {}
        }
        Ok(row)
    }
}

impl Row {
    /// Whether `HARNESS_ONLY` (a substring of the name) selects this row.
    pub fn selected_by(&self, only: Option<&str>) -> bool {
        only.is_none_or(|only| self.name.contains(only))
    }

    pub fn machine(&self) -> Machine {
        Machine {
            cpus: self.cpus,
            memory_mib: self.memory_mib,
            firmware_log: qemu::firmware_log_lines(self.machine_type, &self.cpu),
        }
    }

    /// Why this row is not booted, if it is not: it is `disabled`, or this host cannot boot
    /// it. The row is then skipped, saying so, rather than failed.
    pub fn skip_reason(&self) -> Option<String> {
        match &self.disabled {
            Some(reason) => Some(format!("disabled: {reason}")),
            None => self.host_skip_reason(),
        }
    }

    /// Why this host cannot boot this row, if it cannot (a KVM row without KVM).
    pub fn host_skip_reason(&self) -> Option<String> {
        match self.accel {
            Accel::Kvm => qemu::kvm_unavailable(),
            Accel::Tcg => None,
        }
    }

    /// Where this row's result files go: `build/results/<row>/` (see [`crate::results`]).
    pub fn results_dir(&self) -> PathBuf {
        crate::results::boot_dir(&self.name)
    }

    /// Where this row's QEMU guest log goes: `build/results/<row>/qemu.log`.
    pub fn qemu_log_path(&self) -> PathBuf {
        self.results_dir().join(crate::results::QEMU_LOG_FILE)
    }

    /// Judges this row's boot, allowing the guest-log messages the row lists (and those the
    /// machine's firmware always causes).
    pub fn judge(&self, output: &BootOutput) -> Verdict {
        judge::judge_allowing(output, self.machine(), &self.qemu_log_allow)
    }

    /// The boot for this row; `env_timeout` is `BOOT_TIMEOUT`, which the row's own
    /// `timeout` overrides.
    pub fn boot_config(&self, qemu: &Path, kernel: &Path, env_timeout: Option<Duration>) -> BootConfig {
        let mut config = BootConfig::new(qemu, kernel);
        config.machine_type = self.machine_type;
        config.firmware = self.firmware;
        config.cpu = self.cpu.clone();
        config.accel = self.accel;
        config.cpus = self.cpus;
        config.threads = self.threads;
        config.memory_mib = self.memory_mib;
        config.qemu_log = self.qemu_log_path();
        config.append = self.append.clone();
        config.timeout = Some(self.timeout.or(env_timeout).unwrap_or(self.firmware.default_timeout()));
        config
    }

    /// Whether the boot turned out as the row expects. `Ok` holds a note for the log (why an
    /// expected failure failed); `Err` says what was wrong.
    pub fn assess(&self, output: &BootOutput, verdict: &Verdict) -> Result<String, String> {
        let note = match self.expect {
            Expect::Pass if !verdict.passed() => return Err(format!("boot failed: {}", verdict.reason())),
            Expect::Pass => String::new(),
            Expect::Fail if verdict.passed() => return Err("boot passed, but this row expects it to fail".into()),
            Expect::Fail => {
                let missing: Vec<&str> =
                    self.expect_reasons.iter().map(String::as_str).filter(|kind| !verdict.has_kind(kind)).collect();
                if !missing.is_empty() {
                    return Err(format!(
                        "boot failed, but not with the expected {}: {}",
                        missing.join(", "),
                        verdict.reason()
                    ));
                }
                let unexpected: Vec<&str> = judge::ABNORMAL_END_KINDS
                    .iter()
                    .copied()
                    .filter(|kind| {
                        verdict.has_kind(kind) && !self.expect_reasons.iter().any(|expected| expected == kind)
                    })
                    .collect();
                if !unexpected.is_empty() {
                    return Err(format!(
                        "boot also failed with unexpected {}: {}",
                        unexpected.join(", "),
                        verdict.reason()
                    ));
                }
                format!("failed as expected: {}", verdict.reason())
            }
        };
        let console = ktap::normalise(&output.console);
        let unmatched: Vec<String> = self
            .expect_output
            .iter()
            .filter(|pattern| !pattern.is_match(&console))
            .map(|pattern| format!("/{}/", pattern.as_str()))
            .collect();
        if !unmatched.is_empty() {
            return Err(format!("console does not match {}", unmatched.join(", ")));
        }
        Ok(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Failure;

    const SAMPLE: &str = "\
# comment
[vof-smp1]
firmware = vof
smp = 2
mem = 512M
append = selftest=mm,dt loglevel=debug
expect = pass

[panic]
firmware = slof
append = inject=panic
timeout = 5
expect = fail
expect_reason = fatal
expect_output = ^FATAL: panic
expect_output = ^selftests: \\d+ passed, [1-9]\\d* failed
";

    fn rows() -> Vec<Row> {
        parse(SAMPLE).expect("sample parses")
    }

    #[test]
    fn parses_rows() {
        let rows = rows();
        assert_eq!(rows.len(), 2);
        let vof = &rows[0];
        assert_eq!((vof.name.as_str(), vof.firmware, vof.cpus, vof.memory_mib), ("vof-smp1", Firmware::Vof, 2, 512));
        assert_eq!(vof.append, "selftest=mm,dt loglevel=debug");
        assert_eq!(vof.expect, Expect::Pass);
        let panic = &rows[1];
        assert_eq!((panic.firmware, panic.cpus, panic.memory_mib), (Firmware::Slof, 1, 1024));
        assert_eq!(panic.timeout, Some(Duration::from_secs(5)));
        assert_eq!(panic.expect_reasons, ["fatal"]);
        assert_eq!(panic.expect_output.len(), 2);
    }

    #[test]
    fn processor_topology_accelerator_and_log_allowances() {
        let rows = parse(
            "[p8]\nfirmware = vof\ncpu = POWER8\nsmp = 8,threads=4\n\
             qemu_log_allow = \"^Unimplemented SPAPR hcall 0x2$\" planted by inject=guest_error\n\
             qemu_log_allow = \"tlbie\" also this\n\
             [kvm]\nfirmware = vof\naccel = kvm\n",
        )
        .expect("parses");
        let p8 = &rows[0];
        assert_eq!((p8.cpu.as_str(), p8.cpus, p8.threads, p8.accel), ("POWER8", 8, 4, Accel::Tcg));
        assert_eq!(p8.qemu_log_allow.len(), 2);
        assert_eq!(p8.qemu_log_allow[0].reason, "planted by inject=guest_error");
        assert!(p8.qemu_log_allow[0].pattern.is_match("Unimplemented SPAPR hcall 0x2"));
        let config = p8.boot_config(Path::new("q"), Path::new("k"), None);
        assert_eq!((config.cpu.as_str(), config.smp_arg()), ("POWER8", "8,threads=4".to_string()));
        assert!(config.qemu_log.ends_with("build/results/p8/qemu.log"));
        assert_eq!(p8.skip_reason(), None);
        let kvm = &rows[1];
        assert_eq!((kvm.accel, kvm.cpu.as_str()), (Accel::Kvm, "POWER9"));
        assert_eq!(kvm.boot_config(Path::new("q"), Path::new("k"), None).cpu_model(), "host");
        assert_eq!(kvm.skip_reason(), qemu::kvm_unavailable());

        let error = |text: &str| parse(text).unwrap_err();
        assert!(error("[a]\nfirmware = vof\ncpu = POWER7\n").starts_with("3: unknown cpu `POWER7`"));
        assert!(error("[a]\nfirmware = vof\naccel = kvm\ncpu = POWER8\n").contains("no `cpu`"));
        assert!(error("[a]\nfirmware = vof\nqemu_log_allow = tlbie\n").contains("must be"));
        assert!(error("[a]\nfirmware = vof\nqemu_log_allow = \"tlbie\"\n").contains("needs a reason"));
        assert!(error("[a]\nfirmware = vof\nqemu_log_allow = \"(\" x\n").contains("bad qemu_log_allow"));
        assert!(error("[a]\nfirmware = vof\nsmp = 6,threads=4\n").contains("not whole cores"));
    }

    #[test]
    fn powernv_rows() {
        let rows = parse(
            "[p9]\nmachine = powernv\nsmp = 4\nappend = mmu=hash\n\
             [p10]\nmachine = powernv\nfirmware = skiboot\ncpu = POWER10\nmem = 2G\n\
             disabled = waits for the kernel\n\
             [pseries]\nmachine = pseries\nfirmware = slof\n",
        )
        .expect("parses");
        let p9 = &rows[0];
        assert_eq!(
            (p9.machine_type, p9.firmware, p9.cpu.as_str()),
            (MachineType::Powernv, Firmware::Skiboot, "POWER9")
        );
        let config = p9.boot_config(Path::new("q"), Path::new("k"), None);
        assert_eq!(config.timeout, Some(Duration::from_secs(30)));
        let args: Vec<String> = config.args().iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
        assert_eq!(args[..3], ["-M", "powernv9", "-nodefaults"]);
        assert_eq!(p9.machine().firmware_log, qemu::firmware_log_lines(MachineType::Powernv, "POWER9"));
        assert!(!p9.machine().firmware_log.is_empty());
        assert_eq!((p9.skip_reason(), p9.disabled.as_deref()), (None, None));
        let p10 = &rows[1];
        assert_eq!(p10.boot_config(Path::new("q"), Path::new("k"), None).machine_arg(), "powernv10");
        assert_eq!(p10.skip_reason().as_deref(), Some("disabled: waits for the kernel"));
        assert_eq!(p10.host_skip_reason(), None);
        assert_eq!(rows[2].machine_type, MachineType::Pseries);
        assert!(rows[2].machine().firmware_log.is_empty());

        let error = |text: &str| parse(text).unwrap_err();
        assert_eq!(
            error("[a]\nmachine = powernv\nfirmware = vof\n"),
            "1: [a] firmware `vof` runs on machine pseries only; powernv boots with skiboot"
        );
        assert_eq!(
            error("[a]\nfirmware = skiboot\n"),
            "1: [a] firmware `skiboot` runs on machine powernv only; pseries boots with vof or slof"
        );
        assert!(error("[a]\nmachine = powernv\ncpu = POWER8\n").ends_with("not cpu `POWER8`"));
        assert!(error("[a]\nmachine = powernv\nmem = 512M\n").contains("at least 1G"));
        assert!(error("[a]\nmachine = powernv\naccel = kvm\n").contains("use accel tcg"));
        assert!(error("[a]\nmachine = bare\n").starts_with("2: unknown machine `bare`"));
        assert_eq!(error("[a]\nmachine = powernv\ndisabled =\n"), "3: `disabled` needs a reason");
        assert_eq!(error("[a]\nmachine = powernv\nmachine = powernv\n"), "3: `machine` given twice in [a]");
    }

    #[test]
    fn timeouts() {
        let rows = rows();
        let config = |row: &Row, env| row.boot_config(Path::new("q"), Path::new("k"), env).timeout;
        assert_eq!(config(&rows[0], None), Some(Duration::from_secs(30)));
        assert_eq!(config(&rows[0], Some(Duration::from_secs(90))), Some(Duration::from_secs(90)));
        assert_eq!(config(&rows[1], Some(Duration::from_secs(90))), Some(Duration::from_secs(5)));
    }

    #[test]
    fn errors_name_the_line() {
        let error = |text: &str| parse(text).unwrap_err();
        assert_eq!(error("[a]\nfirmware = vof\nsmpp = 2\n"), "3: unknown key `smpp`");
        assert_eq!(error("firmware = vof\n"), "1: `firmware` outside any [row]");
        assert_eq!(error("[a]\nsmp = 1\n"), "1: [a] needs `firmware = vof|slof` (or `machine = powernv`)");
        assert_eq!(error("[a]\nfirmware = vof\n[a]\n"), "3: row `a` defined twice");
        assert_eq!(error("[a]\nfirmware = vof\nsmp = 1\nsmp = 2\n"), "4: `smp` given twice in [a]");
        assert!(error("[a]\nfirmware = ofw\n").starts_with("2: unknown firmware"));
        assert!(error("[a]\nfirmware = vof\nexpect = fail\n").contains("needs at least one `expect_reason`"));
        assert!(error("[a]\nfirmware = vof\nexpect_reason = boom\n").starts_with("3: unknown reason `boom`"));
        assert!(error("[a]\nfirmware = vof\nexpect_output = (\n").starts_with("3: bad expect_output pattern"));
        assert!(error("[a b]\n").starts_with("1: bad section header"));
        assert!(error("[a/b]\nfirmware = vof\n").starts_with("1: row name `a/b` must be letters"));
        assert!(error("[..]\nfirmware = vof\n").starts_with("1: row name `..` must be"));
        assert!(error("[run]\nfirmware = vof\n").contains("kept for kboot's results"));
    }

    #[test]
    fn only_filter() {
        let rows = rows();
        assert!(rows[0].selected_by(None));
        assert!(rows[0].selected_by(Some("smp1")));
        assert!(!rows[1].selected_by(Some("smp1")));
    }

    fn verdict(failures: Vec<Failure>) -> Verdict {
        Verdict { failures, ..Verdict::default() }
    }

    fn output(console: &str) -> BootOutput {
        BootOutput { console: console.into(), ..BootOutput::default() }
    }

    const PANIC_CONSOLE: &str = "x\r\nFATAL: panic at a.rs:1:1: boom\r\nselftests: 1 passed, 1 failed, 0 skipped\r\n";

    #[test]
    fn expected_failure_for_the_right_reason() {
        let row = &rows()[1];
        let failures = vec![Failure::Fatal { line: "FATAL: panic".into() }, Failure::SummaryFailed { failed: 1 }];
        let note = row.assess(&output(PANIC_CONSOLE), &verdict(failures)).expect("row passes");
        assert!(note.starts_with("failed as expected: kernel: FATAL: panic"), "{note}");
    }

    #[test]
    fn expected_failure_that_passed() {
        let row = &rows()[1];
        let error = row.assess(&output(PANIC_CONSOLE), &verdict(vec![])).unwrap_err();
        assert_eq!(error, "boot passed, but this row expects it to fail");
    }

    #[test]
    fn expected_failure_for_another_reason() {
        let row = &rows()[1];
        let failures = vec![Failure::NotOk { number: 1, name: "a".into(), reason: None }];
        let error = row.assess(&output(PANIC_CONSOLE), &verdict(failures)).unwrap_err();
        assert_eq!(error, "boot failed, but not with the expected fatal: not ok 1 a");
    }

    #[test]
    fn expected_failure_that_also_hung() {
        let row = &rows()[1];
        let failures = vec![
            Failure::TimedOut { after: Duration::from_secs(5), nmi: None, cpus_reported: 0 },
            Failure::Fatal { line: "FATAL: panic".into() },
        ];
        let error = row.assess(&output(PANIC_CONSOLE), &verdict(failures)).unwrap_err();
        assert!(error.starts_with("boot also failed with unexpected timeout: "), "{error}");
    }

    #[test]
    fn expected_output_must_match() {
        let row = &rows()[1];
        let failures = vec![Failure::Fatal { line: "FATAL: panic".into() }];
        let console = "FATAL: panic at a.rs:1:1: boom\nselftests: 1 passed, 0 failed, 0 skipped\n";
        let error = row.assess(&output(console), &verdict(failures)).unwrap_err();
        assert_eq!(error, r"console does not match /^selftests: \d+ passed, [1-9]\d* failed/");
    }

    #[test]
    fn expected_pass() {
        let row = &rows()[0];
        assert_eq!(row.assess(&output(""), &verdict(vec![])), Ok(String::new()));
        let error = row.assess(&output(""), &verdict(vec![Failure::NoSummary])).unwrap_err();
        assert_eq!(error, "boot failed: no `selftests: P passed, F failed, S skipped` line");
    }

    #[test]
    fn shipped_matrix_parses() {
        let rows = load(&default_path()).expect("tests/matrix.cfg parses");
        assert!(rows.iter().any(|row| row.expect == Expect::Pass && row.firmware == Firmware::Vof));
        assert!(rows.iter().any(|row| row.expect == Expect::Pass && row.firmware == Firmware::Slof));
        assert!(rows.iter().any(|row| row.machine_type == MachineType::Powernv && row.firmware == Firmware::Skiboot));
        for kind in ["fatal", "timeout", "not-ok"] {
            assert!(rows.iter().any(|row| row.expect_reasons.iter().any(|reason| reason == kind)), "{kind}");
        }
    }
}
