//! Self-tests of the kernel heap, run in the kernel.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;

use crate::ktest::{fail, ktest, Env, TestResult};
use crate::mm::heap::HEAP;
use crate::{kassert, kassert_eq};

#[ktest]
fn box_roundtrip(_: &Env<'_>) -> TestResult {
    let boxed = Box::new([0xa5u8; 100]);
    kassert!(boxed.iter().all(|&b| b == 0xa5));
    let moved = *boxed;
    kassert_eq!(moved[99], 0xa5);
    Ok(())
}

#[ktest]
fn vec_growth(_: &Env<'_>) -> TestResult {
    let mut values = Vec::new();
    for i in 0..10_000u64 {
        values.push(i);
    }
    kassert_eq!(values.len(), 10_000);
    kassert_eq!(values.iter().sum::<u64>(), 10_000 * 9_999 / 2);
    Ok(())
}

#[ktest]
fn large_allocation(_: &Env<'_>) -> TestResult {
    const SIZE: usize = 4 << 20;
    let used = HEAP.stats().used;
    let mut big = alloc::vec![0u8; SIZE];
    for i in (0..SIZE).step_by(4096) {
        big[i] = (i >> 12) as u8;
    }
    kassert!((0..SIZE).step_by(4096).all(|i| big[i] == (i >> 12) as u8));
    kassert!(HEAP.stats().used >= used + SIZE);
    drop(big);
    kassert_eq!(HEAP.stats().used, used);
    Ok(())
}

#[ktest]
fn frees_return_memory(_: &Env<'_>) -> TestResult {
    let used = HEAP.stats().used;
    let boxes: Vec<Box<[u8]>> = (1..200).map(|n| alloc::vec![n as u8; n * 13].into_boxed_slice()).collect();
    kassert!(HEAP.stats().used > used);
    kassert!(boxes.iter().enumerate().all(|(i, b)| b.len() == (i + 1) * 13 && b[0] == (i + 1) as u8));
    drop(boxes);
    kassert_eq!(HEAP.stats().used, used);
    Ok(())
}

#[ktest]
#[allow(unsafe_code)]
fn page_aligned_allocation(_: &Env<'_>) -> TestResult {
    let layout = Layout::from_size_align(3 * 4096, 4096).map_err(|_| fail("layout"))?;
    // SAFETY: non-zero size; freed below with the same layout.
    let block = unsafe { alloc::alloc::alloc(layout) };
    kassert!(!block.is_null());
    kassert_eq!(block as usize % 4096, 0);
    // SAFETY: allocated above with `layout`.
    unsafe { alloc::alloc::dealloc(block, layout) };
    Ok(())
}
