#!/bin/sh
# cryptoctl remote script: everything cryptoctl does on a VM happens in one run of this script.
# It prints one line `CRYPTOCTL-RESULT v=1 key=value ...` (blobs are gz:<gzip+base64> or
# b64:<base64>) and, last, `CRYPTOCTL-EXIT <status>`, so only the end of stdout matters and the
# script's exit status survives transports that do not return one.
# Arguments (never evaluated, only compared or passed as quoted arguments):
#   $1 action: health | restart | pause | resume | logs
#   $2 agent path (else cryptobot-agent from PATH)
#   $3 output budget in bytes (0: unlimited)
#   health: $4 alert (0|1)  $5 app user for the update check (-: none)  $6 app dir
#   restart: $4 force (0|1)          pause: $4 seconds (0: until resume)
#   logs: $4 worker|agent  $5 since seconds (0: all)  $6 lines  $7 priority 0-7 or -
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
WORKER=faucet_worker.service
AGENT_UNIT=cryptobot-agent.service
action=$1
agent=$2
budget=$3
shift 3
fields="v=1"
big=""
extra=""
rc=0
case $budget in '' | *[!0-9]*) budget=0 ;; esac

# trim_report LEVEL: the agent's report ($tmp/out) made smaller into $tmp/trimmed, keeping the
# original fields (status, alerts, the five numbers) whatever happens: "events" leaves out the
# daemon's event history, "detail" keeps only the original fields and the unit's state, "alerts"
# also shortens each alert text (at most 10, 200 bytes each).
trim_report() {
  command -v python3 >/dev/null 2>&1 || return 1
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
level = sys.argv[2]
d = r.get("daemon")
if isinstance(d, dict) and isinstance(d.get("events"), list):
    d["events_left_out"] = len(d["events"])
    d["events"] = []
if level in ("detail", "alerts"):
    unit = r.get("unit") if isinstance(r.get("unit"), dict) else {}
    keep = ["timestamp", "status", "service_active", "service_running", "crash_count",
            "disk_usage_percent", "memory_usage_percent", "heartbeat_age_seconds", "alerts",
            "metrics"]
    r = {k: r[k] for k in keep if k in r}
    if "active_state" in unit:
        r["unit"] = {"active_state": unit["active_state"]}
if level == "alerts":
    def cut(t):
        b = str(t).encode()
        return t if len(b) <= 200 else b[:200].decode("utf-8", "ignore") + "\u2026"
    r["alerts"] = [cut(t) for t in (r.get("alerts") or [])[:10]]
    r.pop("metrics", None)
json.dump(r, sys.stdout, separators=(",", ":"), ensure_ascii=False)
' "$tmp/out" "$1" >"$tmp/trimmed" 2>/dev/null
}

finish() {
  line="CRYPTOCTL-RESULT $fields$big$extra"
  if [ "$budget" -gt 0 ] && [ "${#line}" -gt "$budget" ]; then
    line="CRYPTOCTL-RESULT $fields$big truncated=1"
  fi
  # A report that does not fit is trimmed step by step rather than dropped.
  if [ "$budget" -gt 0 ] && [ "${#line}" -gt "$budget" ] && [ -n "${report_in_big:-}" ]; then
    for level in events detail alerts; do
      trim_report "$level" || break
      line="CRYPTOCTL-RESULT $fields report_trimmed=$level report=$(enc "$tmp/trimmed") truncated=1"
      [ "${#line}" -le "$budget" ] && break
    done
  fi
  if [ "$budget" -gt 0 ] && [ "${#line}" -gt "$budget" ]; then
    line="CRYPTOCTL-RESULT $fields truncated=1 dropped=1"
  fi
  printf '%s\n' "$line"
  printf 'CRYPTOCTL-EXIT %s\n' "$rc"
  exit "$rc"
}

add() { fields="$fields $1=$2"; }

enc() {
  if command -v gzip >/dev/null 2>&1 && command -v base64 >/dev/null 2>&1; then
    printf 'gz:'
    gzip -c -n <"$1" | base64 | tr -d '\n'
  else
    printf 'b64:'
    base64 <"$1" | tr -d '\n'
  fi
}

# add_blob FIELDS|BIG|EXTRA KEY FILE: a non-empty file, encoded
add_blob() {
  [ -s "$3" ] || return 0
  b=" $2=$(enc "$3")"
  case $1 in
    big) big="$big$b" ;;
    extra) extra="$extra$b" ;;
    *) fields="$fields$b" ;;
  esac
}

