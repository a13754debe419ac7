# Kernel-thread context switch (ELFv2): only what a call preserves needs
# saving, since switching is a function call for both sides: LR, r1, r2,
# CR and r14..r31. Everything else the caller already assumed clobbered.
#
#   void context_switch(Context *from, const Context *to)
#
# Context layout (sched.rs): lr, r1, r2, cr, r14..r31.

    .section .text, "ax"
    .globl  context_switch
    .type   context_switch, @function
context_switch:
    mflr    %r0
    std     %r0, 0(%r3)
    std     %r1, 8(%r3)
    std     %r2, 16(%r3)
    mfcr    %r5
    std     %r5, 24(%r3)
    std     %r14, 32(%r3)
    std     %r15, 40(%r3)
    std     %r16, 48(%r3)
    std     %r17, 56(%r3)
    std     %r18, 64(%r3)
    std     %r19, 72(%r3)
    std     %r20, 80(%r3)
    std     %r21, 88(%r3)
    std     %r22, 96(%r3)
    std     %r23, 104(%r3)
    std     %r24, 112(%r3)
    std     %r25, 120(%r3)
    std     %r26, 128(%r3)
    std     %r27, 136(%r3)
    std     %r28, 144(%r3)
    std     %r29, 152(%r3)
    std     %r30, 160(%r3)
    std     %r31, 168(%r3)

    ld      %r0, 0(%r4)
    mtlr    %r0
    ld      %r1, 8(%r4)
    ld      %r2, 16(%r4)
    ld      %r5, 24(%r4)
    mtcr    %r5
    ld      %r14, 32(%r4)
    ld      %r15, 40(%r4)
    ld      %r16, 48(%r4)
    ld      %r17, 56(%r4)
    ld      %r18, 64(%r4)
    ld      %r19, 72(%r4)
    ld      %r20, 80(%r4)
    ld      %r21, 88(%r4)
    ld      %r22, 96(%r4)
    ld      %r23, 104(%r4)
    ld      %r24, 112(%r4)
    ld      %r25, 120(%r4)
    ld      %r26, 128(%r4)
    ld      %r27, 136(%r4)
    ld      %r28, 144(%r4)
    ld      %r29, 152(%r4)
    ld      %r30, 160(%r4)
    ld      %r31, 168(%r4)
    blr
    .size   context_switch, . - context_switch

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
