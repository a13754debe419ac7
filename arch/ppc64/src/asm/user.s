# User mode: the kernel's copy routine for user memory, and the user
# programs (process.rs copies one to its text page and enters it there in
# problem state).
#
# u64 copy_user_bytes(u8 *to, const u8 *from, u64 len): copies byte by
# byte; returns how many bytes were left when a fault the address space
# could not resolve stopped it (0: all copied). Both accesses have
# exception-table entries: the fix-up returns CTR, the count left.

    .section .text, "ax"
    .globl  copy_user_bytes
    .type   copy_user_bytes, @function
copy_user_bytes:
    cmpldi  %r5, 0
    beq     2f
    mtctr   %r5
1:
copy_user_load:
    lbz     %r6, 0(%r4)
copy_user_store:
    stb     %r6, 0(%r3)
    addi    %r3, %r3, 1
    addi    %r4, %r4, 1
    bdnz    1b
2:  li      %r3, 0
    blr
9:  mfctr   %r3
    blr
    .pushsection __ex_table, "a"
    .balign 4
    .long   copy_user_load - .
    .long   9b - .
    .long   copy_user_store - .
    .long   9b - .
    .popsection
    .size   copy_user_bytes, . - copy_user_bytes

# --- The programs ------------------------------------------------------------
#
# Each is position-independent (branches are relative; data is found from
# the address `bcl 20, 31` leaves in LR) and starts at its first byte, with
# r1 a user stack, r3..r5 the spawn's arguments. The runtime is a macro:
# SYS n makes system call n (Linux's ppc64 numbers, sc: an error comes back
# as a positive errno in r3 with CR0[SO] set). A program that finds a
# result it did not expect exits with a code saying which.

    .set SYS_exit, 1
    .set SYS_write, 4
    .set SYS_getpid, 20
    .set SYS_mmap, 90
    .set SYS_munmap, 91
    .set SYS_mprotect, 125
    .set SYS_sched_yield, 158
    .set SYS_madvise, 205

    .set PROT_READ, 1
    .set PROT_WRITE, 2
    .set MAP_PRIVATE, 0x02
    .set MAP_FIXED, 0x10
    .set MAP_ANONYMOUS, 0x20
    .set MAP_ANON, MAP_PRIVATE | MAP_ANONYMOUS
    .set MAP_ANON_FIXED, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    .set MADV_HUGEPAGE, 14
    .set MADV_COLLAPSE, 25

    .set EBADF, 9
    .set ENOMEM, 12
    .set EFAULT, 14
    .set EINVAL, 22
    .set ENOSYS, 38

.macro SYS number
    li      %r0, \number
    sc
.endm

# mmap(r3, r4, PROT_READ | PROT_WRITE, flags, -1, 0): anonymous memory
# at (or, without MAP_FIXED, near) r3, r4 bytes long; the address in r3.
.macro MMAP_RW flags
    li      %r5, PROT_READ | PROT_WRITE
    li      %r6, \flags
    li      %r7, -1
    li      %r8, 0
    SYS     SYS_mmap
.endm

# Exits with `code` unless the last system call failed with `errno`.
.macro EXPECT_ERRNO errno, code
    bns     8f
    cmpdi   %r3, \errno
    beq     9f
8:  li      %r3, \code
    SYS     SYS_exit
9:
.endm

# Exits with `code` if the last system call failed.
.macro EXPECT_OK code
    bns     9f
    li      %r3, \code
    SYS     SYS_exit
9:
.endm

    .section .rodata.user_programs, "a"
    .balign 4

# hello: writes a line, yields, and exits with its pid.
    .globl  user_hello
user_hello:
    bcl     20, 31, 1f
1:  mflr    %r30
    li      %r3, 1
    addi    %r4, %r30, 2f - 1b
    li      %r5, 3f - 2f
    SYS     SYS_write
    EXPECT_OK 201
    cmpdi   %r3, 3f - 2f
    beq     4f
    li      %r3, 202
    SYS     SYS_exit
