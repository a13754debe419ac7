//! Hashed-page-table arithmetic for the POWER hash MMU (Power ISA v3.0B,
//! Book III, 5.7.7 "Hashed Page Table"): virtual page numbers, the hash that
//! picks a page-table entry group (PTEG), HPTE encodings, and the VSIDs of
//! address spaces. Pure functions, shared by the kernel's hash backend and
//! the host tests; the values follow Linux's book3s64 definitions
//! (arch/powerpc/include/asm/book3s/64/mmu-hash.h).

/// Segment sizes. The kernel uses 1 TiB segments throughout (as Linux does
/// on processors that have them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentSize {
    M256,
    T1,
}

impl SegmentSize {
    /// log2 of the segment size (SID_SHIFT / SID_SHIFT_1T).
    pub const fn shift(self) -> u32 {
        match self {
            SegmentSize::M256 => 28,
            SegmentSize::T1 => 40,
        }
    }

    /// The B field of an SLB entry or HPTE (0 = 256M, 1 = 1T).
    pub const fn b_field(self) -> u64 {
        match self {
            SegmentSize::M256 => 0,
            SegmentSize::T1 => 1,
        }
    }

    /// The segment size a B field names; 2 and 3 are reserved.
    pub const fn from_b_field(b: u64) -> Option<SegmentSize> {
        match b {
            0 => Some(SegmentSize::M256),
            1 => Some(SegmentSize::T1),
            _ => None,
        }
    }
}

/// Virtual page numbers count 4 KiB units whatever the page size (VPN_SHIFT).
pub const VPN_SHIFT: u32 = 12;
/// The kernel's base page size in the hash MMU: 64 KiB.
pub const PAGE_SHIFT: u32 = 16;
/// An HPTE is two doublewords; a PTEG holds eight.
pub const HPTE_BYTES: u64 = 16;
pub const HPTES_PER_GROUP: u64 = 8;
pub const PTEG_BYTES: u64 = HPTE_BYTES * HPTES_PER_GROUP;

/// The virtual page number of effective address `ea` in segment `vsid`.
pub fn vpn(vsid: u64, ea: u64, segment: SegmentSize) -> u64 {
    let offset_mask = (1u64 << (segment.shift() - VPN_SHIFT)) - 1;
    (vsid << (segment.shift() - VPN_SHIFT)) | ((ea >> VPN_SHIFT) & offset_mask)
}

/// The primary hash of a page (Linux hpt_hash): VSID xor page index within
/// the segment; for 1T segments the VSID is folded with itself shifted by 25.
pub fn hash(vpn: u64, page_shift: u32, segment: SegmentSize) -> u64 {
    let offset_bits = segment.shift() - VPN_SHIFT;
    let offset_mask = (1u64 << offset_bits) - 1;
    let vsid = vpn >> offset_bits;
    let page = (vpn & offset_mask) >> (page_shift - VPN_SHIFT);
    let hash = match segment {
        SegmentSize::M256 => vsid ^ page,
        SegmentSize::T1 => vsid ^ (vsid << 25) ^ page,
    };
    hash & 0x7f_ffff_ffff
}

/// The hashed page table's geometry, from `ibm,pft-size` (log2 of its bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HptGeometry {
    pub size_log2: u32,
}

impl HptGeometry {
    pub fn groups(self) -> u64 {
        (1u64 << self.size_log2) / PTEG_BYTES
    }

    /// Mask applied to a hash to get a group number (htab_hash_mask).
    pub fn hash_mask(self) -> u64 {
        self.groups() - 1
    }

    /// The first slot index (ptex) of the primary or secondary group of `hash`.
    pub fn group_slot(self, hash: u64, secondary: bool) -> u64 {
        let hash = if secondary { !hash } else { hash };
        (hash & self.hash_mask()) * HPTES_PER_GROUP
    }
}

/// HPTE doubleword 0 ("V") bits (Linux HPTE_V_*).
pub mod v {
    pub const SSIZE_SHIFT: u32 = 62;
    pub const AVPN_SHIFT: u32 = 7;
    pub const AVPN_MASK: u64 = 0x3fff_ffff_ffff_ff80;
    /// Software bit the OS may use: Linux marks bolted entries with it.
    pub const BOLTED: u64 = 0x10;
    /// Software bit: a native table's per-entry lock (Linux HPTE_V_LOCK).
    /// The MMU ignores it; only the OS that owns the table sets it.
    pub const LOCK: u64 = 0x8;
    pub const LARGE: u64 = 0x4;
    pub const SECONDARY: u64 = 0x2;
    pub const VALID: u64 = 0x1;
}

