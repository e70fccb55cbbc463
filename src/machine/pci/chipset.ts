import { ConfigError } from "../../common/errors.js";
import { PciFunction, type PciAccessSize } from "../../pci/function.js";
import { PCI_VENDOR_ID_INTEL, PciClass } from "../../pci/regs.js";

/** Intel 82441FX (i440FX) PCI and memory controller: the host bridge at 00:00.0. */
export const I440FX_DEVICE_ID = 0x1237;
/** Intel 82371SB (PIIX3) function 0: the PCI-to-ISA bridge and PCI IRQ router at 00:01.0. */
export const PIIX3_ISA_DEVICE_ID = 0x7000;

/** PIIX3 PIRQ route control registers PIRQRC[A:D] (datasheet 2.2.7), one byte each. */
export const PIIX3_PIRQRC = 0x60;
/** PIRQRC bit 7: routing disabled (IRQINTRC). */
export const PIIX3_PIRQRC_DISABLE = 0x80;
/** PIRQRC bits 3:0: the ISA IRQ the PIRQ line is steered to. */
export const PIIX3_PIRQRC_IRQ_MASK = 0x0f;
/** The ISA IRQs a PIRQRC register may name; other values are reserved and route nowhere. */
export const PIIX3_ROUTABLE_IRQS: readonly number[] = [3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15];

/**
 * What a BIOS leaves in PIRQRC[A:D] (SeaBIOS: 10, 10, 11, 11). The IRQs are level-triggered:
 * the machine's ELCR (ports 0x4D0/0x4D1, owned by the PIC) should mark them level, as the
 * BIOS would; Linux also sets the ELCR bit itself when it finds a route ("PCI: setting IRQ n
 * as level-triggered").
 */
export const DEFAULT_PIRQ_ROUTES: readonly [number, number, number, number] = [10, 10, 11, 11];

/** The i440FX host bridge function: identity, and writable chipset registers from 0x50 up. */
export function createI440fxHostBridge(): PciFunction {
  const f = new PciFunction({
    vendorId: PCI_VENDOR_ID_INTEL,
    deviceId: I440FX_DEVICE_ID,
    classCode: PciClass.HOST_BRIDGE,
    revision: 0x02,
    name: "i440FX host bridge",
  });
  // PMCCFG, DRAM control, PAM0-6, DRB, SMRAM...: storage only (no memory remapping here).
  for (let off = 0x50; off < 0x100; off += 4) f.setMask(off, 4, 0xffff_ffff);
  return f;
}

/** True when a PIRQRC value routes its PIRQ line to an IRQ; returns that IRQ or -1. */
export function pirqRouteIrq(value: number): number {
  if (value & PIIX3_PIRQRC_DISABLE) return -1;
  const irq = value & PIIX3_PIRQRC_IRQ_MASK;
  return PIIX3_ROUTABLE_IRQS.includes(irq) ? irq : -1;
}

/**
 * PIIX3 function 0 (8086:7000, class ISA bridge). Its PIRQ route control registers 0x60-0x63
 * are what Linux's PIIX router (arch/x86/pci/irq.c, pirq_piix_get/set) reads and writes; every
 * change is reported to `onRoutesChanged`. Other registers from 0x4C up are plain storage
 * (Linux's PIIX3 quirk sets "passive release" in 0x82).
 */
export class Piix3IsaBridge extends PciFunction {
  /** Called after a guest write changes any PIRQRC register. */
  onRoutesChanged: (() => void) | undefined;

  constructor(routes: readonly number[] = DEFAULT_PIRQ_ROUTES) {
    super({
      vendorId: PCI_VENDOR_ID_INTEL,
      deviceId: PIIX3_ISA_DEVICE_ID,
      classCode: PciClass.ISA_BRIDGE,
      revision: 0x00,
      name: "PIIX3 ISA bridge",
    });
    if (routes.length !== 4)
      throw new ConfigError(`PIIX3: 4 PIRQ routes (A-D) are needed, got ${routes.length}`);
    for (let off = 0x4c; off < 0x100; off += 4) this.setMask(off, 4, 0xffff_ffff);
    for (let i = 0; i < 4; i++) {
      const irq = routes[i]!;
      if (irq !== 0x80 && !PIIX3_ROUTABLE_IRQS.includes(irq)) {
        throw new ConfigError(
          `PIIX3: PIRQ${"ABCD"[i]} route ${irq} is not a routable IRQ (${PIIX3_ROUTABLE_IRQS.join(", ")}) or 0x80 (disabled)`,
        );
      }
      this.init(PIIX3_PIRQRC + i, 1, irq);
      // bits 6:4 are reserved (read 0)
      this.setMask(PIIX3_PIRQRC + i, 1, PIIX3_PIRQRC_DISABLE | PIIX3_PIRQRC_IRQ_MASK);
    }
  }

  /** PIRQRC[pirq] (0 = A .. 3 = D). */
  route(pirq: number): number {
    return this.getU8(PIIX3_PIRQRC + (pirq & 3));
  }

  /** The IRQ PIRQ `pirq` (0..3) is steered to, or -1 when routing is disabled or reserved. */
  routedIrq(pirq: number): number {
    return pirqRouteIrq(this.route(pirq));
  }

  override configWrite(offset: number, size: PciAccessSize, value: number): void {
    const before = this.getU32(PIIX3_PIRQRC);
    super.configWrite(offset, size, value);
    if (this.getU32(PIIX3_PIRQRC) !== before) this.onRoutesChanged?.();
  }

  override reset(): void {
    const before = this.getU32(PIIX3_PIRQRC);
    super.reset();
    if (this.getU32(PIIX3_PIRQRC) !== before) this.onRoutesChanged?.();
  }

  override restore(state: Parameters<PciFunction["restore"]>[0]): void {
    super.restore(state);
    this.onRoutesChanged?.();
  }
}
