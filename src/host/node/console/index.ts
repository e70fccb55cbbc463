export type { StdioConsoleOptions, StreamConsoleOptions } from "./stream.js";
export { fileConsole, SocketServerConsole, StdioConsole, StreamConsole, socketConsole } from "./stream.js";
