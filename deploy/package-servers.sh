#!/usr/bin/env bash
# The server packages: a .deb and an .rpm each for firebreak-gateway and
# firebreak-team-server, from binaries already built (target/<profile>/), into
# target/<profile>/bundle/servers/. Each installs the binary in /usr/bin, its systemd
# unit, its configuration under /etc/firebreak/ (a conffile: an edited one is kept on
# upgrade) and a `firebreak` system user; none depends on anything graphical.
#   deploy/package-servers.sh [debug|release]
# Needs dpkg-deb and rpmbuild (Debian's `rpm` package; .ci/deps.sh --package installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:-release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out="target/$profile/bundle/servers"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"

fail() { printf 'package-servers: %s\n' "$*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || fail "dpkg-deb is missing"
command -v rpmbuild >/dev/null || fail "rpmbuild is missing (apt-get install rpm, or bash .ci/deps.sh --package)"

# The Debian packages providing what the binary links (libc6, libgcc-s1, …), found by
# asking dpkg who owns each library ldd resolves.
debian_depends() {
  ldd "$1" | awk '/=> \// { print $3 }' | while read -r lib; do
    dpkg -S "$(realpath "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
  done | cut -d: -f1 | sort -u | paste -sd, - | sed 's/,/, /g'
}

# The user every server package runs as: made once, kept on removal (its files may
# outlive the package).
read -r -d '' make_user <<'SH' || true
getent group firebreak >/dev/null || groupadd --system firebreak
getent passwd firebreak >/dev/null || useradd --system --gid firebreak \
  --home-dir /var/lib/firebreak --no-create-home --shell /usr/sbin/nologin \
  --comment "Firebreak servers" firebreak
install -d -m 0750 -o root -g firebreak /etc/firebreak
SH

package() {
  local name=$1 config=$2 example=$3 unit=$4 summary=$5
  local bin="target/$profile/$name"
  [ -x "$bin" ] || fail "no $bin: build it first (cargo build --workspace, with --release for release)"

  # The tree both packages install.
  local root="$work/$name/root"
  install -D -m 0755 "$bin" "$root/usr/bin/$name"
  install -D -m 0644 "$unit" "$root/usr/lib/systemd/system/$name.service"
  install -D -m 0640 "$example" "$root/etc/firebreak/$config"
  install -D -m 0644 LICENSE "$root/usr/share/doc/$name/copyright"

  # .deb
  local deb="$work/$name/deb"
  mkdir -p "$deb"
  cp -a "$root/." "$deb/"
  mkdir -p "$deb/DEBIAN"
  local depends
  depends=$(debian_depends "$bin")
  cat >"$deb/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $(dpkg --print-architecture)
Maintainer: Firebreak developers <firebreak@localhost>
Depends: $depends
Section: admin
Priority: optional
Homepage: https://firebreak.invalid
Description: $summary
 Part of Firebreak, the incident-command console for AI model-serving fleets.
 A headless server: no window, nothing graphical.
CONTROL
  echo "/etc/firebreak/$config" >"$deb/DEBIAN/conffiles"
  cat >"$deb/DEBIAN/postinst" <<POSTINST
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
$make_user
chgrp firebreak /etc/firebreak/$config
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
POSTINST
  cat >"$deb/DEBIAN/postrm" <<POSTRM
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
POSTRM
  chmod 0755 "$deb/DEBIAN/postinst" "$deb/DEBIAN/postrm"
  dpkg-deb --root-owner-group -Zxz --build "$deb" "$out/${name}_${version}_$(dpkg --print-architecture).deb" >/dev/null

  # .rpm, from the same tree.
  local top="$work/$name/rpm"
  mkdir -p "$top/SPECS"
  cat >"$top/SPECS/$name.spec" <<SPEC
Name: $name
Version: $version
Release: 1
Summary: $summary
License: MIT OR Apache-2.0
AutoReqProv: yes
%description
Part of Firebreak, the incident-command console for AI model-serving fleets.
A headless server: no window, nothing graphical.
%install
cp -a $root/. %{buildroot}/
%pre
$make_user
%post
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
%files
/usr/bin/$name
/usr/lib/systemd/system/$name.service
%dir %attr(0750, root, firebreak) /etc/firebreak
%config(noreplace) %attr(0640, root, firebreak) /etc/firebreak/$config
%doc /usr/share/doc/$name/copyright
SPEC
  rpmbuild --quiet -bb --define "_topdir $top" --define "_build_id_links none" \
    --define "__strip /bin/true" --define "debug_package %{nil}" "$top/SPECS/$name.spec" >/dev/null
  cp "$top"/RPMS/*/*.rpm "$out/"
}

package firebreak-gateway gateway.toml deploy/gateway/gateway.example.toml \
  deploy/gateway/firebreak-gateway.service \
  "Firebreak gateway: a cluster's Prometheus, Alertmanager and Kubernetes API as protocol v1"
package firebreak-team-server team-server.toml deploy/team-server/team-server.example.toml \
  deploy/team-server/firebreak-team-server.service \
  "Firebreak team server: incidents worked by several consoles, kept in PostgreSQL"
ls -1 "$out"
