#!/usr/bin/env python3
"""Where a client's CPU goes, per request: reads `perf script` output of one or more
`perf record -e cpu-clock -g` runs and prints microseconds of CPU per request by part, side by
side (`scripts/bench.sh profile` records swarmer, wrk and the floor client and calls this).

    perf-breakdown.py PERIOD_US NAME=PERF_DATA:REQUESTS ...

PERIOD_US is the sampling period the runs were recorded with (`perf record -e cpu-clock -c
PERIOD_NS`): each sample stands for that much CPU, so CPU per request is samples x period /
requests.

Each sample is put in the first part whose rule matches: user-space samples by their own symbol,
kernel samples by the first frame of their stack that names a part (so the loopback's receive
processing that runs inside a send is counted as receive processing, not as the send).
"""
import re
import subprocess
import sys
from collections import Counter

USER_PARTS = [
    ("runtime (monoio: ops, wakers, tasks; io_uring queues)", r"monoio::|io_uring::"),
    ("HTTP parsing and body framing", r"httparse|conn::Reader::receive|read::ReadBuf|body::|head::"),
    ("recording (histograms, counters)", r"hdrhistogram|exchange::record|stats::"),
    ("timers and clock reads", r"timer::|clock_gettime|Timespec|vdso|time::"),
    ("memory (copies, allocator)", r"memmove|memcpy|memset|malloc|free|realloc"),
]
KERNEL_PARTS = [
    ("kernel: TCP receive processing (loopback softirq)", r"^(net_rx_action|__netif_receive_skb|process_backlog|tcp_v4_rcv|ip_rcv)"),
    ("kernel: TCP send (tcp_sendmsg and below)", r"^(tcp_sendmsg|__sys_sendto|sock_sendmsg|io_send)"),
    ("kernel: TCP receive copy (tcp_recvmsg)", r"^(tcp_recvmsg|sock_recvmsg|io_recv)"),
    ("kernel: io_uring poll arming and wakeups", r"^(io_arm_poll|io_arm_apoll|io_poll|__io_poll|io_pollfree|io_poll_task_func)"),
    ("kernel: epoll and read/write syscalls", r"^(ep_|do_epoll|__x64_sys_epoll|ksys_read|ksys_write|__x64_sys_read|__x64_sys_write)"),
    ("kernel: io_uring submission and completion", r"^(io_|__io_|__do_sys_io_uring_enter)"),
    ("kernel: scheduling, timers, idle", r"^(schedule|__schedule|hrtimer|tick_|do_nanosleep|timerfd)"),
]


def samples(path):
    """Yields (is_kernel, frames leaf first) for each sample of a perf.data file."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym,dso"], capture_output=True, text=True,
                         check=True).stdout
    frames = []
    for line in out.splitlines() + [""]:
        line = line.strip()
        if not line:
            if frames:
                yield frames
            frames = []
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        dso = rest[rest.rfind("(") + 1:-1] if rest.endswith(")") else ""
        sym = rest[:rest.rfind("(")].strip() if "(" in rest else rest
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        frames.append((sym, dso))


def part_of(frames):
    leaf_sym, leaf_dso = frames[0]
    if "kernel" not in leaf_dso:
        for name, rule in USER_PARTS:
            if re.search(rule, leaf_sym):
                return name
        return "engine (users, requests, connections)"
    for sym, dso in frames:
        if "kernel" not in dso:
            break
        for name, rule in KERNEL_PARTS:
            if re.search(rule, sym):
                return name
    return "kernel: other"


def main():
    period_us = float(sys.argv[1])
    runs = []
    for arg in sys.argv[2:]:
        name, spec = arg.split("=", 1)
        path, requests = spec.rsplit(":", 1)
        counts = Counter(part_of(f) for f in samples(path))
        per_sample = period_us / float(requests)
        runs.append((name, {k: v * per_sample for k, v in counts.items()}, sum(counts.values()) * per_sample))
    parts = [p for p, _ in USER_PARTS] + ["engine (users, requests, connections)"] + \
            [p for p, _ in KERNEL_PARTS] + ["kernel: other"]
    width = max(len(p) for p in parts)
    print(f"{'µs CPU per request':<{width}} " + " ".join(f"{n:>9}" for n, _, _ in runs))
    for part in parts:
        if all(r.get(part, 0) < 0.005 for _, r, _ in runs):
            continue
        print(f"{part:<{width}} " + " ".join(f"{r.get(part, 0):9.2f}" for _, r, _ in runs))
    print(f"{'total':<{width}} " + " ".join(f"{t:9.2f}" for _, _, t in runs))


if __name__ == "__main__":
    main()
