/**
 * The control virtqueue commands of virtio-net (section 5.1.6.5): RX modes, the MAC filter
 * table and address, the announce acknowledgement and the number of queue pairs. Each command
 * answers VIRTIO_NET_OK or VIRTIO_NET_ERR; a command for a feature not negotiated, or with
 * data of the wrong size, is VIRTIO_NET_ERR and changes nothing.
 */
import type { ChainReader } from "../../virtqueue/cursor.js";
import type { VirtQueue } from "../../virtqueue/queue.js";
import {
  VIRTIO_NET_CTRL_ANNOUNCE,
  VIRTIO_NET_CTRL_ANNOUNCE_ACK,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_ERR,
  VIRTIO_NET_OK,
} from "./constants.js";
import type { RxFilter } from "./filter.js";
import { NetError } from "./frame.js";

/** The control features negotiated. */
export interface CtrlFeatures {
  ctrlRx: boolean;
  ctrlRxExtra: boolean;
  macAddr: boolean;
  announce: boolean;
  mq: boolean;
}

/** What the commands change on the device. */
export interface CtrlTarget {
  readonly filter: RxFilter;
  readonly maxQueuePairs: number;
  setMac(mac: Uint8Array): void;
  ackAnnounce(): void;
  setQueuePairs(n: number): void;
}

export function ctrlCommand(
  t: CtrlTarget,
  a: CtrlFeatures,
  cls: number,
  cmd: number,
  r: ChainReader,
): number {
  const ERR = VIRTIO_NET_ERR;
  switch (cls) {
    case VIRTIO_NET_CTRL_RX: {
      if (!a.ctrlRx || r.remaining !== 1) return ERR;
      const on = r.readU8() !== 0;
      const f = t.filter;
      if (cmd <= 1) {
        if (cmd === 0) f.promisc = on;
        else f.allmulti = on;
        return VIRTIO_NET_OK;
      }
      if (!a.ctrlRxExtra || cmd > 5) return ERR;
      if (cmd === 2) f.alluni = on;
      else if (cmd === 3) f.nomulti = on;
      else if (cmd === 4) f.nouni = on;
      else f.nobcast = on;
      return VIRTIO_NET_OK;
    }
    case VIRTIO_NET_CTRL_MAC: {
      if (cmd === VIRTIO_NET_CTRL_MAC_ADDR_SET) {
        if (!a.macAddr || r.remaining !== 6) return ERR;
        t.setMac(r.readAll());
        return VIRTIO_NET_OK;
      }
      if (cmd !== VIRTIO_NET_CTRL_MAC_TABLE_SET || !a.ctrlRx) return ERR;
      const data = r.readAll();
      const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
      if (data.length < 4) return ERR;
      const nUni = v.getUint32(0, true);
      const uniEnd = 4 + 6 * nUni;
      if (uniEnd + 4 > data.length) return ERR;
      const nMulti = v.getUint32(uniEnd, true);
      if (uniEnd + 4 + 6 * nMulti !== data.length) return ERR;
      t.filter.setTable(data.subarray(4, uniEnd), data.subarray(uniEnd + 4));
      return VIRTIO_NET_OK;
    }
    case VIRTIO_NET_CTRL_ANNOUNCE:
      if (!a.announce || cmd !== VIRTIO_NET_CTRL_ANNOUNCE_ACK) return ERR;
      t.ackAnnounce();
      return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_MQ: {
      if (!a.mq || cmd !== VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || r.remaining !== 2) return ERR;
      const n = r.readU16();
      if (n < 1 || n > t.maxQueuePairs) return ERR;
      t.setQueuePairs(n);
      return VIRTIO_NET_OK;
    }
    default:
      return ERR;
  }
}

/**
 * Runs every command waiting in the control queue: reads class and command, answers with the
 * ack byte. A buffer without class, command and room for the ack is a guest error (as QEMU:
 * the device needs a reset). Returns whether any buffer was used.
 */
export function drainCtrlQueue(
  vq: VirtQueue,
  t: CtrlTarget,
  a: CtrlFeatures,
  counters: { ctrlCommands: number; ctrlErrors: number },
): boolean {
  let used = false;
  for (let chain = vq.pop(); chain !== null; chain = vq.pop()) {
    const r = chain.reader();
    const w = chain.writer();
    if (r.remaining < 2 || w.remaining < 1) {
      throw new NetError(
        "CTRL_MISSING_HEADERS",
        `control buffer (head ${chain.head}) has ${r.remaining} readable and ${w.remaining} writable bytes; it needs class, command and an ack byte`,
      );
    }
    const cls = r.readU8();
    const cmd = r.readU8();
    counters.ctrlCommands++;
    const ack = ctrlCommand(t, a, cls, cmd, r);
    if (ack !== VIRTIO_NET_OK) counters.ctrlErrors++;
    w.writeU8(ack);
    vq.addUsed(chain.head, 1);
    used = true;
  }
  return used;
}
