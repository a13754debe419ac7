//! Self-tests of the powernv platform (OPAL, the hypervisor's own MMU
//! registers, doorbells), beside it; the suite runs in the order
//! `crate::selftests::ORDER` gives and skips on other platforms.

mod opal;

/// The suite's name, for the kernel's suite order.
pub const SUITE: &str = "opal";
