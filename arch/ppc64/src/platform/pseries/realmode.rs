//! The way into the firmware's own code (the Open Firmware client interface
//! and RTAS): both run big-endian, 32-bit, in real mode.

extern "C" {
    /// asm/entry.s: saves the kernel's state, switches to big-endian 32-bit
    /// real mode, calls `entry` with r3 = `arg` and r4 = `arg2`, and comes
    /// back with its r3.
    pub fn firmware_call_be32(entry: u64, arg: u64, arg2: u64) -> u64;
}
