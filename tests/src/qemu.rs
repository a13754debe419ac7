//! Building QEMU's command line (the only place that does) and running one boot: console
//! captured and optionally streamed, and a deadline: when it passes, the harness asks QEMU
//! for an NMI through QMP (the kernel then reports every CPU's state), reads the console a
//! few seconds more, and kills QEMU's process group.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{process, qmp};

/// QEMU binary used when `QEMU` is not set.
pub const DEFAULT_QEMU: &str = "qemu-system-ppc64";

/// The processor model when none is asked for.
pub const DEFAULT_CPU: &str = "POWER9";

/// What QEMU is asked to log about the guest (`-d`): accesses and instructions the
/// architecture calls invalid (bad `tlbie` forms, invalid SPRs, bad hcall arguments) and
/// features QEMU does not implement. Hardware is less forgiving than TCG, so each such line
/// is a boot failure unless the matrix row lists it with a reason.
pub const GUEST_LOG_ITEMS: &str = "guest_errors,unimp";

/// Spectre/Meltdown capabilities TCG cannot provide; left at their defaults, QEMU refuses to
/// start (or warns) on a TCG host.
const PSERIES_CAPS: &str = "cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off";

/// How long a boot may take before QEMU is killed, per firmware (env `BOOT_TIMEOUT` and the
/// matrix's `timeout` override these). VOF boots in well under a second; SLOF takes seconds;
/// skiboot about a second before the kernel starts.
const VOF_TIMEOUT: Duration = Duration::from_secs(30);
const SLOF_TIMEOUT: Duration = Duration::from_secs(60);
const SKIBOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// The least memory QEMU's powernv machines accept (`-m`); less is refused at start-up.
pub const POWERNV_MIN_MEMORY_MIB: u64 = 1024;

/// What the powernv machines get besides `-nodefaults`. `-nodefaults` keeps out the PCIe
/// host bridges, whose probing by skiboot fills the guest log with hundreds of lines; it
/// also drops the BMC, and skiboot powers the machine off through one (IPMI): without
/// these two devices, a simulated BMC on the LPC bus's IPMI BT interface, power-off hangs.
const POWERNV_DEVICES: &[&str] = &["ipmi-bmc-sim,id=bmc0", "isa-ipmi-bt,bmc=bmc0,irq=10"];

/// After the NMI at the deadline, how long the console is read for the kernel's report
/// before QEMU is killed (the kernel powers off sooner, having reported: well under a
/// second at 4 CPUs, a little more when a CPU does not answer and the others wait for it).
pub const NMI_GRACE: Duration = Duration::from_secs(5);

/// How long the QMP exchange that asks for the NMI may take in all.
const QMP_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the run loop looks at QEMU's exit status and the deadline while no output comes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// After QEMU exits, how long to wait for its stdout/stderr to reach end-of-file. Only a
/// process QEMU left behind can hold them open longer; it is killed, then given as long again.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Spawning a script that another test thread has just written can fail with ETXTBSY while
/// a concurrent fork still holds its write descriptor; a short retry covers that window.
const SPAWN_ATTEMPTS: u32 = 20;
const SPAWN_RETRY_DELAY: Duration = Duration::from_millis(25);

/// The platform QEMU emulates, as a matrix row's `machine` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MachineType {
    /// A PAPR guest of a hypervisor: `-M pseries`, firmware VOF or SLOF.
    #[default]
    Pseries,
    /// Bare-metal POWER under OPAL: `-M powernv9` (or `powernv10` for a POWER10), firmware
    /// skiboot (QEMU's bundled `skiboot.lid`, loaded by the machine itself), which loads the
    /// kernel ELF at 0x20000000 and passes `-append` in `/chosen/bootargs`.
    Powernv,
}

impl MachineType {
    pub fn name(self) -> &'static str {
        match self {
            MachineType::Pseries => "pseries",
            MachineType::Powernv => "powernv",
        }
    }

    /// The firmware when none is named: VOF on pseries, skiboot (the only one) on powernv.
    pub fn default_firmware(self) -> Firmware {
        match self {
            MachineType::Pseries => Firmware::Vof,
            MachineType::Powernv => Firmware::Skiboot,
        }
    }
}

impl FromStr for MachineType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "pseries" => Ok(MachineType::Pseries),
            "powernv" => Ok(MachineType::Powernv),
            _ => Err(format!("unknown machine `{text}` (expected `pseries` or `powernv`)")),
        }
    }
}

impl fmt::Display for MachineType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The firmware that loads the kernel: VOF or SLOF on pseries, skiboot on powernv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// Virtual Open Firmware (`x-vof=on`): a minimal client interface, boots instantly.
    Vof,
    /// SLOF, QEMU's default pseries firmware.
    Slof,
    /// OPAL's skiboot, the powernv machines' firmware.
    Skiboot,
}

impl Firmware {
    pub fn default_timeout(self) -> Duration {
        match self {
            Firmware::Vof => VOF_TIMEOUT,
            Firmware::Slof => SLOF_TIMEOUT,
            Firmware::Skiboot => SKIBOOT_TIMEOUT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Firmware::Vof => "vof",
            Firmware::Slof => "slof",
            Firmware::Skiboot => "skiboot",
        }
    }

    /// The machine this firmware runs on.
    pub fn machine_type(self) -> MachineType {
        match self {
            Firmware::Vof | Firmware::Slof => MachineType::Pseries,
            Firmware::Skiboot => MachineType::Powernv,
        }
    }
}

