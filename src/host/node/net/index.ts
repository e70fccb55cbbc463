export { PcapFile } from "./pcap-file.js";
export type { UdpBackendOptions, UdpCounters, UdpEndpoint } from "./udp.js";
export { UdpBackend } from "./udp.js";
