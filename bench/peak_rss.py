#!/usr/bin/env python3
"""Samples the peak resident set (VmHWM) of processes by name until stopped.

Usage: peak_rss.py OUTFILE NAME... ; on SIGTERM writes `NAME KiB` lines (the largest VmHWM
seen for any process of that name) to OUTFILE. VmHWM is the kernel's own high-water mark
of one process, so pg_dump and psql children are not counted in stg-dump's figure.
"""
import os
import signal
import sys
import time

out_path, names = sys.argv[1], set(sys.argv[2:])
peak = {name: 0 for name in names}
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
while running:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm not in names:
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak[comm] = max(peak[comm], int(line.split()[1]))
        except OSError:
            continue
    time.sleep(0.05)
with open(out_path, "w") as f:
    for name, kib in sorted(peak.items()):
        f.write(f"{name} {kib}\n")
