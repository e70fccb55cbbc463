/**
 * Protected-mode test programs (src/cpu/protected/tests/*.S) assembled at test time with the
 * system's GNU as/ld/objcopy, run from real mode on a bare CPU with the protected-mode and
 * paging units. Every expected exception is declared in the program (FAULT/TRAP/DEMAND
 * macros, see prelude.S) and logged by its handler; this file checks the log and the results
 * each program stores at RES.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FlatMemory } from "../../src/common/memory.js";
import { type AccessSize, type IoHandler, IoBus } from "../../src/machine/io-bus.js";
import type { InterruptController } from "../../src/machine/irq.js";
import { MemoryBus } from "../../src/machine/memory-bus.js";
import { Cpu } from "../../src/cpu/cpu.js";
import { ExitReason } from "../../src/cpu/fault.js";
import { attachProtectedMode } from "../../src/cpu/protected/unit.js";

const SRC = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cpu", "protected", "tests");
const RES = 0x4000;
const DONE = 0x4ffc;
const LOG_COUNT = 0x4ff0;
const LOG = 0x5000;
const ANYCR2 = 0xffff_fffe;

const toolsPresent = ["as", "ld", "objcopy", "nm"].every(
  (t) => spawnSync(t, ["--version"], { encoding: "utf8" }).status === 0,
);
if (!toolsPresent)
  console.warn("protected-programs: GNU as/ld/objcopy/nm not found; the assembled programs are skipped");

const work = toolsPresent ? mkdtempSync(join(tmpdir(), "virtkit-pm-")) : "";
afterAll(() => {
  if (work !== "") rmSync(work, { recursive: true, force: true });
});

interface Program {
  image: Uint8Array;
  symbols: { name: string; addr: number }[];
}

function build(name: string, origin = 0x8000): Program {
  const o = join(work, `${name}.o`);
  const elf = join(work, `${name}.elf`);
  const bin = join(work, `${name}.bin`);
  const run = (cmd: string, args: string[]): string => {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed:\n${r.stderr}`);
    return r.stdout;
  };
  run("as", ["--32", "-I", SRC, "-o", o, join(SRC, `${name}.S`)]);
  run("ld", [
    "-m",
    "elf_i386",
    "-N",
    `-Ttext=0x${origin.toString(16)}`,
    "--no-warn-rwx-segments",
    "-o",
    elf,
    o,
  ]);
  run("objcopy", ["-O", "binary", elf, bin]);
  const symbols = run("nm", [elf])
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length === 3 && /^[tTdDbB]$/.test(p[1]!))
    .map((p) => ({ name: p[2]!, addr: Number.parseInt(p[0]!, 16) }))
    .sort((a, b) => a.addr - b.addr);
  return { image: new Uint8Array(readFileSync(bin)), symbols };
}

function where(p: Program, addr: number): string {
  let best = "?";
  for (const s of p.symbols) if (s.addr <= addr) best = `${s.name}+0x${(addr - s.addr).toString(16)}`;
  return `0x${addr.toString(16)} (${best})`;
}

interface Run {
  cpu: Cpu;
  ram: FlatMemory;
  exit: ExitReason;
}

function execute(p: Program, prepare?: (cpu: Cpu, io: IoBus) => void, budget = 2_000_000): Run {
  const ram = new FlatMemory(0x80_0000);
  const io = new IoBus();
  const cpu = new Cpu({ memory: new MemoryBus(ram), io });
  attachProtectedMode(cpu);
  prepare?.(cpu, io);
  ram.u8.set(p.image, 0x8000);
  cpu.setRealMode(0, 0x8000);
  const exit = cpu.run(budget);
  return { cpu, ram, exit };
}

/** The fault log as readable lines; every line must say "ok". */
function faultLog(p: Program, r: Run): string[] {
  const lines: string[] = [];
  const n = r.ram.readU32(LOG_COUNT);
  for (let i = 0; i < n; i++) {
    const e = LOG + 32 * i;
    const [vec, code, cr2, eip, xvec, xcode, xeip, xcr2] = [0, 4, 8, 12, 16, 20, 24, 28].map((k) =>
      r.ram.readU32(e + k),
    ) as [number, number, number, number, number, number, number, number];
    const ok = vec === xvec && code === xcode && eip === xeip && (xcr2 === ANYCR2 || cr2 === xcr2);
    const hx = (v: number) => `0x${v.toString(16)}`;
    lines.push(
      ok
        ? `ok ${hx(vec)}(${hx(code)}) at ${where(p, eip)}`
        : `MISMATCH at ${where(p, xeip)}: got vector ${hx(vec)} code ${hx(code)} eip ${hx(eip)} cr2 ${hx(cr2)}, ` +
            `expected ${hx(xvec)} code ${hx(xcode)} cr2 ${xcr2 === ANYCR2 ? "any" : hx(xcr2)}`,
    );
  }
  return lines;
}

