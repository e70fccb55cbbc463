import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { VirtioConsole } from "../../../devices/console/console.js";
import { ConsoleTestDriver } from "../../../devices/console/driver.js";
import { createPciTestRig } from "../../../testing.js";
import { fileConsole, SocketServerConsole, StdioConsole, StreamConsole } from "./stream.js";

const dir = mkdtempSync(join(tmpdir(), "virtkit-console-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const turn = () => new Promise<void>((r) => setImmediate(r));

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise<void>((r) => (i < 50 ? setImmediate(r) : setTimeout(r, 2)));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("StreamConsole", () => {
  it("carries random byte streams both ways through the device exactly and in order, with back-pressure", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 8, max: 512 }),
        async (inChunks, outChunks, bufSize) => {
          const hostIn = new PassThrough();
          const hostOut = new PassThrough();
          const backend = new StreamConsole(hostIn, hostOut);
          const device = new VirtioConsole({ ports: [{ backend }], inputLimit: 1024 });
          const drv = new ConsoleTestDriver(createPciTestRig(device).driver, {
            rxBuffers: 2,
            rxBufferSize: () => bufSize,
          });
          let seq = 0;
          const sentIn: number[] = [];
          for (const n of inChunks) {
            const c = Uint8Array.from({ length: n }, () => seq++ & 0xff);
            sentIn.push(...c);
            hostIn.write(c);
          }
          const sentOut: number[] = [];
          for (const n of outChunks) {
            const c = Uint8Array.from({ length: n }, () => (seq++ * 7) & 0xff);
            sentOut.push(...c);
            drv.write(0, c);
          }
          const got: number[] = [];
          hostOut.on("data", (d: Uint8Array) => got.push(...d));
          let sawPause = false;
          await until(() => {
            sawPause ||= backend.inputPaused;
            drv.poll();
            return drv.received(0).length === sentIn.length && got.length === sentOut.length;
          }, "both streams");
          expect([...drv.received(0)]).toEqual(sentIn);
          expect(got).toEqual(sentOut);
          expect(backend.inputPaused).toBe(false);
          // A chunk larger than the bound plus the 2 posted buffers must have paused the stream.
          if (Math.max(...inChunks) > 1024 + 2 * bufSize) expect(sawPause).toBe(true);
        },
      ),
      { numRuns: 20 },
    );
  });

  it("pauses the Readable when the port's buffer passes its bound and resumes it when the guest catches up", async () => {
    const hostIn = new PassThrough();
    const backend = new StreamConsole(hostIn, null);
    const device = new VirtioConsole({ ports: [{ backend }], inputLimit: 100 });
    const rig = createPciTestRig(device);
    hostIn.write(new Uint8Array(500));
    await turn();
    expect(backend.inputPaused).toBe(true);
    expect(hostIn.isPaused()).toBe(true);
    const drv = new ConsoleTestDriver(rig.driver, { rxBuffers: 4, rxBufferSize: () => 200 });
    await until(() => {
      drv.poll();
      return drv.received(0).length === 500;
    }, "input");
    expect(backend.inputPaused).toBe(false);
    expect(hostIn.isPaused()).toBe(false);
    expect(backend.discardedOutput).toBe(0);
  });

  it("a Writable past its high-water mark stops guest output until it drains", async () => {
    const hostOut = new PassThrough({ highWaterMark: 16 });
    const backend = new StreamConsole(null, hostOut, { outputHighWater: 16 });
    const device = new VirtioConsole({ ports: [{ backend }] });
    const drv = new ConsoleTestDriver(createPciTestRig(device).driver);
    drv.write(0, new Uint8Array(40).fill(1));
    drv.write(0, new Uint8Array(40).fill(2));
    expect(hostOut.readableLength).toBe(40);
    const got: number[] = [];
    hostOut.on("data", (d: Uint8Array) => got.push(...d));
    await until(() => got.length === 80, "output after drain");
    expect(got.slice(40).every((x) => x === 2)).toBe(true);
  });
});

