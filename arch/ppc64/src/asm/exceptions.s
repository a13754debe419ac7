# Interrupt entry and exit.
#
# Every vector holds a 4-instruction stub (exceptions.rs copies it there and
# patches the vector number and the branch):
#     mtspr  SPRG1, r13        save r13
#     mtspr  SPRG2, r12        save r12
#     li     r12, <vector> | <1 if the vector saves state in HSRR0/1>
#     b      exception_common
# exception_common saves the interrupted state as a TrapFrame, calls
# exception_dispatch(&mut TrapFrame) and returns with rfid, or hrfid for the
# interrupts that used HSRR0/1 (the hypervisor vectors; on bare metal also
# 0x500). Vectors are multiples of 0x20, so bit 0 is free for the flag. The
# frame goes below the interrupted r1 when the kernel was interrupted; from
# problem state (MSR[PR] in the saved SRR1/HSRR1) r1 is the user's, so it
# goes below the running thread's kernel entry stack (PerCpu, set by
# user_run and on every context switch), with no back chain: a backtrace
# ends at the user boundary.
#
# SPRG0 always holds this CPU's PerCpu pointer (percpu.rs).

    .set SPRG0, 272
    .set SPRG1, 273
    .set SPRG2, 274
    .set HSRR0, 314
    .set HSRR1, 315

    # PerCpu offsets (checked against the Rust struct in percpu.rs).
    .set PCPU_SCRATCH0, 0
    .set PCPU_SCRATCH1, 8
    .set PCPU_SCRATCH2, 16
    .set PCPU_TOC, 32
    .set PCPU_USER_ENTRY_SP, 224

    .set MSR_PR, 0x4000
    # 0xc000000000003000 >> 12 = 0x000c000000000003: (SCV_PAGE_TOP << 48) | SCV_PAGE_LOW.
    .set SCV_PAGE_TOP, 0xc
    .set SCV_PAGE_LOW, 3

    # TrapFrame offsets (checked against the Rust struct in exceptions.rs).
    .set TF_GPR, 0
    .set TF_SRR0, 256
    .set TF_SRR1, 264
    .set TF_LR, 272
    .set TF_CTR, 280
    .set TF_XER, 288
    .set TF_CR, 296
    .set TF_DAR, 304
    .set TF_DSISR, 312
    .set TF_VECTOR, 320
    .set TF_HSRR, 328
    .set TF_SIZE, 336

    # ELFv2 minimum frame (back chain, CR, LR, TOC save) below the TrapFrame,
    # and the 288-byte ABI-protected zone below the interrupted r1 left alone.
    .set FRAME_HEADER, 32
    .set PROTECTED_ZONE, 288
    .set FRAME_SIZE, (FRAME_HEADER + TF_SIZE + 15) & ~15
    .set TF, FRAME_HEADER

    .set SRR0_SPR, 26
    .set SRR1_SPR, 27

# Restores the TrapFrame at r1 + TF and returns with `ret` through the
# save/restore registers `srr0`/`srr1`. CR is restored last but one, and
# nothing after it changes CR.
.macro RESTORE_AND_RETURN srr0, srr1, ret
    ld      %r3, TF + TF_SRR0(%r1)
    ld      %r4, TF + TF_SRR1(%r1)
    mtspr   \srr0, %r3
    mtspr   \srr1, %r4
    ld      %r3, TF + TF_LR(%r1)
    mtlr    %r3
    ld      %r3, TF + TF_CTR(%r1)
    mtctr   %r3
    ld      %r3, TF + TF_XER(%r1)
    mtxer   %r3
    ld      %r3, TF + TF_CR(%r1)
    mtcr    %r3
    ld      %r0, TF + TF_GPR + 8*0(%r1)
    ld      %r2, TF + TF_GPR + 8*2(%r1)
    ld      %r3, TF + TF_GPR + 8*3(%r1)
    ld      %r4, TF + TF_GPR + 8*4(%r1)
    ld      %r5, TF + TF_GPR + 8*5(%r1)
    ld      %r6, TF + TF_GPR + 8*6(%r1)
    ld      %r7, TF + TF_GPR + 8*7(%r1)
    ld      %r8, TF + TF_GPR + 8*8(%r1)
    ld      %r9, TF + TF_GPR + 8*9(%r1)
    ld      %r10, TF + TF_GPR + 8*10(%r1)
    ld      %r11, TF + TF_GPR + 8*11(%r1)
    ld      %r12, TF + TF_GPR + 8*12(%r1)
    ld      %r13, TF + TF_GPR + 8*13(%r1)
    ld      %r14, TF + TF_GPR + 8*14(%r1)
    ld      %r15, TF + TF_GPR + 8*15(%r1)
    ld      %r16, TF + TF_GPR + 8*16(%r1)
    ld      %r17, TF + TF_GPR + 8*17(%r1)
    ld      %r18, TF + TF_GPR + 8*18(%r1)
    ld      %r19, TF + TF_GPR + 8*19(%r1)
    ld      %r20, TF + TF_GPR + 8*20(%r1)
    ld      %r21, TF + TF_GPR + 8*21(%r1)
    ld      %r22, TF + TF_GPR + 8*22(%r1)
    ld      %r23, TF + TF_GPR + 8*23(%r1)
    ld      %r24, TF + TF_GPR + 8*24(%r1)
    ld      %r25, TF + TF_GPR + 8*25(%r1)
    ld      %r26, TF + TF_GPR + 8*26(%r1)
    ld      %r27, TF + TF_GPR + 8*27(%r1)
    ld      %r28, TF + TF_GPR + 8*28(%r1)
    ld      %r29, TF + TF_GPR + 8*29(%r1)
    ld      %r30, TF + TF_GPR + 8*30(%r1)
    ld      %r31, TF + TF_GPR + 8*31(%r1)
    ld      %r1, TF + TF_GPR + 8*1(%r1)
    \ret
