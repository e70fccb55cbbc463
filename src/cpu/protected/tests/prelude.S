# Common start of the protected-mode test programs (GNU as, AT&T syntax, linked at 0x8000).
#
# Starts in real mode at 0000:8000, loads the GDT, sets CR0.PE, far-jumps to 32-bit code,
# builds the IDT (vectors 0-31 log and recover, 0x80-0x84 test gates) and the TSS, then jumps
# to `test_main`. A test ends with `jmp done` (magic 0x600D at DONE, HLT).
#
# Fault log at LOG: one 32-byte entry per exception taken or missed:
#   vector, error code, CR2, faulting EIP, expected vector, expected code, expected EIP, expected CR2
# `FAULT vec, code, insn` runs insn expecting a fault that returns to the faulting instruction's
# address (error code -1: none pushed; the stub pushes 0). `TRAP` expects the EIP after insn.
# `DEMAND code, insn` expects a #PF the handler repairs through `pf_fixup` and then retries.
# An instruction that should have faulted and did not logs vector 0xFFFF.

        .equ LOG_COUNT, 0x4ff0
        .equ DONE, 0x4ffc
        .equ LOG, 0x5000
        .equ RES, 0x4000
        .equ STACK0, 0x70000
        .equ STACK3, 0x60000
        .equ NOCODE, 0xffffffff
        .equ ANYCR2, 0xfffffffe

        .macro FAULT vec, code, insn:vararg
        movl $\vec, exp_vec
        movl $\code, exp_code
        movl $fi\@, exp_eip
        movl $ANYCR2, exp_cr2
        movl $fr\@, resume
fi\@:   \insn
        call nofault
fr\@:
        .endm

        .macro FAULTPF code, cr2, insn:vararg
        movl $14, exp_vec
        movl $\code, exp_code
        movl $fi\@, exp_eip
        movl $\cr2, exp_cr2
        movl $fr\@, resume
fi\@:   \insn
        call nofault
fr\@:
        .endm

# A fault reported at another EIP than the instruction's own (a jump to an absent page).
        .macro FAULTAT vec, code, eip, cr2, insn:vararg
        movl $\vec, exp_vec
        movl $\code, exp_code
        movl $\eip, exp_eip
        movl $\cr2, exp_cr2
        movl $fr\@, resume
        \insn
        call nofault
fr\@:
        .endm

        .macro TRAP vec, insn:vararg
        movl $\vec, exp_vec
        movl $NOCODE, exp_code
        movl $fr\@, exp_eip
        movl $ANYCR2, exp_cr2
        movl $fr\@, resume
        \insn
fr\@:
        .endm

        .macro DEMAND code, cr2, fixup, insn:vararg
        movl $14, exp_vec
        movl $\code, exp_code
        movl $fi\@, exp_eip
        movl $\cr2, exp_cr2
        movl $\fixup, pf_fixup
fi\@:   \insn
        movl $0, pf_fixup
        .endm

        .text
        .code16
        .globl _start
_start:
        cli
        xorw %ax, %ax
        movw %ax, %ds
        movw %ax, %ss
        movw $0x7000, %sp
        lgdtl gdt_ptr
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl $0x08, $pm32

        .code32
pm32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movw %ax, %ss
        movl $STACK0, %esp
        movl $0, LOG_COUNT
        movl $0, DONE
        # IDT: vectors 0-31 are interrupt gates (DPL 0) to the logging stubs.
        xorl %esi, %esi
