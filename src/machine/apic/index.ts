export * from "./io-apic.js";
export * from "./local-apic.js";
export * from "./pc-apic.js";