4:  SYS     SYS_sched_yield
    EXPECT_OK 203
    SYS     SYS_getpid
    SYS     SYS_exit
2:  .ascii  "hello from user mode\n"
3:
    .balign 4
user_hello_end:

# load: loads the doubleword at r3, then exits 0 (when the load did not kill it).
    .globl  user_load
user_load:
    ld      %r4, 0(%r3)
    li      %r3, 0
    SYS     SYS_exit
user_load_end:

# store: stores r4 at r3, then exits 0.
    .globl  user_store
user_store:
    std     %r4, 0(%r3)
    li      %r3, 0
    SYS     SYS_exit
user_store_end:

# jump: branches to r3 (an address it may not execute).
    .globl  user_jump
user_jump:
    mtctr   %r3
    bctr
user_jump_end:

# privileged: executes mtmsrd, a privileged instruction.
    .globl  user_privileged
user_privileged:
    li      %r3, 0
    mtmsrd  %r3, 1
    li      %r3, 0
    SYS     SYS_exit
user_privileged_end:

# fp: a floating-point instruction (the kernel keeps MSR[FP] off for
# processes): killed by the floating-point unavailable interrupt.
    .globl  user_fp
user_fp:
    .long   0xfc000090                  # fmr f0, f0
    li      %r3, 0
    SYS     SYS_exit
user_fp_end:

# trap: a trap instruction: killed by the program interrupt.
    .globl  user_trap
user_trap:
    trap
    li      %r3, 0
    SYS     SYS_exit
user_trap_end:

# refault: faults forever: stores to a fresh page of a 64 KiB region at
# the fixed address r3, unmaps it, maps it again, and again, until killed.
    .globl  user_refault
user_refault:
    mr      %r31, %r3
1:  mr      %r3, %r31
    lis     %r4, 1
    MMAP_RW MAP_ANON_FIXED
    EXPECT_OK 1
    std     %r31, 0(%r31)               # a fault: a fresh page
    mr      %r3, %r31
    lis     %r4, 1
    SYS     SYS_munmap
    EXPECT_OK 2
    b       1b
user_refault_end:

# spin: loops until it is killed.
    .globl  user_spin
user_spin:
1:  b       1b
user_spin_end:

# bad_syscalls: makes calls that must fail, each with its errno; exits 0
# when every one did, else the number of the first that did not.
# r3 = a kernel address to pass as a buffer.
    .globl  user_bad_syscalls
user_bad_syscalls:
    bcl     20, 31, 1f
