#!/usr/bin/env bash
# Builds (or finds in the cache) the default guest before the tests, so the tests that boot
# Linux have it. Where it cannot be built (no apt-get, not root), those tests skip with a
# message, except in CI (CI=true), where a missing guest fails the run.
set -u
cd "$(dirname "$0")/.."
if npx tsx src/host/node/cli.ts guest build >/dev/null 2>/tmp/virtkit-guest-build.log; then
  exit 0
fi
echo "prepare-guest: the default guest could not be built:" >&2
tail -5 /tmp/virtkit-guest-build.log >&2
if [ "${CI:-}" = "true" ]; then exit 1; fi
exit 0