1:      movl stubs(,%esi,4), %eax
        leal idt(,%esi,8), %edi
        movl $0x08, %ecx
        movl $0x8e00, %edx
        call mkgate
        incl %esi
        cmpl $32, %esi
        jb 1b
        # 0x80: interrupt gate DPL 3 (system call); 0x81: DPL 0; 0x82: trap gate DPL 3;
        # 0x83: not present; 0x84: DPL 3, ends the test.
        movl $syscall, %eax
        leal idt+0x80*8, %edi
        movl $0xee00, %edx
        call mkgate
        movl $stub_0x81, %eax
        leal idt+0x81*8, %edi
        movl $0x8e00, %edx
        call mkgate
        movl $trapgate, %eax
        leal idt+0x82*8, %edi
        movl $0xef00, %edx
        call mkgate
        movl $syscall, %eax
        leal idt+0x83*8, %edi
        movl $0x6e00, %edx
        call mkgate
        movl $finish, %eax
        leal idt+0x84*8, %edi
        movl $0xee00, %edx
        call mkgate
        lidt idt_ptr
        # TSS: ESP0/SS0, I/O bitmap at 0x68 (all ports denied except 0x80-0x87).
        movl $STACK0, tss+4
        movl $0x10, tss+8
        movw $0x68, tss+0x66
        movl $tss+0x68, %edi
        movl $0x2001, %ecx
        movb $0xff, %al
        rep stosb
        movb $0, tss+0x68+0x10
        movl $tss, %eax
        movw %ax, gdt+0x28+2
        shrl $16, %eax
        movb %al, gdt+0x28+4
        movb %ah, gdt+0x28+7
        # Call gate 0x58 (DPL 3, 32-bit, one parameter) to callgate_target in 0x08.
        movl $callgate_target, %eax
        leal gdt+0x58, %edi
        movl $0x08, %ecx
        movl $0xec01, %edx
        call mkgate
        # Call gate 0x80 (DPL 0) to the same target.
        movl $callgate_target, %eax
        leal gdt+0x80, %edi
        movl $0x8c01, %edx
        call mkgate
        # LDT descriptor 0x68 with base ldt.
        movl $ldt, %eax
        movw %ax, gdt+0x68+2
        shrl $16, %eax
        movb %al, gdt+0x68+4
        movb %ah, gdt+0x68+7
        jmp test_main

# Gate at %edi: offset %eax, selector %ecx, attribute word %edx (type/DPL/P, parameter count).
mkgate:
        movw %ax, (%edi)
        movw %cx, 2(%edi)
        movw %dx, 4(%edi)
        shrl $16, %eax
        movw %ax, 6(%edi)
        ret

# Called when an instruction that should fault did not.
nofault:
        pushl %eax
        pushl %ebx
        movl LOG_COUNT, %ebx
        shll $5, %ebx
        movl $0xffff, LOG(%ebx)
        movl exp_vec, %eax
        movl %eax, LOG+16(%ebx)
        movl exp_code, %eax
        movl %eax, LOG+20(%ebx)
        movl exp_eip, %eax
        movl %eax, LOG+24(%ebx)
        incl LOG_COUNT
        movl $0, resume
        popl %ebx
        popl %eax
        ret

        .macro STUB v
stub_\v:
        .if (\v == 8) || ((\v >= 10) && (\v <= 14)) || (\v == 17)
        .else
        pushl $NOCODE
        .endif
        pushl $\v
        jmp common
        .endm

        .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,0x81
        STUB \v
        .endr

stubs:
        .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .long stub_\v
        .endr

# The common exception handler: log, then resume (or let pf_fixup repair and retry).
common:
        pushal
        movw %ds, %ax
        pushl %eax
        movw %cs, %ax                           # a handler in a conforming segment runs at
        testb $3, %al                           # CPL 3: keep the (flat) user DS, no CR2
        jnz 1f
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
1:      movl LOG_COUNT, %ebx
        shll $5, %ebx
        movl 36(%esp), %eax
        movl %eax, LOG(%ebx)
        movl 40(%esp), %eax
        movl %eax, LOG+4(%ebx)
        xorl %eax, %eax
        movw %cs, %cx
        testb $3, %cl
        jnz 4f
        movl %cr2, %eax
4:      movl %eax, LOG+8(%ebx)
        movl 44(%esp), %eax
        movl %eax, LOG+12(%ebx)
        movl exp_vec, %eax
        movl %eax, LOG+16(%ebx)
        movl exp_code, %eax
        movl %eax, LOG+20(%ebx)
        movl exp_eip, %eax
        movl %eax, LOG+24(%ebx)
        movl exp_cr2, %eax
        movl %eax, LOG+28(%ebx)
        incl LOG_COUNT
        movl $-1, exp_vec
        cmpl $14, 36(%esp)
        jne 2f
        movl pf_fixup, %eax
        testl %eax, %eax
        jz 2f
        call *%eax
        jmp 3f
