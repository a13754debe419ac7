//! Benchmark results: the kernel's `# BENCH {json}` lines, Linux's anchor
//! (bench/linux), and what `make bench` makes of them: bench/results.json,
//! a Markdown report (ours vs Linux and every result on pseries, then
//! powernv beside pseries) and two SVG plots (pseries). Pure functions, so
//! the formats are unit-tested; `src/bin/bench.rs` does the boots.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

/// The machine of a record that names none: results.json from before
/// records had one, when every boot was a pseries boot.
pub const DEFAULT_MACHINE: &str = "pseries";

/// One result of one boot.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The platform QEMU emulated: `pseries` or `powernv`.
    pub machine: String,
    pub mmu: String,
    pub cpus: u32,
    pub name: String,
    pub unit: String,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub reps: u64,
}

impl Record {
    pub fn to_json(&self) -> Value {
        json!({"machine": self.machine, "mmu": self.mmu, "cpus": self.cpus, "name": self.name, "unit": self.unit,
               "min": self.min, "median": self.median, "max": self.max, "reps": self.reps})
    }

    /// A record as [`Record::to_json`] writes it or as a `# BENCH` line has
    /// it (`cpus` a string there, and no `machine`: the kernel does not say
    /// which platform it runs on). `machine` is for a value that names none.
    /// Checked: finite min <= median <= max, reps > 0.
    pub fn from_json(value: &Value, machine: &str) -> Result<Record, String> {
        let text = |key: &str| {
            value.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("without \"{key}\""))
        };
        let number = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("without a finite \"{key}\""))
        };
        let cpus = match value.get("cpus") {
            Some(Value::String(text)) => text.parse().ok(),
            Some(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
            None => None,
        }
        .ok_or("with a bad cpus")?;
        let record = Record {
            machine: value.get("machine").and_then(Value::as_str).unwrap_or(machine).to_string(),
            mmu: text("mmu")?,
            cpus,
            name: text("name")?,
            unit: text("unit")?,
            min: number("min")?,
            median: number("median")?,
            max: number("max")?,
            reps: value.get("reps").and_then(Value::as_u64).ok_or("without reps")?,
        };
        if !(record.min <= record.median && record.median <= record.max) || record.reps == 0 {
            return Err("out of order (min <= median <= max, reps > 0)".into());
        }
        Ok(record)
    }
}

/// The results a boot with `bench=all` must print, by MMU. The same on
/// both machines: on powernv the hash rows time the kernel's own HPT
/// (`h_bulk_remove_per_hpte` and `h_remove_per_hpte` then time HPTE
/// stores and `tlbie`, not hcalls).
pub fn expected(mmu: &str, cpus: u32, selftests: bool) -> Vec<String> {
    let mut names: Vec<String> = [
        "boot_to_first_selftest",
        "boot_to_kernel_entry",
        "fault_base_page",
        "fault_thp",
        "unmap_base_page",
        "zero_64k",
        "zero_2m",
        "trap_round_trip",
        "copy_64k",
        "syscall_getpid",
        "user_fault_base_page",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if selftests {
        names.push("selftest_run".into());
    }
    for kind in ["small", "huge"] {
        for pages in [1, 32, 512] {
            names.push(format!("gup_fast_{kind}_{pages}"));
            names.push(format!("gup_slow_{kind}_{pages}"));
        }
    }
    names.extend(
        [
            "gup_fast_recheck_on_32",
            "gup_fast_recheck_off_32",
            "gup_fast_recheck_cost",
            "collapse_noipi",
            "collapse_ipi",
        ]
        .map(String::from),
    );
    if cpus > 1 {
        names.extend(["collapse_noipi_busy", "collapse_ipi_busy"].map(String::from));
    }
    match mmu {
        "radix" => names.extend(["tlbie_page", "tlbiel_page"].map(String::from)),
        _ => names.extend(
            ["hash_collapse_flush_32", "h_bulk_remove_per_hpte", "h_remove_per_hpte", "hpte_insert"].map(String::from),
        ),
    }
    names
}

/// The `# BENCH` lines of a console of a boot on `machine`, checked: each
/// a JSON object with a name, a unit, finite min <= median <= max, reps,
/// mmu and cpus, and no other machine than the boot's.
pub fn parse(console: &str, machine: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for line in console.lines() {
        let Some(json) = line.trim_end_matches('\r').strip_prefix("# BENCH ") else { continue };
        let value: Value = serde_json::from_str(json).map_err(|e| format!("malformed BENCH line ({e}): {line}"))?;
        let record = Record::from_json(&value, machine).map_err(|e| format!("BENCH line {e}: {line}"))?;
        if record.machine != machine {
            return Err(format!("BENCH line of machine {} in a {machine} boot: {line}", record.machine));
        }
        records.push(record);
    }
    Ok(records)
}

/// One record per result from several boots of the same configurations,
/// as the Linux anchor summarises its boots: the median of the boots'
/// medians (the upper one of an even count), the lowest minimum and the
/// highest maximum, the repetitions added up. A whole boot of this
/// emulator can run 1.5-2x slower than the next, so one boot's median
/// says as much about the host as about the kernel. In first-seen order.
pub fn merge_boots(records: &[Record]) -> Vec<Record> {
    let mut merged: Vec<(Record, Vec<f64>)> = Vec::new();
    for record in records {
        let same = |m: &&mut (Record, Vec<f64>)| {
            let r = &m.0;
            r.machine == record.machine && r.mmu == record.mmu && r.cpus == record.cpus && r.name == record.name
        };
        match merged.iter_mut().find(|m| same(m)) {
            Some((into, medians)) => {
                into.min = into.min.min(record.min);
                into.max = into.max.max(record.max);
                into.reps += record.reps;
                medians.push(record.median);
            }
            None => merged.push((record.clone(), vec![record.median])),
        }
    }
    merged
        .into_iter()
        .map(|(mut record, mut medians)| {
            medians.sort_by(f64::total_cmp);
            record.median = medians[medians.len() / 2];
            record
        })
        .collect()
}

/// Names `expected` lists that `records` lacks.
pub fn missing(records: &[Record], expected: &[String]) -> Vec<String> {
    expected.iter().filter(|name| !records.iter().any(|r| &r.name == *name)).cloned().collect()
}

/// Linux's anchor (bench/linux/run.sh's results.json): median over boots of
/// each (config, smp, name) median.
pub fn linux_medians(linux: &Value) -> BTreeMap<(String, u64, String), (f64, String)> {
    let mut all: BTreeMap<(String, u64, String), (Vec<f64>, String)> = BTreeMap::new();
    for row in linux.get("results").and_then(Value::as_array).into_iter().flatten() {
        let (Some(config), Some(smp), Some(name), Some(median)) = (
            row.get("config").and_then(Value::as_str),
            row.get("smp").and_then(Value::as_u64),
            row.get("name").and_then(Value::as_str),
            row.get("median").and_then(Value::as_f64),
        ) else {
            continue;
        };
        let unit = row.get("unit").and_then(Value::as_str).unwrap_or("").to_string();
        all.entry((config.into(), smp, name.into())).or_insert_with(|| (Vec::new(), unit)).0.push(median);
    }
    all.into_iter()
        .map(|(key, (mut values, unit))| {
            values.sort_by(f64::total_cmp);
            (key, (values[values.len() / 2], unit))
        })
        .collect()
}

fn ours<'a>(records: &'a [Record], machine: &str, mmu: &str, cpus: u32, name: &str) -> Option<&'a Record> {
    records.iter().find(|r| r.machine == machine && r.mmu == mmu && r.cpus == cpus && r.name == name)
}

fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        format!("{value:.3e}")
    } else if magnitude >= 100.0 || value == 0.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Which of Linux's result files a comparison reads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// bench/linux/run.sh: Debian's kernel timed from user space (mmbench).
    Anchor,
    /// bench/linux/gup-test.sh: Linux's own gup_test ioctls on a kernel built
    /// with CONFIG_GUP_TEST, timed inside Linux (gupbench).
    GupTest,
}

/// One comparison: an operation of ours against Linux's, converted to one
/// unit where needed (`to_unit` converts Linux's median). `higher_is_better`
/// for rates.
struct Pair {
    source: Source,
    what: &'static str,
    ours: &'static str,
    linux: &'static str,
    linux_config: fn(&str) -> &'static str,
    unit: &'static str,
    to_unit: fn(f64) -> f64,
    higher_is_better: bool,
}

fn same(mmu: &str) -> &'static str {
    if mmu == "radix" {
        "radix"
    } else {
        "hash"
    }
}
fn thp_capable(mmu: &str) -> &'static str {
    if mmu == "radix" {
        "radix"
    } else {
        "hash16m"
    }
}
fn identity(v: f64) -> f64 {
    v
}
fn call_of_16_to_pages_per_s(v: f64) -> f64 {
    16.0 * 1e6 / v
}

/// Linux's time per page in µs as pages per second.
fn us_per_page_to_pages_per_s(v: f64) -> f64 {
    1e6 / v
}

const PAIRS: &[Pair] = &[
    Pair {
        source: Source::Anchor,
        what: "boot: reset to first test / to init",
        ours: "boot_to_first_selftest",
        linux: "boot_init_tb",
        linux_config: same,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        source: Source::Anchor,
        what: "anonymous fault, per 64 KiB page",
        ours: "fault_base_page",
        linux: "fault_base_page",
        linux_config: same,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        source: Source::Anchor,
        what: "munmap, per 64 KiB page (32 faulted pages; Linux: one munmap call)",
        ours: "unmap_base_page",
        linux: "unmap_base_page",
        linux_config: same,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        source: Source::Anchor,
        what: "system call round trip (getpid, from user mode)",
        ours: "syscall_getpid",
        linux: "syscall_getpid",
        linux_config: same,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        source: Source::Anchor,
        what: "user fault-in, per 64 KiB page (a process's stores; Linux: the same)",
        ours: "user_fault_base_page",
        linux: "fault_base_page",
        linux_config: same,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        source: Source::Anchor,
        what: "THP fault (Linux on hash: 16 MiB)",
        ours: "fault_thp",
        linux: "fault_thp",
        linux_config: thp_capable,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        source: Source::Anchor,
        what: "collapse, per 64 KiB page (Linux on hash: of 16 MiB)",
        ours: "collapse_default_per_page",
        linux: "collapse_per_base_page",
        linux_config: thp_capable,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        source: Source::Anchor,
        what: "GUP-fast (ours: 32 pages; Linux: vmsplice of 16, a syscall)",
        ours: "gup_fast_small_32",
        linux: "vmsplice_16p_call",
        linux_config: same,
        unit: "pages/s",
        to_unit: call_of_16_to_pages_per_s,
        higher_is_better: true,
    },
    Pair {
        source: Source::Anchor,
        what: "GUP-slow (ours: 32 pages; Linux: process_vm_readv of 16, with copy)",
        ours: "gup_slow_small_32",
        linux: "gupslow_pvreadv_16p_call",
        linux_config: same,
        unit: "pages/s",
        to_unit: call_of_16_to_pages_per_s,
        higher_is_better: true,
    },
    Pair {
        source: Source::GupTest,
        what: "GUP-fast pin, small pages, 32 per call (both: a loop of calls over the region, timed once, pin only; Linux: gup_test PIN_FAST_BENCHMARK)",
        ours: "gup_loop_small_32",
        linux: "pin_fast_small_32_pin",
        linux_config: thp_capable,
        unit: "pages/s",
        to_unit: us_per_page_to_pages_per_s,
        higher_is_better: true,
    },
    Pair {
        source: Source::GupTest,
        what: "GUP-fast pin, THP, 32 per call (both: a loop of calls, timed once, pin only; Linux: gup_test PIN_FAST_BENCHMARK; on hash 16 MiB)",
        ours: "gup_loop_huge_32",
        linux: "pin_fast_huge_32_pin",
        linux_config: thp_capable,
        unit: "pages/s",
        to_unit: us_per_page_to_pages_per_s,
        higher_is_better: true,
    },
    Pair {
        source: Source::GupTest,
        what: "GUP-fast pin, small pages, 1 per call (both: a loop of 1-page calls, timed once, pin only; Linux: gup_test)",
        ours: "gup_loop_small_1",
        linux: "pin_fast_small_1_pin",
        linux_config: thp_capable,
        unit: "pages/s",
        to_unit: us_per_page_to_pages_per_s,
        higher_is_better: true,
    },
    Pair {
        source: Source::GupTest,
        what: "GUP-fast pin, THP, 1 per call (both: a loop of 1-page calls, timed once, pin only; Linux: gup_test)",
        ours: "gup_loop_huge_1",
        linux: "pin_fast_huge_1_pin",
        linux_config: thp_capable,
        unit: "pages/s",
        to_unit: us_per_page_to_pages_per_s,
        higher_is_better: true,
    },
];

/// Our median (on pseries, where Linux ran) for a comparison row;
/// `collapse_default_per_page` is the collapse Linux does by default on
/// this MMU (no IPI on radix, IPI on hash), per 64 KiB page.
fn ours_median(records: &[Record], mmu: &str, cpus: u32, name: &str) -> Option<f64> {
    if name == "collapse_default_per_page" {
        let which = if mmu == "radix" { "collapse_noipi" } else { "collapse_ipi" };
        return ours(records, "pseries", mmu, cpus, which).map(|r| r.median / 32.0);
    }
    ours(records, "pseries", mmu, cpus, name).map(|r| r.median)
}

/// The results the powernv section puts beside pseries's, with what each
/// is; a result only one MMU prints appears under that MMU only.
const BESIDE: &[(&str, &str)] = &[
    ("boot: reset to first self-test", "boot_to_first_selftest"),
    ("boot: reset to kernel entry (the firmware: skiboot vs VOF)", "boot_to_kernel_entry"),
    ("collapse of one 2 MiB region, no IPI", "collapse_noipi"),
    ("collapse of one 2 MiB region, IPI", "collapse_ipi"),
    ("hash collapse flush of 32 HPTEs (powernv: HPTE stores + tlbie; pseries: hcalls)", "hash_collapse_flush_32"),
    ("HPTE removal four at a time, per HPTE (pseries: H_BULK_REMOVE)", "h_bulk_remove_per_hpte"),
    ("HPTE removal one at a time, per HPTE (pseries: H_REMOVE)", "h_remove_per_hpte"),
    ("radix tlbie, per page", "tlbie_page"),
    ("radix tlbiel, per page", "tlbiel_page"),
    ("anonymous fault, per 64 KiB page", "fault_base_page"),
    ("THP fault, 2 MiB", "fault_thp"),
    ("munmap, per 64 KiB page", "unmap_base_page"),
    ("GUP-fast, 32 pages", "gup_fast_small_32"),
    ("GUP-slow, 32 pages", "gup_slow_small_32"),
];