1:  mflr    %r30
    mr      %r31, %r3
    # 1: no such system call
    li      %r0, 9999
    sc
    EXPECT_ERRNO ENOSYS, 1
    # 2: write from a kernel address
    li      %r3, 1
    mr      %r4, %r31
    li      %r5, 8
    SYS     SYS_write
    EXPECT_ERRNO EFAULT, 2
    # 3: write from an unmapped user address
    li      %r3, 1
    li      %r4, 0x100
    li      %r5, 8
    SYS     SYS_write
    EXPECT_ERRNO EFAULT, 3
    # 4: write to a file descriptor that does not exist
    li      %r3, 7
    addi    %r4, %r30, 2f - 1b
    li      %r5, 1
    SYS     SYS_write
    EXPECT_ERRNO EBADF, 4
    # 5: write of a huge length
    li      %r3, 1
    addi    %r4, %r30, 2f - 1b
    li      %r5, -1
    SYS     SYS_write
    EXPECT_ERRNO EFAULT, 5
    # 6: munmap of an unaligned address
    lis     %r3, 0x1000
    ori     %r3, %r3, 1
    lis     %r4, 1
    SYS     SYS_munmap
    EXPECT_ERRNO EINVAL, 6
    # 7: munmap of kernel addresses
    mr      %r3, %r31
    lis     %r4, 1
    SYS     SYS_munmap
    EXPECT_ERRNO EINVAL, 7
    # 8: mmap of 2^62 bytes
    li      %r3, 0
    li      %r4, 1
    rldicr  %r4, %r4, 62, 1
    MMAP_RW MAP_ANON
    EXPECT_ERRNO ENOMEM, 8
    # 9: mmap that is not anonymous
    li      %r3, 0
    lis     %r4, 1
    li      %r5, PROT_READ
    li      %r6, MAP_PRIVATE
    li      %r7, 3
    li      %r8, 0
    SYS     SYS_mmap
    EXPECT_ERRNO EINVAL, 9
    # 10: mprotect of a range nothing maps
    lis     %r3, 0x3000
    lis     %r4, 1
    li      %r5, PROT_READ
    SYS     SYS_mprotect
    EXPECT_ERRNO ENOMEM, 10
    # 11: mprotect with bits that are no protection
    lis     %r3, 0x1000
    lis     %r4, 1
    li      %r5, 0x100
    SYS     SYS_mprotect
    EXPECT_ERRNO EINVAL, 11
    # 12: madvise with advice that does not exist
    lis     %r3, 0x1000
    lis     %r4, 1
    li      %r5, 9999
    SYS     SYS_madvise
    EXPECT_ERRNO EINVAL, 12
    # 13: pin of kernel memory
    mr      %r3, %r31
    li      %r4, 1
    li      %r5, 1
    SYS     0x1001
    EXPECT_ERRNO EINVAL, 13
    # 14: pin of user memory nothing maps
    lis     %r3, 0x3000
    li      %r4, 1
    li      %r5, 1
    SYS     0x1001
    EXPECT_ERRNO EFAULT, 14
    # 15: pin of more pages than one call takes
    lis     %r3, 0x1000
    li      %r4, 1000
    li      %r5, 0
    SYS     0x1001
    EXPECT_ERRNO EINVAL, 15
    # 16, 17: unpin and pin_read of a handle that does not exist
    li      %r3, 99
    SYS     0x1002
    EXPECT_ERRNO EINVAL, 16
    li      %r3, 99
    li      %r4, 0
    li      %r5, 0
    SYS     0x1003
    EXPECT_ERRNO EINVAL, 17
    li      %r3, 0
    SYS     SYS_exit
2:  .ascii  "x"
    .balign 4
user_bad_syscalls_end:

# thp: maps 4 MiB, writes a pattern into the 2 MiB-aligned 2 MiB inside it,
# asks for huge pages and a collapse, checks the pattern survived, makes it
# read-only, unmaps everything and exits 0; or exits with the step that failed.
    .globl  user_thp
user_thp:
    li      %r3, 0
    lis     %r4, 0x40                   # 4 MiB
    MMAP_RW MAP_ANON
    EXPECT_OK 1
    mr      %r31, %r3                   # the mapping
    # The 2 MiB-aligned 2 MiB inside it.
    lis     %r29, 0x20
    addi    %r29, %r29, -1
    add     %r30, %r31, %r29
    andc    %r30, %r30, %r29            # r30 = huge base
    # Write page i's first doubleword: base + i, for the 32 pages.
    li      %r28, 0
1:  sldi    %r27, %r28, 16
    add     %r26, %r30, %r28
    stdx    %r26, %r30, %r27
    addi    %r28, %r28, 1
    cmpdi   %r28, 32
    blt     1b
    mr      %r3, %r30
    lis     %r4, 0x20
    li      %r5, MADV_HUGEPAGE
    SYS     SYS_madvise
    EXPECT_OK 2
    mr      %r3, %r30
    lis     %r4, 0x20
    li      %r5, MADV_COLLAPSE
    SYS     SYS_madvise
    EXPECT_OK 3
    li      %r28, 0
