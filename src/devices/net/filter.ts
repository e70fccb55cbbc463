/**
 * The receive filter of a virtio-net device (section 5.1.6.5.1 and 5.1.6.5.2): the RX mode
 * bits set through VIRTIO_NET_CTRL_RX and the MAC filter table set with
 * VIRTIO_NET_CTRL_MAC_TABLE_SET. Past `MAC_TABLE_ENTRIES` addresses of a kind the device
 * accepts every address of that kind, as the spec's footnote allows (and QEMU does).
 */
import { ETH_ALEN } from "./constants.js";
import { formatMac, isBroadcast, isMulticast, macKey, parseMac } from "./frame.js";

export const MAC_TABLE_ENTRIES = 64;

export interface RxFilterState {
  promisc: boolean;
  allmulti: boolean;
  alluni: boolean;
  nomulti: boolean;
  nouni: boolean;
  nobcast: boolean;
  unicast: string[];
  multicast: string[];
  unicastOverflow: boolean;
  multicastOverflow: boolean;
}

export class RxFilter {
  // QEMU starts promiscuous "for compatibility": a driver without CTRL_RX cannot change it.
  promisc = true;
  allmulti = false;
  alluni = false;
  nomulti = false;
  nouni = false;
  nobcast = false;
  private uni = new Set<number>();
  private multi = new Set<number>();
  unicastOverflow = false;
  multicastOverflow = false;

  /** Back to the state after reset: promiscuous, empty table (5.1.6.5.2: "empty MAC filtering table on reset"). */
  reset(): void {
    this.promisc = true;
    this.allmulti = false;
    this.alluni = false;
    this.nomulti = false;
    this.nouni = false;
    this.nobcast = false;
    this.uni.clear();
    this.multi.clear();
    this.unicastOverflow = false;
    this.multicastOverflow = false;
  }

  /** Number of table entries (unicast, multicast). */
  get tableSize(): [number, number] {
    return [this.uni.size, this.multi.size];
  }

  /** Replaces the table. `unicast` and `multicast` are 6-byte addresses packed. */
  setTable(unicast: Uint8Array, multicast: Uint8Array): void {
    this.uni = keys(unicast);
    this.multi = keys(multicast);
    this.unicastOverflow = this.uni.size > MAC_TABLE_ENTRIES;
    this.multicastOverflow = this.multi.size > MAC_TABLE_ENTRIES;
    if (this.unicastOverflow) this.uni.clear();
    if (this.multicastOverflow) this.multi.clear();
  }

  /** Whether a frame to the destination at frame[0..6) passes, for a device whose address is `mac`. */
  accepts(frame: Uint8Array, mac: Uint8Array): boolean {
    if (this.promisc) return true;
    if (isBroadcast(frame, 0)) return !this.nobcast;
    if (isMulticast(frame, 0)) {
      if (this.nomulti) return false;
      if (this.allmulti || this.multicastOverflow) return true;
      return this.multi.has(macKey(frame, 0));
    }
    if (this.nouni) return false;
    if (this.alluni || this.unicastOverflow) return true;
    for (let i = 0; i < ETH_ALEN; i++) if (frame[i] !== mac[i]) return this.uni.has(macKey(frame, 0));
    return true;
  }

  save(): RxFilterState {
    return {
      promisc: this.promisc,
      allmulti: this.allmulti,
      alluni: this.alluni,
      nomulti: this.nomulti,
      nouni: this.nouni,
      nobcast: this.nobcast,
      unicast: [...this.uni].map(keyToMac),
      multicast: [...this.multi].map(keyToMac),
      unicastOverflow: this.unicastOverflow,
      multicastOverflow: this.multicastOverflow,
    };
  }

  restore(s: RxFilterState): void {
    this.promisc = s.promisc === true;
    this.allmulti = s.allmulti === true;
    this.alluni = s.alluni === true;
    this.nomulti = s.nomulti === true;
    this.nouni = s.nouni === true;
    this.nobcast = s.nobcast === true;
    this.uni = new Set(s.unicast.map((m) => macKey(parseMac(m), 0)));
    this.multi = new Set(s.multicast.map((m) => macKey(parseMac(m), 0)));
    this.unicastOverflow = s.unicastOverflow === true;
    this.multicastOverflow = s.multicastOverflow === true;
  }
}

function keys(packed: Uint8Array): Set<number> {
  const s = new Set<number>();
  for (let at = 0; at + ETH_ALEN <= packed.length; at += ETH_ALEN) s.add(macKey(packed, at));
  return s;
}

function keyToMac(k: number): string {
  const b = new Uint8Array(6);
  let hi = Math.floor(k / 0x1_0000_0000);
  let lo = k >>> 0;
  for (let i = 5; i >= 2; i--) {
    b[i] = lo & 0xff;
    lo >>>= 8;
  }
  b[1] = hi & 0xff;
  hi >>>= 8;
  b[0] = hi & 0xff;
  return formatMac(b);
}
