export type { ConsoleBackend, ConsolePortHost } from "./backend.js";
export { MemoryConsole } from "./backend.js";
export type { VirtioConsoleOptions, VirtioConsoleState } from "./console.js";
export { ConsoleError, VirtioConsole } from "./console.js";
export * from "./constants.js";
export type { ConsoleControlMessage, DriverPort } from "./driver.js";
export { ConsoleDriverError, ConsoleTestDriver } from "./driver.js";
export type { ConsolePortSpec, ConsolePortState } from "./port.js";
export { ConsolePort } from "./port.js";
