# Segment loads, limit and access checks, far transfers at CPL 0, the IDT's own faults,
# LAR/LSL/VERR/VERW/ARPL/SLDT/STR/LLDT/LTR. Results at RES (see protected-programs.test.ts).
        .include "prelude.S"

        .text
test_main:
        # ---- segment register loads ----
        xorl %eax, %eax
        FAULT 13, 0, movw %ax, %ss              # null SS
        movw $0x60, %ax
        FAULT 13, 0x60, movw %ax, %ds           # execute-only code into DS
        movw $0x40, %ax
        FAULT 11, 0x40, movw %ax, %ds           # not present
        FAULT 12, 0x40, movw %ax, %ss           # not present, as SS
        movw $0x50, %ax
        FAULT 13, 0x50, movw %ax, %ss           # read-only data as SS
        movw $0x20, %ax
        FAULT 13, 0x20, movw %ax, %ss           # DPL 3 stack at CPL 0
        movw $0x13, %ax
        FAULT 13, 0x10, movw %ax, %ss           # RPL 3 != CPL 0
        movw $0x1000, %ax
        FAULT 13, 0x1000, movw %ax, %ds         # beyond the GDT limit
        xorw %ax, %ax
        lldt %ax                                # a null LDTR (at reset its limit is 0xffff)
        movw $0x0c, %ax
        FAULT 13, 0x0c, movw %ax, %ds           # LDT selector with a null LDTR
        movw $0x70, %ax
        movw $0x73, %ax
        FAULT 13, 0x70, movw %ax, %fs           # DPL 1 data with RPL 3
        movw $0x48, %ax
        movw %ax, %fs                           # conforming readable code: allowed
        movl %fs:RES, %eax
        movw $0x10, %ax
        movw %ax, %fs
        pushw $0x1234
        FAULT 13, 0x1234, popw %ss              # POP SS beyond the GDT: SP is not changed
        addl $2, %esp

        # ---- null segments, limits, expand-down, read-only, code writes ----
        xorl %eax, %eax
        movw %ax, %es                           # loading null is fine
        FAULT 13, 0, movl %es:RES, %eax         # qemu: TCG does not check data segment limits/rights
        movw $0x30, %ax
        movw %ax, %es
        movl %es:0xffc, %eax                    # last dword inside the limit
        FAULT 13, 0, movl %es:0xffd, %eax       # qemu: TCG does not check data segment limits/rights
        movw $0x38, %ax
        movw %ax, %es
        movb %es:0x1000, %al                    # expand-down: 0x1000.. valid
        FAULT 13, 0, movb %es:0xfff, %al        # qemu: TCG does not check data segment limits/rights
        movw $0x50, %ax
        movw %ax, %es
        movl %es:RES, %eax                      # read-only: reads fine
        FAULT 13, 0, movl %eax, %es:RES         # qemu: TCG does not check data segment limits/rights
        FAULT 13, 0, movl %eax, %cs:RES         # qemu: TCG does not check data segment limits/rights
        movw $0x10, %ax
        movw %ax, %es
        # SS limit: #SS(0) through an SS-relative address.
        movl %esp, %ebp
        movw $0x30, %ax
        movw %ax, %ss
        movl $0x800, %esp
        FAULT 12, 0, movl 0x800(%esp), %eax     # qemu: TCG does not check data segment limits/rights
        movw $0x10, %ax
        movw %ax, %ss
        movl %ebp, %esp

        # ---- exceptions without error codes, traps, the IDT ----
        FAULT 6, NOCODE, ud2
        xorl %edx, %edx
        movl $1, %eax
        xorl %ecx, %ecx
        FAULT 0, NOCODE, divl %ecx
        TRAP 3, int3
        TRAP 0x81, int $0x81                    # DPL 0 gate at CPL 0
        FAULT 13, 0x482, int $0x90              # beyond the IDT limit: IDT bit set
        FAULT 11, 0x41a, int $0x83              # gate not present
        movl $0x7fffffff, %eax
        incl %eax
        TRAP 4, into
        movl $1, %eax
        movl $2, %ebx
        FAULT 5, NOCODE, boundl %eax, bounds

        # ---- far transfers at CPL 0 ----
        lcall $0x48, $conforming                # conforming code, CPL stays 0
        movl %eax, RES+0x00                     # CS seen inside
        FAULT 13, 0x10, ljmp $0x10, $0          # data segment as a jump target
        FAULT 11, 0x78, ljmp $0x78, $0          # code segment not present
        FAULT 13, 0, ljmp $0x00, $0             # null selector
        movl %esp, RES+0x08
        pushl $0x5a5a                           # (the target returns with RET 4)
        lcall $0x80, $0                         # call gate DPL 0 at CPL 0: same level
        movl %esp, RES+0x0c
        movw %es, %ax
        movl %eax, RES+0x04                     # ES is kept on a same-level return

        # ---- LAR, LSL, VERR, VERW, ARPL ----
        movl $0x08, %ecx
        larl %ecx, %eax
        movl %eax, RES+0x10
        movl $0x30, %ecx
        lsll %ecx, %eax
        movl %eax, RES+0x14
        movl $0x08, %ecx
        lsll %ecx, %eax
        movl %eax, RES+0x18
        movl $0x1000, %ecx
        movl $0x77, %eax
        larl %ecx, %eax                         # beyond the GDT: ZF = 0, EAX kept
        setz RES+0x20
        movl %eax, RES+0x1c
        movw $0x60, %cx
        verr %cx
        setz RES+0x21                           # execute-only: 0
        movw $0x08, %cx
        verr %cx
        setz RES+0x22                           # readable code: 1
        movw $0x50, %cx
        verw %cx
        setz RES+0x23                           # read-only data: 0
        movw $0x10, %cx
        verw %cx
        setz RES+0x24                           # writable data: 1
        movw $0x58, %cx
        verr %cx
        setz RES+0x25                           # a gate: 0
        movw $0x10, %ax
        movw $0x23, %bx
        arpl %bx, %ax
        setz RES+0x26                           # RPL raised: 1
        movw %ax, RES+0x28                      # 0x13
        arpl %bx, %ax
        setz RES+0x27                           # unchanged: 0

        # ---- LTR, STR, LLDT, SLDT, the LDT ----
        movw $0x28, %ax
        ltr %ax
        strl %eax
        movl %eax, RES+0x30
        movb gdt+0x28+5, %al
        movb %al, RES+0x34                      # busy TSS: 0x8b
        movl $0x28, %ecx
        larl %ecx, %eax
        movl %eax, RES+0x38
        lsll %ecx, %eax
        movl %eax, RES+0x3c
        FAULT 13, 0x28, ltr %cx                 # already busy
        movw $0x68, %ax
        lldt %ax
        sldt RES+0x40
        movw $0x0c, %ax
        movw %ax, %ds                           # LDT entry 1
        movl RES+0x14, %eax
        movw $0x10, %ax
        movw %ax, %ds
        movw $0x10, %ax
        FAULT 13, 0x10, lldt %ax                # not an LDT descriptor
        movb gdt+0x10+5, %al
        movb %al, RES+0x44                      # accessed bit set by the loads: 0x93
        movb gdt+0x50+5, %al
        movb %al, RES+0x45                      # 0x91

        # ---- CPL 0 system instructions that must work ----
        movl %cr0, %eax
        movl %eax, RES+0x48
        smsw %ax
        movw %ax, RES+0x4c
        clts
        # (CR0 PG without PE and NW without CD: protected-faults.test.ts; QEMU accepts them.)
        movl $0x20, %eax
        FAULT 13, 0, movl %eax, %cr4                   # qemu: qemu32 has PAE (CPUID here reports none)
        FAULT 6, NOCODE, movl %cr1, %eax        # no CR1
        smsw %ax
        andw $0xfffe, %ax
        lmsw %ax                                # LMSW cannot clear PE
        smsw %ax
        movw %ax, RES+0x4e
        jmp done

conforming:
        xorl %eax, %eax
        movw %cs, %ax
        lret

        .data
bounds: .long 5, 10
