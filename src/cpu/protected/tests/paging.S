# Paging: 4 KiB and 4 MiB (PSE) pages, global pages (PGE), #PF on every rule with CR2 and the
# error code, CR0.WP, accessed/dirty bits, INVLPG and CR3/CR4 flushes, demand paging and
# copy-on-write repaired by the #PF handler, a page-crossing write that must not half-happen.
        .include "prelude.S"

        .equ PD, 0x20000
        .equ PT0, 0x21000
        .equ L_INV, 0x200000                    # remapped: phys 0x300000, then 0x301000
        .equ L_GLB, 0x201000                    # global: phys 0x302000, then 0x303000
        .equ L_DEM, 0x202000                    # not present until the #PF handler maps it
        .equ L_SUP, 0x203000                    # supervisor only
        .equ L_COW, 0x51000                     # user read-only, copied on the first write
        .equ CR0_PG, 0x80000000
        .equ CR0_WP, 0x10000
        .equ CR4_PSE, 0x10
        .equ CR4_PGE, 0x80

        .macro PTE lin, value
        movl $(\value), PT0+((\lin) >> 12)*4
        .endm

        .text
test_main:
        movw $0x28, %ax
        ltr %ax
        # Marker values in the physical frames the tests map.
        movl $0xa0, 0x300000
        movl $0xa1, 0x301000
        movl $0xb0, 0x302000
        movl $0xb1, 0x303000
        movl $0x5151, L_COW
        # PT0: identity, supervisor read/write, global.
        xorl %esi, %esi
        movl $0x400000, %ecx
        movl $0x103, %edx
        call set_range
        # User read/write: RES and the log, the program, the user stack.
        movl $0x4000, %esi
        movl $0x6000, %ecx
        movl $0x007, %edx
        call set_range
        movl $0x8000, %esi
        movl $0x20000, %ecx
        call set_range
        movl $0x50000, %esi
        movl $0x60000, %ecx
        call set_range
        PTE 0, 0                                # the null page is not present
        PTE 0x3000, 0x3001                      # supervisor read-only
        PTE L_INV, 0x300003
        PTE L_GLB, 0x302103
        PTE L_DEM, 0
        PTE L_SUP, 0x305003
        PTE L_COW, L_COW | 0x005                # user read-only
        movl $PT0 | 7, PD
        movl $0x400000 | 0x187, PD+4            # 4 MiB user page, global
        movl $0x400000 | 0x081, PD+12           # 0xC00000: 4 MiB supervisor read-only alias
        movl $PD, %eax
        movl %eax, %cr3
        movl $CR4_PSE | CR4_PGE, %eax
        movl %eax, %cr4
        movl %cr0, %eax
        orl $CR0_PG, %eax
        movl %eax, %cr0

        # 4 MiB pages and their alias.
        movl $0x12345678, 0x400010
        movl 0xc00010, %eax
        movl %eax, RES+0x00
        movl PD+4, %eax
        movl %eax, RES+0x04                     # A and D set in the 4 MiB PDE
        movl PD+12, %eax
        movl %eax, RES+0x08                     # A set, D clear

        # Not present.
        FAULTPF 0, 0x800004, movl 0x800004, %eax
        FAULTPF 2, 0x800008, movl %eax, 0x800008
        FAULTPF 0, 0, movl 0, %eax
        # CR0.WP.
        movl %eax, 0x3000                       # WP = 0: supervisor writes read-only pages
        movl %cr0, %eax
        orl $CR0_WP, %eax
        movl %eax, %cr0
        FAULTPF 3, 0x3004, movl %eax, 0x3004
        FAULTPF 3, 0xc00000, movl %eax, 0xc00000
        # A page-crossing write whose second page is absent writes nothing.
        FAULTPF 2, 0x800000, movl $0xffffffff, 0x7ffffe
        movw 0x7ffffe, %ax
        movw %ax, RES+0x0c

        # Accessed and dirty bits in the PTE.
        movl L_INV, %eax
        movl PT0+(L_INV >> 12)*4, %eax
        movl %eax, RES+0x10                     # A set, D clear
        movl $0xa0, L_INV
        movl PT0+(L_INV >> 12)*4, %eax
        movl %eax, RES+0x14                     # A and D set

        # INVLPG.
        PTE L_INV, 0x301003
        movl L_INV, %eax
        movl %eax, RES+0x20                     # stale: 0xa0
        invlpg L_INV
        movl L_INV, %eax
        movl %eax, RES+0x24                     # 0xa1

        # CR3 reload keeps global pages; a CR4.PGE toggle drops them.
        movl L_GLB, %eax
        PTE L_GLB, 0x303103
        PTE L_INV, 0x300003
        movl %cr3, %eax
        movl %eax, %cr3
        movl L_GLB, %eax
        movl %eax, RES+0x30                     # still 0xb0
        movl L_INV, %eax
        movl %eax, RES+0x34                     # 0xa0 again
        movl $CR4_PSE, %eax
        movl %eax, %cr4
        movl $CR4_PSE | CR4_PGE, %eax
        movl %eax, %cr4
        movl L_GLB, %eax
        movl %eax, RES+0x38                     # 0xb1

        # Demand paging: the handler maps the page and the write is retried.
        DEMAND 2, L_DEM, fix_demand, movl $0x77, L_DEM
        movl 0x304000, %eax
        movl %eax, RES+0x40

        # Ring 3.
        pushl $0x23
        pushl $0x60000
        pushl $0x2
        pushl $0x1b
        pushl $user
        iret

user:
        movw $0x23, %ax
        movw %ax, %ds
        movw %ax, %es
        movl 0x400010, %eax
        movl %eax, RES+0x48                     # user 4 MiB page
        FAULTPF 5, L_SUP, movl L_SUP, %eax
        FAULTPF 7, L_SUP+8, movl %eax, L_SUP+8
        FAULTPF 5, 0xc00000, movl 0xc00000, %eax
        FAULTPF 4, 0x800000, movl 0x800000, %eax
        FAULTPF 7, 0x3000, movl %eax, 0x3000
        xorl %eax, %eax
        FAULTAT 14, 4, 0, 0, jmp *%eax          # fetch from the null page: EIP = 0, a user read
        # Copy-on-write: the first write faults, the handler copies the frame, the write retries.
        movl L_COW, %eax
        movl %eax, RES+0x4c
        DEMAND 7, L_COW, fix_cow, movl $0x99, L_COW
        movl L_COW, %eax
        movl %eax, RES+0x50
        int $0x84

# Maps L_DEM to frame 0x304000 (the access that faulted was never cached).
fix_demand:
        PTE L_DEM, 0x304003
        ret

# Copies the faulting page to frame 0x306000 and maps it writable.
fix_cow:
        pushl %esi
        pushl %edi
        pushl %ecx
        movl %cr2, %esi
        andl $0xfffff000, %esi
        movl $0x306000, %edi
        movl $1024, %ecx
        cld
        rep movsl
        PTE L_COW, 0x306007
        invlpg L_COW
        popl %ecx
        popl %edi
        popl %esi
        ret

# PT0 entries for [%esi, %ecx): identity frame | %edx.
set_range:
        movl %esi, %eax
        shrl $12, %eax
        movl %esi, %ebx
        orl %edx, %ebx
        movl %ebx, PT0(,%eax,4)
        addl $0x1000, %esi
        cmpl %ecx, %esi
        jb set_range
        ret
