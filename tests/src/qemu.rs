//! Building QEMU's command line (the only place that does) and running one boot: console
//! captured and optionally streamed, a deadline after which QEMU's process group is killed.

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

use crate::process;

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
/// matrix's `timeout` override these). VOF boots in well under a second; SLOF takes seconds.
const VOF_TIMEOUT: Duration = Duration::from_secs(30);
const SLOF_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the run loop looks at QEMU's exit status and the deadline while no output comes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// After QEMU exits, how long to wait for its stdout/stderr to reach end-of-file. Only a
/// process QEMU left behind can hold them open longer; it is killed, then given as long again.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Spawning a script that another test thread has just written can fail with ETXTBSY while
/// a concurrent fork still holds its write descriptor; a short retry covers that window.
const SPAWN_ATTEMPTS: u32 = 20;
const SPAWN_RETRY_DELAY: Duration = Duration::from_millis(25);

/// The firmware QEMU's pseries machine loads the kernel with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// Virtual Open Firmware (`x-vof=on`): a minimal client interface, boots instantly.
    Vof,
    /// SLOF, QEMU's default pseries firmware.
    Slof,
}

impl Firmware {
    pub fn default_timeout(self) -> Duration {
        match self {
            Firmware::Vof => VOF_TIMEOUT,
            Firmware::Slof => SLOF_TIMEOUT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Firmware::Vof => "vof",
            Firmware::Slof => "slof",
        }
    }
}

impl FromStr for Firmware {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "vof" => Ok(Firmware::Vof),
            "slof" => Ok(Firmware::Slof),
            _ => Err(format!("unknown firmware `{text}` (expected `vof` or `slof`)")),
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
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

/// The machine QEMU was given, which the banner must describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u32,
    pub memory_mib: u64,
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
    pub firmware: Firmware,
    /// `-cpu` under TCG (POWER8, POWER9, POWER10); KVM always uses `host`.
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
}

impl BootConfig {
    /// A VOF boot of `kernel` with one CPU and 1 GiB; callers adjust the fields.
    pub fn new(qemu: impl Into<PathBuf>, kernel: impl Into<PathBuf>) -> Self {
        BootConfig {
            qemu: qemu.into(),
            kernel: kernel.into(),
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

    /// The machine the banner must describe.
    pub fn machine(&self) -> Machine {
        Machine { cpus: self.cpus, memory_mib: self.memory_mib }
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

    /// QEMU's arguments. The console (spapr-vty) goes to stdout with no monitor multiplexed
    /// onto it; stdin is /dev/null (see [`run`]), so QEMU never touches a terminal.
    pub fn args(&self) -> Vec<OsString> {
        let mut machine = String::from("pseries");
        if self.firmware == Firmware::Vof {
            machine.push_str(",x-vof=on");
        }
        machine.push(',');
        machine.push_str(PSERIES_CAPS);

        let mut args: Vec<OsString> = Vec::new();
        let mut push = |arg: &str| args.push(arg.into());
        push("-M");
        push(&machine);
        if self.accel == Accel::Kvm {
            push("-accel");
            push("kvm");
        }
        push("-cpu");
        push(self.cpu_model());
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
    /// QEMU's exit code; `None` if a signal ended it.
    pub exit_code: Option<i32>,
    /// The deadline passed and the harness killed QEMU.
    pub timed_out: bool,
    /// From spawn to exit.
    pub elapsed: Duration,
}

enum Event {
    Data(Stream, Vec<u8>),
    Closed,
}

/// Boots `config` and returns its output once QEMU has exited (or been killed at the
/// deadline). `observer` sees every chunk of output as it arrives, for live streaming.
/// Errors are the harness's own (QEMU cannot be started), not the boot's.
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

    // Until QEMU has exited and its output is drained (or abandoned, see DRAIN_GRACE).
    loop {
        let now = Instant::now();
        if exited.is_none() {
            if let Some(status) = qemu.child.try_wait()? {
                exited = Some((status, now));
            } else if deadline.is_some_and(|deadline| now >= deadline) {
                qemu.kill();
                timed_out = true;
                exited = Some((qemu.child.wait()?, now));
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

    let (status, _) = exited.expect("the loop ends only after QEMU has exited");
    qemu.reaped = true;
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