impl FromStr for Firmware {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "vof" => Ok(Firmware::Vof),
            "slof" => Ok(Firmware::Slof),
            "skiboot" => Ok(Firmware::Skiboot),
            _ => {
                Err(format!("unknown firmware `{text}` (expected `vof` or `slof` for pseries, `skiboot` for powernv)"))
            }
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Whether a boot's machine, firmware, processor model, accelerator and memory go together;
/// the error says what does not. Matrix rows and `kboot` both check with it, so that QEMU
/// is never started with a combination it refuses or that cannot work.
pub fn check_combination(
    machine: MachineType,
    firmware: Firmware,
    cpu: &str,
    accel: Accel,
    memory_mib: u64,
) -> Result<(), String> {
    if firmware.machine_type() != machine {
        return Err(match machine {
            MachineType::Pseries => {
                format!("firmware `{firmware}` runs on machine powernv only; pseries boots with vof or slof")
            }
            MachineType::Powernv => {
                format!("firmware `{firmware}` runs on machine pseries only; powernv boots with skiboot")
            }
        });
    }
    if machine == MachineType::Powernv {
        if accel == Accel::Kvm {
            return Err("machine powernv is emulated bare metal, which KVM does not run: use accel tcg".into());
        }
        if powernv_model(cpu).is_none() {
            return Err(format!(
                "machine powernv boots POWER9 (-M powernv9) or POWER10 (-M powernv10), not cpu `{cpu}`"
            ));
        }
        if memory_mib < POWERNV_MIN_MEMORY_MIB {
            return Err(format!("machine powernv needs at least 1G of memory (QEMU refuses less), not {memory_mib}M"));
        }
    }
    Ok(())
}

/// The powernv machine (`-M`) that emulates processor `cpu`, if the harness boots one.
fn powernv_model(cpu: &str) -> Option<&'static str> {
    match cpu {
        "POWER9" => Some("powernv9"),
        "POWER10" => Some("powernv10"),
        _ => None,
    }
}

/// A line of QEMU's guest log that a machine's firmware causes on every boot, before the
/// kernel runs: the judge allows it, as it does a matrix row's `qemu_log_allow`, and says
/// how often it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwareLogLine {
    /// A regex for the whole line.
    pub pattern: &'static str,
    /// Why it is not the kernel's fault.
    pub reason: &'static str,
}

const SKIBOOT_SIO_PROBE: FirmwareLogLine = FirmwareLogLine {
    pattern: r"^OPB write failed at @0xd001002e$",
    reason: "skiboot probes LPC I/O port 0x2e for an AST BMC's SuperIO, where nothing answers under \
             -nodefaults; skiboot then says \"PLAT: AST SIO unavailable!\"",
};

const SKIBOOT_CHIPTOD: FirmwareLogLine = FirmwareLogLine {
    pattern: r"^pnv_chiptod: unimplemented register: Ox[0-9a-f]+$",
    reason: "skiboot's time-of-day set-up accesses ChipTOD registers QEMU's model does not implement",
};

/// What skiboot on QEMU's powernv9 logs on every boot (QEMU 10.0, skiboot 7.1).
const SKIBOOT_POWER9_LOG: &[FirmwareLogLine] = &[SKIBOOT_SIO_PROBE, SKIBOOT_CHIPTOD];

/// What skiboot on QEMU's powernv10 logs on every boot: powernv9's lines, and for each core
/// and each quad an access to a SCOM register QEMU's POWER10 does not model.
const SKIBOOT_POWER10_LOG: &[FirmwareLogLine] = &[
    SKIBOOT_SIO_PROBE,
    SKIBOOT_CHIPTOD,
    FirmwareLogLine {
        pattern: r"^pnv_core_power10_xscom_write: unimp write 0x00000445$",
        reason: "skiboot writes this per-core SCOM register, which QEMU's POWER10 core does not implement",
    },
    FirmwareLogLine {
        pattern: r"^pnv_quad_power10_xscom_write: unimp write 0x0001[0-9a-f]650$",
        reason: "skiboot writes this per-quad SCOM register, which QEMU's POWER10 quad does not implement",
    },
    FirmwareLogLine {
        pattern: r"^pnv_qme_power10_xscom_read: unimp read 0x0000[0-9a-f]83c$",
        reason: "skiboot reads this per-quad QME register, which QEMU's POWER10 does not implement",
    },
];

/// The guest-log lines the firmware of `machine` (with processor `cpu`) causes on every boot.
/// VOF and SLOF cause none.
pub fn firmware_log_lines(machine: MachineType, cpu: &str) -> &'static [FirmwareLogLine] {
    match (machine, cpu) {
        (MachineType::Pseries, _) => &[],
        (MachineType::Powernv, "POWER10") => SKIBOOT_POWER10_LOG,
        (MachineType::Powernv, _) => SKIBOOT_POWER9_LOG,
    }
}

/// Parses a memory size as QEMU's `-m` and the kernel's `expect_mem=` take it: a number of
/// MiB, optionally suffixed `M`/`MiB` or `G`/`GiB` (case-insensitive).
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("bad memory size `{text}` (expected e.g. 512M or 1G)"))?;
    let mib_per_unit = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mib" => 1,
        "g" | "gib" => 1024,
        _ => return Err(format!("bad memory size `{text}` (expected e.g. 512M or 1G)")),
    };
    match number.checked_mul(mib_per_unit) {
        Some(mib) if mib > 0 => Ok(mib),
        _ => Err(format!("bad memory size `{text}`")),
    }
}

/// The QEMU binary: env `QEMU`, else `qemu-system-ppc64` from `PATH`.
pub fn binary_from_env() -> PathBuf {
    std::env::var_os("QEMU")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_QEMU))
}

/// The timeout from env `BOOT_TIMEOUT` (seconds, may be fractional), if set.
pub fn timeout_from_env() -> Result<Option<Duration>, String> {
    match std::env::var("BOOT_TIMEOUT") {
        Ok(text) => parse_seconds(&text).map(Some).map_err(|error| format!("BOOT_TIMEOUT: {error}")),
        Err(_) => Ok(None),
    }
}

/// Parses a positive number of seconds.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!("bad number of seconds `{text}`")),
    }
}

