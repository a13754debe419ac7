//! The harness's process handling and judging, end to end, against fake QEMUs: shell
//! scripts given to the runner exactly as `QEMU` would be, printing canned consoles,
//! hanging, leaving children behind or failing like QEMU does. A shell script cannot listen
//! on a socket, so where a fake hangs until the harness's NMI, a QMP server in the test
//! ([`FakeQmp`]) stands in for QEMU's and tells the script through a file.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use harness::judge::AllowedBy;
use harness::judge::{self, Verdict};
use harness::matrix::{self, Expect};
use harness::qemu::{self, BootConfig, BootOutput, Firmware, MachineType, Stream};

/// Common start of every fake: answers `--version`, records its arguments one per line.
const PREAMBLE: &str = r#"#!/bin/sh
dir=$(dirname "$0")
if [ "$1" = "--version" ]; then
    echo "QEMU emulator version 0.0.0 (fake)"
    echo "Copyright (c) nobody"
    exit 0
fi
printf '%s\n' "$@" > "$dir/args"
"#;

/// A console that passes for `-smp 2 -m 512M`.
const PASSING_CONSOLE: &str = r#"cat <<'EOF'
VOF firmware
ppc64-kernel 0.1.0 firmware=vof cpus=2 memory=512MiB mmu=radix cmdline="a b"
KTAP version 1
1..2
ok 1 mm_alloc
# note
ok 2 dt_cpus # SKIP not today
selftests: 1 passed, 0 failed, 1 skipped
EOF
"#;

/// A fake kernel following the console contract, driven by `-append` (`inject=...`,
/// unknown options) and reporting the `-smp`/`-m` it was given: lets the shipped matrix's
/// expectations be checked before the real kernel exists. On `-M powernv*` it is skiboot
/// too: its console lines around the kernel's, its lines in the guest log, and a power-off
/// that hangs without the BMC `-nodefaults` leaves out.
const CONTRACT_KERNEL: &str = r##"append=""; smp=1; mem=1024M; cpu=POWER9; log=/dev/null
machine=pseries; nodefaults=no; devices=""
while [ $# -gt 0 ]; do
    case "$1" in
        -M) machine="$2"; shift ;;
        -nodefaults) nodefaults=yes ;;
        -device) devices="$devices $2"; shift ;;
        -append) append="$2"; shift ;;
        -smp) smp="${2%%,*}"; shift ;;
        -m) mem="$2"; shift ;;
        -cpu) cpu="$2"; shift ;;
        -D) log="$2"; shift ;;
    esac
    shift
done
case "$machine" in
    pseries,x-vof=on,*) firmware=vof ;;
    pseries,*) firmware=slof ;;
    powernv9) firmware=skiboot ;;
    powernv10) firmware=skiboot; cpu=POWER10 ;;
    *) echo "qemu-system-ppc64: unsupported machine $machine" >&2; exit 1 ;;
esac
power_off() {
    if [ "$firmware" = skiboot ]; then
        echo "[    1.102030405,5] OPAL: Shutdown request type 0x0..."
        # skiboot powers off through the BMC: without one it waits forever.
        case "$devices" in *isa-ipmi-bt*) ;; *) exec sleep 1000 ;; esac
    fi
    exit 0
}
if [ "$firmware" = skiboot ]; then
    [ "$nodefaults" = yes ] || echo "qemu-system-ppc64: warning: Could not find PNOR 'pnv-pnor.bin'" >&2
    echo "[    0.018194177,5] OPAL v7.1-106-g785a5e30 starting..."
    echo "OPB write failed at @0xd001002e" >> "$log"
    for register in 13 0 1 2 3 4 5 6 10; do
        echo "pnv_chiptod: unimplemented register: Ox$register" >> "$log"
    done
    if [ "$cpu" = POWER10 ]; then
        echo "pnv_core_power10_xscom_write: unimp write 0x00000445" >> "$log"
        echo "pnv_quad_power10_xscom_write: unimp write 0x00018650" >> "$log"
        echo "pnv_qme_power10_xscom_read: unimp read 0x0000883c" >> "$log"
    fi
    echo "[    0.422434841,5] INIT: Starting kernel at 0x20010000, fdt at 0x30760958 25521 bytes"
else
    echo "SLOF-ish noise"
fi
mmu=radix; case " $append " in *" mmu=off "*) mmu=off ;; *" mmu=hash "*) mmu=hash ;; esac
case "$cpu" in
    POWER8) pvr=0x004d0200
            if [ "$mmu" = radix ]; then
                echo "[warn] mmu: POWER8 (ISA 2.07) has no radix MMU; falling back to hash"; mmu=hash
            fi ;;
    POWER10) pvr=0x00801200 ;;
    *) pvr=0x004e1202 ;;
esac
# POWER9's fix-ups apply to the kernel's own tlbies: radix's, and hash's on
# bare metal (on pseries the hypervisor invalidates HPTEs).
fixups=none; [ "$cpu" = POWER9 ] && [ "$mmu" = radix ] && fixups=erat+stq
[ "$cpu" = POWER9 ] && [ "$mmu" = hash ] && [ "$firmware" = skiboot ] && fixups=erat+stq
printf 'ppc64-kernel 0.1.0: firmware=%s cpus=%s online=%s memory=%sMiB mmu=%s tlbie_fixups=%s cmdline="%s"\r\n' "$firmware" "$smp" "$smp" "${mem%M}" "$mmu" "$fixups" "$append"
case " $append " in
    *" frobnicate=1 "*) echo "cmdline: ignoring unknown option frobnicate=1" ;;
