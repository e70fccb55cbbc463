#!/usr/bin/env bash
# Installs the Debian packages the test suite uses beyond Node: the tools that build the default
# guest (apt, dpkg-deb, xz, cpio), QEMU (the reference PC some tests compare with), ACPICA's
# iasl/acpiexec (checks of our ACPI tables) and e2fsprogs (checks of guest file systems).
# Runs before `npm test`. It only installs what is missing, and only where it can (root with
# apt-get); elsewhere it says what is missing and the tests that need it skip with a message.
set -u
pkgs=(xz-utils cpio qemu-system-x86 acpica-tools e2fsprogs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup-system: not installing ${missing[*]} (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "setup-system: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/virtkit-apt.log 2>&1; then
  apt-get update -q >>/tmp/virtkit-apt.log 2>&1
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/virtkit-apt.log 2>&1 ||
    { echo "setup-system: apt-get install failed (see /tmp/virtkit-apt.log); tests that need ${missing[*]} will skip" >&2; exit 0; }
fi
exit 0
