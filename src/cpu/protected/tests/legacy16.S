# 16-bit protected mode: 16-bit interrupt gates (6-byte frames) and IRETW, far CALL into a
# 16-bit code segment and a 32-bit far return out of it, a 16-bit call gate with a word
# parameter and RETW 2. Results at RES (see protected-programs.test.ts).
        .include "prelude.S"

        .text
test_main:
        # Vector 0x85: 16-bit interrupt gate to handler85 (32-bit code in 0x08);
        # vector 0x86: 16-bit trap gate to handler86 (16-bit code in 0x90).
        movl $handler85, %eax
        leal idt+0x85*8, %edi
        movl $0x08, %ecx
        movl $0x8600, %edx
        call mkgate
        movl $handler86, %eax
        leal idt+0x86*8, %edi
        movl $0x90, %ecx
        movl $0x8700, %edx
        call mkgate
        # Call gate 0xa0: 16-bit, DPL 0, one word parameter, to gate16 in 0x90.
        movl $gate16, %eax
        leal gdt+0xa0, %edi
        movl $0x90, %ecx
        movl $0x8401, %edx
        call mkgate

        movl %esp, RES+0x00
        int $0x85                               # 16-bit frame from 32-bit code
after85:
        movl %esp, RES+0x04                     # IRETW popped 6 bytes
        lcall $0x90, $code16                    # into 16-bit code (32-bit return address)
        movl %esp, RES+0x08
        jmp done

handler85:
        movl %esp, RES+0x10
        movzwl 0(%esp), %eax
        movl %eax, RES+0x14                     # IP
        movzwl 2(%esp), %eax
        movl %eax, RES+0x18                     # CS
        pushfl
        popl %eax
        andl $0x200, %eax
        movl %eax, RES+0x1c                     # IF cleared by the interrupt gate
        iretw

        .code16
code16:
        movw %cs, RES+0x20
        pushw $0x1234
        lcallw $0xa0, $0                        # 16-bit call gate, one word parameter
after_gate16:
        movl %esp, RES+0x24
        int $0x86                               # 16-bit trap gate to 16-bit code
        movw %ax, RES+0x28
        lretl                                   # 32-bit far return to the 32-bit caller

gate16:
        movl %esp, RES+0x30
        movl %esp, %ebx
        movw %ss:0(%ebx), %ax
        movw %ax, RES+0x34                      # IP
        movw %ss:2(%ebx), %ax
        movw %ax, RES+0x36                      # CS
        movw %ss:4(%ebx), %ax
        movw %ax, RES+0x38                      # the word parameter
        lretw $2

handler86:
        movw %cs, %ax
        iretw
        .code32
