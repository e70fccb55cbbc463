/**
 * The control socket (`--control PATH`): a Unix socket speaking JSON lines. Each request is one
 * JSON object on a line with a `cmd`; each answer is one JSON object on a line, `{"ok":true,...}`
 * or `{"ok":false,"error":"..."}`.
 *
 *   {"cmd":"status"}                       machine state: instructions, guest time, devices
 *   {"cmd":"balloon.set","bytes":N}        set the balloon's target size
 *   {"cmd":"balloon.get"}                  target and current size (bytes)
 *   {"cmd":"balloon.stats"}                ask the guest for fresh statistics; the latest ones
 *   {"cmd":"quit"}                         stop the machine
 */
import { existsSync, statSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { Machine } from "../../machine/machine.js";
import type { BuiltDevices } from "./devices.js";

type Reply = Record<string, unknown>;

export function handleControl(machine: Machine, devices: BuiltDevices, line: string): Reply {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: "not a JSON object" };
  }
  if (typeof req !== "object" || req === null || typeof (req as { cmd?: unknown }).cmd !== "string") {
    return { ok: false, error: "a request is a JSON object with a string 'cmd'" };
  }
  const r = req as { cmd: string; bytes?: unknown };
  const balloon = devices.balloon;
  switch (r.cmd) {
    case "status":
      return {
        ok: true,
        instructions: machine.cpu.instructions,
        guestTimeNs: machine.timers.now(),
        devices: machine.transports.map((t) => t.device.name),
      };
    case "quit":
      machine.requestStop({ kind: "stopped", detail: "quit through the control socket" });
      return { ok: true };
    case "balloon.set":
    case "balloon.get":
    case "balloon.stats": {
      if (!balloon) return { ok: false, error: "no balloon (start with --balloon)" };
      if (r.cmd === "balloon.set") {
        if (typeof r.bytes !== "number" || !Number.isSafeInteger(r.bytes) || r.bytes < 0) {
          return { ok: false, error: "balloon.set needs 'bytes', a non-negative integer" };
        }
        try {
          balloon.setTarget(r.bytes);
        } catch (e) {
          return { ok: false, error: (e as Error).message };
        }
        machine.kick();
      }
      if (r.cmd === "balloon.stats") {
        balloon.requestStats();
        machine.kick();
        return { ok: true, stats: balloon.stats };
      }
      return { ok: true, target: balloon.target, current: balloon.currentSize };
    }
    default:
      return {
        ok: false,
        error: `unknown cmd '${r.cmd}' (status, quit, balloon.set, balloon.get, balloon.stats)`,
      };
  }
}

/** Listens on `path` (a stale socket file there is replaced). */
export function startControl(path: string, machine: Machine, devices: BuiltDevices): Promise<Server> {
  if (existsSync(path) && statSync(path).isSocket()) unlinkSync(path);
  const server = createServer((sock: Socket) => {
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > 1 << 20) {
        sock.end(`${JSON.stringify({ ok: false, error: "line too long" })}\n`);
        return;
      }
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line !== "") sock.write(`${JSON.stringify(handleControl(machine, devices, line))}\n`);
      }
    });
    sock.on("error", () => {});
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
