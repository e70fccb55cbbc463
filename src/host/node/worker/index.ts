export type { MachineWorkerOptions } from "./machine-worker.js";
export { MachineWorker } from "./machine-worker.js";
export type { PortBackend, PortLinkCounters } from "./port-backend.js";
export { portBackend } from "./port-backend.js";
export type { FileOrBytes, MachineStatus, WorkerMachineSpec } from "./protocol.js";
export { MachineWorkerError } from "./protocol.js";
