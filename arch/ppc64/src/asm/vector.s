# Block copy and zeroing with VSX loads and stores, 128 bytes (one cache
# block) per iteration, as Linux's copypage_power7 moves pages. ELFv2
# calls made by vector.rs with MSR[VEC] and MSR[VSX] on and interrupts
# off; they use vs32-vs39 (VR0-VR7) and volatile GPRs only.
#
#   void vsx_copy_blocks_v3(void *dst, const void *src, u64 len)  len = 128*n, n > 0
#   void vsx_copy_blocks(void *dst, const void *src, u64 len)     the same
#   void vsx_zero_blocks_v3(void *dst, u64 len)                   the same
#   void vsx_zero_blocks(void *dst, u64 len)                      the same
#
# The _v3 forms use lxv/stxv (ISA 3.0: POWER9 and later); the others
# lxvd2x/stxvd2x (ISA 2.06, POWER7 and later), whose doubleword swap in
# little-endian mode does not matter to a copy, which stores with the form
# that loaded, nor to zeroes. QEMU's TCG runs the ISA 3.0 forms about
# twice as fast.

.macro OFFSETS
    li      %r6, 16
    li      %r7, 32
    li      %r8, 48
    li      %r9, 64
    li      %r10, 80
    li      %r11, 96
    li      %r12, 112
.endm

.section .text.vsx_copy_blocks_v3, "ax", @progbits
.globl vsx_copy_blocks_v3
.type vsx_copy_blocks_v3, @function
.p2align 5
vsx_copy_blocks_v3:
    srdi    %r5, %r5, 7
    mtctr   %r5
1:  lxv     %vs32, 0(%r4)
    lxv     %vs33, 16(%r4)
    lxv     %vs34, 32(%r4)
    lxv     %vs35, 48(%r4)
    lxv     %vs36, 64(%r4)
    lxv     %vs37, 80(%r4)
    lxv     %vs38, 96(%r4)
    lxv     %vs39, 112(%r4)
    stxv    %vs32, 0(%r3)
    stxv    %vs33, 16(%r3)
    stxv    %vs34, 32(%r3)
    stxv    %vs35, 48(%r3)
    stxv    %vs36, 64(%r3)
    stxv    %vs37, 80(%r3)
    stxv    %vs38, 96(%r3)
    stxv    %vs39, 112(%r3)
    addi    %r4, %r4, 128
    addi    %r3, %r3, 128
    bdnz    1b
    blr
.size vsx_copy_blocks_v3, . - vsx_copy_blocks_v3

.section .text.vsx_copy_blocks, "ax", @progbits
.globl vsx_copy_blocks
.type vsx_copy_blocks, @function
.p2align 5
vsx_copy_blocks:
    srdi    %r5, %r5, 7
    mtctr   %r5
    OFFSETS
1:  lxvd2x  %vs32, 0, %r4
    lxvd2x  %vs33, %r6, %r4
    lxvd2x  %vs34, %r7, %r4
    lxvd2x  %vs35, %r8, %r4
    lxvd2x  %vs36, %r9, %r4
    lxvd2x  %vs37, %r10, %r4
    lxvd2x  %vs38, %r11, %r4
    lxvd2x  %vs39, %r12, %r4
    stxvd2x %vs32, 0, %r3
    stxvd2x %vs33, %r6, %r3
    stxvd2x %vs34, %r7, %r3
    stxvd2x %vs35, %r8, %r3
    stxvd2x %vs36, %r9, %r3
    stxvd2x %vs37, %r10, %r3
    stxvd2x %vs38, %r11, %r3
    stxvd2x %vs39, %r12, %r3
    addi    %r4, %r4, 128
    addi    %r3, %r3, 128
    bdnz    1b
    blr
.size vsx_copy_blocks, . - vsx_copy_blocks

# Zeroing: one register of zeroes stored eight times per block. (dcbz
# zeroes a block in one instruction, but under TCG each is a call into the
# emulator; these stores are inline, and 64 KiB takes 0.7x the time.)
.section .text.vsx_zero_blocks_v3, "ax", @progbits
.globl vsx_zero_blocks_v3
.type vsx_zero_blocks_v3, @function
.p2align 5
vsx_zero_blocks_v3:
    srdi    %r4, %r4, 7
    mtctr   %r4
    xxlxor  %vs32, %vs32, %vs32
1:  stxv    %vs32, 0(%r3)
    stxv    %vs32, 16(%r3)
    stxv    %vs32, 32(%r3)
    stxv    %vs32, 48(%r3)
    stxv    %vs32, 64(%r3)
    stxv    %vs32, 80(%r3)
    stxv    %vs32, 96(%r3)
    stxv    %vs32, 112(%r3)
    addi    %r3, %r3, 128
    bdnz    1b
    blr
.size vsx_zero_blocks_v3, . - vsx_zero_blocks_v3

.section .text.vsx_zero_blocks, "ax", @progbits
.globl vsx_zero_blocks
.type vsx_zero_blocks, @function
.p2align 5
vsx_zero_blocks:
    srdi    %r4, %r4, 7
    mtctr   %r4
    OFFSETS
    xxlxor  %vs32, %vs32, %vs32
1:  stxvd2x %vs32, 0, %r3
    stxvd2x %vs32, %r6, %r3
    stxvd2x %vs32, %r7, %r3
    stxvd2x %vs32, %r8, %r3
    stxvd2x %vs32, %r9, %r3
    stxvd2x %vs32, %r10, %r3
    stxvd2x %vs32, %r11, %r3
    stxvd2x %vs32, %r12, %r3
    addi    %r3, %r3, 128
    bdnz    1b
    blr
.size vsx_zero_blocks, . - vsx_zero_blocks
