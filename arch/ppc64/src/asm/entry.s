# Kernel entry, run once on the boot CPU.
#
# Two firmwares enter here, big-endian, at the first byte of the first PT_LOAD
# segment:
# - pseries (SLOF or VOF), as a partition (MSR[HV] = 0), possibly in 32-bit
#   mode: r3, r4 = initrd start/size (or 0), r5 = Open Firmware client-interface
#   entry;
# - skiboot on bare metal (powernv), in hypervisor real mode (MSR[HV] = 1),
#   with the image in place wherever it was loaded (0x20000000 + the segment's
#   file offset): r3 = flattened device tree, r8 = OPAL base, r9 = OPAL entry.
# Rust tells them apart by the MSR at entry, which is passed along.
# The kernel is little-endian, linked at 0 as a static PIE and loaded wherever
# the firmware chose (0x400000 on QEMU), so it switches endianness, applies its
# own R_PPC64_RELATIVE relocations, clears BSS, and calls Rust.
#
# The kernel runs at KERNEL_BASE | physical address from the start: in real
# mode the processor ignores the top 4 bits of an effective address, and once
# translation is on the linear map puts RAM at KERNEL_BASE (radix quadrant 3).
# So relocations use that base, and Rust is entered there.

    .set KERNEL_BASE_TOP, 0xc           # KERNEL_BASE = 0xc000000000000000
    .set PERCPU_COUNT, 256              # MAX_CPUS (checked in percpu.rs)
    .set RUN_BASE, 0x400000             # where the image runs on bare metal

# Flip MSR[LE] when the CPU runs in the wrong endianness, as Linux's FIXUP_ENDIAN.
# Read big-endian, `tdi 0,0,0x48` is `b .+8`, which enters the byte-reversed
# words below; they clear MSR[EE,RI], flip MSR[LE] and `rfid` to label 191.
# Read little-endian, `tdi` never traps and `b 191f` skips the words.
.macro FIXUP_ENDIAN
    tdi     0, 0, 0x48
    b       191f
    .long   0xa600607d          # mfmsr   r11
    .long   0x01006b69          # xori    r11, r11, 1     (MSR[LE])
    .long   0x00004039          # li      r10, 0
    .long   0x6401417d          # mtmsrd  r10, 1          (EE = RI = 0)
    .long   0x05009f42          # bcl     20, 31, $+4
    .long   0xa602487d          # mflr    r10
    .long   0x14004a39          # addi    r10, r10, 20    (-> label 191)
    .long   0xa6035a7d          # mtsrr0  r10
    .long   0xa6037b7d          # mtsrr1  r11
    .long   0x2400004c          # rfid
191:
.endm

# MSR[SF]: firmware (and RTAS start-cpu) may enter in 32-bit mode.
.macro ENABLE_64BIT
    mfmsr   %r11
    li      %r12, 1
    rldicr  %r12, %r12, 63, 0
    or      %r11, %r11, %r12
    mtmsrd  %r11
    isync
.endm

# rd = KERNEL_BASE (0xc000000000000000).
.macro LOAD_KERNEL_BASE rd
    li      \rd, KERNEL_BASE_TOP
    sldi    \rd, \rd, 60
.endm

# The way back from firmware (after FIXUP_ENDIAN, in real mode): rfid to the
# label `3:` that follows, at its KERNEL_BASE address (r10 = KERNEL_BASE),
# with the caller's MSR saved at `msr_slot`(r1). `clear` high bits of the PC
# go first: 32 where the firmware ran in 32-bit mode, 4 (the real-mode
# nibble) otherwise. Clobbers r11, r12, LR.
.macro RFID_TO_3F_AT_KERNEL_BASE clear, msr_slot
    bcl     20, 31, 2f
2:  mflr    %r12
    addi    %r12, %r12, (3f - 2b)
    clrldi  %r12, %r12, \clear
    or      %r12, %r12, %r10
    ld      %r11, \msr_slot(%r1)
    mtsrr0  %r12
    mtsrr1  %r11
    rfid
.endm

# Load the run-time address of `sym` into `rd`, PC-relative to label 0 whose
# run-time address is in `rbase` (no absolute relocation: we run before relocating).
.macro LOAD_PCREL rd, rbase, sym
    addis   \rd, \rbase, (\sym - 0b)@ha
    addi    \rd, \rd, (\sym - 0b)@l
