/**
 * What a virtio-console port is connected to on the host: a byte stream both ways, with
 * back-pressure in both directions.
 */

/** What the device offers a backend (one per port). */
export interface ConsolePortHost {
  /**
   * Host input for the guest. The device keeps a copy and delivers it as the guest posts
   * receive buffers. Returns false once the port holds more undelivered bytes than its bound:
   * the device has then called `pause()` and calls `resume()` when the guest has caught up.
   */
  input(data: Uint8Array): boolean;
  /** The host end connected or went away (VIRTIO_CONSOLE_PORT_OPEN to a multiport driver). */
  setHostOpen(open: boolean): void;
  /** The terminal size changed (console ports: config cols/rows and VIRTIO_CONSOLE_RESIZE). */
  resize(cols: number, rows: number): void;
  /** The backend can take output again after `write` returned false. */
  outputDrained(): void;
}

/** A host end of a port. */
export interface ConsoleBackend {
  /** Called once when the port is created. */
  connect(host: ConsolePortHost): void;
  /**
   * Guest output. `data` is a view valid only during the call (copy what you keep). Return
   * false to say "no more for now": the device stops taking transmit buffers of this port
   * until `host.outputDrained()`.
   */
  write(data: Uint8Array): boolean | undefined;
  /** Stop producing input until `resume()` (the port's input buffer is past its bound). */
  pause(): void;
  resume(): void;
  /** The guest opened (true) or closed (false) the port. */
  guestOpen?(open: boolean): void;
}

/**
 * An in-memory host end, for tests and for programs that drive a console themselves: what
 * the guest writes is collected in `output`; `send` is host input.
 */
export class MemoryConsole implements ConsoleBackend {
  private host: ConsolePortHost | null = null;
  private readonly chunks: Uint8Array[] = [];
  /** True between pause() and resume(). */
  paused = false;
  pauses = 0;
  /** The guest's open state as last reported. */
  guestIsOpen = false;
  /** While true, `write` returns false after taking the bytes (a slow host). */
  blockOutput = false;
  /** Called on every guest write (after the bytes were stored). */
  onOutput: ((data: Uint8Array) => void) | null = null;

  connect(host: ConsolePortHost): void {
    this.host = host;
  }

  write(data: Uint8Array): boolean {
    const copy = data.slice();
    this.chunks.push(copy);
    this.onOutput?.(copy);
    return !this.blockOutput;
  }

  pause(): void {
    this.paused = true;
    this.pauses++;
  }

  resume(): void {
    this.paused = false;
  }

  guestOpen(open: boolean): void {
    this.guestIsOpen = open;
  }

  private port(): ConsolePortHost {
    if (!this.host) throw new Error("MemoryConsole is not connected to a port");
    return this.host;
  }

  /** Host input: false when the device asked to pause. */
  send(data: Uint8Array | string): boolean {
    return this.port().input(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  setOpen(open: boolean): void {
    this.port().setHostOpen(open);
  }

  resize(cols: number, rows: number): void {
    this.port().resize(cols, rows);
  }

  /** Lets output flow again after `blockOutput`. */
  unblock(): void {
    this.blockOutput = false;
    this.port().outputDrained();
  }

  /** Everything the guest wrote, concatenated. */
  output(): Uint8Array {
    let n = 0;
    for (const c of this.chunks) n += c.length;
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  outputText(): string {
    return new TextDecoder().decode(this.output());
  }

  /** Forgets the collected output. */
  clearOutput(): void {
    this.chunks.length = 0;
  }
}
