/**
 * Unit and property tests of the x87 through `Fpu.exec` with a fake FpuHost over a
 * FlatMemory: decoding (valid and invalid encodings), the environment and save layouts
 * (16/32-bit, real and protected), the last-instruction pointers, restartable faults,
 * pending exceptions, EFLAGS for FCOMI/FCMOV, save/restore, and bit-exact memory round trips.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VirtkitError } from "../../common/errors.js";
import { FlatMemory } from "../../common/memory.js";
import { f80, toNumber } from "./float80.js";
import { Fpu, type FpuHost, type FpuInstrInfo, type FpuState } from "./fpu.js";

class Fault extends Error {}

/** A host over 64 KiB of memory; writes at or above `readOnlyFrom` fault (like a #PF). */
function makeHost(readOnlyFrom = 0x10000) {
  const mem = new FlatMemory(0x10000);
  const state = { eflags: 0x202, writes: 0 };
  const check = (a: number, n: number) => {
    if (a + n > readOnlyFrom) throw new Fault(`write fault at ${a.toString(16)}`);
    state.writes++;
  };
  const host: FpuHost = {
    readU8: (a) => mem.readU8(a),
    readU16: (a) => mem.readU16(a),
    readU32: (a) => mem.readU32(a),
    writeU8: (a, v) => {
      check(a, 1);
      mem.writeU8(a, v);
    },
    writeU16: (a, v) => {
      check(a, 2);
      mem.writeU16(a, v);
    },
    writeU32: (a, v) => {
      check(a, 4);
      mem.writeU32(a, v);
    },
    getEflags: () => state.eflags,
    setEflags: (v) => {
      state.eflags = v;
    },
  };
  return { mem, host, state };
}

const PM32: FpuInstrInfo = {
  cs: 0x10,
  ip: 0x1234,
  dataSelector: 0x18,
  dataOffset: 0x800,
  opSize32: true,
  protectedMode: true,
};

function info(over: Partial<FpuInstrInfo> = {}): FpuInstrInfo {
  return { ...PM32, ...over };
}

/** modrm for a memory operand with reg field r (the address is passed separately). */
const m = (r: number) => (r << 3) | 6;

function setup() {
  const h = makeHost();
  return { ...h, fpu: new Fpu(h.host) };
}

function fld64(t: ReturnType<typeof setup>, x: number, addr = 0x800): void {
  t.mem.view.setFloat64(addr, x, true);
  expect(t.fpu.exec(0xdd, m(0), addr, info())).toBe(true);
}

function fstp64(t: ReturnType<typeof setup>, addr = 0x800): number {
  expect(t.fpu.exec(0xdd, m(3), addr, info())).toBe(true);
  return t.mem.view.getFloat64(addr, true);
}