.endm

    .section .text.head, "ax"
    .globl  _start
    .type   _start, @function
_start:
    FIXUP_ENDIAN
    b       8f
    # kexec's purgatory (kexec-tools' and Linux's) stores a word at offset
    # 0x5c of a ppc64 kernel it starts (Linux keeps __run_at_load there):
    # data, not code. `.org` fails the build if the code above grows into it.
    .org    0x5c
    .long   0
8:
    ENABLE_64BIT

    # skiboot enters the image where it loaded it (0x20000000 + the file
    # offset of the segment), 512 MiB above the exception vectors, beyond the
    # 32 MiB reach of their stubs' branches (exceptions.rs); a kexec enters it
    # at its physical address, 0. So in hypervisor state the image first moves
    # itself, still unrelocated, to RUN_BASE (free below skiboot's memory; the
    # address pseries firmware loads it at, so the kernel's addresses are the
    # same on both platforms) and starts again there.
    mfmsr   %r11
    rldicl. %r11, %r11, 4, 63     # MSR[HV]
    beq     9f
    bcl     20, 31, 0f
0:  mflr    %r12
    LOAD_PCREL %r14, %r12, _start
    clrldi  %r14, %r14, 4         # where the image is
    lis     %r15, RUN_BASE@h      # where it runs
    cmpld   %r14, %r15
    beq     9f
    LOAD_PCREL %r16, %r12, __load_end
    clrldi  %r16, %r16, 4
    subf    %r16, %r14, %r16      # bytes the file holds (doubleword aligned)
    LOAD_PCREL %r19, %r12, __kernel_end
    clrldi  %r19, %r19, 4
    subf    %r19, %r14, %r19
    add     %r19, %r15, %r19      # the end of the image at RUN_BASE, BSS included
    # Nothing the firmware passed may be where the image goes: the device
    # tree (r3) would be overwritten. Nor may the image start inside its own
    # destination (the copy would overwrite the code doing it). There is no
    # console yet to say so: stop here (a debugger finds this loop).
    clrldi  %r18, %r3, 4
    cmpld   %r18, %r15
    blt     4f
    cmpld   %r18, %r19
    blt     5f
4:  cmpld   %r14, %r15
    blt     6f                    # below: copy from the top down
    cmpld   %r14, %r19
    bge     1f                    # above and clear of it: copy upwards
5:  b       5b
    # Image below RUN_BASE: last doubleword first, so an overlap only ever
    # overwrites bytes already copied (the code running here is below RUN_BASE).
6:  mr      %r17, %r16
7:  addi    %r17, %r17, -8
    ldx     %r18, %r14, %r17
    stdx    %r18, %r15, %r17
    cmpldi  %r17, 0
    bne     7b
    b       2f
1:  li      %r17, 0
3:  ldx     %r18, %r14, %r17
    stdx    %r18, %r15, %r17
    addi    %r17, %r17, 8
    cmpld   %r17, %r16
    blt     3b
    # The copy is code: write it back from the data cache and drop stale
    # instruction-cache blocks before running it (Book II, 1.8 "instruction
    # storage"), in 128-byte blocks, the POWER7-POWER10 block size.
2:  li      %r17, 0
10: dcbst   %r15, %r17
    addi    %r17, %r17, 128
    cmpld   %r17, %r16
    blt     10b
    sync
    li      %r17, 0
11: icbi    %r15, %r17
    addi    %r17, %r17, 128
    cmpld   %r17, %r16
    blt     11b
    sync
    isync
    mtctr   %r15                  # r3-r9 are untouched: _start again, there
    bctr
9:

    mr      %r31, %r3             # initrd start (pseries), FDT (powernv)
    mr      %r30, %r4             # initrd size
    mr      %r29, %r5             # client-interface entry
    mr      %r24, %r8             # OPAL base (powernv)
    mr      %r23, %r9             # OPAL entry (powernv)
    mfmsr   %r22                  # MSR: HV as the firmware entered (LE, SF, EE, RI are ours now)

    bcl     20, 31, 0f
