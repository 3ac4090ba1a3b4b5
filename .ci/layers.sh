#!/usr/bin/env bash
# The workspace's layers as README's Layout draws them, checked on what the compiler
# builds (cargo tree: normal dependencies, transitively) and on the sources: a rule broken
# here fails CI with the path that breaks it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

broken=0
# Does package $1 depend on $2 (normal dependencies, any depth)? cargo tree prints the
# inverted tree when it does and an error when $2 is not in $1's graph at all.
depends_on() { cargo tree -q -e normal -p "$1" -i "$2" 2>/dev/null | grep -q . ; }
forbid() {
  local pkg=$1; shift
  for dep in "$@"; do
    if depends_on "$pkg" "$dep"; then
      echo "layers: $pkg must not depend on $dep, but does:"
      cargo tree -e normal -p "$pkg" -i "$dep" | head -15
      broken=1
    fi
  done
}

ours=(firebreak-common firebreak-protocol firebreak-server firebreak-sim firebreak-gateway
      firebreak-team-server firebreak-store firebreak-reports firebreak-engine
      firebreak-bench firebreak-cli firebreak-test-support)
# Only the app (the root package) has a window.
for p in "${ours[@]}"; do forbid "$p" tauri wry webkit2gtk gtk; done
# The servers know nothing of the console.
for p in firebreak-server firebreak-sim firebreak-gateway firebreak-team-server; do
  forbid "$p" firebreak-store firebreak-engine firebreak-reports firebreak-cli firebreak-bench
done
# The store depends on nothing above it; the wire and the common pieces on nothing of ours.
forbid firebreak-store firebreak-engine firebreak-reports firebreak-server firebreak-sim \
  firebreak-gateway firebreak-team-server firebreak-cli firebreak-bench
forbid firebreak-protocol firebreak-common firebreak-server firebreak-store
forbid firebreak-common firebreak-protocol firebreak-server firebreak-store
# The engine works without the command line; reports without the engine.
forbid firebreak-engine firebreak-cli firebreak-bench firebreak-reports firebreak-gateway firebreak-team-server
forbid firebreak-reports firebreak-engine firebreak-cli
# What the tests share stays below the gateway, the command line and the benchmarks, so
# an edit in those rebuilds no other crate's tests (the store's, the reports').
forbid firebreak-test-support firebreak-gateway firebreak-cli firebreak-bench firebreak-reports

# Workspace-wide lints (unsafe_code = "forbid" among them) in every crate.
for manifest in Cargo.toml crates/*/Cargo.toml; do
  if ! grep -Pzq '\[lints\]\nworkspace = true' "$manifest"; then
    echo "layers: $manifest does not take the workspace's lints ([lints] workspace = true)"
    broken=1
  fi
done

python3 .ci/import-circles.py || broken=1

[ "$broken" = 0 ] && echo "layers: every rule holds (${#ours[@]} crates below the app)"
exit "$broken"