/// HPTE doubleword 1 ("R") bits (Linux HPTE_R_*).
pub mod r {
    pub const PP0: u64 = 0x8000_0000_0000_0000;
    pub const RPN_MASK: u64 = 0x0fff_ffff_ffff_f000;
    /// LP field of a large page: the page-size encoding ("penc") at bit 12.
    pub const LP_SHIFT: u32 = 12;
    pub const REFERENCED: u64 = 0x100;
    pub const CHANGED: u64 = 0x080;
    pub const W: u64 = 0x040;
    pub const I: u64 = 0x020;
    /// Memory coherence required: set for RAM.
    pub const M: u64 = 0x010;
    pub const G: u64 = 0x008;
    /// No-execute.
    pub const N: u64 = 0x004;
    /// PP1 and PP2 (with PP0 above): the page protection.
    pub const PP_MASK: u64 = 0x003;
}

/// The HPTE format of Power ISA 3.0 (Book III 5.7.7), which a table in
/// RAM must hold on POWER9: dword 0 keeps only bits 0..51 (an AVPN for a
/// VA of up to 68 bits, the software bits, L, H, V) and the segment size B
/// moves to dword 1 bits 58..59, where the wider RPN of the old format
/// was. The kernel composes entries in the old format (as `encode_v` and
/// `encode_r` do, and as a hypervisor takes them from a partition), and a
/// table the kernel owns converts at its doorstep (Linux hpte_old_to_new_v/r,
/// hpte_new_to_old_v/r).
pub mod isa300 {
    /// What dword 0 keeps in the new format.
    pub const V_COMMON_BITS: u64 = 0x000f_ffff_ffff_ffff;
    /// Where B lives in dword 1.
    pub const R_SSIZE_SHIFT: u32 = 58;
    pub const R_SSIZE_MASK: u64 = 3 << R_SSIZE_SHIFT;
}

/// An old-format HPTE in the ISA 3.0 format. AVPN bits above the new
/// format's (VAs wider than 68 bits) and RPN bits 58..59 are lost: the
/// caller keeps them clear.
pub fn to_isa300(hpte_v: u64, hpte_r: u64) -> (u64, u64) {
    let b = hpte_v >> v::SSIZE_SHIFT;
    (hpte_v & isa300::V_COMMON_BITS, (hpte_r & !isa300::R_SSIZE_MASK) | (b << isa300::R_SSIZE_SHIFT))
}

/// An ISA 3.0-format HPTE in the old format: B back into dword 0.
pub fn from_isa300(hpte_v: u64, hpte_r: u64) -> (u64, u64) {
    let b = (hpte_r & isa300::R_SSIZE_MASK) >> isa300::R_SSIZE_SHIFT;
    ((hpte_v & isa300::V_COMMON_BITS) | (b << v::SSIZE_SHIFT), hpte_r & !isa300::R_SSIZE_MASK)
}

/// The VPN of the 64 KiB page an old-format HPTE maps, from its dword 0 and
/// its slot (Linux hpte_decode). The AVPN holds VA >> 23: the VSID and the
/// page's offset in the segment above bit 23. The offset's bits below 23
/// (16..22 for a 64 KiB page) went into the hash, so they come back from
/// the group number: group = (VSID part ^ page index) & mask, complemented
/// for the secondary group (H set), hence page index = (VSID part ^ group)
/// & mask. The group number must have at least 23 - 16 = 7 bits, which
/// every table has (the smallest, 256 KiB, has 11). `None` for a
/// reserved segment size.
pub fn decode_vpn(hpte_v: u64, ptex: u64, hash_mask: u64) -> Option<u64> {
    const AVPN_DROPPED_BITS: u32 = 23;
    let segment = SegmentSize::from_b_field(hpte_v >> v::SSIZE_SHIFT)?;
    let avpn = (hpte_v & v::AVPN_MASK) >> v::AVPN_SHIFT;
    let offset_bits = segment.shift() - AVPN_DROPPED_BITS;
    let vsid = avpn >> offset_bits;
    let high_offset = (avpn & ((1 << offset_bits) - 1)) << AVPN_DROPPED_BITS;
    let mut group = ptex / HPTES_PER_GROUP;
    if hpte_v & v::SECONDARY != 0 {
        group = !group;
    }
    let vsid_part = match segment {
        SegmentSize::M256 => vsid,
        SegmentSize::T1 => vsid ^ (vsid << 25),
    };
    let page_index = (vsid_part ^ group) & hash_mask;
    // Bits from the hash above 23 repeat what the AVPN has; the mask keeps
    // an entry that was never hashed here from spilling into the VSID.
    let offset = (high_offset | (page_index << PAGE_SHIFT)) & ((1 << segment.shift()) - 1);
    Some((vsid << (segment.shift() - VPN_SHIFT)) | (offset >> VPN_SHIFT))
}

