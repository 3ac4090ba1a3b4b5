#!/usr/bin/env bash
# Runs a command inside a private D-Bus session with GNOME Keyring unlocked: the OS
# keychain (Secret Service) that cluster tokens are kept in. The keyring's files go to a
# throwaway folder, so the user's own keyring is never touched.
set -euo pipefail
if [ -z "${FIREBREAK_KEYRING_SESSION:-}" ]; then
  exec env FIREBREAK_KEYRING_SESSION=1 dbus-run-session -- bash "$0" "$@"
fi
keyring_home=$(mktemp -d)
chmod 700 "$keyring_home"
trap 'rm -rf "$keyring_home"' EXIT
printf 'firebreak-tests' | XDG_DATA_HOME="$keyring_home" XDG_RUNTIME_DIR="$keyring_home" \
  gnome-keyring-daemon --unlock --components=secrets >/dev/null
"$@"