/// The section on powernv: each [`BESIDE`] result of every (MMU, CPUs)
/// powernv ran that pseries ran too, both medians and their ratio, then
/// every powernv result. Empty without powernv records.
fn powernv_section(out: &mut String, records: &[Record]) {
    let configs = configs_of(records, "powernv");
    if configs.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Bare metal (powernv) beside pseries\n");
    let _ = writeln!(
        out,
        "The same kernel and command line on QEMU's `-M powernv9` under skiboot (OPAL), where the kernel \
         is the hypervisor, and on `-M pseries` under VOF, in this run. Under hash the kernel keeps its own \
         hashed page table on powernv and invalidates each entry with a store and a `tlbie`; on pseries it \
         asks the hypervisor (`H_BULK_REMOVE`, `H_REMOVE`). Boot times count from QEMU's reset, firmware \
         included: skiboot takes far longer than VOF to reach the kernel. powernv/pseries is the ratio of \
         the medians: above 1, powernv takes longer (us) or does more (pages/s).\n"
    );
    let _ = writeln!(out, "| operation | MMU | CPUs | powernv | pseries | unit | powernv/pseries |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for mmu in ["radix", "hash"] {
        for (what, name) in BESIDE {
            for &(_, cpus) in configs.iter().filter(|(m, _)| m == mmu) {
                let (Some(bare), Some(guest)) =
                    (ours(records, "powernv", mmu, cpus, name), ours(records, "pseries", mmu, cpus, name))
                else {
                    continue;
                };
                let ratio = if guest.median == 0.0 { "".into() } else { number(bare.median / guest.median) };
                let _ = writeln!(
                    out,
                    "| {what} | {mmu} | {cpus} | {} | {} | {} | {ratio} |",
                    number(bare.median),
                    number(guest.median),
                    bare.unit
                );
            }
        }
    }
    out.push('\n');
    all_results(out, records, "powernv", "###");
}

/// The (MMU, CPUs) configurations `machine` ran, sorted.
fn configs_of(records: &[Record], machine: &str) -> Vec<(String, u32)> {
    let mut configs: Vec<(String, u32)> =
        records.iter().filter(|r| r.machine == machine).map(|r| (r.mmu.clone(), r.cpus)).collect();
    configs.sort();
    configs.dedup();
    configs
}

