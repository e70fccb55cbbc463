/**
 * FNSTENV/FLDENV environment images (14 bytes with a 16-bit operand size, 28 bytes with 32),
 * in the real-mode and protected-mode layouts of SDM vol. 1 figures 8-9 to 8-12.
 * In real mode the instruction and data pointers are stored as 20/32-bit linear addresses
 * (selector × 16 + offset) split around the opcode field.
 */

/** The environment fields as the FPU keeps them. */
export interface FpuEnv {
  cw: number;
  /** The full status word, TOP included. */
  sw: number;
  tw: number;
  fip: number;
  fcs: number;
  fop: number;
  fdp: number;
  fds: number;
}

export function envSize(opSize32: boolean): number {
  return opSize32 ? 28 : 14;
}

/** Encodes the environment into `out` (length envSize). */
export function encodeEnv(env: FpuEnv, opSize32: boolean, protectedMode: boolean, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (opSize32) {
    dv.setUint32(0, (0xffff0000 | env.cw) >>> 0, true);
    dv.setUint32(4, (0xffff0000 | env.sw) >>> 0, true);
    dv.setUint32(8, (0xffff0000 | env.tw) >>> 0, true);
    if (protectedMode) {
      dv.setUint32(12, env.fip >>> 0, true);
      dv.setUint32(16, ((env.fop & 0x7ff) << 16) | (env.fcs & 0xffff), true);
      dv.setUint32(20, env.fdp >>> 0, true);
      dv.setUint32(24, (0xffff0000 | env.fds) >>> 0, true);
    } else {
      const ip = (env.fip + env.fcs * 16) >>> 0;
      const dp = (env.fdp + env.fds * 16) >>> 0;
      dv.setUint32(12, (0xffff0000 | (ip & 0xffff)) >>> 0, true);
      dv.setUint32(16, (((ip >>> 16) << 12) | (env.fop & 0x7ff)) >>> 0, true);
      dv.setUint32(20, (0xffff0000 | (dp & 0xffff)) >>> 0, true);
      dv.setUint32(24, ((dp >>> 16) << 12) >>> 0, true);
    }
  } else {
    dv.setUint16(0, env.cw, true);
    dv.setUint16(2, env.sw, true);
    dv.setUint16(4, env.tw, true);
    if (protectedMode) {
      dv.setUint16(6, env.fip & 0xffff, true);
      dv.setUint16(8, env.fcs & 0xffff, true);
      dv.setUint16(10, env.fdp & 0xffff, true);
      dv.setUint16(12, env.fds & 0xffff, true);
    } else {
      const ip = (env.fip + env.fcs * 16) >>> 0;
      const dp = (env.fdp + env.fds * 16) >>> 0;
      dv.setUint16(6, ip & 0xffff, true);
      dv.setUint16(8, (((ip >>> 16) & 0xf) << 12) | (env.fop & 0x7ff), true);
      dv.setUint16(10, dp & 0xffff, true);
      dv.setUint16(12, ((dp >>> 16) & 0xf) << 12, true);
    }
  }
}

/** Decodes an environment image. Real-mode pointers come back as linear offsets with selector 0. */
export function decodeEnv(img: Uint8Array, opSize32: boolean, protectedMode: boolean): FpuEnv {
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  if (opSize32) {
    const env: FpuEnv = {
      cw: dv.getUint16(0, true),
      sw: dv.getUint16(4, true),
      tw: dv.getUint16(8, true),
      fip: 0,
      fcs: 0,
      fop: 0,
      fdp: 0,
      fds: 0,
    };
    if (protectedMode) {
      env.fip = dv.getUint32(12, true);
      const w = dv.getUint32(16, true);
      env.fcs = w & 0xffff;
      env.fop = (w >>> 16) & 0x7ff;
      env.fdp = dv.getUint32(20, true);
      env.fds = dv.getUint16(24, true);
    } else {
      const w = dv.getUint32(16, true);
      env.fip = ((dv.getUint16(12, true) | ((w >>> 12) << 16)) >>> 0) & 0xffffffff;
      env.fop = w & 0x7ff;
      env.fdp = (dv.getUint16(20, true) | ((dv.getUint32(24, true) >>> 12) << 16)) >>> 0;
    }
    return env;
  }
  const env: FpuEnv = {
    cw: dv.getUint16(0, true),
    sw: dv.getUint16(2, true),
    tw: dv.getUint16(4, true),
    fip: 0,
    fcs: 0,
    fop: 0,
    fdp: 0,
    fds: 0,
  };
  if (protectedMode) {
    env.fip = dv.getUint16(6, true);
    env.fcs = dv.getUint16(8, true);
    env.fdp = dv.getUint16(10, true);
    env.fds = dv.getUint16(12, true);
  } else {
    const w = dv.getUint16(8, true);
    env.fip = dv.getUint16(6, true) | ((w >>> 12) << 16);
    env.fop = w & 0x7ff;
    env.fdp = dv.getUint16(10, true) | ((dv.getUint16(12, true) >>> 12) << 16);
  }
  return env;
}
