/** Protected mode and paging for the x86 core: `attachProtectedMode(cpu)` installs both units. */
export { Descriptor, DescriptorTables, SegType, SysType } from "./descriptors.js";
export { LinearAccess } from "./memory.js";
export { attachProtectedMode, ProtectedMode } from "./unit.js";
export { Cr4, Paging, PfError, Pte, TLB_BITS } from "../paging.js";
