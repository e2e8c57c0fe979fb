#!/usr/bin/env bash
# make demo: the monitor on SQLite, the panel, and simulated beds, all on this machine.
set -euo pipefail
BEDS="${1:-6}"; HOST="${2:-127.0.0.1}"; MPORT="${3:-8000}"; PPORT="${4:-8050}"
PY=.venv/bin/python
DATA=./data
DB="sqlite:///$DATA/demo.db"
mkdir -p "$DATA"

echo "Vigil demo: not a certified medical device; the bedside monitor stays the primary alarm."
$PY -m simulators demo-devices --beds "$BEDS" > "$DATA/demo-devices.csv"
$PY -m monitor import-devices "$DATA/demo-devices.csv" --db "$DB" > "$DATA/demo-tokens.csv"
# Demo mode only: a generated password, printed below. Nothing else ships a default login.
PASSWORD="$($PY -c 'import secrets; print(secrets.token_urlsafe(9))')"
printf '%s
' "$PASSWORD" | $PY -m monitor add-user nurse --role charge --reset --db "$DB"
# The simulated ward's driver is a charge nurse: a discharge the vitals still block is
# overridden with a reason (audited), so that a bed never stays stuck (docs/protocols.md).
printf '%s
' "$PASSWORD" | $PY -m monitor add-user sim-driver --role charge --reset --db "$DB"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

$PY -m monitor serve --host "$HOST" --port "$MPORT" --db "$DB" > "$DATA/monitor.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  if $PY -c "import httpx,sys; sys.exit(httpx.get('http://$HOST:$MPORT/health').status_code!=200)" 2>/dev/null; then break; fi
  sleep 0.2
done
$PY -m dashboard --host "$HOST" --port "$PPORT" --monitor-url "http://$HOST:$MPORT" > "$DATA/panel.log" 2>&1 &
pids+=($!)
VIGIL_DEMO_USER=sim-driver VIGIL_DEMO_PASSWORD="$PASSWORD" VIGIL_DEMO_PROTOCOLS=iv-ketamine,esketamine \
  $PY -m simulators demo --beds "$BEDS" --url "ws://$HOST:$MPORT" --tokens "$DATA/demo-tokens.csv" > "$DATA/simulators.log" 2>&1 &
pids+=($!)

cat <<MSG

  Panel:    http://$HOST:$PPORT/
  Login:    nurse / $PASSWORD
  Monitor:  http://$HOST:$MPORT/  (API docs at /docs; logs in $DATA/)

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
echo "a demo process stopped; see $DATA/*.log" >&2
