/**
 * Save and restore of state. A state `S` is a plain, JSON-serialisable object (numbers,
 * strings, booleans, arrays and nested plain objects; byte arrays as number arrays or base64),
 * so a snapshot can be written anywhere and read back in another process.
 */
export interface Persist<S> {
  save(): S;
  restore(state: S): void;
}

export interface Resettable {
  reset(): void;
}
