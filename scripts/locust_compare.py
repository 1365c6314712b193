#!/usr/bin/env python3
"""Runs each of the guide's examples (scenarios/guide/*.toml) with swarmer and its Locust
equivalent (scenarios/guide/locust/*.py) against a fresh built-in target, one after the other,
same users, spawn rate and duration, and prints side by side what they did: requests per
endpoint as shares of all requests, failure ratios, and what the target stored (posts,
comments, logins, logouts, authorized requests).

    scripts/locust_compare.py [SECONDS] [EXAMPLE ...]     # default 10 s, every example

Needs `locust` (pip install locust) and builds swarmer in release mode. Traffic goes to
127.0.0.1 only.
"""
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "scenarios", "guide")
SWARMER = os.path.join(ROOT, "target", "release", "swarmer")
COUNTERS = ["posts", "comments", "logins", "logouts", "authorized"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_target(port):
    target = subprocess.Popen([SWARMER, "target", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    target.stdout.readline()
    return target


def settings(text):
    """users and spawn_rate of a scenario file."""
    values = {}
    for line in text.splitlines():
        for key in ("users", "spawn_rate"):
            if line.startswith(f"{key} ="):
                values[key] = line.split("=")[1].strip()
    return values["users"], values["spawn_rate"]


def stats(prefix):
    """{(method, name): (requests, failures)} and the aggregated row of a _stats.csv."""
    rows, total = {}, (0, 0)
    with open(prefix + "_stats.csv") as f:
        for row in csv.DictReader(f):
            counts = (int(row["Request Count"]), int(row["Failure Count"]))
            if row["Name"] == "Aggregated":
                total = counts
            else:
                rows[(row["Type"], row["Name"])] = counts
    return rows, total


def run_one(tool, example, seconds, work):
    port, auth_port = free_port(), free_port()
    target, auth = start_target(port), start_target(auth_port)
    try:
        toml = open(os.path.join(GUIDE, f"{example}.toml")).read()
        users, rate = settings(toml)
        prefix = os.path.join(work, f"{tool}-{example}")
        host = f"http://127.0.0.1:{port}"
        if tool == "swarmer":
            path = os.path.join(work, f"{example}.toml")
            text = toml.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("127.0.0.1:8081", f"127.0.0.1:{auth_port}")
            open(path, "w").write(text)
            cmd = [SWARMER, "-f", path, "-t", f"{seconds}s", "--only-summary", "--csv", prefix]
        else:
            cmd = ["locust", "-f", os.path.join(GUIDE, "locust", f"{example}.py"), "--headless", "-u", users,
                   "-r", rate, "-t", f"{seconds}s", "-H", host, "--csv", prefix, "--only-summary", "--loglevel", "ERROR"]
        env = dict(os.environ, AUTH_HOST=f"http://127.0.0.1:{auth_port}")
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 60)
        stored = json.load(urllib.request.urlopen(f"{host}/api/stats"))
        auth_stored = json.load(urllib.request.urlopen(f"http://127.0.0.1:{auth_port}/api/stats"))
        stored["logins"] += auth_stored["logins"]
        return stats(prefix), stored
    finally:
        for process in (target, auth):
            process.kill()
            process.wait()


def report(example, results):
    print(f"== {example}")
    (sw_rows, sw_total), sw_stored = results["swarmer"]
    (lo_rows, lo_total), lo_stored = results["locust"]
    print(f"{'endpoint':<34} {'swarmer share':>14} {'locust share':>13}")
    for key in sorted(set(sw_rows) | set(lo_rows)):
        sw = sw_rows.get(key, (0, 0))[0] / max(sw_total[0], 1)
        lo = lo_rows.get(key, (0, 0))[0] / max(lo_total[0], 1)
        print(f"{key[0] + ' ' + key[1]:<34} {sw:>13.1%} {lo:>13.1%}")
    print(f"{'failure ratio':<34} {sw_total[1] / max(sw_total[0], 1):>13.1%} {lo_total[1] / max(lo_total[0], 1):>13.1%}")
    print(f"{'requests (all)':<34} {sw_total[0]:>14} {lo_total[0]:>13}")
    for counter in COUNTERS:
        if sw_stored[counter] or lo_stored[counter]:
            print(f"{'target ' + counter:<34} {sw_stored[counter]:>14} {lo_stored[counter]:>13}")
    if sw_stored["posts"]:
        print(f"{'comments per post':<34} {sw_stored['comments'] / sw_stored['posts']:>14.2f} "
              f"{lo_stored['comments'] / max(lo_stored['posts'], 1):>13.2f}")
    print()


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    examples = sys.argv[2:] or ["blog", "photos", "flow", "shared", "nested", "sequential", "login", "auth"]
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as work:
        for example in examples:
            results = {tool: run_one(tool, example, seconds, work) for tool in ("swarmer", "locust")}
            report(example, results)
            time.sleep(0.2)


if __name__ == "__main__":
    main()