unit_state() {
  s=$(systemctl is-active "$1" 2>/dev/null)
  case $s in
    active | inactive | failed | activating | deactivating | reloading) printf '%s' "$s" ;;
    *) printf 'unknown' ;;
  esac
}

number() {
  case $1 in '' | *[!0-9]*) printf '0' ;; *) printf '%s' "$1" ;; esac
}

case $action in
  health | restart | pause | resume | logs) add action "$action" ;;
  *)
    add action invalid
    rc=64
    finish
    ;;
esac

tmp=$(mktemp -d 2>/dev/null) || {
  add error mktemp
  rc=70
  finish
}
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/out"
: >"$tmp/err"

if [ ! -x "$agent" ]; then
  found=$(command -v cryptobot-agent 2>/dev/null) && [ -x "$found" ] && agent=$found
fi
if [ -x "$agent" ]; then
  have_agent=1
  add agent present
else
  have_agent=0
  add agent missing
fi

# The agent's report into $tmp/out: the daemon's (status --json), else a one-shot check.
report() {
  src=none
  code=3
  if [ "$have_agent" = 1 ]; then
    "$agent" status --json >"$tmp/out" 2>"$tmp/err" </dev/null
    code=$?
    if [ "$(head -c 1 "$tmp/out")" = "{" ]; then
      src=status
    else
      "$agent" check --json >"$tmp/out" 2>"$tmp/err" </dev/null
      code=$?
      src=check
    fi
  fi
}

add_report() {
  add source "$src"
  add code "$code"
  add worker "$(unit_state "$WORKER")"
  add_blob big report "$tmp/out"
  [ -s "$tmp/out" ] && report_in_big=1
  tail -c 1500 "$tmp/err" >"$tmp/err.tail"
  add_blob extra stderr "$tmp/err.tail"
}