/// The first line of `qemu --version`, e.g. "QEMU emulator version 10.0.2 (...)".
pub fn version(qemu: &Path) -> Result<String, String> {
    let output = retry_if_busy(|| Command::new(qemu).arg("--version").stdin(Stdio::null()).output())
        .map_err(|error| format!("cannot run `{} --version`: {error}", qemu.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().next() {
        Some(line) if output.status.success() => Ok(line.trim().to_string()),
        _ => Err(format!(
            "`{} --version` failed ({}): {}",
            qemu.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// How QEMU executes the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// QEMU's own translator (any host).
    Tcg,
    /// The host's KVM (a POWER host with `/dev/kvm`): `-accel kvm -cpu host`.
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

impl FromStr for Accel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "tcg" => Ok(Accel::Tcg),
            "kvm" => Ok(Accel::Kvm),
            _ => Err(format!("unknown accelerator `{text}` (expected `tcg` or `kvm`)")),
        }
    }
}

/// Why KVM cannot run this kernel here, or `None` if it can: it needs a POWER host
/// (`qemu-system-ppc64 -accel kvm` runs guests of the host's own architecture only) and
/// `/dev/kvm`.
pub fn kvm_unavailable() -> Option<String> {
    kvm_unavailable_on(std::env::consts::ARCH, Path::new("/dev/kvm"))
}

fn kvm_unavailable_on(arch: &str, device: &Path) -> Option<String> {
    if !arch.starts_with("powerpc64") {
        return Some(format!("KVM needs a POWER host; this host is {arch}, so KVM boots are skipped"));
    }
    if !device.exists() {
        return Some(format!("{} is missing (no KVM on this host), so KVM boots are skipped", device.display()));
    }
    None
}

/// Parses `-smp` as the harness takes it: `N` or `N,threads=T` (SMT: T threads per
/// core, N a multiple of T).
pub fn parse_smp(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("bad smp `{text}` (expected N or N,threads=T)");
    let (cpus, threads) = match text.trim().split_once(',') {
        Some((cpus, rest)) => (cpus, rest.trim().strip_prefix("threads=").ok_or_else(bad)?),
        None => (text.trim(), "1"),
    };
    let cpus: u32 = cpus.trim().parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
    let threads: u32 = threads.trim().parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
    if !cpus.is_multiple_of(threads) {
        return Err(format!("bad smp `{text}`: {cpus} CPUs are not whole cores of {threads} threads"));
    }
    Ok((cpus, threads))
}

const FRESH_LOG_PREFIX: &str = "ppc64-kernel-qemu-";

/// A fresh path for a boot's QEMU log in the temporary directory (boots run in parallel),
/// for callers that keep no log of their own; [`run`] removes it once read.
fn fresh_log_path() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("{FRESH_LOG_PREFIX}{}-{n}.log", std::process::id()))
}

fn is_fresh_log_path(path: &Path) -> bool {
    path.parent() == Some(std::env::temp_dir().as_path())
        && path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(FRESH_LOG_PREFIX))
}

const QMP_DIR_PREFIX: &str = "ppc64-kernel-qmp-";
const QMP_SOCKET_NAME: &str = "qmp.sock";
/// A socket's path must fit in `sun_path` (108 bytes on Linux): a temporary directory
/// longer than this leaves the socket in /tmp instead.
const QMP_BASE_MAX: usize = 64;

/// A fresh path for a boot's QMP socket, in a directory of its own that [`run`] creates
/// (only the user may enter it) and removes.
fn fresh_qmp_path() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = std::env::temp_dir();
    let base = if temp.as_os_str().len() <= QMP_BASE_MAX { temp } else { PathBuf::from("/tmp") };
    base.join(format!("{QMP_DIR_PREFIX}{}-{n}", std::process::id())).join(QMP_SOCKET_NAME)
}

/// The directory [`fresh_qmp_path`] made `socket`'s, if it is one.
fn fresh_qmp_dir(socket: &Path) -> Option<&Path> {
    let dir = socket.parent()?;
    let fresh = socket.file_name()? == QMP_SOCKET_NAME
        && dir.file_name().is_some_and(|name| name.to_string_lossy().starts_with(QMP_DIR_PREFIX));
    fresh.then_some(dir)
}

/// `-qmp` as QEMU takes it; a comma in the path is doubled, as QEMU's option syntax wants.
fn qmp_arg(socket: &Path) -> String {
    format!("unix:{},server=on,wait=off", socket.to_string_lossy().replace(',', ",,"))
}

/// The machine QEMU was given, which the banner must describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u32,
    pub memory_mib: u64,
    /// What its firmware logs on every boot, which the judge allows.
    pub firmware_log: &'static [FirmwareLogLine],
}

/// Whether QEMU gets a process group of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessGroup {
    /// Its own group, killed as a whole at the deadline (tests, CI).
    Own,
    /// Ours, so that Ctrl-C at a terminal reaches QEMU too (interactive `kboot`); at the
    /// deadline only QEMU itself is killed.
    Shared,
}

/// Everything that determines one boot.
#[derive(Clone, Debug)]
pub struct BootConfig {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub machine_type: MachineType,
    /// Must be the machine's (see [`check_combination`]).
    pub firmware: Firmware,
    /// `-cpu` under TCG (POWER8, POWER9, POWER10); KVM always uses `host`. On powernv it
    /// picks the machine instead (`powernv9`, `powernv10`), whose processor is implied.
    pub cpu: String,
    pub accel: Accel,
    pub cpus: u32,
    /// SMT threads per core (`-smp N,threads=T`); 1 leaves QEMU's default topology.
    pub threads: u32,
    pub memory_mib: u64,
    /// Kernel command line as given; see [`BootConfig::kernel_cmdline`] for what is passed.
    pub append: String,
    /// `None`: wait for QEMU forever.
    pub timeout: Option<Duration>,
    /// Start halted with QEMU's gdb stub on tcp::1234 (`-s -S`).
    pub gdb: bool,
    pub process_group: ProcessGroup,
    /// Where QEMU writes its guest-error log (`-d guest_errors,unimp -D`); every boot has
    /// one, emptied before QEMU starts and read into [`BootOutput::qemu_log`].
    pub qemu_log: PathBuf,
    /// Where QEMU listens for QMP (`-qmp unix:PATH,server=on,wait=off`), which the harness
    /// uses once: for the NMI at the deadline. Fresh for each config, in a directory of its
    /// own that [`run`] creates before QEMU starts and removes after.
    pub qmp_socket: PathBuf,
    /// How long the console is read after that NMI before QEMU is killed.
    pub nmi_grace: Duration,
}

