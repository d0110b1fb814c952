#!/bin/sh
# The container image's entrypoint (run by tini, which forwards signals and reaps children).
#
#   (no arguments)        causeflow serve
#   worker | migrate      causeflow worker / causeflow migrate
#   --port 9000 ...       options alone are serve's
#   anything else         that causeflow command: `tenant create --name acme --json`,
#                         `backup /data/backup.db`, `token --platform-admin`, ...
set -eu
if [ "$#" -eq 0 ]; then
  set -- serve
fi
case "$1" in
  -*) set -- serve "$@" ;;
esac

# On SQLite the store lives in the data directory: a volume this user cannot write is the
# usual mistake, and deserves a plain message rather than a failure deep inside SQLite.
data_dir="${CAUSEFLOW_DATA_DIR:-/data}"
if [ -z "${CAUSEFLOW_DATABASE_URL:-}" ] && [ -d "$data_dir" ] && [ ! -w "$data_dir" ]; then
  echo "error: the data directory $data_dir is not writable by uid $(id -u): use a named" \
    "volume, or give the mounted directory to uid $(id -u) (podman unshare chown $(id -u) DIR)" >&2
  exit 2
fi

exec causeflow "$@"
