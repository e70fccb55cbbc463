import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../common/errors.js";
import { type BarHandler, type BarInfo, PciFunction } from "./function.js";
import {
  PCI_BASE_ADDRESS_0,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_INTERRUPT,
  PCI_STATUS_REC_MASTER_ABORT,
} from "./regs.js";

const nullHandler: BarHandler = { mmioRead: () => 0, mmioWrite: () => {} };

function makeFn(pin = 1): PciFunction {
  return new PciFunction({
    vendorId: 0x1af4,
    deviceId: 0x1044,
    classCode: 0x00ff00,
    revision: 1,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x0004,
    interruptPin: pin,
    name: "test",
  });
}

describe("PciFunction header", () => {
  it("reads the identity registers", () => {
    const f = makeFn();
    expect(f.configRead(0, 4)).toBe(0x1044_1af4);
    expect(f.configRead(8, 4)).toBe(0x00ff_0001);
    expect(f.configRead(0x2c, 4)).toBe(0x0004_1af4);
    expect(f.configRead(PCI_INTERRUPT_PIN, 1)).toBe(1);
    expect(f.classCode).toBe(0x00ff00);
    // unaligned access inside the 256 bytes
    expect(f.configRead(1, 2)).toBe(0x441a);
    expect(f.configRead(3, 4)).toBe(0x0000_0010);
  });

  it("keeps read-only registers read-only", () => {
    const f = makeFn();
    const before = Array.from({ length: 64 }, (_, i) => f.configRead(i, 1));
    for (const off of [
      0,
      2,
      8,
      0x0a,
      PCI_HEADER_TYPE,
      0x2c,
      0x2e,
      0x30,
      PCI_CAPABILITY_LIST,
      PCI_INTERRUPT_PIN,
    ]) {
      f.configWrite(off, 2, 0xffff);
    }
    for (const off of [
      0,
      2,
      8,
      0x0a,
      PCI_HEADER_TYPE,
      0x2c,
      0x2e,
      0x30,
      PCI_CAPABILITY_LIST,
      PCI_INTERRUPT_PIN,
    ]) {
      expect(f.configRead(off, 1)).toBe(before[off]);
    }
    // an unused BAR reads 0 after all ones are written (not implemented)
    f.configWrite(PCI_BASE_ADDRESS_0, 4, 0xffff_ffff);
    expect(f.configRead(PCI_BASE_ADDRESS_0, 4)).toBe(0);
    // expansion ROM absent
    f.configWrite(0x30, 4, 0xffff_ffff);
    expect(f.configRead(0x30, 4)).toBe(0);
  });

  it("honours the command register mask and the interrupt line", () => {
    const f = makeFn();
    f.configWrite(PCI_COMMAND, 2, 0xffff);
    expect(f.configRead(PCI_COMMAND, 2)).toBe(0x0547);
    f.configWrite(PCI_INTERRUPT_LINE, 1, 11);
    expect(f.interruptLine).toBe(11);
  });

  it("clears status error bits by writing 1, never the capability bit", () => {
    const f = makeFn();
    f.addCapability(0x09, new Uint8Array(2));
    f.setU16(PCI_STATUS, f.getU16(PCI_STATUS) | PCI_STATUS_REC_MASTER_ABORT);
    f.configWrite(PCI_STATUS, 2, 0);
    expect(f.configRead(PCI_STATUS, 2) & PCI_STATUS_REC_MASTER_ABORT).toBe(PCI_STATUS_REC_MASTER_ABORT);
    f.configWrite(PCI_STATUS, 2, 0xffff);
    expect(f.configRead(PCI_STATUS, 2)).toBe(PCI_STATUS_CAP_LIST);
  });

  it("ignores accesses that do not fit and counts them", () => {
    const f = makeFn();
    expect(f.configRead(254, 4)).toBe(0xffff_ffff);
    expect(f.configRead(256, 1)).toBe(0xff);
    expect(f.configRead(-1, 1)).toBe(0xff);
    f.configWrite(255, 2, 0);
    expect(f.badAccesses).toBe(4);
  });

  it("never lets a write change a byte outside its mask (property)", () => {
    const f = makeFn();
    f.addBar(0, { kind: "io", size: 64, handler: nullHandler });
    f.addBar(2, { kind: "mem64", size: 0x4000, prefetchable: true, handler: nullHandler });
    f.addCapability(0x11, new Uint8Array(10), {
      writable: new Uint8Array([0, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0]),
    });
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 255 }),
            fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>,
            fc.nat(),
          ),
          {
            maxLength: 40,
          },
        ),
        (writes) => {
          f.reset();
          for (const [off, size, value] of writes) {
            const before = Array.from({ length: 256 }, (_, i) => f.getU8(i));
            f.configWrite(off, size, value);
            const changedOutside: number[] = [];
            for (let i = 0; i < 256; i++) {
              const inAccess = off + size <= 256 && i >= off && i < off + size;
              if (!inAccess && f.getU8(i) !== before[i]) changedOutside.push(i);
            }
            expect(changedOutside).toEqual([]);
            // identity bytes never change
            expect(f.configRead(0, 4)).toBe(0x1044_1af4);
            expect(f.configRead(PCI_INTERRUPT_PIN, 1)).toBe(1);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("PciFunction BARs", () => {
  it("sizes a 32-bit memory BAR", () => {
    const f = makeFn();
    f.addBar(1, { kind: "mem32", size: 0x1000, handler: nullHandler });
    const off = PCI_BASE_ADDRESS_0 + 4;
    expect(f.configRead(off, 4)).toBe(0);
    f.configWrite(off, 4, 0xffff_ffff);
    expect(f.configRead(off, 4)).toBe(0xffff_f000);
    f.configWrite(off, 4, 0xfebc_1234);
    expect(f.configRead(off, 4)).toBe(0xfebc_1000);
  });

  it("sizes a prefetchable 64-bit memory BAR and its upper half", () => {
    const f = makeFn();
    f.addBar(4, { kind: "mem64", size: 0x4000, prefetchable: true, handler: nullHandler });
    const off = PCI_BASE_ADDRESS_0 + 16;
    expect(f.configRead(off, 4)).toBe(0x0c);
    f.configWrite(off, 4, 0xffff_ffff);
    f.configWrite(off + 4, 4, 0xffff_ffff);
    expect(f.configRead(off, 4)).toBe(0xffff_c00c);
    expect(f.configRead(off + 4, 4)).toBe(0xffff_ffff);
    f.configWrite(off, 4, 0xfebe_8000);
    f.configWrite(off + 4, 4, 0);
    expect(f.barAddress(4)).toBe(0xfebe_8000);
    f.configWrite(off + 4, 4, 1);
    expect(f.barAddress(4)).toBe(0x1_febe_8000);
  });

  it("sizes an I/O BAR with the upper 16 bits hardwired to 0", () => {
    const f = makeFn();
    f.addBar(0, { kind: "io", size: 0x40, handler: nullHandler });
    f.configWrite(PCI_BASE_ADDRESS_0, 4, 0xffff_ffff);
    expect(f.configRead(PCI_BASE_ADDRESS_0, 4)).toBe(0x0000_ffc1);
    f.configWrite(PCI_BASE_ADDRESS_0, 4, 0xc040);
    expect(f.barAddress(0)).toBe(0xc040);
  });

  it("size probing reads back ~(size-1) for every size (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("mem32", "mem64", "io") as fc.Arbitrary<"mem32" | "mem64" | "io">,
        fc.integer({ min: 0, max: 19 }),
        (kind, log) => {
          const size = kind === "io" ? 2 ** (2 + (log % 7)) : 2 ** (12 + log);
          const f = makeFn();
          f.addBar(0, { kind, size, handler: nullHandler });
          f.configWrite(PCI_BASE_ADDRESS_0, 4, 0xffff_ffff);
          const v = f.configRead(PCI_BASE_ADDRESS_0, 4);
          const flagMask = kind === "io" ? 0x3 : 0xf;
          const mask = kind === "io" ? 0xffff : 0xffff_ffff;
          // the Linux way: size = ~(v & ~flags & mask) + 1 within the decoded width
          expect(((~(v & ~flagMask) & mask) >>> 0) + 1).toBe(size);
        },
      ),
    );
  });

  it("refuses bad BAR declarations with ConfigError", () => {
    const f = makeFn();
    expect(() => f.addBar(0, { kind: "mem32", size: 0x1800, handler: nullHandler })).toThrow(ConfigError);
    expect(() => f.addBar(0, { kind: "mem32", size: 0x800, handler: nullHandler })).toThrow(/at least 4096/);
    expect(() => f.addBar(0, { kind: "io", size: 512, handler: nullHandler })).toThrow(/4 to 256/);
    expect(() => f.addBar(5, { kind: "mem64", size: 0x1000, handler: nullHandler })).toThrow(/0\.\.4/);
    expect(() => f.addBar(6, { kind: "io", size: 4, handler: nullHandler })).toThrow(ConfigError);
    f.addBar(0, { kind: "mem64", size: 0x1000, handler: nullHandler });
    expect(() => f.addBar(1, { kind: "io", size: 4, handler: nullHandler })).toThrow(/already used/);
  });

  it("decodes only while the matching command bit is on and tells the listeners", () => {
    const f = makeFn();
    f.addBar(0, { kind: "io", size: 0x20, handler: nullHandler });
    f.addBar(1, { kind: "mem32", size: 0x1000, handler: nullHandler });
    const events: [string, number | null, number | null][] = [];
    f.addBarListener((_fn, bar: BarInfo, o, n) => events.push([bar.name, o, n]));
    f.configWrite(PCI_BASE_ADDRESS_0, 4, 0xc000);
    f.configWrite(PCI_BASE_ADDRESS_0 + 4, 4, 0xe000_0000);
    expect(events).toEqual([]);
    expect(f.barMapping(0)).toBeNull();
    f.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    expect(events).toEqual([["BAR1", null, 0xe000_0000]]);
    f.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    expect(events[1]).toEqual(["BAR0", null, 0xc000]);
    // moving a BAR while decoded
    f.configWrite(PCI_BASE_ADDRESS_0 + 4, 4, 0xe000_1000);
    expect(events[2]).toEqual(["BAR1", 0xe000_0000, 0xe000_1000]);
    // sizing with decode on moves it to the top; 0xfffff000+0x1000 fits exactly below 4 GiB
    f.configWrite(PCI_BASE_ADDRESS_0 + 4, 4, 0xffff_ffff);
    expect(events[3]).toEqual(["BAR1", 0xe000_1000, 0xffff_f000]);
    f.configWrite(PCI_COMMAND, 2, PCI_COMMAND_IO);
    expect(events[4]).toEqual(["BAR1", 0xffff_f000, null]);
    f.configWrite(PCI_COMMAND, 1, 0);
    expect(events[5]).toEqual(["BAR0", 0xc000, null]);
    expect(events).toHaveLength(6);
    // address 0 never decodes
    f.configWrite(PCI_BASE_ADDRESS_0, 4, 0);
    f.configWrite(PCI_COMMAND, 2, PCI_COMMAND_IO);
    expect(f.barMapping(0)).toBeNull();
    expect(events).toHaveLength(6);
  });

  it("a 64-bit BAR above 4 GiB does not decode", () => {
    const f = makeFn();
    f.addBar(0, { kind: "mem64", size: 0x4000, handler: nullHandler });
    f.setCommand(PCI_COMMAND_MEMORY);
    f.setBarAddress(0, 0x1_0000_0000);
    expect(f.barMapping(0)).toBeNull();
    f.setBarAddress(0, 0xfebf_c000);
    expect(f.barMapping(0)).toBe(0xfebf_c000);
    expect(() => f.setBarAddress(0, 0xfebf_c100)).toThrow(/aligned/);
  });

  it("reset turns decode off and restores power-on values", () => {
    const f = makeFn();
    f.addBar(1, { kind: "mem32", size: 0x1000, handler: nullHandler });
    const events: (number | null)[] = [];
    f.addBarListener((_f, _b, _o, n) => events.push(n));
    f.setBarAddress(1, 0xe000_0000);
    f.setCommand(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    expect(f.busMasterEnabled).toBe(true);
    f.configWrite(PCI_INTERRUPT_LINE, 1, 10);
    f.reset();
    expect(events).toEqual([0xe000_0000, null]);
    expect(f.command).toBe(0);
    expect(f.interruptLine).toBe(0);
    expect(f.barAddress(1)).toBe(0);
  });
});

