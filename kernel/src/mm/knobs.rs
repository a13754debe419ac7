//! The race's two knobs side by side, `gup_pmd_recheck=` and `collapse_ipi=`:
//! set once at boot from the command line and read by every caller that does
//! not choose for itself (the `Mm` API's GUP-fast and collapse, khugepaged,
//! benchmark defaults). Booting with `gup_pmd_recheck=off collapse_ipi=off`
//! is therefore the pre-2022 radix kernel through the normal API, not just
//! in the tests that pick the knobs.

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::cmdline::CollapseIpi;

static GUP_PMD_RECHECK: AtomicBool = AtomicBool::new(true);
static COLLAPSE_IPI: AtomicU8 = AtomicU8::new(encode(CollapseIpi::Auto));

const fn encode(policy: CollapseIpi) -> u8 {
    match policy {
        CollapseIpi::Auto => 0,
        CollapseIpi::On => 1,
        CollapseIpi::Off => 2,
    }
}

/// GUP-fast rechecks the PMD after pinning (the 2022 fix).
pub fn gup_pmd_recheck() -> bool {
    GUP_PMD_RECHECK.load(Ordering::Relaxed)
}

pub fn set_gup_pmd_recheck(on: bool) {
    GUP_PMD_RECHECK.store(on, Ordering::Relaxed);
}

/// Whether collapse's pmdp_collapse_flush IPIs the space's CPUs and waits.
pub fn collapse_ipi() -> CollapseIpi {
    match COLLAPSE_IPI.load(Ordering::Relaxed) {
        1 => CollapseIpi::On,
        2 => CollapseIpi::Off,
        _ => CollapseIpi::Auto,
    }
}

pub fn set_collapse_ipi(policy: CollapseIpi) {
    COLLAPSE_IPI.store(encode(policy), Ordering::Relaxed);
}

/// What one call fixes of the knobs; `None` takes the boot setting. Tests
/// and benchmarks that compare configurations say what they want here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RaceSettings {
    pub gup_pmd_recheck: Option<bool>,
    pub collapse_ipi: Option<CollapseIpi>,
}

impl RaceSettings {
    /// The boot settings.
    pub const CONFIGURED: RaceSettings = RaceSettings { gup_pmd_recheck: None, collapse_ipi: None };

    pub const fn new(gup_pmd_recheck: bool, collapse_ipi: CollapseIpi) -> RaceSettings {
        RaceSettings { gup_pmd_recheck: Some(gup_pmd_recheck), collapse_ipi: Some(collapse_ipi) }
    }

    pub const fn recheck(gup_pmd_recheck: bool) -> RaceSettings {
        RaceSettings { gup_pmd_recheck: Some(gup_pmd_recheck), collapse_ipi: None }
    }

    pub const fn ipi(collapse_ipi: CollapseIpi) -> RaceSettings {
        RaceSettings { gup_pmd_recheck: None, collapse_ipi: Some(collapse_ipi) }
    }

    pub fn gup_pmd_recheck(&self) -> bool {
        self.gup_pmd_recheck.unwrap_or_else(gup_pmd_recheck)
    }

    pub fn collapse_ipi(&self) -> CollapseIpi {
        self.collapse_ipi.unwrap_or_else(collapse_ipi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the globals, so parallel tests cannot see each other's.
    #[test]
    fn settings_fall_back_to_the_boot_knobs() {
        set_gup_pmd_recheck(false);
        set_collapse_ipi(CollapseIpi::Off);
        assert!(!RaceSettings::CONFIGURED.gup_pmd_recheck());
        assert_eq!(RaceSettings::CONFIGURED.collapse_ipi(), CollapseIpi::Off);
        assert!(RaceSettings::recheck(true).gup_pmd_recheck());
        assert_eq!(RaceSettings::recheck(true).collapse_ipi(), CollapseIpi::Off);
        assert_eq!(RaceSettings::ipi(CollapseIpi::On).collapse_ipi(), CollapseIpi::On);
        set_gup_pmd_recheck(true);
        set_collapse_ipi(CollapseIpi::Auto);
        assert!(RaceSettings::CONFIGURED.gup_pmd_recheck());
        assert_eq!(collapse_ipi(), CollapseIpi::Auto);
    }
}
