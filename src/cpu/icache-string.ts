/**
 * String instructions in the decoded-instruction cache: MOVS, CMPS, STOS, LODS, SCAS (A4-A7,
 * AA-AF) with any of REP/REPE (F3), REPNE (F2), operand size (66), address size (67) and one
 * segment override, in code of either default size. The record keeps the prefixes; its handler
 * sets the decoder's prefix state from them (as `Cpu.step` would have after the prefixes) and
 * runs the table's handler, so every iteration, fault and register update is the decoder's: a
 * fault in the middle of a REP leaves ECX/ESI/EDI (CX/SI/DI) as the uncached path does and
 * `run` rewinds EIP to the first prefix. `decodeDirty` is set, so the next decoded
 * instruction starts from the default sizes again.
 */
import type { Decoded } from "./icache.js";
import { type DecodedRun, SEG_PREFIX } from "./icache-ops.js";
import { DISPATCH } from "./table.js";

/** Runs a string record: `kind` = rep (0, 1 = F2, 2 = F3), `reg`/`rm` = operand/address size 32, `seg` = override or -1, `imm` = DISPATCH index. */
const stringRec: DecodedRun = (cpu, d) => {
  cpu.op32 = d.reg;
  cpu.ad32 = d.rm;
  cpu.segOvr = d.seg;
  cpu.rep = d.kind;
  cpu.lock = 0;
  cpu.decodeDirty = 1;
  cpu.opcode = d.imm & 0xff;
  DISPATCH[d.imm]!(cpu);
};

/** Whether `op` is MOVS/CMPS/STOS/LODS/SCAS (byte or word/dword). */
function isString(op: number): boolean {
  return (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf);
}

/**
 * Decodes a string instruction with up to three prefixes (at most one of each kind) at `p` in
 * code with CS.D = `big`: sets `d.run` and the prefix fields and returns the length, or leaves
 * `d.run` null (another form, LOCK, repeated or more prefixes) and returns 0.
 */
export function decodeString(u8: Uint8Array, d: Decoded, p: number, big: number): number {
  let rep = 0;
  let op32 = big;
  let ad32 = big;
  let seg = -1;
  let seen = 0;
  let q = p;
  for (let n = 0; n <= 3; n++) {
    const b = u8[q++]!;
    if (isString(b)) {
      d.kind = rep;
      d.reg = op32;
      d.rm = ad32;
      d.seg = seg;
      d.imm = op32 !== 0 ? b | 0x200 : b;
      d.run = stringRec;
      return q - p;
    }
    // Each prefix kind at most once: bit 0 rep, 1 operand size, 2 address size, 3 segment.
    let bit: number;
    if (b === 0xf2 || b === 0xf3) {
      bit = 1;
      rep = b === 0xf2 ? 1 : 2;
    } else if (b === 0x66) {
      bit = 2;
      op32 = big ^ 1;
    } else if (b === 0x67) {
      bit = 4;
      ad32 = big ^ 1;
    } else if (SEG_PREFIX[b]! !== 0) {
      bit = 8;
      seg = SEG_PREFIX[b]! - 1;
    } else return 0;
    if ((seen & bit) !== 0) return 0;
    seen |= bit;
  }
  return 0;
}
