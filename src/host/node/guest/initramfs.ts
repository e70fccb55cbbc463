/**
 * The default guest's initramfs: busybox, the kernel modules (with a modules.dep), an /init that
 * mounts proc/sys/devtmpfs, loads the modules in dependency order, prints a marker line and
 * hands over to busybox init, which runs a shell on the console the command line names.
 */
import { CpioWriter } from "../../../machine/boot/cpio.js";

/** Printed by /init once the modules are loaded: `VIRTKIT-GUEST-READY modules=N failed=... console=... kernel=...`. */
export const GUEST_READY_MARKER = "VIRTKIT-GUEST-READY";
/** Printed by /init when a module fails to load: `VIRTKIT-GUEST-INSMOD-FAILED name`. */
export const GUEST_INSMOD_FAILED_MARKER = "VIRTKIT-GUEST-INSMOD-FAILED";
/** The shell prompt of the default guest (set in /etc/profile). */
export const GUEST_PROMPT = "virtkit# ";

export interface GuestModuleFile {
  /** Module name (virtio_pci). */
  name: string;
  /** Path under /lib/modules/RELEASE/ (kernel/drivers/virtio/virtio_pci.ko). */
  path: string;
  /** The uncompressed .ko. */
  data: Uint8Array;
}

export interface GuestInitramfsInput {
  /** `uname -r` of the kernel (6.1.0-50-686). */
  kernelRelease: string;
  /** A statically linked busybox. */
  busybox: Uint8Array;
  /** Modules in load order (dependencies first). */
  modules: readonly GuestModuleFile[];
  /** modules.dep text for the included modules (lets busybox modprobe work too). */
  modulesDep: string;
  /** Adds the user's own files to the image. */
  extra?: (w: CpioWriter) => void;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/** The /init script. `modules` are paths under /lib/modules/RELEASE, in load order. */
export function initScript(kernelRelease: string, modules: readonly GuestModuleFile[]): string {
  const list = modules.map((m) => `  ${shQuote(m.path)}`).join(" \\\n");
  return `#!/bin/sh
# virtkit default guest /init (generated).
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /mnt /root /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev || mdev -s
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname virtkit
echo "virtkit-guest: loading ${modules.length} modules"
ok=0
failed=""
for m in \\
${list}
do
  name=\${m##*/}
  name=\${name%.ko}
  if insmod "/lib/modules/${kernelRelease}/$m"; then
    ok=$((ok + 1))
  else
    echo "${GUEST_INSMOD_FAILED_MARKER} $name"
    failed="$failed $name"
  fi
done
ip link set lo up 2>/dev/null
# The console the command line names last (console=ttyS0 or console=hvc0) gets the shell.
con=console
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    console=*) c=\${arg#console=}; c=\${c%%,*}; [ -n "$c" ] && con=$c ;;
  esac
done
[ -c "/dev/$con" ] || con=console
exec </dev/$con >/dev/$con 2>&1
echo "${GUEST_READY_MARKER} modules=$ok failed=\${failed:-none} console=$con kernel=$(uname -r)"
cat > /etc/inittab <<EOF
$con::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
EOF
exec /sbin/init
`;
}

const PROFILE = `export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
export TERM=\${TERM:-vt100}
PS1='${GUEST_PROMPT}'
cd /root
`;

/** The uncompressed newc archive of the default guest. */
export function buildGuestInitramfs(input: GuestInitramfsInput): Uint8Array {
  const w = new CpioWriter();
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "mnt", "root"]) {
    w.dir(d);
  }
  w.dir("tmp", { perm: 0o1777 });
  w.charDevice("dev/console", 5, 1);
  w.charDevice("dev/null", 1, 3, { perm: 0o666 });
  w.charDevice("dev/ttyS0", 4, 64, { perm: 0o660 });
  w.file("bin/busybox", input.busybox, { perm: 0o755 });
  w.symlink("bin/sh", "busybox");
  w.file("init", initScript(input.kernelRelease, input.modules), { perm: 0o755 });
  w.file("etc/profile", PROFILE);
  w.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  w.file("etc/group", "root:x:0:\n");
  w.file("etc/hostname", "virtkit\n");
  const base = `lib/modules/${input.kernelRelease}`;
  for (const m of input.modules) w.file(`${base}/${m.path}`, m.data);
  w.file(`${base}/modules.dep`, input.modulesDep);
  input.extra?.(w);
  return w.toBytes();
}
