#!/usr/bin/env python3
"""How many tests ran, per crate: from the build's artifacts (`cargo test --no-run
--message-format=json`, which says which package each test executable belongs to) and
the run's log (each executable's `Running … (target/…/NAME-HASH)` line, then its
`test result:` line). README states the total; it must never drop.

    .ci/count-tests.py ARTIFACTS.json TEST.log"""

import json
import os
import re
import sys


def packages(artifacts):
    owner = {}
    for line in open(artifacts, encoding="utf-8"):
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            # package_id: "path+file:///…/crates/store#firebreak-store@0.1.0" (or older forms)
            pid = msg["package_id"]
            name = re.search(r"#([\w-]+)@", pid) or re.search(r"^([\w-]+) ", pid)
            owner[os.path.basename(msg["executable"])] = name.group(1) if name else pid
    return owner


def main():
    owner = packages(sys.argv[1])
    counts = {}
    crate = None
    for line in open(sys.argv[2], encoding="utf-8", errors="replace"):
        running = re.match(r"\s*Running .*\((.*?)\)\s*$", line)
        if running:
            crate = owner.get(os.path.basename(running.group(1)), "?")
            continue
        if re.match(r"\s*Doc-tests ", line):
            crate = None
            continue
        result = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
        if result and crate:
            c = counts.setdefault(crate, [0, 0, 0])
            for i in range(3):
                c[i] += int(result.group(i + 1))
    print(f"{'tests run':<26} {'passed':>7} {'failed':>7} {'ignored':>8}")
    total = [0, 0, 0]
    for name in sorted(counts):
        p, f, i = counts[name]
        print(f"{name:<26} {p:>7} {f:>7} {i:>8}")
        total = [a + b for a, b in zip(total, counts[name])]
    print(f"{'total':<26} {total[0]:>7} {total[1]:>7} {total[2]:>8}")


if __name__ == "__main__":
    main()
