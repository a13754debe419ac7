//! Benchmark results: the kernel's `# BENCH {json}` lines, Linux's anchor
//! (bench/linux), and what `make bench` makes of them: bench/results.json,
//! a Markdown table (ours, Linux, ratio) and two SVG plots. Pure functions,
//! so the formats are unit-tested; `src/bin/bench.rs` does the boots.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

/// One result of one boot.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
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
        json!({"mmu": self.mmu, "cpus": self.cpus, "name": self.name, "unit": self.unit,
               "min": self.min, "median": self.median, "max": self.max, "reps": self.reps})
    }
}

/// The results a boot with `bench=all` must print, by MMU.
pub fn expected(mmu: &str, cpus: u32, selftests: bool) -> Vec<String> {
    let mut names: Vec<String> = [
        "boot_to_first_selftest",
        "boot_to_kernel_entry",
        "fault_base_page",
        "fault_thp",
        "zero_64k",
        "zero_2m",
        "copy_64k",
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
        _ => names.extend(["hash_collapse_flush_32", "h_bulk_remove_per_hpte", "h_remove_per_hpte"].map(String::from)),
    }
    names
}

/// The `# BENCH` lines of a console, checked: each a JSON object with a
/// name, a unit, finite min <= median <= max, reps, mmu and cpus.
pub fn parse(console: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for line in console.lines() {
        let Some(json) = line.trim_end_matches('\r').strip_prefix("# BENCH ") else { continue };
        let value: Value = serde_json::from_str(json).map_err(|e| format!("malformed BENCH line ({e}): {line}"))?;
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("BENCH line without \"{key}\": {line}"))
        };
        let number = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("BENCH line without a finite \"{key}\": {line}"))
        };
        let record = Record {
            mmu: text("mmu")?,
            cpus: text("cpus")?.parse().map_err(|_| format!("BENCH line with a bad cpus: {line}"))?,
            name: text("name")?,
            unit: text("unit")?,
            min: number("min")?,
            median: number("median")?,
            max: number("max")?,
            reps: value
                .get("reps")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("BENCH line without reps: {line}"))?,
        };
        if !(record.min <= record.median && record.median <= record.max) || record.reps == 0 {
            return Err(format!("BENCH line out of order (min <= median <= max, reps > 0): {line}"));
        }
        records.push(record);
    }
    Ok(records)
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

fn ours<'a>(records: &'a [Record], mmu: &str, cpus: u32, name: &str) -> Option<&'a Record> {
    records.iter().find(|r| r.mmu == mmu && r.cpus == cpus && r.name == name)
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

