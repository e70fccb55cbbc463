/**
 * Node byte streams as virtio-console port backends: any Readable/Writable pair, stdin/stdout
 * in raw mode, a TCP or Unix socket (connected, or a listening server taking one client at a
 * time), and files.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { ConfigError } from "../../../common/errors.js";
import type { ConsoleBackend, ConsolePortHost } from "../../../devices/console/backend.js";

export interface StreamConsoleOptions {
  /**
   * Guest output buffered in the writable (writableLength) before the device is told to stop
   * taking transmit buffers (default 1 MiB). Below it, output never blocks the guest, which
   * matters for hvc: Linux spins until its console buffer is used.
   */
  outputHighWater?: number;
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return new TextEncoder().encode(chunk);
  throw new ConfigError(`console input stream gave a ${typeof chunk}, not bytes`);
}

/**
 * A port connected to a Readable (host input) and a Writable (guest output), either may be
 * null. Back-pressure both ways: the device pausing the port pauses the Readable; a Writable
 * past `outputHighWater` stops the guest's output until it drains. The end of the Readable
 * reports the host side closed (VIRTIO_CONSOLE_PORT_OPEN 0 to a multiport driver).
 */
export class StreamConsole implements ConsoleBackend {
  protected host: ConsolePortHost | null = null;
  protected input: Readable | null = null;
  protected output: Writable | null = null;
  private readonly highWater: number;
  private waitingDrain = false;
  private paused = false;
  /** Guest bytes written while no output stream was attached (counted, not kept). */
  discardedOutput = 0;
  /** The last error a stream reported. */
  lastError: Error | null = null;

  constructor(input: Readable | null, output: Writable | null, options: StreamConsoleOptions = {}) {
    this.highWater = options.outputHighWater ?? 1 << 20;
    this.attachInput(input);
    this.attachOutput(output);
  }

  private readonly onData = (chunk: unknown) => {
    this.host?.input(toBytes(chunk));
  };
  private readonly onEnd = () => {
    this.host?.setHostOpen(false);
  };
  private readonly onError = (e: Error) => {
    this.lastError = e;
  };
  private readonly onDrain = () => {
    if (this.waitingDrain) {
      this.waitingDrain = false;
      this.host?.outputDrained();
    }
  };

  /** Switches host input to `input` (null: none). */
  protected attachInput(input: Readable | null): void {
    if (this.input) {
      this.input.off("data", this.onData);
      this.input.off("end", this.onEnd);
      this.input.off("error", this.onError);
    }
    this.input = input;
    if (!input) return;
    input.on("data", this.onData);
    input.on("end", this.onEnd);
    input.on("error", this.onError);
    if (this.paused) input.pause();
  }

  /** Switches guest output to `output` (null: none). */
  protected attachOutput(output: Writable | null): void {
    if (this.output) {
      this.output.off("drain", this.onDrain);
      this.output.off("error", this.onError);
    }
    this.output = output;
    if (output) {
      output.on("drain", this.onDrain);
      output.on("error", this.onError);
    }
    if (this.waitingDrain) {
      this.waitingDrain = false;
      this.host?.outputDrained();
    }
  }

  connect(host: ConsolePortHost): void {
    this.host = host;
  }

  write(data: Uint8Array): boolean {
    const out = this.output;
    if (!out || out.destroyed || out.writableEnded) {
      this.discardedOutput += data.length;
      return true;
    }
    out.write(data.slice());
    if (out.writableLength > this.highWater) {
      this.waitingDrain = true;
      return false;
    }
    return true;
  }

  pause(): void {
    this.paused = true;
    this.input?.pause();
  }

  resume(): void {
    this.paused = false;
    this.input?.resume();
  }

  /** True while the device holds host input back (back-pressure). */
  get inputPaused(): boolean {
    return this.paused;
  }
}

export interface StdioConsoleOptions extends StreamConsoleOptions {
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
  /** Put a terminal stdin in raw mode (default true). Restored by `close()`. */
  raw?: boolean;
}

/**
 * stdin/stdout as a console port. With a terminal, stdin goes to raw mode and window size
 * changes are passed to the port (config cols/rows and VIRTIO_CONSOLE_RESIZE); `size` is the
 * size to give the port spec at start.
 */