describe("decoding", () => {
  it("rejects invalid encodings without changing any state", () => {
    const invalid: [number, number][] = [
      [0xd9, m(1)],
      [0xd9, 0xd1],
      [0xd9, 0xd7],
      [0xd9, 0xe2],
      [0xd9, 0xe3],
      [0xd9, 0xe6],
      [0xd9, 0xe7],
      [0xd9, 0xef],
      [0xda, 0xe8],
      [0xda, 0xea],
      [0xda, 0xf0],
      [0xdb, m(1)],
      [0xdb, m(4)],
      [0xdb, m(6)],
      [0xdb, 0xe5],
      [0xdb, 0xe7],
      [0xdb, 0xf8],
      [0xdd, m(1)],
      [0xdd, m(5)],
      [0xdd, 0xf0],
      [0xdd, 0xff],
      [0xde, 0xd8],
      [0xde, 0xda],
      [0xdf, m(1)],
      [0xdf, 0xe0], // FNSTSW AX: the CPU's
      [0xdf, 0xe1],
      [0xdf, 0xf8],
    ];
    const t = setup();
    fld64(t, 1.5);
    const before = JSON.stringify(t.fpu.save());
    for (const [op, modrm] of invalid) {
      expect(
        t.fpu.exec(op, modrm, 0x800, info({ ip: 0x9999 })),
        `${op.toString(16)} ${modrm.toString(16)}`,
      ).toBe(false);
    }
    expect(JSON.stringify(t.fpu.save())).toBe(before);
  });

  it("executes the arithmetic forms with the right operand order (FSUB/FSUBR/FDIV/FDIVR, DC/DE swap)", () => {
    const cases: [number, number, number][] = [
      [0xd8, 0xe1, 10 - 4], // FSUB ST0, ST1 : ST0 = ST0 - ST1
      [0xd8, 0xe9, 4 - 10], // FSUBR ST0, ST1
      [0xd8, 0xf1, 10 / 4], // FDIV ST0, ST1
      [0xd8, 0xf9, 4 / 10], // FDIVR ST0, ST1
      [0xdc, 0xe9, 4 - 10], // FSUB ST1, ST0 : ST1 = ST1 - ST0
      [0xdc, 0xe1, 10 - 4], // FSUBR ST1, ST0
      [0xdc, 0xf9, 4 / 10], // FDIV ST1, ST0
      [0xdc, 0xf1, 10 / 4], // FDIVR ST1, ST0
      [0xde, 0xe9, 4 - 10], // FSUBP
      [0xde, 0xf9, 4 / 10], // FDIVP
      [0xde, 0xc1, 14], // FADDP
      [0xde, 0xc9, 40], // FMULP
    ];
    for (const [op, modrm, want] of cases) {
      const t = setup();
      fld64(t, 4);
      fld64(t, 10); // ST0 = 10, ST1 = 4
      expect(t.fpu.exec(op, modrm, 0, info())).toBe(true);
      const dest = op === 0xd8 ? 0 : op === 0xdc ? 1 : 0;
      expect(toNumber(t.fpu.st(dest)), `${op.toString(16)} ${modrm.toString(16)}`).toBeCloseTo(want, 15);
      if (op === 0xde) expect(t.fpu.isEmpty(1)).toBe(true);
    }
  });

  it("loads and stores 16/32/64-bit integers with the rounding control", () => {
    const t = setup();
    t.mem.view.setInt16(0x900, -1234, true);
    t.fpu.exec(0xdf, m(0), 0x900, info()); // FILD m16
    expect(toNumber(t.fpu.st(0))).toBe(-1234);
    fld64(t, 2.5);
    t.mem.view.setUint16(0x910, 0x037f | (1 << 10), true); // round down
    t.fpu.exec(0xd9, m(5), 0x910, info());
    t.fpu.exec(0xdb, m(2), 0x920, info()); // FIST m32
    expect(t.mem.view.getInt32(0x920, true)).toBe(2);
    t.mem.view.setUint16(0x910, 0x037f | (2 << 10), true); // round up
    t.fpu.exec(0xd9, m(5), 0x910, info());
    t.fpu.exec(0xdf, m(7), 0x928, info()); // FISTP m64
    expect(t.mem.view.getBigInt64(0x928, true)).toBe(3n);
    expect(t.fpu.statusWord() & 0x20).toBe(0x20); // PE
    expect(t.fpu.statusWord() & 0x200).toBe(0x200); // C1: rounded up
  });

  it("FRNDINT honours every rounding mode", () => {
    const want: Record<number, [number, number]> = { 0: [2, -2], 1: [2, -3], 2: [3, -2], 3: [2, -2] };
    for (let rc = 0; rc < 4; rc++) {
      for (const [i, x] of [2.5, -2.5].entries()) {
        const t = setup();
        t.mem.view.setUint16(0x910, 0x037f | (rc << 10), true);
        t.fpu.exec(0xd9, m(5), 0x910, info());
        fld64(t, x);
        expect(t.fpu.exec(0xd9, 0xfc, 0, info())).toBe(true);
        expect(toNumber(t.fpu.st(0)), `rc ${rc} x ${x}`).toBe(want[rc]![i]);
      }
    }
  });

  it("precision control rounds FDIV to 24, 53 or 64 bits", () => {
    const sig = (pc: number) => {
      const t = setup();
      t.mem.view.setUint16(0x910, 0x007f | (pc << 8), true);
      t.fpu.exec(0xd9, m(5), 0x910, info());
      fld64(t, 3);
      t.fpu.exec(0xd9, 0xe8, 0, info()); // FLD1
      t.fpu.exec(0xd8, 0xf1, 0, info()); // FDIV ST0, ST1 : 1/3
      const v = t.fpu.st(0);
      return [v.se, v.hi, v.lo];
    };
    expect(sig(0)).toEqual([0x3ffd, 0xaaaaab00, 0]);
    expect(sig(2)).toEqual([0x3ffd, 0xaaaaaaaa, 0xaaaaa800]);
    expect(sig(3)).toEqual([0x3ffd, 0xaaaaaaaa, 0xaaaaaaab]);
  });

  it("FLDPI rounds its 66-bit constant with the rounding control", () => {
    const lo = (rc: number) => {
      const t = setup();
      t.mem.view.setUint16(0x910, 0x037f | (rc << 10), true);
      t.fpu.exec(0xd9, m(5), 0x910, info());
      t.fpu.exec(0xd9, 0xeb, 0, info());
      return t.fpu.st(0).lo;
    };
    expect(lo(0)).toBe(0x2168c235);
    expect(lo(1)).toBe(0x2168c234);
    expect(lo(2)).toBe(0x2168c235);
    expect(lo(3)).toBe(0x2168c234);
  });

  it("signals stack overflow with C1=1 and the indefinite (masked)", () => {
    const t = setup();
    for (let i = 0; i < 8; i++) t.fpu.exec(0xd9, 0xe8, 0, info());
    expect(t.fpu.statusWord() & 0x41).toBe(0);
    t.fpu.exec(0xd9, 0xee, 0, info()); // FLDZ onto a full stack
    expect(t.fpu.statusWord() & 0x241).toBe(0x241);
    expect(t.fpu.st(0)).toEqual(f80(0xffff, 0xc0000000, 0));
  });

  it("sets EFLAGS for FCOMI and reads them for FCMOVcc", () => {
    const t = setup();
    fld64(t, 2);
    fld64(t, 1); // ST0 = 1, ST1 = 2
    t.state.eflags = 0x202 | 0x800 | 0x80 | 0x10; // OF, SF, AF set: FCOMI clears them
    t.fpu.exec(0xdb, 0xf1, 0, info()); // FCOMI ST0, ST1
    expect(t.state.eflags & 0x8d5).toBe(0x01); // CF: less
    t.fpu.exec(0xda, 0xc1, 0, info()); // FCMOVB ST0, ST1 (CF=1: move)
    expect(toNumber(t.fpu.st(0))).toBe(2);
    t.fpu.exec(0xdf, 0xe9, 0, info()); // FUCOMIP ST0, ST1: equal, pop
    expect(t.state.eflags & 0x45).toBe(0x40);
    expect(t.fpu.isEmpty(1)).toBe(true);
  });

  it("FXAM classifies the operand in C3..C0 (empty included)", () => {
    const cls = (setupFn: (t: ReturnType<typeof setup>) => void) => {
      const t = setup();
      setupFn(t);
      t.fpu.exec(0xd9, 0xe5, 0, info());
      return (t.fpu.statusWord() >> 8) & 0x47;
    };
    expect(cls(() => {})).toBe(0x41); // empty: C3, C0
    expect(cls((t) => fld64(t, 1))).toBe(0x04); // normal: C2
    expect(cls((t) => fld64(t, -0))).toBe(0x42); // zero: C3, C1 (sign)
    expect(cls((t) => fld64(t, Number.POSITIVE_INFINITY))).toBe(0x05); // infinity: C2, C0
    expect(cls((t) => fld64(t, Number.NaN))).toBe(0x01); // NaN: C0
    expect(cls((t) => fld64(t, 5e-324))).toBe(0x04); // a double denormal is normal in 80 bits
  });
});

