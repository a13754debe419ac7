//! The race lab's verdicts: what one boot's `race.*`, `stress.*` and
//! `collapse.*` self-tests and benchmarks printed, and what the loom models
//! found, read into one table per configuration (`make race`).

use regex::Regex;
use serde_json::{json, Value};

/// The deterministic race test of one knob setting (`race.*`): what
/// GUP-fast and collapse each did when driven through the seed thread's
/// interleaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deterministic {
    pub recheck: bool,
    pub ipi: String,
    pub gup: String,
    pub collapse: String,
}

/// One stress configuration's counts (`stress.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stress {
    pub config: String,
    pub mmu: String,
    pub jitter_us: u64,
    pub seed: String,
    pub rounds: u64,
    pub collapsed: u64,
    pub aborted_pinned: u64,
    pub pins: u64,
    pub stale_pins: u64,
    pub lost_writes: u64,
    /// Hash only: HPTEs found translating to a page the tree no longer maps.
    pub stale_hptes: Option<u64>,
    pub passed: Option<bool>,
}

/// Everything one boot says about the race.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BootVerdicts {
    pub deterministic: Vec<Deterministic>,
    /// The hash fault path's race (`race.hash_*`): the setting and where
    /// the write went.
    pub hash_fault: Vec<(String, String)>,
    pub stress: Vec<Stress>,
    /// The cost of the fixes: GUP-fast with/without the recheck (ratio),
    /// collapse with and without the IPI (us), from `# BENCH` lines.
    pub recheck_cost: Option<f64>,
    pub collapse_noipi_us: Option<f64>,
    pub collapse_ipi_us: Option<f64>,
}

/// Reads a boot's console.
pub fn parse_boot(console: &str) -> BootVerdicts {
    let deterministic = Regex::new(r"^# recheck=(true|false) ipi=(\w+): (GUP [^,]+), (collapse [^,]+),").unwrap();
    let hash = Regex::new(r"^# hash, collapse_ipi=(\w+): .*; the write (.+)$").unwrap();
    let stress = Regex::new(
        r"^# (.+?) \((radix|hash), race_jitter=(\d+) race_seed=(0x[0-9a-f]+)\): (\d+) rounds, (\d+) collapsed, (\d+) aborted \(pinned\), (\d+) pins, \d+ not pinned, (\d+) stale pins, (\d+) lost writes(?:, (\d+) stale HPTEs)?$",
    )
    .unwrap();
    let result = Regex::new(r"^(ok|not ok) \d+ stress\.(\w+)").unwrap();
    let mut verdicts = BootVerdicts::default();
    let number = |text: &str| text.parse::<u64>().unwrap_or(0);
    for line in console.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(c) = deterministic.captures(line) {
            verdicts.deterministic.push(Deterministic {
                recheck: &c[1] == "true",
                ipi: c[2].to_string(),
                gup: c[3].to_string(),
                collapse: c[4].to_string(),
            });
        } else if let Some(c) = hash.captures(line) {
            verdicts.hash_fault.push((c[1].to_string(), c[2].to_string()));
        } else if let Some(c) = stress.captures(line) {
            verdicts.stress.push(Stress {
                config: c[1].to_string(),
                mmu: c[2].to_string(),
                jitter_us: number(&c[3]),
                seed: c[4].to_string(),
                rounds: number(&c[5]),
                collapsed: number(&c[6]),
                aborted_pinned: number(&c[7]),
                pins: number(&c[8]),
                stale_pins: number(&c[9]),
                lost_writes: number(&c[10]),
                stale_hptes: c.get(11).map(|m| number(m.as_str())),
                passed: None,
            });
        } else if let Some(c) = result.captures(line) {
            // The result line follows its configuration's counts.
            if let Some(last) = verdicts.stress.last_mut().filter(|s| s.passed.is_none()) {
                last.passed = Some(&c[1] == "ok" && !c[2].eq("table"));
            }
        }
    }
    if let Ok(records) = crate::bench::parse(console, "any") {
        for record in records {
            match record.name.as_str() {
                "gup_fast_recheck_cost" => verdicts.recheck_cost = Some(record.median),
                "collapse_noipi" => verdicts.collapse_noipi_us = Some(record.median),
                "collapse_ipi" => verdicts.collapse_ipi_us = Some(record.median),
                _ => {}
            }
        }
    }
    verdicts
}

/// A loom model's verdict: its name, whether it passed, and the executions
/// it explored (when it printed them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loom {
    pub test: String,
    pub passed: bool,
    pub explored: Option<String>,
}

