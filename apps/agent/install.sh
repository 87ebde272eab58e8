#!/bin/sh
# Installs the Devpilot agent as a systemd service.
#   curl -fsSL URL/agent/install.sh | sudo sh -s -- --url URL --token TOKEN [--ca-file PEM] [--allow-run-as USERS]
# URL, TOKEN, PEM and USERS may also come from DEVPILOT_URL, DEVPILOT_AGENT_TOKEN, DEVPILOT_CA_FILE
# and DEVPILOT_ALLOW_RUN_AS. Scripts run as the system user devpilot-run (created here), or as a
# script's "run as" user when --allow-run-as lists it (comma-separated).
# DEVPILOT_INSTALL_ROOT puts every installed file under another root (tests, image builds).
set -eu

URL="${DEVPILOT_URL:-}"
TOKEN="${DEVPILOT_AGENT_TOKEN:-}"
CA_FILE="${DEVPILOT_CA_FILE:-}"
ALLOW_RUN_AS="${DEVPILOT_ALLOW_RUN_AS:-}"
ROOT="${DEVPILOT_INSTALL_ROOT:-}"
INSTALL_DIR="$ROOT/opt/devpilot-agent"
ENV_FILE="$ROOT/etc/devpilot-agent.env"
# The CA as the agent sees it: readable by the agent user (a CA certificate is public).
INSTALLED_CA="$ROOT/etc/devpilot-agent/ca.pem"
UNIT_FILE="$ROOT/etc/systemd/system/devpilot-agent.service"
AGENT_USER=devpilot-agent
# Scripts run as this user: no login shell, its own home, nothing else.
SCRIPT_USER=devpilot-run
USAGE="usage: install.sh --url URL --token TOKEN [--ca-file PEM] [--allow-run-as USER,...] (or DEVPILOT_URL, DEVPILOT_AGENT_TOKEN, DEVPILOT_CA_FILE, DEVPILOT_ALLOW_RUN_AS)"

fail() {
  echo "devpilot-agent install: $*" >&2
  exit 1
}

# Writes the env file, keeping every line the operator added (HTTPS_PROXY=..., comments): only the
# settings this script owns are replaced. A CA set by an earlier run stays unless a new one is given.
write_env_file() {
  mkdir -p "$(dirname "$ENV_FILE")"
  OWNED='DEVPILOT_URL|DEVPILOT_AGENT_TOKEN'
  [ -z "$CA_FILE" ] || OWNED="$OWNED|DEVPILOT_CA_FILE"
  [ -z "$ALLOW_RUN_AS" ] || OWNED="$OWNED|DEVPILOT_ALLOW_RUN_AS"
  # The token is a secret: the file is root's, mode 0600 (systemd reads it before dropping to the user).
  (
    umask 077
    if [ -f "$ENV_FILE" ]; then grep -Ev "^[[:space:]]*($OWNED)=" "$ENV_FILE" || true; fi > "$ENV_FILE.tmp"
    printf 'DEVPILOT_URL=%s\nDEVPILOT_AGENT_TOKEN=%s\n' "$URL" "$TOKEN" >> "$ENV_FILE.tmp"
    [ -z "$CA_FILE" ] || printf 'DEVPILOT_CA_FILE=%s\n' "${INSTALLED_CA#"$ROOT"}" >> "$ENV_FILE.tmp"
    [ -z "$ALLOW_RUN_AS" ] || printf 'DEVPILOT_ALLOW_RUN_AS=%s\n' "$ALLOW_RUN_AS" >> "$ENV_FILE.tmp"
  )
  chmod 0600 "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# curl trusting the given CA too (the control plane behind a private CA).
fetch() {
  if [ -n "$CA_FILE" ]; then curl --cacert "$CA_FILE" -fsSL "$@"; else curl -fsSL "$@"; fi
}

install_ca_file() {
  [ -n "$CA_FILE" ] || return 0
  mkdir -p "$(dirname "$INSTALLED_CA")"
  install -m 0644 "$CA_FILE" "$INSTALLED_CA"
}

# A system user: $1 name, $2 home (created, owned by it).
create_system_user() {
  id "$1" >/dev/null 2>&1 && return 0
  echo "Creating system user $1 ..."
  if command -v useradd >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$2" --create-home --shell /usr/sbin/nologin "$1"
  elif command -v adduser >/dev/null 2>&1; then
    adduser -S -D -h "$2" -s /sbin/nologin "$1"
  else
    fail "neither useradd nor adduser found: create a system user named $1 and run this again"
  fi
}

# Sourced with DEVPILOT_INSTALL_FUNCTIONS_ONLY=1 (the tests): define the steps, run nothing.
[ "${DEVPILOT_INSTALL_FUNCTIONS_ONLY:-}" != 1 ] || return 0

while [ $# -gt 0 ]; do
  case "$1" in
    --url) [ $# -ge 2 ] || fail "--url needs a value"; URL="$2"; shift 2 ;;
    --url=*) URL="${1#--url=}"; shift ;;
    --token) [ $# -ge 2 ] || fail "--token needs a value"; TOKEN="$2"; shift 2 ;;
    --token=*) TOKEN="${1#--token=}"; shift ;;
    --ca-file) [ $# -ge 2 ] || fail "--ca-file needs a value"; CA_FILE="$2"; shift 2 ;;
    --ca-file=*) CA_FILE="${1#--ca-file=}"; shift ;;
    --allow-run-as) [ $# -ge 2 ] || fail "--allow-run-as needs a value"; ALLOW_RUN_AS="$2"; shift 2 ;;
    --allow-run-as=*) ALLOW_RUN_AS="${1#--allow-run-as=}"; shift ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) fail "unknown argument: $1 ($USAGE)" ;;
  esac