describe("environment and save images", () => {
  /** A state with known pointers: FLD1 at cs:ip, then FADD m64 at another address. */
  function prepared(realMode: boolean) {
    const t = setup();
    const i = info({
      cs: 0x1234,
      ip: 0x5678,
      dataSelector: 0x2222,
      dataOffset: 0x0900,
      protectedMode: !realMode,
    });
    t.fpu.exec(0xd9, 0xe8, 0, i); // FLD1
    t.mem.view.setFloat64(0x900, 2, true);
    t.fpu.exec(0xdc, m(0), 0x900, i); // FADD m64: FOP = 0x406
    return { t, i };
  }

  it("FNSTENV 32-bit protected layout", () => {
    const { t, i } = prepared(false);
    expect(t.fpu.exec(0xd9, m(6), 0xa00, i)).toBe(true);
    const dv = t.mem.view;
    expect(dv.getUint32(0xa00, true)).toBe(0xffff037f);
    expect(dv.getUint32(0xa04, true)).toBe(0xffff3800); // TOP = 7
    expect(dv.getUint32(0xa08, true)).toBe(0xffff3fff); // R7 valid, others empty
    expect(dv.getUint32(0xa0c, true)).toBe(0x5678);
    expect(dv.getUint32(0xa10, true)).toBe((0x406 << 16) | 0x1234);
    expect(dv.getUint32(0xa14, true)).toBe(0x900);
    expect(dv.getUint32(0xa18, true)).toBe(0xffff2222);
    expect(t.fpu.controlWord()).toBe(0x37f); // all exceptions masked (already were)
  });

  it("FNSTENV 32-bit real-mode layout stores linear pointers around the opcode", () => {
    const { t, i } = prepared(true);
    t.fpu.exec(0xd9, m(6), 0xa00, i);
    const dv = t.mem.view;
    const ip = 0x1234 * 16 + 0x5678; // 0x179b8
    const dp = 0x2222 * 16 + 0x900; // 0x22b20
    expect(dv.getUint32(0xa0c, true)).toBe((0xffff0000 | (ip & 0xffff)) >>> 0);
    expect(dv.getUint32(0xa10, true)).toBe(((ip >>> 16) << 12) | 0x406);
    expect(dv.getUint32(0xa14, true)).toBe((0xffff0000 | (dp & 0xffff)) >>> 0);
    expect(dv.getUint32(0xa18, true)).toBe((dp >>> 16) << 12);
  });

  it("FNSTENV 16-bit layouts (protected and real)", () => {
    const pm = prepared(false);
    pm.t.fpu.exec(0xd9, m(6), 0xa00, { ...pm.i, opSize32: false });
    const d = pm.t.mem.view;
    expect([0, 2, 4, 6, 8, 10, 12].map((o) => d.getUint16(0xa00 + o, true))).toEqual([
      0x37f, 0x3800, 0x3fff, 0x5678, 0x1234, 0x900, 0x2222,
    ]);
    const rm = prepared(true);
    rm.t.fpu.exec(0xd9, m(6), 0xa00, { ...rm.i, opSize32: false });
    const r = rm.t.mem.view;
    expect([6, 8, 10, 12].map((o) => r.getUint16(0xa00 + o, true))).toEqual([0x79b8, 0x1406, 0x2b20, 0x2000]);
  });

  it("FLDENV restores what FNSTENV stored, in every layout", () => {
    for (const opSize32 of [true, false]) {
      for (const protectedMode of [true, false]) {
        const { t, i } = prepared(!protectedMode);
        const li = { ...i, opSize32, protectedMode };
        t.mem.view.setUint16(0x910, 0x0372, true); // unmask IE, DE, ZE
        t.fpu.exec(0xd9, m(5), 0x910, li);
        t.fpu.exec(0xd9, m(6), 0xa00, li);
        const snap = t.mem.subarray(0xa00, 28).slice();
        expect(t.fpu.controlWord()).toBe(0x37f); // FNSTENV masked everything
        expect(t.fpu.exec(0xd9, m(4), 0xa00, li)).toBe(true);
        expect(t.fpu.controlWord()).toBe(0x372);
        t.fpu.exec(0xd9, m(6), 0xb00, li);
        expect(t.mem.subarray(0xb00, 28)).toEqual(snap);
      }
    }
  });

  it("FNSAVE stores the registers in stack order and reinitialises; FRSTOR brings them back", () => {
    for (const opSize32 of [true, false]) {
      const t = setup();
      const i = info({ opSize32 });
      fld64(t, 3.25);
      fld64(t, -7);
      const before = t.fpu.save();
      expect(t.fpu.exec(0xdd, m(6), 0xc00, i)).toBe(true);
      const base = 0xc00 + (opSize32 ? 28 : 14);
      expect(t.mem.view.getUint16(base + 8, true)).toBe(0xc001); // ST0 = -7
      expect(t.fpu.statusWord()).toBe(0);
      expect(t.fpu.tagWord()).toBe(0xffff);
      expect(t.fpu.exec(0xdd, m(4), 0xc00, i)).toBe(true);
      const after = t.fpu.save();
      expect(after.regs).toEqual(before.regs);
      expect(after.sw).toBe(before.sw);
      expect(after.tw).toBe(before.tw);
      expect(toNumber(t.fpu.st(1))).toBe(3.25);
    }
  });

  it("control instructions leave the last-instruction pointers alone", () => {
    const { t, i } = prepared(false);
    const other = { ...i, cs: 0x99, ip: 0x99, dataOffset: 0x99, dataSelector: 0x99 };
    t.fpu.exec(0xd9, m(7), 0xd00, other); // FNSTCW
    t.fpu.exec(0xdd, m(7), 0xd00, other); // FNSTSW m16
    t.fpu.exec(0xdb, 0xe2, 0, other); // FNCLEX
    t.fpu.exec(0xd9, m(6), 0xa00, i);
    expect(t.mem.view.getUint32(0xa0c, true)).toBe(0x5678);
    expect(t.mem.view.getUint32(0xa14, true)).toBe(0x900);
    t.fpu.exec(0xd9, 0xe0, 0, other); // FCHS: not a control instruction
    t.fpu.exec(0xd9, m(6), 0xa00, i);
    expect(t.mem.view.getUint32(0xa0c, true)).toBe(0x99);
    expect(t.mem.view.getUint32(0xa10, true) >>> 16).toBe(0x1e0);
    expect(t.mem.view.getUint32(0xa14, true)).toBe(0x900); // register form: FDP kept
  });
});

