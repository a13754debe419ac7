//! `kboot`: boots the kernel once in QEMU, streaming its console, and judges the result
//! (exit status 0 pass, 1 fail, 2 could not boot). `make run` calls it. The addresses of a
//! fatal report get their source lines appended as they stream by (the kernel's console
//! is otherwise shown as it is), and the boot's files go to `build/results/run/`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use harness::backtrace::{self, StreamDecoder};
use harness::image;
use harness::judge;
use harness::qemu::{self, Accel, BootConfig, Firmware, MachineType, ProcessGroup, Stream};
use harness::race;
use harness::results::{self, BootRecord, Status};

const USAGE: &str = "\
usage: kboot [--machine pseries|powernv] [--fw vof|slof|skiboot] [--cpu MODEL]
             [--accel tcg|kvm] [--smp N[,threads=T]] [--mem SIZE] [--append CMDLINE]
             [--kernel PATH] [--qemu PATH] [--timeout SECONDS] [--results DIR] [--gdb]

  --machine  pseries (default: -M pseries, a PAPR guest) or powernv (bare metal:
             -M powernv9, or powernv10 with --cpu POWER10; TCG only, 1G or more)
  --fw       firmware: on pseries vof (default, instant) or slof; on powernv skiboot
             (its default and only firmware: vof and slof are refused there)
  --cpu      processor model under TCG: POWER8, POWER9 (default) or POWER10
  --accel    tcg (default) or kvm (-accel kvm -cpu host; needs a POWER host with /dev/kvm)
  --smp      number of CPUs (default 1), optionally as SMT cores: 8,threads=4
  --mem      memory, e.g. 512M or 1G (default 1024M)
  --append   kernel command line, e.g. \"selftest=mm,dt loglevel=debug\"
             (expect_cpus=/expect_mem= are added from --smp/--mem)
  --kernel   image (default: $KERNEL_IMAGE, else build/kernel.elf; not rebuilt)
  --qemu     QEMU binary (default: $QEMU, else qemu-system-ppc64)
  --timeout  seconds before QEMU is killed
             (default: $BOOT_TIMEOUT, else 30 vof / 60 slof / 30 skiboot)
  --results  where the boot's files go (default: build/results/run): console.txt,
             ktap.txt, qemu.log, verdict.json (an earlier boot's removed first)
  --gdb      start halted with QEMU's gdb stub on localhost:1234 (-s -S), no timeout

QEMU's guest-error log (-d guest_errors,unimp) goes to qemu.log there; any line in it
fails the boot, except those skiboot causes on every powernv boot (each shown). The
addresses of a fatal report are shown with their source lines, from the image's DWARF.";

/// The options that take a value (`--gdb` and `--help` take none).
const VALUE_OPTIONS: &[&str] = &[
    "--machine",
    "--fw",
    "--cpu",
    "--accel",
    "--smp",
    "--mem",
    "--append",
    "--kernel",
    "--qemu",
    "--timeout",
    "--results",
];

struct Options {
    machine_type: MachineType,
    firmware: Firmware,
    cpu: String,
    accel: Accel,
    cpus: u32,
    threads: u32,
    memory_mib: u64,
    append: String,
    kernel: Option<PathBuf>,
    qemu: Option<PathBuf>,
    timeout: Option<Duration>,
    results: Option<PathBuf>,
    gdb: bool,
}

fn parse_options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    // Until all options are read: the firmware's default is the machine's.
    let mut firmware: Option<Firmware> = None;
    let mut options = Options {
        machine_type: MachineType::Pseries,
        firmware: Firmware::Vof,
        cpu: qemu::DEFAULT_CPU.to_string(),
        accel: Accel::Tcg,
        cpus: 1,
        threads: 1,
        memory_mib: 1024,
        append: String::new(),
        kernel: None,
        qemu: None,
        timeout: None,
        results: None,
        gdb: false,
    };
    while let Some(arg) = args.next() {
        // Accept both `--smp 2` and `--smp=2`.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "--gdb" {
            options.gdb = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        if !VALUE_OPTIONS.contains(&flag.as_str()) {
            return Err(format!("unknown option `{arg}`"));
        }
        let value = match inline_value.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--machine" => options.machine_type = value.parse()?,
            "--fw" => firmware = Some(value.parse()?),
            "--smp" => (options.cpus, options.threads) = qemu::parse_smp(&value)?,
            "--cpu" => {
                if !harness::matrix::KNOWN_CPUS.contains(&value.as_str()) {
                    return Err(format!(
                        "unknown --cpu `{value}` (one of: {})",
                        harness::matrix::KNOWN_CPUS.join(", ")
                    ));
                }
                options.cpu = value
            }
            "--accel" => options.accel = value.parse()?,
            "--mem" => options.memory_mib = qemu::parse_memory_size(&value)?,
            "--append" => options.append = value,
            "--kernel" => options.kernel = Some(value.into()),
            "--qemu" => options.qemu = Some(value.into()),
            "--timeout" => options.timeout = Some(qemu::parse_seconds(&value)?),
            "--results" => options.results = Some(value.into()),
            _ => unreachable!("VALUE_OPTIONS lists every option taking a value"),
        }
    }
    options.firmware = firmware.unwrap_or(options.machine_type.default_firmware());
    qemu::check_combination(options.machine_type, options.firmware, &options.cpu, options.accel, options.memory_mib)?;
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("kboot: {error}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match boot(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("kboot: {error}");
            ExitCode::from(2)
        }
    }
}

