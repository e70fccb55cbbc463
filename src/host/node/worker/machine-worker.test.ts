import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../common/errors.js";
import { fakeBzImage } from "../../../machine/boot/fake-bzimage.js";
import { MachineWorker } from "./machine-worker.js";
import { MachineWorkerError, type WorkerMachineSpec } from "./protocol.js";

const MiB = 1024 * 1024;

// mov dx, 0x3f8; then mov al, c; out dx, al for each character
const print = (s: string): number[] => [
  0x66,
  0xba,
  0xf8,
  0x03,
  ...[...s].flatMap((c) => [0xb0, c.charCodeAt(0), 0xee]),
];
// mov dx, 0x604; mov ax, 0x3400; out dx, ax; hlt (ACPI PM1a_CNT: SLP_TYP 5 | SLP_EN)
const POWEROFF = [0x66, 0xba, 0x04, 0x06, 0x66, 0xb8, 0x00, 0x34, 0x66, 0xef, 0xf4];
/**
 * Polls COM1's line status and echoes every byte it receives; a 'q' powers off.
 * loop: mov dx,0x3fd; in al,dx; test al,1; jz loop; mov dx,0x3f8; in al,dx; out dx,al;
 *       cmp al,'q'; jne loop
 */
const ECHO = [
  0x66, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x01, 0x74, 0xf7, 0x66, 0xba, 0xf8, 0x03, 0xec, 0xee, 0x3c, 0x71, 0x75,
  0xed,
];

function spec(code: number[], extra: Partial<WorkerMachineSpec> = {}): WorkerMachineSpec {
  return {
    kernel: fakeBzImage({ code: Uint8Array.from(code) }),
    cmdline: "console=ttyS0",
    memory: 32 * MiB,
    clock: "virtual",
    wallClock: Date.UTC(2026, 0, 1),
    ...extra,
  };
}

describe("MachineWorker", () => {
  it("runs a machine in a worker: serial out, serial in without loss, power-off", async () => {
    const chunks: Uint8Array[] = [];
    const vm = await MachineWorker.start(spec([...print("hello\n"), ...ECHO, ...POWEROFF]), {
      onSerial: (b) => chunks.push(b),
    });
    // far more than the UART's 16-byte FIFO: the worker holds the rest until it has room
    const text = Array.from({ length: 3000 }, (_, i) => String.fromCharCode(0x41 + (i % 26))).join("");
    vm.serialWrite(text.slice(0, 1000));
    vm.serialWrite(new TextEncoder().encode(text.slice(1000)));
    vm.serialWrite("q");
    expect(await vm.finished).toEqual({ kind: "poweroff" });
    const out = Buffer.concat(chunks).toString("latin1");
    expect(out).toBe(`hello\n${text}q`);
    const st = await vm.status();
    expect(st.state).toBe("stopped");
    expect(st.instructions).toBeGreaterThan(3000);
    // after the end: input is ignored, stop returns the first reason
    vm.serialWrite("x");
    expect(await vm.stop()).toEqual({ kind: "poweroff" });
  });

  it("reports its status while running and stops on request", async () => {
    const vm = await MachineWorker.start(spec([0xeb, 0xfe])); // jmp $
    let st = await vm.status();
    expect(st.state).toBe("running");
    const first = st.instructions;
    await new Promise((r) => setTimeout(r, 50));
    st = await vm.status();
    expect(st.instructions).toBeGreaterThan(first);
    expect(st.guestTimeNs).toBe(st.instructions); // virtual clock, 1 ns per instruction
    expect(await vm.stop("test over")).toEqual({ kind: "stopped", detail: "test over" });
    expect((await vm.status()).state).toBe("stopped");
  });

  it("ends with the machine's own stop reason (halted with interrupts off)", async () => {
    const vm = await MachineWorker.start(spec([...print("bye"), 0xfa, 0xf4]));
    const r = await vm.finished;
    expect(r.kind).toBe("halted");
  });

  it("serves a control socket from the worker (status, quit)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "virtkit-worker-"));
    try {
      const path = join(dir, "control.sock");
      const vm = await MachineWorker.start(spec([0xeb, 0xfe], { control: path }));
      const sock = createConnection(path);
      sock.setEncoding("utf8");
      const lines: string[] = [];
      let buf = "";
      sock.on("data", (d: string) => {
        buf += d;
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          lines.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
      sock.write('{"cmd":"status"}\n{"cmd":"quit"}\n');
      expect(await vm.finished).toEqual({ kind: "stopped", detail: "quit through the control socket" });
      for (let i = 0; i < 100 && lines.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      sock.destroy();
      const status = JSON.parse(lines[0]!) as { ok: boolean; instructions: number };
      expect(status.ok).toBe(true);
      expect(status.instructions).toBeGreaterThan(0);
      expect(JSON.parse(lines[1]!)).toEqual({ ok: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stops at maxInstructions", async () => {
    const vm = await MachineWorker.start(spec([0xeb, 0xfe], { maxInstructions: 10_000 }));
    expect(await vm.finished).toEqual({ kind: "stopped", detail: "instruction limit 10000 reached" });
    expect((await vm.status()).instructions).toBe(10_000);
  });

  it("rejects a bad spec with a ConfigError naming the problem", async () => {
    await expect(MachineWorker.start({ kernel: "/nonexistent/bzImage", cmdline: "" })).rejects.toThrow(
      new ConfigError("kernel /nonexistent/bzImage: no such file"),
    );
    await expect(MachineWorker.start(spec([0xf4], { memory: 5 }))).rejects.toThrow(/memory must be from 16M/);
    await expect(
      MachineWorker.start(
        spec([0xf4], {
          devices: { disks: [], nets: [], consoles: [{ kind: "stdio" }], balloon: false, rng: false },
        }),
      ),
    ).rejects.toThrow(/console on stdio cannot run in a worker/);
    await expect(
      MachineWorker.start(
        spec([0xf4], {
          devices: {
            disks: [{ path: "/nonexistent/disk.img", readonly: false, overlay: false }],
            nets: [],
            consoles: [],
            balloon: false,
            rng: false,
          },
        }),
      ),
    ).rejects.toThrow(ConfigError);
  });

  it("rejects a kernel that is not a bzImage with the loader's error", async () => {
    const err = await MachineWorker.start(
      { kernel: new Uint8Array(4096), cmdline: "" },
      {
        name: "junk",
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MachineWorkerError);
    expect((err as MachineWorkerError).message).toMatch(/^machine junk: BootImageError: /);
    expect((err as MachineWorkerError).remoteStack).toMatch(/BootImageError/);
  });
});
