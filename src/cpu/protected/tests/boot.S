# Boot sector to run a test program under QEMU/SeaBIOS (protected-programs.test.ts): zeroes
# 0x4000-0x6fff and 0x8000-0x27fff, reads the program (LBA 1..) to 0000:8000 with INT 13h AH=42h.
        .code16
        .text
        .globl _start
_start:
        cli
        xorw %ax, %ax
        movw %ax, %ds
        movw %ax, %ss
        movw $0x7c00, %sp
        movb %dl, drive
        cld
        movw %ax, %es
        movw $0x4000, %di
        movw $0x1800, %cx
        rep stosw
        movw $0x0800, %bx
1:      movw %bx, %es
        xorw %di, %di
        movw $0x8000, %cx
        xorw %ax, %ax
        rep stosw
        addw $0x1000, %bx
        cmpw $0x2800, %bx
        jb 1b
        movw $dap, %si
        movb $0x42, %ah
        movb drive, %dl
        int $0x13
        jc fail
        ljmp $0, $0x8000
fail:
        hlt
        jmp fail
        .align 4
dap:    .byte 0x10, 0
count:  .word 64
        .word 0x8000, 0
        .long 1, 0
drive:  .byte 0
        .org 510
        .word 0xaa55
