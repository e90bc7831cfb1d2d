#!/usr/bin/env bash
# Runs every Fuzz* target in the module for a short time each (default 5s).
# `go test -fuzz` accepts one target per invocation, so we enumerate them.
set -euo pipefail
fuzztime=${1:-5s}
cd "$(dirname "$0")/.."
status=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "fuzz ${dir}:${target} (${fuzztime})"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./${dir}" >/tmp/luaserve-fuzz.log 2>&1; then
      cat /tmp/luaserve-fuzz.log; status=1
    fi
  done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' . | sort)
exit $status