esac
# On skiboot the OPAL suite runs too, last.
total=23; [ "$firmware" = skiboot ] && total=27
echo "KTAP version 1"
echo "1..$total"
echo "ok 1 mm_alloc"
# A fatal report: the FATAL line, then what the exception saved ($2), if any.
fatal() {
    echo "FATAL: $1"
    [ -z "$2" ] || echo "$2"
    echo " r0  = 0000000000000000 r1  = 0000000000ffe000 r31 = 0000000000000000"
    echo "Call trace:"
    echo " [0] 0x0000000000412345 kernel::selftest::run+0x24"
    echo "selftests: 1 passed, 1 failed, 0 skipped"
    power_off
}
echo "[info] cpu: PVR $pvr, PIR 0, timebase 512000000 Hz, MSR 0x8000000000001033"
# After the harness's NMI (the test's QMP server leaves $dir/nmi): every CPU's report, in
# order, as the kernel prints it, then the failing summary and power-off.
nmi_report() {
    msr="SF|ME|IR|DR|LE"; srr1=8000000000001031; reason=""
    if [ "$firmware" = skiboot ]; then
        msr="SF|HV|ME|IR|DR|LE"; srr1=9000000000081031; reason=", sent over SCOM (SRR1[42:45]=0b0010)"
    fi
    cpu=0
    while [ "$cpu" -lt "$smp" ]; do
        where="ppc64_kernel::secondary::idle+0x7c"
        [ "$cpu" = 0 ] && where="ppc64_kernel::inject::hang_with_interrupts_off+0x18"
        printf '\nNMI: CPU %s (PIR %s) at 0xc000000000426738 <%s>\n' "$cpu" "$((cpu * 4))" "$where"
        echo "  system reset: not recoverable (SRR1[RI]=0), interrupts were off$reason; not resumed: the boot is over"
        echo "  SRR0: c000000000426738  SRR1: $srr1  MSR-at-fault: $msr"
        echo "  DAR:  0000000000000000  DSISR: 00000000"
        echo "  LR:   c000000000467578  CTR: 0000000000000000  CR: 22000a42  XER: 0000000020040000"
        for row in 0 4 8 12 16 20 24 28; do
            printf '  r%-2s 0000000000000000 r%-2s 0000000000000000 r%-2s 0000000000000000 r%-2s 0000000000000000\n' \
                "$row" "$((row + 1))" "$((row + 2))" "$((row + 3))"
        done
        echo "  LR <boot_cpu_entry+0x3798>"
        echo "Call trace:"
        echo " [0] 0xc000000000426738 <$where>"
        echo " [1] 0xc000000000467478 <boot_cpu_entry+0x3698>"
        cpu=$((cpu + 1))
    done
    echo "NMI: $smp of $smp online CPUs reported"
    echo "selftests: 1 passed, 1 failed, 0 skipped"
    power_off
}
case "$append" in
    *inject=hang*) echo "# inject=hang: failing on purpose"
                   while [ ! -e "$dir/nmi" ]; do sleep 0.02; done
                   rm -f "$dir/nmi"
                   nmi_report ;;
    *inject=yield_irqs_off*) fatal "panic at arch/ppc64/src/inject.rs:79:5: sched: yield_now called with interrupts off (inside a sched-RCU read-side section) from arch/ppc64/src/inject.rs:79:5" ;;
    *inject=panic*) fatal "panic at kernel/src/inject.rs:10:5: injected panic" ;;
    *inject=program*) fatal "exception 0x700 (program) at 0x0000000000401234 <ppc64_kernel::inject::raise_program_check+0x8>" \
                            "  SRR0: 0000000000401234  SRR1: 9000000000029033  MSR-at-fault: SF|HV|EE|ME|IR|DR|RI|LE" ;;
    *inject=illegal*)
        if [ "$firmware" = skiboot ]; then
            fatal "exception 0xe40 (hypervisor emulation assistance) at 0x0000000000401240 <ppc64_kernel::inject::execute_illegal_instruction+0xc>" \
                  "  HSRR0: 0000000000401240  HSRR1: 9000000000009033  MSR-at-fault: SF|HV|EE|ME|IR|DR|RI|LE"
        else
            fatal "exception 0x700 (program) at 0x0000000000401240 <ppc64_kernel::inject::execute_illegal_instruction+0xc>" \
                  "  SRR0: 0000000000401240  SRR1: 8000000000089033  MSR-at-fault: SF|EE|ME|IR|DR|RI|LE"
        fi ;;
    *inject=oom*) echo "[error] heap: out of memory: request of 134217728 bytes (align 1) failed; heap 67108864 bytes, 0 used, 67108864 free"
                  fatal "panic at library/alloc/src/alloc.rs:573:9: memory allocation of 134217728 bytes failed" ;;
    *inject=align*) echo "  DAR:  00000000005a0002  DSISR: 00000000"
                    fatal "exception 0x600 (alignment) at 0x0000000000405ed8 <ppc64_kernel::inject::misaligned_atomic_load+0x28>" ;;
    *inject=unmapped*) echo "  faulting data address 0xc00f000000000000 <?> (no translation, load)"
                       fatal "exception 0x300 (data storage) at 0xc0000000004118a0 <ppc64_kernel::inject::load_unmapped_kernel_address+0x20>" ;;
    *inject=notok*) echo "ok 2 dt_cpus"; echo "not ok 3 injected # inject=notok" ;
                    echo "selftests: 2 passed, 1 failed, 0 skipped"; power_off ;;