/** Each FAULT/FAULTPF/FAULTAT/TRAP/DEMAND line of a program runs once: that many log entries. */
function declaredFaults(name: string): number {
  return readFileSync(join(SRC, `${name}.S`), "utf8")
    .split("\n")
    .filter((l) => /^\s+(FAULT|FAULTPF|FAULTAT|TRAP|DEMAND)\s/.test(l)).length;
}

function expectClean(p: Program, r: Run, faults: number): void {
  const log = faultLog(p, r);
  expect(
    log.filter((l) => !l.startsWith("ok")),
    log.join("\n"),
  ).toEqual([]);
  expect(r.exit, `stopped at ${where(p, r.cpu.eip)}`).toBe(ExitReason.HLT);
  expect(r.ram.readU32(DONE).toString(16), `stopped at ${where(p, r.cpu.eip)}\n${log.join("\n")}`).toBe(
    "600d",
  );
  expect(log.length, log.join("\n")).toBe(faults);
}

/** Port 0x80: raise the written vector as an external interrupt; port 0x81: raise NMI. */
class TestInterrupts implements InterruptController, IoHandler {
  pending = -1;
  constructor(private readonly cpu: Cpu) {}
  hasInterrupt(): boolean {
    return this.pending >= 0;
  }
  acknowledge(): number {
    const v = this.pending;
    this.pending = -1;
    return v;
  }
  ioRead(_port: number, _size: AccessSize): number {
    return 0xff;
  }
  ioWrite(port: number, _size: AccessSize, value: number): void {
    if (port === 0x80) {
      this.pending = value & 0xff;
      this.cpu.notifyInterrupt();
    } else this.cpu.nmi();
  }
}