0:  mflr    %r12

    # r28 = load base = run-time address of _start (linked at 0), physical;
    # r26 = KERNEL_BASE; r25 = the base the kernel runs at.
    LOAD_PCREL %r28, %r12, _start
    clrldi  %r28, %r28, 4
    LOAD_KERNEL_BASE %r26
    or      %r25, %r28, %r26

    # Clear BSS (doubleword aligned by the linker script).
    LOAD_PCREL %r3, %r12, __bss_start
    LOAD_PCREL %r4, %r12, __bss_end
    li      %r0, 0
1:  cmpld   %r3, %r4
    bge     2f
    std     %r0, 0(%r3)
    addi    %r3, %r3, 8
    b       1b
2:
    # Apply R_PPC64_RELATIVE (type 22): *(base + r_offset) = r25 + r_addend.
    # Anything else is counted in r27 and reported by Rust: a static PIE
    # with hidden symbols must have no other dynamic relocation.
    LOAD_PCREL %r3, %r12, __rela_dyn_start
    LOAD_PCREL %r4, %r12, __rela_dyn_end
    li      %r27, 0
3:  cmpld   %r3, %r4
    bge     5f
    ld      %r5, 0(%r3)           # r_offset
    ld      %r6, 8(%r3)           # r_info
    ld      %r7, 16(%r3)          # r_addend
    clrldi  %r6, %r6, 32          # ELF64_R_TYPE
    cmpldi  %r6, 22              # R_PPC64_RELATIVE
    beq     4f
    addi    %r27, %r27, 1
    b       6f
4:  add     %r7, %r7, %r25
    stdx    %r7, %r5, %r28
6:  addi    %r3, %r3, 24
    b       3b
5:
    # Stack and TOC for Rust, at their KERNEL_BASE addresses.
    LOAD_PCREL %r1, %r12, boot_stack_top
    or      %r1, %r1, %r26
    li      %r0, 0
    stdu    %r0, -64(%r1)         # terminate the back chain
    LOAD_PCREL %r2, %r12, .TOC.
    or      %r2, %r2, %r26
    li      %r13, 0

    LOAD_PCREL %r12, %r12, boot_cpu_entry
    or      %r12, %r12, %r26
    mtctr   %r12
    mr      %r3, %r29             # client-interface entry
    mr      %r4, %r31             # initrd start / FDT
    mr      %r5, %r30             # initrd size
    mr      %r6, %r25             # load base, as the kernel sees it
    mr      %r7, %r27             # unexpected relocation count
    mr      %r8, %r24             # OPAL base
    mr      %r9, %r23             # OPAL entry
    mr      %r10, %r22            # MSR at entry
    bctrl
    # boot_cpu_entry never returns.
7:  b       7b
    .size   _start, . - _start

# Secondary CPUs start here (RTAS start-cpu): real mode, maybe big-endian,
# maybe 32-bit, r3 = the CPU's index into PERCPU (percpu.rs; 256-byte areas
# holding the TOC at +32, the stack top at +40 and the Rust entry at +48).
    .section .text, "ax"
    .globl  secondary_start
    .type   secondary_start, @function
    .balign 4
secondary_start:
    FIXUP_ENDIAN
    ENABLE_64BIT
    clrldi  %r31, %r3, 32
    bcl     20, 31, 0f
0:  mflr    %r12
    LOAD_PCREL %r4, %r12, PERCPU
    clrldi  %r4, %r4, 4
    LOAD_KERNEL_BASE %r26
    or      %r4, %r4, %r26
    sldi    %r5, %r31, 8
    add     %r4, %r4, %r5            # &PERCPU[index], at its KERNEL_BASE address
    b       secondary_common
    .size   secondary_start, . - secondary_start

# Secondary CPUs started by OPAL_START_CPU (powernv) come here instead:
# hypervisor real mode, big-endian, r3 = the CPU's PIR (OPAL passes no
# argument of ours). The CPU finds its PerCpu by that PIR: the area whose
# server field (+64) holds it, among those already given an entry point.
    .globl  secondary_start_pir
    .type   secondary_start_pir, @function
    .balign 4
secondary_start_pir:
    FIXUP_ENDIAN
    ENABLE_64BIT
    clrldi  %r31, %r3, 32
    bcl     20, 31, 0f
0:  mflr    %r12
    LOAD_PCREL %r4, %r12, PERCPU
    clrldi  %r4, %r4, 4
    LOAD_KERNEL_BASE %r26
    or      %r4, %r4, %r26
    li      %r5, PERCPU_COUNT - 1
    mtctr   %r5
