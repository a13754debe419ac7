//! Self-tests of the pseries platform's own services, beside them; their
//! suites run in the order `crate::selftests::ORDER` gives.

mod rtas;

/// The suite's name, for the kernel's suite order.
pub const SUITE: &str = "rtas";