/// RB of a `tlbie` (or `tlbiel`) that drops the translation of the 64 KiB
/// page `vpn` (base and actual size 64K), in the hash format of the Power
/// ISA's `tlbie` (Book III; Linux __tlbie), bits counted from the least
/// significant: VA bits 16..63 in place (VPN << 12), LP = the page size
/// encoding at bit 12 (the LP field's upper nibble is VA bits 16..19), B at
/// bit 8, AVAL (VA bits 13..19, from the VPN) at bits 1..7, L = 1. IS (bits
/// 10..11) = 0: invalidate by VA.
///
/// Linux crops the VA's top 16 bits only on processors with
/// MMU_FTR_TLBIE_CROP_VA (PPC970: ISA 2.02 and earlier); POWER5 and later,
/// POWER9 among them, take VA bits 48..63 too, and so does this: the
/// kernel's VAs use them (a 25-bit VSID above a 1T segment's 40 bits), and
/// a cropped RB would name another VA and leave the stale translation.
pub fn tlbie_rb(vpn: u64, segment: SegmentSize) -> u64 {
    const L: u64 = 1;
    const AVAL_MASK: u64 = 0xfe;
    let va = (vpn << VPN_SHIFT) & !((1 << PAGE_SHIFT) - 1);
    va | (PENC_64K << r::LP_SHIFT) | (segment.b_field() << 8) | (vpn & AVAL_MASK) | L
}

/// The LP encoding of a 64 KiB page in a 64 KiB-base-page segment
/// (`ibm,segment-page-sizes` on QEMU's POWER9: base 0x10, penc 1).
pub const PENC_64K: u64 = 1;

/// Access rights for a hash mapping, as PP bits with the kernel's SLB keys
/// (Ks = 0 for kernel segments, Ks = Kp = 1 for user segments, as Linux):
/// kernel RW 000, kernel RO 110 (PP0 set), user RW 010, user RO 011.
pub fn pp_bits(writable: bool, user: bool) -> u64 {
    match (user, writable) {
        (false, true) => 0b00,
        (false, false) => r::PP0 | 0b10,
        (true, true) => 0b10,
        (true, false) => 0b11,
    }
}

/// Doubleword 0 of an HPTE for a 64 KiB page (Linux hpte_encode_v with
/// base = actual = 64K): AVPN = VPN >> (23 - 12), B, L, V.
pub fn encode_v(vpn: u64, segment: SegmentSize) -> u64 {
    (((vpn >> (23 - VPN_SHIFT)) << v::AVPN_SHIFT) & v::AVPN_MASK)
        | (segment.b_field() << v::SSIZE_SHIFT)
        | v::LARGE
        | v::VALID
}

/// Doubleword 1 of an HPTE for a 64 KiB page of RAM at `physical`.
pub fn encode_r(physical: u64, writable: bool, user: bool, executable: bool) -> u64 {
    let mut rflags = pp_bits(writable, user) | r::M | r::REFERENCED | r::CHANGED;
    if !executable {
        rflags |= r::N;
    }
    (physical & r::RPN_MASK & !((1 << PAGE_SHIFT) - 1)) | (PENC_64K << r::LP_SHIFT) | rflags
}

/// Whether a valid HPTE `v` is the one for `vpn` (its AVPN and B match).
pub fn v_matches(hpte_v: u64, vpn: u64, segment: SegmentSize) -> bool {
    let want = encode_v(vpn, segment);
    let compare = v::AVPN_MASK | (3 << v::SSIZE_SHIFT) | v::VALID;
    hpte_v & compare == want & compare
}

