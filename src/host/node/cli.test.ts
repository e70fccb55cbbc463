import { describe, expect, it } from "vitest";
import { ConfigError } from "../../common/errors.js";
import { parseArgs } from "./cli.js";
import { parseSize } from "./options.js";

describe("virtkit command line", () => {
  it("parses run with every option", () => {
    const p = parseArgs([
      "run",
      "--kernel",
      "k",
      "--initrd",
      "i",
      "--append",
      "console=ttyS0 quiet",
      "--memory",
      "512M",
      "--serial",
      "file:/tmp/s.log",
      "--clock",
      "virtual",
      "--no-reboot",
      "--disk",
      "a.img,readonly",
      "--disk",
      "b.img,overlay",
      "--net",
      "hub:lan,mac=52:54:00:aa:bb:cc",
      "--pcap",
      "lan.pcap",
      "--net",
      "udp:5000:127.0.0.1:5001",
      "--console",
      "tcp:4444",
      "--console",
      "unix:/tmp/c.sock,name=org.virtkit.data",
      "--balloon",
      "--rng",
      "--control",
      "/tmp/ctl.sock",
    ]);
    expect(p.command).toBe("run");
    const s = p.spec;
    expect(s).toMatchObject({ kernel: "k", initrd: "i", append: "console=ttyS0 quiet", memory: 512 << 20 });
    expect(s.serial).toEqual({ kind: "file", path: "/tmp/s.log" });
    expect(s.clock).toBe("virtual");
    expect(s.noReboot).toBe(true);
    expect(s.devices.disks).toEqual([
      { path: "a.img", readonly: true, overlay: false },
      { path: "b.img", readonly: false, overlay: true },
    ]);
    expect(s.devices.nets).toEqual([
      { kind: "hub", hub: "lan", mac: "52:54:00:aa:bb:cc", pcap: "lan.pcap" },
      { kind: "udp", localPort: 5000, remoteHost: "127.0.0.1", remotePort: 5001 },
    ]);
    expect(s.devices.consoles).toEqual([
      { kind: "tcp", port: 4444 },
      { kind: "unix", path: "/tmp/c.sock", name: "org.virtkit.data" },
    ]);
    expect(s.devices.balloon && s.devices.rng).toBe(true);
    expect(s.control).toBe("/tmp/ctl.sock");
  });

  it("refuses bad flags with a message naming them", () => {
    const bad: [string[], RegExp][] = [
      [["run"], /needs --kernel/],
      [["run", "--kernel"], /--kernel needs a value/],
      [["run", "--kernel", "k", "--memory", "8M"], /16M to 3G/],
      [["run", "--kernel", "k", "--memory", "lots"], /not a size/],
      [["run", "--kernel", "k", "--serial", "tty"], /--serial: 'tty'/],
      [["run", "--kernel", "k", "--clock", "fast"], /--clock: 'fast'/],
      [["run", "--kernel", "k", "--frobnicate"], /unknown option '--frobnicate'/],
      [["run", "--kernel", "k", "--disk", "a.img,rw"], /--disk: unknown option 'rw'/],
      [["run", "--kernel", "k", "--net", "tap0"], /--net: 'tap0'/],
      [["run", "--kernel", "k", "--net", "hub,mac=zz"], /mac must look like/],
      [["run", "--kernel", "k", "--net", "udp:70000:h:1"], /not a port number/],
      [["run", "--kernel", "k", "--pcap", "x"], /give a --net first/],
      [["run", "--kernel", "k", "--console", "stdio"], /both want the terminal/],
      [["fly"], /unknown command 'fly'/],
      [["guest", "build", "--kernel", "k"], /unknown option '--kernel' for guest build/],
    ];
    for (const [argv, re] of bad) {
      expect(() => parseArgs(argv), argv.join(" ")).toThrow(ConfigError);
      expect(() => parseArgs(argv), argv.join(" ")).toThrow(re);
    }
  });

  it("reads --config, resolving paths from the file's folder; flags override and add", () => {
    const cfg = {
      kernel: "vmlinuz",
      memory: "1G",
      disks: ["disk.img"],
      rng: true,
      serial: "none",
    };
    const p = parseArgs(
      ["run", "--config", "/etc/vk/m.json", "--memory", "128M", "--disk", "/x.img"],
      () => cfg,
    );
    expect(p.spec.kernel).toBe("/etc/vk/vmlinuz");
    expect(p.spec.memory).toBe(128 << 20);
    expect(p.spec.devices.disks.map((d) => d.path)).toEqual(["disk.img", "/x.img"]);
    expect(p.spec.devices.rng).toBe(true);
    expect(() => parseArgs(["run", "--config", "c.json"], () => ({ kernel: "k", memroy: 1 }))).toThrow(
      /field 'memroy' is not a known field/,
    );
    expect(() => parseArgs(["run", "--config", "c.json"], () => ({ kernel: 5 }))).toThrow(
      /field 'kernel' must be a string/,
    );
    expect(() => parseArgs(["run", "--config", "c.json"], () => ({ kernel: "k", disks: "a.img" }))).toThrow(
      /field 'disks' must be an array/,
    );
    expect(() => parseArgs(["run", "--config", "c.json"], () => [1])).toThrow(/must be a JSON object/);
  });

  it("parses sizes", () => {
    expect(parseSize("256M", "x")).toBe(256 << 20);
    expect(parseSize("1G", "x")).toBe(1 << 30);
    expect(parseSize("65536K", "x")).toBe(64 << 20);
    expect(parseSize("4096", "x")).toBe(4096);
    expect(() => parseSize("1.5G", "x")).toThrow(ConfigError);
  });

  it("help lists every option", () => {
    expect(parseArgs(["--help"]).command).toBe("help");
  });
});