/// Every result of `machine`, a row each, a column per configuration.
fn all_results(out: &mut String, records: &[Record], machine: &str, heading: &str) {
    let configs = configs_of(records, machine);
    let _ = writeln!(out, "{heading} All {machine} results (median [min..max])\n");
    let header: Vec<String> = configs.iter().map(|(m, c)| format!("{m} {c} CPU")).collect();
    let _ = writeln!(out, "| result | unit | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(configs.len()));
    let mut names: Vec<(&str, &str)> = Vec::new();
    for r in records.iter().filter(|r| r.machine == machine) {
        if !names.iter().any(|(n, _)| *n == r.name) {
            names.push((&r.name, &r.unit));
        }
    }
    for (name, unit) in names {
        let cells: Vec<String> = configs
            .iter()
            .map(|(m, c)| {
                ours(records, machine, m, *c, name)
                    .map_or("".into(), |r| format!("{} [{}..{}]", number(r.median), number(r.min), number(r.max)))
            })
            .collect();
        let _ = writeln!(out, "| {name} | {unit} | {} |", cells.join(" | "));
    }
}

/// The Markdown report: on pseries the comparison with Linux (where the
/// anchor or the gup_test anchor ran) and every result of ours, by
/// configuration, then Linux's gup_test results; then powernv beside
/// pseries (where powernv ran). `host`: where the numbers came from.
/// `gup_test`: bench/linux/gup-test.sh's results, `None` where it did not
/// run (the report says how to get them).
pub fn markdown(records: &[Record], linux: Option<&Value>, gup_test: Option<&Value>, host: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n\n{host}\n");
    let _ = writeln!(out, "Times are TCG-emulated (QEMU on the host above), medians over repetitions, and where a configuration was booted more than once (`make bench` boots each three times, in rounds), the median of the boots' medians, as for Linux; ratios compare numbers from the same run of `make bench`.\n");
    if linux.is_some() || gup_test.is_some() {
        comparison(&mut out, records, linux, gup_test);
    }
    floors_section(&mut out, records);
    all_results(&mut out, records, "pseries", "##");
    if let Some(gup_test) = gup_test {
        gup_test_section(&mut out, gup_test);
    }
    powernv_section(&mut out, records);
    out
}

/// The table of ours vs Linux: each [`PAIRS`] row whose Linux side ran.
fn comparison(out: &mut String, records: &[Record], linux: Option<&Value>, gup_test: Option<&Value>) {
    let anchor = linux.map(linux_medians).unwrap_or_default();
    let gup = gup_test.map(linux_medians).unwrap_or_default();
    let _ = writeln!(out, "## Ours vs Linux 6.1 on the same QEMU\n");
    if gup_test.is_some() {
        let _ = writeln!(
            out,
            "The GUP-fast pin rows set our in-kernel GUP-fast (`gup_loop_*`: a loop of calls of 32 or 1 pages \
             over a 512-page region, timed once, pin only: the unpin is timed apart) beside Linux's own `gup_test` \
             PIN_FAST_BENCHMARK on a kernel built with CONFIG_GUP_TEST (a loop of such calls over 512 MiB written \
             first, timed once by Linux, without the unpin), per page as pages per second.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "Linux's gup_test rows (GUP-fast pin timed inside Linux) need a Linux kernel built for them: \
             `make bench LINUX_GUP_TEST=1` builds it once.\n"
        );
    }
    let _ = writeln!(out, "| operation | MMU | CPUs | ours | Linux | unit | ours is |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for pair in PAIRS {
        let medians = match pair.source {
            Source::Anchor => &anchor,
            Source::GupTest => &gup,
        };
        for mmu in ["radix", "hash"] {
            for cpus in [1u32, 4] {
                let Some(ours) = ours_median(records, mmu, cpus, pair.ours) else { continue };
                let Some((theirs, _)) =
                    medians.get(&((pair.linux_config)(mmu).to_string(), cpus as u64, pair.linux.to_string()))
                else {
                    continue;
                };
                let theirs = (pair.to_unit)(*theirs);
                let factor = if pair.higher_is_better { ours / theirs } else { theirs / ours };
                let verdict = if factor >= 1.0 {
                    format!("{} x faster", number(factor))
                } else {
                    format!("{} x slower", number(1.0 / factor))
                };
                let _ = writeln!(
                    out,
                    "| {} | {mmu} | {cpus} | {} | {} | {} | {verdict} |",
                    pair.what,
                    number(ours),
                    number(theirs),
                    pair.unit
                );
            }
        }
    }
    out.push('\n');
}

/// The paths beside their floors, measured in the same boot: the fault,
/// the THP fault and collapse's per-page cost over zeroing 64 KiB, zeroing
/// 2 MiB and copying 64 KiB with the routines the paths use (the `floors`
/// benchmark), and the PMD recheck's share of GUP-fast. A floor is the sum
/// of the medians of its results that the boot printed, the first required
/// (`hpte_insert` only exists on hash): the second fault row adds to the
/// zeroing what no handler can leave out, the interrupt's round trip and,
/// on hash, the preload's HPTE insert.
const FLOORS: &[(&str, &str, &[&str])] = &[
    ("anonymous fault, per 64 KiB page / zeroing 64 KiB", "fault_base_page", &["zero_64k"]),
    (
        "anonymous fault, per 64 KiB page / zeroing 64 KiB + a trap's round trip (+ an HPTE insert on hash)",
        "fault_base_page",
        &["zero_64k", "trap_round_trip", "hpte_insert"],
    ),
    ("THP fault / zeroing 2 MiB", "fault_thp", &["zero_2m"]),
    ("collapse, per 64 KiB page / copying 64 KiB", "collapse_default_per_page", &["copy_64k"]),
];

/// The sum of `names`' medians in one configuration, if it printed the first.
fn floor_median(records: &[Record], mmu: &str, cpus: u32, names: &[&str]) -> Option<f64> {
    let median = |name: &str| ours(records, "pseries", mmu, cpus, name).map(|r| r.median);
    let (first, rest) = names.split_first()?;
    Some(median(first)? + rest.iter().filter_map(|name| median(name)).sum::<f64>())
}

fn floors_section(out: &mut String, records: &[Record]) {
    let configs: Vec<(String, u32)> = {
        let mut c: Vec<(String, u32)> =
            records.iter().filter(|r| r.machine == "pseries").map(|r| (r.mmu.clone(), r.cpus)).collect();
        c.sort_by_key(|(mmu, cpus)| (mmu != "radix", *cpus));
        c.dedup();
        c
    };
    let mut rows = Vec::new();
    for &(what, path, floor) in FLOORS {
        for (mmu, cpus) in &configs {
            let (Some(p), Some(f)) = (ours_median(records, mmu, *cpus, path), floor_median(records, mmu, *cpus, floor))
            else {
                continue;
            };
            rows.push(format!("| {what} | {mmu} | {cpus} | {} | {} | {} |", number(p), number(f), number(p / f)));
        }
    }
    for (mmu, cpus) in &configs {
        if let Some(ratio) = ours(records, "pseries", mmu, *cpus, "gup_fast_recheck_cost") {
            rows.push(format!(
                "| GUP-fast of 32 pages with the PMD recheck / without | {mmu} | {cpus} | | | {} |",
                number(ratio.median)
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "## The paths beside their floors (pseries)\n");
    let _ = writeln!(
        out,
        "Each path's median over its floor's, from the same boots: zeroing and copying with the routines the paths \
         use, on memory used as they use it (the faults' floors in the same repetitions as the faults, `fault`; \
         collapse's in `floors`). Above 1 is what the path adds to the work it cannot avoid; the second fault \
         row also counts, as unavoidable, an interrupt's round trip through the kernel's entry and exit (a `trap` \
         resumed through the exception table) and on hash the insert of one HPTE, each timed in the same \
         repetitions.\n"
    );
    let _ = writeln!(out, "| path / floor | MMU | CPUs | path (us) | floor (us) | ratio |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
    out.push('\n');
}

/// Every result of Linux's gup_test anchor (µs per page), a row each, a
/// column per configuration and `-smp` (medians over boots).
fn gup_test_section(out: &mut String, gup_test: &Value) {
    let medians = linux_medians(gup_test);
    let mut configs: Vec<(String, u64)> = medians.keys().map(|(c, s, _)| (c.clone(), *s)).collect();
    configs.sort();
    configs.dedup();
    let mut names: Vec<&str> = Vec::new();
    for (_, _, name) in medians.keys() {
        if name != "boot_qemu_wall" && !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return;
    }
    names.sort_by_key(|n| gup_test_order(n));
    let _ = writeln!(out, "\n## Linux gup_test (µs per page, median)\n");
    let _ = writeln!(
        out,
        "Linux 6.1's `gup_test` ioctls on a region of 64 KiB pages (`small`) or of THPs (`huge`), FOLL_WRITE, \
         32 or 1 pages per call: `pin_fast` = PIN_FAST_BENCHMARK (pin_user_pages_fast, then \
         unpin_user_pages), `gup_fast` = GUP_FAST_BENCHMARK (get_user_pages_fast, then put_page); \
         `_pin`/`_unpin` are Linux's own times of the two loops, `_ioctl` the whole system call on the timebase.\n"
    );
    let header: Vec<String> = configs.iter().map(|(c, s)| format!("{c} smp {s}")).collect();
    let _ = writeln!(out, "| result | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(configs.len()));
    for name in names {
        let cells: Vec<String> = configs
            .iter()
            .map(|(c, s)| medians.get(&(c.clone(), *s, name.to_string())).map_or("".into(), |(v, _)| number(*v)))
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
}

/// The order of gup_test's results: by ioctl (pin first), region (small
/// first), pages per call (32 first), then pin, unpin, ioctl.
fn gup_test_order(name: &str) -> (usize, usize, usize, usize, String) {
    let index = |options: &[&str]| options.iter().position(|o| name.contains(o)).unwrap_or(options.len());
    (
        index(&["pin_fast_", "gup_fast_"]),
        index(&["_small_", "_huge_"]),
        index(&["_32_", "_1_"]),
        ["_pin", "_unpin", "_ioctl"].iter().position(|o| name.ends_with(o)).unwrap_or(3),
        name.to_string(),
    )
}

/// The colours of a chart's series, in order.
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

fn colour(index: usize) -> &'static str {
    COLOURS[index % COLOURS.len()]
}

/// A chart's canvas: its size, the plot area's margins (the legend goes in
/// the right one) and the top of the y axis. What both charts share.
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    y_max: f64,
    /// The distance between two y ticks: a round number (1, 2 or 5 times a
    /// power of ten).
    y_step: f64,
    /// A logarithmic y axis from `y_min` (a power of ten) to `y_max`, for
    /// values that span orders of magnitude; linear from 0 otherwise.
    log: bool,
    y_min: f64,
}

/// A round step (1, 2 or 5 times a power of ten) that cuts `span` into
/// about four intervals.
fn round_step(span: f64) -> f64 {
    let rough = span.max(1e-9) / 4.0;
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|&step| step >= rough).unwrap_or(10.0 * power)
}

/// A tick's label: as many decimals as its step needs, no more.
fn tick_label(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    format!("{value:.decimals$}")
}

impl Frame {
    /// A 640 x 400 canvas whose y axis runs from 0 to the first round tick
    /// at or above `y_max` (with 5 % of headroom).
    fn new(margins: [f64; 4], y_max: f64) -> Frame {
        let [left, right, top, bottom] = margins;
        let y_step = round_step(y_max * 1.05);
        let y_max = ((y_max * 1.05 / y_step).ceil() * y_step).max(y_step);
        Frame { width: 640.0, height: 400.0, left, right, top, bottom, y_max, y_step, log: false, y_min: 0.0 }
    }

    /// A canvas with a logarithmic y axis spanning whole decades around
    /// `[low, high]` (both positive).
    fn new_log(margins: [f64; 4], low: f64, high: f64) -> Frame {
        let [left, right, top, bottom] = margins;
        let y_min = 10f64.powf(low.max(1e-12).log10().floor());
        let y_max = 10f64.powf(high.max(low).log10().ceil()).max(y_min * 10.0);
        Frame { width: 640.0, height: 400.0, left, right, top, bottom, y_max, y_step: 0.0, log: true, y_min }
    }

    /// The y ticks: round steps from 0, or 1, 2 and 5 of each decade.
    fn y_ticks(&self) -> Vec<(f64, String)> {
        if !self.log {
            let ticks = (self.y_max / self.y_step).round() as usize;
            return (0..=ticks).map(|i| self.y_step * i as f64).map(|y| (y, tick_label(y, self.y_step))).collect();
        }
        let mut ticks = Vec::new();
        let mut decade = self.y_min;
        while decade <= self.y_max * 1.000_001 {
            for m in [1.0, 2.0, 5.0] {
                let y = decade * m;
                if y <= self.y_max * 1.000_001 {
                    ticks.push((y, tick_label(y, decade.min(1.0))));
                }
            }
            decade *= 10.0;
        }
        ticks
    }

    fn x_end(&self) -> f64 {
        self.width - self.right
    }

    fn y_zero(&self) -> f64 {
        self.height - self.bottom
    }

    /// Where value `y` goes.
    fn py(&self, y: f64) -> f64 {
        let fraction = if self.log {
            (y.max(self.y_min).log10() - self.y_min.log10()) / (self.y_max.log10() - self.y_min.log10())
        } else {
            y / self.y_max
        };
        self.y_zero() - fraction * (self.height - self.top - self.bottom)
    }

    /// The SVG up to the data: background, title, both axes, y ticks at
    /// round numbers with grid lines, and the y axis's label.
    fn start(&self, title: &str, y_label: &str) -> String {
        let (left, top, x_end, y_zero) = (self.left, self.top, self.x_end(), self.y_zero());
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"15\">{title}</text>\n",
            self.width, self.height
        );
        let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{y_zero}\" x2=\"{x_end}\" y2=\"{y_zero}\" stroke=\"black\"/>");
        let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y_zero}\" stroke=\"black\"/>");
        for (y, label) in self.y_ticks() {
            let tick = self.py(y);
            let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>", left - 6.0, tick + 4.0);
            let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{tick}\" x2=\"{x_end}\" y2=\"{tick}\" stroke=\"#ddd\"/>");
        }
        let middle = (top + y_zero) / 2.0;
        let _ = writeln!(
            svg,
            "<text x=\"16\" y=\"{middle}\" transform=\"rotate(-90 16 {middle})\" text-anchor=\"middle\">{y_label}</text>"
        );
        svg
    }

    /// Series `index`'s legend entry, right of the plot: a line key, or a
    /// box for bars, and the label.
    fn legend(&self, svg: &mut String, index: usize, label: &str, bars: bool) {
        let (x, y, colour) = (self.x_end() + 10.0, self.top + 10.0 + index as f64 * 18.0, colour(index));
        if bars {
            let _ = writeln!(svg, "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"{colour}\"/>", y - 5.0);
        } else {
            let _ = writeln!(
                svg,
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                x + 20.0
            );
        }
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">{label}</text>", x + 26.0, y + 4.0);
    }
}

