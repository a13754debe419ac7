//! The hypervisor's hashed page table (PAPR "HPT management"; Linux's
//! pseries `lpar.c`): a pseries partition never writes HPTEs itself, it asks
//! the hypervisor with H_ENTER, H_REMOVE, H_BULK_REMOVE, H_PROTECT and
//! H_READ, and the hypervisor issues the `tlbie`.

use kernel::mm::hash as hpt;

use super::hcall::{
    self, hcall8, hcall_ret, H_BULK_REMOVE, H_DROPPED, H_ENTER, H_HARDWARE, H_NOT_FOUND, H_NO_MEM, H_PARAMETER,
    H_PROTECT, H_PTEG_FULL, H_READ, H_REMOVE,
};
use crate::platform::{Hpte, HpteError, HpteOps, Scope};

/// Flags (r4): match the AVPN given; H_READ four entries at once.
const H_AVPN: u64 = 1 << 31;
const H_READ_4: u64 = 1 << 37;
/// H_BULK_REMOVE request words (PAPR; QEMU h_bulk_remove): type in the top
/// two bits (request 01, end 11), the AVPN-match flag, ptex below; each is
/// rewritten as a response with a code in bits 60..61 (0 done, 1 not found).
const BULK_REQUEST: u64 = 1 << 62;
const BULK_END: u64 = 3 << 62;
const BULK_AVPN: u64 = 0x0200_0000_0000_0000;
const BULK_RESPONSE_SHIFT: u32 = 60;
/// What H_AVPN compares: all of dword 0 but its low seven bits (B and AVPN).
const AVPN_COMPARE: u64 = !0x7f;

fn status(code: i64) -> Result<(), HpteError> {
    match code {
        hcall::H_SUCCESS => Ok(()),
        H_PTEG_FULL => Err(HpteError::GroupFull),
        H_NOT_FOUND => Err(HpteError::NotFound),
        H_HARDWARE => Err(HpteError::Hardware),
        H_PARAMETER | H_DROPPED..=H_NO_MEM => Err(HpteError::Parameter(code)),
        other => Err(HpteError::Other(other)),
    }
}

/// The HPT through hcalls. The hypervisor does each removal's `tlbie` and
/// chooses its reach, so the callers' scope goes unused.
pub struct Lpar;
pub static LPAR: Lpar = Lpar;

impl HpteOps for Lpar {
    /// H_ENTER into any free slot of the group at `group_ptex`.
    fn insert(&self, group_ptex: u64, v: u64, r: u64) -> Result<u64, HpteError> {
        let (code, out) = hcall_ret(H_ENTER, [0, group_ptex, v, r]);
        status(code).map(|()| out[0])
    }

    fn remove(&self, ptex: u64, v: u64, _scope: Scope) -> Result<Hpte, HpteError> {
        let (code, out) = hcall_ret(H_REMOVE, [H_AVPN, ptex, v & AVPN_COMPARE, 0]);
        status(code).map(|()| Hpte { v: out[0], r: out[1] })
    }

    /// H_PROTECT's flags carry the rights as QEMU's h_protect and Linux's
    /// pSeries_lpar_hpte_updatepp do: PP1/PP2 in bits 1:0, N in 0x4, PP0 in
    /// 0x100.
    fn protect(&self, ptex: u64, v: u64, r: u64, _scope: Scope) -> Result<(), HpteError> {
        const FLAG_PP0: u64 = 0x100;
        let mut flags = H_AVPN | (r & (hpt::r::N | hpt::r::PP_MASK));
        if r & hpt::r::PP0 != 0 {
            flags |= FLAG_PP0;
        }
        let (code, _) = hcall_ret(H_PROTECT, [flags, ptex, v & AVPN_COMPARE, 0]);
        status(code)
    }

    fn read(&self, ptex: u64) -> Result<Hpte, HpteError> {
        let (code, out) = hcall_ret(H_READ, [0, ptex, 0, 0]);
        status(code).map(|()| Hpte { v: out[0], r: out[1] })
    }

    /// One H_READ with H_READ_4.
    fn read4(&self, ptex: u64) -> Result<[Hpte; 4], HpteError> {
        let (code, out) = hcall_ret(H_READ, [H_READ_4, ptex & !3, 0, 0]);
        status(code)?;
        Ok(core::array::from_fn(|i| Hpte { v: out[2 * i], r: out[2 * i + 1] }))
    }

    /// One H_BULK_REMOVE of up to four entries.
    fn remove_four(&self, entries: &[(u64, u64)], _scope: Scope) -> Result<(), HpteError> {
        debug_assert!(entries.len() <= 4);
        let mut words = [BULK_END; 8];
        for (i, &(ptex, v)) in entries.iter().enumerate() {
            words[2 * i] = BULK_REQUEST | BULK_AVPN | ptex;
            words[2 * i + 1] = v & AVPN_COMPARE;
        }
        let (code, out) = hcall8(H_BULK_REMOVE, words);
        status(code)?;
        for i in 0..entries.len() {
            match (out[2 * i] >> BULK_RESPONSE_SHIFT) & 3 {
                0 => {}
                1 => return Err(HpteError::NotFound),
                code => return Err(HpteError::Other(code as i64)),
            }
        }
        Ok(())
    }
}
