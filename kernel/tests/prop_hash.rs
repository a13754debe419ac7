//! Property tests of the hash-MMU arithmetic (`kernel::mm::hash`), over
//! random inputs:
//! - VSIDs: scrambling is a bijection on [0, 2^25 - 1) undone by the stored
//!   inverse multiplier; `for_segment` gives distinct, non-zero 25-bit VSIDs
//!   and `context_of` recovers the context;
//! - VPN and hash: the VPN holds the VSID and the page's 4 KiB units within
//!   the segment; the hash equals the Power ISA definition written out from
//!   the effective address, is the same for every 4 KiB unit of one page, and
//!   its primary and secondary groups are distinct, group-aligned slots
//!   inside the table whose group numbers are one's complements;
//! - HPTEs: `v_matches(encode_v(a), b)` holds exactly when a and b agree in
//!   the AVPN (VPN >> 11) and segment size, whatever software bits are set;
//!   `encode_r` keeps the 64 KiB-aligned RPN, encodes LP = 64K, M, R, C,
//!   no-execute as asked, and PP bits that grant exactly the asked rights
//!   under the ISA's key table with the kernel's SLB keys;
//! - the native table's arithmetic: the ISA 3.0 format conversions undo each
//!   other; `decode_vpn` finds the VPN of an entry back from its dword 0 and
//!   its slot in either group, for any table size; `tlbie_rb` holds the VA,
//!   LP, B, AVAL and L fields and nothing else.

use kernel::mm::hash::{
    decode_vpn, encode_r, encode_v, from_isa300, hash, isa300, pp_bits, r, tlbie_rb, to_isa300, v, v_matches, vpn,
    vsid, HptGeometry, SegmentSize, HPTES_PER_GROUP, PAGE_SHIFT, PENC_64K, VPN_SHIFT,
};
use proptest::prelude::*;

/// The hash is 39 bits wide (Power ISA: hash value bits 0:38).
const HASH_MASK: u64 = 0x7f_ffff_ffff;

fn segment() -> impl Strategy<Value = SegmentSize> {
    prop_oneof![Just(SegmentSize::M256), Just(SegmentSize::T1)]
}

/// VSIDs small enough that `vsid << (segment shift - 12)` fits a u64 for
/// both segment sizes (the ISA's 78-bit VA allows up to 50/38 bits).
fn wide_vsid() -> impl Strategy<Value = u64> {
    0u64..(1 << 36)
}

/// Hash-table sizes from PAPR's minimum (256 KiB) up to where the group
/// number uses all 39 hash bits.
fn geometry() -> impl Strategy<Value = HptGeometry> {
    (18u32..=46).prop_map(|size_log2| HptGeometry { size_log2 })
}

/// Rights a page gets under the Power ISA's page-protection table
/// (Book III 5.7.13; the same table as KVM's kvmppc_mmu_book3s_64_xlate):
/// `key` is Ks in privileged state, Kp in problem state. Returns
/// (readable, writable).
fn isa_access(pp: u64, key: bool) -> (bool, bool) {
    let pp0 = pp & r::PP0 != 0;
    match (key, pp0, pp & r::PP_MASK) {
        (false, false, 0..=2) => (true, true),
        (false, false, 3) | (false, true, 2) => (true, false),
        (true, false, 0) | (true, true, 2) => (false, false),
        (true, false, 1 | 3) => (true, false),
        (true, false, 2) => (true, true),
        _ => panic!("reserved PP encoding {pp:#x}"),
    }
}

