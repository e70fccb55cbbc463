export type {
  BalloonCounters,
  BalloonEvent,
  BalloonStats,
  VirtioBalloonOptions,
  VirtioBalloonState,
} from "./balloon.js";
export { BalloonError, VirtioBalloon } from "./balloon.js";
export * from "./constants.js";