.endm

    .section .text, "ax"
    .globl  vector_stub_template
    .globl  vector_stub_template_end
    .balign 4
vector_stub_template:
    mtspr   SPRG1, %r13
    mtspr   SPRG2, %r12
    li      %r12, 0
    b       .
vector_stub_template_end:

# The stub at each `scv` level's vector (0xc000000000003000 + 0x20 * LEV
# with AIL 3): scv leaves MSR[EE] as it was (on, from problem state), so
# the first thing is to turn interrupts off, using only registers the scv
# ABI makes volatile (r9-r12). An interrupt can still arrive before the
# mtmsrd, in supervisor state with the user's r1: exception_common knows
# the stubs' page and puts its frame on the kernel stack as for an
# interrupt from user mode, and it returns here. LEV goes in r10 (patched
# into the li), then scv_entry.
    .globl  scv_stub_template
    .globl  scv_stub_template_end
    .balign 4
scv_stub_template:
    li      %r11, 2                         # MSR[RI] only: EE off
    mtmsrd  %r11, 1
    li      %r10, 0
    b       .
scv_stub_template_end:

# scv saved the return address in LR and the MSR in CTR, not in SRR0/1:
# put them there, so that exception_common saves the frame as for any
# interrupt and the return path (rfid) goes back after the scv. Vector
# 0x3000 + 0x20 * LEV names it in the frame.
    .globl  scv_entry
    .type   scv_entry, @function
scv_entry:
    mflr    %r11
    mtsrr0  %r11
    mfctr   %r11
    mtsrr1  %r11
    mtspr   SPRG1, %r13
    mtspr   SPRG2, %r12
    sldi    %r12, %r10, 5
    addi    %r12, %r12, 0x3000
    b       exception_common
    .size   scv_entry, . - scv_entry

    .globl  exception_common
    .type   exception_common, @function
    .balign 16
exception_common:
    mfspr   %r13, SPRG0
    std     %r12, PCPU_SCRATCH0(%r13)       # vector
    std     %r11, PCPU_SCRATCH1(%r13)
    # CR before anything here compares (the interrupted code's CR0 may be live).
    mfcr    %r11
    std     %r11, PCPU_SCRATCH2(%r13)
    # Whose r1: MSR[PR] of the interrupted state, in HSRR1 or SRR1.
    andi.   %r11, %r12, 1
    beq     1f
    mfspr   %r11, HSRR1
    mfspr   %r12, HSRR0
    b       2f
1:  mfsrr1  %r11
    mfsrr0  %r12
2:  andi.   %r11, %r11, MSR_PR
    bne     3f
    # Not problem state, but maybe an scv stub's first instructions, where
    # scv left MSR[EE] on and r1 is still the user's: such an interrupt
    # is treated as one from user mode (SCV_PAGE: the stubs' 4 KiB at
    # 0xc000000000003000, as the PC's top 52 bits).
    srdi    %r12, %r12, 12
    li      %r11, SCV_PAGE_TOP
    sldi    %r11, %r11, 48
    ori     %r11, %r11, SCV_PAGE_LOW
    cmpld   %r12, %r11
    beq     3f
    mr      %r12, %r1
    subi    %r1, %r1, PROTECTED_ZONE + FRAME_SIZE
    mr      %r11, %r12                      # back chain to the interrupted frame
    b       4f