# updates USER DIR: is the checkout behind the tip of its deployed ref on the remote? git runs as
# the app user within a deadline and fetches only into refs/remotes (the working tree is untouched).
updates() {
  user=$1 dir=$2
  bad=""
  case $user in '' | root | -* | *[!a-z0-9_.-]*) bad="bad app user" ;; esac
  case $dir in /*) ;; *) bad="bad app dir" ;; esac
  case $dir in *[!A-Za-z0-9_./-]* | *..*) bad="bad app dir" ;; esac
  if [ -n "$bad" ]; then
    add updates unknown
    printf '%s' "$bad" >"$tmp/upd"
    add_blob fields updates_reason "$tmp/upd"
    return 0
  fi
  ref=$(cat /var/lib/cryptobot-deploy/deployed_ref 2>/dev/null)
  case $ref in '' | -* | *[!A-Za-z0-9._/-]* | *..*) ref=master ;; esac
  home=$(getent passwd "$user" | cut -d: -f6)
  if [ ! -d "$dir/.git" ]; then
    add updates unknown
    printf 'no git checkout at %s' "$dir" >"$tmp/upd"
  elif ! timeout 30 runuser -u "$user" -- env HOME="${home:-/}" GIT_TERMINAL_PROMPT=0 \
    GIT_SSH_COMMAND='ssh -o BatchMode=yes -o ConnectTimeout=10' \
    git -C "$dir" fetch -q origin "+refs/heads/$ref:refs/remotes/origin/$ref" >"$tmp/upd" 2>&1 </dev/null; then
    add updates unknown
    { printf 'git fetch of %s failed or timed out: ' "$ref"; tail -n 1 "$tmp/upd"; } >"$tmp/upd.msg"
    mv -f "$tmp/upd.msg" "$tmp/upd"
  else
    : >"$tmp/upd"
    behind=$(runuser -u "$user" -- git -C "$dir" rev-list --count "HEAD..refs/remotes/origin/$ref" 2>/dev/null)
    case $behind in
      '' | *[!0-9]*)
        add updates unknown
        printf 'cannot compare HEAD with origin/%s' "$ref" >"$tmp/upd"
        ;;
      0) add updates current ;;
      *)
        add updates behind
        add updates_behind "$behind"
        ;;
    esac
    add updates_ref "$ref"
  fi
  add_blob fields updates_reason "$tmp/upd"
}

health() {
  [ "$2" != - ] && updates "$2" "$3"
  if [ "$have_agent" = 1 ] && [ "$1" = 1 ]; then
    "$agent" check --alert --json >"$tmp/out" 2>"$tmp/err" </dev/null
    code=$?
    if [ "$code" = 64 ]; then
      add alert unsupported
      report
    else
      add alert requested
      src=check
    fi
  else
    report
  fi
  add_report
  rc=$code
}

restart() {
  via=none
  code=70
  if [ "$have_agent" = 1 ]; then
    if [ "$1" = 1 ]; then
      "$agent" restart --force >"$tmp/rout" 2>&1 </dev/null
    else
      "$agent" restart >"$tmp/rout" 2>&1 </dev/null
    fi
    code=$?
    case $code in
      0 | 1 | 2) via=agent ;;
      3) add warning agent-unreachable ;;
      64) add warning agent-without-restart ;;
      *) add warning agent-failed ;;
    esac
  else
    add warning no-agent
  fi
  if [ "$via" = none ]; then
    systemctl restart "$WORKER" >"$tmp/rout" 2>&1 </dev/null
    code=$?
    via=systemctl
  fi
  restart_code=$code
  add restart_via "$via"
  add restart_code "$restart_code"
  tail -c 1000 "$tmp/rout" >"$tmp/rout.tail"
  add_blob fields restart_output "$tmp/rout.tail"
  report
  add_report
  rc=$restart_code
}

control() {
  if [ "$have_agent" != 1 ]; then
    add warning no-agent
    add worker "$(unit_state "$WORKER")"
    rc=3
    return
  fi
  "$agent" "$@" >"$tmp/cout" 2>&1 </dev/null
  code=$?
  [ "$code" = 64 ] && add warning "agent-without-$1"
  add control_code "$code"
  tail -c 1000 "$tmp/cout" >"$tmp/cout.tail"
  add_blob fields control_output "$tmp/cout.tail"
  add worker "$(unit_state "$WORKER")"
  rc=$code
}

logs() {
  case $1 in
    worker) unit=$WORKER ;;
    agent) unit=$AGENT_UNIT ;;
    *)
      rc=64
      return
      ;;
  esac
  since=$(number "$2")
  lines=$(number "$3")
  [ "$lines" -gt 0 ] || lines=200
  prio=$4
  case $prio in [0-7]) ;; *) prio=- ;; esac
  set -- --no-pager -q -o short-iso -u "$unit" -n "$lines"
  [ "$since" -gt 0 ] && set -- "$@" "--since=-${since}s"
  if [ "$prio" = - ]; then
    journalctl "$@" >"$tmp/log" 2>"$tmp/err" </dev/null
    code=$?
  elif [ "$unit" = "$WORKER" ] && [ "$prio" -le 3 ]; then
    # The bot logs every line at info: its error levels and tracebacks are errors too. Both
    # passes carry microsecond times, merged in time order (stable), each line once, then shown
    # with short-iso's seconds.
    set -- "$@" -o short-iso-precise
    journalctl "$@" -p "$prio" >"$tmp/log" 2>"$tmp/err" </dev/null
    code=$?
    journalctl "$@" 2>/dev/null </dev/null |
      grep -E '\[(ERROR|CRITICAL)\]|Traceback \(most recent call last\)' >>"$tmp/log"
    sort -s -k1,1 "$tmp/log" | awk '!seen[$0]++' | tail -n "$lines" |
      sed 's/^\([0-9T:-]*\)\.[0-9]*/\1/' >"$tmp/merged"
    mv -f "$tmp/merged" "$tmp/log"
  else
    journalctl "$@" -p "$prio" >"$tmp/log" 2>"$tmp/err" </dev/null
    code=$?
  fi
  n=$(wc -l <"$tmp/log")
  n=$((n + 0))
  cp "$tmp/log" "$tmp/fit"
  truncated=0
  while [ "$budget" -gt 0 ] && [ "$n" -gt 0 ]; do
    blob=$(enc "$tmp/fit")
    [ $((${#fields} + ${#blob} + 200)) -le "$budget" ] && break
    n=$((n / 2))
    tail -n "$n" "$tmp/log" >"$tmp/fit"
    truncated=1
  done
  add log_code "$code"
  add log_lines "$n"
  add log_truncated "$truncated"
  add_blob big log "$tmp/fit"
  tail -c 1000 "$tmp/err" >"$tmp/err.tail"
  add_blob extra stderr "$tmp/err.tail"
  rc=$code
}

case $action in
  health) health "$1" "${2:--}" "${3:--}" ;;
  restart) restart "$1" ;;
  pause)
    secs=$(number "$1")
    if [ "$secs" -gt 0 ]; then control pause --for "${secs}s"; else control pause; fi
    ;;
  resume) control resume ;;
  logs) logs "$1" "$2" "$3" "$4" ;;
esac
finish
