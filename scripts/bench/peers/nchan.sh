#!/usr/bin/env bash
# Runs nginx + nchan in the foreground as the benchmark peer (see nchan.conf.in).
# Usage: scripts/bench/peers/nchan.sh DIR PORT [WORKERS=1]
# DIR (created if missing; disposable) receives the configuration, pid file, logs and temp
# paths. The script becomes the nginx master (exec), so its PID is the master's; the master
# runs in the foreground and stops with its workers on SIGTERM.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:?usage: nchan.sh DIR PORT [WORKERS]}" port="${2:?usage: nchan.sh DIR PORT [WORKERS]}"
workers="${3:-1}"
# The module as Debian's libnginx-mod-nchan installs it.
module=$(dpkg -L libnginx-mod-nchan 2>/dev/null | grep '/ngx_nchan_module\.so$' | head -n 1 || true)
if [ -z "$module" ] || [ ! -f "$module" ]; then
    echo "nchan.sh: the nchan module is missing (apt-get install libnginx-mod-nchan)" >&2
    exit 2
fi
command -v nginx >/dev/null || { echo "nchan.sh: nginx is missing" >&2; exit 2; }

# nginx cannot raise its workers' descriptor limit past the hard one; connection slots are
# twice that (see nchan.conf.in).
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
connections=$((nofile * 2))

mkdir -p "$dir"
sed -e "s|@MODULE@|$module|g" -e "s|@WORKERS@|$workers|g" -e "s|@NOFILE@|$nofile|g" \
    -e "s|@CONNECTIONS@|$connections|g" -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" \
    "$here/nchan.conf.in" >"$dir/nginx.conf"
exec nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
