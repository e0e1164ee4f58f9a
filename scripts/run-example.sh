#!/usr/bin/env bash
# Starts a starter app on the in-memory broker (or FRESHET_BROKER's): set-up (the packages that
# building and running need, configure, build), then run.
# Usage: scripts/run-example.sh [chat|ticker|notifications|dashboard|workspace] [--listen HOST:PORT]
# An example that ships a backend.py (the app's own backend, which its route scripts call) gets
# it started beside freshet on 127.0.0.1:3001, and stopped with it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name="chat"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then name="$1"; shift; fi
app="$root/scripts/examples/$name/app.lua"
[ -f "$app" ] || { echo "run-example: no example named '$name' (scripts/examples/*/app.lua)" >&2; exit 2; }
# Only what building and running need; redis-server when the broker is Redis
# (FRESHET_BROKER=redis://…, which every example reads), python3 for an example's backend.py.
with=()
case "${FRESHET_BROKER:-memory}" in redis*) with+=(--with redis-server) ;; esac
[ -f "$root/scripts/examples/$name/backend.py" ] && with+=(--with python3)
"$root/scripts/setup.sh" --run "${with[@]}" "$root/build"

listen="127.0.0.1:3000"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = "--listen" ] && [ $((i + 1)) -lt ${#args[@]} ] && listen="${args[$((i + 1))]}"
done
example_lines="$root/scripts/examples/$name/try.txt"
echo
echo "freshet: starting the $name example on http://$listen/ (Ctrl-C stops it)"
if [ -f "$example_lines" ]; then
    sed "s|127.0.0.1:3000|$listen|g" "$example_lines"
fi
echo
backend="$root/scripts/examples/$name/backend.py"
if [ ! -f "$backend" ]; then
    exec "$root/build/freshet" "$app" "$@"
fi
python3 "$backend" --port 3001 &
backend_pid=$!
trap 'kill "$backend_pid" 2>/dev/null || true' EXIT INT TERM
"$root/build/freshet" "$app" "$@"
