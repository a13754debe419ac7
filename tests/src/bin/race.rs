//! `race`: what `make race` runs. Boots the kernel at 4 CPUs on both MMUs,
//! as a pseries guest and on bare-metal powernv, with the race's
//! self-tests (deterministic `race.*`, widened `stress.*` over every knob
//! combination, `collapse.*`) and the benchmarks of the fixes' costs, runs
//! the loom models, and prints one verdict table, also written to
//! build/race/verdicts.{md,json}, with a plot of the stress counts
//! (verdicts.svg).

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use harness::qemu::{self, BootConfig, MachineType};
use harness::race::{self, BootVerdicts};
use harness::{image, judge};

fn main() -> ExitCode {
    let extra: Vec<String> = std::env::args().skip(1).collect();
    if let Some(bad) = extra.iter().find(|a| !a.contains('=')) {
        eprintln!("race: '{bad}' is not a kernel option (usage: race [name=value ...], e.g. race_seed=0x2a stress_rounds=100)");
        return ExitCode::from(2);
    }
    match run(&extra.join(" ")) {
        Ok(all_as_expected) if all_as_expected => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("race: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(extra: &str) -> Result<bool, String> {
    let started = Instant::now();
    let root = image::workspace_root();
    let kernel = image::kernel_image()?;
    let qemu = qemu::binary_from_env();
    let mut boots: Vec<(String, BootVerdicts)> = Vec::new();
    let mut all_passed = true;
    for machine in [MachineType::Pseries, MachineType::Powernv] {
        for mmu in ["radix", "hash"] {
            let mut config = BootConfig::new(&qemu, &kernel);
            config.machine_type = machine;
            config.firmware = machine.default_firmware();
            config.cpus = 4;
            config.memory_mib = 1024;
            config.timeout = Some(Duration::from_secs(300));
            config.append =
                format!("mmu={mmu} selftest=race,stress,collapse bench=gup_recheck_cost,collapse bench_reps=5 {extra}");
            config.check()?;
            let name = format!("{machine} {mmu}");
            eprintln!("race: {name}: {}", config.display_command());
            let output =
                qemu::run(&config, &mut |_, _| {}).map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
            let verdict = judge::judge(&output, config.machine());
            if !verdict.passed() {
                all_passed = false;
                eprintln!("race: {name}: the boot failed: {}", verdict.reason());
            }
            eprintln!("race: {name}: {:.1} s", output.elapsed.as_secs_f64());
            boots.push((name, race::parse_boot(&output.console)));
        }
    }
    eprintln!("race: loom (make loom)");
    // One stream, so that each model's `loom: ... explored` line (stderr)
    // stays before its test's result line (stdout).
    let loom_output = Command::new("sh")
        .args(["-c", "make --no-print-directory -s loom 2>&1"])
        .current_dir(&root)
        .output()
        .map_err(|e| format!("cannot run make loom: {e}"))?;
    let text = String::from_utf8_lossy(&loom_output.stdout);
    let loom = race::parse_loom(&text);
    all_passed &= loom_output.status.success() && !loom.is_empty();
    let table = race::markdown(&boots, &loom);
    let out: PathBuf = root.join("build/race");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(&race::to_json(&boots, &loom)).expect("JSON values serialise");
    let svg = race::chart(&boots);
    for (name, text) in [("verdicts.md", &table), ("verdicts.json", &json), ("verdicts.svg", &svg)] {
        std::fs::write(out.join(name), text).map_err(|e| format!("{}: {e}", out.join(name).display()))?;
    }
    println!("{table}");
    println!(
        "race: {} in {:.0} s; written to {}/verdicts.md, .json and .svg",
        if all_passed { "every verdict as expected" } else { "SOMETHING FAILED (see above)" },
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(all_passed)
}