/// VSIDs (Linux's scheme, simplified to one segment size): a context id and
/// the 1T segment number form a proto-VSID that is unique per (context,
/// segment); multiplying by a prime modulo 2^bits - 1 scatters neighbouring
/// segments over the hash table. Distinct proto-VSIDs give distinct VSIDs
/// (the multiplier is invertible modulo the modulus).
pub mod vsid {
    /// VSID width for 1T segments with a 65-bit virtual address (65 - 40).
    pub const BITS_1T: u32 = 25;
    pub const MODULUS_1T: u64 = (1 << BITS_1T) - 1;
    /// Linux's VSID_MULTIPLIER_1T: a 24-bit prime.
    pub const MULTIPLIER_1T: u64 = 12_538_073;
    /// Bits of the proto-VSID taken by the segment number: effective
    /// addresses below 2^52 have 12 bits of 1T segment number.
    pub const SEGMENT_BITS: u32 = 12;
    /// Proto-VSIDs stay below the modulus (which would scramble to 0).
    pub const MAX_CONTEXT: u32 = (1 << (BITS_1T - SEGMENT_BITS)) - 3;

    pub fn scramble(proto: u64) -> u64 {
        (proto * MULTIPLIER_1T) % MODULUS_1T
    }

    /// MULTIPLIER_1T's inverse modulo MODULUS_1T, so a VSID can be traced
    /// back to its context (HPT scans for one address space).
    pub const MULTIPLIER_INVERSE_1T: u64 = inverse(MULTIPLIER_1T, MODULUS_1T);

    const fn inverse(value: u64, modulus: u64) -> u64 {
        // Extended Euclid on signed values.
        let (mut old_r, mut r) = (value as i128, modulus as i128);
        let (mut old_s, mut s) = (1i128, 0i128);
        while r != 0 {
            let q = old_r / r;
            (old_r, r) = (r, old_r - q * r);
            (old_s, s) = (s, old_s - q * s);
        }
        (((old_s % modulus as i128) + modulus as i128) % modulus as i128) as u64
    }

    /// The context a VSID belongs to (the inverse of `for_segment`).
    pub fn context_of(vsid: u64) -> u32 {
        let proto = (vsid % MODULUS_1T) * MULTIPLIER_INVERSE_1T % MODULUS_1T;
        ((proto >> SEGMENT_BITS) as u32).wrapping_sub(1)
    }