/// One comparison: an operation of ours against Linux's, converted to one
/// unit where needed (`scale` multiplies Linux's median). `higher_is_better`
/// for rates.
struct Pair {
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

const PAIRS: &[Pair] = &[
    Pair {
        what: "boot: reset to first test / to init",
        ours: "boot_to_first_selftest",
        linux: "boot_init_tb",
        linux_config: same,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        what: "anonymous fault, per 64 KiB page",
        ours: "fault_base_page",
        linux: "fault_base_page",
        linux_config: same,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        what: "THP fault (Linux on hash: 16 MiB)",
        ours: "fault_thp",
        linux: "fault_thp",
        linux_config: thp_capable,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        what: "collapse, per 64 KiB page (Linux on hash: of 16 MiB)",
        ours: "collapse_default_per_page",
        linux: "collapse_per_base_page",
        linux_config: thp_capable,
        unit: "us",
        to_unit: identity,
        higher_is_better: false,
    },
    Pair {
        what: "GUP-fast (ours: 32 pages; Linux: vmsplice of 16, a syscall)",
        ours: "gup_fast_small_32",
        linux: "vmsplice_16p_call",
        linux_config: same,
        unit: "pages/s",
        to_unit: call_of_16_to_pages_per_s,
        higher_is_better: true,
    },
    Pair {
        what: "GUP-slow (ours: 32 pages; Linux: process_vm_readv of 16, with copy)",
        ours: "gup_slow_small_32",
        linux: "gupslow_pvreadv_16p_call",
        linux_config: same,
        unit: "pages/s",
        to_unit: call_of_16_to_pages_per_s,
        higher_is_better: true,
    },
];

/// Our median for a comparison row; `collapse_default_per_page` is the
/// collapse Linux does by default on this MMU (no IPI on radix, IPI on
/// hash), per 64 KiB page.
fn ours_median(records: &[Record], mmu: &str, cpus: u32, name: &str) -> Option<f64> {
    if name == "collapse_default_per_page" {
        let which = if mmu == "radix" { "collapse_noipi" } else { "collapse_ipi" };
        return ours(records, mmu, cpus, which).map(|r| r.median / 32.0);
    }
    ours(records, mmu, cpus, name).map(|r| r.median)
}

/// The Markdown report: the comparison with Linux (where the anchor ran),
/// then every result of ours, by configuration.
pub fn markdown(records: &[Record], linux: Option<&Value>, machine: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n\n{machine}\n");
    let _ = writeln!(out, "Times are TCG-emulated (QEMU on the host above), medians over repetitions; ratios compare numbers from the same run of `make bench`.\n");
    if let Some(linux) = linux {
        let medians = linux_medians(linux);
        let _ = writeln!(out, "## Ours vs Linux 6.1 on the same QEMU\n");
        let _ = writeln!(out, "| operation | MMU | CPUs | ours | Linux | unit | ours is |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for pair in PAIRS {
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
    let mut configs: Vec<(String, u32)> = records.iter().map(|r| (r.mmu.clone(), r.cpus)).collect();
    configs.sort();
    configs.dedup();
    let _ = writeln!(out, "## All results (median [min..max])\n");
    let header: Vec<String> = configs.iter().map(|(m, c)| format!("{m} {c} CPU")).collect();
    let _ = writeln!(out, "| result | unit | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(configs.len()));
    let mut names: Vec<(&str, &str)> = Vec::new();
    for r in records {
        if !names.iter().any(|(n, _)| *n == r.name) {
            names.push((&r.name, &r.unit));
        }
    }
    for (name, unit) in names {
        let cells: Vec<String> = configs
            .iter()
            .map(|(m, c)| {
                ours(records, m, *c, name)
                    .map_or("".into(), |r| format!("{} [{}..{}]", number(r.median), number(r.min), number(r.max)))
            })
            .collect();
        let _ = writeln!(out, "| {name} | {unit} | {} |", cells.join(" | "));
    }
    out
}

/// A line chart: `series` of (label, [(x, y)]) on a log2 x axis of CPU counts.
pub fn line_chart(title: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let (width, height, left, right, top, bottom) = (640.0, 400.0, 70.0, 180.0, 40.0, 50.0);
    let xs: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).collect();
    let y_max = series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let (x_min, x_max) =
        (xs.iter().cloned().fold(f64::INFINITY, f64::min).max(1.0), xs.iter().cloned().fold(1.0f64, f64::max));
    let span = (x_max.log2() - x_min.log2()).max(1.0);
    let px = |x: f64| left + (x.log2() - x_min.log2()) / span * (width - left - right);
    let py = |y: f64| height - bottom - y / y_max * (height - top - bottom);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" font-size=\"15\">{title}</text>\n",
        left
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        height - bottom,
        width - right,
        height - bottom
    );
    let _ =
        writeln!(svg, "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>", height - bottom);
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        let _ =
            writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", left - 6.0, py(y) + 4.0, number(y));
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#ddd\"/>",
            py(y),
            width - right
        );
    }
    let mut ticks = xs.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for x in ticks {
        let _ =
            writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", px(x), height - bottom + 16.0, x);
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">CPUs</text>",
        (left + width - right) / 2.0,
        height - 12.0
    );
    let _ = writeln!(
        svg,
        "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{y_label}</text>",
        (top + height - bottom) / 2.0,
        (top + height - bottom) / 2.0
    );
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let path: Vec<String> = points.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (x, y) in points {
            let _ = writeln!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>", px(*x), py(*y));
        }
        let ly = top + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            width - right + 10.0,
            width - right + 30.0
        );
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">{label}</text>", width - right + 36.0, ly + 4.0);
    }
    svg.push_str("</svg>\n");
    svg
}

/// A grouped bar chart: categories, each with one bar per series.
pub fn bar_chart(title: &str, y_label: &str, categories: &[String], series: &[(String, Vec<f64>)]) -> String {
    let (width, height, left, right, top, bottom) = (640.0, 400.0, 80.0, 150.0, 40.0, 60.0);
    let y_max = series.iter().flat_map(|(_, v)| v.iter().cloned()).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let group = (width - left - right) / categories.len().max(1) as f64;
    let bar = group * 0.8 / series.len().max(1) as f64;
    let py = |y: f64| height - bottom - y / y_max * (height - top - bottom);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"15\">{title}</text>\n"
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        height - bottom,
        width - right,
        height - bottom
    );
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        let _ =
            writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", left - 6.0, py(y) + 4.0, number(y));
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#ddd\"/>",
            py(y),
            width - right
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{y_label}</text>",
        (top + height - bottom) / 2.0,
        (top + height - bottom) / 2.0
    );
    for (c, category) in categories.iter().enumerate() {
        let x0 = left + c as f64 * group + group * 0.1;
        for (s, (_, values)) in series.iter().enumerate() {
            let value = values.get(c).copied().unwrap_or(0.0);
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                x0 + s as f64 * bar,
                py(value),
                bar * 0.95,
                (height - bottom - py(value)).max(0.0),
                colours[s % colours.len()]
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{category}</text>",
            x0 + group * 0.4,
            height - bottom + 16.0
        );
    }
    for (s, (label, _)) in series.iter().enumerate() {
        let ly = top + 10.0 + s as f64 * 18.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"{}\"/>",
            width - right + 10.0,
            ly - 8.0,
            colours[s % colours.len()]
        );
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">{label}</text>", width - right + 30.0, ly + 1.0);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Collapse latency vs CPU count: radix without/with the IPI, idle and
/// against a CPU with interrupts off, and hash with its IPI.
pub fn collapse_chart(records: &[Record]) -> String {
    let mut series = Vec::new();
    for (mmu, name, label) in [
        ("radix", "collapse_noipi", "radix, no IPI"),
        ("radix", "collapse_ipi", "radix, IPI"),
        ("radix", "collapse_noipi_busy", "radix, no IPI, busy CPU"),
        ("radix", "collapse_ipi_busy", "radix, IPI, busy CPU"),
        ("hash", "collapse_ipi", "hash, IPI"),
        ("hash", "collapse_ipi_busy", "hash, IPI, busy CPU"),
    ] {
        let mut points: Vec<(f64, f64)> = records
            .iter()
            .filter(|r| r.mmu == mmu && r.name == name)
            .map(|r| (r.cpus as f64, r.median / 1000.0))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            series.push((label.to_string(), points));
        }
    }
    line_chart("Collapse of one 2 MiB region (median)", "ms", &series)
}

/// GUP-fast vs GUP-slow, pages per second, on `mmu` with `cpus` CPUs.
pub fn gup_chart(records: &[Record], mmu: &str, cpus: u32) -> String {
    let categories: Vec<String> =
        ["small_1", "small_32", "small_512", "huge_1", "huge_32", "huge_512"].map(String::from).to_vec();
    let series: Vec<(String, Vec<f64>)> = ["fast", "slow"]
        .iter()
        .map(|path| {
            let values = categories
                .iter()
                .map(|c| ours(records, mmu, cpus, &format!("gup_{path}_{c}")).map_or(0.0, |r| r.median / 1e6))
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
        let records = parse(CONSOLE).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].name.as_str(), records[0].cpus, records[0].median), ("fault_thp", 4, 1200.0));
        assert!(parse("# BENCH {\"name\":\"x\"").unwrap_err().contains("malformed"));
        assert!(parse("# BENCH {\"name\":\"x\",\"unit\":\"us\",\"min\":3,\"median\":2,\"max\":4,\"reps\":1,\"mmu\":\"radix\",\"cpus\":\"1\"}").unwrap_err().contains("out of order"));
        assert!(parse("# BENCH {\"name\":\"x\",\"unit\":\"us\",\"min\":null,\"median\":2,\"max\":4,\"reps\":1,\"mmu\":\"radix\",\"cpus\":\"1\"}").unwrap_err().contains("finite"));
        assert_eq!(missing(&records, &["fault_thp".into(), "tlbie_page".into()]), ["tlbie_page"]);
    }

    #[test]
    fn compares_with_linux_in_one_unit() {
        let records = parse("# BENCH {\"name\":\"fault_base_page\",\"unit\":\"us\",\"min\":9,\"median\":10,\"max\":11,\"reps\":3,\"mmu\":\"radix\",\"cpus\":\"1\"}\n# BENCH {\"name\":\"boot_to_first_selftest\",\"unit\":\"us\",\"min\":50000,\"median\":50000,\"max\":50000,\"reps\":1,\"mmu\":\"radix\",\"cpus\":\"1\"}").unwrap();
        let linux = json!({"results": [
            {"config": "radix", "smp": 1, "boot": 0, "name": "fault_base_page", "unit": "us", "median": 20.0},
            {"config": "radix", "smp": 1, "boot": 1, "name": "fault_base_page", "unit": "us", "median": 30.0},
            {"config": "radix", "smp": 1, "boot": 2, "name": "fault_base_page", "unit": "us", "median": 25.0},
            {"config": "radix", "smp": 1, "boot": 0, "name": "boot_init_tb", "unit": "us", "median": 2500000.0}
        ]});
        let table = markdown(&records, Some(&linux), "machine: test");
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

    #[test]
    fn charts_are_svg_with_every_series() {
        let records = parse(CONSOLE).unwrap();
        let chart = collapse_chart(&records);
        assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
        assert!(chart.contains("radix, IPI") && !chart.contains("hash, IPI"));
        let bars = gup_chart(&records, "radix", 4);
        assert_eq!(bars.matches("<rect").count(), 1 + 12 + 2, "background, 6 x 2 bars, 2 legend keys");
        let names = expected("hash", 1, true);
        assert!(names.contains(&"h_remove_per_hpte".to_string()) && !names.contains(&"collapse_ipi_busy".to_string()));
    }
}