/// A point of a line chart: x, and the median with its spread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// A line chart of medians with their spread (min-max as a bar through each
/// point) on a log2 x axis of CPU counts; the y axis is logarithmic when
/// the values span more than a factor of 20. Points whose x (vCPUs) exceeds
/// `host_cores` are hollow and their part of the axis shaded: there the
/// vCPUs share the host's cores, and the times measure that too.
pub fn line_chart(title: &str, y_label: &str, series: &[(String, Vec<Point>)], host_cores: usize) -> String {
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let high = all().map(|p| p.max.max(p.median)).fold(0.0f64, f64::max);
    let low = all().map(|p| p.min.min(p.median)).filter(|&v| v > 0.0).fold(f64::INFINITY, f64::min);
    let margins = [70.0, 180.0, 40.0, 50.0];
    let frame = if low.is_finite() && high / low > 20.0 {
        Frame::new_log(margins, low, high)
    } else {
        Frame::new(margins, high)
    };
    let xs: Vec<f64> = all().map(|p| p.x).collect();
    let (x_min, x_max) =
        (xs.iter().cloned().fold(f64::INFINITY, f64::min).max(1.0), xs.iter().cloned().fold(1.0f64, f64::max));
    let span = (x_max.log2() - x_min.log2()).max(1.0);
    let px = |x: f64| frame.left + (x.log2() - x_min.log2()) / span * (frame.x_end() - frame.left);
    let mut svg = frame.start(title, y_label);
    let shared = |x: f64| host_cores > 0 && x > host_cores as f64;
    if xs.iter().any(|&x| shared(x)) {
        // From halfway between the host's core count and the next point on.
        let from = px((host_cores as f64).max(x_min)) + 8.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{from:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f2f2f2\"/>",
            frame.top,
            (frame.x_end() - from).max(0.0),
            frame.y_zero() - frame.top
        );
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\">vCPUs > {host_cores} host cores</text>",
            from + 4.0,
            frame.top + 12.0
        );
    }
    let mut ticks = xs.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for x in ticks {
        let _ =
            writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x}</text>", px(x), frame.y_zero() + 16.0);
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">CPUs (vCPUs)</text>",
        (frame.left + frame.x_end()) / 2.0,
        frame.height - 12.0
    );
    for (i, (label, points)) in series.iter().enumerate() {
        let path: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", px(p.x), frame.py(p.median))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            colour(i),
            path.join(" ")
        );
        for p in points {
            let (x, colour) = (px(p.x), colour(i));
            let (low, high) = (frame.py(p.min), frame.py(p.max));
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{low:.1}\" x2=\"{x:.1}\" y2=\"{high:.1}\" stroke=\"{colour}\" stroke-opacity=\"0.6\"/>"
            );
            let fill = if shared(p.x) { "white" } else { colour };
            let _ = writeln!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{fill}\" stroke=\"{colour}\"/>",
                frame.py(p.median)
            );
        }
        frame.legend(&mut svg, i, label, false);
    }
    let note_y = frame.top + 10.0 + series.len() as f64 * 18.0 + 10.0;
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{note_y}\" font-size=\"10\">dot: median; bar: min-max</text>",
        frame.x_end() + 10.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// A grouped bar chart: categories, each with one bar per series.
pub fn bar_chart(title: &str, y_label: &str, categories: &[String], series: &[(String, Vec<f64>)]) -> String {
    bars(title, y_label, categories, series, false)
}