describe("faults and exceptions", () => {
  it("a store that faults leaves the FPU state unchanged (restartable)", () => {
    const h = makeHost(0x1000);
    const fpu = new Fpu(h.host);
    h.mem.view.setFloat64(0x800, 6.5, true);
    fpu.exec(0xdd, m(0), 0x800, info());
    const before = JSON.stringify(fpu.save());
    // FSTP m80 straddling the read-only boundary, FNSAVE, FSTP m64, FISTP m64, FBSTP.
    const stores: [number, number, number][] = [
      [0xdb, m(7), 0xffa],
      [0xdd, m(6), 0xfa0],
      [0xdd, m(3), 0xffc],
      [0xdf, m(7), 0xffc],
      [0xdf, m(6), 0xff8],
      [0xd9, m(6), 0xff0],
    ];
    for (const [op, modrm, addr] of stores) {
      expect(() => fpu.exec(op, modrm, addr, info({ ip: 0x4444 }))).toThrow(Fault);
      expect(JSON.stringify(fpu.save())).toBe(before);
    }
  });

  it("FNSAVE probes its last byte first: a fault on the second page writes nothing", () => {
    const h = makeHost(0x1000);
    const fpu = new Fpu(h.host);
    h.state.writes = 0;
    expect(() => fpu.exec(0xdd, m(6), 0xfa0, info())).toThrow(Fault);
    expect(h.state.writes).toBe(0);
  });

  it("a load that faults changes nothing (nor the instruction pointer)", () => {
    const t = setup();
    const faulting: FpuHost = {
      ...t.host,
      readU32: () => {
        throw new Fault("read");
      },
      readU16: () => {
        throw new Fault("read");
      },
      readU8: () => {
        throw new Fault("read");
      },
    };
    const fpu = new Fpu(faulting);
    const before = JSON.stringify(fpu.save());
    for (const [op, modrm] of [
      [0xdd, m(0)],
      [0xd8, m(0)],
      [0xdb, m(5)],
      [0xdf, m(4)],
      [0xdd, m(4)],
      [0xd9, m(4)],
      [0xd9, m(5)],
    ] as const) {
      expect(() => fpu.exec(op, modrm, 0x800, info({ ip: 0x7777 }))).toThrow(Fault);
    }
    expect(JSON.stringify(fpu.save())).toBe(before);
  });

  it("an unmasked invalid operation is pending (ES/B) and leaves the destination alone", () => {
    const t = setup();
    t.mem.view.setUint16(0x910, 0x037e, true); // IE unmasked
    t.fpu.exec(0xd9, m(5), 0x910, info());
    fld64(t, Number.POSITIVE_INFINITY);
    fld64(t, Number.POSITIVE_INFINITY);
    expect(t.fpu.hasPendingException()).toBe(false);
    t.fpu.exec(0xd8, 0xe1, 0, info()); // ∞ - ∞
    expect(t.fpu.hasPendingException()).toBe(true);
    expect(t.fpu.statusWord() & 0x8081).toBe(0x8081);
    expect(toNumber(t.fpu.st(0))).toBe(Number.POSITIVE_INFINITY);
    t.fpu.exec(0xdb, 0xe2, 0, info()); // FNCLEX
    expect(t.fpu.hasPendingException()).toBe(false);
  });

  it("FLDCW that unmasks a raised flag makes it pending; masking it again clears ES", () => {
    const t = setup();
    fld64(t, 1);
    fld64(t, 0);
    t.fpu.exec(0xdc, 0xf9, 0, info()); // FDIV ST1, ST0: 1/0 → ZE (masked)
    expect(t.fpu.statusWord() & 0x04).toBe(0x04);
    expect(t.fpu.hasPendingException()).toBe(false);
    t.mem.view.setUint16(0x910, 0x037b, true);
    t.fpu.exec(0xd9, m(5), 0x910, info());
    expect(t.fpu.hasPendingException()).toBe(true);
    t.mem.view.setUint16(0x910, 0x037f, true);
    t.fpu.exec(0xd9, m(5), 0x910, info());
    expect(t.fpu.hasPendingException()).toBe(false);
  });
});