impl BootConfig {
    /// A pseries VOF boot of `kernel` with one CPU and 1 GiB; callers adjust the fields.
    pub fn new(qemu: impl Into<PathBuf>, kernel: impl Into<PathBuf>) -> Self {
        BootConfig {
            qemu: qemu.into(),
            kernel: kernel.into(),
            machine_type: MachineType::Pseries,
            firmware: Firmware::Vof,
            cpu: DEFAULT_CPU.to_string(),
            accel: Accel::Tcg,
            cpus: 1,
            threads: 1,
            memory_mib: 1024,
            append: String::new(),
            timeout: Some(Firmware::Vof.default_timeout()),
            gdb: false,
            process_group: ProcessGroup::Own,
            qemu_log: fresh_log_path(),
            qmp_socket: fresh_qmp_path(),
            nmi_grace: NMI_GRACE,
        }
    }

    /// The `-cpu` QEMU gets: the model under TCG, the host's processor under KVM.
    pub fn cpu_model(&self) -> &str {
        match self.accel {
            Accel::Tcg => &self.cpu,
            Accel::Kvm => "host",
        }
    }

    /// `-smp` as QEMU takes it.
    pub fn smp_arg(&self) -> String {
        if self.threads > 1 {
            format!("{},threads={}", self.cpus, self.threads)
        } else {
            self.cpus.to_string()
        }
    }

    /// Whether QEMU can boot this; see [`check_combination`].
    pub fn check(&self) -> Result<(), String> {
        check_combination(self.machine_type, self.firmware, &self.cpu, self.accel, self.memory_mib)
    }

    /// The machine the banner must describe.
    pub fn machine(&self) -> Machine {
        Machine {
            cpus: self.cpus,
            memory_mib: self.memory_mib,
            firmware_log: firmware_log_lines(self.machine_type, &self.cpu),
        }
    }

    /// `-M` as QEMU takes it: pseries with its firmware and the capabilities TCG lacks, or
    /// the powernv machine for the processor.
    pub fn machine_arg(&self) -> String {
        match self.machine_type {
            MachineType::Pseries => {
                let mut machine = String::from("pseries");
                if self.firmware == Firmware::Vof {
                    machine.push_str(",x-vof=on");
                }
                machine.push(',');
                machine.push_str(PSERIES_CAPS);
                machine
            }
            // An unknown model is refused by `check`; QEMU would name the problem too.
            MachineType::Powernv => powernv_model(&self.cpu).unwrap_or("powernv9").to_string(),
        }
    }

    /// The kernel command line: `append`, plus `expect_cpus=`/`expect_mem=` describing the
    /// machine (unless `append` already sets them), so that the kernel's device-tree
    /// self-test always checks what QEMU was really given.
    pub fn kernel_cmdline(&self) -> String {
        let mut cmdline = self.append.trim().to_string();
        let mut add = |key: &str, value: String| {
            if !self.append.split_whitespace().any(|word| word.starts_with(key)) {
                if !cmdline.is_empty() {
                    cmdline.push(' ');
                }
                cmdline.push_str(key);
                cmdline.push_str(&value);
            }
        };
        add("expect_cpus=", self.cpus.to_string());
        add("expect_mem=", format!("{}M", self.memory_mib));
        cmdline
    }