proptest! {
    /// Scrambling is a permutation of the residues (the multiplier is a unit
    /// modulo 2^25 - 1), and the inverse multiplier undoes it.
    #[test]
    fn scramble_is_inverted(proto in 0..vsid::MODULUS_1T, other in 0..vsid::MODULUS_1T) {
        let s = vsid::scramble(proto);
        prop_assert!(s < vsid::MODULUS_1T);
        prop_assert_eq!(s * vsid::MULTIPLIER_INVERSE_1T % vsid::MODULUS_1T, proto);
        prop_assert_eq!(vsid::scramble(other) == s, other == proto);
    }

    #[test]
    fn vsids_trace_back_and_never_collide(
        c1 in 0..=vsid::MAX_CONTEXT, e1 in 0u64..(1 << vsid::SEGMENT_BITS),
        c2 in 0..=vsid::MAX_CONTEXT, e2 in 0u64..(1 << vsid::SEGMENT_BITS),
    ) {
        let a = vsid::for_segment(c1, e1);
        // VSID 0 stays unused, and a VSID fits the 25 bits the VA has for it.
        prop_assert!(a != 0 && a < 1 << vsid::BITS_1T);
        prop_assert_eq!(vsid::context_of(a), c1);
        prop_assert_eq!(a == vsid::for_segment(c2, e2), (c1, e1) == (c2, e2));
    }

    /// The VPN is the VSID above the segment's 4 KiB-unit offset of `ea`;
    /// EA bits above the segment offset (the ESID) do not enter it.
    #[test]
    fn vpn_holds_vsid_and_offset(vs in wide_vsid(), ea in any::<u64>(), seg in segment()) {
        let offset_bits = seg.shift() - VPN_SHIFT;
        let n = vpn(vs, ea, seg);
        prop_assert_eq!(n >> offset_bits, vs);
        prop_assert_eq!(n & ((1 << offset_bits) - 1), (ea & ((1 << seg.shift()) - 1)) >> VPN_SHIFT);
        prop_assert_eq!(vpn(vs, ea & ((1 << seg.shift()) - 1), seg), n);
    }

    /// The hash as the ISA defines it from the EA: VSID (folded with
    /// VSID << 25 for 1T segments) xor the page index within the segment,
    /// truncated to 39 bits. Checked for 4K, 64K and 16M pages.
    #[test]
    fn hash_matches_the_isa_definition(
        vs in wide_vsid(), ea in any::<u64>(), seg in segment(), page_shift in prop_oneof![Just(12u32), Just(16), Just(24)],
    ) {
        let page_index = (ea & ((1 << seg.shift()) - 1)) >> page_shift;
        let folded = match seg {
            SegmentSize::M256 => vs,
            SegmentSize::T1 => vs ^ (vs << 25),
        };
        let h = hash(vpn(vs, ea, seg), page_shift, seg);
        prop_assert_eq!(h, (folded ^ page_index) & HASH_MASK);
        prop_assert!(h <= HASH_MASK);
    }

    /// All 4 KiB units of one 64 KiB page hash to the same group.
    #[test]
    fn hash_ignores_the_offset_within_a_page(vs in wide_vsid(), ea in any::<u64>(), seg in segment(), unit in 0u64..16) {
        let first = vpn(vs, ea, seg) & !0xf;
        prop_assert_eq!(hash(first | unit, 16, seg), hash(first, 16, seg));
    }

    /// The group slots of a hash are slot indexes of group starts inside the
    /// table; primary and secondary are one's complements within the mask,
    /// so they always differ.
    #[test]
    fn group_slots_are_distinct_aligned_and_in_range(h in 0..=HASH_MASK, g in geometry()) {
        let slots = g.groups() * HPTES_PER_GROUP;
        let primary = g.group_slot(h, false);
        let secondary = g.group_slot(h, true);
        for slot in [primary, secondary] {
            prop_assert_eq!(slot % HPTES_PER_GROUP, 0);
            prop_assert!(slot + HPTES_PER_GROUP <= slots, "slot {:#x} of {:#x}", slot, slots);
        }
        prop_assert_ne!(primary, secondary);
        prop_assert_eq!(primary / HPTES_PER_GROUP + secondary / HPTES_PER_GROUP, g.hash_mask());
        prop_assert_eq!(primary / HPTES_PER_GROUP, h & g.hash_mask());
    }

    /// An HPTE built for one VPN is found for another exactly when their
    /// AVPNs (VPN >> 11; the lower bits are implied by the group) and
    /// segment sizes match; the software bits (bolted, secondary) and the
    /// hash slot never matter.
    #[test]
    fn v_matches_exactly_the_avpn(
        a in any::<u64>(),
        // b = a ^ d: half the time d stays near the AVPN's lowest bit (bit 11),
        // where an off-by-one in the AVPN shift would show.
        d in prop_oneof![any::<u64>(), 0u64..(1 << 12)],
        near in 0u64..(1 << 11), sa in segment(), sb in segment(), sw in any::<u64>(),
    ) {
        let b = a ^ d;
        let hv = encode_v(a, sa);
        prop_assert_eq!(hv & (v::LARGE | v::VALID), v::LARGE | v::VALID);
        prop_assert_eq!(hv >> v::SSIZE_SHIFT, sa.b_field());
        prop_assert_eq!((hv & v::AVPN_MASK) >> v::AVPN_SHIFT, a >> 11);
        let with_software_bits = hv | (sw & (v::BOLTED | v::SECONDARY));
        prop_assert!(v_matches(with_software_bits, a, sa));
        // Same AVPN, different low VPN bits: the same HPTE.
        prop_assert!(v_matches(with_software_bits, (a & !0x7ff) | near, sa));
        prop_assert_eq!(v_matches(hv, b, sb), a >> 11 == b >> 11 && sa == sb);
    }

    /// `v_matches` on a given AVPN-differing VPN: flip one AVPN bit.
    #[test]
    fn one_avpn_bit_differs(a in any::<u64>(), bit in 11u32..64, seg in segment()) {
        prop_assert!(!v_matches(encode_v(a, seg), a ^ (1 << bit), seg));
    }

    /// Doubleword 1 keeps the page's RPN (64 KiB aligned) and encodes LP =
    /// 64K, M (RAM is coherent), R, C, W = I = G = 0, N = !executable.
    #[test]
    fn encode_r_keeps_the_rpn(frame in 0u64..(1 << 44), writable: bool, user: bool, executable: bool) {
        let physical = frame << 16; // 64 KiB aligned, inside RPN_MASK (bits 12..59)
        let hr = encode_r(physical, writable, user, executable);
        prop_assert_eq!(hr & r::RPN_MASK & !0xffff, physical);
        prop_assert_eq!(((hr & r::RPN_MASK) >> r::LP_SHIFT) & 0xf, PENC_64K);
        prop_assert_eq!(hr & (r::M | r::REFERENCED | r::CHANGED), r::M | r::REFERENCED | r::CHANGED);
        prop_assert_eq!(hr & (r::W | r::I | r::G), 0);
        prop_assert_eq!(hr & r::N != 0, !executable);
        prop_assert_eq!(hr & (r::PP0 | r::PP_MASK), pp_bits(writable, user));
        // Nothing else: only the bits named above may be set.
        let known = r::PP0 | r::RPN_MASK | r::REFERENCED | r::CHANGED | r::M | r::N | r::PP_MASK;
        prop_assert_eq!(hr & !known, 0);
    }

    /// Low address bits (inside the 64 KiB page) never leak into the RPN or
    /// the LP field.
    #[test]
    fn encode_r_ignores_the_page_offset(frame in 0u64..(1 << 44), offset in 0u64..(1 << 16), w: bool, u: bool, x: bool) {
        prop_assert_eq!(encode_r((frame << 16) | offset, w, u, x), encode_r(frame << 16, w, u, x));
    }
}

