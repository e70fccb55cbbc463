import fc from "fast-check";
import { MessageChannel } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../common/errors.js";
import { bridge, type FrameSink } from "../../../devices/net/backend.js";
import { completeChecksum, type PartialChecksum } from "../../../devices/net/frame.js";
import { NetSwitch } from "../../../devices/net/switch.js";
import { portBackend } from "./port-backend.js";

interface Got {
  frame: number[];
  csum: PartialChecksum | null;
}

function station(wantsPartial: boolean): { sink: FrameSink; got: Got[] } {
  const got: Got[] = [];
  return {
    got,
    sink: {
      acceptsPartialChecksum: wantsPartial,
      deliver: (frame, csum) => {
        got.push({ frame: [...frame], csum });
        return true;
      },
    },
  };
}

/** Waits until `cond` holds (messages cross on the event loop). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}

const frameOf = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

describe("portBackend: a network link over a MessagePort", () => {
  it("carries frames both ways, in order, and leaves the sender's buffer intact", async () => {
    const ch = new MessageChannel();
    const [a, b] = [portBackend(ch.port1), portBackend(ch.port2)];
    const sa = station(true);
    const sb = station(true);
    const ta = a.connect(sa.sink);
    const tb = b.connect(sb.sink);
    const f1 = frameOf(60, 1);
    expect(ta.deliver(f1, null)).toBe(true);
    expect(ta.deliver(frameOf(1514, 2), null)).toBe(true);
    expect(tb.deliver(frameOf(64, 3), { start: 34, offset: 6 })).toBe(true);
    expect(f1.length).toBe(60); // copied, not transferred away
    await until(() => sb.got.length === 2 && sa.got.length === 1);
    expect(sb.got.map((g) => [g.frame.length, g.frame[0], g.csum])).toEqual([
      [60, 1, null],
      [1514, 2, null],
    ]);
    expect(sa.got[0]!.csum).toEqual({ start: 34, offset: 6 });
    expect(a.counters).toMatchObject({ sent: 2, received: 1, dropped: 0 });
    a.close();
    b.close();
  });

  it("completes a partial checksum at the receiving end when its station wants whole frames", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 20, maxLength: 200 }),
        fc.nat(),
        fc.nat(),
        async (bytes, s, o) => {
          const start = s % (bytes.length - 2);
          const offset = o % (bytes.length - start - 1);
          const csum = { start, offset };
          const ch = new MessageChannel();
          const [a, b] = [portBackend(ch.port1), portBackend(ch.port2)];
          const sb = station(false);
          const ta = a.connect(station(true).sink);
          b.connect(sb.sink);
          ta.deliver(bytes, csum);
          await until(() => sb.got.length === 1);
          const want = bytes.slice();
          completeChecksum(want, csum);
          expect(sb.got[0]).toEqual({ frame: [...want], csum: null });
          a.close();
          b.close();
        },
      ),
      { numRuns: 30 },
    );
  });

  it("drops what arrives for an unplugged station, counts junk, and refuses a second station", async () => {
    const ch = new MessageChannel();
    const [a, b] = [portBackend(ch.port1), portBackend(ch.port2)];
    const ta = a.connect(station(true).sink);
    expect(() => a.connect(station(true).sink)).toThrow(ConfigError);
    const sb = station(true);
    b.connect(sb.sink);
    b.disconnect();
    ta.deliver(frameOf(60, 9), null);
    ch.port1.postMessage({ nonsense: true });
    await until(() => b.counters.dropped === 1 && b.counters.malformed === 1);
    expect(sb.got).toEqual([]);
    a.close();
    expect(ta.deliver(frameOf(60, 9), null)).toBe(false);
    b.close();
  });

  it("bridged to a NetSwitch, links two far stations through the switch", async () => {
    const hub = new NetSwitch();
    const far: { link: ReturnType<typeof portBackend>; st: ReturnType<typeof station> }[] = [];
    const near: (() => void)[] = [];
    for (let i = 0; i < 2; i++) {
      const ch = new MessageChannel();
      const nearEnd = portBackend(ch.port1);
      near.push(bridge(hub.port(`p${i}`), nearEnd), () => nearEnd.close());
      const link = portBackend(ch.port2);
      far.push({ link, st: station(true) });
    }
    const tx0 = far[0]!.link.connect(far[0]!.st.sink);
    const tx1 = far[1]!.link.connect(far[1]!.st.sink);
    // 0 -> broadcast (flooded), then 1 -> 0's MAC (learned, forwarded)
    const mac0 = [0x52, 0x54, 0, 0, 0, 1];
    const mac1 = [0x52, 0x54, 0, 0, 0, 2];
    const bcast = Uint8Array.from([...Array(6).fill(0xff), ...mac0, 0x08, 0x06, ...Array(46).fill(0)]);
    const reply = Uint8Array.from([...mac0, ...mac1, 0x08, 0x06, ...Array(46).fill(1)]);
    tx0.deliver(bcast, null);
    await until(() => far[1]!.st.got.length === 1);
    tx1.deliver(reply, null);
    await until(() => far[0]!.st.got.length === 1);
    expect(far[1]!.st.got[0]!.frame).toEqual([...bcast]);
    expect(far[0]!.st.got[0]!.frame).toEqual([...reply]);
    expect(hub.lookup(Uint8Array.from(mac0))).toBe("p0");
    expect(hub.counters).toMatchObject({ flooded: 1, forwarded: 1 });
    for (const u of near) u();
    for (const f of far) f.link.close();
  });
});
