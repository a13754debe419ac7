//! The command line: exit codes and the one-sentence errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn ksyms(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksyms")).args(arguments).output().expect("runs ksyms")
}

fn output_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ksyms-cli-{}-{name}", std::process::id()))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn wrong_arguments_print_usage() {
    let output = ksyms(&["only-one"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("usage: ksyms"));
}

#[test]
fn missing_input() {
    let target = output_path("missing");
    let output = ksyms(&["/nonexistent/kernel.elf", target.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read /nonexistent/kernel.elf"), "{}", stderr(&output));
    assert!(!target.exists());
}

#[test]
fn host_executable_is_not_ppc64() {
    // This test binary is an ELF for the host, which is not PPC64 LE.
    let input = std::env::current_exe().expect("own path");
    let target = output_path("host");
    let output = ksyms(&[input.to_str().unwrap(), target.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("not PPC64") || message.contains("not an ELF"), "{message}");
    assert!(!target.exists());
}
