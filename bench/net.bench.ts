/**
 * Two virtio-net NICs on the in-process switch, the whole path on both sides: A's driver puts
 * frames in its transmit queue and notifies through the virtio-PCI notify register; the device
 * pops them, the switch forwards, B's device writes them into B's posted receive buffers and
 * signals; B's driver collects them and posts the buffers again. Frames are sent 64 per notify.
 */
import { parseMac } from "../src/devices/net/frame.js";
import { createNetRig } from "../src/devices/net/net-test-rig.js";
import { NetSwitch } from "../src/devices/net/switch.js";
import { buildIpv4Frame } from "../src/devices/net/test-frames.js";
import { type BenchSuite, measure } from "./harness.js";

const BATCH = 64;
const SLOT = 2048;

function setup(frameLen: number) {
  const sw = new NetSwitch();
  const macA = parseMac("52:54:00:00:02:0a");
  const macB = parseMac("52:54:00:00:02:0b");
  const a = createNetRig(sw.port("a"), { mac: macA, queueSize: 256, memorySize: 8 << 20 });
  const b = createNetRig(sw.port("b"), { mac: macB, queueSize: 256, memorySize: 8 << 20 });
  const frame = buildIpv4Frame({
    dst: macB,
    src: macA,
    proto: "udp",
    payload: new Uint8Array(frameLen - 42).fill(0x5a),
  }).full;
  if (frame.length !== frameLen) throw new Error(`frame is ${frame.length} bytes, wanted ${frameLen}`);
  const txq = a.pci.queues[1]!.queue;
  const rxq = b.pci.queues[0]!.queue;
  // A's transmit slots hold header + frame already (as a driver's mapped skbs would).
  const txBase = a.pci.dma.alloc(txq.size * SLOT, 4096);
  for (let i = 0; i < txq.size; i++) {
    a.pci.memory.fill(txBase + i * SLOT, 12, 0);
    a.pci.memory.writeFrom(txBase + i * SLOT + 12, frame);
  }
  const rxBase = b.pci.dma.alloc(rxq.size * SLOT, 4096);
  const rxAddr = new Int32Array(rxq.size);
  for (let i = 0; i < rxq.size; i++) {
    const head = rxq.add([{ addr: rxBase + i * SLOT, len: SLOT, write: true }]);
    rxAddr[head] = rxBase + i * SLOT;
  }
  b.pci.kick(0);
  let txNext = 0;
  let received = 0;
  const round = () => {
    while (txq.getUsed() !== null) {}
    for (let i = 0; i < BATCH; i++) {
      txq.add([{ addr: txBase + txNext * SLOT, len: 12 + frameLen, write: false }]);
      txNext = (txNext + 1) % txq.size;
    }
    a.pci.kick(1);
    for (let u = rxq.getUsed(); u !== null; u = rxq.getUsed()) {
      received++;
      rxq.add([{ addr: rxAddr[u.id]!, len: SLOT, write: true }]);
    }
    b.pci.kick(0);
  };
  return { round, a, b, received: () => received };
}

export const suite: BenchSuite = {
  name: "net",
  run(report) {
    for (const len of [64, 1500]) {
      const s = setup(len);
      const rate = measure(s.round, BATCH, 1000);
      const c = s.b.device.counters;
      if (c.rxDroppedNoBuffer > 0 || s.received() !== c.rxFrames) {
        throw new Error(
          `frames lost: ${c.rxDroppedNoBuffer} dropped, ${s.received()} of ${c.rxFrames} collected`,
        );
      }
      report(`net.switch.${len}B.frames`, rate / 1e6, "Mframes/s");
      report(`net.switch.${len}B.throughput`, (rate * len * 8) / 1e9, "Gbit/s");
    }
  },
};
