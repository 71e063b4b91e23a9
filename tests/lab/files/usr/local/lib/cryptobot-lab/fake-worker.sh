#!/bin/sh
# Stand-in for the bot's faucet_worker. It logs like the bot (Python's logging to stdout with the
# format "%(asctime)s [%(levelname)s] %(name)s - %(message)s", no syslog priority prefix, so every
# line is stored at priority info), writes the heartbeat file the way the real bot does (truncate
# and rewrite, four lines, a float epoch first) every second, and obeys control files in
# /run/fake-worker:
#   hang       stop writing the heartbeat but stay alive (a wedged scheduler loop); the worker
#              acknowledges by creating "hanging" (and removes it when "hang" goes away)
#   errors     holds a number N: log N "[ERROR]" lines, then the file is removed (so its
#              disappearance means the lines have been written)
#   say        lines to print as they are (e.g. a traceback), then the file is removed
#   crash      exit with status 1 (removed first, so the next start runs normally)
#   crash-at-start  exit 1 immediately on every start (while the file exists)
heartbeat=${HEARTBEAT_FILE:-/tmp/cryptobot_heartbeat}
ctl=/run/fake-worker
mkdir -p "$ctl"
log() { printf '%s [%s] %s - %s\n' "$(date '+%Y-%m-%d %H:%M:%S,%3N')" "$1" "$2" "$3"; }
if [ -e "$ctl/crash-at-start" ]; then log CRITICAL core.orchestrator "configured to crash at start"; exit 1; fi
log INFO core.orchestrator "fake worker started, heartbeat $heartbeat"
while :; do
  if [ -e "$ctl/errors" ]; then
    n=$(cat "$ctl/errors"); i=1
    while [ "$i" -le "${n:-0}" ]; do log ERROR faucets.firefaucet "simulated error $i of $n"; i=$((i + 1)); done
    rm -f "$ctl/errors"
  fi
  if [ -e "$ctl/say" ]; then cat "$ctl/say"; rm -f "$ctl/say"; fi
  if [ -e "$ctl/crash" ]; then rm -f "$ctl/crash"; log CRITICAL core.orchestrator "simulated crash"; exit 1; fi
  if [ -e "$ctl/hang" ]; then
    : > "$ctl/hanging"
  else
    rm -f "$ctl/hanging"
    now=$(date +%s.%N)
    # float epoch with six decimals, like Python's str(time.time())
    printf '%s\n0 jobs\n0 running\nAccounts: None\n' "${now%???}" > "$heartbeat"
  fi
  sleep 1
done