    /// QEMU's arguments. The console (spapr-vty on pseries, the LPC UART on powernv) goes to
    /// stdout with no monitor multiplexed onto it; stdin is /dev/null (see [`run`]), so QEMU
    /// never touches a terminal; the only way in is QMP, on a socket of the harness's. Only
    /// [`BootConfig::check`]ed configurations make sense.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |arg: &str| args.push(arg.into());
        push("-M");
        push(&self.machine_arg());
        if self.machine_type == MachineType::Powernv {
            push("-nodefaults");
            for device in POWERNV_DEVICES {
                push("-device");
                push(device);
            }
        }
        if self.accel == Accel::Kvm {
            push("-accel");
            push("kvm");
        }
        // The powernv machine implies its processor.
        if self.machine_type == MachineType::Pseries {
            push("-cpu");
            push(self.cpu_model());
        }
        push("-m");
        push(&format!("{}M", self.memory_mib));
        push("-smp");
        push(&self.smp_arg());
        push("-display");
        push("none");
        push("-vga");
        push("none");
        push("-serial");
        push("stdio");
        push("-monitor");
        push("none");
        push("-qmp");
        push(&qmp_arg(&self.qmp_socket));
        push("-no-reboot");
        push("-d");
        push(GUEST_LOG_ITEMS);
        if self.gdb {
            push("-s");
            push("-S");
        }
        push("-append");
        push(&self.kernel_cmdline());
        args.push("-D".into());
        args.push(self.qemu_log.clone().into_os_string());
        args.push("-kernel".into());
        args.push(self.kernel.clone().into_os_string());
        args
    }

    /// The command line as a shell would take it, for logs and for reproducing a failure.
    pub fn display_command(&self) -> String {
        std::iter::once(self.qemu.clone().into_os_string())
            .chain(self.args())
            .map(|arg| shell_quote(&arg.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_=,./:+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Which of QEMU's output streams a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What one boot produced; the judge's input.
#[derive(Clone, Debug, Default)]
pub struct BootOutput {
    /// QEMU's stdout: the guest console.
    pub console: String,
    /// QEMU's own messages.
    pub stderr: String,
    /// What QEMU logged about the guest (`-D` file): guest errors, unimplemented features.
    pub qemu_log: String,
    /// Both streams interleaved in arrival order: what a human wants to read on failure.
    pub transcript: String,
    /// QEMU's exit code; `None` if a signal ended it, or the deadline passed.
    pub exit_code: Option<i32>,
    /// The deadline passed (the harness then asked for an NMI: see `nmi`).
    pub timed_out: bool,
    /// What came of the NMI at the deadline; `None` if the deadline did not pass.
    pub nmi: Option<Nmi>,
    /// From spawn to exit.
    pub elapsed: Duration,
}

/// What the harness did when a boot's deadline passed: asked QEMU for an NMI through QMP,
/// so that the kernel reports every CPU, and read the console a while longer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nmi {
    /// From spawn to the deadline.
    pub at: Duration,
    /// `Ok` when QEMU took `inject-nmi`; otherwise why not (QEMU was then killed at once).
    pub sent: Result<(), String>,
    /// From the request to QEMU's end.
    pub waited: Duration,
    /// QEMU exited by itself in that time (the kernel powers off after its report) rather
    /// than being killed.
    pub qemu_exited: bool,
}

enum Event {
    Data(Stream, Vec<u8>),
    Closed,
}

/// Boots `config` and returns its output once QEMU has exited, or been killed after the
/// deadline: there the harness first asks QEMU for an NMI over QMP and reads the console
/// for up to `nmi_grace` more (or until QEMU exits), so that the kernel's report of every
/// CPU is in the output; if QMP fails, QEMU is killed at once. `observer` sees every chunk
/// of output as it arrives, for live streaming. Errors are the harness's own (QEMU cannot
/// be started), not the boot's.
pub fn run(config: &BootConfig, observer: &mut dyn FnMut(Stream, &[u8])) -> io::Result<BootOutput> {
    // A log left by an earlier boot must not be judged as this one's; QEMU appends to it.
    match std::fs::remove_file(&config.qemu_log) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                error.kind(),
                format!("cannot empty the QEMU log {}: {error}", config.qemu_log.display()),
            ))
        }
        _ => {}
    }
    if let Some(parent) = config.qemu_log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    prepare_qmp_socket(&config.qmp_socket)?;
    let result = run_qemu(config, observer);
    let _ = std::fs::remove_file(&config.qmp_socket);
    if let Some(dir) = fresh_qmp_dir(&config.qmp_socket) {
        let _ = std::fs::remove_dir(dir);
    }
    result
}

/// Makes room for QEMU's QMP socket: a socket left at the path by an earlier boot goes,
/// then its directory is made (owner only, so no other user can reach this QEMU).
fn prepare_qmp_socket(socket: &Path) -> io::Result<()> {
    let cannot = |error: io::Error| {
        io::Error::new(error.kind(), format!("cannot prepare the QMP socket {}: {error}", socket.display()))
    };
    match std::fs::remove_file(socket) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(cannot(error)),
        _ => {}
    }
    if let Some(dir) = socket.parent().filter(|dir| !dir.as_os_str().is_empty() && !dir.exists()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(cannot)?;
    }
    Ok(())
}

/// [`run`] once the files QEMU writes have their places.
fn run_qemu(config: &BootConfig, observer: &mut dyn FnMut(Stream, &[u8])) -> io::Result<BootOutput> {
    let mut command = Command::new(&config.qemu);
    command.args(config.args()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if config.process_group == ProcessGroup::Own {
        command.process_group(0);
    }
    process::kill_when_parent_exits(&mut command);

    let started = Instant::now();
    let mut qemu = RunningQemu::spawn(&mut command, config.process_group)
        .map_err(|error| io::Error::new(error.kind(), format!("cannot start `{}`: {error}", config.qemu.display())))?;
    let deadline = config.timeout.map(|timeout| started + timeout);

    let (sender, events) = mpsc::channel();
    let stdout = qemu.child.stdout.take().expect("stdout is piped");
    let stderr = qemu.child.stderr.take().expect("stderr is piped");
    spawn_reader(stdout, Stream::Stdout, sender.clone());
    spawn_reader(stderr, Stream::Stderr, sender);

    let mut console = Vec::new();
    let mut stderr = Vec::new();
    let mut transcript = Vec::new();
    let mut open_streams = 2;
    let mut timed_out = false;
    let mut exited: Option<(ExitStatus, Instant)> = None;
    let mut stragglers_killed = false;
    // The NMI at the deadline: when it was asked for, what came of it, and until when the
    // console is read for the kernel's report.
    let mut nmi: Option<(Instant, Nmi)> = None;
    let mut grace_end: Option<Instant> = None;

    // Until QEMU has exited and its output is drained (or abandoned, see DRAIN_GRACE).
    loop {
        let now = Instant::now();
        if exited.is_none() {
            if let Some(status) = qemu.child.try_wait()? {
                if let Some((_, nmi)) = nmi.as_mut() {
                    nmi.qemu_exited = true;
                }
                exited = Some((status, now));
            } else if grace_end.is_some_and(|end| now >= end) {
                qemu.kill();
                exited = Some((qemu.child.wait()?, now));
            } else if !timed_out && deadline.is_some_and(|deadline| now >= deadline) {
                timed_out = true;
                let sent = qmp::inject_nmi(&config.qmp_socket, QMP_TIMEOUT);
                let asked = Instant::now();
                if sent.is_ok() {
                    grace_end = Some(asked + config.nmi_grace);
                } else {
                    qemu.kill();
                    exited = Some((qemu.child.wait()?, asked));
                }
                let at = now - started;
                nmi = Some((asked, Nmi { at, sent, waited: Duration::ZERO, qemu_exited: false }));
            }
        }
        if let Some((_, exit_time)) = exited {
            if open_streams == 0 {
                break;
            }
            // Something QEMU left behind still holds its stdout/stderr open.
            let waited = now - exit_time;
            if waited >= DRAIN_GRACE && !stragglers_killed {
                qemu.kill();
                stragglers_killed = true;
            }
            if waited >= 2 * DRAIN_GRACE {
                break;
            }
        }
        if open_streams == 0 {
            // QEMU closed its output but runs on: only its exit or the deadline can end this.
            thread::sleep(POLL_INTERVAL);
            continue;
        }
        match events.recv_timeout(POLL_INTERVAL) {
            Ok(Event::Data(stream, bytes)) => {
                observer(stream, &bytes);
                match stream {
                    Stream::Stdout => console.extend_from_slice(&bytes),
                    Stream::Stderr => stderr.extend_from_slice(&bytes),
                }
                transcript.extend_from_slice(&bytes);
            }
            Ok(Event::Closed) => open_streams -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open_streams = 0,
        }
    }

    let (status, exit_time) = exited.expect("the loop ends only after QEMU has exited");
    qemu.reaped = true;
    let nmi = nmi.map(|(asked, nmi)| Nmi { waited: exit_time.saturating_duration_since(asked), ..nmi });
    let elapsed = started.elapsed();
    // Both streams are closed, so nothing QEMU started can still be writing; make sure
    // nothing of it is left running all the same.
    if config.process_group == ProcessGroup::Own {
        let _ = process::kill_process_group(qemu.child.id());
    }

    // QEMU creates the file only when it has something to log.
    let qemu_log = match std::fs::read(&config.qemu_log) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(io::Error::new(
                error.kind(),
                format!("cannot read the QEMU log {}: {error}", config.qemu_log.display()),
            ))
        }
    };
    if is_fresh_log_path(&config.qemu_log) {
        let _ = std::fs::remove_file(&config.qemu_log);
    }

    Ok(BootOutput {
        console: String::from_utf8_lossy(&console).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        qemu_log,
        transcript: String::from_utf8_lossy(&transcript).into_owned(),
        exit_code: if timed_out { None } else { status.code() },
        timed_out,
        nmi,
        elapsed,
    })
}

