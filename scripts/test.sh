#!/usr/bin/env bash
# Runs Trellis's whole test suite: installs what the tests need, builds once, runs every test
# project, and prints "N passed, N failed[, N skipped]" as its last line.
# Usage: scripts/test.sh [extra dotnet test arguments, e.g. --filter FullyQualifiedName~Store]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS="$ROOT/artifacts/test-results"
rm -rf "$RESULTS"; mkdir -p "$RESULTS"

step() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests drive as real peers. Installed only when missing.
need_pkgs=()
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)   # promtool check metrics
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)         # openssl s_client checks of TLS listeners
if ((${#need_pkgs[@]})); then
  step "installing Debian packages: ${need_pkgs[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" || {
      echo "error: could not install ${need_pkgs[*]}; install them by hand and run again" >&2; exit 1; }
  else
    echo "error: missing ${need_pkgs[*]}; run this script as root or install them with apt-get" >&2; exit 1
  fi
fi

step "installing the xDS client peer (npm @grpc/grpc-js-xds) in tests/xds-client"
(cd tests/xds-client && npm ci --no-audit --no-fund --loglevel=error) || {
  echo "error: npm ci failed in tests/xds-client; check that the npm registry is reachable" >&2; exit 1; }

step "building (Release)"
if ! dotnet build Trellis.slnx -c Release -nologo -v quiet; then
  echo "error: the build failed; fix the errors above and run again" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

projects=(
  tests/Trellis.Api.Tests
  tests/Trellis.Xds.Tests
  tests/Trellis.ControlPlane.Tests
  tests/Trellis.Proxy.Tests
  tests/Trellis.IntegrationTests
)
crashed=0
for p in "${projects[@]}"; do
  name=$(basename "$p")
  step "testing $name"
  dotnet test "$p" -c Release --no-build -nologo \
    --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" \
    --results-directory "$RESULTS" "$@"
  if [ ! -s "$RESULTS/$name.trx" ]; then
    echo "error: $name produced no results (the test host crashed?)" >&2
    crashed=$((crashed + 1))
  fi
done

# Sum the counters of every TRX file.
passed=0; failed=$crashed; skipped=0
for f in "$RESULTS"/*.trx; do
  [ -e "$f" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$f" | head -1)
  get() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$counters"; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get notExecuted)))
done
summary="$passed passed, $failed failed"
((skipped > 0)) && summary+=", $skipped skipped"
echo
echo "$summary"
((failed == 0))