export class StdioConsole extends StreamConsole {
  readonly size: { cols: number; rows: number } | null;
  private readonly stdin: NodeJS.ReadStream;
  private readonly stdout: NodeJS.WriteStream;
  private readonly wasRaw: boolean;
  private readonly onResize = () => {
    if (this.stdout.columns && this.stdout.rows) this.host?.resize(this.stdout.columns, this.stdout.rows);
  };

  constructor(options: StdioConsoleOptions = {}) {
    const stdin = options.stdin ?? process.stdin;
    const stdout = options.stdout ?? process.stdout;
    super(stdin, stdout, options);
    this.stdin = stdin;
    this.stdout = stdout;
    this.wasRaw = stdin.isTTY ? stdin.isRaw : false;
    if (stdin.isTTY && options.raw !== false) stdin.setRawMode(true);
    this.size = stdout.isTTY && stdout.columns ? { cols: stdout.columns, rows: stdout.rows } : null;
    if (stdout.isTTY) stdout.on("resize", this.onResize);
  }

  /** Leaves raw mode and stops listening. */
  close(): void {
    if (this.stdin.isTTY) this.stdin.setRawMode(this.wasRaw);
    this.stdout.off("resize", this.onResize);
    this.attachInput(null);
    this.stdin.pause();
  }
}

/** A connected socket (TCP or Unix) as a console port. */
export function socketConsole(socket: Socket, options: StreamConsoleOptions = {}): StreamConsole {
  return new StreamConsole(socket, socket, options);
}

/**
 * A listening TCP or Unix socket as a console port: one client at a time is the host end.
 * A client connecting opens the host side of the port, its going away closes it (PORT_OPEN to
 * a multiport driver); a second client is told so and disconnected while one is connected.
 * Guest output with no client is counted in `discardedOutput`.
 */
export class SocketServerConsole extends StreamConsole {
  readonly server: Server;
  private client: Socket | null = null;

  private constructor(server: Server, options: StreamConsoleOptions) {
    super(null, null, options);
    this.server = server;
    server.on("connection", (s) => this.accept(s));
  }

  /** Listens on a TCP port (`{ port, host }`, port 0 picks one) or a Unix socket path (`{ path }`). */
  static async listen(
    where: { port: number; host?: string } | { path: string },
    options: StreamConsoleOptions = {},
  ): Promise<SocketServerConsole> {
    const server = createServer();
    const backend = new SocketServerConsole(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e) =>
        reject(new ConfigError(`console socket ${JSON.stringify(where)}: cannot listen: ${e.message}`)),
      );
      server.listen(where, () => resolve());
    });
    return backend;
  }

  /** The bound address (TCP port number or socket path). */
  address(): string | number {
    const a = this.server.address();
    return typeof a === "string" ? a : (a?.port ?? 0);
  }

  /** True while a client is connected. */
  get connected(): boolean {
    return this.client !== null;
  }

  private accept(s: Socket): void {
    if (this.client) {
      s.end("virtkit: this console port already has a client\r\n");
      return;
    }
    this.client = s;
    this.attachInput(s);
    this.attachOutput(s);
    this.host?.setHostOpen(true);
    s.on("close", () => {
      if (this.client !== s) return;
      this.client = null;
      this.attachInput(null);
      this.attachOutput(null);
      this.host?.setHostOpen(false);
    });
  }

  override connect(host: ConsolePortHost): void {
    super.connect(host);
    // No client yet: the host side starts closed.
    host.setHostOpen(this.client !== null);
  }

  /** Disconnects the client and stops listening. */
  async close(): Promise<void> {
    this.client?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Files as a console port: guest output appended to `outputPath`, host input read from
 * `inputPath` (when given; its end closes the host side).
 */
export function fileConsole(
  outputPath: string,
  inputPath?: string,
  options: StreamConsoleOptions = {},
): StreamConsole {
  const out = createWriteStream(outputPath, { flags: "a" });
  const inp = inputPath !== undefined ? createReadStream(inputPath) : null;
  return new StreamConsole(inp, out, options);
}
