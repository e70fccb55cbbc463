/**
 * Far control transfers in protected mode (SDM vol. 2: JMP, CALL, RET, IRET; vol. 3, 5.8):
 * direct to code segments (conforming and non-conforming), through call gates with the inner
 * stack from the TSS and parameter copying, returns within a level and to an outer level.
 * Every check runs (and every memory write of a new frame happens) before any register changes.
 */
import { Vector } from "../fault.js";
import { Flag, Sreg } from "../state.js";
import { type Descriptor, SysType } from "./descriptors.js";
import type { ProtectedMode } from "./unit.js";

/** Direct JMP/CALL to a code segment: the privilege checks (#GP(sel)) and presence (#NP(sel)). */
function checkDirectCode(pm: ProtectedMode, sel: number, d: Descriptor): void {
  const cpu = pm.cpu;
  if (d.conforming) {
    if (d.dpl > cpu.cpl) cpu.raise(Vector.GP, sel & 0xfffc);
  } else if ((sel & 3) > cpu.cpl || d.dpl !== cpu.cpl) cpu.raise(Vector.GP, sel & 0xfffc);
  if (!d.present) cpu.raise(Vector.NP, sel & 0xfffc);
}

/** A call gate's own checks (DPL ≥ CPL and ≥ RPL, present) and its target's descriptor. */
function openCallGate(pm: ProtectedMode, sel: number, gate: Descriptor, target: Descriptor): void {
  const cpu = pm.cpu;
  if (gate.dpl < cpu.cpl || gate.dpl < (sel & 3)) cpu.raise(Vector.GP, sel & 0xfffc);
  if (!gate.present) cpu.raise(Vector.NP, sel & 0xfffc);
  const tsel = gate.gateSelector;
  if ((tsel & 0xfffc) === 0) cpu.gp0();
  pm.tables.fetch(tsel, target, Vector.GP, 0);
  if (!target.isCode || target.dpl > cpu.cpl) cpu.raise(Vector.GP, tsel & 0xfffc);
}

function taskSwitch(pm: ProtectedMode, d: Descriptor, how: string): never {
  const what = d.type === SysType.TASK_GATE ? "task gate" : "TSS";
  return pm.unsupported(`task switch (${how} through a ${what}, selector 0x${d.sel.toString(16)})`);
}

export function jumpFar(pm: ProtectedMode, sel: number, offset: number): void {
  const cpu = pm.cpu;
  if ((sel & 0xfffc) === 0) cpu.gp0();
  const d = pm.tables.fetch(sel, pm.d1, Vector.GP, 0);
  if (d.s) {
    if (!d.isCode) cpu.raise(Vector.GP, sel & 0xfffc);
    checkDirectCode(pm, sel, d);
    if (offset >>> 0 > d.limit) cpu.gp0();
    pm.loadCs(sel, d, cpu.cpl);
    cpu.eip = offset | 0;
    return;
  }
  switch (d.type) {
    case SysType.CALL_GATE16:
    case SysType.CALL_GATE32: {
      const t = pm.d2;
      openCallGate(pm, sel, d, t);
      const tsel = d.gateSelector;
      if (!t.conforming && t.dpl !== cpu.cpl) cpu.raise(Vector.GP, tsel & 0xfffc);
      if (!t.present) cpu.raise(Vector.NP, tsel & 0xfffc);
      const off = d.gateOffset;
      if (off >>> 0 > t.limit) cpu.gp0();
      pm.loadCs(tsel, t, cpu.cpl);
      cpu.eip = off;
      return;
    }
    case SysType.TASK_GATE:
    case SysType.TSS16_AVAILABLE:
    case SysType.TSS32_AVAILABLE:
      taskSwitch(pm, d, "JMP");
      break;
    default:
      cpu.raise(Vector.GP, sel & 0xfffc);
  }
}

