#!/usr/bin/env bash
# Installs what Firebreak needs and is missing, and nothing else.
#   .ci/deps.sh          what building and running the console needs
#   .ci/deps.sh --package  that, plus what packaging the servers needs (rpmbuild)
#   .ci/deps.sh --test   that, plus what the test suites need (Xvfb, WebKitWebDriver, tauri-driver)
# Debian/Ubuntu: system packages through apt (with sudo when not root), only when absent.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_package=0
[ "${1:-}" = "--test" ] && want_test=1 && want_package=1
[ "${1:-}" = "--package" ] && want_package=1

say() { printf '\033[1mfirebreak setup:\033[0m %s\n' "$*" >&2; }

packages=(build-essential pkg-config curl file libssl-dev libwebkit2gtk-4.1-dev
          libayatana-appindicator3-dev librsvg2-dev libxdo-dev)
# rpm: rpmbuild makes the servers' .rpm packages (deploy/package-servers.sh).
[ "$want_package" = 1 ] && packages+=(rpm)
if [ "$want_test" = 1 ]; then
  # gnome-keyring: a Secret Service for the keychain tests, in a private D-Bus session;
  # xdotool: the end-to-end tests answer the native confirmation dialog as a person would.
  # prometheus, prometheus-alertmanager: real servers the simulator's metrics and the
  # shipped rules are tested against (crates/gateway/tests/prometheus.rs); systemd: systemd-analyze
  # verifies the gateway's unit file; desktop-file-utils lints the package's desktop entry;
  # chromium and poppler-utils print the summit to PDF and read it back (tests/history.rs);
  # postgresql is the team server's database (crates/team-server/tests/team.rs starts its own clusters).
  packages+=(xvfb xauth webkit2gtk-driver dbus-x11 gnome-keyring xdotool
             prometheus prometheus-alertmanager systemd desktop-file-utils
             chromium poppler-utils postgresql)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    say "missing system packages (${missing[*]}) and no apt-get: install them with your package manager."
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { say "cargo not found: install Rust with rustup (https://rustup.rs) first."; exit 1; }
command -v node >/dev/null || { say "node not found: install Node.js 20 or newer first."; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { say "Node.js $node_major is too old: Firebreak's UI needs 20 or newer."; exit 1; }

# npm ci only when the lockfile changed since the last install.
stamp=ui/node_modules/.firebreak-lock
if [ ! -f "$stamp" ] || ! cmp -s ui/package-lock.json "$stamp"; then
  say "installing the UI's npm packages (npm ci)"
  (cd ui && npm ci --no-audit --no-fund)
  cp ui/package-lock.json "$stamp"
fi

if [ "$want_test" = 1 ] && ! command -v tauri-driver >/dev/null; then
  say "installing tauri-driver (cargo install tauri-driver --locked)"
  cargo install tauri-driver --locked --version ^2
fi
