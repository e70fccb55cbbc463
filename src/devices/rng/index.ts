export type { EntropySource } from "./entropy.js";
export { cryptoEntropy, seededEntropy } from "./entropy.js";
export type { VirtioRngOptions, VirtioRngState } from "./rng.js";
export { VirtioRng } from "./rng.js";
