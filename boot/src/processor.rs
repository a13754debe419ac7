//! Which POWER processor this is, from its Processor Version Register: the
//! ISA level to negotiate with the platform (CAS), whether it has a radix
//! MMU, and the errata that apply. The PVR's upper half is the family
//! (Linux's PVR_POWER8 and siblings in arch/powerpc/include/asm/reg.h).

/// A Power ISA level this kernel can run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IsaLevel {
    /// POWER8: hash MMU only.
    V2_07,
    /// POWER9: hash or radix.
    V3_00,
    /// POWER10.
    V3_1,
}

impl IsaLevel {
    pub fn name(self) -> &'static str {
        match self {
            IsaLevel::V2_07 => "2.07",
            IsaLevel::V3_00 => "3.00",
            IsaLevel::V3_1 => "3.1",
        }
    }

    /// The radix MMU arrived with ISA 3.00.
    pub fn has_radix(self) -> bool {
        self >= IsaLevel::V3_00
    }

    /// The logical PVR of this level ("architected" compatibility modes,
    /// PAPR; Linux's PVR_ARCH_207/300/31).
    pub fn logical_pvr(self) -> u32 {
        match self {
            IsaLevel::V2_07 => 0x0f00_0004,
            IsaLevel::V3_00 => 0x0f00_0005,
            IsaLevel::V3_1 => 0x0f00_0006,
        }
    }
}

/// A processor family the kernel knows, and the PVR it was found from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processor {
    pub name: &'static str,
    /// PVR bits 0:15 (the family); the lower half is the revision.
    pub family: u16,
    pub isa: IsaLevel,
    /// The whole PVR (0 in the table of known families).
    pub pvr: u32,
}

/// POWER9's broadcast-`tlbie` errata, each fixed up by extra invalidations after the
/// broadcast (Linux's fixup_tlbie_va/_pid in book3s64/radix_tlb.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlbieErrata {
    /// CPU_FTR_P9_TLBIE_STQ_BUG: a broadcast invalidation may complete before earlier
    /// stores have drained; repeating it closes the window. Nimbus before DD2.3,
    /// Cumulus before DD1.3.
    pub store_queue: bool,
    /// CPU_FTR_P9_TLBIE_ERAT_BUG: the ERAT may keep a translation the TLB invalidation
    /// dropped; an extra invalidation with PID 0 clears it. Every POWER9.
    pub erat: bool,
}

impl TlbieErrata {
    pub fn any(&self) -> bool {
        self.store_queue || self.erat
    }

    /// The fix-ups applied, as the banner prints them (`tlbie_fixups=`).
    pub fn name(&self) -> &'static str {
        match (self.erat, self.store_queue) {
            (true, true) => "erat+stq",
            (true, false) => "erat",
            (false, true) => "stq",
            (false, false) => "none",
        }
    }
}

/// Families by PVR upper half: POWER8E, POWER8NVL, POWER8, POWER9, POWER10.
const KNOWN: [Processor; 5] = [
    Processor { name: "POWER8E", family: 0x004b, isa: IsaLevel::V2_07, pvr: 0 },
    Processor { name: "POWER8NVL", family: 0x004c, isa: IsaLevel::V2_07, pvr: 0 },
    Processor { name: "POWER8", family: 0x004d, isa: IsaLevel::V2_07, pvr: 0 },
    Processor { name: "POWER9", family: 0x004e, isa: IsaLevel::V3_00, pvr: 0 },
    Processor { name: "POWER10", family: 0x0080, isa: IsaLevel::V3_1, pvr: 0 },
];

impl Processor {
    /// The processor whose PVR is `pvr`; `None` for one this kernel does not
    /// know (it cannot say which ISA level to ask the platform for).
    pub fn from_pvr(pvr: u32) -> Option<Processor> {
        let family = (pvr >> 16) as u16;
        KNOWN.iter().find(|p| p.family == family).map(|p| Processor { pvr, ..*p })
    }

    /// POWER9's broadcast-`tlbie` errata (Linux CPU_FTR_P9_TLBIE_STQ_BUG and
    /// CPU_FTR_P9_TLBIE_ERAT_BUG): every POWER9 needs the extra invalidations.
    pub fn is_power9(&self) -> bool {
        self.family == 0x004e
    }

    /// Which POWER9 `tlbie` errata this processor has, as Linux decides from the PVR
    /// (update_tlbie_feature_flag in dt_cpu_ftrs.c): PVR bits 13:15 tell Nimbus (0) from
    /// Cumulus (bit 14 clear, 13:14 not both 0) and the low 12 bits are the DD level.
    pub fn tlbie_errata(&self) -> TlbieErrata {
        if !self.is_power9() {
            return TlbieErrata::default();
        }
        let dd = self.pvr & 0xfff;
        let store_queue = if self.pvr & 0xe000 == 0 {
            dd < 0x203 // Nimbus before DD2.3
        } else if self.pvr & 0xc000 == 0 {
            dd < 0x103 // Cumulus before DD1.3
        } else {
            true // unknown POWER9 variant: assume the bug, as Linux does
        };
        TlbieErrata { store_queue, erat: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_levels() {
        // QEMU's -cpu POWER8 (v2.0), POWER9 (v2.2), POWER10 (v2.0).
        let p8 = Processor::from_pvr(0x004d_0200).unwrap();
        assert_eq!((p8.name, p8.isa, p8.pvr), ("POWER8", IsaLevel::V2_07, 0x004d_0200));
        assert!(!p8.isa.has_radix() && !p8.is_power9());
        let p9 = Processor::from_pvr(0x004e_1202).unwrap();
        assert_eq!((p9.name, p9.isa), ("POWER9", IsaLevel::V3_00));
        assert!(p9.isa.has_radix() && p9.is_power9());
        let p10 = Processor::from_pvr(0x0080_1200).unwrap();
        assert_eq!((p10.name, p10.isa), ("POWER10", IsaLevel::V3_1));
        assert!(p10.isa.has_radix() && !p10.is_power9());
        assert_eq!(Processor::from_pvr(0x004b_0201).unwrap().isa, IsaLevel::V2_07);
        // POWER7 (0x003f) and a logical PVR are not processors we run on.
        assert_eq!(Processor::from_pvr(0x003f_0201), None);
        assert_eq!(Processor::from_pvr(0x0f00_0005), None);
    }

    #[test]
    fn tlbie_errata_by_pvr() {
        let errata = |pvr| Processor::from_pvr(pvr).unwrap().tlbie_errata();
        let both = TlbieErrata { store_queue: true, erat: true };
        let erat_only = TlbieErrata { store_queue: false, erat: true };
        // QEMU's POWER9 is Nimbus DD2.2: both.
        assert_eq!(errata(0x004e_1202), both);
        assert_eq!(errata(0x004e_0203), erat_only, "Nimbus DD2.3");
        assert_eq!(errata(0x004e_2102), both, "Cumulus DD1.2");
        assert_eq!(errata(0x004e_2103), erat_only, "Cumulus DD1.3");
        assert_eq!(errata(0x004e_c100), both, "unknown variant");
        assert!(!errata(0x004d_0200).any(), "POWER8");
        assert!(!errata(0x0080_1200).any(), "POWER10");
    }

    #[test]
    fn logical_pvrs_rise_with_the_level() {
        assert!(IsaLevel::V2_07 < IsaLevel::V3_00 && IsaLevel::V3_00 < IsaLevel::V3_1);
        assert_eq!(IsaLevel::V3_00.logical_pvr(), 0x0f00_0005);
        assert_eq!(IsaLevel::V2_07.name(), "2.07");
    }
}
