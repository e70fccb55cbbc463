export * from "./function.js";
export * from "./msi.js";
export * from "./regs.js";