describe.skipIf(!toolsPresent)("protected-mode programs (assembled with GNU as)", () => {
  it("segments: loads, limits, access rights, IDT faults, far transfers at CPL 0, LAR/LSL/VERx/ARPL, LTR/LLDT", () => {
    const p = build("segments");
    const r = execute(p);
    expectClean(p, r, declaredFaults("segments"));
    const u32 = (o: number) => r.ram.readU32(RES + o);
    const u8 = (o: number) => r.ram.u8[RES + o];
    expect(u32(0x00)).toBe(0x48); // CS inside the conforming segment
    expect(u32(0x0c)).toBe(u32(0x08)); // RET 4 dropped the pushed word
    expect(r.ram.readU32(RES + 0x148)).toBe(0x08); // same-level gate call: CS pushed
    expect(r.ram.readU32(RES + 0x14c)).toBe(0x5a5a); // ... and no parameters copied (caller's word)
    expect(u32(0x04)).toBe(0x10); // ES loaded by the target survives a same-level return
    expect(u32(0x10).toString(16)).toBe("c09b00"); // LAR of the (accessed) code segment
    expect(u32(0x14)).toBe(0xfff);
    expect(u32(0x18)).toBe(0xffff_ffff);
    expect([u8(0x20), u32(0x1c)]).toEqual([0, 0x77]);
    expect([u8(0x21), u8(0x22), u8(0x23), u8(0x24), u8(0x25)]).toEqual([0, 1, 0, 1, 0]);
    expect([u8(0x26), r.ram.readU16(RES + 0x28), u8(0x27)]).toEqual([1, 0x13, 0]);
    expect(u32(0x30)).toBe(0x28); // STR
    expect(u8(0x34)).toBe(0x8b); // the TSS is busy after LTR
    expect(u32(0x38).toString(16)).toBe("8b00");
    expect(u32(0x3c)).toBe(0x2068);
    expect(r.ram.readU16(RES + 0x40)).toBe(0x68); // SLDT
    expect([u8(0x44), u8(0x45)]).toEqual([0x93, 0x91]); // accessed bits written back
    expect(u32(0x48) & 0x8000_0011).toBe(0x11); // CR0: PE, ET; PG clear
    expect(r.ram.readU16(RES + 0x4e) & 1).toBe(1); // PE survives LMSW
  });

  it("ring3: IRET to CPL 3, INT 0x80 on the TSS stack, gates, CPL 3 restrictions, call gate with RET 4, SYSENTER/SYSEXIT", () => {
    const p = build("ring3");
    const r = execute(p);
    expectClean(p, r, declaredFaults("ring3"));
    const u32 = (o: number) => r.ram.readU32(RES + o);
    const u16 = (o: number) => r.ram.readU16(RES + o);
    const sym = (n: string) => p.symbols.find((s) => s.name === n)!.addr;
    expect(u32(0x00)).toBe(sym("sysenter_target"));
    expect(u16(0x04)).toBe(0x1b);
    // INT 0x80 from CPL 3: the frame sits on ESP0 (0x70000): EIP CS EFLAGS ESP SS.
    expect(u32(0x100).toString(16)).toBe((0x70000 - 20).toString(16));
    expect(u32(0x108)).toBe(0x1b);
    expect(u32(0x10c) & 0x200).toBe(0x200); // IF was set in ring 3
    expect(u32(0x110)).toBe(0x60000);
    expect(u32(0x114)).toBe(0x23);
    expect(u32(0x118)).toBe(0x08);
    expect(u32(0x11c) & 0x200).toBe(0); // interrupt gate: IF clear inside
    expect(u32(0x124) & 0x200).toBe(0x200); // trap gate: IF kept
    expect(u32(0x08)).toBe(0x60000);
    expect(u16(0x0c)).toBe(0x23);
    expect(u32(0x10) & 0x3200).toBe(0x200); // POPF at CPL 3: IOPL stays 0, IF stays 1
    // Call gate: the parameter is copied to the inner stack, the caller's SS:ESP saved.
    expect(u32(0x140).toString(16)).toBe((0x70000 - 20).toString(16));
    expect(u32(0x148)).toBe(0x1b);
    expect(u32(0x14c)).toBe(0xabcd);
    expect(u32(0x150)).toBe(u32(0x14) - 4);
    expect(u32(0x154)).toBe(0x23);
    expect(u32(0x158)).toBe(0x08);
    expect(u32(0x18)).toBe(u32(0x14));
    expect([u16(0x1c), u16(0x1e)]).toEqual([0, 0x23]);
    // SYSENTER: flat CPL 0 at SYSENTER_CS/ESP/EIP, IF cleared; SYSEXIT: CS+16|3, SS+24|3, ESP = ECX.
    expect([u16(0x30), u16(0x32), u32(0x34)]).toEqual([0x08, 0x10, 0x68000]);
    expect(u32(0x38) & 0x200).toBe(0);
    expect([u16(0x20), u16(0x22), u32(0x24)]).toEqual([0x1b, 0x23, u32(0x18)]);
  });

  it("paging: 4 KiB/4 MiB/global pages, #PF rules with CR2, WP, A/D, INVLPG, CR3/CR4 flushes, demand paging, copy-on-write", () => {
    const p = build("paging");
    const r = execute(p);
    expectClean(p, r, declaredFaults("paging"));
    const u32 = (o: number) => r.ram.readU32(RES + o);
    expect(u32(0x00)).toBe(0x12345678); // through the 4 MiB alias
    expect(u32(0x04) & 0x60).toBe(0x60); // A and D in the 4 MiB PDE written through
    expect(u32(0x08) & 0x60).toBe(0x20); // the read-only alias: A only
    expect(r.ram.readU16(RES + 0x0c)).toBe(0); // the crossing write left the first page alone
    expect(u32(0x10) & 0x60).toBe(0x20);
    expect(u32(0x14) & 0x60).toBe(0x60);
    expect([u32(0x20), u32(0x24)]).toEqual([0xa0, 0xa1]); // stale until INVLPG
    expect([u32(0x30), u32(0x34), u32(0x38)]).toEqual([0xb0, 0xa0, 0xb1]);
    expect(u32(0x40)).toBe(0x77); // demand-mapped frame written
    expect(u32(0x48)).toBe(0x12345678);
    expect([u32(0x4c), u32(0x50)]).toEqual([0x5151, 0x99]);
    expect(r.ram.readU32(0x51000)).toBe(0x5151); // the original frame is untouched
    expect(r.ram.readU32(0x306000)).toBe(0x99);
  });

  it("interrupts: IF masking, STI shadow, NMI, #DF classification, an interrupt from ring 3 on the TSS stack", () => {
    const p = build("interrupts");
    const r = execute(p, (cpu, io) => {
      const dev = new TestInterrupts(cpu);
      cpu.intc = dev;
      io.register(0x80, 2, dev, "test interrupts");
    });
    expectClean(p, r, declaredFaults("interrupts"));
    const u32 = (o: number) => r.ram.readU32(RES + o);
    expect(u32(0x00)).toBe(0); // IF = 0 held the interrupt
    expect(u32(0x04)).toBe(1); // one instruction after STI ran first
    expect(u32(0x08)).toBe(1);
    expect(u32(0x200)).toBe(2); // and the one from ring 3
    expect(u32(0x208)).toBe(0x1b);
    expect(u32(0x20c).toString(16)).toBe((0x70000 - 20).toString(16));
  });
});