esac
echo "ok 2 dt_cpus"
echo "ok 3 mmu.map_read_write # SKIP translation is off"
echo "ok 4 hash.full_groups_evict_without_loss"
echo "ok 5 smp.flush_reaches_other_cpus"
echo "ok 6 smp.interrupts_off_target_delays_the_caller"
echo "ok 7 rcu.synchronize_waits_for_interrupts_off_cpu"
echo "ok 8 rcu.unhooked_table_outlives_lockless_walk"
echo "ok 9 sched.threads_share_a_cpu_by_preemption"
echo "ok 10 sched.thread_sees_its_address_space"
ipi=Auto; case " $append " in *" collapse_ipi=on "*) ipi=On ;; *" collapse_ipi=off "*) ipi=Off ;; esac
waited=false; { { [ "$mmu" = hash ] && [ "$ipi" = Auto ]; } || [ "$ipi" = On ]; } && waited=true
echo "# collapse_ipi=$ipi under $mmu: waited for the walker: $waited"
echo "ok 11 collapse.command_line_policy_decides"
echo "# counter-example: GUP pinned 0x1d0000; the address now maps 0x4650000; a write through the pin is lost"
echo "ok 12 race.no_recheck_no_ipi_returns_a_discarded_page"
echo "ok 13 race.pmd_recheck_backs_off"
echo "ok 14 race.collapse_ipi_makes_collapse_give_up"
echo "# hash, collapse_ipi=Off: B's wait ended by A; the write went to the discarded small page (stale HPTE)"
echo "ok 15 race.hash_fault_with_ipi_keeps_the_write"
recheck=true; case " $append " in *" gup_pmd_recheck=off "*) recheck=false ;; esac
stale=false; { [ "$recheck" = false ] && [ "$waited" = false ]; } && stale=true
echo "# gup_pmd_recheck=$recheck collapse_ipi=$ipi ($mmu): stale pin: $stale"
echo "ok 16 race.command_line_settings_decide"
echo "ok 17 race.pmd_recheck_backs_off"
echo "ok 18 stress.gup_fast_against_khugepaged"
echo "ok 19 smp.all_cpus_online"
echo "ok 20 smp.call_on_all_waits_for_all"
echo "ok 21 collapse.ipi_waits_for_lockless_walkers"
# The race from user mode: 2 CPUs or more (as the kernel skips it below).
skipped=1
if [ "$smp" -ge 2 ]; then
    echo "ok 22 user.race_with_the_defaults_keeps_every_write"
    echo "ok 23 user.race_without_the_fixes_loses_writes"
else
    echo "ok 22 user.race_with_the_defaults_keeps_every_write # SKIP needs 2 CPUs, 1 online"
    echo "ok 23 user.race_without_the_fixes_loses_writes # SKIP needs 2 CPUs, 1 online"
    skipped=3
fi
case "$append" in *inject=guest_error*)
    echo "# inject=guest_error: failing on purpose"
    if [ "$mmu" = radix ]; then
        echo "# inject=guest_error: tlbie of kernel address 0xc000000000000000 by address (quadrant 3)"
        echo "helper_tlbie_isa300: attempt to invalidate a translation outside of quadrant 0" >> "$log"
    else
        echo "# inject=guest_error: hcall 0x2 returned -2 (H_FUNCTION)"
        echo "Unimplemented SPAPR hcall 0x0000000000000002" >> "$log"
    fi ;;
esac
if [ "$firmware" = skiboot ]; then
    echo "ok 24 opal.partition_table_holds_the_mmu_in_use"
    echo "ok 25 opal.calls_survive_doorbells_at_any_point"
    echo "ok 26 opal.every_cpu_runs_the_boot_cpus_mmu_state"
    echo "ok 27 opal.device_tree_names_the_boot_cpu"
fi
echo "selftests: $((total - skipped)) passed, 0 failed, $skipped skipped"
power_off
"##;

/// A fake QEMU in a directory of its own under cargo's per-target temporary directory.
struct FakeQemu {
    dir: PathBuf,
    script: PathBuf,
}

impl FakeQemu {
    fn new(body: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "fake-qemu-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("create fake QEMU directory");
        let script = dir.join("qemu-system-ppc64");
        fs::write(&script, format!("{PREAMBLE}{body}")).expect("write fake QEMU");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod fake QEMU");
        fs::write(dir.join("kernel.elf"), "not really a kernel").expect("write fake kernel");
        FakeQemu { dir, script }
    }

    fn kernel(&self) -> PathBuf {
        self.dir.join("kernel.elf")
    }

    /// `-smp 2 -m 512M`, VOF, 5 s timeout.
    fn config(&self) -> BootConfig {
        let mut config = BootConfig::new(&self.script, self.kernel());
        config.cpus = 2;
        config.memory_mib = 512;
        config.append = "a b".into();
        config.timeout = Some(Duration::from_secs(5));
        config
    }

    /// The arguments the fake was last started with.
    fn recorded_args(&self) -> Vec<String> {
        let text = fs::read_to_string(self.dir.join("args")).expect("fake recorded its arguments");
        text.lines().map(str::to_string).collect()
    }

    /// The pid a fake wrote to `$dir/<name>`.
    fn recorded_pid(&self, name: &str) -> u32 {
        let text = fs::read_to_string(self.dir.join(name)).expect("fake recorded a pid");
        text.trim().parse().expect("pid")
    }

    /// Where [`FakeQemu::kboot`] has kboot leave its result files.
    fn results(&self) -> PathBuf {
        self.dir.join("results")
    }

    fn kboot(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kboot"))
            .arg("--results")
            .arg(self.results())
            .args(args)
            .env("QEMU", &self.script)
            .env("KERNEL_IMAGE", self.kernel())
            .env_remove("BOOT_TIMEOUT")
            .stdin(Stdio::null())
            .output()
            .expect("run kboot")
    }
}

