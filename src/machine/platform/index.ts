export * from "./acpi.js";
export * as aml from "./aml.js";
export * from "./checksum.js";
export * from "./e820.js";
export * from "./pir.js";
export * from "./pc.js";
export * from "./pm.js";
export * from "./tables.js";
export * from "./mptable.js";