1:  addi    %r4, %r4, 256            # area 1 first: area 0 is the boot CPU's
    ld      %r6, 48(%r4)
    cmpldi  %r6, 0
    beq     2f                       # not prepared: not ours
    lwz     %r6, 64(%r4)
    cmplw   %r6, %r31
    beq     secondary_common
2:  bdnz    1b
    # No area names this PIR: nothing to run, so stay here (the boot CPU
    # reports the CPU as not come online).
3:  b       3b
    .size   secondary_start_pir, . - secondary_start_pir

    .type   secondary_common, @function
secondary_common:
    ld      %r1, 40(%r4)
    li      %r0, 0
    stdu    %r0, -64(%r1)            # terminate the back chain
    ld      %r2, 32(%r4)
    ld      %r12, 48(%r4)
    mtctr   %r12
    mr      %r3, %r4
    bctrl
1:  b       1b
    .size   secondary_common, . - secondary_common

# u64 firmware_call_be32(entry, arg_r3, arg_r4)
#
# Calls big-endian 32-bit firmware (Open Firmware client interface, RTAS) in
# real mode and comes back little-endian, at KERNEL_BASE, with the MSR it was
# called with (translation on again if it was on). The firmware clobbers the
# upper halves of registers it saves, so every non-volatile register is kept
# here; in 32-bit mode it sees our stack and buffers at their low 32 bits.
    .section .text, "ax"
    .globl  firmware_call_be32
    .type   firmware_call_be32, @function
    .set    FWFRAME, 288
firmware_call_be32:
    mflr    %r0
    std     %r0, 16(%r1)
    stdu    %r1, -FWFRAME(%r1)
    std     %r2, 32(%r1)
    std     %r13, 40(%r1)
    std     %r14, 48(%r1)
    std     %r15, 56(%r1)
    std     %r16, 64(%r1)
    std     %r17, 72(%r1)
    std     %r18, 80(%r1)
    std     %r19, 88(%r1)
    std     %r20, 96(%r1)
    std     %r21, 104(%r1)
    std     %r22, 112(%r1)
    std     %r23, 120(%r1)
    std     %r24, 128(%r1)
    std     %r25, 136(%r1)
    std     %r26, 144(%r1)
    std     %r27, 152(%r1)
    std     %r28, 160(%r1)
    std     %r29, 168(%r1)
    std     %r30, 176(%r1)
    std     %r31, 184(%r1)
    mfcr    %r10
    std     %r10, 192(%r1)
    mfmsr   %r11
    std     %r11, 200(%r1)
    # Interrupts off before SRR0/SRR1 are loaded for the switch: one taken
    # in between would overwrite them, and the rfid would resume here
    # big-endian instead of entering the firmware (Linux's enter_rtas also
    # clears EE and RI first). The final rfid restores the saved MSR.
    li      %r12, 0
    mtmsrd  %r12, 1              # L=1: MSR[EE] = MSR[RI] = 0

    mtsrr0  %r3                  # firmware entry
    mr      %r3, %r4
    mr      %r4, %r5

    bcl     20, 31, 0f
0:  mflr    %r12
    addi    %r12, %r12, (1f - 0b)
    mtlr    %r12                 # firmware returns to 1: (big-endian)

    # MSR for the firmware: 32-bit, big-endian, translation and external
    # interrupts off.
    li      %r12, 1
    rldicr  %r12, %r12, 63, 0     # MSR[SF]
    ori     %r12, %r12, 0x8031    # MSR[EE] | MSR[IR] | MSR[DR] | MSR[LE]
    andc    %r11, %r11, %r12
    mtsrr1  %r11
    rfid

1:  FIXUP_ENDIAN
    # Real mode, 32-bit: rebuild KERNEL_BASE addresses for r1 and the PC, then
    # rfid back to the caller's MSR (64-bit, maybe translated).
    LOAD_KERNEL_BASE %r10
    clrldi  %r1, %r1, 32
    or      %r1, %r1, %r10
    RFID_TO_3F_AT_KERNEL_BASE 32, 200
