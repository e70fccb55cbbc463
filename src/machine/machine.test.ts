import { describe, expect, it } from "vitest";
import { fakeBzImage } from "./boot/fake-bzimage.js";
import { Machine, type MachineConfig, REALTIME_MAX_LAG_NS } from "./machine.js";

const MiB = 1024 * 1024;

/** A machine whose "kernel" is `code`, run at the 32-bit entry point with the virtual clock. */
function machineWith(code: number[], extra: Partial<MachineConfig> = {}): { m: Machine; out: () => string } {
  const bytes: number[] = [];
  const m = new Machine({
    memory: 64 * MiB,
    kernel: fakeBzImage({ code: Uint8Array.from(code) }),
    cmdline: "console=ttyS0",
    serial: { write: (b) => bytes.push(...b) },
    clock: "virtual",
    wallClock: () => Date.UTC(2026, 0, 1),
    ...extra,
  });
  return { m, out: () => String.fromCharCode(...bytes) };
}

// mov dx, 0x3f8; mov al, c; out dx, al (for each char)
const print = (s: string): number[] => [
  0x66,
  0xba,
  0xf8,
  0x03,
  ...[...s].flatMap((c) => [0xb0, c.charCodeAt(0), 0xee]),
];

describe("Machine", () => {
  it("enters the kernel as a boot loader does: ESI at the zero page, flat segments, interrupts off", () => {
    const { m } = machineWith([0xf4]);
    expect(m.cpu.eip).toBe(0x100000);
    expect(m.cpu.r32[6]).toBe(m.boot.zeroPage);
    expect(m.cpu.getEflags() & 0x200).toBe(0);
    expect(m.cpu.segSel[1]).toBe(0x10);
  });

  it("prints on COM1 and powers off through ACPI PM1a_CNT (SLP_TYP 5 | SLP_EN)", async () => {
    // mov dx, 0x604; mov ax, 0x3400; out dx, ax; hlt
    const { m, out } = machineWith([
      ...print("OK\n"),
      0x66,
      0xba,
      0x04,
      0x06,
      0x66,
      0xb8,
      0x00,
      0x34,
      0x66,
      0xef,
      0xf4,
    ]);
    expect(await m.run()).toEqual({ kind: "poweroff" });
    expect(out()).toBe("OK\n");
  });

  it("stops when the CPU halts with interrupts disabled", async () => {
    const { m, out } = machineWith([...print("bye"), 0xfa, 0xf4]);
    const r = await m.run();
    expect(r.kind).toBe("halted");
    expect(out()).toBe("bye");
  });

  it("reports a reset through port 0xCF9 with its cause", async () => {
    // mov dx, 0xcf9; mov al, 6; out dx, al; jmp $
    const { m } = machineWith([0x66, 0xba, 0xf9, 0x0c, 0xb0, 0x06, 0xee, 0xeb, 0xfe]);
    expect(await m.run()).toEqual({ kind: "reset", cause: "reset through port 0xCF9" });
  });

  it("stops at an instruction limit and counts instructions", async () => {
    const { m } = machineWith([0xeb, 0xfe]); // jmp $
    const r = await m.run({ maxInstructions: 100_000 });
    expect(r.kind).toBe("stopped");
    expect(m.cpu.instructions).toBe(100_000);
    // virtual clock: 1 ns per instruction
    expect(m.timers.now()).toBe(100_000);
  });

  it("realtime: guest time follows the instruction count at a rate that tracks the host, and drops long stalls", async () => {
    let host = 1000;
    let stalls = 0;
    const { m } = machineWith([0xeb, 0xfe], {
      clock: "realtime",
      hostClock: () => (host += 0.5),
    });
    const r = await m.run({
      yieldToHost: async () => {
        host += 100; // the host ran something else for 100 ms
        if (++stalls === 5) m.requestStop({ kind: "stopped", detail: "test" });
      },
      maxInstructions: 50_000_000,
    });
    expect(r).toEqual({ kind: "stopped", detail: "test" });
    // each 100 ms stall counted at most REALTIME_MAX_LAG_NS of guest time
    const guestMs = m.timers.now() / 1e6;
    const hostMs = host - 1000;
    expect(guestMs).toBeGreaterThan(0);
    expect(guestMs).toBeLessThanOrEqual(hostMs - 5 * (100 - REALTIME_MAX_LAG_NS / 1e6));
    // time is a function of the instruction count inside a slice: a host clock jump is not seen
    const t0 = m.timers.now();
    host += 10_000;
    expect(m.timers.now()).toBe(t0);
  });

  it("refuses a memory size outside 16 MiB to 3 GiB", () => {
    expect(() => machineWith([0xf4], { memory: 8 * MiB })).toThrow(/16 MiB/);
  });
});
