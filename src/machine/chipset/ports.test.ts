import { describe, expect, it } from "vitest";
import { IoBus } from "../io-bus.js";
import { I8042 } from "./i8042.js";
import { PortA, PostPort } from "./ports.js";

describe("port 0x80 and port 0x92", () => {
  it("port 0x80 keeps the last POST code and counts writes", () => {
    const io = new IoBus();
    const codes: number[] = [];
    const post = new PostPort({ onCode: (c) => codes.push(c) });
    post.register(io);
    io.write(0x80, 1, 0x12);
    io.write(0x80, 1, 0x1ab);
    expect(io.read(0x80, 1)).toBe(0xab);
    expect(post.lastCode).toBe(0xab);
    expect(post.writes).toBe(2);
    expect(codes).toEqual([0x12, 0xab]);
    const st = post.save();
    const p2 = new PostPort();
    p2.restore(st);
    expect(p2.lastCode).toBe(0xab);
    expect(() => p2.restore({ last: 256, writes: 0 })).toThrow(/post.last/);
  });

  it("port 0x92 gates A20 with bit 1 and pulses reset with bit 0", () => {
    const io = new IoBus();
    let resets = 0;
    const a20: boolean[] = [];
    const pa = new PortA({ onReset: () => resets++, onA20: (e) => a20.push(e) });
    pa.register(io);
    expect(io.read(0x92, 1)).toBe(0x02);
    io.write(0x92, 1, 0x00);
    expect(pa.a20).toBe(false);
    expect(io.read(0x92, 1)).toBe(0x00);
    io.write(0x92, 1, 0x03);
    expect(resets).toBe(1);
    expect(a20).toEqual([false, true]);
    expect(io.read(0x92, 1)).toBe(0x02); // reset bit reads back 0
  });
});

function setupKbc() {
  const io = new IoBus();
  const kbd: boolean[] = [];
  const aux: boolean[] = [];
  let resets = 0;
  const kbc = new I8042({
    kbdIrq: { set: (l) => kbd.push(l) },
    auxIrq: { set: (l) => aux.push(l) },
    onReset: () => resets++,
  });
  kbc.register(io);
  /** i8042_command: command, parameters out, replies in; undefined on a (would-be) timeout. */
  const command = (cmd: number, params: number[] = [], replies = 0): number[] | undefined => {
    expect(io.read(0x64, 1) & 0x02).toBe(0); // input buffer never busy
    io.write(0x64, 1, cmd);
    for (const p of params) io.write(0x60, 1, p);
    const got: number[] = [];
    for (let i = 0; i < replies; i++) {
      if ((io.read(0x64, 1) & 0x01) === 0) return undefined;
      got.push(io.read(0x60, 1));
    }
    return got;
  };
  const flush = () => {
    let n = 0;
    while (io.read(0x64, 1) & 0x01 && n < 16) {
      io.read(0x60, 1);
      n++;
    }
    return n;
  };
  return { io, kbc, kbd, aux, command, flush, resets: () => resets };
}

