/**
 * Type-0 configuration space layout (PCI Local Bus Specification 3.0, section 6.1), named as
 * Linux's include/uapi/linux/pci_regs.h names them.
 */

/** Offsets of the type-0 header registers. */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
/** Programming interface (0x09), sub-class (0x0a) and base class (0x0b) as one 24-bit class code. */
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BIST = 0x0f;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_BASE_ADDRESS_5 = 0x24;
export const PCI_CARDBUS_CIS = 0x28;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_MIN_GNT = 0x3e;
export const PCI_MAX_LAT = 0x3f;

/** Size of a conventional PCI function's configuration space. */
export const PCI_CONFIG_SPACE_SIZE = 256;
/** First byte after the standard header: capabilities live from here on. */
export const PCI_STD_HEADER_SIZEOF = 0x40;

/** Command register bits. */
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_SPECIAL = 0x8;
export const PCI_COMMAND_INVALIDATE = 0x10;
export const PCI_COMMAND_VGA_PALETTE = 0x20;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_WAIT = 0x80;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_FAST_BACK = 0x200;
export const PCI_COMMAND_INTX_DISABLE = 0x400;

/** Status register bits. */
export const PCI_STATUS_INTERRUPT = 0x8;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_STATUS_66MHZ = 0x20;
export const PCI_STATUS_FAST_BACK = 0x80;
export const PCI_STATUS_PARITY = 0x100;
export const PCI_STATUS_DEVSEL_MEDIUM = 0x200;
export const PCI_STATUS_SIG_TARGET_ABORT = 0x800;
export const PCI_STATUS_REC_TARGET_ABORT = 0x1000;
export const PCI_STATUS_REC_MASTER_ABORT = 0x2000;
export const PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000;
export const PCI_STATUS_DETECTED_PARITY = 0x8000;
/** The error bits of the status register, which the guest clears by writing 1 to them. */
export const PCI_STATUS_W1C_BITS =
  PCI_STATUS_PARITY |
  PCI_STATUS_SIG_TARGET_ABORT |
  PCI_STATUS_REC_TARGET_ABORT |
  PCI_STATUS_REC_MASTER_ABORT |
  PCI_STATUS_SIG_SYSTEM_ERROR |
  PCI_STATUS_DETECTED_PARITY;

/** Header type register. */
export const PCI_HEADER_TYPE_NORMAL = 0x00;
export const PCI_HEADER_TYPE_MULTI_FUNCTION = 0x80;

/** Base address register bits. */
export const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x0;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8;
export const PCI_BASE_ADDRESS_MEM_MASK = 0xffff_fff0;
export const PCI_BASE_ADDRESS_IO_MASK = 0xffff_fffc;

/** Interrupt pin values (0 = none). */
export const PciInterruptPin = { NONE: 0, INTA: 1, INTB: 2, INTC: 3, INTD: 4 } as const;
export type PciInterruptPinValue = (typeof PciInterruptPin)[keyof typeof PciInterruptPin];

/** Capability IDs (PCI Code and ID Assignment Specification). */
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;

/** MSI-X capability layout (offsets from the capability start) and message control bits. */
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_PBA = 8;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
/** MSI-X table entry layout (16 bytes each). */
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_LOWER_ADDR = 0;
export const PCI_MSIX_ENTRY_UPPER_ADDR = 4;
export const PCI_MSIX_ENTRY_DATA = 8;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 12;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x1;

/** Class codes used in this project (base class << 16 | sub-class << 8 | prog-if). */
export const PciClass = {
  HOST_BRIDGE: 0x06_00_00,
  ISA_BRIDGE: 0x06_01_00,
  NETWORK_ETHERNET: 0x02_00_00,
  STORAGE_SCSI: 0x01_00_00,
  COMMUNICATION_OTHER: 0x07_80_00,
  UNCLASSIFIED_OTHER: 0x00_ff_00,
  SYSTEM_OTHER: 0x08_80_00,
} as const;

/** Vendor IDs. */
export const PCI_VENDOR_ID_INTEL = 0x8086;
export const PCI_VENDOR_ID_REDHAT_QUMRANET = 0x1af4;
