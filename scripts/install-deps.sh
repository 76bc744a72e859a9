#!/usr/bin/env bash
# Install everything webha's tests and its local stack need, on a fresh Debian 12 machine:
# Debian packages (the real daemons and tools), the Python venv (.venv) from requirements.txt,
# and the keepalived script user. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[deps] %s\n' "$*"; }

PKGS=(
  # lab / render / migration tiers: the real daemons and checkers
  keepalived nginx-light nftables iproute2 curl php-cli php-mysql shellcheck
  mariadb-server mariadb-client procps psmisc
  # lab tier: the web nodes' metrics (webha-events.py writes, the node exporter serves)
  prometheus-node-exporter
  # render tier: `cloud-init schema` checks the user-data (only the tool: see below)
  cloud-init
  # e2e tier: libvirt + TCG guests (libvirt starts any network only with dnsmasq present), the guest image builder, the cloud-init seed ISO
  libvirt-daemon-system libvirt-clients dnsmasq-base qemu-system-x86 qemu-utils mmdebstrap genisoimage
  openssh-client e2fsprogs
  # dns tier: named-checkzone, a PowerDNS server (started by the tests on loopback only)
  bind9-utils pdns-server pdns-backend-sqlite3
  # bench/soak.py: CPU and I/O stress on the lab host while keepalived idles (issue 13)
  stress-ng
)
# cloud-init is installed for its schema checker; it must never configure this machine at boot.
mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "Debian packages: all present"
fi

# pdns-server's package starts a server on port 53 of every address where systemd runs: it
# would take the port from libvirt's dnsmasq. The dns tier starts its own on loopback.
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet pdns.service 2>/dev/null; then
  log "disabling the packaged pdns.service"
  systemctl disable --now pdns.service
fi

id -u keepalived_script >/dev/null 2>&1 ||
  useradd --system --no-create-home --shell /usr/sbin/nologin keepalived_script

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "pip install -r requirements.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
else
  log "Python packages: up to date"
fi
