import { describe, expect, it } from "vitest";
import { IoBus } from "../io-bus.js";
import {
  ACPI_PM_BASE,
  ACPI_PM_LENGTH,
  AcpiPm,
  PM1_CNT_SCI_EN,
  PM1_CNT_SLP_EN,
  PM1_STS_WAK,
  S5_SLP_TYP,
} from "./pm.js";

function setup() {
  const io = new IoBus();
  let offs = 0;
  const pm = new AcpiPm({ onPowerOff: () => offs++ });
  pm.register(io);
  expect(io.owner(ACPI_PM_BASE + ACPI_PM_LENGTH - 1)).toBe("ACPI PM1a");
  return { io, pm, offs: () => offs };
}

const CNT = ACPI_PM_BASE + 4;

describe("ACPI PM1a block", () => {
  it("powers off on SLP_EN with the SLP_TYP of \\_S5, as ACPICA's legacy sleep writes it", () => {
    const { io, pm, offs } = setup();
    expect(io.read(CNT, 2) & PM1_CNT_SCI_EN).toBe(PM1_CNT_SCI_EN);
    // clear WAK_STS, then: read PM1_CNT, write SLP_TYP, write SLP_TYP | SLP_EN
    io.write(ACPI_PM_BASE, 2, PM1_STS_WAK);
    let cnt = io.read(CNT, 2) & ~(0x1c00 | PM1_CNT_SLP_EN);
    cnt |= S5_SLP_TYP << 10;
    io.write(CNT, 2, cnt);
    expect(offs()).toBe(0);
    expect(io.read(CNT, 2)).toBe(cnt);
    io.write(CNT, 2, cnt | PM1_CNT_SLP_EN);
    expect(offs()).toBe(1);
    expect(pm.powerOffs).toBe(1);
    // SLP_EN reads back 0
    expect(io.read(CNT, 2) & PM1_CNT_SLP_EN).toBe(0);
  });

  it("ignores and counts SLP_EN with another sleep type", () => {
    const { io, pm, offs } = setup();
    io.write(CNT, 2, (1 << 10) | PM1_CNT_SLP_EN);
    io.write(CNT, 2, PM1_CNT_SLP_EN);
    expect(offs()).toBe(0);
    expect(pm.unsupportedSleeps).toBe(2);
  });

  it("takes byte writes: SLP_TYP and SLP_EN live in the high byte", () => {
    const { io, offs } = setup();
    io.write(CNT + 1, 1, (S5_SLP_TYP << 2) | 0x20);
    expect(offs()).toBe(1);
    // a dword write from PM1_EN reaches PM1_CNT too
    io.write(ACPI_PM_BASE + 2, 4, ((S5_SLP_TYP << 10) | PM1_CNT_SLP_EN) * 0x1_0000);
    expect(offs()).toBe(2);
  });

  it("keeps PM1_EN to its writable bits, clears PM1_STS by writing 1, reads unclaimed bytes as ones", () => {
    const { io, pm } = setup();
    io.write(ACPI_PM_BASE + 2, 2, 0xffff);
    expect(io.read(ACPI_PM_BASE + 2, 2)).toBe(0x0721);
    expect(io.read(ACPI_PM_BASE, 2)).toBe(0);
    expect(io.read(CNT, 4)).toBe(0xffff_0001);
    const s = pm.save();
    pm.reset();
    expect(io.read(ACPI_PM_BASE + 2, 2)).toBe(0);
    pm.restore(s);
    expect(io.read(ACPI_PM_BASE + 2, 2)).toBe(0x0721);
  });
});
