//! `ibm,client-architecture-support` (CAS): the client tells the platform
//! which processors and features it supports, and chooses the MMU and the
//! interrupt controller. The vector is a list of (mask, value) PVR pairs, a
//! terminator pair, then option vectors, each a length byte (data bytes - 1)
//! and its data (PAPR "Client Architecture Support"; Linux's
//! arch/powerpc/kernel/prom_init.c builds the same, QEMU's spapr_ovec.c reads
//! option vectors 1 and 5).

use heapless::Vec;

use crate::processor::{IsaLevel, Processor};

/// Which translation the kernel asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmuRequest {
    /// Radix with guest translation shootdown enabled (GTSE: the guest may use
    /// `tlbie` itself).
    RadixGtse,
    Hash,
}

/// The pair that ends the PVR list: its value has a bit outside its mask.
const PVR_TERMINATOR: (u32, u32) = (0xffff_fffe, 0x0f00_0001);
/// At most: the raw family, three logical PVRs, the terminator.
const MAX_PVR_PAIRS: usize = 5;
/// ISA levels, highest first, for the logical PVRs a processor accepts.
const LEVELS: [IsaLevel; 3] = [IsaLevel::V3_1, IsaLevel::V3_00, IsaLevel::V2_07];

/// Option vector 1, byte 3: ISA 3.00 (OV1_PPC_3_00) and 3.1 (OV1_PPC_3_1).
const OV1_BYTE3_ISA_3_00: u8 = 0x80;
const OV1_BYTE3_ISA_3_1: u8 = 0x40;
/// Option vector 1, byte 2: ISA 2.00 to 2.07 (Linux sets them all).
const OV1_BYTE2_ISA_2_0X: u8 = 0xff;
/// Option vector 5 length in data bytes (through byte 26, radix extensions).
const OV5_BYTES: usize = 26;
/// OV5 byte 23: interrupt controller; 0x00 = XICS ("legacy"), 0x40 = XIVE.
const OV5_INTERRUPT_BYTE: usize = 23;
const OV5_INTERRUPT_XICS: u8 = 0x00;
/// OV5 byte 24: MMU; 0x00 = hash, 0x40 = radix.
const OV5_MMU_BYTE: usize = 24;
const OV5_MMU_RADIX: u8 = 0x40;
const OV5_MMU_HASH: u8 = 0x00;
/// OV5 byte 26: radix extensions; 0x40 = GTSE.
const OV5_RADIX_EXT_BYTE: usize = 26;
const OV5_RADIX_GTSE: u8 = 0x40;

/// The largest vector `vector` builds.
pub const VECTOR_BYTES: usize = MAX_PVR_PAIRS * 8 + 1 + (1 + 3) + 3 * (1 + 1) + (1 + OV5_BYTES);

/// The PVR list for `cpu`: its own family in raw mode, then the logical PVR
/// of its ISA level and of every level below (as Linux's prom_init lists
/// them; the platform picks the best it can give), then the terminator. A
/// POWER8 must not offer ISA 3.00: the platform refuses the whole vector.
pub fn pvr_list(cpu: &Processor) -> Vec<(u32, u32), MAX_PVR_PAIRS> {
    let mut list = Vec::new();
    let mut push = |pair| list.push(pair).expect("MAX_PVR_PAIRS covers the list");
    push((0xffff_0000, (cpu.family as u32) << 16));
    for level in LEVELS.into_iter().filter(|&level| level <= cpu.isa) {
        push((0xffff_ffff, level.logical_pvr()));
    }
    push(PVR_TERMINATOR);
    list
}

/// Builds the CAS vector for processor `cpu`, asking for `mmu` and XICS.
pub fn vector(mmu: MmuRequest, cpu: &Processor) -> Vec<u8, VECTOR_BYTES> {
    let mut v: Vec<u8, VECTOR_BYTES> = Vec::new();
    let mut put = |bytes: &[u8]| v.extend_from_slice(bytes).expect("VECTOR_BYTES covers the vector");
    for (mask, value) in pvr_list(cpu) {
        put(&mask.to_be_bytes());
        put(&value.to_be_bytes());
    }
    let mut isa_3 = 0;
    if cpu.isa >= IsaLevel::V3_00 {
        isa_3 |= OV1_BYTE3_ISA_3_00;
    }
    if cpu.isa >= IsaLevel::V3_1 {
        isa_3 |= OV1_BYTE3_ISA_3_1;
    }
    put(&[5 - 1]); // five option vectors follow
    put(&[3 - 1, 0, OV1_BYTE2_ISA_2_0X, isa_3]);
    for _ in 2..=4 {
        put(&[0, 0]); // OV2..OV4: one zero byte each (QEMU reads only OV1 and OV5)
    }
    let mut ov5 = [0u8; OV5_BYTES];
    ov5[OV5_INTERRUPT_BYTE - 1] = OV5_INTERRUPT_XICS;
    match mmu {
        MmuRequest::RadixGtse => {
            ov5[OV5_MMU_BYTE - 1] = OV5_MMU_RADIX;
            ov5[OV5_RADIX_EXT_BYTE - 1] = OV5_RADIX_GTSE;
        }
        MmuRequest::Hash => ov5[OV5_MMU_BYTE - 1] = OV5_MMU_HASH,
    }
    put(&[(OV5_BYTES - 1) as u8]);
    put(&ov5);
    v
}