export function callFar(pm: ProtectedMode, sel: number, offset: number): void {
  const cpu = pm.cpu;
  if ((sel & 0xfffc) === 0) cpu.gp0();
  const d = pm.tables.fetch(sel, pm.d1, Vector.GP, 0);
  if (d.s) {
    if (!d.isCode) cpu.raise(Vector.GP, sel & 0xfffc);
    checkDirectCode(pm, sel, d);
    if (offset >>> 0 > d.limit) cpu.gp0();
    const size = cpu.op32 ? 4 : 2;
    const f = pm.frame.onCurrent(0);
    f.probe(2 * size, size);
    f.push(cpu.segSel[Sreg.CS]!, size);
    f.push(cpu.eip, size);
    pm.loadCs(sel, d, cpu.cpl);
    cpu.r32[4] = f.esp;
    cpu.eip = offset | 0;
    return;
  }
  switch (d.type) {
    case SysType.CALL_GATE16:
    case SysType.CALL_GATE32:
      callGate(pm, sel, d);
      return;
    case SysType.TASK_GATE:
    case SysType.TSS16_AVAILABLE:
    case SysType.TSS32_AVAILABLE:
      taskSwitch(pm, d, "CALL");
      break;
    default:
      cpu.raise(Vector.GP, sel & 0xfffc);
  }
}

function callGate(pm: ProtectedMode, sel: number, gate: Descriptor): void {
  const cpu = pm.cpu;
  const t = pm.d2;
  openCallGate(pm, sel, gate, t);
  const tsel = gate.gateSelector;
  if (!t.present) cpu.raise(Vector.NP, tsel & 0xfffc);
  const off = gate.gateOffset;
  const size = (gate.type & 8) !== 0 ? 4 : 2;
  if (!t.conforming && t.dpl < cpu.cpl) {
    // More privilege: the stack for the target's level comes from the TSS.
    const dpl = t.dpl;
    pm.innerStack(dpl, 0);
    const ssSel = pm.newSs;
    const ss = pm.d3;
    pm.checkInnerSs(ssSel, dpl, ss, 0);
    if (off >>> 0 > t.limit) cpu.gp0();
    const count = gate.paramCount;
    const f = pm.frame.onNew(ss, pm.newEsp, dpl === 3, ssSel & 0xfffc);
    f.probe((4 + count) * size, size);
    f.push(cpu.segSel[Sreg.SS]!, size);
    f.push(cpu.r32[4]!, size);
    for (let i = count - 1; i >= 0; i--) f.push(pm.readStack(i * size, size), size);
    f.push(cpu.segSel[Sreg.CS]!, size);
    f.push(cpu.eip, size);
    pm.loadCs(tsel, t, dpl);
    pm.loadSs((ssSel & 0xfffc) | dpl, ss);
    cpu.r32[4] = f.esp;
    cpu.eip = off;
    return;
  }
  if (!t.conforming && t.dpl !== cpu.cpl) cpu.raise(Vector.GP, tsel & 0xfffc);
  if (off >>> 0 > t.limit) cpu.gp0();
  const f = pm.frame.onCurrent(0);
  f.probe(2 * size, size);
  f.push(cpu.segSel[Sreg.CS]!, size);
  f.push(cpu.eip, size);
  pm.loadCs(tsel, t, cpu.cpl);
  cpu.r32[4] = f.esp;
  cpu.eip = off;
}

/** The CS popped by RET/IRET: checks against the CPL and the returned RPL. */
function checkReturnCs(pm: ProtectedMode, sel: number, d: Descriptor): void {
  const cpu = pm.cpu;
  if ((sel & 0xfffc) === 0) cpu.gp0();
  pm.tables.fetch(sel, d, Vector.GP, 0);
  const rpl = sel & 3;
  if (!d.isCode || rpl < cpu.cpl) cpu.raise(Vector.GP, sel & 0xfffc);
  if (d.conforming ? d.dpl > rpl : d.dpl !== rpl) cpu.raise(Vector.GP, sel & 0xfffc);
  if (!d.present) cpu.raise(Vector.NP, sel & 0xfffc);
}