/// Reads `make loom`'s output (libtest with `--nocapture`): a model's
/// `loom: ...: N executions explored` line is printed after its test's
/// `test NAME ... ` and before the `ok`/`FAILED` that ends it.
pub fn parse_loom(output: &str) -> Vec<Loom> {
    let test = Regex::new(r"^test (\S+) \.\.\. ?(.*)$").unwrap();
    let explored = Regex::new(r"loom: (.+): (\d+) executions explored").unwrap();
    let verdict = Regex::new(r"^(ok|FAILED)\s*$").unwrap();
    let mut models: Vec<Loom> = Vec::new();
    let mut open: Option<Loom> = None;
    let close = |open: &mut Option<Loom>, passed: bool, models: &mut Vec<Loom>| {
        if let Some(mut model) = open.take() {
            model.passed = passed;
            models.push(model);
        }
    };
    for line in output.lines() {
        if let Some(c) = test.captures(line) {
            let mut model = Loom { test: c[1].to_string(), passed: false, explored: None };
            let rest = &c[2];
            if let Some(e) = explored.captures(rest) {
                model.explored = Some(format!("{} ({})", &e[2], &e[1]));
            }
            open = Some(model);
            if let Some(v) = verdict.captures(rest.trim()) {
                close(&mut open, &v[1] == "ok", &mut models);
            }
        } else if let Some(e) = explored.captures(line) {
            if let Some(model) = open.as_mut() {
                model.explored = Some(format!("{} ({})", &e[2], &e[1]));
            }
        } else if let Some(v) = verdict.captures(line.trim()) {
            close(&mut open, &v[1] == "ok", &mut models);
        }
    }
    models
}

/// The table for the README and `build/race/verdicts.md`.
pub fn markdown(boots: &[(String, BootVerdicts)], loom: &[Loom]) -> String {
    let mut out = String::new();
    out.push_str("| machine, MMU | configuration | deterministic race | stress: rounds / pins / stale pins / lost writes / stale HPTEs (seed) | verdict |\n");
    out.push_str("|---|---|---|---|---|\n");
    for (name, boot) in boots {
        for stress in &boot.stress {
            let (recheck, ipi) = knobs(&stress.config);
            let det = boot
                .deterministic
                .iter()
                .find(|d| d.recheck == recheck && d.ipi.eq_ignore_ascii_case(ipi))
                .map_or("-".to_string(), |d| format!("{}; {}", d.gup, d.collapse));
            let raced = stress.stale_pins + stress.lost_writes + stress.stale_hptes.unwrap_or(0) > 0;
            let verdict = match (stress.passed, raced, protects(&stress.mmu, recheck, ipi)) {
                (Some(false), _, _) => "FAIL",
                (_, true, false) => "race shown",
                (_, false, true) => "protected",
                (_, true, true) => "FAIL: race in a protected configuration",
                (_, false, false) => "missed: unprotected, no race this run",
            };
            out.push_str(&format!(
                "| {name} | {} | {det} | {} / {} / {} / {} / {} ({}) | {verdict} |\n",
                stress.config,
                stress.rounds,
                stress.pins,
                stress.stale_pins,
                stress.lost_writes,
                stress.stale_hptes.map_or("-".to_string(), |n| n.to_string()),
                stress.seed
            ));
        }
        for (ipi, went) in &boot.hash_fault {
            out.push_str(&format!("| {name} | hash fault path, collapse_ipi={ipi} | the write {went} | | |\n"));
        }
    }
    let costs = |b: &BootVerdicts| [b.recheck_cost, b.collapse_noipi_us, b.collapse_ipi_us];
    if boots.iter().any(|(_, b)| costs(b).iter().any(Option::is_some)) {
        out.push_str(
            "\n| machine, MMU | GUP-fast recheck cost (ratio) | collapse, no IPI (us) | collapse, IPI (us) |\n|---|---|---|---|\n",
        );
    }
    for (name, boot) in boots.iter().filter(|(_, b)| costs(b).iter().any(Option::is_some)) {
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        out.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            show(boot.recheck_cost),
            show(boot.collapse_noipi_us),
            show(boot.collapse_ipi_us)
        ));
    }
    if !loom.is_empty() {
        out.push_str("\n| loom model | verdict | executions explored |\n|---|---|---|\n");
        for model in loom {
            let verdict = if model.passed { "as expected" } else { "FAILED" };
            out.push_str(&format!("| {} | {verdict} | {} |\n", model.test, model.explored.as_deref().unwrap_or("-")));
        }
    }
    out
}

/// The stress configurations in the order the kernel runs them, with the
/// short names the chart's axis has room for.
const SHORT_NAMES: [(&str, &str); 5] = [
    ("defaults (recheck on, ipi auto)", "defaults"),
    ("recheck on, ipi off", "recheck only"),
    ("recheck off, ipi on", "IPI only"),
    ("recheck on, ipi on", "both fixes"),
    ("recheck off, ipi off", "no fix"),
];

/// The README's plot: per configuration (the kernel's defaults, each fix
/// alone, both, neither) and per boot (machine and MMU), the stale pins and
/// lost writes the widened stress saw per 100 collapse rounds. Radix's bars
/// stand only at "no fix", hash's also at "recheck only".
pub fn chart(boots: &[(String, BootVerdicts)]) -> String {
    let categories: Vec<String> = SHORT_NAMES.iter().map(|(_, short)| short.to_string()).collect();
    let series: Vec<(String, Vec<f64>)> = boots
        .iter()
        .filter(|(_, boot)| !boot.stress.is_empty())
        .map(|(name, boot)| {
            let per_config = SHORT_NAMES
                .iter()
                .map(|(config, _)| {
                    boot.stress
                        .iter()
                        .find(|s| s.config == *config)
                        .map_or(0.0, |s| (s.stale_pins + s.lost_writes) as f64 * 100.0 / s.rounds.max(1) as f64)
                })
                .collect();
            (name.clone(), per_config)
        })
        .collect();
    crate::bench::labelled_bar_chart(
        "The race with each fix (widened stress, 4 CPUs)",
        "stale pins + lost writes per 100 rounds",
        &categories,
        &series,
    )
}

/// What one boot showed of the race, as `kboot` prints it after the boot
/// (`make run`): its verdict table, named after the machine and the MMU the
/// boot ran; `None` if no race or stress test printed anything (a boot of
/// one CPU, or one that ran other tests).
pub fn boot_summary(machine: &str, boot: &BootVerdicts) -> Option<String> {
    if boot.stress.is_empty() && boot.deterministic.is_empty() && boot.hash_fault.is_empty() {
        return None;
    }
    let mmu = boot.stress.first().map_or(if boot.hash_fault.is_empty() { "" } else { "hash" }, |s| s.mmu.as_str());
    Some(markdown(&[(format!("{machine} {mmu}").trim_end().to_string(), boot.clone())], &[]))
}

/// Whether the fixes protect `mmu`: radix by either, hash only by the IPI
/// (its fault path walks locklessly too). `auto` means the IPI on hash only.
fn protects(mmu: &str, recheck: bool, ipi: &str) -> bool {
    let hash = mmu == "hash";
    let ipi = ipi == "on" || (ipi == "auto" && hash);
    ipi || (!hash && recheck)
}

/// The knobs a stress configuration's name states.
fn knobs(config: &str) -> (bool, &'static str) {
    let recheck = config.contains("recheck on");
    let ipi = if config.contains("ipi auto") {
        "auto"
    } else if config.contains("ipi on") {
        "on"
    } else {
        "off"
    };
    (recheck, ipi)
}

