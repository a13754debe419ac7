//! Self-tests of the command line the kernel runs with.

use alloc::vec::Vec;

use kernel::cmdline;
use kernel::ktest::{ktest, Env, TestResult};
use kernel::{kassert, kassert_eq};

/// The options the kernel runs with are exactly what /chosen/bootargs says.
#[ktest]
fn bootargs_parsed(env: &Env<'_>) -> TestResult {
    let reparsed = cmdline::parse(env.boot.bootargs(), |_| {});
    kassert_eq!(&reparsed, env.options);
    kassert_eq!(kernel::console::loglevel(), env.options.loglevel);
    Ok(())
}

#[ktest]
fn bad_options_reported(_: &Env<'_>) -> TestResult {
    let mut problems = Vec::new();
    let options = cmdline::parse("loglevel=3 frobnicate expect_cpus=lots selftest=frames", |p| problems.push(p));
    kassert_eq!(options.loglevel, 3);
    kassert_eq!(options.selftest, "frames");
    kassert_eq!(options.expect_cpus, None);
    kassert_eq!(problems.len(), 2);
    kassert!(matches!(problems[0], cmdline::Problem::Unknown { word: "frobnicate" }));
    kassert!(matches!(problems[1], cmdline::Problem::Malformed { word: "expect_cpus=lots", .. }));
    Ok(())
}
