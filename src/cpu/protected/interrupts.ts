/**
 * Interrupt and exception delivery through the IDT (SDM vol. 3, 6.10-6.14; vol. 2, INT n):
 * interrupt and trap gates (16- and 32-bit), the gate DPL check for software interrupts, the
 * stack switch to the TSS stack on a privilege change, error codes with the EXT and IDT bits.
 * Task gates raise a `CpuStateError` (task switching is not implemented).
 */
import { InterruptKind, NO_ERROR_CODE, Vector } from "../fault.js";
import { Flag, Sreg } from "../state.js";
import { SysType } from "./descriptors.js";
import type { ProtectedMode } from "./unit.js";

export function deliverInterrupt(
  pm: ProtectedMode,
  vector: number,
  kind: InterruptKind,
  errorCode: number,
): void {
  const cpu = pm.cpu;
  const software = kind === InterruptKind.SOFTWARE || kind === InterruptKind.SOFTWARE_EXCEPTION;
  // EXT: the event came from outside the program (an external interrupt or an earlier exception).
  const ext = software ? 0 : 1;
  const idtCode = (vector << 3) | 2 | ext;
  if ((vector << 3) + 7 > cpu.idtrLimit >>> 0) cpu.raise(Vector.GP, idtCode);
  const at = (cpu.idtrBase + (vector << 3)) | 0;
  const gate = pm.d1;
  gate.sel = 0;
  gate.addr = at;
  gate.decode(pm.mem.read32(at, false), pm.mem.read32((at + 4) | 0, false));
  const type = gate.type;
  if (
    gate.s ||
    (type !== SysType.INT_GATE32 &&
      type !== SysType.TRAP_GATE32 &&
      type !== SysType.INT_GATE16 &&
      type !== SysType.TRAP_GATE16 &&
      type !== SysType.TASK_GATE)
  )
    cpu.raise(Vector.GP, idtCode);
  if (software && gate.dpl < cpu.cpl) cpu.raise(Vector.GP, (vector << 3) | 2);
  if (!gate.present) cpu.raise(Vector.NP, idtCode);
  if (type === SysType.TASK_GATE) pm.unsupported(`task gate in the IDT (vector ${vector})`);

  const tsel = gate.gateSelector;
  if ((tsel & 0xfffc) === 0) cpu.raise(Vector.GP, ext);
  const t = pm.tables.fetch(tsel, pm.d2, Vector.GP, ext);
  if (!t.isCode || t.dpl > cpu.cpl) cpu.raise(Vector.GP, (tsel & 0xfffc) | ext);
  if (!t.present) cpu.raise(Vector.NP, (tsel & 0xfffc) | ext);
  const off = gate.gateOffset;
  const size = (type & 8) !== 0 ? 4 : 2;
  const withCode = kind === InterruptKind.EXCEPTION && errorCode !== NO_ERROR_CODE;
  const eflags = cpu.getEflags();

  if (!t.conforming && t.dpl < cpu.cpl) {
    // Inter-privilege: switch to the TSS stack of the handler's level.
    const dpl = t.dpl;
    pm.innerStack(dpl, ext);
    const ssSel = pm.newSs;
    const ss = pm.d3;
    pm.checkInnerSs(ssSel, dpl, ss, ext);
    if (off >>> 0 > t.limit) cpu.raise(Vector.GP, ext);
    const f = pm.frame.onNew(ss, pm.newEsp, dpl === 3, (ssSel & 0xfffc) | ext);
    f.probe((withCode ? 6 : 5) * size, size);
    f.push(cpu.segSel[Sreg.SS]!, size);
    f.push(cpu.r32[4]!, size);
    f.push(eflags, size);
    f.push(cpu.segSel[Sreg.CS]!, size);
    f.push(cpu.eip, size);
    if (withCode) f.push(errorCode, size);
    pm.loadCs(tsel, t, dpl);
    pm.loadSs((ssSel & 0xfffc) | dpl, ss);
    cpu.r32[4] = f.esp;
  } else {
    if (!t.conforming && t.dpl !== cpu.cpl) cpu.raise(Vector.GP, (tsel & 0xfffc) | ext);
    if (off >>> 0 > t.limit) cpu.raise(Vector.GP, ext);
    const f = pm.frame.onCurrent(ext);
    f.probe((withCode ? 4 : 3) * size, size);
    f.push(eflags, size);
    f.push(cpu.segSel[Sreg.CS]!, size);
    f.push(cpu.eip, size);
    if (withCode) f.push(errorCode, size);
    pm.loadCs(tsel, t, cpu.cpl);
    cpu.r32[4] = f.esp;
  }
  cpu.eip = off;
  let clear = Flag.TF | Flag.NT | Flag.RF | Flag.VM;
  if (type === SysType.INT_GATE32 || type === SysType.INT_GATE16) clear |= Flag.IF;
  cpu.setEflags(eflags & ~clear);
  cpu.halted = false;
}
