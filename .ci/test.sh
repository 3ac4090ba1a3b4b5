#!/usr/bin/env bash
# Every test suite: UI type check and unit tests, Rust format and lints, Rust unit,
# integration and desktop end-to-end tests (under Xvfb when there is no display).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Golden files (*/tests/snapshots) are compared, never rewritten: a difference fails.
export INSTA_UPDATE=no

# Each step says how much disk is left: a build that runs out of space fails in the
# linker with a message that is easy to misread.
step() { printf '\n\033[1m== %s\033[0m (%s free)\n' "$*" "$(df -h --output=avail . | tail -1 | tr -d ' ')"; }

step "UI: type check"
(cd ui && npm run --silent check)
step "UI: unit tests (Vitest)"
(cd ui && npm test --silent)
step "UI: build"
(cd ui && npm run --silent build)

step "Rust: format"
cargo fmt --all -- --check
step "Rust: layers (what may depend on what, no import circles)"
bash .ci/layers.sh
step "Rust: clippy (every crate of the workspace)"
# On CI (FREE_DISK=1, set by .ci/run) in a target directory of its own, removed
# afterwards: the tests build everything again in full and reuse none of a check's output
# but build scripts and proc macros, so the check's half gigabyte would only add to the
# disk the tests need at their peak. A developer's run keeps its outputs for next time.
lint_dir=target
if [ "${FREE_DISK:-}" = 1 ]; then lint_dir=target/clippy; fi
cargo clippy --workspace --all-targets --target-dir "$lint_dir" -- -D warnings
if [ "${FREE_DISK:-}" = 1 ]; then rm -rf target/clippy; fi

step "Rust: tests (unit, integration, desktop end-to-end)"
# In a private keychain (.ci/with-keyring.sh), under Xvfb when there is no display.
# Built first, apart: the build says which crate each test executable belongs to. Then
# .ci/run-tests.py runs the executables three at a time, longest first (the suites mostly
# wait on sockets and child processes), and the log is kept to count the tests run per
# crate (README states the total). `--tests` leaves out the binaries' and the helper
# crates' empty unit-test executables (test = false in their manifests).
mkdir -p target
cargo test --workspace --tests --no-run --message-format=json-render-diagnostics >target/test-artifacts.json
run_tests=(python3 .ci/run-tests.py target/test-artifacts.json)
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  bash .ci/with-keyring.sh "${run_tests[@]}" 2>&1 | tee target/test.log
else
  bash .ci/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" "${run_tests[@]}" 2>&1 | tee target/test.log
fi
step "Tests run, per crate"
python3 .ci/count-tests.py target/test-artifacts.json target/test.log

step "Packages: the app's and the servers' .deb and .rpm of the debug build, checked as a user's machine meets them"
if [ "${FREE_DISK:-}" = 1 ]; then
  # The test executables are done with; the packages need the room.
  # target/debug/firebreak*, the binaries packaged, stay.
  find target/debug/deps -maxdepth 1 -type f -perm -u+x ! -name '*.*' -delete
fi
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  bash .ci/package-test.sh
else
  xvfb-run -a -s "-screen 0 1280x800x24" bash .ci/package-test.sh
fi