describe("SocketServerConsole", () => {
  for (const kind of ["tcp", "unix"] as const) {
    it(`${kind}: a client is the host end; connect/disconnect open and close the port for a multiport driver`, async () => {
      const backend = await SocketServerConsole.listen(
        kind === "tcp" ? { port: 0, host: "127.0.0.1" } : { path: join(dir, "console.sock") },
      );
      const device = new VirtioConsole({
        ports: [{ backend: new StreamConsole(null, null) }, { backend, name: "org.virtkit.sock" }],
      });
      const drv = new ConsoleTestDriver(createPciTestRig(device).driver);
      expect(drv.ports.get(1)!.hostOpen).toBe(false);
      drv.open(1);
      drv.write(1, new TextEncoder().encode("lost"));
      expect(backend.discardedOutput).toBe(4);
      const addr = backend.address();
      const client: Socket = typeof addr === "number" ? connect(addr, "127.0.0.1") : connect({ path: addr });
      const fromGuest: number[] = [];
      client.on("data", (d: Uint8Array) => fromGuest.push(...d));
      await until(() => backend.connected, "connection");
      drv.poll();
      expect(drv.ports.get(1)!.hostOpen).toBe(true);
      client.write("ping from host");
      drv.write(1, new TextEncoder().encode("pong from guest"));
      await until(() => {
        drv.poll();
        return drv.received(1).length === 14 && fromGuest.length === 15;
      }, "socket traffic");
      expect(new TextDecoder().decode(drv.received(1))).toBe("ping from host");
      expect(new TextDecoder().decode(Uint8Array.from(fromGuest))).toBe("pong from guest");
      client.destroy();
      await until(() => !backend.connected, "disconnect");
      drv.poll();
      expect(drv.ports.get(1)!.hostOpen).toBe(false);
      await backend.close();
    });
  }

  it("a port that cannot listen is a ConfigError naming the address", async () => {
    const p = join(dir, "not-a-dir", "x.sock");
    await expect(SocketServerConsole.listen({ path: p })).rejects.toThrow(/cannot listen/);
  });
});

describe("fileConsole and StdioConsole", () => {
  it("files: guest output appended to one, host input read from another", async () => {
    const outPath = join(dir, "out.log");
    const inPath = join(dir, "in.txt");
    writeFileSync(outPath, "previous\n");
    writeFileSync(inPath, "echo hi\n");
    const backend = fileConsole(outPath, inPath);
    const device = new VirtioConsole({ ports: [{ backend }] });
    const drv = new ConsoleTestDriver(createPciTestRig(device).driver);
    drv.write(0, new TextEncoder().encode("guest says hi\n"));
    await until(() => {
      drv.poll();
      return drv.received(0).length === 8 && readFileSync(outPath, "utf8").length === 23;
    }, "file traffic");
    expect(new TextDecoder().decode(drv.received(0))).toBe("echo hi\n");
    expect(readFileSync(outPath, "utf8")).toBe("previous\nguest says hi\n");
  });

  it("stdio streams that are not terminals: no raw mode, no size, bytes pass", async () => {
    const stdin = new PassThrough() as unknown as NodeJS.ReadStream;
    const stdout = new PassThrough() as unknown as NodeJS.WriteStream;
    const backend = new StdioConsole({ stdin, stdout });
    expect(backend.size).toBeNull();
    const device = new VirtioConsole({ ports: [{ backend }] });
    const drv = new ConsoleTestDriver(createPciTestRig(device).driver);
    (stdin as unknown as PassThrough).write("typed");
    drv.write(0, new TextEncoder().encode("shown"));
    const out: number[] = [];
    (stdout as unknown as PassThrough).on("data", (d: Uint8Array) => out.push(...d));
    await until(() => {
      drv.poll();
      return drv.received(0).length === 5 && out.length === 5;
    }, "stdio traffic");
    expect(new TextDecoder().decode(drv.received(0))).toBe("typed");
    backend.close();
  });
});