/// Whether `/chosen ibm,arch-vec-5-platform-support` (pairs of OV5 byte
/// number, value) offers radix: byte 24 with 0x40 (radix), 0x80 (either) or
/// 0xc0 (dynamic switching).
pub fn platform_offers_radix(platform_support: &[u8]) -> bool {
    platform_support.chunks_exact(2).any(|pair| pair[0] as usize == OV5_MMU_BYTE && pair[1] & 0xc0 != 0)
}

/// `/chosen ibm,architecture-vec-5` after CAS: [length - 1, byte 1, byte 2,
/// ...]. Returns whether the platform agreed to radix.
pub fn negotiated_radix(architecture_vec5: &[u8]) -> bool {
    architecture_vec5.get(OV5_MMU_BYTE).is_some_and(|&b| b & OV5_MMU_RADIX != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn power9() -> Processor {
        Processor::from_pvr(0x004e_1202).unwrap()
    }

    #[test]
    fn radix_vector_layout() {
        let v = vector(MmuRequest::RadixGtse, &power9());
        // POWER9: raw family, ISA 3.00 and 2.07 logical PVRs, terminator.
        assert_eq!(v.len(), VECTOR_BYTES - 8);
        // PVR list, big-endian; the terminator's value has bit 0 outside its mask.
        assert_eq!(&v[..8], &[0xff, 0xff, 0, 0, 0x00, 0x4e, 0, 0]);
        assert_eq!(&v[8..16], &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0x05]);
        assert_eq!(&v[16..24], &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0x04]);
        assert_eq!(&v[24..32], &[0xff, 0xff, 0xff, 0xfe, 0x0f, 0, 0, 0x01]);
        let (mask, value) = PVR_TERMINATOR;
        assert_ne!(!mask & value, 0);
        // Vector count, then OV1 with ISA 3.00.
        assert_eq!(v[32], 4);
        assert_eq!(&v[33..37], &[2, 0, 0xff, 0x80]);
        // OV2..OV4 empty, OV5 26 bytes.
        assert_eq!(&v[37..43], &[0, 0, 0, 0, 0, 0]);
        assert_eq!(v[43], 25);
        let ov5 = &v[44..];
        assert_eq!(ov5.len(), 26);
        assert_eq!(ov5[22], 0x00, "byte 23: XICS");
        assert_eq!(ov5[23], 0x40, "byte 24: radix");
        assert_eq!(ov5[25], 0x40, "byte 26: GTSE");
        assert_eq!(ov5.iter().filter(|&&b| b != 0).count(), 2);
    }

    #[test]
    fn hash_vector_asks_for_nothing_in_the_mmu_bytes() {
        let v = vector(MmuRequest::Hash, &power9());
        assert!(v[44..].iter().all(|&b| b == 0));
    }

    #[test]
    fn power8_offers_isa_2_07_only() {
        let p8 = Processor::from_pvr(0x004d_0200).unwrap();
        assert_eq!(pvr_list(&p8).as_slice(), &[(0xffff_0000, 0x004d_0000), (0xffff_ffff, 0x0f00_0004), PVR_TERMINATOR]);
        let v = vector(MmuRequest::Hash, &p8);
        assert_eq!(v.len(), VECTOR_BYTES - 16);
        // OV1: ISA 2.0x, no 3.00 or 3.1.
        assert_eq!(&v[25..29], &[2, 0, 0xff, 0x00]);
    }

    #[test]
    fn power10_offers_every_level() {
        let p10 = Processor::from_pvr(0x0080_1200).unwrap();
        let list = pvr_list(&p10);
        assert_eq!(list.len(), MAX_PVR_PAIRS);
        assert_eq!(list[0], (0xffff_0000, 0x0080_0000));
        assert_eq!(
            list[1..4].iter().map(|p| p.1).collect::<std::vec::Vec<_>>(),
            [0x0f00_0006, 0x0f00_0005, 0x0f00_0004]
        );
        let v = vector(MmuRequest::RadixGtse, &p10);
        assert_eq!(v.len(), VECTOR_BYTES);
        assert_eq!(&v[41..45], &[2, 0, 0xff, 0xc0]);
    }

    #[test]
    fn platform_support_and_result() {
        // QEMU under TCG: {23: 0x80 (XICS or XIVE), 24: 0xc0 (dynamic), 25: 0, 26: 0x40}.
        assert!(platform_offers_radix(&[0x17, 0x80, 0x18, 0xc0, 0x19, 0x00, 0x1a, 0x40]));
        assert!(!platform_offers_radix(&[0x17, 0x80, 0x18, 0x00]));
        assert!(!platform_offers_radix(&[]));
        let mut vec5 = [0u8; 27];
        vec5[0] = 25;
        assert!(!negotiated_radix(&vec5));
        vec5[24] = 0x40;
        assert!(negotiated_radix(&vec5));
        assert!(!negotiated_radix(&[0, 0]));
    }
}
