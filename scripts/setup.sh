#!/usr/bin/env bash
# Installs what building and testing sluice needs on Debian 12: the distribution's -dev packages and the
# Python packages the tests use. Safe to run again; it only installs what is missing.
set -euo pipefail

DEB_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git openssl ca-certificates curl
  libboost1.81-dev libssl-dev libsimdjson-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev python3 python3-pip unzip chromium chromium-driver
)
PY_PACKAGES=(openai==1.* numpy pytest selenium prometheus_client)

need_sudo() { if [ "$(id -u)" -ne 0 ]; then echo sudo; fi; }

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $(need_sudo) apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $(need_sudo) apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
py_missing=0
$PY - <<'PYEOF' || py_missing=1
import importlib, sys
for m in ("openai", "numpy", "pytest", "selenium", "prometheus_client"):
    importlib.import_module(m)
PYEOF
if [ "$py_missing" = 1 ]; then
  echo "setup: installing Python packages: ${PY_PACKAGES[*]}"
  $PY -m pip install -q "${PY_PACKAGES[@]}" 2>/dev/null || $PY -m pip install -q --break-system-packages "${PY_PACKAGES[@]}"
fi
echo "setup: dependencies present"
