/** virtio-console constants (section 5.3), by their spec names. */

/** Feature bits (5.3.3). */
export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2;

/** Control events (5.3.6.2). */
export const VIRTIO_CONSOLE_DEVICE_READY = 0;
export const VIRTIO_CONSOLE_DEVICE_ADD = 1;
export const VIRTIO_CONSOLE_DEVICE_REMOVE = 2;
export const VIRTIO_CONSOLE_PORT_READY = 3;
export const VIRTIO_CONSOLE_CONSOLE_PORT = 4;
export const VIRTIO_CONSOLE_RESIZE = 5;
export const VIRTIO_CONSOLE_PORT_OPEN = 6;
export const VIRTIO_CONSOLE_PORT_NAME = 7;

/** Offsets in struct virtio_console_config (5.3.4). */
export const ConsoleConfig = {
  cols: 0,
  rows: 2,
  max_nr_ports: 4,
  emerg_wr: 8,
} as const;
export const CONSOLE_CONFIG_SIZE = 12;

/** Bytes of struct virtio_console_control. */
export const CONSOLE_CONTROL_SIZE = 8;

/** Queue indices (5.3.2). */
export const CONSOLE_CONTROL_RX = 2;
export const CONSOLE_CONTROL_TX = 3;

/** The receiveq of port `port`. */
export function consoleRxQueue(port: number): number {
  return port === 0 ? 0 : 2 + 2 * port;
}

/** The transmitq of port `port`. */
export function consoleTxQueue(port: number): number {
  return consoleRxQueue(port) + 1;
}

/** The port a data queue belongs to, or -1 for the control queues. */
export function consolePortOfQueue(queue: number): number {
  if (queue < 2) return 0;
  if (queue < 4) return -1;
  return (queue - 2) >> 1;
}