/** Sets ESP (or SP for a 16-bit stack) to `v + add`. */
function setSp(pm: ProtectedMode, v: number, add: number, size: number): void {
  const cpu = pm.cpu;
  if (size === 2) cpu.r16[8] = v;
  else cpu.r32[4] = v;
  if (cpu.stackBig) cpu.r32[4] = (cpu.r32[4]! + add) | 0;
  else cpu.r16[8] = cpu.r16[8]! + add;
}

export function returnFar(pm: ProtectedMode, popBytes: number): void {
  const cpu = pm.cpu;
  const size = cpu.op32 ? 4 : 2;
  const eip = pm.readStack(0, size);
  const sel = pm.readStack(size, size) & 0xffff;
  const d = pm.d1;
  checkReturnCs(pm, sel, d);
  const rpl = sel & 3;
  if (rpl === cpu.cpl) {
    if (eip >>> 0 > d.limit) cpu.gp0();
    pm.loadCs(sel, d, rpl);
    cpu.eip = eip;
    const sp = cpu.stackBig ? cpu.r32[4]! : cpu.r16[8]!;
    setSp(pm, sp, 2 * size + popBytes, cpu.stackBig ? 4 : 2);
    return;
  }
  const esp = pm.readStack(2 * size + popBytes, size);
  const ssSel = pm.readStack(3 * size + popBytes, size) & 0xffff;
  const ss = pm.d2;
  pm.checkOuterSs(ssSel, rpl, ss);
  if (eip >>> 0 > d.limit) cpu.gp0();
  pm.loadCs(sel, d, rpl);
  cpu.eip = eip;
  pm.loadSs(ssSel, ss);
  setSp(pm, esp, popBytes, size);
  pm.nullifyDataSegments();
}

/** EFLAGS bits IRET always restores (CF PF AF ZF SF TF DF OF NT, RF AC ID). */
const IRET_FLAGS = 0x4dd5 | Flag.RF | Flag.AC | Flag.ID;

export function iret(pm: ProtectedMode): void {
  const cpu = pm.cpu;
  if ((cpu.flags & Flag.NT) !== 0) pm.unsupported("IRET with NT = 1 (return from a nested task)");
  const size = cpu.op32 ? 4 : 2;
  const eip = pm.readStack(0, size);
  const sel = pm.readStack(size, size) & 0xffff;
  let fl = pm.readStack(2 * size, size);
  if (size === 4 && (fl & Flag.VM) !== 0 && cpu.cpl === 0) pm.unsupported("IRET to virtual-8086 mode");
  const d = pm.d1;
  checkReturnCs(pm, sel, d);
  const oldCpl = cpu.cpl;
  const iopl = (cpu.flags >>> 12) & 3;
  let writable = IRET_FLAGS;
  if (oldCpl <= iopl) writable |= Flag.IF;
  if (oldCpl === 0) writable |= Flag.IOPL | Flag.VIF | Flag.VIP;
  if (size === 2) {
    writable &= 0xffff;
    fl &= 0xffff;
  }
  const rpl = sel & 3;
  if (rpl === oldCpl) {
    if (eip >>> 0 > d.limit) cpu.gp0();
    pm.loadCs(sel, d, rpl);
    cpu.eip = eip;
    cpu.setEflagsChecked(fl, writable);
    const sp = cpu.stackBig ? cpu.r32[4]! : cpu.r16[8]!;
    setSp(pm, sp, 3 * size, cpu.stackBig ? 4 : 2);
    return;
  }
  const esp = pm.readStack(3 * size, size);
  const ssSel = pm.readStack(4 * size, size) & 0xffff;
  const ss = pm.d2;
  pm.checkOuterSs(ssSel, rpl, ss);
  if (eip >>> 0 > d.limit) cpu.gp0();
  cpu.setEflagsChecked(fl, writable);
  pm.loadCs(sel, d, rpl);
  cpu.eip = eip;
  pm.loadSs(ssSel, ss);
  setSp(pm, esp, 0, size);
  pm.nullifyDataSegments();
}
