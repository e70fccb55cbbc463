import { describe, expect, it } from "vitest";
import { ConfigError } from "../../common/errors.js";
import { checkE820, E820Type } from "../boot/zero-page.js";
import { buildE820, formatE820, MAX_RAM_SIZE, MIN_RAM_SIZE } from "./e820.js";

describe("e820 map", () => {
  it("describes 256 MiB as the kernel will print it", () => {
    expect(buildE820(256 << 20).map(formatE820)).toEqual([
      "BIOS-e820: [mem 0x0000000000000000-0x000000000009efff] usable",
      "BIOS-e820: [mem 0x000000000009f000-0x00000000000fffff] reserved",
      "BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable",
    ]);
  });

  it("covers 16 MiB to 3 GiB, with nothing above RAM", () => {
    for (const size of [MIN_RAM_SIZE, 64 << 20, 0x8000_0000, MAX_RAM_SIZE]) {
      const map = buildE820(size);
      checkE820(map);
      const ram = map.filter((e) => e.type === E820Type.RAM).reduce((n, e) => n + e.size, 0);
      expect(ram).toBe(size - 0x6_1000); // minus 0x9F000-0xFFFFF
      expect(Math.max(...map.map((e) => e.addr + e.size))).toBe(size);
      // the PCI window (0xE0000000 up) is never RAM
      expect(map.some((e) => e.addr + e.size > 0xe000_0000)).toBe(false);
    }
  });

  it("refuses sizes outside 16 MiB - 3 GiB or not page-sized, naming the size", () => {
    for (const bad of [MIN_RAM_SIZE - 4096, MAX_RAM_SIZE + 4096, (64 << 20) + 100, Number.NaN, -1]) {
      expect(() => buildE820(bad)).toThrow(ConfigError);
    }
    expect(() => buildE820(8 << 20)).toThrow(/from 16 MiB to 3 GiB, got 8388608/);
  });
});