2:  sldi    %r27, %r28, 16
    add     %r26, %r30, %r28
    ldx     %r25, %r30, %r27
    cmpd    %r25, %r26
    beq     3f
    li      %r3, 4
    SYS     SYS_exit
3:  addi    %r28, %r28, 1
    cmpdi   %r28, 32
    blt     2b
    mr      %r3, %r30
    lis     %r4, 0x20
    li      %r5, PROT_READ
    SYS     SYS_mprotect
    EXPECT_OK 5
    ld      %r25, 0(%r30)
    cmpd    %r25, %r30
    beq     4f
    li      %r3, 6
    SYS     SYS_exit
4:  mr      %r3, %r31
    lis     %r4, 0x40
    SYS     SYS_munmap
    EXPECT_OK 7
    li      %r3, 0
    SYS     SYS_exit
user_thp_end:

# holder: maps 64 KiB at the fixed address r3, stores r4 there, then
# yields until it is killed.
    .globl  user_holder
user_holder:
    mr      %r31, %r3
    mr      %r30, %r4
    lis     %r4, 1
    MMAP_RW MAP_ANON_FIXED
    EXPECT_OK 1
    std     %r30, 0(%r31)
1:  SYS     SYS_sched_yield
    b       1b
user_holder_end:

# pinwriter: the seed thread's race from user mode. Maps 2 MiB at the
# fixed, 2 MiB-aligned address r3 with small pages (writes each), allows
# huge pages there (so that collapse may take it), then r4 times: pins one
# of its pages (the vmsplice-like call: GUP-fast in the kernel), writes a
# new value to it through its own mapping, reads the pinned page through
# the kernel, and unpins. Exits with the number of writes the pinned page
# did not see (the pin was of a page collapse had replaced), or 900 + the
# step that failed.
    .set SYS_pin, 0x1001
    .set SYS_unpin, 0x1002
    .set SYS_pin_read, 0x1003
    .globl  user_pinwriter
user_pinwriter:
    mr      %r31, %r3
    mr      %r28, %r4
    lis     %r4, 0x20
    MMAP_RW MAP_ANON_FIXED
    EXPECT_OK 901
    li      %r27, 0
1:  sldi    %r26, %r27, 16
    stdx    %r27, %r31, %r26
    addi    %r27, %r27, 1
    cmpdi   %r27, 32
    blt     1b
    mr      %r3, %r31
    lis     %r4, 0x20
    li      %r5, MADV_HUGEPAGE
    SYS     SYS_madvise
    EXPECT_OK 902
    li      %r29, 0                     # writes the pin did not see
    li      %r27, 0                     # round
2:  andi.   %r26, %r27, 31
    sldi    %r26, %r26, 16
    add     %r25, %r31, %r26            # this round's page
    mr      %r3, %r25
    li      %r4, 1
    li      %r5, 1
    SYS     SYS_pin
    bso     4f                          # not pinned this round
    mr      %r24, %r3                   # the handle
    sldi    %r23, %r27, 8
    ori     %r23, %r23, 0x5a            # this round's value
    std     %r23, 256(%r25)
    mr      %r3, %r24
    li      %r4, 0
    li      %r5, 256
    SYS     SYS_pin_read
    EXPECT_OK 903
    cmpd    %r3, %r23
    beq     3f
    addi    %r29, %r29, 1
3:  mr      %r3, %r24
    SYS     SYS_unpin
    EXPECT_OK 904
4:  addi    %r27, %r27, 1
    cmpd    %r27, %r28
    blt     2b
    mr      %r3, %r29
    SYS     SYS_exit
user_pinwriter_end:

# bench_syscalls: r3 getpid calls; exits with the timebase ticks they took.
    .globl  user_bench_syscalls
user_bench_syscalls:
    mr      %r31, %r3
    mftb    %r30
1:  SYS     SYS_getpid
    addi    %r31, %r31, -1
    cmpdi   %r31, 0
    bgt     1b
    mftb    %r3
    sub     %r3, %r3, %r30
    SYS     SYS_exit
