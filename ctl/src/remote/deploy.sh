#!/bin/sh
# cryptoctl deploy/rollback script: runs once per VM as root (run-command, or ssh with sudo).
# It prints `CRYPTOCTL-RESULT v=1 key=value ...` and, last, `CRYPTOCTL-EXIT <status>`, like the
# fleet script. Arguments are validated by cryptoctl and only compared, quoted or decoded here,
# never evaluated. Text files arrive base64-encoded; the agent binary arrives as a path (copied
# before over ssh) or is fetched from a URL, and is checked against its SHA-256 either way.
#   $1 mode: deploy | rollback        $2 app user        $3 app dir        $4 repo URL
#   $5 ref (branch, tag or commit)     $6 skip app 0|1    $7 skip agent 0|1 (rollback: 0 also
#                                      puts the previous agent binary back)
#   $8 canary: - | reset | profile:NAME                    $9 worker unit (base64)
#   $10 worker WatchdogSec (0: none)   $11 agent source: - | url:URL | file:PATH
#   $12 agent sha256                   $13 agent unit (b64)   $14 sysusers (b64)
#   $15 polkit rule (b64)              $16 agent.toml (b64)   $17 force config 0|1
#   $18 gate timeout seconds           $19 rollback commit (- : the one before the last deploy)
#   $20 output budget in bytes (0: unlimited)
#   $21 restart helper path unit (b64) $22 restart helper service unit (b64)
#   $23 agent kind: bin (the portable binary) | deb (the Debian package, installed with dpkg -i;
#       the previous package is kept as $STATE/cryptobot-agent.previous.deb for rollback --agent)
# A download URL may carry a SAS: it is never printed or logged.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
umask 022
WORKER=faucet_worker.service
AGENT_UNIT=cryptobot-agent.service
HELPER=cryptobot-worker-restart
AGENT=/usr/local/bin/cryptobot-agent
STATE=/var/lib/cryptobot-deploy
UNITS=/etc/systemd/system
mode=$1 app_user=$2 app_dir=$3 repo_url=$4 ref=$5 skip_app=$6 skip_agent=$7 canary=$8
worker_unit=$9
shift 9
watchdog=$1 agent_src=$2 agent_sha=$3 agent_unit=$4 sysusers=$5 rules=$6 config=$7
force_config=$8 gate_timeout=$9
shift 9
rb_commit=$1 budget=$2 helper_path=$3 helper_service=$4 agent_kind=${5:-bin}
case $agent_kind in bin | deb) ;; *) agent_kind=bin ;; esac
DEB="$STATE/cryptobot-agent.deb"
PKG_AGENT=/usr/bin/cryptobot-agent
case $budget in '' | *[!0-9]*) budget=0 ;; esac
case $gate_timeout in '' | *[!0-9]*) gate_timeout=300 ;; esac
fields="v=1 action=$mode"
rc=0
work=$(mktemp -d) || exit 1
log="$work/log"
: >"$log"
trap 'rm -rf "$work"' EXIT

say() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >>"$log"; printf '%s\n' "$*" >&2; }
add() { fields="$fields $1=$2"; }

enc() {
  printf 'gz:'
  gzip -c -n <"$1" | base64 | tr -d '\n'
}

migrated=""
finish() {
  [ -n "$migrated" ] && add migrated "$migrated"
  printf '%s' "$reason" >"$work/reason"
  tail -n 60 "$log" >"$work/logtail"
  line="CRYPTOCTL-RESULT $fields"
  [ -s "$work/reason" ] && line="$line reason=$(enc "$work/reason")"
  full="$line log=$(enc "$work/logtail")"
  if [ "$budget" -eq 0 ] || [ "${#full}" -le "$budget" ]; then line=$full; fi
  printf '%s\n' "$line"
  printf 'CRYPTOCTL-EXIT %s\n' "$rc"
  exit "$rc"
}

die() {
  reason=$1
  rc=${2:-1}
  say "FAILED: $reason"
  add result failed
  finish
}

