/**
 * The virtio devices `virtkit run` attaches: parsing of --disk, --net, --pcap, --console,
 * --balloon, --rng (and their JSON config forms), and building them with their Node backends.
 */
import { existsSync, statSync, unlinkSync } from "node:fs";
import { ConfigError } from "../../common/errors.js";
import { VirtioBalloon } from "../../devices/balloon/index.js";
import { VirtioBlk } from "../../devices/blk/index.js";
import { type ConsoleBackend, VirtioConsole } from "../../devices/console/index.js";
import type { VirtioDevice } from "../../devices/device.js";
import { capture, NetSwitch, VirtioNet } from "../../devices/net/index.js";
import type { NetBackend } from "../../devices/net/index.js";
import { VirtioRng } from "../../devices/rng/index.js";
import { CowDisk, RawFileDisk } from "./blk/index.js";
import { fileConsole, SocketServerConsole, StdioConsole } from "./console/index.js";
import { PcapFile } from "./net/pcap-file.js";
import { UdpBackend } from "./net/udp.js";

export interface DiskSpec {
  path: string;
  readonly: boolean;
  overlay: boolean;
}

export type NetSpec = (
  | { kind: "hub"; hub: string }
  | { kind: "udp"; localPort: number; remoteHost: string; remotePort: number }
) & { mac?: string; pcap?: string };

export type ConsoleSpec = (
  | { kind: "stdio" }
  | { kind: "file"; path: string }
  | { kind: "tcp"; port: number }
  | { kind: "unix"; path: string }
) & { name?: string };

export interface DeviceSpecs {
  disks: DiskSpec[];
  nets: NetSpec[];
  consoles: ConsoleSpec[];
  balloon: boolean;
  rng: boolean;
}

export function emptyDeviceSpecs(): DeviceSpecs {
  return { disks: [], nets: [], consoles: [], balloon: false, rng: false };
}

function splitOptions(text: string, flag: string): { head: string; opts: Map<string, string | true> } {
  const parts = text.split(",");
  const head = parts.shift() ?? "";
  if (head === "") throw new ConfigError(`${flag}: '${text}' names nothing`);
  const opts = new Map<string, string | true>();
  for (const p of parts) {
    const eq = p.indexOf("=");
    opts.set(eq < 0 ? p : p.slice(0, eq), eq < 0 ? true : p.slice(eq + 1));
  }
  return { head, opts };
}

function refuseUnknown(opts: Map<string, unknown>, known: string[], flag: string): void {
  for (const k of opts.keys()) {
    if (!known.includes(k))
      throw new ConfigError(`${flag}: unknown option '${k}' (known: ${known.join(", ")})`);
  }
}

function port(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 0 || n > 65535)
    throw new ConfigError(`${what}: '${text}' is not a port number`);
  return n;
}