/// Runs `start` (which executes QEMU) again while it fails with ETXTBSY; see SPAWN_ATTEMPTS.
fn retry_if_busy<T>(mut start: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut attempt = 1;
    loop {
        match start() {
            Err(error) if error.kind() == io::ErrorKind::ExecutableFileBusy && attempt < SPAWN_ATTEMPTS => {
                attempt += 1;
                thread::sleep(SPAWN_RETRY_DELAY);
            }
            result => return result,
        }
    }
}

fn spawn_reader(mut pipe: impl Read + Send + 'static, stream: Stream, events: mpsc::Sender<Event>) {
    thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) => break,
                Ok(length) => {
                    if events.send(Event::Data(stream, buffer[..length].to_vec())).is_err() {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = events.send(Event::Closed);
    });
}

/// A spawned QEMU that is killed (with its process group) if dropped before being reaped,
/// e.g. when the observer panics.
struct RunningQemu {
    child: Child,
    process_group: ProcessGroup,
    reaped: bool,
}

impl RunningQemu {
    fn spawn(command: &mut Command, process_group: ProcessGroup) -> io::Result<Self> {
        let child = retry_if_busy(|| command.spawn())?;
        Ok(RunningQemu { child, process_group, reaped: false })
    }

    fn kill(&mut self) {
        match self.process_group {
            ProcessGroup::Own => {
                let _ = process::kill_process_group(self.child.id());
            }
            ProcessGroup::Shared => {
                let _ = self.child.kill();
            }
        }
    }
}

impl Drop for RunningQemu {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BootConfig {
        let mut config = BootConfig::new("qemu-system-ppc64", "build/kernel.elf");
        config.qemu_log = "build/q.log".into();
        config.qmp_socket = "build/qmp.sock".into();
        config
    }

    fn args(config: &BootConfig) -> Vec<String> {
        config.args().into_iter().map(|arg| arg.into_string().unwrap()).collect()
    }

    #[test]
    fn vof_command_line() {
        let mut config = config();
        config.cpus = 2;
        config.memory_mib = 512;
        config.append = "selftest=mm,dt loglevel=debug".into();
        assert_eq!(
            args(&config),
            [
                "-M",
                "pseries,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off",
                "-cpu",
                "POWER9",
                "-m",
                "512M",
                "-smp",
                "2",
                "-display",
                "none",
                "-vga",
                "none",
                "-serial",
                "stdio",
                "-monitor",
                "none",
                "-qmp",
                "unix:build/qmp.sock,server=on,wait=off",
                "-no-reboot",
                "-d",
                "guest_errors,unimp",
                "-append",
                "selftest=mm,dt loglevel=debug expect_cpus=2 expect_mem=512M",
                "-D",
                "build/q.log",
                "-kernel",
                "build/kernel.elf",
            ]
        );
    }

