import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../common/errors.js";
import { IoBus } from "../io-bus.js";
import { TimerQueue } from "../timers.js";
import { Uart } from "./uart.js";

const B = 0x3f8;
const RX = B;
const IER = B + 1;
const IIR = B + 2;
const FCR = B + 2;
const LCR = B + 3;
const MCR = B + 4;
const LSR = B + 5;
const MSR = B + 6;
const SCR = B + 7;

function setup(opts: { rxBufferSize?: number } = {}) {
  const clock = new TimerQueue();
  const out: number[] = [];
  const irqEvents: boolean[] = [];
  let space = 0;
  const uart = new Uart({
    clock,
    irq: { set: (l) => irqEvents.push(l) },
    backend: { write: (b) => out.push(...b) },
    onRxSpace: () => space++,
    ...opts,
  });
  const io = new IoBus();
  uart.register(io);
  return { clock, uart, io, out, irqEvents, spaceCalls: () => space };
}

describe("16550A UART", () => {
  it("passes Linux's 8250 autoconfig probe as a 16550A", () => {
    const { io } = setup();
    // IER scratch test
    const save = io.read(IER, 1);
    io.write(IER, 1, 0);
    expect(io.read(IER, 1) & 0x0f).toBe(0);
    io.write(IER, 1, 0x0f);
    expect(io.read(IER, 1) & 0x0f).toBe(0x0f);
    io.write(IER, 1, save);
    // LCR 0xBF: no EFR - offset 2 still reads IIR, which is non-zero
    io.write(LCR, 1, 0xbf);
    expect(io.read(IIR, 1)).not.toBe(0);
    io.write(LCR, 1, 0);
    io.write(FCR, 1, 0x01);
    expect(io.read(IIR, 1) >> 6).toBe(3); // 16550A FIFO bits
    // DLAB set: EFR probe reads IIR, non-zero
    io.write(LCR, 1, 0x80);
    expect(io.read(IIR, 1)).not.toBe(0);
    // No NS SuperIO: IIR bit 4 never mirrors MCR LOOP
    io.write(LCR, 1, 0);
    expect(io.read(IIR, 1) & 0x10).toBe(0);
    // Not a 16750: IIR bit 5 stays clear with the 64-byte FIFO bit, with and without DLAB
    io.write(FCR, 1, 0x21);
    expect(io.read(IIR, 1) >> 5).toBe(6);
    io.write(LCR, 1, 0x80);
    io.write(FCR, 1, 0x21);
    expect(io.read(IIR, 1) >> 5).toBe(6);
    io.write(LCR, 1, 0);
    // No XScale UUE bit
    io.write(IER, 1, 0x40);
    expect(io.read(IER, 1) & 0x40).toBe(0);
    // scratch register and loopback test (MCR LOOP|RTS|OUT2 -> MSR CTS|DCD)
    io.write(SCR, 1, 0xa5);
    expect(io.read(SCR, 1)).toBe(0xa5);
    io.write(MCR, 1, 0x10 | 0x0a);
    expect(io.read(MSR, 1) & 0xf0).toBe(0x90);
    io.write(MCR, 1, 0);
  });

  it("THRE interrupt behaves as serial8250_do_startup's THRE and TXEN tests expect", () => {
    const { io, uart } = setup();
    io.write(MCR, 1, 0x0b); // DTR RTS OUT2
    expect(io.read(LSR, 1) & 0x60).toBe(0x60);
    io.write(IER, 1, 0x02);
    const iir1 = io.read(IIR, 1);
    expect(iir1 & 1).toBe(0);
    expect(iir1 & 0x0f).toBe(0x02);
    io.write(IER, 1, 0);
    io.write(IER, 1, 0x02);
    const iir = io.read(IIR, 1);
    expect(iir & 1).toBe(0); // re-asserted: no UART_BUG_THRE
    expect(io.read(IIR, 1) & 1).toBe(1); // the IIR read cleared it
    io.write(IER, 1, 0);
    // TXEN test: enabling THRI with TEMT set shows an interrupt
    io.write(IER, 1, 0x02);
    expect(io.read(LSR, 1) & 0x40).toBe(0x40);
    expect(uart.irqAsserted()).toBe(true);
    expect(io.read(IIR, 1) & 1).toBe(0);
    io.write(IER, 1, 0);
  });

  it("sends THR bytes to the backend and re-raises THRE after each write", () => {
    const { io, out, irqEvents } = setup();
    io.write(MCR, 1, 0x08);
    io.write(IER, 1, 0x02);
    expect(irqEvents).toEqual([true]);
    expect(io.read(IIR, 1) & 0x0f).toBe(0x02);
    expect(irqEvents).toEqual([true, false]);
    for (const c of "hi\n") io.write(B, 1, c.charCodeAt(0));
    expect(String.fromCharCode(...out)).toBe("hi\n");
    expect(irqEvents).toEqual([true, false, true]);
    io.write(IER, 1, 0); // __stop_tx
    expect(irqEvents).toEqual([true, false, true, false]);
  });

  it("OUT2 gates the IRQ line; loopback forces it off", () => {
    const { io, uart } = setup();
    io.write(IER, 1, 0x02);
    expect(uart.irqAsserted()).toBe(false);
    io.write(MCR, 1, 0x08);
    expect(uart.irqAsserted()).toBe(true);
    io.write(MCR, 1, 0x18);
    expect(uart.irqAsserted()).toBe(false);
    expect(io.read(IIR, 1) & 1).toBe(0); // still pending inside the UART
  });

  it("reports interrupts in priority order: line status > data > THRE > modem status", () => {
    const { io } = setup();
    io.write(MCR, 1, 0x10); // loopback, all outputs low
    expect(io.read(MSR, 1)).toBe(0x0b); // CTS, DSR and DCD dropped (deltas), RI unchanged
    io.write(IER, 1, 0x0f);
    io.write(B, 1, 0x41); // 16450 mode: RBR holds it
    io.write(B, 1, 0x42); // overrun
    io.write(MCR, 1, 0x12); // RTS -> CTS: modem status change
    expect(io.read(IIR, 1)).toBe(0x06);
    expect(io.read(LSR, 1) & 0x03).toBe(0x03); // OE and DR; the read clears OE
    expect(io.read(IIR, 1)).toBe(0x04);
    expect(io.read(RX, 1)).toBe(0x42);
    expect(io.read(IIR, 1)).toBe(0x02);
    expect(io.read(IIR, 1)).toBe(0x00); // THRE cleared by the previous read
    expect(io.read(MSR, 1)).toBe(0x10 | 0x01);
    expect(io.read(IIR, 1)).toBe(0x01);
  });

  it("FIFO: the data interrupt waits for the trigger level, the timeout after 4 character times", () => {
    const { io, uart, clock } = setup();
    io.write(LCR, 1, 0x80);
    io.write(B, 1, 1); // 115200 baud
    io.write(B + 1, 1, 0);
    io.write(LCR, 1, 0x03); // 8N1
    io.write(FCR, 1, 0x81); // FIFO, trigger 8
    io.write(MCR, 1, 0x08);
    io.write(IER, 1, 0x01);
    const charNs = (10 * 1e9) / 115200;
    expect(uart.charTimeNs()).toBeCloseTo(charNs, 6);
    expect(uart.receive(new TextEncoder().encode("ls\n"))).toBe(3);
    expect(io.read(IIR, 1)).toBe(0xc1);
    clock.runDue(4 * charNs - 1);
    expect(io.read(IIR, 1)).toBe(0xc1);
    clock.runDue(4 * charNs + 1);
    expect(io.read(IIR, 1)).toBe(0xcc);
    expect(uart.irqAsserted()).toBe(true);
    expect(io.read(RX, 1)).toBe(0x6c); // the read clears the timeout and restarts it
    expect(io.read(IIR, 1)).toBe(0xc1);
    clock.runDue(clock.now() + 4 * charNs + 1);
    expect(io.read(IIR, 1)).toBe(0xcc);
    expect(io.read(RX, 1)).toBe(0x73);
    expect(io.read(RX, 1)).toBe(0x0a);
    expect(io.read(LSR, 1) & 1).toBe(0);
    expect(clock.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
    uart.receive(new Uint8Array(8).fill(0x61));
    expect(io.read(IIR, 1)).toBe(0xc4);
    io.write(FCR, 1, 0x83); // clear the receive FIFO
    expect(io.read(LSR, 1) & 1).toBe(0);
    expect(io.read(IIR, 1)).toBe(0xc1);
  });

  it("back-pressure: a full receive buffer refuses bytes and calls onRxSpace when drained", () => {
    const { io, uart, spaceCalls } = setup({ rxBufferSize: 4 });
    io.write(FCR, 1, 0x01);
    const data = new Uint8Array(30).map((_, i) => i);
    const n = uart.receive(data);
    expect(n).toBe(16 + 4);
    expect(spaceCalls()).toBe(0);
    expect(io.read(RX, 1)).toBe(0);
    expect(spaceCalls()).toBe(1);
    expect(uart.receive(data.subarray(n))).toBe(1);
    const got: number[] = [];
    while (io.read(LSR, 1) & 1) got.push(io.read(RX, 1));
    expect(got).toEqual([...data.subarray(1, 21)]);
    expect((io.read(LSR, 1) & 0x02) === 0).toBe(true); // never an overrun from the host side
  });

  it("loopback keeps host input waiting and delivers transmitted bytes to the receiver", () => {
    const { io, uart, out } = setup();
    io.write(FCR, 1, 0x07);
    io.write(MCR, 1, 0x10);
    uart.receive(Uint8Array.of(0x31));
    io.write(B, 1, 0x55);
    expect(out).toEqual([]);
    expect(io.read(RX, 1)).toBe(0x55);
    expect(io.read(LSR, 1) & 1).toBe(0);
    io.write(MCR, 1, 0x00);
    expect(io.read(RX, 1)).toBe(0x31);
    // FIFO overrun in loopback: 17th byte is lost
    io.write(MCR, 1, 0x10);
    for (let i = 0; i < 17; i++) io.write(B, 1, i);
    expect(io.read(LSR, 1) & 0x03).toBe(0x03);
    const got: number[] = [];
    while (io.read(LSR, 1) & 1) got.push(io.read(RX, 1));
    expect(got).toEqual([...Array(16).keys()]);
  });

  it("DLAB switches offsets 0 and 1 to the divisor latch", () => {
    const { io, uart } = setup();
    io.write(LCR, 1, 0x83);
    io.write(B, 1, 0x60);
    io.write(B + 1, 1, 0x00); // 1200 baud
    expect(io.read(B, 1)).toBe(0x60);
    io.write(LCR, 1, 0x03);
    expect(io.read(IER, 1)).toBe(0);
    expect(uart.charTimeNs()).toBeCloseTo((10 * 96 * 1e9) / 115200, 3);
    io.write(LCR, 1, 0x1f); // 8 data, 2 stop, even parity
    expect(uart.charTimeNs()).toBeCloseTo((12 * 96 * 1e9) / 115200, 3);
  });

  it("modem status inputs set delta bits and the modem status interrupt", () => {
    const { io, uart } = setup();
    io.write(MCR, 1, 0x08);
    io.write(IER, 1, 0x08);
    expect(io.read(MSR, 1)).toBe(0xb0);
    uart.setModemInputs({ ri: true });
    expect(io.read(IIR, 1)).toBe(0x01); // RI rising edge: no TERI
    uart.setModemInputs({ ri: false, cts: false });
    expect(io.read(IIR, 1)).toBe(0x00);
    expect(io.read(MSR, 1)).toBe(0xa0 | 0x04 | 0x01);
    expect(uart.irqAsserted()).toBe(false);
  });

  it("save/restore keeps FIFO, host buffer and pending timeout", () => {
    const { io, uart, clock } = setup({ rxBufferSize: 64 });
    io.write(FCR, 1, 0xc1);
    io.write(IER, 1, 0x01);
    uart.receive(new Uint8Array(20).map((_, i) => 0x40 + i));
    const st = JSON.parse(JSON.stringify(uart.save()));
    const b = setup({ rxBufferSize: 64 });
    b.uart.restore(st);
    const drain = (x: IoBus) => {
      const got: number[] = [];
      while (x.read(LSR, 1) & 1) got.push(x.read(RX, 1));
      return got;
    };
    expect(drain(b.io)).toEqual(drain(io));
    expect(() => b.uart.restore({ ...st, rxFifo: new Array(17).fill(0) })).toThrow(/uart.rxFifo/);
    // reset: registers and FIFO back to power-on, input still in the host-side buffer kept
    uart.receive(new Uint8Array(19).map((_, i) => i));
    uart.reset();
    expect(io.read(IER, 1)).toBe(0);
    expect(io.read(IIR, 1)).toBe(0x01); // FIFOs off
    expect(drain(io)).toEqual([16, 17, 18]);
    expect(() => new Uart({ clock, irq: { set: () => {} }, base: 0x10000 })).toThrow(ConfigError);
  });

  it("property: bytes offered in any chunks and read at any pace arrive in order, none lost", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        (data, paces, fifo) => {
          const { io, uart } = setup({ rxBufferSize: 32 });
          if (fifo) io.write(FCR, 1, 0x01);
          const got: number[] = [];
          let off = 0;
          let i = 0;
          while (got.length < data.length) {
            const pace = paces[i++ % paces.length]!;
            off += uart.receive(data.subarray(off, off + pace));
            for (let k = 0; k < pace && io.read(LSR, 1) & 1; k++) got.push(io.read(RX, 1));
          }
          expect(got).toEqual([...data]);
          expect(io.read(LSR, 1) & 0x02).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});