describe("PciFunction capabilities", () => {
  it("chains capabilities from 0x34 and sets the status bit", () => {
    const f = makeFn();
    expect(f.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST).toBe(0);
    expect(f.configRead(PCI_CAPABILITY_LIST, 1)).toBe(0);
    const a = f.addCapability(0x09, new Uint8Array([14, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    const b = f.addCapability(0x11, new Uint8Array(10));
    const c = f.addCapability(0x09, new Uint8Array([3]));
    expect(a).toBe(0x40);
    expect(b).toBe(0x50);
    expect(c).toBe(0x5c);
    expect(f.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST).toBe(PCI_STATUS_CAP_LIST);
    // walk as a driver does
    const seen: [number, number][] = [];
    let p = f.configRead(PCI_CAPABILITY_LIST, 1);
    while (p !== 0) {
      seen.push([p, f.configRead(p, 1)]);
      p = f.configRead(p + 1, 1);
    }
    expect(seen).toEqual([
      [0x40, 0x09],
      [0x50, 0x11],
      [0x5c, 0x09],
    ]);
    expect(f.configRead(0x42, 2)).toBe(0x010e);
    // next pointers are read-only
    f.configWrite(0x41, 1, 0x99);
    expect(f.configRead(0x41, 1)).toBe(0x50);
  });

  it("honours per-byte writable masks and calls the owner's hooks", () => {
    const f = makeFn();
    const writes: [number, number, number][] = [];
    let readOverride: number | undefined;
    // MSI-X-like: message control at +2 (bits 15 and 14 writable), table offset at +4
    const off = f.addCapability(
      0x11,
      new Uint8Array([0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0, 0]),
      {
        writable: new Uint8Array([0x00, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0]),
        hooks: {
          write: (o, s, v) => writes.push([o, s, v]),
          read: (o) => (o === 8 ? readOverride : undefined),
        },
      },
    );
    f.configWrite(off + 2, 2, 0xffff);
    expect(f.configRead(off + 2, 2)).toBe(0xc003);
    expect(writes).toEqual([[2, 2, 0xffff]]);
    f.configWrite(off + 4, 4, 0);
    expect(f.configRead(off + 4, 4)).toBe(1);
    expect(f.configRead(off + 8, 4)).toBe(0x0801);
    readOverride = 0x1234_5678;
    expect(f.configRead(off + 8, 4)).toBe(0x1234_5678);
    expect(f.configRead(off + 8, 1)).toBe(0x78);
  });

  it("refuses a capability that does not fit or has a bad mask", () => {
    const f = makeFn();
    expect(() => f.addCapability(0x09, new Uint8Array(200))).toThrow(/does not fit/);
    expect(() => f.addCapability(0x09, new Uint8Array(4), { writable: new Uint8Array(3) })).toThrow(
      /mask length/,
    );
  });
});

describe("PciFunction INTx", () => {
  it("drives the wired line, gated by Interrupt Disable, with status bit 3", () => {
    const f = makeFn();
    const levels: boolean[] = [];
    f.connectIntx({ set: (l) => levels.push(l) });
    f.setIntx(true);
    expect(levels).toEqual([true]);
    expect(f.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).toBe(PCI_STATUS_INTERRUPT);
    f.configWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    expect(levels).toEqual([true, false]);
    // status still shows the pending interrupt
    expect(f.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).toBe(PCI_STATUS_INTERRUPT);
    f.configWrite(PCI_COMMAND, 2, 0);
    expect(levels).toEqual([true, false, true]);
    f.setIntx(false);
    expect(levels).toEqual([true, false, true, false]);
    expect(f.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).toBe(0);
    f.setIntx(false);
    expect(levels).toHaveLength(4);
  });

  it("a function without a pin never asserts its line", () => {
    const f = makeFn(0);
    const levels: boolean[] = [];
    f.connectIntx({ set: (l) => levels.push(l) });
    f.setIntx(true);
    expect(levels).toEqual([]);
  });

  it("saves and restores its state", () => {
    const f = makeFn();
    f.addBar(0, { kind: "io", size: 0x20, handler: nullHandler });
    f.setBarAddress(0, 0xc020);
    f.setCommand(PCI_COMMAND_IO);
    f.setIntx(true);
    const state = JSON.parse(JSON.stringify(f.save()));
    const g = makeFn();
    g.addBar(0, { kind: "io", size: 0x20, handler: nullHandler });
    const events: (number | null)[] = [];
    g.addBarListener((_f, _b, _o, n) => events.push(n));
    const levels: boolean[] = [];
    g.connectIntx({ set: (l) => levels.push(l) });
    g.restore(state);
    expect(g.barMapping(0)).toBe(0xc020);
    expect(events).toEqual([0xc020]);
    expect(levels).toEqual([true]);
    expect(() => g.restore({ config: [1, 2], intx: false })).toThrow(ConfigError);
  });
});
