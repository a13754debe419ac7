//! The two POSIX calls std does not wrap: signalling a whole process group, and asking the
//! kernel to kill a child when its parent dies. All of the harness's `unsafe` lives here.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// `SIGKILL` (POSIX; the same number on every Linux architecture).
const SIGKILL: i32 = 9;

/// `PR_SET_PDEATHSIG` (linux/prctl.h).
#[cfg(target_os = "linux")]
const PR_SET_PDEATHSIG: i32 = 1;

extern "C" {
    /// kill(2); std links libc, so no crate is needed for the declaration.
    fn kill(pid: i32, signal: i32) -> i32;
    #[cfg(target_os = "linux")]
    fn prctl(option: i32, ...) -> i32;
}

/// Sends SIGKILL to every process in process group `group`. Errors (typically "no such
/// process": the group is already gone) are returned for the caller to ignore or report.
pub fn kill_process_group(group: u32) -> io::Result<()> {
    let group = i32::try_from(group).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if group <= 1 {
        // kill(0) or kill(-1) would signal our own group or every process we may signal.
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; a negative pid names
    // a process group, and `group > 1` rules out the "all processes" and "own group" forms.
    let status = unsafe { kill(-group, SIGKILL) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the spawned process receive SIGKILL if the thread that spawned it exits, so that an
/// interrupted `cargo test` (Ctrl-C, CI job cancelled) cannot leave a QEMU running. Only the
/// spawned process itself is covered, not processes it forks; QEMU forks none.
pub fn kill_when_parent_exits(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        let arm = || {
            // SAFETY: prctl(PR_SET_PDEATHSIG, sig) only sets a field of the calling process; it
            // is a plain system call, so it is async-signal-safe, as pre_exec requires (the
            // closure runs between fork and exec in a possibly multi-threaded parent).
            if unsafe { prctl(PR_SET_PDEATHSIG, SIGKILL as std::ffi::c_ulong) } == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the closure calls only prctl (see above): no allocation, no locks.
        unsafe {
            command.pre_exec(arm);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}