reason=""
case $mode in deploy | rollback) ;; *) mode=invalid; die "unknown mode" 64 ;; esac
[ "$(id -u)" = 0 ] || die "the deploy script must run as root" 77
case $app_user in '' | root | -* | *[!a-z0-9_-]*) die "bad app user" 64 ;; esac
case $app_dir in /*) ;; *) die "bad app dir" 64 ;; esac
case $app_dir in *[!A-Za-z0-9_./-]* | *..*) die "bad app dir" 64 ;; esac
mkdir -p "$STATE" && chmod 755 "$STATE"

as_app() { runuser -u "$app_user" -- env HOME="$app_home" "$@"; }
git_app() { as_app git -C "$app_dir" "$@"; }

# put BASE64 DEST MODE: decode to a temporary file next to DEST, then rename (atomic)
put() {
  mkdir -p "$(dirname "$2")"
  printf '%s' "$1" | base64 -d >"$2.cryptoctl-new" || return 1
  chmod "$3" "$2.cryptoctl-new" && mv -f "$2.cryptoctl-new" "$2"
}

# The bot's checkout at COMMIT, its dependencies and its unit.
app_install() {
  git_app checkout -q --detach "$1" || return 1
  if [ ! -x "$app_dir/.venv/bin/python" ]; then
    say "creating the venv"
    as_app python3 -m venv "$app_dir/.venv" || return 1
  fi
  if [ -f "$app_dir/requirements.txt" ]; then
    say "pip install -r requirements.txt"
    as_app "$app_dir/.venv/bin/pip" install -q --disable-pip-version-check -r "$app_dir/requirements.txt" >>"$log" 2>&1 || return 1
  fi
  [ -f "$app_dir/.env" ] || { as_app touch "$app_dir/.env" && chmod 600 "$app_dir/.env"; }
  put "$worker_unit" "$UNITS/$WORKER" 644 || return 1
  if [ "$watchdog" -gt 0 ] 2>/dev/null; then
    mkdir -p "$UNITS/$WORKER.d"
    printf '[Service]\nWatchdogSec=%s\n' "$watchdog" >"$UNITS/$WORKER.d/watchdog.conf"
  else
    rm -f "$UNITS/$WORKER.d/watchdog.conf"
  fi
  systemctl daemon-reload && systemctl enable -q "$WORKER" || return 1
  : >"$STATE/worker-unit-installed"
}

restart_worker() {
  restarted_at=$(date +%s.%N)
  systemctl reset-failed "$WORKER" 2>/dev/null
  systemctl restart "$WORKER"
}

# gate SINCE: the agent reports the worker active with a heartbeat newer than SINCE (VM clock)
gate() {
  end=$(($(date +%s) + gate_timeout))
  while :; do
    # the running agent's report, else a one-shot check (no daemon, e.g. --skip-agent on an old VM)
    "$AGENT" status --json >"$work/status.json" 2>/dev/null ||
      [ -s "$work/status.json" ] || "$AGENT" check --json >"$work/status.json" 2>/dev/null
    verdict=$(python3 -c '
import json, sys, datetime
try:
    r = json.load(open(sys.argv[1]))
except Exception:
    print("the agent gave no report"); sys.exit()
hb = r.get("heartbeat") or {}
if not r.get("service_active"):
    print("the worker is not active"); sys.exit()
at = hb.get("written_at")
if not at:
    print("no heartbeat"); sys.exit()
t = datetime.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
print("ok" if t > float(sys.argv[2]) else "no heartbeat since the restart")
' "$work/status.json" "$1" 2>&1)
    [ "$verdict" = ok ] && return 0
    if [ "$(date +%s)" -ge "$end" ]; then
      gate_reason="health gate failed after ${gate_timeout}s: $verdict"
      return 1
    fi
    sleep 1
  done
}

app_prev=""
app_new=""
agent_changed=0
if [ "$skip_app" != 1 ]; then
  app_home=$(getent passwd "$app_user" | cut -d: -f6)
  [ -n "$app_home" ] || die "no user $app_user on the VM"
fi

# Swap the agent binary with .previous: both are staged as copies next to the target and renamed
# into place, so $AGENT is a complete binary at every moment and the one replaced becomes
# .previous (running the swap again undoes it).
agent_swap() {
  install -m 755 "$AGENT.previous" "$AGENT.cryptoctl-new" &&
    install -m 755 "$AGENT" "$AGENT.cryptoctl-prev" &&
    mv -f "$AGENT.cryptoctl-new" "$AGENT" &&
    mv -f "$AGENT.cryptoctl-prev" "$AGENT.previous"
}

sha_of() { sha256sum <"$1" 2>/dev/null | cut -d' ' -f1; }

if [ "$mode" = rollback ]; then
  # Every precondition first, so a rollback that cannot happen changes nothing.
  if [ "$skip_agent" != 1 ] && [ -f "$DEB.previous" ] && [ -f "$DEB" ] && [ -x "$PKG_AGENT" ]; then
    rb_deb=1
  elif [ "$skip_agent" != 1 ]; then
    [ -f "$AGENT.previous" ] || die "no previous agent binary at $AGENT.previous"
    [ -f "$AGENT" ] || die "no agent installed at $AGENT"
  fi
  if [ "$skip_app" != 1 ]; then
    [ -d "$app_dir/.git" ] || die "no checkout at $app_dir"
    target=$rb_commit
    if [ "$target" = - ]; then
      target=$(cat "$STATE/previous_commit" 2>/dev/null)
      [ -n "$target" ] || die "no previous deploy is recorded in $STATE/previous_commit"
    fi
    case $target in *[!0-9a-f]*) die "bad commit" 64 ;; esac
    app_prev=$(git_app rev-parse HEAD 2>/dev/null)
    git_app cat-file -e "$target^{commit}" 2>/dev/null || git_app fetch -q origin || die "git fetch failed"
    app_new=$(git_app rev-parse --verify -q "$target^{commit}") || die "commit $target is not in the repository"
    say "rolling back from ${app_prev:-nothing} to $app_new"
    app_install "$app_new" || die "installing $app_new failed"
    printf '%s rollback %s %s\n' "$(date +%s)" "$app_new" "$app_prev" >>"$STATE/history"
    add commit "$app_new"
    add previous "${app_prev:--}"
  fi
  if [ "${rb_deb:-0}" = 1 ]; then
    agent_was=$(sha_of "$DEB")
    DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$DEB.previous" >>"$log" 2>&1 ||
      die "dpkg -i of the previous agent package failed"
    mv -f "$DEB" "$DEB.swap" && mv -f "$DEB.previous" "$DEB" && mv -f "$DEB.swap" "$DEB.previous"
    agent_now=$(sha_of "$DEB")
    AGENT=$PKG_AGENT
    say "agent package: $agent_was -> $agent_now (the replaced package is now $DEB.previous)"
    printf '%s rollback-agent %s %s\n' "$(date +%s)" "$agent_now" "$agent_was" >>"$STATE/history"
    add agent "$agent_now"
    add agent_previous "$agent_was"
    since=$(date +%s.%N)
    systemctl restart "$AGENT_UNIT" || say "systemctl restart $AGENT_UNIT failed"
  elif [ "$skip_agent" != 1 ]; then
    agent_was=$(sha_of "$AGENT")
    agent_swap || die "cannot put $AGENT.previous back in place"
    agent_now=$(sha_of "$AGENT")
    [ "$agent_now" = "$agent_was" ] && say "the previous agent binary is the same as the current one"
    say "agent: $agent_was -> $agent_now (the replaced binary is now $AGENT.previous)"
    printf '%s rollback-agent %s %s\n' "$(date +%s)" "$agent_now" "$agent_was" >>"$STATE/history"
    add agent "$agent_now"
    add agent_previous "$agent_was"
    since=$(date +%s.%N)
    systemctl reset-failed "$AGENT_UNIT" 2>/dev/null
    systemctl restart "$AGENT_UNIT" || say "systemctl restart $AGENT_UNIT failed"
  fi
  if [ "$skip_app" != 1 ]; then
    restart_worker || say "systemctl restart $WORKER failed"
    since=$restarted_at
  fi
  if gate "$since"; then
    add result ok
    say "healthy"
    finish
  fi
  die "$gate_reason"
fi

# fetch_agent URL: download to $work/agent; a refusal names the service's error code and detail
# (Blob Storage: AuthenticationFailed for an expired or wrong SAS, ...), never the URL.
fetch_agent() {
  code=$(curl -sSL --max-time 300 -o "$work/agent" -w '%{http_code}' -- "$1" 2>"$work/curl-err") ||
    die "cannot fetch the agent: $(head -c 300 "$work/curl-err" | tr '\n' ' ')"
  case $1 in http://* | https://*) ;; *) return 0 ;; esac
  case $code in 2??) return 0 ;; esac
  err=$(grep -o '<Code>[^<]*</Code>' "$work/agent" 2>/dev/null | head -n 1)
  err=${err#<Code>}
  err=${err%</Code>}
  detail=$(grep -o '<AuthenticationErrorDetail>[^<]*</AuthenticationErrorDetail>' "$work/agent" 2>/dev/null | head -n 1)
  detail=${detail#<AuthenticationErrorDetail>}
  detail=${detail%</AuthenticationErrorDetail>}
  hint=""
  case $detail in *"not valid in the specified time frame"*)
    hint=" (the SAS expired before the download: check the VM's clock, or deploy again)" ;;
  esac
  die "the agent download was refused: HTTP $code${err:+ $err}${detail:+: $detail}$hint"
}

# --- deploy: preflight. Nothing on the VM changes before the release and the agent binary pass.
sd_version=$(systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
case $sd_version in '' | *[!0-9]*) die "systemd is missing (systemctl --version gave nothing)" ;; esac
[ "$sd_version" -ge 247 ] || die "systemd $sd_version is older than 247, the oldest supported"
if [ "$skip_app" != 1 ]; then
  command -v git >/dev/null 2>&1 || die "git is missing on the VM (apt-get install git)"
  python3 -c 'import ensurepip, venv' 2>/dev/null ||
    die "python3-venv is missing on the VM (apt-get install python3-venv)"
fi
if [ "$skip_agent" != 1 ]; then
  case $agent_src in
    url:*)
      say "fetching the agent"
      fetch_agent "${agent_src#url:}"
      ;;
    file:*) cp -- "${agent_src#file:}" "$work/agent" || die "the uploaded agent binary is missing" ;;
    *) die "no agent binary (use --agent-url over run-command)" 64 ;;
  esac
  case $agent_src in file:*) rm -f -- "${agent_src#file:}" ;; esac
  [ "$(sha256sum <"$work/agent" | cut -d' ' -f1)" = "$agent_sha" ] ||
    die "the agent's SHA-256 does not match (a corrupted or different file)"
  chmod 755 "$work/agent"
  if [ "$agent_kind" = deb ]; then
    command -v dpkg-deb >/dev/null 2>&1 || die "dpkg is missing on the VM (--agent-deb needs Debian or Ubuntu)"
    pkg=$(dpkg-deb --field "$work/agent" Package 2>/dev/null) || die "the agent package is not a Debian package"
    [ "$pkg" = cryptobot-agent ] || die "the package is $pkg, not cryptobot-agent"
    # Its header may be intact while the rest is not: read every file in it before any change.
    dpkg-deb --contents "$work/agent" >/dev/null 2>&1 ||
      die "the agent package is damaged (dpkg-deb cannot read its contents)"
    pkg_arch=$(dpkg-deb --field "$work/agent" Architecture)
    vm_arch=$(dpkg --print-architecture)
    [ "$pkg_arch" = "$vm_arch" ] || [ "$pkg_arch" = all ] ||
      die "the agent package is built for $pkg_arch but the VM is $vm_arch"
    say "agent package: $pkg $(dpkg-deb --field "$work/agent" Version) ($pkg_arch)"
  elif ! "$work/agent" --version >"$work/agent-version" 2>&1; then
    need=$(grep -o 'GLIBC_[0-9.]*' "$work/agent-version" | sort -V | tail -n 1)
    have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }')
    [ -n "$need" ] &&
      die "the agent binary needs glibc ${need#GLIBC_} but the VM has glibc ${have:-unknown} (build the portable agent with cargo xtask dist)"
    die "the agent binary does not run on this VM: $(head -c 300 "$work/agent-version" | tr '\n' ' ')"
  fi
fi

# --- deploy: a VM set up by the old scripts (azure_deploy.sh ran git and pip as root; deploy.sh
# left health_monitor and health_endpoint enabled). Each step is said, recorded in the history and
# reported as migrated=...; the old unit files are kept in $STATE/old-units for a failed gate.
note_migrated() {
  migrated="${migrated:+$migrated,}$1"
  say "migrated: $2"
  printf '%s migrate %s\n' "$(date +%s)" "$1" >>"$STATE/history"
}
OLD_UNITS="$STATE/old-units"
if [ "$skip_app" != 1 ] && [ -d "$app_dir" ] && [ ! -L "$app_dir" ]; then
  # Only inside the checkout, never through a symbolic link (-P: links are not followed, -h: a
  # link's own owner changes, not its target's).
  if [ -n "$(find "$app_dir" \( ! -user "$app_user" -o ! -group "$(id -gn "$app_user")" \) -print -quit 2>/dev/null)" ]; then
    chown -R -P -h "$app_user:" "$app_dir" || die "cannot give $app_dir back to $app_user"
    note_migrated ownership "files in $app_dir belonged to another user (root): now $app_user's"
  fi
fi
for old in health_monitor.service health_endpoint.service; do
  if [ -f "$UNITS/$old" ] || [ -L "$UNITS/$old" ]; then
    systemctl disable --now -q "$old" >>"$log" 2>&1
    mkdir -p "$OLD_UNITS"
    mv -f "$UNITS/$old" "$OLD_UNITS/$old" || die "cannot move $UNITS/$old aside"
    note_migrated "$old" "$old stopped and disabled; its unit file kept in $OLD_UNITS"
  fi
done
if [ "$skip_app" != 1 ] && [ -f "$UNITS/$WORKER" ] && [ ! -e "$STATE/worker-unit-installed" ] &&
  grep -q -e '^WatchdogSec=' -e '^StandardOutput=append:' "$UNITS/$WORKER"; then
  mkdir -p "$OLD_UNITS"
  cp -p "$UNITS/$WORKER" "$OLD_UNITS/$WORKER"
  note_migrated "$WORKER" "the old $WORKER (output appended to a file, a watchdog nothing pings) is replaced; kept in $OLD_UNITS"
fi

# --- deploy: the bot ---
if [ "$skip_app" != 1 ]; then
  if [ ! -d "$app_dir/.git" ]; then
    say "cloning into $app_dir"
    [ "$repo_url" != - ] || die "no checkout at $app_dir and no --repo-url to clone from" 64
    parent=$(dirname "$app_dir")
    [ -d "$parent" ] || as_app mkdir -p "$parent" || die "cannot create $parent"
    as_app git clone -q "$repo_url" "$app_dir" >>"$log" 2>&1 || die "git clone failed"
  else
    app_prev=$(git_app rev-parse HEAD 2>/dev/null)
    git_app fetch -q --prune origin >>"$log" 2>&1 || die "git fetch failed"
  fi
  app_new=$(git_app rev-parse --verify -q "origin/$ref^{commit}" || git_app rev-parse --verify -q "$ref^{commit}") ||
    die "ref $ref not found"
  say "bot: ${app_prev:-new checkout} -> $app_new"
  if [ -n "$app_prev" ]; then
    printf '%s\n' "$app_prev" >"$STATE/previous_commit.new" && mv -f "$STATE/previous_commit.new" "$STATE/previous_commit"
  fi
  printf '%s deploy %s %s\n' "$(date +%s)" "$app_new" "${app_prev:--}" >>"$STATE/history"
  # The ref `cryptoctl health --check-updates` compares with.
  printf '%s\n' "$ref" >"$STATE/deployed_ref.new" && mv -f "$STATE/deployed_ref.new" "$STATE/deployed_ref"
  add commit "$app_new"
  add previous "${app_prev:--}"
  app_install "$app_new" || die "installing $app_new failed"
  case $canary in
    -) ;;
    reset | profile:*)
      env_file="$app_dir/.env"
      grep -v -e '^CANARY_PROFILE=' -e '^CANARY_ONLY=' "$env_file" >"$work/env" || :
      if [ "$canary" != reset ]; then
        p=${canary#profile:}
        case $p in '' | *[!A-Za-z0-9_.-]*) die "bad canary profile" 64 ;; esac
        printf 'CANARY_PROFILE=%s\nCANARY_ONLY=true\n' "$p" >>"$work/env"
      fi
      as_app sh -c 'umask 077 && cat >"$1"' sh "$env_file.cryptoctl-new" <"$work/env" &&
        as_app mv -f "$env_file.cryptoctl-new" "$env_file" || die "cannot write $env_file"
      say "canary: $canary"
      ;;
    *) die "bad canary" 64 ;;
  esac
fi

# The old monitor's logs/restart_backoff.json becomes the agent's backoff state, once: a later deploy
# never imports it again. A file that is not the old monitor's JSON is reported and left alone (the
# agent starts fresh); a logs directory or file that is a symbolic link is not followed.
import_old_backoff() {
  old_state="$app_dir/logs/restart_backoff.json"
  agent_state=/var/lib/cryptobot-agent/restart_backoff.json
  [ -e "$STATE/backoff-imported" ] && return 0
  [ -e "$old_state" ] || return 0
  : >"$STATE/backoff-imported"
  if [ -L "$app_dir/logs" ] || [ -L "$old_state" ] || [ ! -f "$old_state" ]; then
    say "logs/restart_backoff.json is a symbolic link or not a file: not imported"
    add backoff_import skipped
    return 0
  fi
  if [ -e "$agent_state" ]; then
    say "the agent already has a backoff state: logs/restart_backoff.json not imported"
    add backoff_import kept
    return 0
  fi
  if ! python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d, dict) and isinstance(d.get("restart_count", 0), int)
assert isinstance(d.get("backoff_seconds", 10), (int, float))
assert d.get("last_restart_time") is None or isinstance(d["last_restart_time"], str)
' "$old_state" 2>/dev/null; then
    say "logs/restart_backoff.json is not the old monitor's state: left where it is, the agent starts fresh"
    add backoff_import invalid
    return 0
  fi
  mkdir -p /var/lib/cryptobot-agent
  install -m 640 -o cryptobot-agent -g cryptobot-agent "$old_state" "$agent_state.cryptoctl-new" &&
    mv -f "$agent_state.cryptoctl-new" "$agent_state" || die "cannot import logs/restart_backoff.json"
  : >"$STATE/backoff-imported-now"
  note_migrated restart_backoff "logs/restart_backoff.json is now the agent's backoff state (restart_count kept)"
}

# --- deploy: the agent ---
deb_changed=0
if [ "$skip_agent" != 1 ] && [ "$agent_kind" = deb ]; then
  [ -f "$DEB" ] && cp -f "$DEB" "$DEB.previous"
  install -m 644 "$work/agent" "$DEB.cryptoctl-new" && mv -f "$DEB.cryptoctl-new" "$DEB" || die "cannot keep the agent package"
  # A unit written by a binary deploy would shadow the package's: kept aside for a failed gate.
  [ -f "$UNITS/$AGENT_UNIT" ] && mv -f "$UNITS/$AGENT_UNIT" "$STATE/binary-agent.service"
  # An agent.toml that the package brings (none was there before it, or it is still the
  # package's as shipped) is not a local edit: the deploy's configuration replaces it.
  [ -f /etc/cryptobot/agent.toml ] || conf_from_package=1
  DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$DEB" </dev/null >>"$log" 2>&1 ||
    die "dpkg -i of the agent package failed"
  AGENT=$PKG_AGENT
  pkg_conf=$(dpkg-query -W -f='${Conffiles}\n' cryptobot-agent 2>/dev/null |
    awk '$1 == "/etc/cryptobot/agent.toml" { print $2 }')
  if [ -n "$pkg_conf" ] && [ "$(md5sum </etc/cryptobot/agent.toml 2>/dev/null | cut -d' ' -f1)" = "$pkg_conf" ]; then
    conf_from_package=1
  fi
  agent_changed=1
  deb_changed=1
elif [ "$skip_agent" != 1 ]; then
  install -m 755 "$work/agent" "$AGENT.cryptoctl-new" || die "cannot stage the agent"
  [ -f "$AGENT" ] && ln -f "$AGENT" "$AGENT.previous"
  mv -f "$AGENT.cryptoctl-new" "$AGENT" || die "cannot install the agent"
  agent_changed=1
  put "$sysusers" /usr/lib/sysusers.d/cryptobot-agent.conf 644 || die "cannot install sysusers"
  put "$rules" /etc/polkit-1/rules.d/50-cryptobot-agent.rules 644 || die "cannot install the polkit rule"
  put "$agent_unit" "$UNITS/$AGENT_UNIT" 644 || die "cannot install the agent unit"
  # The worker's restart helper, for polkit 0.105 (which ignores the rule above).
  put "$helper_path" "$UNITS/$HELPER.path" 644 || die "cannot install the restart helper"
  put "$helper_service" "$UNITS/$HELPER.service" 644 || die "cannot install the restart helper"
fi
if [ "$skip_agent" != 1 ]; then
  conf=/etc/cryptobot/agent.toml
  printf '%s' "$config" | base64 -d >"$work/agent.toml"
  new_sum=$(sha256sum <"$work/agent.toml" | cut -d' ' -f1)
  cur_sum=$(sha256sum <"$conf" 2>/dev/null | cut -d' ' -f1)
  last_sum=$(cat "$STATE/agent.toml.sha256" 2>/dev/null)
  if [ ! -f "$conf" ] || [ "$force_config" = 1 ] || [ "$cur_sum" = "$last_sum" ] ||
    [ "${conf_from_package:-0}" = 1 ]; then
    put "$config" "$conf" 644 || die "cannot install $conf"
    printf '%s\n' "$new_sum" >"$STATE/agent.toml.sha256"
    add config installed
  elif [ "$cur_sum" = "$new_sum" ]; then
    add config unchanged
  else
    say "kept the locally edited $conf (--force-config replaces it)"
    add config kept
  fi
  (umask 077 && grep -E '^(APPLICATIONINSIGHTS_CONNECTION_STRING|ALERT_WEBHOOK_URL|CRYPTOBOT_ALERT_WEBHOOK|ALERT_EMAIL|SMTP_HOST|SMTP_PORT|SMTP_USER|SMTP_PASSWORD)=' \
    "$app_dir/.env" >"$work/agent.env" 2>/dev/null || :)
  install -m 600 -o root -g root "$work/agent.env" /etc/cryptobot/agent.env || die "cannot write agent.env"
  systemd-sysusers >>"$log" 2>&1 || die "systemd-sysusers failed"
  import_old_backoff
  systemctl daemon-reload
  systemctl enable -q "$AGENT_UNIT" || die "cannot enable $AGENT_UNIT"
  if [ "$deb_changed" != 1 ]; then
    systemctl enable -q --now "$HELPER.path" || die "cannot start $HELPER.path"
  fi
  systemctl restart "$AGENT_UNIT" || say "systemctl restart $AGENT_UNIT failed"
fi

if [ "$skip_app" != 1 ]; then
  restart_worker || say "systemctl restart $WORKER failed"
  since=$restarted_at
else
  since=$(date +%s.%N)
  [ -f /tmp/cryptobot_heartbeat ] && since=0
fi

if gate "$since"; then
  add result ok
  say "healthy"
  finish
fi
failure=$gate_reason
say "$failure; rolling back"
if [ -n "$app_new" ] && [ -n "$app_prev" ]; then
  app_install "$app_prev" && restart_worker && say "bot back at $app_prev" || say "bot rollback failed"
  printf '%s rollback %s %s\n' "$(date +%s)" "$app_prev" "$app_new" >>"$STATE/history"
  [ -n "$app_prev" ] && printf '%s\n' "$app_prev" >"$STATE/previous_commit"
fi
if [ "$deb_changed" = 1 ]; then
  if [ -f "$DEB.previous" ]; then
    mv -f "$DEB.previous" "$DEB" &&
      DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$DEB" >>"$log" 2>&1 &&
      say "agent back to the previous package"
  else
    DEBIAN_FRONTEND=noninteractive dpkg -r cryptobot-agent >>"$log" 2>&1
    rm -f "$DEB"
    AGENT=/usr/local/bin/cryptobot-agent
    [ -f "$STATE/binary-agent.service" ] && mv -f "$STATE/binary-agent.service" "$UNITS/$AGENT_UNIT"
    systemctl daemon-reload
    [ -x "$AGENT" ] && systemctl restart "$AGENT_UNIT" && say "agent package removed: back to the binary agent"
  fi
elif [ "$agent_changed" = 1 ] && [ -f "$AGENT.previous" ]; then
  mv -f "$AGENT.previous" "$AGENT" && systemctl restart "$AGENT_UNIT" && say "agent back to the previous binary"
fi
if [ -n "$migrated" ]; then
  # A migrated VM is never left unmonitored: the old units and state come back.
  for old in "$OLD_UNITS"/*; do
    [ -f "$old" ] || continue
    mv -f "$old" "$UNITS/$(basename "$old")"
  done
  rm -f "$STATE/worker-unit-installed"
  if [ -e "$STATE/backoff-imported-now" ]; then
    rm -f /var/lib/cryptobot-agent/restart_backoff.json "$STATE/backoff-imported" "$STATE/backoff-imported-now"
  fi
  systemctl daemon-reload
  for old in health_monitor.service health_endpoint.service; do
    [ -f "$UNITS/$old" ] && systemctl enable --now -q "$old" >>"$log" 2>&1
  done
  restart_worker
  say "restored what the migration changed: the old units and the old backoff state"
  add restored_migration 1
fi
add rolled_back 1
if [ -n "$app_prev" ] || [ "$agent_changed" = 1 ]; then
  if gate "${restarted_at:-0}"; then add after_rollback healthy; else add after_rollback unhealthy; fi
fi
die "$failure"
