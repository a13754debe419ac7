# Kernel-thread context switch (ELFv2): only what a call preserves needs
# saving, since switching is a function call for both sides: LR, r1, r2,
# CR and r14..r31. Everything else the caller already assumed clobbered.
#
#   void context_switch(Context *from, const Context *to)
#
# Context layout (sched.rs): lr, r1, r2, cr, r14..r31.

# Saves what a call preserves into the Context at \ctx (clobbers r0, r5).
.macro SAVE_CONTEXT ctx
    mflr    %r0
    std     %r0, 0(\ctx)
    std     %r1, 8(\ctx)
    std     %r2, 16(\ctx)
    mfcr    %r5
    std     %r5, 24(\ctx)
    std     %r14, 32(\ctx)
    std     %r15, 40(\ctx)
    std     %r16, 48(\ctx)
    std     %r17, 56(\ctx)
    std     %r18, 64(\ctx)
    std     %r19, 72(\ctx)
    std     %r20, 80(\ctx)
    std     %r21, 88(\ctx)
    std     %r22, 96(\ctx)
    std     %r23, 104(\ctx)
    std     %r24, 112(\ctx)
    std     %r25, 120(\ctx)
    std     %r26, 128(\ctx)
    std     %r27, 136(\ctx)
    std     %r28, 144(\ctx)
    std     %r29, 152(\ctx)
    std     %r30, 160(\ctx)
    std     %r31, 168(\ctx)
.endm

# Loads the Context at \ctx: returning (blr) then resumes it (clobbers r0, r5).
.macro RESTORE_CONTEXT ctx
    ld      %r0, 0(\ctx)
    mtlr    %r0
    ld      %r1, 8(\ctx)
    ld      %r2, 16(\ctx)
    ld      %r5, 24(\ctx)
    mtcr    %r5
    ld      %r14, 32(\ctx)
    ld      %r15, 40(\ctx)
    ld      %r16, 48(\ctx)
    ld      %r17, 56(\ctx)
    ld      %r18, 64(\ctx)
    ld      %r19, 72(\ctx)
    ld      %r20, 80(\ctx)
    ld      %r21, 88(\ctx)
    ld      %r22, 96(\ctx)
    ld      %r23, 104(\ctx)
    ld      %r24, 112(\ctx)
    ld      %r25, 120(\ctx)
    ld      %r26, 128(\ctx)
    ld      %r27, 136(\ctx)
    ld      %r28, 144(\ctx)
    ld      %r29, 152(\ctx)
    ld      %r30, 160(\ctx)
    ld      %r31, 168(\ctx)
.endm

    .section .text, "ax"
    .globl  context_switch
    .type   context_switch, @function
context_switch:
    SAVE_CONTEXT %r3
    RESTORE_CONTEXT %r4
    blr
    .size   context_switch, . - context_switch

# A process's thread in and out of problem state (process.rs):
#
#   u64 user_run(Context *kernel, const TrapFrame *user, AtomicU64 *entry_sp)
#
# saves the caller's context in *kernel, as context_switch would, records
# r1 in *entry_sp and in this CPU's PerCpu.user_entry_sp (interrupts from
# problem state put their frames below it, so below this frame), and
# enters the state *user holds. Interrupts must be off. It returns only
# through
#
#   void user_exit(const Context *kernel, u64 value) -> !
#
# called on the same thread's kernel stack (a system call or a fault that
# ends the process): it drops whatever interrupt frames lie below and
# returns `value` from user_run.
    .set PCPU_USER_ENTRY_SP, 224
    .globl  user_run
    .type   user_run, @function
user_run:
    mr      %r6, %r5                        # SAVE_CONTEXT clobbers r5
    SAVE_CONTEXT %r3
    std     %r1, 0(%r6)
    std     %r1, PCPU_USER_ENTRY_SP(%r13)
    mr      %r3, %r4
    b       user_enter
    .size   user_run, . - user_run

    .globl  user_exit
    .type   user_exit, @function
user_exit:
    mr      %r6, %r4
    RESTORE_CONTEXT %r3
    mr      %r3, %r6
    blr
    .size   user_exit, . - user_exit

# A new thread's first "return" from context_switch lands here, with r14 =
# its Thread and r15 = the Rust entry (sched.rs: thread_main).
    .globl  thread_trampoline
    .type   thread_trampoline, @function
thread_trampoline:
    mr      %r3, %r14
    mtctr   %r15
    mr      %r12, %r15
    bctrl
1:  b       1b
    .size   thread_trampoline, . - thread_trampoline
