import { describe, expect, it } from "vitest";
import {
  blkReadCommand,
  field,
  GuestBenchError,
  netListenCommand,
  netSendCommand,
  parsePingAvgMs,
  parseRealSeconds,
  rate,
} from "./guest-bench-util.js";

describe("guest bench helpers", () => {
  it("reads busybox time's real line (minutes, hours)", () => {
    expect(parseRealSeconds("32+0 records in\nreal\t0m 4.15s\nuser\t0m 0.13s\nsys\t0m 2.12s")).toBe(4.15);
    expect(parseRealSeconds("real\t2m 3.50s\n")).toBe(123.5);
    expect(parseRealSeconds("real\t1h 0m 1.00s")).toBe(3601);
  });

  it("refuses output without a real line, naming what it got", () => {
    expect(() => parseRealSeconds("dd: can't open '/dev/vda'")).toThrow(GuestBenchError);
    expect(() => parseRealSeconds("dd: can't open '/dev/vda'")).toThrow(/dev\/vda/);
  });

  it("reads NAME=[n] and ignores the echo of the typed command", () => {
    const log = `virtkit# echo "RECV=[$(nc -l -p 5001 | wc -c)]"\r\nRECV=[33554432]\r\n`;
    expect(field(log, "RECV")).toBe(33554432);
    expect(() => field(`echo "SENDRC=[$?]"`, "SENDRC")).toThrow(/no SENDRC/);
  });

  it("reads ping's average round trip", () => {
    const out =
      "5 packets transmitted, 5 packets received, 0% packet loss\nround-trip min/avg/max = 0.412/1.532/3.100 ms\n";
    expect(parsePingAvgMs(out)).toBe(1.532);
    expect(() => parsePingAvgMs("5 packets transmitted, 0 packets received, 100% packet loss")).toThrow(
      /no ping summary/,
    );
  });

  it("computes MiB/s and refuses times below busybox's resolution", () => {
    expect(rate(64, 4, "x")).toBe(16);
    expect(() => rate(64, 0, "blk read")).toThrow(/blk read took 0 s/);
    expect(() => rate(64, Number.NaN, "x")).toThrow(GuestBenchError);
  });

  it("builds commands whose typed echo cannot be mistaken for their results", () => {
    for (const cmd of [blkReadCommand(), netListenCommand(), netSendCommand("10.0.3.2")]) {
      expect(cmd).not.toMatch(/[A-Z]+=\[\d+\]/);
      expect(cmd).not.toMatch(/real\s+\d+m/);
    }
    expect(netSendCommand("10.0.3.2", 2)).toContain("count=32 ");
    expect(blkReadCommand(8, 3)).toContain("count=8 iflag=direct");
    expect(blkReadCommand(8, 3)).toContain("[ $i -lt 3 ]");
  });
});