/** `FILE[,readonly][,overlay]` */
export function parseDisk(text: string, flag = "--disk"): DiskSpec {
  const { head, opts } = splitOptions(text, flag);
  refuseUnknown(opts, ["readonly", "overlay"], flag);
  return { path: head, readonly: opts.has("readonly"), overlay: opts.has("overlay") };
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** `hub[:NAME] | udp:LOCAL_PORT:REMOTE_HOST:REMOTE_PORT`, then `,mac=XX:XX:XX:XX:XX:XX` */
export function parseNet(text: string, flag = "--net"): NetSpec {
  const { head, opts } = splitOptions(text, flag);
  refuseUnknown(opts, ["mac"], flag);
  const mac = opts.get("mac");
  if (mac !== undefined && (mac === true || !MAC_RE.test(mac))) {
    throw new ConfigError(`${flag}: mac must look like 52:54:00:12:34:56, got '${mac === true ? "" : mac}'`);
  }
  const extra = mac === undefined ? {} : { mac: mac as string };
  if (head === "hub" || head.startsWith("hub:")) {
    const hub = head === "hub" ? "default" : head.slice(4);
    if (hub === "") throw new ConfigError(`${flag}: hub: needs a NAME`);
    return { kind: "hub", hub, ...extra };
  }
  const m = /^udp:(\d+):(.+):(\d+)$/.exec(head);
  if (m) {
    return {
      kind: "udp",
      localPort: port(m[1]!, flag),
      remoteHost: m[2]!.replace(/^\[(.*)\]$/, "$1"),
      remotePort: port(m[3]!, flag),
      ...extra,
    };
  }
  throw new ConfigError(`${flag}: '${head}' is not hub[:NAME] or udp:LOCAL_PORT:REMOTE_HOST:REMOTE_PORT`);
}

/** `stdio|file:PATH|tcp:PORT|unix:PATH`, then `,name=NAME` */
export function parseConsole(text: string, flag = "--console"): ConsoleSpec {
  const { head, opts } = splitOptions(text, flag);
  refuseUnknown(opts, ["name"], flag);
  const name = opts.get("name");
  if (name === true || name === "") throw new ConfigError(`${flag}: name= needs a value`);
  const extra = name === undefined ? {} : { name };
  if (head === "stdio") return { kind: "stdio", ...extra };
  if (head.startsWith("file:") && head.length > 5) return { kind: "file", path: head.slice(5), ...extra };
  if (head.startsWith("tcp:")) return { kind: "tcp", port: port(head.slice(4), flag), ...extra };
  if (head.startsWith("unix:") && head.length > 5) return { kind: "unix", path: head.slice(5), ...extra };
  throw new ConfigError(`${flag}: '${head}' is not stdio, file:PATH, tcp:PORT or unix:PATH`);
}

/** What was built, and how to close the backends (files, sockets) when the machine stops. */
export interface BuiltDevices {
  devices: VirtioDevice[];
  balloon: VirtioBalloon | null;
  nets: VirtioNet[];
  blks: VirtioBlk[];
  consoles: VirtioConsole | null;
  hubs: Map<string, NetSwitch>;
  close(): Promise<void>;
}

export interface BuildDevicesOptions {
  /**
   * Where a `hub:NAME` NIC plugs in (`index`: its place among the NICs). Default: a port of an
   * in-process NetSwitch per name (`BuiltDevices.hubs`). A machine in a worker thread uses it to
   * reach the main thread's switch.
   */
  hubPort?: (hub: string, index: number) => NetBackend;
}

/**
 * Opens every backend (a missing disk file, a UDP port in use, ... is a ConfigError naming the
 * flag) and builds the devices, in the order: disks, nets, console, balloon, rng.
 */
export async function buildDevices(
  specs: DeviceSpecs,
  options: BuildDevicesOptions = {},
): Promise<BuiltDevices> {
  const closers: (() => void | Promise<void>)[] = [];
  const out: BuiltDevices = {
    devices: [],
    balloon: null,
    nets: [],
    blks: [],
    consoles: null,
    hubs: new Map(),
    close: async () => {
      for (const c of closers.reverse()) await c();
    },
  };
  try {
    for (const d of specs.disks) {
      if (d.overlay && d.readonly)
        throw new ConfigError(`--disk ${d.path}: overlay and readonly exclude each other`);
      const backend = d.overlay
        ? await CowDisk.open(d.path)
        : await RawFileDisk.open(d.path, { readOnly: d.readonly });
      closers.push(() => backend.close?.());
      const blk = new VirtioBlk({ backend, readOnly: d.readonly, id: `virtkit${out.blks.length}` });
      out.blks.push(blk);
      out.devices.push(blk);
    }
    for (const n of specs.nets) {
      let backend: NetBackend;
      if (n.kind === "hub" && options.hubPort) {
        backend = options.hubPort(n.hub, out.nets.length);
      } else if (n.kind === "hub") {
        let hub = out.hubs.get(n.hub);
        if (!hub) out.hubs.set(n.hub, (hub = new NetSwitch()));
        backend = hub.port(`nic${out.nets.length}`);
      } else {
        const udp = await UdpBackend.open({
          local: { address: n.remoteHost.includes(":") ? "::" : "0.0.0.0", port: n.localPort },
          remote: { address: n.remoteHost, port: n.remotePort },
        });
        closers.push(() => udp.close());
        backend = udp;
      }
      if (n.pcap) {
        const file = new PcapFile(n.pcap);
        closers.push(() => file.close());
        backend = capture(backend, file.writer);
      }
      const mac = n.mac ?? `52:54:00:12:34:${(0x56 + out.nets.length).toString(16).padStart(2, "0")}`;
      const nic = new VirtioNet({ backend, mac });
      out.nets.push(nic);
      out.devices.push(nic);
    }
    if (specs.consoles.length > 0) {
      const ports = [];
      for (const c of specs.consoles) {
        let backend: ConsoleBackend;
        if (c.kind === "stdio") {
          const s = new StdioConsole();
          closers.push(() => s.close());
          backend = s;
        } else if (c.kind === "file") {
          backend = fileConsole(c.path);
        } else {
          // a socket file left by an earlier run is replaced (as QEMU's server sockets do)
          if (c.kind === "unix" && existsSync(c.path) && statSync(c.path).isSocket()) unlinkSync(c.path);
          const server = await SocketServerConsole.listen(
            c.kind === "tcp" ? { port: c.port } : { path: c.path },
          );
          closers.push(() => server.close());
          backend = server;
        }
        ports.push({ backend, ...(c.name ? { name: c.name } : {}) });
      }
      const con = new VirtioConsole({ ports });
      out.consoles = con;
      out.devices.push(con);
    }
    if (specs.balloon) {
      out.balloon = new VirtioBalloon();
      out.devices.push(out.balloon);
    }
    if (specs.rng) out.devices.push(new VirtioRng());
  } catch (e) {
    await out.close();
    throw e;
  }
  return out;
}
