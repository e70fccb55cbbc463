/**
 * Where a function's MSI / MSI-X messages go. The machine implements it (a LAPIC, or a
 * recorder in tests); a function that sends MSI-X calls `sendMsi` with the message address
 * and data from its table entry, after checking the entry's mask and the capability's
 * enable and function-mask bits.
 */
export interface MsiTarget {
  sendMsi(addressLo: number, addressHi: number, data: number): void;
}

/** Message address window of x86 local APICs (0xFEEx_xxxx). */
export const MSI_ADDRESS_BASE = 0xfee0_0000;
export const MSI_ADDRESS_MASK = 0xfff0_0000;

/** True when a message address lies in the x86 interrupt window (0xFEE00000-0xFEEFFFFF, high half 0). */
export function isMsiAddress(addressLo: number, addressHi: number): boolean {
  return addressHi === 0 && (addressLo & MSI_ADDRESS_MASK) >>> 0 === MSI_ADDRESS_BASE;
}
