#!/usr/bin/env bash
# Installs the real peers the tests run against: memcached (client and embedded
# server suites), nginx-extras + lua libraries (OpenResty differential tests),
# redis (cosocket specs), libmemcached-dev (ketama compatibility vectors), wrk.
set -euo pipefail
pkgs=(memcached nginx-extras libnginx-mod-http-lua lua-resty-core lua-cjson lua-nginx-memcached lua-nginx-redis redis-server
      libmemcached-dev gcc wrk openssl luajit2 sasl2-bin libsasl2-modules)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all present"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}"
# Debian starts the packaged daemons; tests start their own on free ports.
systemctl disable --now memcached redis-server nginx >/dev/null 2>&1 || true
service memcached stop >/dev/null 2>&1 || true
service redis-server stop >/dev/null 2>&1 || true
service nginx stop >/dev/null 2>&1 || true