describe.skipIf(!toolsPresent)("16-bit protected mode", () => {
  it("legacy16: 16-bit interrupt/trap gates and IRETW, far CALL into 16-bit code, 16-bit call gate with RETW 2", () => {
    const p = build("legacy16");
    const r = execute(p);
    expectClean(p, r, declaredFaults("legacy16"));
    const u32 = (o: number) => r.ram.readU32(RES + o);
    const u16 = (o: number) => r.ram.readU16(RES + o);
    const sym = (n: string) => p.symbols.find((s) => s.name === n)!.addr;
    expect(u32(0x00) - u32(0x10)).toBe(6); // FLAGS, CS, IP as words
    expect(u32(0x04)).toBe(u32(0x00));
    expect(u32(0x18)).toBe(0x08);
    expect(u32(0x1c)).toBe(0);
    expect(u32(0x14)).toBe(sym("after85")); // the pushed IP
    expect(u16(0x20)).toBe(0x90);
    expect(u32(0x24) - u32(0x30)).toBe(6); // parameter word + CS + IP
    expect([u16(0x34), u16(0x36), u16(0x38)]).toEqual([sym("after_gate16"), 0x90, 0x1234]);
    expect(u16(0x28)).toBe(0x90);
    expect(u32(0x08)).toBe(u32(0x00));
  });
});

// ---- the same programs under QEMU (TCG), as a check of the expectations themselves ----------------

const qemuPresent =
  toolsPresent && spawnSync("qemu-system-i386", ["--version"], { encoding: "utf8" }).status === 0;
if (toolsPresent && !qemuPresent)
  console.warn("protected-programs: qemu-system-i386 not found; the QEMU comparison is skipped");