3:  ld      %r2, 32(%r1)
    ld      %r13, 40(%r1)
    ld      %r14, 48(%r1)
    ld      %r15, 56(%r1)
    ld      %r16, 64(%r1)
    ld      %r17, 72(%r1)
    ld      %r18, 80(%r1)
    ld      %r19, 88(%r1)
    ld      %r20, 96(%r1)
    ld      %r21, 104(%r1)
    ld      %r22, 112(%r1)
    ld      %r23, 120(%r1)
    ld      %r24, 128(%r1)
    ld      %r25, 136(%r1)
    ld      %r26, 144(%r1)
    ld      %r27, 152(%r1)
    ld      %r28, 160(%r1)
    ld      %r29, 168(%r1)
    ld      %r30, 176(%r1)
    ld      %r31, 184(%r1)
    ld      %r10, 192(%r1)
    mtcr    %r10
    clrldi  %r3, %r3, 32          # firmware results are 32-bit
    addi    %r1, %r1, FWFRAME
    ld      %r0, 16(%r1)
    mtlr    %r0
    blr
    .size   firmware_call_be32, . - firmware_call_be32

# i64 opal_call_be(const OpalCall *call)
#
# Calls OPAL (skiboot's runtime services, powernv) with its convention:
# hypervisor real mode, big-endian, external interrupts off, r0 = token,
# r2 = OPAL base, r3-r10 = arguments, entered with hrfid and returning with
# blr to LR. OPAL keeps r1 and r13-r31 and runs on its own stack; it returns
# big-endian in real mode, so the return point flips endianness and then
# restores the caller's MSR (translation on again if it was on).
# OpalCall (platform/powernv/opal.rs): token, base, entry, args[8].
    .section .text, "ax"
    .globl  opal_call_be
    .type   opal_call_be, @function
    .set    OPALFRAME, 64
    .set    HSRR0_SPR, 314
    .set    HSRR1_SPR, 315
opal_call_be:
    mflr    %r0
    std     %r0, 16(%r1)
    stdu    %r1, -OPALFRAME(%r1)
    std     %r2, 32(%r1)
    mfcr    %r12
    std     %r12, 40(%r1)
    mfmsr   %r11
    std     %r11, 48(%r1)
    # EE and RI off before HSRR0/1 are loaded (an interrupt in between
    # would overwrite them); the last rfid restores the saved MSR.
    li      %r12, 0
    mtmsrd  %r12, 1

    ld      %r12, 16(%r3)         # entry
    mtspr   HSRR0_SPR, %r12
    # OPAL's MSR: ours without IR, DR, LE, EE (0x8031). RI stays on, as
    # Linux's __opal_call leaves it: a machine check or system reset inside
    # OPAL is recoverable there.
    li      %r12, 0
    ori     %r12, %r12, 0x8031
    andc    %r11, %r11, %r12
    mtspr   HSRR1_SPR, %r11

    bcl     20, 31, 0f
0:  mflr    %r12
    addi    %r12, %r12, (1f - 0b)
    clrldi  %r12, %r12, 4         # the real address OPAL returns to
    mtlr    %r12

    mr      %r11, %r3
    ld      %r0, 0(%r11)          # token
    ld      %r2, 8(%r11)          # OPAL base
    ld      %r3, 24(%r11)
    ld      %r4, 32(%r11)
    ld      %r5, 40(%r11)
    ld      %r6, 48(%r11)
    ld      %r7, 56(%r11)
    ld      %r8, 64(%r11)
    ld      %r9, 72(%r11)
    ld      %r10, 80(%r11)
    hrfid

1:  FIXUP_ENDIAN
    # Little-endian, real mode: back to the caller's MSR at the KERNEL_BASE
    # address of 3 (r1 was kept, at its KERNEL_BASE address).
    LOAD_KERNEL_BASE %r10
    RFID_TO_3F_AT_KERNEL_BASE 4, 48
3:  ld      %r2, 32(%r1)
    ld      %r12, 40(%r1)
    mtcr    %r12
    addi    %r1, %r1, OPALFRAME
    ld      %r0, 16(%r1)
    mtlr    %r0
    blr
    .size   opal_call_be, . - opal_call_be

    .section .bss.boot_stack, "aw", @nobits
    .balign 65536
    .globl  boot_stack_bottom
boot_stack_bottom:
    .space  65536 * 4
    .globl  boot_stack_top
boot_stack_top:
