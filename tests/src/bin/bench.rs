//! `bench`: what `make bench` runs. Boots the kernel with `bench=all` on
//! both MMUs, on pseries at 1, 2, 4 and 8 CPUs and on powernv (bare metal
//! under skiboot) at 1 and 4 (one boot at a time: the host is the clock's
//! noise), three boots of each configuration in three rounds over all of
//! them, each result the median of its boots' medians as the anchor's
//! (`bench::merge_boots`; only the first round's 1-CPU boots run the
//! self-tests, for their run time); runs the Linux anchor
//! (bench/linux/run.sh) and Linux's own gup_test (bench/linux/gup-test.sh:
//! with `--linux-gup-test` it builds its kernel first if needed; without,
//! it runs only if that kernel is built), and writes bench/results.json,
//! bench/results.md and two SVG plots (pseries).
//!
//! `--quick`: two boots (radix, 2 CPUs, 3 repetitions: pseries, then
//! powernv, about a second more), no Linux, output in build/bench-quick/;
//! fails unless every expected result is there and well-formed (what
//! `make test` checks).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use harness::bench::{self, Record};
use harness::image;
use harness::judge;
use harness::qemu::{self, BootConfig, MachineType};
use serde_json::{json, Value};

struct Run {
    /// Machine, MMU, CPUs; in this order, pseries first.
    configs: Vec<(MachineType, &'static str, u32)>,
    /// Boots of each configuration, one per round over all of them: a
    /// stretch of slow host then falls on one boot of several
    /// configurations rather than on every boot of one.
    rounds: u32,
    reps: u32,
    linux: bool,
    /// Build Linux's gup_test kernel if it is not built yet.
    gup_test_build: bool,
    out: PathBuf,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(bad) = args.iter().find(|a| !["--quick", "--no-linux", "--linux-gup-test"].contains(&a.as_str())) {
        eprintln!("bench: unknown argument '{bad}' (usage: bench [--quick] [--no-linux] [--linux-gup-test])");
        return ExitCode::from(2);
    }
    let root = image::workspace_root();
    let run = if quick {
        let configs = vec![(MachineType::Pseries, "radix", 2), (MachineType::Powernv, "radix", 2)];
        Run { configs, rounds: 1, reps: 3, linux: false, gup_test_build: false, out: root.join("build/bench-quick") }
    } else {
        let on = |machine: MachineType, cpus: &'static [u32]| {
            ["radix", "hash"].into_iter().flat_map(move |mmu| cpus.iter().map(move |&c| (machine, mmu, c)))
        };
        let configs = on(MachineType::Pseries, &[1, 2, 4, 8]).chain(on(MachineType::Powernv, &[1, 4])).collect();
        Run {
            configs,
            rounds: 3,
            reps: 20,
            linux: !args.iter().any(|a| a == "--no-linux"),
            gup_test_build: args.iter().any(|a| a == "--linux-gup-test"),
            out: root.join("bench"),
        }
    };
    match bench_all(&run, &root) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn bench_all(run: &Run, root: &Path) -> Result<(), String> {
    let kernel = image::kernel_image()?;
    let qemu = qemu::binary_from_env();
    let qemu_version = qemu::version(&qemu)?;
    let mut records: Vec<Record> = Vec::new();
    let boots = (0..run.rounds).flat_map(|round| run.configs.iter().map(move |&config| (round, config)));
    for (round, (machine, mmu, cpus)) in boots {
        // The first round's 1-CPU boots also run the self-tests, for their run time.
        let selftests = cpus == 1 && round == 0;
        let mut config = BootConfig::new(&qemu, &kernel);
        config.machine_type = machine;
        config.firmware = machine.default_firmware();
        config.cpus = cpus;
        // The same on both machines (skiboot needs 1 GiB or more).
        config.memory_mib = 2048;
        config.timeout = Some(Duration::from_secs(600));
        config.append =
            format!("mmu={mmu} bench=all bench_reps={} selftest={}", run.reps, if selftests { "all" } else { "none" });
        config.check()?;
        let what = format!("{machine} {mmu} {cpus}-CPU, round {} of {}", round + 1, run.rounds);
        eprintln!("bench: {what}: {}", config.display_command());
        let output = qemu::run(&config, &mut |_, _| {}).map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
        let verdict = judge::judge(&output, config.machine());
        if !verdict.passed() {
            return Err(format!("the {what} boot failed: {}\n{}", verdict.reason(), output.transcript));
        }
        let found = bench::parse(&output.console, machine.name())?;
        let missing = bench::missing(&found, &bench::expected(mmu, cpus, selftests));
        if !missing.is_empty() {
            return Err(format!("the {what} boot printed no {}\n{}", missing.join(", "), output.console));
        }
        eprintln!("bench: {what}: {} results in {:.1} s", found.len(), output.elapsed.as_secs_f64());
        records.extend(found);
    }
    let records = bench::merge_boots(&records);
    let linux = if run.linux { Some(run_linux(root)?) } else { None };
    let gup_test = if run.linux { run_gup_test(root, run.gup_test_build)? } else { None };
    let host = host_description(&qemu_version);
    std::fs::create_dir_all(&run.out).map_err(|e| format!("{}: {e}", run.out.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(run.out.join(name), text).map_err(|e| format!("{}: {e}", run.out.join(name).display()))
    };
    let results = json!({
        "host": host,
        "qemu": qemu_version,
        "reps": run.reps,
        "boots": run.rounds,
        "ours": records.iter().map(Record::to_json).collect::<Vec<_>>(),
        "linux": linux.clone().unwrap_or(Value::Null),
        "linux_gup_test": gup_test.clone().unwrap_or(Value::Null),
    });
    write("results.json", &serde_json::to_string_pretty(&results).expect("JSON values serialise"))?;
    write("results.md", &bench::markdown(&records, linux.as_ref(), gup_test.as_ref(), &host))?;
    let host_cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    write("collapse.svg", &bench::collapse_chart(&records, host_cores))?;
    let (_, gup_mmu, gup_cpus) = run.configs[0];
    write("gup.svg", &bench::gup_chart(&records, gup_mmu, gup_cpus))?;
    eprintln!("bench: wrote {}/results.json, results.md, collapse.svg, gup.svg", run.out.display());
    Ok(())
}

/// Runs bench/linux/run.sh and reads what it wrote.
fn run_linux(root: &Path) -> Result<Value, String> {
    let script = root.join("bench/linux/run.sh");
    eprintln!("bench: Linux anchor: {}", script.display());
    let mut command = Command::new("bash");
    command.arg(&script).current_dir(root);
    // Three boots per configuration (the anchor's method), unless asked otherwise.
    if std::env::var_os("BOOTS").is_none() {
        command.env("BOOTS", "3");
    }
    let status = command.status().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", script.display()));
    }
    let path = root.join("build/linux-anchor/results.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The exit status of bench/linux/gup-test.sh --if-built when its kernel is
/// not built (it has said so, with how to build it).
const GUP_TEST_NOT_BUILT: i32 = 10;

/// Runs bench/linux/gup-test.sh (`build`: building its kernel if needed;
/// otherwise only if it is built) and reads what it wrote; `None` if it
/// did not run.
fn run_gup_test(root: &Path, build: bool) -> Result<Option<Value>, String> {
    let script = root.join("bench/linux/gup-test.sh");
    eprintln!("bench: Linux gup_test: {}", script.display());
    let mut command = Command::new("bash");
    command.arg(&script).current_dir(root);
    if !build {
        command.arg("--if-built");
    }
    // Three boots per configuration, as the anchor.
    if std::env::var_os("BOOTS").is_none() {
        command.env("BOOTS", "3");
    }
    let status = command.status().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !build && status.code() == Some(GUP_TEST_NOT_BUILT) {
        return Ok(None);
    }
    if !status.success() {
        return Err(format!("{} failed ({status})", script.display()));
    }
    let path = root.join("build/linux-anchor/gup-test.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

/// The host and QEMU the numbers came from.
fn host_description(qemu_version: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("Host: {cpu}, {cores} cores; {qemu_version}; measured {date}.")
}
