//! powernv: the kernel on the machine itself (QEMU `-M powernv9`), as the
//! hypervisor. So far only its hashed page table.

pub mod hpt;
