#!/usr/bin/env bash
# The servers' packages as a server admin meets them, from the debug build the tests made:
# nothing graphical linked or depended on, the binary's version, the shipped
# configuration passes --check, the unit verifies, and the package makes the system user
# and keeps /etc/firebreak's configuration as a conffile.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf 'package test: %s\n' "$*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bash deploy/package-servers.sh debug
graphical='webkit|javascriptcore|gtk|gdk|soup|cairo|x11|wayland'
for name in firebreak-gateway firebreak-team-server; do
  sdeb=$(ls target/debug/bundle/servers/"$name"_*.deb)
  srpm=$(ls target/debug/bundle/servers/"$name"-*.rpm)
  sroot="$work/$name"
  dpkg-deb -x "$sdeb" "$sroot"
  sbin="$sroot/usr/bin/$name"
  [ "$(dpkg-deb -f "$sdeb" Package)" = "$name" ] || fail "$sdeb is not called $name"
  sdepends=$(dpkg-deb -f "$sdeb" Depends)
  ! grep -Eiq "$graphical" <<<"$sdepends" || fail "$name depends on something graphical: $sdepends"
  ! ldd "$sbin" | grep -Eiq "$graphical" || fail "$name links something graphical: $(ldd "$sbin")"
  ! rpm -qp --requires "$srpm" 2>/dev/null | grep -Eiq "$graphical" \
    || fail "$(basename "$srpm") requires something graphical"
  "$sbin" --version | grep -q "^$name " || fail "$name --version says: $("$sbin" --version)"
  config=$(ls "$sroot"/etc/firebreak/*.toml)
  "$sbin" --check "$config" >/dev/null || fail "$name --check $config fails"
  unit="$sroot/usr/lib/systemd/system/$name.service"
  sed "s|/usr/bin/$name|$sbin|g; s|/etc/firebreak/|$sroot/etc/firebreak/|g" "$unit" >"$work/$name.service"
  said=$(systemd-analyze verify --man=no "$work/$name.service" 2>&1 | grep "$name.service" || true)
  [ -z "$said" ] || fail "the $name unit does not verify: $said"
  dpkg-deb -e "$sdeb" "$work/$name.control"
  grep -q "useradd --system" "$work/$name.control/postinst" || fail "$name makes no system user"
  grep -qx "/etc/firebreak/$(basename "$config")" "$work/$name.control/conffiles" \
    || fail "$name's configuration is not a conffile"
  rpm -qpl "$srpm" 2>/dev/null | grep -qx "/usr/bin/$name" || fail "$(basename "$srpm") lacks /usr/bin/$name"
  echo "package test: $(basename "$sdeb") and $(basename "$srpm") pass (Depends: $sdepends)"
done