3:  mr      %r12, %r1
    ld      %r1, PCPU_USER_ENTRY_SP(%r13)
    subi    %r1, %r1, FRAME_SIZE
    li      %r11, 0                         # no back chain into user memory
4:  clrrdi  %r1, %r1, 4
    std     %r11, 0(%r1)
    std     %r12, TF + TF_GPR + 8*1(%r1)
    std     %r0, TF + TF_GPR + 8*0(%r1)
    std     %r2, TF + TF_GPR + 8*2(%r1)
    std     %r3, TF + TF_GPR + 8*3(%r1)
    std     %r4, TF + TF_GPR + 8*4(%r1)
    std     %r5, TF + TF_GPR + 8*5(%r1)
    std     %r6, TF + TF_GPR + 8*6(%r1)
    std     %r7, TF + TF_GPR + 8*7(%r1)
    std     %r8, TF + TF_GPR + 8*8(%r1)
    std     %r9, TF + TF_GPR + 8*9(%r1)
    std     %r10, TF + TF_GPR + 8*10(%r1)
    ld      %r0, PCPU_SCRATCH1(%r13)
    std     %r0, TF + TF_GPR + 8*11(%r1)
    mfspr   %r0, SPRG2
    std     %r0, TF + TF_GPR + 8*12(%r1)
    mfspr   %r0, SPRG1
    std     %r0, TF + TF_GPR + 8*13(%r1)
    std     %r14, TF + TF_GPR + 8*14(%r1)
    std     %r15, TF + TF_GPR + 8*15(%r1)
    std     %r16, TF + TF_GPR + 8*16(%r1)
    std     %r17, TF + TF_GPR + 8*17(%r1)
    std     %r18, TF + TF_GPR + 8*18(%r1)
    std     %r19, TF + TF_GPR + 8*19(%r1)
    std     %r20, TF + TF_GPR + 8*20(%r1)
    std     %r21, TF + TF_GPR + 8*21(%r1)
    std     %r22, TF + TF_GPR + 8*22(%r1)
    std     %r23, TF + TF_GPR + 8*23(%r1)
    std     %r24, TF + TF_GPR + 8*24(%r1)
    std     %r25, TF + TF_GPR + 8*25(%r1)
    std     %r26, TF + TF_GPR + 8*26(%r1)
    std     %r27, TF + TF_GPR + 8*27(%r1)
    std     %r28, TF + TF_GPR + 8*28(%r1)
    std     %r29, TF + TF_GPR + 8*29(%r1)
    std     %r30, TF + TF_GPR + 8*30(%r1)
    std     %r31, TF + TF_GPR + 8*31(%r1)

    ld      %r3, PCPU_SCRATCH2(%r13)
    std     %r3, TF + TF_CR(%r1)
    ld      %r12, PCPU_SCRATCH0(%r13)
    clrrdi  %r3, %r12, 1
    std     %r3, TF + TF_VECTOR(%r1)
    # The stub's flag: this interrupt saved state in HSRR0/1.
    clrldi  %r12, %r12, 63
    std     %r12, TF + TF_HSRR(%r1)
    cmpldi  %r12, 0
    beq     1f
    mfspr   %r3, HSRR0
    mfspr   %r4, HSRR1
    b       2f
1:  mfsrr0  %r3
    mfsrr1  %r4
2:  std     %r3, TF + TF_SRR0(%r1)
    std     %r4, TF + TF_SRR1(%r1)
    mflr    %r3
    std     %r3, TF + TF_LR(%r1)
    mfctr   %r3
    std     %r3, TF + TF_CTR(%r1)
    mfxer   %r3
    std     %r3, TF + TF_XER(%r1)
    mfdar   %r3
    std     %r3, TF + TF_DAR(%r1)
    mfdsisr %r3
    std     %r3, TF + TF_DSISR(%r1)

    ld      %r2, PCPU_TOC(%r13)
    # SRR0/1 are saved: a nested interrupt is now recoverable (MSR[RI]).
    li      %r0, 2
    mtmsrd  %r0, 1
    addi    %r3, %r1, TF
    bl      exception_dispatch
    nop

    # Not recoverable again until rfid: SRR0/1 are about to be reloaded.
    li      %r0, 0
    mtmsrd  %r0, 1
    # Pick the return path now: after CR is restored nothing may compare.
    ld      %r12, TF + TF_HSRR(%r1)
    cmpldi  %r12, 0
    beq     3f
    RESTORE_AND_RETURN HSRR0, HSRR1, hrfid
3:  RESTORE_AND_RETURN SRR0_SPR, SRR1_SPR, rfid
    .size   exception_common, . - exception_common