/// A bar's value label, short enough for a narrow bar: whole numbers from
/// 10 up, one decimal below.
fn bar_label(value: f64) -> String {
    if value.abs() >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// A grouped bar chart with each bar's value written above it (so that a
/// zero, which draws no bar, still shows).
pub fn labelled_bar_chart(title: &str, y_label: &str, categories: &[String], series: &[(String, Vec<f64>)]) -> String {
    bars(title, y_label, categories, series, true)
}

fn bars(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
    label_values: bool,
) -> String {
    let y_max = series.iter().flat_map(|(_, v)| v.iter().cloned()).fold(0.0f64, f64::max);
    let frame = Frame::new([80.0, 150.0, 40.0, 60.0], y_max);
    let group = (frame.x_end() - frame.left) / categories.len().max(1) as f64;
    let bar = group * 0.8 / series.len().max(1) as f64;
    let mut svg = frame.start(title, y_label);
    for (c, category) in categories.iter().enumerate() {
        let x0 = frame.left + c as f64 * group + group * 0.1;
        for (s, (_, values)) in series.iter().enumerate() {
            let value = values.get(c).copied().unwrap_or(0.0);
            let top = frame.py(value);
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                x0 + s as f64 * bar,
                bar * 0.95,
                (frame.y_zero() - top).max(0.0),
                colour(s)
            );
            if label_values {
                let _ = writeln!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
                    x0 + s as f64 * bar + bar * 0.475,
                    top - 3.0,
                    bar_label(value)
                );
            }
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{category}</text>",
            x0 + group * 0.4,
            frame.y_zero() + 16.0
        );
    }
    for (s, (label, _)) in series.iter().enumerate() {
        frame.legend(&mut svg, s, label, true);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Collapse latency vs CPU count on pseries: radix without/with the IPI,
/// idle and against a CPU with interrupts off, and hash with its IPI.
pub fn collapse_chart(records: &[Record], host_cores: usize) -> String {
    let mut series = Vec::new();
    for (mmu, name, label) in [
        ("radix", "collapse_noipi", "radix, no IPI"),
        ("radix", "collapse_ipi", "radix, IPI"),
        ("radix", "collapse_noipi_busy", "radix, no IPI, busy CPU"),
        ("radix", "collapse_ipi_busy", "radix, IPI, busy CPU"),
        ("hash", "collapse_ipi", "hash, IPI"),
        ("hash", "collapse_ipi_busy", "hash, IPI, busy CPU"),
    ] {
        let mut points: Vec<Point> = records
            .iter()
            .filter(|r| r.machine == "pseries" && r.mmu == mmu && r.name == name)
            .map(|r| Point { x: r.cpus as f64, median: r.median / 1000.0, min: r.min / 1000.0, max: r.max / 1000.0 })
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        if !points.is_empty() {
            series.push((label.to_string(), points));
        }
    }
    line_chart("Collapse of one 2 MiB region", "ms (median, min-max)", &series, host_cores)
}

/// GUP-fast vs GUP-slow, pages per second, on pseries, `mmu`, `cpus` CPUs.
pub fn gup_chart(records: &[Record], mmu: &str, cpus: u32) -> String {
    let categories: Vec<String> =
        ["small_1", "small_32", "small_512", "huge_1", "huge_32", "huge_512"].map(String::from).to_vec();
    let series: Vec<(String, Vec<f64>)> = ["fast", "slow"]
        .iter()
        .map(|path| {
            let values = categories
                .iter()
                .map(|c| {
                    ours(records, "pseries", mmu, cpus, &format!("gup_{path}_{c}")).map_or(0.0, |r| r.median / 1e6)
                })
                .collect();
            (format!("GUP-{path}"), values)
        })
        .collect();
    bar_chart(&format!("GUP-fast vs GUP-slow ({mmu}, {cpus} CPU)"), "million pages/s", &categories, &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "KTAP version 1\n# BENCH {\"name\":\"fault_thp\",\"unit\":\"us\",\"min\":1000,\"median\":1200,\"max\":5000,\"reps\":20,\"mmu\":\"radix\",\"cpus\":\"4\"}\nok 1 bench.fault\n# BENCH {\"name\":\"collapse_ipi\",\"unit\":\"us\",\"min\":10,\"median\":20,\"max\":30,\"reps\":5,\"mmu\":\"radix\",\"cpus\":\"4\"}\r\n";

    #[test]
    fn parses_bench_lines_and_rejects_bad_ones() {
        let records = parse(CONSOLE, "pseries").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].name.as_str(), records[0].cpus, records[0].median), ("fault_thp", 4, 1200.0));
        assert!(parse("# BENCH {\"name\":\"x\"", "pseries").unwrap_err().contains("malformed"));
        assert!(parse("# BENCH {\"name\":\"x\",\"unit\":\"us\",\"min\":3,\"median\":2,\"max\":4,\"reps\":1,\"mmu\":\"radix\",\"cpus\":\"1\"}", "pseries").unwrap_err().contains("out of order"));
        assert!(parse("# BENCH {\"name\":\"x\",\"unit\":\"us\",\"min\":null,\"median\":2,\"max\":4,\"reps\":1,\"mmu\":\"radix\",\"cpus\":\"1\"}", "pseries").unwrap_err().contains("finite"));
        assert_eq!(missing(&records, &["fault_thp".into(), "tlbie_page".into()]), ["tlbie_page"]);
    }

    #[test]
    fn compares_with_linux_in_one_unit() {
        let records = parse("# BENCH {\"name\":\"fault_base_page\",\"unit\":\"us\",\"min\":9,\"median\":10,\"max\":11,\"reps\":3,\"mmu\":\"radix\",\"cpus\":\"1\"}\n# BENCH {\"name\":\"boot_to_first_selftest\",\"unit\":\"us\",\"min\":50000,\"median\":50000,\"max\":50000,\"reps\":1,\"mmu\":\"radix\",\"cpus\":\"1\"}", "pseries").unwrap();
        let linux = json!({"results": [
            {"config": "radix", "smp": 1, "boot": 0, "name": "fault_base_page", "unit": "us", "median": 20.0},
            {"config": "radix", "smp": 1, "boot": 1, "name": "fault_base_page", "unit": "us", "median": 30.0},
            {"config": "radix", "smp": 1, "boot": 2, "name": "fault_base_page", "unit": "us", "median": 25.0},
            {"config": "radix", "smp": 1, "boot": 0, "name": "boot_init_tb", "unit": "us", "median": 2500000.0}
        ]});
        let table = markdown(&records, Some(&linux), None, "machine: test");
        assert!(
            table.contains("| anonymous fault, per 64 KiB page | radix | 1 | 10.00 | 25.00 | us | 2.50 x faster |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| boot: reset to first test / to init | radix | 1 | 50000 | 2.500e6 | us | 50.00 x faster |"
            ),
            "{table}"
        );
        assert!(table.contains("| fault_base_page | us | 10.00 [9.00..11.00] |"), "{table}");
    }

    /// gup-test.sh's results.json shape: two boots of radix at -smp 1, one
    /// of hash16m at -smp 4.
    fn gup_test_json() -> Value {
        let row = |config: &str, smp: u64, boot: u64, name: &str, median: f64| {
            json!({"config": config, "smp": smp, "boot": boot, "name": name, "unit": "us",
                   "min": median, "median": median, "max": median, "reps": 10, "per": "page"})
        };
        json!({"metadata": {"kernel_version": "6.1.176-1"}, "results": [
            {"config": "radix", "smp": 1, "boot": 1, "name": "info", "mmu": "Radix"},
            row("radix", 1, 1, "boot_qemu_wall", 3.0),
            row("radix", 1, 1, "pin_fast_small_32_pin", 0.125),
            row("radix", 1, 2, "pin_fast_small_32_pin", 0.135),
            row("radix", 1, 1, "pin_fast_small_32_unpin", 0.08),
            row("radix", 1, 1, "gup_fast_small_32_pin", 0.07),
            row("radix", 1, 1, "pin_fast_huge_32_ioctl", 0.03),
            row("radix", 1, 1, "pin_fast_huge_32_pin", 0.02),
            row("radix", 1, 1, "pin_fast_small_1_pin", 0.4),
            row("hash16m", 4, 1, "pin_fast_huge_32_pin", 0.016),
            {"config": "hash16m", "smp": 4, "boot": 1, "name": "pin_fast_small_1_pin", "status": "failed"}
        ]})
    }

    #[test]
    fn gup_test_rows_compare_pins_per_page() {
        let records = vec![
            record("pseries", "radix", 1, "gup_loop_small_32", "pages/s", 1e7),
            record("pseries", "radix", 1, "gup_loop_huge_32", "pages/s", 4e7),
            record("pseries", "hash", 4, "gup_loop_huge_32", "pages/s", 4e7),
            record("pseries", "hash", 4, "gup_loop_small_1", "pages/s", 2e6),
            // Not compared: Linux ran on pseries only.
            record("powernv", "radix", 1, "gup_loop_small_32", "pages/s", 1.0),
        ];
        let gup = gup_test_json();
        let table = markdown(&records, None, Some(&gup), "host: test");
        let row = |what: &str, rest: &str| format!("| {what} | {rest} |");
        for expected in [
            // The median of the two boots' medians (0.125, 0.135): the upper one.
            row(
                "GUP-fast pin, small pages, 32 per call (both: a loop of calls over the region, timed once, pin only; Linux: gup_test PIN_FAST_BENCHMARK)",
                "radix | 1 | 1.000e7 | 7.407e6 | pages/s | 1.35 x faster",
            ),
            row(
                "GUP-fast pin, THP, 32 per call (both: a loop of calls, timed once, pin only; Linux: gup_test PIN_FAST_BENCHMARK; on hash 16 MiB)",
                "radix | 1 | 4.000e7 | 5.000e7 | pages/s | 1.25 x slower",
            ),
            // Ours on hash is set beside Linux's hash16m (THP there is 16 MiB).
            row(
                "GUP-fast pin, THP, 32 per call (both: a loop of calls, timed once, pin only; Linux: gup_test PIN_FAST_BENCHMARK; on hash 16 MiB)",
                "hash | 4 | 4.000e7 | 6.250e7 | pages/s | 1.56 x slower",
            ),
        ] {
            assert!(table.contains(&expected), "no `{expected}` in\n{table}");
        }
        // A failed Linux result and a result of ours without a Linux one give no row.
        assert!(
            !table.contains("1 per call (both: a loop of 1-page calls, timed once, pin only; Linux: gup_test) | hash")
        );
        assert!(!table.contains("make bench LINUX_GUP_TEST=1"), "{table}");
        // Every gup_test result in its own table, pin before unpin before ioctl,
        // small before huge, without the QEMU wall time.
        let section = table.split("## Linux gup_test (µs per page, median)").nth(1).expect("the section");
        assert!(section.contains("| result | hash16m smp 4 | radix smp 1 |"), "{section}");
        assert!(section.contains("| pin_fast_small_32_unpin |  | 0.080 |"), "{section}");
        assert!(section.contains("| pin_fast_huge_32_pin | 0.016 | 0.020 |"), "{section}");
        assert!(!section.contains("boot_qemu_wall") && !section.contains("| info |"), "{section}");
        let at = |name: &str| section.find(&format!("| {name} |")).unwrap_or_else(|| panic!("{name} in {section}"));
        assert!(at("pin_fast_small_32_pin") < at("pin_fast_small_32_unpin"));
        assert!(at("pin_fast_small_32_unpin") < at("pin_fast_small_1_pin"));
        assert!(at("pin_fast_small_1_pin") < at("pin_fast_huge_32_pin"));
        assert!(at("pin_fast_huge_32_pin") < at("pin_fast_huge_32_ioctl"));
        assert!(at("pin_fast_huge_32_ioctl") < at("gup_fast_small_32_pin"));
    }

    #[test]
    fn without_gup_test_the_report_says_how_to_get_it() {
        let records = vec![record("pseries", "radix", 1, "gup_fast_small_32", "pages/s", 1e7)];
        let linux = json!({"results": [
            {"config": "radix", "smp": 1, "boot": 1, "name": "vmsplice_16p_call", "unit": "us", "median": 2.0}
        ]});
        let table = markdown(&records, Some(&linux), None, "host: test");
        assert!(table.contains("`make bench LINUX_GUP_TEST=1` builds it once"), "{table}");
        assert!(table.contains("| GUP-fast (ours: 32 pages; Linux: vmsplice of 16, a syscall) | radix | 1 |"));
        assert!(!table.contains("PIN_FAST_BENCHMARK") && !table.contains("## Linux gup_test"), "{table}");
        // Neither Linux: no comparison at all.
        assert!(!markdown(&records, None, None, "host: test").contains("Ours vs Linux"));
    }

    #[test]
    fn y_ticks_fall_on_round_numbers() {
        assert_eq!(round_step(105.88), 50.0);
        assert_eq!(round_step(4.0), 1.0);
        assert_eq!(round_step(0.3), 0.1);
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(150.0, 50.0), "150");
        // The old axis's ticks at 26.47, 52.94...: now 0, 50, 100, 150.
        let point = |x: f64, y: f64| Point { x, median: y, min: y * 0.9, max: y * 1.05 };
        let chart = line_chart("t", "ms", &[("a".to_string(), vec![point(1.0, 96.25), point(2.0, 10.0)])], 2);
        for tick in [">0<", ">50<", ">100<"] {
            assert!(chart.contains(tick), "{tick} in {chart}");
        }
        assert!(!chart.contains(">26.47<"));
        assert!(!chart.contains("host cores"), "no point beyond the host's cores");
    }

    #[test]
    fn wide_spans_go_logarithmic_and_shared_cores_are_marked() {
        let point = |x: f64, y: f64| Point { x, median: y, min: y / 2.0, max: y * 2.0 };
        let series = [("a".to_string(), vec![point(1.0, 0.7), point(4.0, 20.0), point(8.0, 300.0)])];
        let chart = line_chart("t", "ms", &series, 2);
        // Decades from 0.1 to 1000, ticked at 1, 2 and 5 of each.
        for tick in [">0.1<", ">0.2<", ">0.5<", ">1<", ">10<", ">100<", ">1000<"] {
            assert!(chart.contains(tick), "{tick} in {chart}");
        }
        assert!(chart.contains("vCPUs > 2 host cores"), "{chart}");
        // 4 and 8 vCPUs on 2 cores: hollow; 1: filled.
        assert_eq!(chart.matches("fill=\"white\" stroke").count(), 2, "{chart}");
        // A spread bar per point.
        assert_eq!(chart.matches("stroke-opacity").count(), 3);
    }

    #[test]
    fn charts_are_svg_with_every_series() {
        let records = parse(CONSOLE, "pseries").unwrap();
        let chart = collapse_chart(&records, 2);
        assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
        assert!(chart.contains("radix, IPI") && !chart.contains("hash, IPI"));
        let bars = gup_chart(&records, "radix", 4);
        assert_eq!(bars.matches("<rect").count(), 1 + 12 + 2, "background, 6 x 2 bars, 2 legend keys");
        let names = expected("hash", 1, true);
        assert!(names.contains(&"h_remove_per_hpte".to_string()) && !names.contains(&"collapse_ipi_busy".to_string()));
    }

    #[test]
    fn boots_merge_into_the_median_of_their_medians() {
        let mut records = Vec::new();
        for (median, min, max) in [(10.0, 9.0, 30.0), (19.0, 8.0, 20.0), (11.0, 10.5, 12.0)] {
            let mut r = record("pseries", "radix", 1, "fault_base_page", "us", median);
            (r.min, r.max, r.reps) = (min, max, 20);
            records.push(r);
            // Another configuration in the same round stays apart.
            records.push(record("pseries", "hash", 1, "fault_base_page", "us", median * 2.0));
        }
        let merged = merge_boots(&records);
        assert_eq!(merged.len(), 2, "{merged:?}");
        let radix = &merged[0];
        assert_eq!(
            (radix.mmu.as_str(), radix.median, radix.min, radix.max, radix.reps),
            ("radix", 11.0, 8.0, 30.0, 60)
        );
        assert_eq!((merged[1].mmu.as_str(), merged[1].median), ("hash", 22.0));
        // An even count takes the upper median, as the anchor's summary.
        let two = merge_boots(&records[..4]);
        assert_eq!(two[0].median, 19.0);
    }

    #[test]
    fn floors_section_divides_each_path_by_its_floor() {
        let records = vec![
            record("pseries", "radix", 1, "fault_base_page", "us", 10.0),
            record("pseries", "radix", 1, "zero_64k", "us", 8.0),
            record("pseries", "radix", 1, "trap_round_trip", "us", 0.5),
            record("pseries", "hash", 4, "fault_base_page", "us", 12.0),
            record("pseries", "hash", 4, "zero_64k", "us", 8.0),
            record("pseries", "hash", 4, "trap_round_trip", "us", 1.0),
            record("pseries", "hash", 4, "hpte_insert", "us", 1.0),
            record("pseries", "radix", 1, "collapse_noipi", "us", 320.0),
            record("pseries", "radix", 1, "copy_64k", "us", 8.0),
            record("pseries", "hash", 4, "fault_thp", "us", 300.0),
            record("pseries", "hash", 4, "zero_2m", "us", 250.0),
            record("pseries", "hash", 4, "gup_fast_recheck_cost", "ratio", 1.01),
            // No floor in this boot: no row.
            record("pseries", "hash", 1, "fault_base_page", "us", 10.0),
            // powernv is not in this section.
            record("powernv", "radix", 1, "zero_64k", "us", 1.0),
        ];
        let table = markdown(&records, None, None, "host: test");
        let section = table.split("## The paths beside their floors (pseries)").nth(1).expect("the section");
        for expected in [
            "| anonymous fault, per 64 KiB page / zeroing 64 KiB | radix | 1 | 10.00 | 8.00 | 1.25 |",
            "| THP fault / zeroing 2 MiB | hash | 4 | 300 | 250 | 1.20 |",
            // The stricter floor: zeroing and the trap, and on hash the insert.
            "| anonymous fault, per 64 KiB page / zeroing 64 KiB + a trap's round trip (+ an HPTE insert on hash) \
             | radix | 1 | 10.00 | 8.50 | 1.18 |",
            "| anonymous fault, per 64 KiB page / zeroing 64 KiB + a trap's round trip (+ an HPTE insert on hash) \
             | hash | 4 | 12.00 | 10.00 | 1.20 |",
            // Collapse per page: the no-IPI collapse on radix, over 32 pages.
            "| collapse, per 64 KiB page / copying 64 KiB | radix | 1 | 10.00 | 8.00 | 1.25 |",
            "| GUP-fast of 32 pages with the PMD recheck / without | hash | 4 | | | 1.01 |",
        ] {
            assert!(section.contains(expected), "no `{expected}` in\n{section}");
        }
        assert!(!section.split("\n## ").next().unwrap().contains("| hash | 1 |"), "{section}");
    }

    fn record(machine: &str, mmu: &str, cpus: u32, name: &str, unit: &str, median: f64) -> Record {
        Record {
            machine: machine.into(),
            mmu: mmu.into(),
            cpus,
            name: name.into(),
            unit: unit.into(),
            min: median / 2.0,
            median,
            max: median * 2.0,
            reps: 20,
        }
    }

    #[test]
    fn record_json_names_the_machine_and_reads_back() {
        let bare = record("powernv", "hash", 4, "hash_collapse_flush_32", "us", 40.0);
        let value = bare.to_json();
        assert_eq!(value["machine"], "powernv");
        assert_eq!(value["cpus"], 4, "a number in results.json, as before");
        assert_eq!(Record::from_json(&value, DEFAULT_MACHINE), Ok(bare.clone()));
        // results.json from before the machine field: every record a pseries one.
        let mut old = value.clone();
        old.as_object_mut().unwrap().remove("machine");
        let read = Record::from_json(&old, DEFAULT_MACHINE).unwrap();
        assert_eq!((read.machine.as_str(), read.name.as_str(), read.cpus), ("pseries", "hash_collapse_flush_32", 4));
        let mut bad = value;
        bad["cpus"] = json!(-1);
        assert_eq!(Record::from_json(&bad, DEFAULT_MACHINE), Err("with a bad cpus".into()));
    }

    #[test]
    fn bench_lines_take_the_boots_machine() {
        let records = parse(CONSOLE, "powernv").unwrap();
        assert!(records.iter().all(|r| r.machine == "powernv"), "{records:?}");
        let other = "# BENCH {\"name\":\"x\",\"unit\":\"us\",\"min\":1,\"median\":2,\"max\":4,\"reps\":1,\"mmu\":\"radix\",\"cpus\":\"1\",\"machine\":\"pseries\"}";
        assert!(parse(other, "powernv").unwrap_err().contains("of machine pseries in a powernv boot"));
        assert_eq!(parse(other, "pseries").unwrap()[0].machine, "pseries");
    }

    /// Both machines at 1 and 4 CPUs on both MMUs, pseries also at 2.
    fn both_machines() -> Vec<Record> {
        let mut records = Vec::new();
        for (machine, scale) in [("pseries", 1.0), ("powernv", 2.0)] {
            for mmu in ["radix", "hash"] {
                for cpus in [1, 2, 4] {
                    if machine == "powernv" && cpus == 2 {
                        continue;
                    }
                    let entry = if machine == "powernv" { 1_000_000.0 } else { 1000.0 };
                    records.push(record(machine, mmu, cpus, "boot_to_kernel_entry", "us", entry));
                    records.push(record(machine, mmu, cpus, "collapse_ipi", "us", 700.0 * scale));
                    records.push(record(machine, mmu, cpus, "gup_fast_small_32", "pages/s", 8e6 / scale));
                    let flush = if mmu == "radix" { "tlbie_page" } else { "hash_collapse_flush_32" };
                    records.push(record(machine, mmu, cpus, flush, "us", 30.0 * scale * cpus as f64));
                }
            }
        }
        records
    }

    #[test]
    fn powernv_stands_beside_pseries_with_ratios() {
        let table = markdown(&both_machines(), None, None, "host: test");
        let section = table.split("## Bare metal (powernv) beside pseries").nth(1).expect("the section");
        for row in [
            "| boot: reset to kernel entry (the firmware: skiboot vs VOF) | radix | 1 | 1.000e6 | 1000 | us | 1000 |",
            "| collapse of one 2 MiB region, IPI | hash | 4 | 1400 | 700 | us | 2.00 |",
            "| hash collapse flush of 32 HPTEs (powernv: HPTE stores + tlbie; pseries: hcalls) | hash | 4 | 240 | 120 | us | 2.00 |",
            "| radix tlbie, per page | radix | 1 | 60.00 | 30.00 | us | 2.00 |",
            "| GUP-fast, 32 pages | radix | 4 | 4.000e6 | 8.000e6 | pages/s | 0.500 |",
        ] {
            assert!(section.contains(row), "no `{row}` in\n{section}");
        }
        // Only what both machines ran: pseries's 2-CPU boots have no partner, and a
        // result appears only under the MMU that prints it.
        assert!(!section.contains("| radix | 2 |") && !section.contains("tlbie, per page | hash"), "{section}");
        assert!(!section
            .contains("hash collapse flush of 32 HPTEs (powernv: HPTE stores + tlbie; pseries: hcalls) | radix"));
        // radix rows first, each result at 1 then 4 CPUs.
        let (radix, hash) = (section.find("| radix | 1 |").unwrap(), section.find("| hash | 1 |").unwrap());
        assert!(radix < hash && section.find("IPI | radix | 1 |") < section.find("IPI | radix | 4 |"));
        assert!(section.contains(
            "### All powernv results (median [min..max])\n\n| result | unit | hash 1 CPU | hash 4 CPU | radix 1 CPU | radix 4 CPU |"
        ));
        // pseries's table keeps its shape: pseries's configurations only.
        let pseries = table.split("## All pseries results").nth(1).unwrap().split("\n\n").nth(1).unwrap();
        assert!(
            pseries.starts_with(
                "| result | unit | hash 1 CPU | hash 2 CPU | hash 4 CPU | radix 1 CPU | radix 2 CPU | radix 4 CPU |"
            ),
            "{pseries}"
        );
        assert!(
            pseries.contains("| collapse_ipi | us | 700 [350..1400] |") && !pseries.contains("1.000e6"),
            "{pseries}"
        );
    }

    #[test]
    fn without_powernv_there_is_no_powernv_section_and_charts_stay_pseries() {
        let pseries: Vec<Record> = both_machines().into_iter().filter(|r| r.machine == "pseries").collect();
        let table = markdown(&pseries, None, None, "host: test");
        assert!(!table.contains("powernv") && table.ends_with("|\n"), "{table}");
        let both = both_machines();
        assert_eq!(collapse_chart(&both, 2), collapse_chart(&pseries, 2));
        assert_eq!(gup_chart(&both, "radix", 1), gup_chart(&pseries, "radix", 1));
    }
}