user_bench_syscalls_end:

# bench_faults: maps r3 pages of 64 KiB, then stores to each (a fault
# apiece); exits with the timebase ticks the stores took, or with -1 if
# an mmap or munmap failed. First, untimed, it faults in as many pages
# elsewhere and unmaps them, so that the timed faults get frames just
# freed, as the repetitions of Linux's fault loop (one process) and of the
# kernel's own fault benchmark do. Without that, each repetition would
# time a new process's first touch of memory: about 1.5x as long on radix
# and 1.2x on hash, measured (zeroing memory the host has to fetch from
# DRAM costs about twice as much as zeroing memory in its caches).
# The r31 pages of 64 KiB at r29 get one store each (r27, r28 scratch).
.macro STORE_EACH_PAGE
    li      %r28, 0
7:  sldi    %r27, %r28, 16
    stdx    %r28, %r29, %r27
    addi    %r28, %r28, 1
    cmpd    %r28, %r31
    blt     7b
.endm

# mmap of r31 pages of 64 KiB, anywhere: the address in r3 (CR0[SO] on failure).
.macro MAP_PAGES
    sldi    %r4, %r31, 16
    li      %r3, 0
    MMAP_RW MAP_ANON
.endm

    .globl  user_bench_faults
user_bench_faults:
    mr      %r31, %r3
    MAP_PAGES
    bso     3f
    mr      %r29, %r3
    STORE_EACH_PAGE
    mr      %r3, %r29
    sldi    %r4, %r31, 16
    SYS     SYS_munmap
    bso     3f
    MAP_PAGES
    bns     1f
3:  li      %r3, -1
    SYS     SYS_exit
1:  mr      %r29, %r3
    mftb    %r30
    STORE_EACH_PAGE
    mftb    %r3
    sub     %r3, %r3, %r30
    SYS     SYS_exit
user_bench_faults_end:

# scv_calls: the same calls as hello through `scv 0` (ISA 3.0: errors as
# -errno in r3), then an unknown call, which must give -ENOSYS; exits with
# its pid, or 900 + the step that failed.
.macro SCV number
    li      %r0, \number
    .long   0x44000001                  # scv 0 (Power ISA v3.0, Book I, 3.3.1)
.endm
    .globl  user_scv_calls
user_scv_calls:
    bcl     20, 31, 1f
1:  mflr    %r30
    li      %r3, 1
    addi    %r4, %r30, 2f - 1b
    li      %r5, 3f - 2f
    SCV     SYS_write
    cmpdi   %r3, 3f - 2f
    beq     4f
    li      %r3, 901
    .long   0x44000001 | (0 << 5)
4:  li      %r0, 9999
    .long   0x44000001
    cmpdi   %r3, -ENOSYS
    beq     5f
    li      %r3, 902
    SYS     SYS_exit
5:  SCV     SYS_getpid
    SCV     SYS_exit
2:  .ascii  "hello through scv\n"
3:
    .balign 4
user_scv_calls_end:

# scv_loop: r3 getpid calls through `scv 0` back to back, then exit 0:
# ticks keep arriving meanwhile, some right at an scv stub's first
# instructions, where MSR[EE] is still on.
    .globl  user_scv_loop
user_scv_loop:
    mr      %r31, %r3
1:  SCV     SYS_getpid
    addi    %r31, %r31, -1
    cmpdi   %r31, 0
    bgt     1b
    li      %r3, 0
    SYS     SYS_exit
user_scv_loop_end:

# scv_level1: `scv 1`, a level this kernel does not offer: killed.
    .globl  user_scv_level1
user_scv_level1:
    li      %r0, SYS_getpid
    .long   0x44000021                  # scv 1
    li      %r3, 0
    SYS     SYS_exit
user_scv_level1_end:

# regs: every register the interrupted code owns survives interrupts, and
# the ones the ABI keeps survive system calls. Fills r2, r13 and r14-r31
# with their numbers (n << 32 | n), CR fields 1-7 and CTR with patterns,
# spins for r3 timebase ticks (several of the kernel's ticks: each an
# interrupt from user mode, maybe a switch to another thread), checks them
# all; then makes 8 sched_yield calls and checks r2, r13 and r14-r31 again.
# Exits 0, or with the register that changed (100 + n after the calls,
# 200 for CR, 201 for CTR).
    .globl  user_regs
user_regs:
    mr      %r4, %r3                    # the ticks to spin
    li      %r2, 2
    rldimi  %r2, %r2, 32, 0
    li      %r13, 13
    rldimi  %r13, %r13, 32, 0
    li      %r14, 14
    rldimi  %r14, %r14, 32, 0
    li      %r15, 15
    rldimi  %r15, %r15, 32, 0
    li      %r16, 16
    rldimi  %r16, %r16, 32, 0
    li      %r17, 17
    rldimi  %r17, %r17, 32, 0
    li      %r18, 18
    rldimi  %r18, %r18, 32, 0
    li      %r19, 19
    rldimi  %r19, %r19, 32, 0
    li      %r20, 20
    rldimi  %r20, %r20, 32, 0
    li      %r21, 21
    rldimi  %r21, %r21, 32, 0
    li      %r22, 22
    rldimi  %r22, %r22, 32, 0
    li      %r23, 23
    rldimi  %r23, %r23, 32, 0
    li      %r24, 24
    rldimi  %r24, %r24, 32, 0
    li      %r25, 25
    rldimi  %r25, %r25, 32, 0
    li      %r26, 26
    rldimi  %r26, %r26, 32, 0
    li      %r27, 27
    rldimi  %r27, %r27, 32, 0
    li      %r28, 28
    rldimi  %r28, %r28, 32, 0
    li      %r29, 29
    rldimi  %r29, %r29, 32, 0
    li      %r30, 30
    rldimi  %r30, %r30, 32, 0
    li      %r31, 31
    rldimi  %r31, %r31, 32, 0
    lis     %r5, 0x09ab
    ori     %r5, %r5, 0xcdef
    mtcrf   0x7f, %r5                   # CR fields 1-7
    lis     %r6, 0x1234
    ori     %r6, %r6, 0x5678
    mtctr   %r6
    mftb    %r7
2:  mftb    %r8
    sub     %r8, %r8, %r7
    cmpld   %r8, %r4
    blt     2b
    li      %r3, 2
    rldimi  %r3, %r3, 32, 0
    cmpd    %r2, %r3
    beq     1f
    li      %r3, 2
    SYS     SYS_exit
1:
    li      %r3, 13
    rldimi  %r3, %r3, 32, 0
    cmpd    %r13, %r3
    beq     1f
    li      %r3, 13
    SYS     SYS_exit
1:
    li      %r3, 14
    rldimi  %r3, %r3, 32, 0
    cmpd    %r14, %r3
    beq     1f
    li      %r3, 14
    SYS     SYS_exit
1:
    li      %r3, 15
    rldimi  %r3, %r3, 32, 0
    cmpd    %r15, %r3
    beq     1f
    li      %r3, 15
    SYS     SYS_exit
1:
    li      %r3, 16
    rldimi  %r3, %r3, 32, 0
    cmpd    %r16, %r3
    beq     1f
    li      %r3, 16
    SYS     SYS_exit
1:
    li      %r3, 17
    rldimi  %r3, %r3, 32, 0
    cmpd    %r17, %r3
    beq     1f
    li      %r3, 17
    SYS     SYS_exit
1:
    li      %r3, 18
    rldimi  %r3, %r3, 32, 0
    cmpd    %r18, %r3
    beq     1f
    li      %r3, 18
    SYS     SYS_exit
1:
    li      %r3, 19
    rldimi  %r3, %r3, 32, 0
    cmpd    %r19, %r3
    beq     1f
    li      %r3, 19
    SYS     SYS_exit
