//! `ibm,client-architecture-support` (CAS): the client tells the platform
//! which processors and features it supports, and chooses the MMU and the
//! interrupt controller. The vector is a list of (mask, value) PVR pairs, a
//! terminator pair, then option vectors, each a length byte (data bytes - 1)
//! and its data (PAPR "Client Architecture Support"; Linux's
//! arch/powerpc/kernel/prom_init.c builds the same, QEMU's spapr_ovec.c reads
//! option vectors 1 and 5).

use heapless::Vec;

/// Which translation the kernel asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmuRequest {
    /// Radix with guest translation shootdown enabled (GTSE: the guest may use
    /// `tlbie` itself).
    RadixGtse,
    Hash,
}

/// PVR pairs: POWER9 itself (raw mode), then the ISA 3.00 logical PVR, then
/// a pair whose value has bits outside its mask, which ends the list.
const PVRS: [(u32, u32); 3] = [(0xffff_0000, 0x004e_0000), (0xffff_ffff, 0x0f00_0005), (0xffff_fffe, 0x0f00_0001)];

/// Option vector 1, byte 3: ISA 3.00 supported (OV1_PPC_3_00).
const OV1_BYTE3_ISA_3_00: u8 = 0x80;
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

/// Size of the vector `vector` builds.
pub const VECTOR_BYTES: usize = PVRS.len() * 8 + 1 + (1 + 3) + 3 * (1 + 1) + (1 + OV5_BYTES);

/// Builds the CAS vector asking for `mmu` and XICS.
pub fn vector(mmu: MmuRequest) -> Vec<u8, VECTOR_BYTES> {
    let mut v: Vec<u8, VECTOR_BYTES> = Vec::new();
    let mut put = |bytes: &[u8]| v.extend_from_slice(bytes).expect("VECTOR_BYTES covers the vector");
    for (mask, value) in PVRS {
        put(&mask.to_be_bytes());
        put(&value.to_be_bytes());
    }
    put(&[5 - 1]); // five option vectors follow
    put(&[3 - 1, 0, OV1_BYTE2_ISA_2_0X, OV1_BYTE3_ISA_3_00]);
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

    #[test]
    fn radix_vector_layout() {
        let v = vector(MmuRequest::RadixGtse);
        assert_eq!(v.len(), VECTOR_BYTES);
        // PVR list, big-endian; the terminator's value has bit 0 outside its mask.
        assert_eq!(&v[..8], &[0xff, 0xff, 0, 0, 0x00, 0x4e, 0, 0]);
        assert_eq!(&v[16..24], &[0xff, 0xff, 0xff, 0xfe, 0x0f, 0, 0, 0x01]);
        let (mask, value) = PVRS[2];
        assert_ne!(!mask & value, 0);
        // Vector count, then OV1 with ISA 3.00.
        assert_eq!(v[24], 4);
        assert_eq!(&v[25..29], &[2, 0, 0xff, 0x80]);
        // OV2..OV4 empty, OV5 26 bytes.
        assert_eq!(&v[29..35], &[0, 0, 0, 0, 0, 0]);
        assert_eq!(v[35], 25);
        let ov5 = &v[36..];
        assert_eq!(ov5.len(), 26);
        assert_eq!(ov5[22], 0x00, "byte 23: XICS");
        assert_eq!(ov5[23], 0x40, "byte 24: radix");
        assert_eq!(ov5[25], 0x40, "byte 26: GTSE");
        assert_eq!(ov5.iter().filter(|&&b| b != 0).count(), 2);
    }

    #[test]
    fn hash_vector_asks_for_nothing_in_the_mmu_bytes() {
        let v = vector(MmuRequest::Hash);
        assert!(v[36..].iter().all(|&b| b == 0));
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
