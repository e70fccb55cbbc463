/** Virtio-PCI modern interface layout (section 4.1), named as Linux's virtio_pci.h names it. */

/** cfg_type values of struct virtio_pci_cap. */
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;
export const VIRTIO_PCI_CAP_SHARED_MEMORY_CFG = 8;
export const VIRTIO_PCI_CAP_VENDOR_CFG = 9;

/** Offsets inside struct virtio_pci_cap (from the capability's ID byte). */
export const VIRTIO_PCI_CAP_VNDR = 0;
export const VIRTIO_PCI_CAP_NEXT = 1;
export const VIRTIO_PCI_CAP_LEN = 2;
export const VIRTIO_PCI_CAP_CFG_TYPE = 3;
export const VIRTIO_PCI_CAP_BAR = 4;
export const VIRTIO_PCI_CAP_ID = 5;
export const VIRTIO_PCI_CAP_OFFSET = 8;
export const VIRTIO_PCI_CAP_LENGTH = 12;
/** struct virtio_pci_notify_cap: notify_off_multiplier after the generic part. */
export const VIRTIO_PCI_NOTIFY_CAP_MULT = 16;
/** struct virtio_pci_cfg_cap: pci_cfg_data after the generic part. */
export const VIRTIO_PCI_CFG_CAP_DATA = 16;

/** Offsets of struct virtio_pci_common_cfg. */
export const VIRTIO_PCI_COMMON_DFSELECT = 0;
export const VIRTIO_PCI_COMMON_DF = 4;
export const VIRTIO_PCI_COMMON_GFSELECT = 8;
export const VIRTIO_PCI_COMMON_GF = 12;
export const VIRTIO_PCI_COMMON_MSIX = 16;
export const VIRTIO_PCI_COMMON_NUMQ = 18;
export const VIRTIO_PCI_COMMON_STATUS = 20;
export const VIRTIO_PCI_COMMON_CFGGENERATION = 21;
export const VIRTIO_PCI_COMMON_Q_SELECT = 22;
export const VIRTIO_PCI_COMMON_Q_SIZE = 24;
export const VIRTIO_PCI_COMMON_Q_MSIX = 26;
export const VIRTIO_PCI_COMMON_Q_ENABLE = 28;
export const VIRTIO_PCI_COMMON_Q_NOFF = 30;
export const VIRTIO_PCI_COMMON_Q_DESCLO = 32;
export const VIRTIO_PCI_COMMON_Q_DESCHI = 36;
export const VIRTIO_PCI_COMMON_Q_AVAILLO = 40;
export const VIRTIO_PCI_COMMON_Q_AVAILHI = 44;
export const VIRTIO_PCI_COMMON_Q_USEDLO = 48;
export const VIRTIO_PCI_COMMON_Q_USEDHI = 52;
export const VIRTIO_PCI_COMMON_Q_NDATA = 56;
export const VIRTIO_PCI_COMMON_Q_RESET = 58;
export const VIRTIO_PCI_COMMON_ADM_Q_IDX = 60;
export const VIRTIO_PCI_COMMON_ADM_Q_NUM = 62;
/** Size of struct virtio_pci_common_cfg. */
export const VIRTIO_PCI_COMMON_CFG_SIZE = 64;

/** Vector value used to disable MSI for a queue or for configuration changes. */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** ISR status bits. */
export const VIRTIO_PCI_ISR_QUEUE = 0x1;
export const VIRTIO_PCI_ISR_CONFIG = 0x2;

/** PCI IDs. */
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
/** Modern device ID = 0x1040 + virtio device ID. */
export const VIRTIO_PCI_DEVICE_ID_BASE = 0x1040;
export const VIRTIO_PCI_SUBSYSTEM_ID_MODERN = 0x0040;

/** PCI class codes by virtio device ID (what QEMU presents); others are 0x00ff00 (unclassified). */
export const VIRTIO_PCI_CLASS_BY_DEVICE: Readonly<Record<number, number>> = {
  1: 0x02_00_00, // network controller, ethernet
  2: 0x01_00_00, // mass storage, SCSI
  3: 0x07_80_00, // communication, other
  4: 0x00_ff_00, // unclassified
  5: 0x00_ff_00,
  8: 0x01_00_00,
  9: 0x02_80_00,
};

/**
 * Where this transport puts its structures. BAR 0 (32-bit memory, 16 KiB) holds the virtio
 * structures, one 4 KiB page each; BAR 1 (32-bit memory, 4 KiB) holds the MSI-X table and PBA.
 */
export const VIRTIO_BAR = 0;
export const VIRTIO_BAR_SIZE = 0x4000;
export const COMMON_CFG_OFFSET = 0x0000;
export const ISR_OFFSET = 0x1000;
export const DEVICE_CFG_OFFSET = 0x2000;
export const NOTIFY_OFFSET = 0x3000;
/** Bytes between two queues' notify addresses (queue_notify_off = queue index). */
export const NOTIFY_OFF_MULTIPLIER = 4;
export const MSIX_BAR = 1;
export const MSIX_BAR_SIZE = 0x1000;
export const MSIX_TABLE_OFFSET = 0x000;
export const MSIX_PBA_OFFSET = 0x800;
/** Most MSI-X vectors that fit the table area. */
export const MSIX_MAX_VECTORS = 128;
