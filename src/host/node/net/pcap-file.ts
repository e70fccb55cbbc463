/** A pcap capture file on disk (what tcpdump -r and tshark -r read). */
import { closeSync, openSync, writeSync } from "node:fs";
import { PcapWriter, type PcapWriterOptions } from "../../../devices/net/pcap.js";

export class PcapFile {
  readonly writer: PcapWriter;
  private fd: number | null;

  /** Creates (or truncates) `path` and writes the pcap header. */
  constructor(path: string, options: PcapWriterOptions = {}) {
    const fd = openSync(path, "w");
    this.fd = fd;
    this.writer = new PcapWriter((chunk) => {
      if (this.fd !== null) writeSync(this.fd, chunk);
    }, options);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