pub fn to_json(boots: &[(String, BootVerdicts)], loom: &[Loom]) -> Value {
    json!({
        "boots": boots.iter().map(|(name, b)| json!({
            "boot": name,
            "deterministic": b.deterministic.iter().map(|d| json!({"recheck": d.recheck, "ipi": d.ipi, "gup": d.gup, "collapse": d.collapse})).collect::<Vec<_>>(),
            "hash_fault": b.hash_fault.iter().map(|(ipi, went)| json!({"collapse_ipi": ipi, "write": went})).collect::<Vec<_>>(),
            "stress": b.stress.iter().map(|s| json!({"config": s.config, "mmu": s.mmu, "race_jitter_us": s.jitter_us, "race_seed": s.seed,
                "rounds": s.rounds, "collapsed": s.collapsed, "aborted_pinned": s.aborted_pinned, "pins": s.pins,
                "stale_pins": s.stale_pins, "lost_writes": s.lost_writes, "stale_hptes": s.stale_hptes, "passed": s.passed})).collect::<Vec<_>>(),
            "recheck_cost": b.recheck_cost, "collapse_noipi_us": b.collapse_noipi_us, "collapse_ipi_us": b.collapse_ipi_us,
        })).collect::<Vec<_>>(),
        "loom": loom.iter().map(|m| json!({"test": m.test, "passed": m.passed, "explored": m.explored})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_per_boot_and_configuration() {
        let boots = vec![("pseries radix".to_string(), parse_boot(CONSOLE))];
        let svg = chart(&boots);
        assert!(svg.starts_with("<svg") && svg.contains("no fix") && svg.contains("pseries radix"));
        // Background, 5 bars, one legend key.
        assert_eq!(svg.matches("<rect").count(), 1 + 5 + 1, "{svg}");
        // recheck off, ipi off: (13 + 1) per 24 rounds = 58.33 per 100.
        assert!(svg.contains(">58<"), "{svg}");
    }

    #[test]
    fn a_boot_summary_names_the_machine_and_mmu_or_is_absent() {
        let summary = boot_summary("pseries", &parse_boot(CONSOLE)).expect("the console has race lines");
        assert!(summary.contains("| pseries radix | recheck off, ipi off |"), "{summary}");
        assert_eq!(boot_summary("pseries", &parse_boot("ok 1 frames.alloc\n")), None);
    }

    const CONSOLE: &str = "\
# recheck=false ipi=Off: GUP pinned a page, collapse went ahead, B's wait ended by A's isolation check\r
# recheck=true ipi=Off: GUP backed off, collapse went ahead, B's wait ended by A's isolation check\r
# hash, collapse_ipi=Off: B's wait ended by A's isolation check; the write went to the discarded small page (stale HPTE)\r
# recheck off, ipi off (radix, race_jitter=1000 race_seed=0x2a): 24 rounds, 24 collapsed, 410 aborted (pinned), 1331 pins, 61 not pinned, 13 stale pins, 1 lost writes\r
ok 5 stress.no_fixes\r
# recheck on, ipi off (radix, race_jitter=1000 race_seed=0x2a): 24 rounds, 23 collapsed, 23 aborted (pinned), 319 pins, 67 not pinned, 0 stale pins, 0 lost writes\r
not ok 2 stress.recheck_only # something\r
# recheck on, ipi off (hash, race_jitter=1000 race_seed=0x2a): 48 rounds, 48 collapsed, 3 aborted (pinned), 90 pins, 9 not pinned, 0 stale pins, 0 lost writes, 2 stale HPTEs\r
ok 3 stress.recheck_only\r
";

    #[test]
    fn a_boot_reads_into_verdicts() {
        let v = parse_boot(CONSOLE);
        assert_eq!(v.deterministic.len(), 2);
        assert!(!v.deterministic[0].recheck && v.deterministic[0].gup == "GUP pinned a page");
        assert_eq!(v.deterministic[1].collapse, "collapse went ahead");
        assert_eq!(v.hash_fault, [("Off".to_string(), "went to the discarded small page (stale HPTE)".to_string())]);
        assert_eq!(v.stress.len(), 3);
        assert_eq!((v.stress[2].mmu.as_str(), v.stress[2].rounds, v.stress[2].stale_hptes), ("hash", 48, Some(2)));
        assert_eq!(v.stress[0].stale_hptes, None);
        assert_eq!((v.stress[0].stale_pins, v.stress[0].lost_writes, v.stress[0].passed), (13, 1, Some(true)));
        assert_eq!((v.stress[1].rounds, v.stress[1].seed.as_str(), v.stress[1].passed), (24, "0x2a", Some(false)));
    }

    #[test]
    fn the_table_says_which_configurations_showed_the_race() {
        let boots = vec![("pseries radix".to_string(), parse_boot(CONSOLE))];
        let loom = parse_loom(
            "test recheck_off_ipi_off_finds_the_race ... loom: recheck_pmd=false ipi=false: 1234 executions explored (preemption bound 20)\n\
             counter-example (recheck off, IPI off):\n  step\nok\ntest recheck_on_ipi_off_is_safe ... FAILED\n",
        );
        assert_eq!(loom[0].explored.as_deref(), Some("1234 (recheck_pmd=false ipi=false)"));
        assert!(!loom[1].passed && loom[1].explored.is_none());
        let table = markdown(&boots, &loom);
        assert!(table.contains("| recheck off, ipi off | GUP pinned a page; collapse went ahead | 24 / 1331 / 13 / 1 / - (0x2a) | race shown |"), "{table}");
        assert!(
            table.contains(
                "| recheck on, ipi off | GUP backed off; collapse went ahead | 24 / 319 / 0 / 0 / - (0x2a) | FAIL |"
            ),
            "{table}"
        );
        assert!(table.contains("| 48 / 90 / 0 / 0 / 2 (0x2a) | race shown |"), "{table}");
        assert!(table.contains("| recheck_on_ipi_off_is_safe | FAILED | - |"));
        assert!(!table.contains("recheck cost"), "no cost was measured: {table}");
        let json = to_json(&boots, &loom);
        assert_eq!(json["boots"][0]["stress"][0]["stale_pins"], 13);
    }
}