done

[ -n "$URL" ] || fail "missing --url (the control plane URL, e.g. https://cp.example.com)"
[ -n "$TOKEN" ] || fail "missing --token (the agent token shown when the server was created)"
URL="${URL%/}"
case "$URL" in http://*|https://*) ;; *) fail "--url must start with http:// or https://" ;; esac
case "$TOKEN" in *"
"*) fail "the token must be one line" ;; esac
case "$ALLOW_RUN_AS" in *[!A-Za-z0-9_.,\$-]*) fail "--allow-run-as takes comma-separated user names" ;; esac
if [ -n "$CA_FILE" ]; then
  [ -r "$CA_FILE" ] || fail "cannot read the CA file $CA_FILE"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$CA_FILE" || fail "$CA_FILE holds no PEM certificate"
fi

[ "$(id -u)" -eq 0 ] || fail "run as root (pipe into: sudo sh -s -- --url URL --token TOKEN)"
if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
  fail "systemd is not running on this machine; run the agent by hand instead:
  curl -fsSLO $URL/agent/devpilot-agent.cjs && DEVPILOT_URL=$URL DEVPILOT_AGENT_TOKEN=<token> node devpilot-agent.cjs${CA_FILE:+ --ca-file $CA_FILE}"
fi
command -v curl >/dev/null 2>&1 || fail "curl not found; install it (e.g. apt-get install curl) and run this again"

NODE_MAJOR=0
if command -v node >/dev/null 2>&1; then
  NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
fi
if [ "$NODE_MAJOR" -lt 20 ]; then
  fail "Node.js 20 or newer is required (found: $(command -v node >/dev/null 2>&1 && node --version || echo none)).
Install it first, for example on Debian/Ubuntu:
  curl -fsSL https://deb.nodesource.com/setup_22.x | sudo -E bash - && sudo apt-get install -y nodejs
or from https://nodejs.org/en/download, then run this command again.
The service starts node through /usr/bin/env, so node must be on the system PATH."
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "Downloading the agent from $URL/agent/ ..."
fetch "$URL/agent/devpilot-agent.cjs" -o "$TMP/devpilot-agent.cjs" || fail "could not download $URL/agent/devpilot-agent.cjs"
fetch "$URL/agent/devpilot-agent.service" -o "$TMP/devpilot-agent.service" || fail "could not download $URL/agent/devpilot-agent.service"
node "$TMP/devpilot-agent.cjs" --version >/dev/null || fail "the downloaded agent does not run with $(node --version)"

create_system_user "$AGENT_USER" /var/lib/devpilot-agent
create_system_user "$SCRIPT_USER" "/var/lib/$SCRIPT_USER"
command -v setpriv >/dev/null 2>&1 || echo "warning: setpriv (util-linux) not found: the agent will run scripts as $AGENT_USER itself until it is installed" >&2

mkdir -p "$INSTALL_DIR"
install -m 0755 "$TMP/devpilot-agent.cjs" "$INSTALL_DIR/devpilot-agent.cjs"
install -m 0644 "$TMP/devpilot-agent.service" "$UNIT_FILE"

install_ca_file
write_env_file

systemctl daemon-reload
systemctl enable devpilot-agent.service >/dev/null
systemctl restart devpilot-agent.service

echo "Devpilot agent $(node "$INSTALL_DIR/devpilot-agent.cjs" --version) installed and started."
echo "  status: systemctl status devpilot-agent"
echo "  logs:   journalctl -u devpilot-agent -f"
