//! Self-tests of the symbol table tools/ksyms writes into the image:
//! present, lookups by address, backtraces naming their callers.

use alloc::string::String;
use alloc::vec::Vec;

use kernel::ktest::{fail, ktest, Env, TestResult};
use kernel::{kassert, kassert_eq};

use crate::{exceptions, fatal, ksyms};

#[ktest]
fn table_present(_: &Env<'_>) -> TestResult {
    let table = ksyms::table().ok_or_else(|| fail("the image carries no symbol table (not patched by tools/ksyms)"))?;
    kassert!(table.len() > 100, "only {} symbols", table.len());
    Ok(())
}

#[inline(never)]
fn symbol_probe_target() -> u64 {
    core::hint::black_box(42)
}

#[ktest]
fn lookup_names_functions(_: &Env<'_>) -> TestResult {
    let table = ksyms::table().ok_or_else(|| fail("no symbol table"))?;
    let base = ksyms::load_base();
    // An assembly label and a Rust function, each looked up by address.
    let probe = exceptions::probe_trap as unsafe extern "C" fn() -> u64 as usize as u64;
    let found = table.lookup(probe - base).ok_or_else(|| fail("probe_trap not found"))?;
    kassert_eq!(found.name, "probe_trap");
    kassert_eq!(found.offset, 0);
    let rust_fn = symbol_probe_target as fn() -> u64 as usize as u64;
    let found = table.lookup(rust_fn + 4 - base).ok_or_else(|| fail("symbol_probe_target not found"))?;
    kassert!(found.name.ends_with("selftests::symbols::symbol_probe_target"), "got {}", found.name);
    kassert_eq!(found.offset, 4);
    kassert_eq!(symbol_probe_target(), 42);
    Ok(())
}

#[inline(never)]
fn backtrace_outer(names: &mut Vec<String>) {
    backtrace_inner(names);
    core::hint::black_box(());
}

#[inline(never)]
fn backtrace_inner(names: &mut Vec<String>) {
    fatal::walk_stack(fatal::stack_pointer(), |address| {
        names.push(ksyms::lookup(address).map_or(String::from("?"), |s| s.name.into()));
    });
    core::hint::black_box(());
}

#[ktest]
fn backtrace_names_callers(_: &Env<'_>) -> TestResult {
    let mut names = Vec::new();
    backtrace_outer(&mut names);
    let position = |suffix: &str| names.iter().position(|n| n.ends_with(suffix));
    let outer = position("selftests::symbols::backtrace_outer");
    let test = position("selftests::symbols::backtrace_names_callers");
    kassert!(outer.is_some() && test.is_some() && outer < test, "backtrace: {names:?}");
    kassert!(names.iter().any(|n| n.ends_with("boot_cpu_entry")), "backtrace does not reach boot_cpu_entry: {names:?}");
    Ok(())
}