impl Drop for FakeQemu {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A QMP server standing in for QEMU's at a boot's socket: it answers the handshake and
/// `inject-nmi` as QEMU 10.0.2 does, and on `inject-nmi` creates `flag`, which a fake's hang
/// loop waits for. [`FakeQmp::commands`] gives back what the harness sent.
struct FakeQmp {
    server: thread::JoinHandle<Vec<String>>,
}

impl FakeQmp {
    /// Listens at `socket` once the harness has made its directory (it does so before it
    /// starts QEMU), answering `inject-nmi` with `nmi_answer`; gives up after ten seconds.
    fn serve(socket: &Path, flag: &Path, nmi_answer: &'static str) -> FakeQmp {
        let (socket, flag) = (socket.to_path_buf(), flag.to_path_buf());
        let server = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let dir = socket.parent().expect("socket in a directory");
            while !dir.exists() {
                if Instant::now() >= deadline {
                    return Vec::new();
                }
                thread::sleep(Duration::from_millis(2));
            }
            let listener = UnixListener::bind(&socket).expect("bind the QMP socket");
            listener.set_nonblocking(true).expect("non-blocking listener");
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(_) => return Vec::new(),
                }
            };
            stream.set_nonblocking(false).expect("blocking stream");
            let mut writer = stream.try_clone().expect("clone the stream");
            let greeting = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \
                            \"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n";
            writer.write_all(greeting.as_bytes()).expect("greet");
            let mut commands = Vec::new();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let request: serde_json::Value = serde_json::from_str(&line).expect("QMP request is JSON");
                let command = request["execute"].as_str().unwrap_or("?").to_string();
                let answer = match command.as_str() {
                    "inject-nmi" => {
                        fs::write(&flag, "").expect("leave the NMI flag");
                        nmi_answer
                    }
                    _ => "{\"return\": {}}\r\n",
                };
                commands.push(command);
                if writer.write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
            commands
        });
        FakeQmp { server }
    }

    /// The commands the harness sent, once it has closed the connection.
    fn commands(self) -> Vec<String> {
        self.server.join().expect("the fake QMP server did not panic")
    }
}

const NMI_TAKEN: &str = "{\"return\": {}}\r\n";

