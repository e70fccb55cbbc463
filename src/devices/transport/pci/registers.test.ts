import { describe, expect, it } from "vitest";
import {
  PCI_CAP_ID_MSIX,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_MASKALL,
} from "../../../pci/regs.js";
import { createPciTestRig } from "../../../testing.js";
import { seededEntropy, VirtioRng } from "../../rng/index.js";
import * as R from "./regs.js";

function rig(interrupts: "msix" | "intx" = "msix") {
  const r = createPciTestRig(new VirtioRng({ entropy: seededEntropy(9) }), { interrupts });
  return { ...r, t: r.transport, d: r.driver };
}

function addBuffer(r: ReturnType<typeof rig>) {
  return r.d.queues[0]!.queue.add([{ addr: r.d.dma.alloc(8), len: 8, write: true }]);
}

describe("virtio-PCI registers", () => {
  it("accesses of the wrong width or where no field is are ignored (reads 0) and counted, never thrown", () => {
    const { t, d } = rig();
    const before = t.ignoredAccesses;
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_STATUS, 4)).toBe(0);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 4, 1);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2)).toBe(0);
    expect(d.readCommon(1, 1)).toBe(0);
    expect(d.barRead(0, 0x0f00, 4)).toBe(0);
    d.barWrite(0, R.ISR_OFFSET, 4, 0);
    // rng has no device configuration: any access there is ignored too.
    expect(d.barRead(0, R.DEVICE_CFG_OFFSET, 1)).toBe(0);
    expect(t.ignoredAccesses).toBe(before + 6);
    // Admin queue fields exist and read 0 admin queues.
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_ADM_Q_NUM, 2)).toBe(0);
  });

  it("read-only fields ignore writes: device_feature, num_queues, config_generation, queue_notify_off, queue_notif_config_data", () => {
    const { d } = rig();
    const fields: [number, 1 | 2 | 4][] = [
      [R.VIRTIO_PCI_COMMON_DF, 4],
      [R.VIRTIO_PCI_COMMON_NUMQ, 2],
      [R.VIRTIO_PCI_COMMON_CFGGENERATION, 1],
      [R.VIRTIO_PCI_COMMON_Q_NOFF, 2],
      [R.VIRTIO_PCI_COMMON_Q_NDATA, 2],
    ];
    const before = fields.map(([o, s]) => d.readCommon(o, s));
    for (const [o, s] of fields) d.writeCommon(o, s, 9);
    expect(fields.map(([o, s]) => d.readCommon(o, s))).toEqual(before);
  });

  it("INTx follows the command register's Interrupt Disable (standard PCI rules)", () => {
    const r = rig("intx");
    r.d.bringUp();
    r.t.configWrite(PCI_COMMAND, 2, r.t.configRead(PCI_COMMAND, 2) | 0x400);
    addBuffer(r);
    r.d.notify(0);
    expect(r.intx.level).toBe(false);
    expect(r.t.peekIsr()).toBe(1);
    r.t.configWrite(PCI_COMMAND, 2, r.t.configRead(PCI_COMMAND, 2) & ~0x400);
    expect(r.intx.level).toBe(true);
  });

  it("a masked vector sets its pending bit and fires when unmasked; the function mask holds every vector; the PBA is read-only", () => {
    const r = rig();
    r.d.bringUp();
    // Mask vector 1 (queue 0).
    r.d.barWrite(R.MSIX_BAR, R.MSIX_TABLE_OFFSET + 16 + 12, 4, 1);
    addBuffer(r);
    r.d.notify(0);
    expect(r.msi.messages).toHaveLength(0);
    expect(r.d.barRead(R.MSIX_BAR, R.MSIX_PBA_OFFSET, 4)).toBe(0b10);
    r.d.barWrite(R.MSIX_BAR, R.MSIX_TABLE_OFFSET + 16 + 12, 4, 0);
    expect(r.msi.messages).toEqual([{ addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 }]);
    expect(r.d.barRead(R.MSIX_BAR, R.MSIX_PBA_OFFSET, 4)).toBe(0);
    let p = r.t.configRead(PCI_CAPABILITY_LIST, 1);
    while (r.t.configRead(p, 1) !== PCI_CAP_ID_MSIX) p = r.t.configRead(p + 1, 1);
    const ctrl = r.t.configRead(p + PCI_MSIX_FLAGS, 2);
    r.t.configWrite(p + PCI_MSIX_FLAGS, 2, ctrl | PCI_MSIX_FLAGS_MASKALL);
    r.t.signalConfig();
    expect(r.msi.messages).toHaveLength(1);
    expect(r.d.barRead(R.MSIX_BAR, R.MSIX_PBA_OFFSET, 4)).toBe(0b01);
    r.t.configWrite(p + PCI_MSIX_FLAGS, 2, ctrl);
    expect(r.msi.messages.at(-1)!.data).toBe(0x40);
    r.d.barWrite(R.MSIX_BAR, R.MSIX_PBA_OFFSET, 4, 0xff);
    expect(r.d.barRead(R.MSIX_BAR, R.MSIX_PBA_OFFSET, 4)).toBe(0);
    // Table accesses must be 32-bit.
    const ignored = r.t.msix!.ignoredAccesses;
    r.d.barWrite(R.MSIX_BAR, R.MSIX_TABLE_OFFSET, 2, 0);
    expect(r.t.msix!.ignoredAccesses).toBe(ignored + 1);
  });

  it("a running transport round-trips through JSON and keeps working", () => {
    const r = rig();
    r.d.bringUp();
    addBuffer(r);
    r.d.notify(0);
    const snap = JSON.parse(JSON.stringify(r.t.save()));
    const dev2 = new VirtioRng({ entropy: seededEntropy(9) });
    const r2 = createPciTestRig(dev2, { memory: r.memory });
    r2.transport.restore(snap);
    expect(r2.driver.status).toBe(r.d.status);
    expect(r2.transport.queue(0)!.nextUsedIdx).toBe(1);
    expect(dev2.bytesDelivered).toBe(8);
    // The driver's queue state lives in guest memory and in `r.d`: drive the restored device with it.
    expect(r.d.queues[0]!.queue.getUsed()).not.toBeNull();
    addBuffer(r);
    r2.transport.notify(0);
    expect(r.d.queues[0]!.queue.getUsed()).toEqual({ id: expect.any(Number), len: 8 });
    expect(dev2.bytesDelivered).toBe(16);
  });
});

describe("Bus Master Enable", () => {
  it("while it is off the device does not process queues; a notify after it is back on does", () => {
    const r = rig();
    r.d.bringUp();
    r.t.configWrite(PCI_COMMAND, 2, r.t.configRead(PCI_COMMAND, 2) & ~0x4);
    addBuffer(r);
    const ignored = r.t.ignoredNotifies;
    r.d.notify(0);
    expect(r.t.ignoredNotifies).toBe(ignored + 1);
    expect(r.d.queues[0]!.queue.hasUsed()).toBe(false);
    r.t.configWrite(PCI_COMMAND, 2, r.t.configRead(PCI_COMMAND, 2) | 0x4);
    r.d.notify(0);
    expect(r.d.queues[0]!.queue.getUsed()).not.toBeNull();
  });
});
