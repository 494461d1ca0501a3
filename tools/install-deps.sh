#!/usr/bin/env bash
# Installs the Debian 12 packages edibroker needs to build, test and run — only those missing.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config curl
      libboost1.81-dev libboost-json1.81-dev libxerces-c-dev libcurl4-openssl-dev
      libsqlite3-dev libssl-dev catch2
      libjemalloc-dev            # the broker's allocator (see README, "Libraries")
      liburing-dev               # Boost.Asio's io_uring backend (see README, "Libraries")
      libqpid-proton-cpp12-dev   # AMQP 1.0 client (adapters/amqp)
      rabbitmq-server            # the real AMQP 1.0 broker the AMQP tests start on 127.0.0.1
      python3-aiosmtpd)          # the real SMTP server the visit-notification tests start on 127.0.0.1
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
