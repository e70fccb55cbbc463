# Privilege changes: IRET to ring 3, INT 0x80 through a DPL 3 interrupt gate onto the TSS's
# ESP0 stack and IRET back, trap vs interrupt gates, privileged instructions and I/O at CPL 3,
# a call gate with a parameter and RET 4 to the outer level (data segments nulled), SYSENTER and
# SYSEXIT. Results at RES (see protected-programs.test.ts).
        .include "prelude.S"

        .equ SYSENTER_CS, 0x174
        .equ SYSENTER_ESP, 0x175
        .equ SYSENTER_EIP, 0x176

        .text
test_main:
        movw $0x28, %ax
        ltr %ax
        movl $SYSENTER_CS, %ecx
        movl $0x08, %eax
        xorl %edx, %edx
        wrmsr
        movl $SYSENTER_ESP, %ecx
        movl $0x68000, %eax
        wrmsr
        movl $SYSENTER_EIP, %ecx
        movl $sysenter_target, %eax
        wrmsr
        # RDMSR reads them back; an unknown MSR is #GP(0).
        movl $SYSENTER_EIP, %ecx
        rdmsr
        movl %eax, RES+0x00
        movl $0x12345, %ecx
        FAULT 13, 0, rdmsr                      # qemu: TCG reads unknown MSRs as 0 (no #GP)
        # #TS and #SS go to a conforming segment (0x48): delivered at CPL 3, no stack switch.
        movl $stub_10, %eax
        leal idt+10*8, %edi
        movl $0x48, %ecx
        movl $0x8e00, %edx
        call mkgate
        movl $stub_12, %eax
        leal idt+12*8, %edi
        call mkgate
        # IRET to ring 3 with IF = 1, IOPL = 0.
        pushl $0x23
        pushl $STACK3
        pushl $0x202
        pushl $0x1b
        pushl $user
        iret

user:
        movw $0x23, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %cs, RES+0x04
        movl $0x1111, %eax
        int $0x80                               # interrupt gate: IF cleared in the handler
        movl %esp, RES+0x08                     # back on the user stack
        movw %ss, RES+0x0c
        int $0x82                               # trap gate: IF kept
        # Privileged and IOPL-sensitive instructions.
        FAULT 13, 0, cli
        FAULT 13, 0, hlt
        FAULT 13, 0, movl %cr0, %eax
        FAULT 13, 0, lgdt RES
        FAULT 13, 0, rdmsr
        FAULT 13, 0, inb $0x71, %al             # port denied by the I/O bitmap
        outb %al, $0x80                         # port allowed by the I/O bitmap
        FAULT 13, 0x81*8+2, int $0x81           # gate DPL 0 < CPL 3
        movw $0x10, %ax
        FAULT 13, 0x10, movw %ax, %ds           # DPL 0 data at CPL 3
        movw $0x1b, %ax
        FAULT 13, 0x18, movw %ax, %ss           # code as a stack
        FAULT 13, 0x80, lcall $0x80, $0         # call gate DPL 0 from CPL 3
        FAULT 13, 0x08, ljmp $0x08, $0          # non-conforming DPL 0 code by JMP
        FAULT 13, 0x08, lcall $0x08, $0         # ... and by CALL
        # POPF at CPL 3 changes neither IOPL nor IF.
        pushl $0x3000
        popfl
        pushfl
        popl RES+0x10
        # Call gate 0x58: to CPL 0 with one parameter, RET 4 back.
        movw $0x23, %ax
        movw %ax, %fs
        movl %esp, RES+0x14
        pushl $0xabcd
        lcall $0x5b, $0
        movl %esp, RES+0x18                     # RET 4 popped the parameter
        movw %es, RES+0x1c                      # ES (DPL 0, loaded by the target) is now null
        movw %fs, RES+0x1e                      # FS (DPL 3) kept
        FAULT 13, 0, movl %es:0, %eax           # qemu: TCG does not check data segment limits/rights
        # SYSENTER / SYSEXIT.
        movl %esp, %ecx
        movl $after_sysexit, %edx
        sysenter
after_sysexit:
        movw %cs, RES+0x20
        movw %ss, RES+0x22
        movl %esp, RES+0x24
        FAULT 13, 0, sysexit                    # CPL 3
        # A bad ring-0 stack in the TSS (written from ring 3: no paging here).
        movl $0, tss+8
        FAULT 10, 0, int $0x80                  # SS0 null: #TS(0) (INT n: EXT = 0)
        movl $0x23, tss+8
        FAULT 10, 0x20, int $0x80               # SS0 with RPL/DPL 3: #TS(SS0)
        movl $0x50, tss+8
        FAULT 10, 0x50, int $0x80               # SS0 read-only: #TS(SS0)
        movl $0x40, tss+8
        FAULT 12, 0x40, int $0x80               # qemu: TCG raises #TS, the SDM says #SS (as here)
        movl $0x10, tss+8
        # End: int 0x84 (DPL 3 gate) halts in ring 0.
        int $0x84

sysenter_target:
        movw %cs, RES+0x30
        movw %ss, RES+0x32
        movl %esp, RES+0x34
        pushfl
        popl %eax
        andl $0x200, %eax
        movl %eax, RES+0x38                     # IF
        sysexit