/// Boots once; `Ok(passed)`, or `Err` if the boot could not happen at all.
fn boot(options: Options) -> Result<bool, String> {
    let qemu_binary = options.qemu.unwrap_or_else(qemu::binary_from_env);
    let kernel = options.kernel.unwrap_or_else(image::default_image);
    if !kernel.is_file() {
        return Err(format!("no kernel image at {} (run `make kernel`)", kernel.display()));
    }
    if options.accel == Accel::Kvm {
        if let Some(why) = qemu::kvm_unavailable() {
            return Err(format!("cannot boot with --accel kvm: {why}"));
        }
    }
    let mut config = BootConfig::new(qemu_binary, kernel);
    config.machine_type = options.machine_type;
    config.firmware = options.firmware;
    config.cpu = options.cpu;
    config.accel = options.accel;
    config.cpus = options.cpus;
    config.threads = options.threads;
    let results_dir = options.results.unwrap_or_else(|| results::boot_dir(results::KBOOT_NAME));
    if let Err(error) = results::clear(&results_dir) {
        return Err(format!("cannot prepare {}: {error}", results_dir.display()));
    }
    config.qemu_log = results_dir.join(results::QEMU_LOG_FILE);
    config.memory_mib = options.memory_mib;
    config.append = options.append;
    config.gdb = options.gdb;
    config.timeout = if options.gdb {
        None
    } else {
        Some(match options.timeout {
            Some(timeout) => timeout,
            None => qemu::timeout_from_env()?.unwrap_or(options.firmware.default_timeout()),
        })
    };
    // At a terminal QEMU stays in our process group so that Ctrl-C stops it too.
    if std::io::stdin().is_terminal() {
        config.process_group = ProcessGroup::Shared;
    }

    eprintln!("kboot: {}", qemu::version(&config.qemu)?);
    eprintln!("kboot: {}", config.display_command());
    if config.gdb {
        eprintln!("kboot: QEMU is halted; attach with `target remote localhost:1234` in gdb");
    }

    let debug_info = image::debug_info(&config.kernel);
    let mut decoder = StreamDecoder::new(&debug_info);
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let mut stream = |stream: Stream, bytes: &[u8]| {
        // A closed stdout (`kboot | head`) must not stop the boot, so errors are ignored.
        let _ = match stream {
            Stream::Stdout => {
                let (shown, unavailable) = decoder.push(bytes);
                if let Some(why) = unavailable {
                    let _ = writeln!(stderr, "kboot: note: {why}");
                }
                stdout.write_all(&shown).and_then(|()| stdout.flush())
            }
            Stream::Stderr => stderr.write_all(bytes).and_then(|()| stderr.flush()),
        };
    };
    let output = qemu::run(&config, &mut stream).map_err(|error| error.to_string())?;
    let _ = std::io::stdout().write_all(&decoder.finish());

    let verdict = judge::judge(&output, config.machine());
    let seconds = output.elapsed.as_secs_f64();
    // The point of the kernel, after its console: what this boot showed of
    // the race, configuration by configuration.
    match race::boot_summary(config.machine_type.name(), &race::parse_boot(&output.console)) {
        Some(table) => println!("\nThe race on this boot ({} CPUs):\n\n{table}", options.cpus),
        None if options.cpus < 3 => {
            eprintln!("kboot: the race and stress tests need 3 or more CPUs (--smp 4 runs them)")
        }
        None => {}
    }
    for allowed in &verdict.allowed {
        eprintln!("kboot: {allowed}");
    }
    if verdict.passed() {
        eprintln!("kboot: PASS: selftests {} ({seconds:.2} s)", verdict.counted);
    } else {
        eprintln!("kboot: FAIL ({seconds:.2} s):");
        for failure in &verdict.failures {
            eprintln!("kboot:   {failure}");
        }
        if !output.qemu_log.is_empty() {
            eprintln!("kboot: QEMU guest log: {}", config.qemu_log.display());
        }
    }

    let decoded = backtrace::decode(&debug_info, &output.transcript);
    let record = BootRecord {
        name: results::KBOOT_NAME,
        status: if verdict.passed() { Status::Pass } else { Status::Fail },
        reason: verdict.reason(),
        expect_failure: false,
        expect_reasons: &[],
        command: Some(config.display_command()),
        boot: Some((&output, &verdict)),
        decoded: &decoded.lines,
    };
    match results::write_boot(&results_dir, &record) {
        Ok(()) => eprintln!("kboot: results in {}", results_dir.display()),
        Err(error) => eprintln!("kboot: cannot write the results to {}: {error}", results_dir.display()),
    }
    Ok(verdict.passed())
}