describe("state and round trips", () => {
  it("save() is a plain JSON object and restore() reproduces the FPU", () => {
    const t = setup();
    fld64(t, 1.25);
    fld64(t, -3);
    t.fpu.exec(0xde, 0xc9, 0x800, info()); // FMULP
    const s = JSON.parse(JSON.stringify(t.fpu.save()));
    const u = setup();
    u.fpu.restore(s);
    expect(u.fpu.save()).toEqual(t.fpu.save());
    expect(fstp64(u)).toBe(-3.75);
  });

  it("restore() refuses a malformed state with a typed error and changes nothing", () => {
    const t = setup();
    fld64(t, 2);
    const good = t.fpu.save();
    const before = JSON.stringify(good);
    const bad: unknown[] = [
      { ...good, cw: 0x10000 },
      { ...good, sw: -1 },
      { ...good, regs: good.regs.slice(0, 7) },
      { ...good, regs: [...good.regs.slice(0, 7), { se: 0, hi: 1.5, lo: 0 }] },
      { ...good, fop: 0x800 },
      null,
    ];
    for (const s of bad) {
      expect(() => t.fpu.restore(s as FpuState)).toThrow(VirtkitError);
      expect(JSON.stringify(t.fpu.save())).toBe(before);
    }
  });

  it("FLD m80 / FSTP m80 keep every bit pattern", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 10, maxLength: 10 }), (bytes) => {
        const t = setup();
        t.mem.writeFrom(0x800, bytes);
        t.fpu.exec(0xdb, m(5), 0x800, info());
        t.fpu.exec(0xdb, m(7), 0x900, info());
        expect(t.mem.subarray(0x900, 10)).toEqual(bytes);
        expect(t.fpu.statusWord() & 0x7f).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it("FILD m64 / FISTP m64 is the identity in every rounding mode", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
        fc.integer({ min: 0, max: 3 }),
        (n, rc) => {
          const t = setup();
          t.mem.view.setUint16(0x910, 0x037f | (rc << 10), true);
          t.fpu.exec(0xd9, m(5), 0x910, info());
          t.mem.view.setBigInt64(0x800, n, true);
          t.fpu.exec(0xdf, m(5), 0x800, info());
          t.fpu.exec(0xdf, m(7), 0x900, info());
          expect(t.mem.view.getBigInt64(0x900, true)).toBe(n);
          expect(t.fpu.statusWord() & 0x7f).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("FLD m64 / FSTP m64 and FLD m32 / FSTP m32 are the identity except that SNaNs are quieted", () => {
    fc.assert(
      fc.property(fc.bigUint64Array({ minLength: 1, maxLength: 1 }), fc.integer(), (arr, bits32) => {
        const t = setup();
        const b = arr[0]!;
        t.mem.view.setBigUint64(0x800, b, true);
        t.fpu.exec(0xdd, m(0), 0x800, info());
        t.fpu.exec(0xdd, m(3), 0x900, info());
        const isSNaN =
          ((b >> 52n) & 0x7ffn) === 0x7ffn && (b & 0xfffffffffffffn) !== 0n && !(b & (1n << 51n));
        expect(t.mem.view.getBigUint64(0x900, true)).toBe(isSNaN ? b | (1n << 51n) : b);
        const u = setup();
        u.mem.view.setUint32(0x800, bits32 >>> 0, true);
        u.fpu.exec(0xd9, m(0), 0x800, info());
        u.fpu.exec(0xd9, m(3), 0x900, info());
        const w = bits32 >>> 0;
        const snan32 = (w & 0x7f800000) === 0x7f800000 && (w & 0x7fffff) !== 0 && !(w & 0x400000);
        expect(u.mem.view.getUint32(0x900, true)).toBe(snan32 ? (w | 0x400000) >>> 0 : w);
      }),
      { numRuns: 300 },
    );
  });

  it("FBLD / FBSTP round-trips 18-digit packed BCD", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 18n - 1n }), fc.boolean(), (n, neg) => {
        const t = setup();
        let v = n;
        for (let i = 0; i < 9; i++) {
          const lo = Number(v % 10n);
          v /= 10n;
          const hi = Number(v % 10n);
          v /= 10n;
          t.mem.writeU8(0x800 + i, (hi << 4) | lo);
        }
        t.mem.writeU8(0x809, neg ? 0x80 : 0);
        t.fpu.exec(0xdf, m(4), 0x800, info());
        expect(toNumber(t.fpu.st(0))).toBe(neg ? -Number(n) : Number(n));
        t.fpu.exec(0xdf, m(6), 0x900, info());
        expect(t.mem.subarray(0x900, 10)).toEqual(t.mem.subarray(0x800, 10));
      }),
      { numRuns: 200 },
    );
  });

  it("FBSTP of an out-of-range value stores the BCD indefinite and raises IE", () => {
    const t = setup();
    fld64(t, 1e18);
    t.fpu.exec(0xdf, m(6), 0x900, info());
    expect(Array.from(t.mem.subarray(0x900, 10))).toEqual([0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff]);
    expect(t.fpu.statusWord() & 1).toBe(1);
  });
});