2:      movl resume, %eax
        testl %eax, %eax
        jz bad
        movl %eax, 44(%esp)
        movl $0, resume
3:      popl %eax
        movw %ax, %ds
        movw %ax, %es
        popal
        addl $8, %esp
        iret
bad:
        movl $0xbad, DONE
        cli
        hlt
        jmp bad

# Default system call (int 0x80, 0x83): records its frame at RES+0x100 and returns.
syscall:
        movl %esp, RES+0x100
        movl 0(%esp), %eax
        movl %eax, RES+0x104
        movl 4(%esp), %eax
        movl %eax, RES+0x108
        movl 8(%esp), %eax
        movl %eax, RES+0x10c
        movl 12(%esp), %eax
        movl %eax, RES+0x110
        movl 16(%esp), %eax
        movl %eax, RES+0x114
        movw %cs, %ax
        movl %eax, RES+0x118
        pushfl
        popl RES+0x11c
        incl RES+0x120
        iret

# Call gates 0x58 (DPL 3) and 0x80 (DPL 0): record the frame at RES+0x140, load ES with a
# DPL 0 segment (nulled by a return to CPL 3), return with RET 4.
callgate_target:
        movl %esp, RES+0x140
        movl 0(%esp), %eax
        movl %eax, RES+0x144
        movl 4(%esp), %eax
        movl %eax, RES+0x148
        movl 8(%esp), %eax
        movl %eax, RES+0x14c
        movl 12(%esp), %eax
        movl %eax, RES+0x150
        movl 16(%esp), %eax
        movl %eax, RES+0x154
        xorl %eax, %eax
        movw %cs, %ax
        movl %eax, RES+0x158
        movw $0x10, %ax
        movw %ax, %es
        lret $4

trapgate:
        pushfl
        popl RES+0x124
        iret

# int 0x84 (any level) or a jump: the test is over.
finish:
done:
        movl $0x600d, DONE
        cli
        hlt
        jmp done

        .data
        .align 8
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        # 0x08 code, DPL 0, flat
        .quad 0x00cf92000000ffff        # 0x10 data, DPL 0, flat
        .quad 0x00cffa000000ffff        # 0x18 code, DPL 3, flat
        .quad 0x00cff2000000ffff        # 0x20 data, DPL 3, flat
        .quad 0x0000890000002068        # 0x28 32-bit TSS (base filled in)
        .quad 0x0040920000000fff        # 0x30 data, limit 0xfff, byte granular
        .quad 0x0040960000000fff        # 0x38 data, expand-down, limit 0xfff, B = 1
        .quad 0x00cf12000000ffff        # 0x40 data, not present
        .quad 0x00cf9e000000ffff        # 0x48 code, conforming, DPL 0
        .quad 0x00cf90000000ffff        # 0x50 data, read-only
        .quad 0                         # 0x58 call gate, DPL 3 (filled in)
        .quad 0x00cf98000000ffff        # 0x60 code, execute-only
        .quad 0x0000820000000017        # 0x68 LDT (base filled in), 3 entries
        .quad 0x00cfb2000000ffff        # 0x70 data, DPL 1
        .quad 0x00cf1a000000ffff        # 0x78 code, not present
        .quad 0                         # 0x80 call gate, DPL 0 (filled in)
        .quad 0x0000e50000000000        # 0x88 task gate, DPL 3
        .quad 0x00009a000000ffff        # 0x90 16-bit code, DPL 0, 64 KiB
        .quad 0x000092000000ffff        # 0x98 16-bit data, DPL 0, 64 KiB
        .quad 0                         # 0xa0 16-bit call gate (filled in by a test)
gdt_end:
gdt_ptr:
        .word gdt_end - gdt - 1
        .long gdt

        .align 8
ldt:
        .quad 0
        .quad 0x00cf92000000ffff        # LDT 0x0c: data, flat
        .quad 0x00cff2000000ffff        # LDT 0x14: data, DPL 3

idt_ptr:
        .word 0x88*8 - 1
        .long idt

resume: .long 0
pf_fixup: .long 0
exp_vec: .long -1
exp_code: .long 0
exp_eip: .long 0
exp_cr2: .long 0

        .bss
        .align 4096
idt:    .space 0x88*8
        .align 16
tss:    .space 0x68 + 0x2001