    #[test]
    fn powernv_command_line() {
        let mut config = config();
        config.machine_type = MachineType::Powernv;
        config.firmware = Firmware::Skiboot;
        config.cpus = 4;
        config.append = "mmu=hash".into();
        assert_eq!(config.check(), Ok(()));
        assert_eq!(
            args(&config),
            [
                "-M",
                "powernv9",
                "-nodefaults",
                "-device",
                "ipmi-bmc-sim,id=bmc0",
                "-device",
                "isa-ipmi-bt,bmc=bmc0,irq=10",
                "-m",
                "1024M",
                "-smp",
                "4",
                "-display",
                "none",
                "-vga",
                "none",
                "-serial",
                "stdio",
                "-monitor",
                "none",
                "-qmp",
                "unix:build/qmp.sock,server=on,wait=off",
                "-no-reboot",
                "-d",
                "guest_errors,unimp",
                "-append",
                "mmu=hash expect_cpus=4 expect_mem=1024M",
                "-D",
                "build/q.log",
                "-kernel",
                "build/kernel.elf",
            ]
        );
        assert_eq!(config.firmware.default_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn powernv10_smt_and_gdb() {
        let mut config = config();
        config.machine_type = MachineType::Powernv;
        config.firmware = Firmware::Skiboot;
        config.cpu = "POWER10".into();
        config.cpus = 4;
        config.threads = 4;
        config.gdb = true;
        let args = args(&config);
        let at = |flag: &str| args.iter().position(|arg| arg == flag).expect(flag);
        assert_eq!(args[at("-M") + 1], "powernv10");
        assert!(!args.iter().any(|arg| arg == "-cpu"), "the machine implies the processor: {args:?}");
        assert_eq!(args[at("-smp") + 1], "4,threads=4");
        assert_eq!(args[at("-s") + 1], "-S");
        assert_eq!(config.machine().firmware_log, SKIBOOT_POWER10_LOG);
    }

    #[test]
    fn machine_and_firmware_must_go_together() {
        let check = |machine, firmware, cpu, accel, memory_mib| {
            check_combination(machine, firmware, cpu, accel, memory_mib).map_err(|error| error.to_string())
        };
        let (pseries, powernv) = (MachineType::Pseries, MachineType::Powernv);
        assert_eq!(check(pseries, Firmware::Slof, "POWER8", Accel::Tcg, 512), Ok(()));
        assert_eq!(check(pseries, Firmware::Vof, "POWER9", Accel::Kvm, 512), Ok(()));
        assert_eq!(check(powernv, Firmware::Skiboot, "POWER9", Accel::Tcg, 1024), Ok(()));
        assert_eq!(check(powernv, Firmware::Skiboot, "POWER10", Accel::Tcg, 4096), Ok(()));
        let error =
            |machine, firmware, cpu, accel, memory_mib| check(machine, firmware, cpu, accel, memory_mib).unwrap_err();
        assert_eq!(
            error(powernv, Firmware::Vof, "POWER9", Accel::Tcg, 1024),
            "firmware `vof` runs on machine pseries only; powernv boots with skiboot"
        );
        assert_eq!(
            error(pseries, Firmware::Skiboot, "POWER9", Accel::Tcg, 1024),
            "firmware `skiboot` runs on machine powernv only; pseries boots with vof or slof"
        );
        assert!(error(powernv, Firmware::Skiboot, "POWER9", Accel::Kvm, 1024).contains("use accel tcg"));
        assert_eq!(
            error(powernv, Firmware::Skiboot, "POWER8", Accel::Tcg, 1024),
            "machine powernv boots POWER9 (-M powernv9) or POWER10 (-M powernv10), not cpu `POWER8`"
        );
        assert_eq!(
            error(powernv, Firmware::Skiboot, "POWER9", Accel::Tcg, 512),
            "machine powernv needs at least 1G of memory (QEMU refuses less), not 512M"
        );
    }

    #[test]
    fn machine_and_firmware_names() {
        assert_eq!("powernv".parse(), Ok(MachineType::Powernv));
        assert_eq!("pseries".parse(), Ok(MachineType::Pseries));
        assert_eq!(
            "powernv9".parse::<MachineType>().unwrap_err(),
            "unknown machine `powernv9` (expected `pseries` or `powernv`)"
        );
        assert_eq!("skiboot".parse(), Ok(Firmware::Skiboot));
        assert_eq!(MachineType::Powernv.default_firmware(), Firmware::Skiboot);
        assert_eq!(MachineType::Pseries.default_firmware(), Firmware::Vof);
        assert!("opal".parse::<Firmware>().unwrap_err().contains("`skiboot` for powernv"));
    }

    /// The lines skiboot made QEMU log in real boots without a kernel (QEMU 10.0.2,
    /// `-smp 4`), each matched by the machine's allowances; pseries allows none of them.
    #[test]
    fn firmware_log_lines_match_what_skiboot_logs() {
        let power9 = "OPB write failed at @0xd001002e\npnv_chiptod: unimplemented register: Ox13\n\
                      pnv_chiptod: unimplemented register: Ox0\npnv_chiptod: unimplemented register: Ox10";
        let power10 = "pnv_core_power10_xscom_write: unimp write 0x00000445\n\
                       pnv_quad_power10_xscom_write: unimp write 0x00011650\n\
                       pnv_quad_power10_xscom_write: unimp write 0x00018650\n\
                       pnv_qme_power10_xscom_read: unimp read 0x0000183c\n\
                       pnv_qme_power10_xscom_read: unimp read 0x0000883c";
        let matched = |lines: &[FirmwareLogLine], line: &str| {
            lines.iter().any(|allowed| regex::Regex::new(allowed.pattern).expect("pattern compiles").is_match(line))
        };
        let power9_lines = firmware_log_lines(MachineType::Powernv, "POWER9");
        let power10_lines = firmware_log_lines(MachineType::Powernv, "POWER10");
        for line in power9.lines() {
            assert!(matched(power9_lines, line) && matched(power10_lines, line), "{line}");
        }
        for line in power10.lines() {
            assert!(matched(power10_lines, line) && !matched(power9_lines, line), "{line}");
        }
        assert!(firmware_log_lines(MachineType::Pseries, "POWER9").is_empty());
        // What a kernel jumping to 0 makes QEMU log is no firmware's.
        assert!(!matched(power10_lines, "invalid/unsupported opcode: 00 - 00 - 00 - 00 (00000000) 0000000000000000"));
        assert!(!matched(power9_lines, "OPB write failed at @0xd00103f8"));
    }

    #[test]
    fn slof_machine_and_gdb() {
        let mut config = config();
        config.firmware = Firmware::Slof;
        config.gdb = true;
        let args = args(&config);
        assert_eq!(args[1], format!("pseries,{PSERIES_CAPS}"));
        let stub = args.iter().position(|arg| arg == "-s").expect("-s present");
        assert_eq!(args[stub + 1], "-S");
    }

    #[test]
    fn kvm_command_line() {
        let mut config = config();
        config.accel = Accel::Kvm;
        config.cpu = "POWER8".into();
        config.cpus = 4;
        let args = args(&config);
        let at = |flag: &str| args.iter().position(|arg| arg == flag).expect(flag);
        assert_eq!(args[at("-accel") + 1], "kvm");
        // Under KVM the guest runs on the host's processor, whatever model was named.
        assert_eq!(args[at("-cpu") + 1], "host");
        assert!(at("-accel") < at("-cpu"));
        assert_eq!(args[at("-smp") + 1], "4");
        assert_eq!(args[at("-d") + 1], GUEST_LOG_ITEMS);
        // VOF works under KVM too; the machine and its caps are the same as under TCG.
        assert!(args[1].starts_with("pseries,x-vof=on,cap-cfpc=broken"));
    }

    #[test]
    fn cpu_model_and_smt_topology() {
        let mut config = config();
        config.cpu = "POWER8".into();
        config.cpus = 8;
        config.threads = 4;
        let args = args(&config);
        let at = |flag: &str| args.iter().position(|arg| arg == flag).expect(flag);
        assert_eq!(args[at("-cpu") + 1], "POWER8");
        assert!(!args.iter().any(|arg| arg == "-accel"));
        assert_eq!(args[at("-smp") + 1], "8,threads=4");
        assert_eq!(config.kernel_cmdline(), "expect_cpus=8 expect_mem=1024M");
    }

    #[test]
    fn smp_syntax() {
        assert_eq!(parse_smp("4"), Ok((4, 1)));
        assert_eq!(parse_smp("8,threads=4"), Ok((8, 4)));
        assert_eq!(parse_smp(" 32 "), Ok((32, 1)));
        assert!(parse_smp("6,threads=4").unwrap_err().contains("not whole cores"));
        assert!(parse_smp("0").is_err());
        assert!(parse_smp("8,cores=2").is_err());
        assert!(parse_smp("8,threads=0").is_err());
    }

    #[test]
    fn kvm_availability() {
        let missing = Path::new("/nonexistent/kvm");
        let here = Path::new("/");
        assert!(kvm_unavailable_on("x86_64", here).unwrap().contains("needs a POWER host"));
        assert!(kvm_unavailable_on("powerpc64", missing).unwrap().contains("is missing"));
        assert_eq!(kvm_unavailable_on("powerpc64", here), None);
        assert_eq!("kvm".parse(), Ok(Accel::Kvm));
        assert!("xen".parse::<Accel>().is_err());
    }

    #[test]
    fn every_boot_gets_its_own_log() {
        let a = BootConfig::new("q", "k");
        let b = BootConfig::new("q", "k");
        assert_ne!(a.qemu_log, b.qemu_log);
        let args = args(&a);
        let at = args.iter().position(|arg| arg == "-D").expect("-D");
        assert_eq!(Path::new(&args[at + 1]), a.qemu_log);
    }

    #[test]
    fn every_boot_gets_its_own_qmp_socket() {
        let (a, b) = (BootConfig::new("q", "k"), BootConfig::new("q", "k"));
        assert_ne!(a.qmp_socket, b.qmp_socket);
        assert_ne!(a.qmp_socket.parent(), b.qmp_socket.parent(), "a directory per boot");
        assert!(fresh_qmp_dir(&a.qmp_socket).is_some());
        assert!(a.qmp_socket.as_os_str().len() < 108, "{}", a.qmp_socket.display());
        let args = args(&a);
        let at = args.iter().position(|arg| arg == "-qmp").expect("-qmp");
        assert_eq!(args[at + 1], format!("unix:{},server=on,wait=off", a.qmp_socket.display()));
        assert_eq!(args[at - 2..at], ["-monitor", "none"]);
        // Only a directory the harness made is removed after the boot.
        assert_eq!(fresh_qmp_dir(Path::new("build/qmp.sock")), None);
        assert_eq!(fresh_qmp_dir(Path::new("/tmp/ppc64-kernel-qmp-1-2/other")), None);
        // QEMU's option syntax: a comma in a value is written twice.
        assert_eq!(qmp_arg(Path::new("/tmp/a,b/qmp.sock")), "unix:/tmp/a,,b/qmp.sock,server=on,wait=off");
    }

    #[test]
    fn explicit_expectations_are_kept() {
        let mut config = config();
        config.append = "expect_cpus=3 expect_mem=2G".into();
        assert_eq!(config.kernel_cmdline(), "expect_cpus=3 expect_mem=2G");
        config.append = " x=\"a  b\" expect_mem=2G ".into();
        assert_eq!(config.kernel_cmdline(), "x=\"a  b\" expect_mem=2G expect_cpus=1");
        config.append = String::new();
        assert_eq!(config.kernel_cmdline(), "expect_cpus=1 expect_mem=1024M");
    }

    #[test]
    fn display_command_quotes_the_cmdline() {
        let mut config = config();
        config.append = "cmd='x'".into();
        let shown = config.display_command();
        assert!(shown.starts_with("qemu-system-ppc64 -M pseries,x-vof=on,"), "{shown}");
        assert!(shown.contains(r"-append 'cmd='\''x'\'' expect_cpus=1 expect_mem=1024M'"), "{shown}");
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_size("512"), Ok(512));
        assert_eq!(parse_memory_size("1024M"), Ok(1024));
        assert_eq!(parse_memory_size("2G"), Ok(2048));
        assert_eq!(parse_memory_size("1GiB"), Ok(1024));
        assert!(parse_memory_size("1T").is_err());
        assert!(parse_memory_size("M").is_err());
        assert!(parse_memory_size("0").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