proptest! {
    /// Old format -> ISA 3.0 -> old format is the identity on entries the new
    /// format can hold (AVPN bits 52..61 and RPN bits 58..59 clear), and the
    /// other way round on any new-format entry (dword 0 bits 52..63 clear).
    #[test]
    fn isa300_conversions_undo_each_other(a in any::<u64>(), b in any::<u64>()) {
        let old_v = a & (isa300::V_COMMON_BITS | (3 << v::SSIZE_SHIFT));
        let old_r = b & !isa300::R_SSIZE_MASK;
        let (new_v, new_r) = to_isa300(old_v, old_r);
        prop_assert_eq!(new_v & !isa300::V_COMMON_BITS, 0);
        prop_assert_eq!((new_r & isa300::R_SSIZE_MASK) >> isa300::R_SSIZE_SHIFT, old_v >> v::SSIZE_SHIFT);
        prop_assert_eq!(from_isa300(new_v, new_r), (old_v, old_r));
        let new_v = a & isa300::V_COMMON_BITS;
        prop_assert_eq!(to_isa300(from_isa300(new_v, b).0, from_isa300(new_v, b).1), (new_v, b));
    }

    /// What the hash MMU inserts is found back by `decode_vpn`: encode_v of a
    /// 64 KiB page's VPN, at any slot of the group its hash picks (primary,
    /// or secondary with H set), whatever the table size, segment size and
    /// software bits.
    #[test]
    fn decode_vpn_undoes_encode_and_hash(
        vs in wide_vsid(), ea in any::<u64>(), seg in segment(), g in geometry(),
        secondary: bool, slot in 0..HPTES_PER_GROUP, bolted: bool,
    ) {
        let page = vpn(vs, ea & !((1 << PAGE_SHIFT) - 1), seg);
        let mut hv = encode_v(page, seg);
        if bolted {
            hv |= v::BOLTED;
        }
        if secondary {
            hv |= v::SECONDARY;
        }
        let ptex = g.group_slot(hash(page, PAGE_SHIFT, seg), secondary) + slot;
        prop_assert_eq!(decode_vpn(hv, ptex, g.hash_mask()), Some(page));
    }

    /// tlbie RB of a 64 KiB page, field by field (together they cover all 64
    /// bits): VA bits 16..63 (VPN << 12; VA bits 16..19 are LP's upper
    /// nibble), LP's low nibble = penc, IS = 0, B, AVAL = VPN bits 1..7, L = 1.
    #[test]
    fn tlbie_rb_fields(vs in wide_vsid(), ea in any::<u64>(), seg in segment()) {
        let page = vpn(vs, ea & !((1 << PAGE_SHIFT) - 1), seg);
        let rb = tlbie_rb(page, seg);
        prop_assert_eq!(rb >> 16, (page << VPN_SHIFT) >> 16);
        prop_assert_eq!((rb >> 12) & 0xf, PENC_64K);
        prop_assert_eq!((rb >> 10) & 3, 0, "IS = 0: by VA");
        prop_assert_eq!((rb >> 8) & 3, seg.b_field());
        prop_assert_eq!((rb >> 1) & 0x7f, (page >> 1) & 0x7f);
        prop_assert_eq!(rb & 1, 1, "L = 1");
    }
}

/// The PP bits grant what was asked, under the kernel's SLB keys (arch hash
/// code: kernel segments Ks = 0, Kp = 1; user segments Ks = Kp = 1): a user
/// mapping gives the same rights in both states, a kernel mapping gives its
/// rights to the kernel and nothing to user state. All four inputs, so no
/// random input is needed.
#[test]
fn pp_bits_grant_the_asked_rights() {
    for writable in [false, true] {
        for user in [false, true] {
            let pp = pp_bits(writable, user);
            let (privileged_key, problem_key) = if user { (true, true) } else { (false, true) };
            assert_eq!(
                isa_access(pp, privileged_key),
                (true, writable),
                "kernel access, user {user} writable {writable}"
            );
            let expected = if user { (true, writable) } else { (false, false) };
            assert_eq!(isa_access(pp, problem_key), expected, "user access, user {user} writable {writable}");
        }
    }
}
