/** virtio-balloon constants (section 5.5), named as in the specification. */

export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
export const VIRTIO_BALLOON_F_STATS_VQ = 1;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;
export const VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3;
export const VIRTIO_BALLOON_F_PAGE_POISON = 4;
export const VIRTIO_BALLOON_F_PAGE_REPORTING = 5;

/** Page frame numbers count 4096-byte pages, whatever the guest's page size ("historical"). */
export const VIRTIO_BALLOON_PFN_SHIFT = 12;
export const VIRTIO_BALLOON_PAGE_SIZE = 4096;

/** Offsets in struct virtio_balloon_config. */
export const VIRTIO_BALLOON_CFG_NUM_PAGES = 0;
export const VIRTIO_BALLOON_CFG_ACTUAL = 4;
export const VIRTIO_BALLOON_CFG_FREE_PAGE_HINT_CMD_ID = 8;
export const VIRTIO_BALLOON_CFG_POISON_VAL = 12;
export const VIRTIO_BALLOON_CONFIG_SIZE = 16;

/** Statistic tags (section 5.5.6.3). */
export const VIRTIO_BALLOON_S_SWAP_IN = 0;
export const VIRTIO_BALLOON_S_SWAP_OUT = 1;
export const VIRTIO_BALLOON_S_MAJFLT = 2;
export const VIRTIO_BALLOON_S_MINFLT = 3;
export const VIRTIO_BALLOON_S_MEMFREE = 4;
export const VIRTIO_BALLOON_S_MEMTOT = 5;
export const VIRTIO_BALLOON_S_AVAIL = 6;
export const VIRTIO_BALLOON_S_CACHES = 7;
export const VIRTIO_BALLOON_S_HTLB_PGALLOC = 8;
export const VIRTIO_BALLOON_S_HTLB_PGFAIL = 9;

/** Size of struct virtio_balloon_stat (le16 tag, le64 val, packed). */
export const VIRTIO_BALLOON_STAT_SIZE = 10;

/** The statistics by tag, with the names the host API uses. */
export const BALLOON_STAT_NAMES = [
  "swapIn",
  "swapOut",
  "majorFaults",
  "minorFaults",
  "memFree",
  "memTotal",
  "memAvailable",
  "diskCaches",
  "hugetlbAllocations",
  "hugetlbFailures",
] as const;
export type BalloonStatName = (typeof BALLOON_STAT_NAMES)[number];