fn boot(config: &BootConfig) -> (BootOutput, Verdict) {
    let output = qemu::run(config, &mut |_, _| {}).expect("fake QEMU starts");
    let verdict = judge::judge(&output, config.machine());
    (output, verdict)
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet), waiting up to two seconds.
fn process_is_dead(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let dead = match fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
            Err(_) => true,
        };
        if dead || Instant::now() >= deadline {
            return dead;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_is_the_first_line() {
    let fake = FakeQemu::new("");
    assert_eq!(qemu::version(&fake.script), Ok("QEMU emulator version 0.0.0 (fake)".into()));
    assert!(qemu::version(&fake.dir.join("missing")).is_err());
}

#[test]
fn passing_boot_gets_exactly_the_built_command_line() {
    let fake = FakeQemu::new(PASSING_CONSOLE);
    let config = fake.config();
    let (output, verdict) = boot(&config);
    assert!(verdict.passed(), "{}\n{}", verdict.reason(), output.transcript);
    assert_eq!(output.exit_code, Some(0));
    let built: Vec<String> = config.args().iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
    assert_eq!(fake.recorded_args(), built);
    assert!(built.windows(2).any(|pair| pair == ["-append", "a b expect_cpus=2 expect_mem=512M"]));
}

#[test]
fn banner_must_match_the_machine() {
    let fake = FakeQemu::new(PASSING_CONSOLE);
    let mut config = fake.config();
    config.cpus = 4;
    let (_, verdict) = boot(&config);
    assert_eq!(verdict.reason(), "banner says cpus=2, but QEMU was given -smp 4");
}

#[test]
fn hang_is_killed_at_the_deadline_with_its_process_group() {
    let fake = FakeQemu::new(
        "echo 'ppc64-kernel cpus=2 memory=512MiB'\necho 'KTAP version 1'\n\
         sleep 1000 &\necho $! > \"$dir/sleeper\"\nwait\n",
    );
    let mut config = fake.config();
    config.timeout = Some(Duration::from_secs(1));
    let (output, verdict) = boot(&config);
    assert!(output.timed_out);
    assert!(
        output.elapsed >= Duration::from_secs(1) && output.elapsed < Duration::from_secs(4),
        "{:?}",
        output.elapsed
    );
    assert_eq!(verdict.failures[0].kind(), "timeout");
    assert!(output.console.contains("KTAP version 1"), "output before the hang is kept");
    assert!(process_is_dead(fake.recorded_pid("sleeper")), "the fake's child survived");
    // Nothing listens on the QMP socket: no NMI, and QEMU is killed at once, as it says.
    let nmi = output.nmi.as_ref().expect("the deadline passed");
    assert!(nmi.sent.as_ref().is_err_and(|why| why.starts_with("cannot connect to the QMP socket")), "{nmi:?}");
    assert!(!nmi.qemu_exited && nmi.waited < Duration::from_millis(500), "{nmi:?}");
    assert!(
        verdict.failures[0].to_string().contains("; no NMI (cannot connect to the QMP socket "),
        "{}",
        verdict.reason()
    );
    assert!(!config.qmp_socket.parent().unwrap().exists(), "the socket's directory was left behind");
}

/// At the deadline the harness asks for an NMI and reads the console until QEMU exits:
/// what the kernel prints then is in the console, and the boot is still a timeout.
#[test]
fn hang_gets_an_nmi_and_its_report_is_kept() {
    let fake = FakeQemu::new(CONTRACT_KERNEL);
    let mut config = fake.config();
    config.append = "inject=hang".into();
    config.timeout = Some(Duration::from_millis(500));
    let qmp = FakeQmp::serve(&config.qmp_socket, &fake.dir.join("nmi"), NMI_TAKEN);
    let (output, verdict) = boot(&config);
    assert_eq!(qmp.commands(), ["qmp_capabilities", "inject-nmi"]);
    assert!(output.timed_out);
    let nmi = output.nmi.clone().expect("the deadline passed");
    assert_eq!(nmi.sent, Ok(()));
    assert!(nmi.qemu_exited, "the fake powers off after its report: {nmi:?}");
    assert!(nmi.at >= Duration::from_millis(500) && nmi.at < Duration::from_secs(2), "{nmi:?}");
    assert!(output
        .console
        .contains("\nNMI: CPU 1 (PIR 4) at 0xc000000000426738 <ppc64_kernel::secondary::idle+0x7c>\n"));
    assert!(output.console.contains("NMI: 2 of 2 online CPUs reported\n"));
    assert_eq!(verdict.failures[0].kind(), "timeout");
    let reason = verdict.failures[0].to_string();
    assert!(reason.starts_with("timed out after 0.5 s; NMI sent through QMP: 2 CPUs reported"), "{reason}");
    assert!(reason.contains(", QEMU exited "), "{reason}");
    assert!(!config.qmp_socket.parent().unwrap().exists(), "the socket's directory was left behind");
}

/// A QEMU that takes the NMI but never ends is killed when the grace period runs out.
#[test]
fn nmi_grace_is_bounded() {
    let fake = FakeQemu::new("echo 'KTAP version 1'\nexec sleep 1000\n");
    let mut config = fake.config();
    config.timeout = Some(Duration::from_millis(300));
    config.nmi_grace = Duration::from_millis(700);
    let qmp = FakeQmp::serve(&config.qmp_socket, &fake.dir.join("nmi"), NMI_TAKEN);
    let started = Instant::now();
    let (output, verdict) = boot(&config);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(qmp.commands(), ["qmp_capabilities", "inject-nmi"]);
    let nmi = output.nmi.expect("the deadline passed");
    assert!(!nmi.qemu_exited && nmi.waited >= Duration::from_millis(700), "{nmi:?}");
    assert!(verdict.failures[0].to_string().contains("0 CPUs reported (`NMI: CPU` blocks), QEMU killed 0.7 s later"));
}

/// A QEMU that refuses the NMI: the judge says why, and QEMU is killed at once.
#[test]
fn a_refused_nmi_is_reported() {
    const REFUSED: &str = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no NMI here\"}}\r\n";
    let fake = FakeQemu::new("exec sleep 1000\n");
    let mut config = fake.config();
    config.timeout = Some(Duration::from_millis(300));
    let qmp = FakeQmp::serve(&config.qmp_socket, &fake.dir.join("nmi"), REFUSED);
    let (output, verdict) = boot(&config);
    assert_eq!(qmp.commands(), ["qmp_capabilities", "inject-nmi"]);
    assert!(output.elapsed < Duration::from_secs(2), "{:?}", output.elapsed);
    assert_eq!(
        verdict.failures[0].to_string(),
        "timed out after 0.3 s; no NMI (QMP `inject-nmi` failed: no NMI here (GenericError)); QEMU killed"
    );
}

#[test]
fn qemu_failing_to_start_the_machine() {
    let fake = FakeQemu::new("echo 'qemu-system-ppc64: -smp 0: Invalid SMP CPUs 0' >&2\nexit 1\n");
    let (output, verdict) = boot(&fake.config());
    let kinds: Vec<_> = verdict.failures.iter().map(|failure| failure.kind()).collect();
    assert_eq!(kinds[..2], ["qemu-exit", "qemu-stderr"]);
    assert_eq!(verdict.failures[0].to_string(), "QEMU exited with status 1");
    assert_eq!(verdict.failures[1].to_string(), "QEMU error: qemu-system-ppc64: -smp 0: Invalid SMP CPUs 0");
    assert!(output.transcript.contains("Invalid SMP CPUs"));
}

#[test]
fn qemu_error_after_a_good_console() {
    let fake = FakeQemu::new(&format!(
        "{PASSING_CONSOLE}echo 'qemu-system-ppc64: warning: harmless' >&2\n\
         echo 'qemu-system-ppc64: Trying to execute code outside RAM or ROM at 0x00000000' >&2\n"
    ));
    let (_, verdict) = boot(&fake.config());
    assert_eq!(
        verdict.reason(),
        "QEMU error: qemu-system-ppc64: Trying to execute code outside RAM or ROM at 0x00000000"
    );
}

#[test]
fn qemu_warnings_are_not_errors() {
    let fake =
        FakeQemu::new(&format!("echo 'qemu-system-ppc64: warning: TCG does not support X' >&2\n{PASSING_CONSOLE}"));
    let (output, verdict) = boot(&fake.config());
    assert!(verdict.passed(), "{}", verdict.reason());
    assert!(output.transcript.contains("warning: TCG"));
}

#[test]
fn qemu_killed_by_a_signal() {
    let fake = FakeQemu::new(&format!("{PASSING_CONSOLE}kill -KILL $$\n"));
    let (output, verdict) = boot(&fake.config());
    assert!(!output.timed_out);
    assert_eq!(verdict.reason(), "QEMU was killed by a signal");
}

#[test]
fn child_left_holding_the_console_does_not_hang_the_harness() {
    let fake = FakeQemu::new(&format!("{PASSING_CONSOLE}sleep 1000 &\necho $! > \"$dir/leftover\"\nexit 0\n"));
    let started = Instant::now();
    let (output, verdict) = boot(&fake.config());
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(verdict.passed(), "{}", verdict.reason());
    assert!(process_is_dead(fake.recorded_pid("leftover")), "the leftover child survived");
    assert!(!output.timed_out);
}

#[test]
fn qemu_that_closes_its_output_and_hangs_still_times_out() {
    let fake = FakeQemu::new("echo bye\nexec sleep 1000 >&- 2>&-\n");
    let mut config = fake.config();
    config.timeout = Some(Duration::from_secs(1));
    let (output, verdict) = boot(&config);
    assert!(output.timed_out);
    assert_eq!(output.console, "bye\n");
    assert_eq!(verdict.failures[0].kind(), "timeout");
}

#[test]
fn output_is_streamed_as_it_arrives() {
    let fake = FakeQemu::new("echo first\nsleep 1\necho second\n");
    let started = Instant::now();
    let mut first_seen = None;
    let mut observer = |stream: Stream, bytes: &[u8]| {
        if stream == Stream::Stdout && bytes.starts_with(b"first") {
            first_seen = Some(started.elapsed());
        }
    };
    let output = qemu::run(&fake.config(), &mut observer).expect("fake QEMU starts");
    let first_seen = first_seen.expect("saw the first line");
    assert!(first_seen < Duration::from_millis(800), "first line after {first_seen:?}");
    assert!(output.elapsed >= Duration::from_secs(1));
    assert_eq!(output.console, "first\nsecond\n");
}

#[test]
fn missing_qemu_is_a_harness_error() {
    let fake = FakeQemu::new("");
    let mut config = fake.config();
    config.qemu = fake.dir.join("no-such-qemu");
    let error = qemu::run(&config, &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().starts_with("cannot start"), "{error}");
}

/// Every row of the shipped matrix, against a fake that keeps the console contract: the
/// rows' expectations (reasons, patterns) must hold for a kernel that does what it should.
/// Disabled rows are booted too: they wait for the kernel, not for the harness.
#[test]
fn shipped_matrix_against_a_contract_kernel() {
    let fake = FakeQemu::new(CONTRACT_KERNEL);
    let rows = matrix::load(&matrix::default_path()).expect("matrix parses");
    let mut failures = Vec::new();
    for mut row in rows {
        // Hang rows wait for their timeout; a fake hang need not wait as long.
        if row.expect_reasons.iter().any(|reason| reason == "timeout") {
            row.timeout = Some(Duration::from_millis(500));
        }
        if row.host_skip_reason().is_some() {
            continue;
        }
        let mut config = row.boot_config(&fake.script, &fake.kernel(), None);
        // Not the real matrix's log under build/.
        config.qemu_log = fake.dir.join(format!("{}.log", row.name));
        // A fake hang is over at the NMI, and reports at once.
        let qmp = row.append.contains("inject=hang").then(|| {
            config.nmi_grace = Duration::from_secs(2);
            FakeQmp::serve(&config.qmp_socket, &fake.dir.join("nmi"), NMI_TAKEN)
        });
        let output = qemu::run(&config, &mut |_, _| {}).expect("fake QEMU starts");
        if let Some(qmp) = qmp {
            assert_eq!(qmp.commands(), ["qmp_capabilities", "inject-nmi"], "{}", row.name);
            assert!(output.nmi.as_ref().is_some_and(|nmi| nmi.qemu_exited), "{}: {:?}", row.name, output.nmi);
        }
        let verdict = row.judge(&output);
        if let Err(error) = row.assess(&output, &verdict) {
            failures.push(format!("{}: {error}\n{}", row.name, output.transcript));
        }
        if row.expect == Expect::Pass {
            assert!(verdict.counted.passed > 0, "{}", row.name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A powernv boot of the contract kernel: skiboot's console around the kernel's, skiboot's
/// guest-log lines allowed (and counted), the machine's command line exactly as built.
#[test]
fn powernv_boot_through_skiboot() {
    let fake = FakeQemu::new(CONTRACT_KERNEL);
    let mut config = fake.config();
    config.machine_type = MachineType::Powernv;
    config.firmware = Firmware::Skiboot;
    config.memory_mib = 1024;
    config.cpus = 4;
    config.qemu_log = fake.dir.join("powernv.log");
    assert_eq!(config.check(), Ok(()));
    let (output, verdict) = boot(&config);
    assert!(verdict.passed(), "{}\n{}", verdict.reason(), output.transcript);
    let built: Vec<String> = config.args().iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
    assert_eq!(fake.recorded_args(), built);
    let opal = output.console.find("OPAL v7.1").expect("skiboot's log");
    let banner = output.console.find("ppc64-kernel 0.1.0: firmware=skiboot cpus=4").expect("banner");
    let shutdown = output.console.find("OPAL: Shutdown request").expect("skiboot's power-down line");
    let summary = output.console.find("selftests: ").expect("summary");
    assert!(opal < banner && summary < shutdown, "{}", output.console);
    let allowed: Vec<(AllowedBy, usize)> = verdict.allowed.iter().map(|allowed| (allowed.by, allowed.count)).collect();
    assert_eq!(allowed, [(AllowedBy::Firmware, 1), (AllowedBy::Firmware, 9)]);

    // The same log on a pseries machine is no firmware's.
    let mut pseries = config.machine();
    pseries.firmware_log = &[];
    let verdict = judge::judge(&output, pseries);
    assert_eq!(verdict.failures.len(), 10, "{}", verdict.reason());
    assert!(verdict.failures.iter().all(|failure| failure.kind() == "qemu-log"));
}

/// A skiboot console that passes for `-smp 1 -m 1024M`; the fake logs nothing to the guest
/// log (kboot's, like its other result files, is in the fake's directory).
const SKIBOOT_CONSOLE: &str = r#"cat <<'EOF'
[    0.018194177,5] OPAL v7.1-106-g785a5e30 starting...
[    0.422434841,5] INIT: Starting kernel at 0x20010000, fdt at 0x30760958 25521 bytes
ppc64-kernel 0.1.0: firmware=skiboot cpus=1 online=1 memory=1024MiB mmu=radix cmdline=""
KTAP version 1
1..1
ok 1 mm_alloc
selftests: 1 passed, 0 failed, 0 skipped
[    1.102030405,5] OPAL: Shutdown request type 0x0...
EOF
"#;

#[test]
fn kboot_boots_powernv() {
    let fake = FakeQemu::new(SKIBOOT_CONSOLE);
    let output = fake.kboot(&["--machine", "powernv"]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("OPAL v7.1"), "{stdout}");
    assert!(stderr.contains(" -M powernv9 -nodefaults -device ipmi-bmc-sim,id=bmc0 "), "{stderr}");
    let args = fake.recorded_args();
    assert_eq!(args[..3], ["-M", "powernv9", "-nodefaults"], "{args:?}");
    assert!(args.windows(2).any(|pair| pair == ["-device", "isa-ipmi-bt,bmc=bmc0,irq=10"]), "{args:?}");
    assert!(!args.iter().any(|arg| arg == "-cpu"), "{args:?}");

    let output = fake.kboot(&["--machine=powernv", "--fw", "skiboot", "--cpu", "POWER10"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(fake.recorded_args()[..2], ["-M", "powernv10"]);
}

#[test]
fn kboot_refuses_what_powernv_cannot_boot() {
    let fake = FakeQemu::new(SKIBOOT_CONSOLE);
    for (args, message) in [
        (&["--machine", "powernv", "--fw", "vof"][..], "firmware `vof` runs on machine pseries only"),
        (&["--fw", "slof", "--machine", "powernv"], "firmware `slof` runs on machine pseries only"),
        (&["--fw", "skiboot"], "firmware `skiboot` runs on machine powernv only"),
        (&["--machine", "powernv", "--accel", "kvm"], "use accel tcg"),
        (&["--machine", "powernv", "--mem", "512M"], "at least 1G"),
        (&["--machine", "powernv", "--cpu", "POWER8"], "not cpu `POWER8`"),
        (&["--machine", "powernv10"], "unknown machine `powernv10`"),
    ] {
        let output = fake.kboot(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message) && stderr.contains("usage: kboot"), "{args:?}: {stderr}");
    }
    assert!(!fake.dir.join("args").exists(), "QEMU was started");
}

#[test]
fn kboot_streams_and_passes() {
    let fake = FakeQemu::new(PASSING_CONSOLE);
    let output = fake.kboot(&["--fw", "vof", "--smp", "2", "--mem=512M", "--append", "a b"]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("KTAP version 1\n1..2\n"), "{stdout}");
    assert!(stderr.contains("kboot: QEMU emulator version 0.0.0 (fake)"), "{stderr}");
    assert!(stderr.contains("kboot: PASS: selftests 1 passed, 0 failed, 1 skipped"), "{stderr}");
    assert!(!fake.recorded_args().contains(&"-S".to_string()));
}

#[test]
fn kboot_fails_with_the_reason() {
    let fake = FakeQemu::new(&PASSING_CONSOLE.replace("ok 1 mm_alloc", "not ok 1 mm_alloc # leaked 4 pages"));
    let output = fake.kboot(&["--smp", "2", "--mem", "512M"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kboot:   not ok 1 mm_alloc (leaked 4 pages)"), "{stderr}");
}

#[test]
fn kboot_timeout() {
    let fake = FakeQemu::new("exec sleep 1000\n");
    let started = Instant::now();
    let output = fake.kboot(&["--timeout", "0.5"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("timed out after 0.5 s; no NMI (cannot connect to the QMP socket "), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn kboot_gdb_starts_halted_with_the_stub() {
    let fake = FakeQemu::new(PASSING_CONSOLE);
    let output = fake.kboot(&["--gdb", "--smp", "2", "--mem", "512M", "--fw", "slof"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let args = fake.recorded_args();
    assert!(args.windows(2).any(|pair| pair == ["-s", "-S"]), "{args:?}");
    assert!(args.contains(&"pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off".to_string()));
}

#[test]
fn kboot_usage_errors() {
    let fake = FakeQemu::new(PASSING_CONSOLE);
    for args in [&["--smp", "two"][..], &["--fw", "ofw"], &["--frobnicate"], &["--mem"]] {
        let output = fake.kboot(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(text(&output.stderr).contains("usage: kboot"), "{args:?}");
    }
    let output = fake.kboot(&["--kernel", "/nonexistent/kernel.elf"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("no kernel image"));
}

/// A fake whose console passes but which logs a guest error to its `-D` file, as QEMU does
/// for a wrong `tlbie` form.
const LOGS_A_GUEST_ERROR: &str = r#"while [ $# -gt 0 ]; do
    [ "$1" = "-D" ] && echo "helper_tlbie_isa300: attempt to invalidate a translation outside of quadrant 0" >> "$2"
    shift
done
"#;

#[test]
fn a_guest_error_in_the_qemu_log_fails_the_boot() {
    let fake = FakeQemu::new(&format!("{LOGS_A_GUEST_ERROR}{PASSING_CONSOLE}"));
    let mut config = fake.config();
    config.qemu_log = fake.dir.join("guest.log");
    // A log left by an earlier boot is not this boot's.
    fs::write(&config.qemu_log, "stale line from another boot\n").unwrap();
    let (output, verdict) = boot(&config);
    assert_eq!(output.qemu_log, "helper_tlbie_isa300: attempt to invalidate a translation outside of quadrant 0\n");
    assert!(verdict.has_kind("qemu-log"), "{}", verdict.reason());
    assert_eq!(verdict.failures.len(), 1, "{}", verdict.reason());

    let output = fake.kboot(&["--smp", "2", "--mem", "512M", "--append", "a b"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kboot:   QEMU guest log: helper_tlbie_isa300"), "{stderr}");
    assert!(stderr.contains(&format!("kboot: QEMU guest log: {}/qemu.log", fake.results().display())), "{stderr}");
    assert_eq!(
        fs::read_to_string(fake.results().join("qemu.log")).unwrap(),
        "helper_tlbie_isa300: attempt to invalidate a translation outside of quadrant 0\n"
    );
}

#[test]
fn kboot_passes_cpu_model_and_smt_topology() {
    let fake = FakeQemu::new(&PASSING_CONSOLE.replace("cpus=2", "cpus=8"));
    let output = fake.kboot(&["--cpu", "POWER8", "--smp", "8,threads=4", "--mem", "512M"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let args = fake.recorded_args();
    assert!(args.windows(2).any(|pair| pair == ["-cpu", "POWER8"]), "{args:?}");
    assert!(args.windows(2).any(|pair| pair == ["-smp", "8,threads=4"]), "{args:?}");
    assert!(args.windows(2).any(|pair| pair == ["-d", "guest_errors,unimp"]), "{args:?}");
    for bad in [&["--cpu", "POWER7"][..], &["--accel", "xen"], &["--smp", "6,threads=4"]] {
        assert_eq!(fake.kboot(bad).status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn kboot_says_why_kvm_cannot_run_here() {
    let fake = FakeQemu::new(PASSING_CONSOLE);
    let output = fake.kboot(&["--accel", "kvm", "--smp", "2", "--mem", "512M"]);
    match qemu::kvm_unavailable() {
        Some(why) => {
            assert_eq!(output.status.code(), Some(2));
            let stderr = text(&output.stderr);
            assert!(stderr.contains(&why), "{stderr}");
        }
        None => {
            // A POWER host with KVM: the fake was asked for it.
            let args = fake.recorded_args();
            assert!(args.windows(2).any(|pair| pair == ["-accel", "kvm"]), "{args:?}");
            assert!(args.windows(2).any(|pair| pair == ["-cpu", "host"]), "{args:?}");
        }
    }
}

#[test]
fn kboot_leaves_its_results() {
    let fake = FakeQemu::new(PASSING_CONSOLE);
    fs::create_dir_all(fake.results()).unwrap();
    fs::write(fake.results().join("verdict.json"), "an earlier boot's").unwrap();
    fs::write(fake.results().join("notes.txt"), "not a result file").unwrap();
    let output = fake.kboot(&["--smp", "2", "--mem", "512M", "--append", "a b"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("kboot: results in {}", fake.results().display())), "{stderr}");
    let read = |name: &str| fs::read_to_string(fake.results().join(name)).unwrap_or_else(|_| panic!("{name}"));
    assert_eq!(read("notes.txt"), "not a result file");
    assert!(read("console.txt").starts_with("VOF firmware\nppc64-kernel 0.1.0"), "{}", read("console.txt"));
    assert_eq!(read("ktap.txt"), "KTAP version 1\n1..2\nok 1 mm_alloc\n# note\nok 2 dt_cpus # SKIP not today\n");
    assert_eq!(read("qemu.log"), "");
    let verdict: serde_json::Value = serde_json::from_str(&read("verdict.json")).expect("verdict.json is JSON");
    assert_eq!(verdict["name"], "run");
    assert_eq!(verdict["status"], "pass");
    assert_eq!(verdict["judge"]["passed"], true);
    assert_eq!(verdict["tests"]["planned"], 2);
    assert_eq!(verdict["tests"]["counted"], serde_json::json!({ "passed": 1, "failed": 0, "skipped": 1 }));
    let command = verdict["command"].as_str().expect("command");
    assert!(command.contains(&format!(" -D {}/qemu.log ", fake.results().display())), "{command}");
}

/// A console with a fatal report, as the kernel prints one.
const PANICKING_CONSOLE: &str = r#"cat <<'EOF'
VOF firmware
ppc64-kernel 0.1.0 firmware=vof cpus=2 memory=512MiB mmu=radix cmdline="a b"
KTAP version 1
1..2
ok 1 mm_alloc

FATAL: panic at arch/ppc64/src/inject.rs:20:26: inject=panic: deliberate panic
  on CPU 0 (PIR 0)
Call trace:
 [0] 0xc000000000096e20 <core::panicking::panic_fmt+0x40>
 [1] 0xc000000000471340 <boot_cpu_entry+0x2720>
selftests: 1 passed, 1 failed, 0 skipped
EOF
"#;

#[test]
fn kboot_says_once_that_an_image_without_debug_information_cannot_decode() {
    let fake = FakeQemu::new(PANICKING_CONSOLE);
    let output = fake.kboot(&["--smp", "2", "--mem", "512M"]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The report as the kernel printed it.
    assert!(
        stdout.contains("Call trace:\n [0] 0xc000000000096e20 <core::panicking::panic_fmt+0x40>\n [1] "),
        "{stdout}"
    );
    assert!(stdout.contains(" [1] 0xc000000000471340 <boot_cpu_entry+0x2720>\nselftests:"), "{stdout}");
    let notes: Vec<&str> = stderr.lines().filter(|line| line.starts_with("kboot: note: ")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(notes[0].contains("is not an ELF file"), "{stderr}");
    assert!(notes[0].ends_with("the fatal report's addresses are shown as the kernel printed them"), "{stderr}");
    let verdict = fs::read_to_string(fake.results().join("verdict.json")).unwrap();
    let verdict: serde_json::Value = serde_json::from_str(&verdict).unwrap();
    assert_eq!((&verdict["status"], &verdict["decoded"]), (&"fail".into(), &serde_json::json!([])));
}