    /// The VSID of 1T segment `esid` (EA bits 12..23 from the top, i.e.
    /// (EA >> 40) & 0xfff; the region nibble above picks the context) of
    /// `context`.
    pub fn for_segment(context: u32, esid: u64) -> u64 {
        debug_assert!(context <= MAX_CONTEXT && esid < 1 << SEGMENT_BITS);
        // Proto-VSID 0 would scramble to VSID 0, which is kept unused.
        scramble((((context as u64) + 1) << SEGMENT_BITS) | esid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::BTreeSet;

    #[test]
    fn vpn_and_hash_for_1t_segments() {
        // Power ISA 5.7.7.1: for a 1T segment, hash = VSID ^ (VSID << 25) ^
        // (EA[24:63-p]); with p = 16, the page index is EA bits 16..39.
        let vsid = 0x1234;
        let ea = 0xc000_0000_1234_0000u64;
        let vpn = vpn(vsid, ea, SegmentSize::T1);
        assert_eq!(vpn, (0x1234 << 28) | ((0x1234_0000 >> 12) & 0x0fff_ffff));
        let page_index = (ea & ((1 << 40) - 1)) >> 16;
        assert_eq!(hash(vpn, 16, SegmentSize::T1), (vsid ^ (vsid << 25) ^ page_index) & 0x7f_ffff_ffff);
    }

    #[test]
    fn hash_for_256m_segments() {
        // hash = VSID ^ (EA[36:63-p]): page index within the 256M segment.
        let vsid = 0xabcdef;
        let ea = 0x0000_0000_1fe7_0000u64;
        let vpn = vpn(vsid, ea, SegmentSize::M256);
        let page_index = (ea & ((1 << 28) - 1)) >> 16;
        assert_eq!(hash(vpn, 16, SegmentSize::M256), vsid ^ page_index);
    }

    #[test]
    fn geometry_from_pft_size() {
        // ibm,pft-size 23 (QEMU, 1 GiB): 8 MiB, 65536 groups of 128 bytes.
        let g = HptGeometry { size_log2: 23 };
        assert_eq!(g.groups(), 65536);
        assert_eq!(g.hash_mask(), 0xffff);
        assert_eq!(g.group_slot(0x1_2345, false), 0x2345 * 8);
        // The secondary group is the one's complement of the hash.
        assert_eq!(g.group_slot(0x1_2345, true), (!0x1_2345u64 & 0xffff) * 8);
    }

    #[test]
    fn hpte_encoding_for_a_64k_page() {
        let vpn = vpn(0x1234, 0xc000_0000_0042_0000, SegmentSize::T1);
        let hv = encode_v(vpn, SegmentSize::T1);
        // B = 1 (1T), L = 1 (large: 64K), V = 1, AVPN = VPN >> 11 at bit 7.
        assert_eq!(hv >> 62, 1);
        assert_eq!(hv & 0x7f, v::LARGE | v::VALID);
        assert_eq!((hv & v::AVPN_MASK) >> 7, vpn >> 11);
        assert!(v_matches(hv | v::BOLTED | v::SECONDARY, vpn, SegmentSize::T1));
        assert!(!v_matches(hv, vpn + (1 << 11), SegmentSize::T1));
        let hr = encode_r(0x0123_0000, true, false, false);
        assert_eq!(hr & r::RPN_MASK & !0xffff, 0x0123_0000);
        assert_eq!((hr >> 12) & 0xf, PENC_64K, "LP encodes 64K");
        assert_eq!(hr & 0x1ff, r::REFERENCED | r::CHANGED | r::M | r::N);
        assert_eq!(hr & r::PP0, 0);
    }

    /// A worked example, computed by hand from Linux's formulas (hpt_vpn,
    /// hpt_hash, hpte_encode_v/r) and the Power ISA hash definition: the
    /// kernel's first linear-map page after the vectors, in Linux's own
    /// 1T kernel VSID 0xea1b217, bolted, with a 2^23-byte HPT.
    #[test]
    fn worked_example_from_the_isa_definitions() {
        let vsid = 0xea1b217;
        let ea = 0xc000_0000_0001_0000u64;
        let vpn = vpn(vsid, ea, SegmentSize::T1);
        assert_eq!(vpn, (0xea1b217 << 28) | 0x10);
        assert_eq!(encode_v(vpn, SegmentSize::T1) | v::BOLTED, 0x400e_a1b2_1700_0015);
        assert_eq!(encode_r(0x1_0000, true, false, true), 0x1_1190);
        let hash = hash(vpn, 16, SegmentSize::T1);
        assert_eq!(hash, 0x64_20a1_b216);
        let g = HptGeometry { size_log2: 23 };
        assert_eq!(g.group_slot(hash, false), 0xb216 * 8);
        assert_eq!(g.group_slot(hash, true), 0x4de9 * 8);
    }

    /// ISA 3.0 moves B from dword 0 bits 62..63 to dword 1 bits 58..59 and
    /// keeps dword 0's low 52 bits (Linux hpte_old_to_new_v/r).
    #[test]
    fn isa300_format_moves_the_segment_size() {
        let old_v = 0x400e_a1b2_1700_0015; // the worked example's bolted entry
        let old_r = 0x1_1190;
        let (new_v, new_r) = to_isa300(old_v, old_r);
        assert_eq!(new_v, 0x000e_a1b2_1700_0015);
        assert_eq!(new_r, 0x0400_0000_0001_1190);
        assert_eq!(from_isa300(new_v, new_r), (old_v, old_r));
        // 256M segments have B = 0: nothing moves, nothing to restore.
        assert_eq!(to_isa300(0x0000_1234_5678_0005, 0x2_0190), (0x0000_1234_5678_0005, 0x2_0190));
        // Software bits, L, H and V stay where they are.
        let (new_v, _) = to_isa300(0x4000_0000_0000_007f, 0);
        assert_eq!(new_v, 0x7f);
        assert_eq!(from_isa300(0x7f, 1 << 58).0, 0x4000_0000_0000_007f);
    }

    /// tlbie RB for 64K pages, by hand from Linux's __tlbie (non-4K case):
    /// VPN << 12 with bits 0..15 cleared, | penc (1) << 12, | B << 8, | VPN &
    /// 0xfe (AVAL), | L = 1.
    #[test]
    fn tlbie_rb_for_64k_pages() {
        // VPN 0x123_4000_0420 (VSID 0x1234, offset 0x42_0000, 1T):
        // VA 0x0012_3400_0042_0000; AVAL = 0x420 & 0xfe = 0x20.
        let vpn = vpn(0x1234, 0xc000_0000_0042_0000, SegmentSize::T1);
        assert_eq!(vpn, 0x123_4000_0420);
        assert_eq!(tlbie_rb(vpn, SegmentSize::T1), 0x0012_3400_0042_0000 | 0x1000 | 0x100 | 0x20 | 1);
        // The worked example: VPN 0xea1b217 << 28 | 0x10. VPN << 12 keeps
        // VA bits 12..63 (VSID bits 0..23 at 40..63; the VSID's top nibble
        // is beyond what RB holds) and AVAL = 0x10.
        let vpn = (0xea1b217 << 28) | 0x10;
        assert_eq!(tlbie_rb(vpn, SegmentSize::T1), 0xa1b2_1700_0001_1111);
        // A page with VA bits 16..19 set: they stay in the LP field's
        // upper half (bits 16..19), LP's low nibble is penc = 1; AVAL takes
        // VPN bits 1..7 = 0xa0. VA = 0x1ab_cdef << 40 | 0xfe_dcba_0000.
        let vpn = super::vpn(0x1ab_cdef, 0xfe_dcba_0000, SegmentSize::T1);
        assert_eq!(vpn, 0x1a_bcde_ffed_cba0);
        assert_eq!(tlbie_rb(vpn, SegmentSize::T1), 0xabcd_effe_dcba_11a1);
        // 256M segment: B = 0. VPN = 0xabcdef << 16 | 0xfe70.
        let vpn = super::vpn(0xabcdef, 0x0fe7_0000, SegmentSize::M256);
        assert_eq!(vpn, 0xab_cdef_fe70);
        assert_eq!(tlbie_rb(vpn, SegmentSize::M256), 0x000a_bcde_ffe7_0000 | 0x1000 | 0x70 | 1);
    }

    /// The worked example's entry, found back from its slot in both groups.
    #[test]
    fn decode_vpn_of_the_worked_example() {
        let vpn = (0xea1b217 << 28) | 0x10;
        let v = encode_v(vpn, SegmentSize::T1) | v::BOLTED;
        let g = HptGeometry { size_log2: 23 };
        assert_eq!(decode_vpn(v, 0xb216 * 8 + 3, g.hash_mask()), Some(vpn));
        assert_eq!(decode_vpn(v | v::SECONDARY, 0x4de9 * 8 + 5, g.hash_mask()), Some(vpn));
        // In the wrong group, the page bits below 23 come out wrong.
        assert_ne!(decode_vpn(v, 0x4de9 * 8, g.hash_mask()), Some(vpn));
        // B = 2 and 3 are reserved.
        assert_eq!(decode_vpn(v | (2 << v::SSIZE_SHIFT), 0, g.hash_mask()), None);
    }

    #[test]
    fn protection_bits() {
        assert_eq!(pp_bits(true, false), 0);
        assert_eq!(pp_bits(false, false), r::PP0 | 2);
        assert_eq!(pp_bits(true, true), 2);
        assert_eq!(pp_bits(false, true), 3);
        assert_eq!(encode_r(0, false, false, true) & r::N, 0);
    }

    #[test]
    fn vsids_trace_back_to_their_context() {
        assert_eq!(vsid::MULTIPLIER_1T * vsid::MULTIPLIER_INVERSE_1T % vsid::MODULUS_1T, 1);
        for context in [0, 1, 5, 4095, vsid::MAX_CONTEXT] {
            for esid in [0u64, 0x800, 0xfff] {
                assert_eq!(vsid::context_of(vsid::for_segment(context, esid)), context);
            }
        }
    }

    #[test]
    fn vsids_are_distinct_per_context_and_segment() {
        let mut seen = BTreeSet::new();
        for context in [0, 1, 2, 77, vsid::MAX_CONTEXT] {
            for esid in [0u64, 1, 2, 0xc00 >> 4, (1 << vsid::SEGMENT_BITS) - 1] {
                let v = vsid::for_segment(context, esid);
                assert!(v != 0 && v < 1 << vsid::BITS_1T);
                assert!(seen.insert(v), "VSID {v:#x} repeated (context {context}, esid {esid:#x})");
            }
        }
    }
}
