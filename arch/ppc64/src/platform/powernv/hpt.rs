//! TEMPORARY stub until the native HPT lands.
use core::sync::atomic::{AtomicU64, Ordering};

use crate::platform::{Hpte, HpteError, HpteOps};

pub struct NativeHpt {
    base: AtomicU64,
    size_log2: AtomicU64,
}
pub static NATIVE_HPT: NativeHpt = NativeHpt { base: AtomicU64::new(0), size_log2: AtomicU64::new(0) };

impl NativeHpt {
    pub fn init(&self, base: u64, size_log2: u32) {
        self.base.store(base, Ordering::Relaxed);
        self.size_log2.store(size_log2 as u64, Ordering::Relaxed);
    }
    pub fn table(&self) -> Option<(u64, u32)> {
        let base = self.base.load(Ordering::Relaxed);
        (base != 0).then(|| (base, self.size_log2.load(Ordering::Relaxed) as u32))
    }
}

impl HpteOps for NativeHpt {
    fn insert(&self, _group_ptex: u64, _v: u64, _r: u64) -> Result<u64, HpteError> {
        Err(HpteError::Other(0))
    }
    fn remove(&self, _ptex: u64, _v: u64) -> Result<Hpte, HpteError> {
        Err(HpteError::NotFound)
    }
    fn protect(&self, _ptex: u64, _v: u64, _r: u64) -> Result<(), HpteError> {
        Err(HpteError::NotFound)
    }
    fn read(&self, _ptex: u64) -> Result<Hpte, HpteError> {
        Err(HpteError::NotFound)
    }
}