describe("i8042 (no keyboard, no mouse)", () => {
  it("passes Linux's i8042 probe without a single timeout", () => {
    const { io, command, flush, aux, kbd } = setupKbc();
    // i8042_controller_check: the flush finds an empty controller
    expect(flush()).toBe(0);
    // i8042_controller_selftest
    expect(command(0xaa, [], 1)).toEqual([0x55]);
    expect(io.read(0x64, 1) & 0x04).toBe(0x04); // system flag
    // i8042_controller_init: stable CTR, keylock inactive, CTR written back
    const ctr0 = command(0x20, [], 1)![0]!;
    expect(command(0x20, [], 1)).toEqual([ctr0]);
    expect(io.read(0x64, 1) & 0x10).toBe(0x10);
    const ctr = (ctr0 | 0x10) & ~0x01;
    command(0x60, [ctr]);
    expect(command(0x20, [], 1)).toEqual([ctr]);
    // i8042_check_aux: loopback, toggle, IRQ delivery
    expect(command(0xd3, [0x5a], 1)).toEqual([0x5a]);
    command(0xa7);
    expect(command(0x20, [], 1)![0]! & 0x20).toBe(0x20);
    command(0xa8);
    expect(command(0x20, [], 1)![0]! & 0x20).toBe(0);
    command(0x60, [(ctr & ~0x20) | 0x02]); // i8042_enable_aux_port
    command(0xd3, [0xa5]);
    expect(aux).toEqual([true]);
    const str = io.read(0x64, 1);
    expect(str & 0x21).toBe(0x21);
    expect(io.read(0x60, 1)).toBe(0xa5);
    expect(aux).toEqual([true, false]);
    // i8042_set_mux_mode: the third byte comes back unchanged, so no multiplexer
    expect(command(0xd3, [0xf0], 1)).toEqual([0xf0]);
    expect(command(0xd3, [0x56], 1)).toEqual([0x56]);
    expect(command(0xd3, [0xa4], 1)).toEqual([0xa4]);
    // i8042_enable_kbd_port, then atkbd's GETID gets the no-device NAK with the timeout bit
    command(0x60, [(ctr & ~0x30) | 0x03]);
    // (controller replies raised IRQ 1 while the BIOS-default CTR had KBDINT set: drop those)
    kbd.length = 0;
    io.write(0x60, 1, 0xf2);
    expect(kbd).toEqual([true]);
    expect(io.read(0x64, 1) & 0x61).toBe(0x41);
    expect(io.read(0x60, 1)).toBe(0xfe);
    expect(kbd).toEqual([true, false]);
    // psmouse: a byte for the AUX device gets the same answer on the AUX side
    command(0xd4, [0xf2]);
    expect(io.read(0x64, 1) & 0x61).toBe(0x61);
    expect(io.read(0x60, 1)).toBe(0xfe);
  });

  it("0xFE and other pulse commands with bit 0 clear reset the machine; 0xFF does not", () => {
    const { io, resets } = setupKbc();
    io.write(0x64, 1, 0xff);
    expect(resets()).toBe(0);
    io.write(0x64, 1, 0xfe);
    expect(resets()).toBe(1);
    io.write(0x64, 1, 0xf0);
    expect(resets()).toBe(2);
  });

  it("output port: A20 commands and a reset through bit 0", () => {
    const io = new IoBus();
    const a20: boolean[] = [];
    let resets = 0;
    const kbc = new I8042({
      kbdIrq: { set: () => {} },
      auxIrq: { set: () => {} },
      onReset: () => resets++,
      onA20: (e) => a20.push(e),
    });
    kbc.register(io);
    io.write(0x64, 1, 0xd0);
    expect(io.read(0x60, 1) & 0x03).toBe(0x03);
    io.write(0x64, 1, 0xdd);
    io.write(0x64, 1, 0xdf);
    expect(a20).toEqual([false, true]);
    io.write(0x64, 1, 0xd1);
    io.write(0x60, 1, 0x02);
    expect(resets).toBe(1);
    io.write(0x64, 1, 0x01);
    expect(kbc.unknownCommands).toBe(1);
  });

  it("status bit 3 tells a command write from a data write; save/restore keeps the queue", () => {
    const { io, kbc, command } = setupKbc();
    command(0xd2, [0x11]);
    expect(io.read(0x64, 1) & 0x08).toBe(0);
    io.write(0x64, 1, 0xd2);
    expect(io.read(0x64, 1) & 0x08).toBe(0x08);
    io.write(0x60, 1, 0x22);
    const st = JSON.parse(JSON.stringify(kbc.save()));
    const b = setupKbc();
    b.kbc.restore(st);
    expect([b.io.read(0x60, 1), b.io.read(0x60, 1)]).toEqual([0x11, 0x22]);
    expect(b.io.read(0x64, 1) & 0x01).toBe(0);
    expect(() => b.kbc.restore({ ...st, out: "x" })).toThrow(/i8042.out/);
    kbc.reset();
    expect(io.read(0x64, 1) & 0x01).toBe(0);
  });
});
