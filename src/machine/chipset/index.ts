export * from "./i8042.js";
export * from "./pc-chipset.js";
export * from "./pic.js";
export * from "./pit.js";
export * from "./ports.js";
export * from "./rtc.js";
export * from "./uart.js";
