#!/bin/sh
# certq container entrypoint: `certq api | worker | simulator | migrate | agent` (default: api), and
# `certq healthz PORT`: exits 0 when the process on PORT answers /healthz (every image's HEALTHCHECK).
# exec keeps the Node process as PID 1's direct replacement, so SIGTERM reaches it and it drains.
set -eu
cd /app
target="${1:-api}"
[ "$#" -gt 0 ] && shift
# Each process runs with the tsx of its own package (a production dependency of it): an image pruned to
# one app has only that package's.
tsx() { echo "$1/node_modules/tsx/dist/cli.mjs"; }
case "$target" in
  api)       exec node "$(tsx apps/api)" apps/api/src/main.ts "$@" ;;
  worker)    exec node "$(tsx apps/worker)" apps/worker/src/main.ts "$@" ;;
  simulator) exec node "$(tsx apps/simulator)" apps/simulator/src/main.ts "$@" ;;
  migrate)   exec node "$(tsx packages/db)" packages/db/src/migrate-cli.ts "$@" ;;
  agent)     exec node apps/agent/dist/certq-agent.mjs "$@" ;;
  healthz)   exec node -e "fetch('http://127.0.0.1:' + process.argv[1] + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))" "$1" ;;
  *)         exec "$target" "$@" ;;
esac