1:
    li      %r3, 20
    rldimi  %r3, %r3, 32, 0
    cmpd    %r20, %r3
    beq     1f
    li      %r3, 20
    SYS     SYS_exit
1:
    li      %r3, 21
    rldimi  %r3, %r3, 32, 0
    cmpd    %r21, %r3
    beq     1f
    li      %r3, 21
    SYS     SYS_exit
1:
    li      %r3, 22
    rldimi  %r3, %r3, 32, 0
    cmpd    %r22, %r3
    beq     1f
    li      %r3, 22
    SYS     SYS_exit
1:
    li      %r3, 23
    rldimi  %r3, %r3, 32, 0
    cmpd    %r23, %r3
    beq     1f
    li      %r3, 23
    SYS     SYS_exit
1:
    li      %r3, 24
    rldimi  %r3, %r3, 32, 0
    cmpd    %r24, %r3
    beq     1f
    li      %r3, 24
    SYS     SYS_exit
1:
    li      %r3, 25
    rldimi  %r3, %r3, 32, 0
    cmpd    %r25, %r3
    beq     1f
    li      %r3, 25
    SYS     SYS_exit
1:
    li      %r3, 26
    rldimi  %r3, %r3, 32, 0
    cmpd    %r26, %r3
    beq     1f
    li      %r3, 26
    SYS     SYS_exit
1:
    li      %r3, 27
    rldimi  %r3, %r3, 32, 0
    cmpd    %r27, %r3
    beq     1f
    li      %r3, 27
    SYS     SYS_exit
1:
    li      %r3, 28
    rldimi  %r3, %r3, 32, 0
    cmpd    %r28, %r3
    beq     1f
    li      %r3, 28
    SYS     SYS_exit
1:
    li      %r3, 29
    rldimi  %r3, %r3, 32, 0
    cmpd    %r29, %r3
    beq     1f
    li      %r3, 29
    SYS     SYS_exit
1:
    li      %r3, 30
    rldimi  %r3, %r3, 32, 0
    cmpd    %r30, %r3
    beq     1f
    li      %r3, 30
    SYS     SYS_exit
1:
    li      %r3, 31
    rldimi  %r3, %r3, 32, 0
    cmpd    %r31, %r3
    beq     1f
    li      %r3, 31
    SYS     SYS_exit
1:
    mfcr    %r3
    rlwinm  %r3, %r3, 0, 4, 31          # fields 1-7
    lis     %r5, 0x09ab
    ori     %r5, %r5, 0xcdef
    cmpw    %r3, %r5
    beq     3f
    li      %r3, 200
    SYS     SYS_exit
3:  mfctr   %r3
    lis     %r5, 0x1234
    ori     %r5, %r5, 0x5678
    cmpd    %r3, %r5
    beq     4f
    li      %r3, 201
    SYS     SYS_exit
4:  li      %r9, 8
5:  SYS     SYS_sched_yield
    addi    %r9, %r9, -1
    cmpdi   %r9, 0
    bgt     5b
    li      %r3, 2
    rldimi  %r3, %r3, 32, 0
    cmpd    %r2, %r3
    beq     1f
    li      %r3, 102
    SYS     SYS_exit
1:
    li      %r3, 13
    rldimi  %r3, %r3, 32, 0
    cmpd    %r13, %r3
    beq     1f
    li      %r3, 113
    SYS     SYS_exit
1:
    li      %r3, 14
    rldimi  %r3, %r3, 32, 0
    cmpd    %r14, %r3
    beq     1f
    li      %r3, 114
    SYS     SYS_exit
1:
    li      %r3, 15
    rldimi  %r3, %r3, 32, 0
    cmpd    %r15, %r3
    beq     1f
    li      %r3, 115
    SYS     SYS_exit
1:
    li      %r3, 16
    rldimi  %r3, %r3, 32, 0
    cmpd    %r16, %r3
    beq     1f
    li      %r3, 116
    SYS     SYS_exit
