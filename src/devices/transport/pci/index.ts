export { MsixController, type MsixState } from "./msix.js";
export * from "./regs.js";
export { nextStatus, STATUS_RULES, type StatusAction, type StatusOutcome } from "./status.js";
export { type VirtioPciOptions, type VirtioPciState, VirtioPciTransport } from "./transport.js";
