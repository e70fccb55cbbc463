# External interrupts and NMI (a test device on port 0x80 raises the vector written to it as an
# external interrupt, port 0x81 raises NMI): IF masking, the STI shadow, delivery from ring 3 on
# the TSS stack; double-fault classification (contributory + contributory = #DF, benign +
# contributory delivered serially). Results at RES (see protected-programs.test.ts).
        .include "prelude.S"

        .text
test_main:
        movw $0x28, %ax
        ltr %ax
        movl $irq_handler, %eax
        leal idt+0x20*8, %edi
        movl $0x08, %ecx
        movl $0x8e00, %edx
        call mkgate

        # IF = 0: a raised interrupt waits.
        movb $0x20, %al
        outb %al, $0x80
        nop
        nop
        movl RES+0x200, %eax
        movl %eax, RES+0x00                     # 0 interrupts taken
        # STI: one more instruction runs before the interrupt.
        xorl %ecx, %ecx
        sti
        incl %ecx
        incl %ecx
        cli
        movl RES+0x204, %eax
        movl %eax, RES+0x04                     # ECX seen by the handler: 1
        movl RES+0x200, %eax
        movl %eax, RES+0x08                     # 1 interrupt taken

        # NMI with IF = 0: delivered through vector 2 right after the OUT.
        TRAP 2, outb %al, $0x81

        # Double faults: #GP whose gate is absent -> #NP (contributory twice) -> #DF(0).
        andb $0x7f, idt+13*8+5
        movw $0x60, %ax
        FAULT 8, 0, movw %ax, %ds
        orb $0x80, idt+13*8+5
        # #UD whose gate is absent -> #NP(6*8+2+EXT) delivered serially (benign first).
        andb $0x7f, idt+6*8+5
        FAULT 11, 0x33, ud2
        orb $0x80, idt+6*8+5

        # Ring 3 with IF = 1: the interrupt raised by an OUT arrives on the ring-0 stack.
        pushl $0x23
        pushl $STACK3
        pushl $0x202
        pushl $0x1b
        pushl $user
        iret
user:
        movw $0x23, %ax                         # (DS was nulled by the IRET to CPL 3)
        movw %ax, %ds
        movw %ax, %es
        movb $0x20, %al
        outb %al, $0x80
        nop
        int $0x84

irq_handler:
        movl %ecx, RES+0x204
        movl 4(%esp), %eax
        movl %eax, RES+0x208                    # interrupted CS
        movl %esp, RES+0x20c
        incl RES+0x200
        iret