1:
    li      %r3, 17
    rldimi  %r3, %r3, 32, 0
    cmpd    %r17, %r3
    beq     1f
    li      %r3, 117
    SYS     SYS_exit
1:
    li      %r3, 18
    rldimi  %r3, %r3, 32, 0
    cmpd    %r18, %r3
    beq     1f
    li      %r3, 118
    SYS     SYS_exit
1:
    li      %r3, 19
    rldimi  %r3, %r3, 32, 0
    cmpd    %r19, %r3
    beq     1f
    li      %r3, 119
    SYS     SYS_exit
1:
    li      %r3, 20
    rldimi  %r3, %r3, 32, 0
    cmpd    %r20, %r3
    beq     1f
    li      %r3, 120
    SYS     SYS_exit
1:
    li      %r3, 21
    rldimi  %r3, %r3, 32, 0
    cmpd    %r21, %r3
    beq     1f
    li      %r3, 121
    SYS     SYS_exit
1:
    li      %r3, 22
    rldimi  %r3, %r3, 32, 0
    cmpd    %r22, %r3
    beq     1f
    li      %r3, 122
    SYS     SYS_exit
1:
    li      %r3, 23
    rldimi  %r3, %r3, 32, 0
    cmpd    %r23, %r3
    beq     1f
    li      %r3, 123
    SYS     SYS_exit
1:
    li      %r3, 24
    rldimi  %r3, %r3, 32, 0
    cmpd    %r24, %r3
    beq     1f
    li      %r3, 124
    SYS     SYS_exit
1:
    li      %r3, 25
    rldimi  %r3, %r3, 32, 0
    cmpd    %r25, %r3
    beq     1f
    li      %r3, 125
    SYS     SYS_exit
1:
    li      %r3, 26
    rldimi  %r3, %r3, 32, 0
    cmpd    %r26, %r3
    beq     1f
    li      %r3, 126
    SYS     SYS_exit
1:
    li      %r3, 27
    rldimi  %r3, %r3, 32, 0
    cmpd    %r27, %r3
    beq     1f
    li      %r3, 127
    SYS     SYS_exit
1:
    li      %r3, 28
    rldimi  %r3, %r3, 32, 0
    cmpd    %r28, %r3
    beq     1f
    li      %r3, 128
    SYS     SYS_exit
1:
    li      %r3, 29
    rldimi  %r3, %r3, 32, 0
    cmpd    %r29, %r3
    beq     1f
    li      %r3, 129
    SYS     SYS_exit
1:
    li      %r3, 30
    rldimi  %r3, %r3, 32, 0
    cmpd    %r30, %r3
    beq     1f
    li      %r3, 130
    SYS     SYS_exit
1:
    li      %r3, 31
    rldimi  %r3, %r3, 32, 0
    cmpd    %r31, %r3
    beq     1f
    li      %r3, 131
    SYS     SYS_exit
1:
    li      %r3, 0
    SYS     SYS_exit
user_regs_end:

# The programs by name: (name, start, end) addresses, for process::program.
    .section .data.rel.ro.user_programs, "aw"
    .balign 8
    .globl  user_programs_table
    .globl  user_programs_table_end
user_programs_table:
.irp name, hello, load, store, jump, privileged, spin, bad_syscalls, thp, holder, pinwriter, bench_syscalls, bench_faults, scv_calls, scv_level1, fp, trap, regs, refault, scv_loop
    .quad   user_name_\name, user_\name, user_\name\()_end
.endr
user_programs_table_end:

    .section .rodata.user_program_names, "a"
.irp name, hello, load, store, jump, privileged, spin, bad_syscalls, thp, holder, pinwriter, bench_syscalls, bench_faults, scv_calls, scv_level1, fp, trap, regs, refault, scv_loop
user_name_\name:
    .asciz  "\name"
.endr
