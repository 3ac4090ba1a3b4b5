#!/usr/bin/env python3
"""Runs the workspace's test executables several at a time, as `cargo test` would run them
one after another: each from its package's folder with the package's variables set, and
each one's whole output printed together once it is done (with cargo's `Running …` line
first, so .ci/count-tests.py reads the log the same way).

Most suites spend their time waiting on sockets, child processes and simulated clocks,
not on the CPU: on two cores, three at a time finish in well under half the time of one
at a time. The longest go first, by the times of the last run on this machine
(target/test-times.json) or, on a fresh clone, the times committed in
.ci/test-times.json; an executable with no time yet goes first of all.

    .ci/run-tests.py ARTIFACTS.json [--jobs N] [--threads N] [--timeout SECONDS]

Each executable runs its tests on --threads threads (RUST_TEST_THREADS, unless set): a
crate's suites are one executable, so its tests share those threads.

ARTIFACTS.json is `cargo test --no-run --message-format=json`'s output. Exits 1 when
an executable failed, crashed or ran past the timeout (its output so far is printed)."""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAVED = os.path.join(ROOT, "target", "test-times.json")
COMMITTED = os.path.join(HERE, "test-times.json")


def executables(artifacts):
    """(key, executable, package folder, package name, source) of every test executable."""
    found = []
    for line in open(artifacts, encoding="utf-8"):
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        target = msg["target"]
        folder = os.path.dirname(msg["manifest_path"])
        package = os.path.basename(folder) if folder != ROOT else "firebreak"
        source = os.path.relpath(target["src_path"], folder)
        key = f"{package}/{source}"
        found.append((key, msg["executable"], folder, target["name"], source))
    return found


def load_times():
    for path in (SAVED, COMMITTED):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            continue
    return {}


def run_one(exe, folder, name, timeout, threads):
    env = dict(os.environ, CARGO_MANIFEST_DIR=folder, CARGO_PKG_NAME=name)
    env.setdefault("RUST_TEST_THREADS", str(threads))
    start = time.monotonic()
    try:
        done = subprocess.run(
            [exe],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        out, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + f"\n*** still running after {timeout} s: stopped\n".encode()
        code = -1
    return out.decode("utf-8", "replace"), code, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("artifacts")
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--timeout", type=int, default=1200)
    args = ap.parse_args()

    times = load_times()
    queue = executables(args.artifacts)
    size = sum(os.path.getsize(e[1]) for e in queue)
    print(f"{len(queue)} test executables, {size / 1e6:.0f} MB\n", flush=True)
    queue.sort(key=lambda e: -times.get(e[0], float("inf")))
    lock = threading.Lock()
    failed, took = [], {}

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                key, exe, folder, name, source = queue.pop(0)
            out, code, secs = run_one(exe, folder, name, args.timeout, args.threads)
            with lock:
                took[key] = round(secs, 1)
                rel = os.path.relpath(exe, ROOT)
                sys.stdout.write(f"     Running {source} ({rel})\n{out}")
                if code != 0:
                    failed.append(f"{key} (exit {code})")
                    sys.stdout.write(f"*** {key} failed (exit {code})\n")
                sys.stdout.write("\n")
                sys.stdout.flush()

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    os.makedirs(os.path.dirname(SAVED), exist_ok=True)
    with open(SAVED, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(took.items())), f, indent=1)
    slowest = sorted(took.items(), key=lambda kv: -kv[1])[:8]
    print("slowest: " + ", ".join(f"{k} {v:.0f} s" for k, v in slowest))
    if failed:
        print("failed: " + ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