# void user_enter(const TrapFrame *frame) -> !: enters the state `frame`
# holds (problem state, for a process's first instruction) the way an
# interrupt returns: SRR0/1 from the frame, every register, rfid. On bare
# metal the user MSR keeps HV set, so rfid stays in the hypervisor's
# partition (Linux's MSR_USER64).
    .globl  user_enter
    .type   user_enter, @function
user_enter:
    subi    %r1, %r3, TF
    # Interrupts and MSR[RI] off: SRR0/1 are about to be loaded.
    li      %r0, 0
    mtmsrd  %r0, 1
    RESTORE_AND_RETURN SRR0_SPR, SRR1_SPR, rfid
    .size   user_enter, . - user_enter

# Probes whose faults are expected: each faulting instruction has an entry in
# __ex_table (two 32-bit offsets, relative to each field: instruction, fix-up).
# On a fault, exception_dispatch resumes at the fix-up with r3 = vector and
# r4 = faulting address (DAR for storage interrupts, else SRR0).

.macro EX_TABLE insn, fixup
    .pushsection __ex_table, "a"
    .balign 4
    .long   \insn - .
    .long   \fixup - .
    .popsection
.endm

# u64 probe_trap(void): executes `trap`; returns 0, or the vector it raised.
    .globl  probe_trap
    .globl  probe_trap_insn
    .type   probe_trap, @function
probe_trap:
    li      %r3, 0
probe_trap_insn:
    trap
    blr
    EX_TABLE probe_trap_insn, 9f
9:  blr
    .size   probe_trap, . - probe_trap

# u64 probe_load_u64(const u64 *address, u64 *value): 0, or the vector the load raised.
    .globl  probe_load_u64
    .globl  probe_load_insn
    .type   probe_load_u64, @function
probe_load_u64:
    mr      %r5, %r3
    li      %r3, 0
probe_load_insn:
    ld      %r6, 0(%r5)
    std     %r6, 0(%r4)
    blr
    EX_TABLE probe_load_insn, 9f
9:  blr
    .size   probe_load_u64, . - probe_load_u64

# u64 probe_lwarx(u64 address): `lwarx` at `address`; 0, or the vector it raised.
    .globl  probe_lwarx
    .type   probe_lwarx, @function
probe_lwarx:
    mr      %r5, %r3
    li      %r3, 0
1:  lwarx   %r6, 0, %r5
    blr
    EX_TABLE 1b, 9f
9:  blr
    .size   probe_lwarx, . - probe_lwarx

# u64 probe_fp_instruction(void): executes `fmr f0, f0` (encoded by hand: the
# kernel is built without the FPU); 0, or the vector it raised.
    .globl  probe_fp_instruction
    .type   probe_fp_instruction, @function
probe_fp_instruction:
    li      %r3, 0
1:  .long   0xfc000090          # fmr f0, f0 (Power ISA Book I, 4.6.5: opcode 63, XO 72)
    blr
    EX_TABLE 1b, 9f
9:  blr
    .size   probe_fp_instruction, . - probe_fp_instruction

# u64 probe_vsx_instruction(void): executes `xxlor vs32, vs32, vs32`; 0, or
# the vector it raised (VSX unavailable while MSR[VSX] is off).
    .globl  probe_vsx_instruction
    .type   probe_vsx_instruction, @function
probe_vsx_instruction:
    li      %r3, 0
1:  xxlor   %vs32, %vs32, %vs32
    blr
    EX_TABLE 1b, 9f
9:  blr
    .size   probe_vsx_instruction, . - probe_vsx_instruction

# u64 probe_store_u64(u64 *address, u64 value): 0, or the vector the store raised.
    .globl  probe_store_u64
    .type   probe_store_u64, @function
probe_store_u64:
    mr      %r5, %r3
    li      %r3, 0
1:  std     %r4, 0(%r5)
    blr
    EX_TABLE 1b, 9f
9:  blr
    .size   probe_store_u64, . - probe_store_u64

# u64 probe_execute(u64 address): calls code at `address` (which returns 0 in
# r3); returns that, or the vector of the instruction storage interrupt the
# call raised: exception_dispatch resumes an ISI whose LR is
# probe_execute_return there, with r3 = the vector.
    .globl  probe_execute
    .globl  probe_execute_return
    .type   probe_execute, @function
probe_execute:
    mflr    %r0
    std     %r0, 16(%r1)
    stdu    %r1, -32(%r1)
    mtctr   %r3
    bctrl
probe_execute_return:
    addi    %r1, %r1, 32
    ld      %r0, 16(%r1)
    mtlr    %r0
    blr
    .size   probe_execute, . - probe_execute
