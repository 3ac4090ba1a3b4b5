# The two commands of the README's Quick start, and a few for development.
.PHONY: run test deps ui bindings screenshot package

# Installs what is missing, builds, and opens the console on the built-in demo cluster.
# Without a display it says so and runs the same demo headless, printing incidents.
run:
	@bash .ci/deps.sh
	@cd ui && npm run --silent build
	@if [ -n "$${DISPLAY}$${WAYLAND_DISPLAY}" ]; then \
	  cargo run --quiet -- --demo; \
	else \
	  echo "No display (DISPLAY and WAYLAND_DISPLAY are unset): running the demo headless instead; incidents print as they open."; \
	  cargo run --quiet -- watch --demo; \
	fi

# Every test suite (what CI runs).
test:
	@bash .ci/deps.sh --test
	@bash .ci/test.sh

ui:
	cd ui && npm run build

# Release packages for Linux: the console's .deb and .rpm with the Tauri bundler, into
# target/release/bundle/ (AppImage is configured but not built here: its tools are
# downloaded at build time), and the servers' (firebreak-gateway, firebreak-team-server)
# into target/release/bundle/servers/.
package:
	@bash .ci/deps.sh --package
	@cd ui && npm run --silent build
	@ui/node_modules/.bin/tauri build --bundles deb,rpm --config '{"build":{"beforeBuildCommand":""}}'
	@cargo build --release -p firebreak-gateway -p firebreak-team-server
	@bash deploy/package-servers.sh release

# Regenerates ui/src/bindings (IPC types) and docs/protocol/schemas (event schemas) from Rust.
bindings:
	UPDATE_BINDINGS=1 UPDATE_SCHEMAS=1 cargo test --quiet -p firebreak --test e2e bindings::

# A screenshot of the console under Xvfb, into shots/console.png.
screenshot:
	@bash .ci/screenshot.sh