/** Boots the program from a disk image under QEMU and returns physical memory 0x4000-0x5fff. */
async function runUnderQemu(name: string, p: Program): Promise<Uint8Array> {
  const boot = build("boot", 0x7c00).image;
  const img = join(work, `${name}.img`);
  const mem = join(work, `${name}.mem`);
  const disk = new Uint8Array(512 + p.image.length + 40_000);
  disk.set(boot.subarray(0, 512), 0);
  disk.set(p.image, 512);
  writeFileSync(img, disk);
  const q = spawn(
    "qemu-system-i386",
    ["-nodefaults", "-machine", "pc", "-cpu", "qemu32", "-m", "64", "-display", "none", "-boot", "c"].concat([
      "-drive",
      `file=${img},format=raw,if=ide,index=0`,
      "-monitor",
      "stdio",
    ]),
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let out = "";
  q.stdout.on("data", (d: Buffer) => {
    out += d.toString("latin1");
  });
  const exited = new Promise<void>((resolve) => q.on("exit", () => resolve()));
  try {
    const deadline = Date.now() + 20_000;
    while (!/4ffc: 0x0000(600d|0bad)/.test(out)) {
      if (Date.now() > deadline) throw new Error(`QEMU run of ${name} did not finish:\n${out.slice(-500)}`);
      q.stdin.write("xp /1wx 0x4ffc\n");
      await new Promise((r) => setTimeout(r, 200));
    }
    q.stdin.write(`pmemsave 0x4000 0x2000 "${mem}"\n`);
    q.stdin.write("quit\n");
    await exited;
  } finally {
    q.kill();
  }
  return new Uint8Array(readFileSync(mem));
}

/** The declared faults of a program in order, with the `# qemu:` reason where QEMU differs. */
function declaredLines(name: string): { line: string; qemu: string | null }[] {
  return readFileSync(join(SRC, `${name}.S`), "utf8")
    .split("\n")
    .filter((l) => /^\s+(FAULT|FAULTPF|FAULTAT|TRAP|DEMAND)\s/.test(l))
    .map((l) => ({ line: l.split("#")[0]!.trim(), qemu: /# qemu: (.*)$/.exec(l)?.[1] ?? null }));
}

/** RES dwords where QEMU is known to differ from the SDM behaviour implemented here. */
const QEMU_RES_DIFFERENCES: Record<string, Record<number, string>> = {
  // Keys are RES dword indexes: 16 = 0x10, 48 = 0x30.
  segments: { 16: "QEMU does not set the accessed bit when a far JMP loads CS (LAR shows type 0x9a)" },
  paging: {
    48: "QEMU flushes global pages on CR3 writes too (allowed: the SDM only permits keeping them)",
  },
  ring3: {},
  legacy16: {},
};

describe.skipIf(!qemuPresent)(
  "protected-mode programs under QEMU (checks the expected faults and results)",
  () => {
    for (const name of ["segments", "ring3", "paging", "legacy16"]) {
      it(`${name}: QEMU takes the same faults and stores the same results, except documented QEMU deviations`, async () => {
        const p = build(name);
        const qmem = await runUnderQemu(name, p);
        const qv = new DataView(qmem.buffer, qmem.byteOffset, qmem.byteLength);
        const q32 = (addr: number) => qv.getUint32(addr - 0x4000, true);
        expect(q32(DONE).toString(16)).toBe("600d");
        const lines = declaredLines(name);
        expect(q32(LOG_COUNT)).toBe(lines.length);
        const problems: string[] = [];
        lines.forEach((l, i) => {
          const e = LOG + 32 * i;
          const [vec, code, cr2, eip, xvec, xcode, xeip, xcr2] = [0, 4, 8, 12, 16, 20, 24, 28].map((k) =>
            q32(e + k),
          ) as [number, number, number, number, number, number, number, number];
          const ok = vec === xvec && code === xcode && eip === xeip && (xcr2 === ANYCR2 || cr2 === xcr2);
          if (!ok && l.qemu === null)
            problems.push(`${l.line}: QEMU took vector ${vec.toString(16)} code ${code.toString(16)}`);
          if (ok && l.qemu !== null) problems.push(`${l.line}: marked as a QEMU difference but QEMU agrees`);
        });
        expect(problems).toEqual([]);
        const ours = execute(p);
        const allowed = QEMU_RES_DIFFERENCES[name]!;
        const diffs: string[] = [];
        for (let o = 0; o < 0x1000; o += 4) {
          const a = ours.ram.readU32(RES + o);
          const b = q32(RES + o);
          if (a !== b && allowed[o] === undefined)
            diffs.push(`RES+0x${o.toString(16)}: here 0x${a.toString(16)}, QEMU 0x${b.toString(16)}`);
        }
        expect(diffs).toEqual([]);
      });
    }
  },
);
