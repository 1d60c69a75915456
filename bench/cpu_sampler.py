#!/usr/bin/env python3
"""Where the CPU went during one benchmark phase.

    python3 bench/cpu_sampler.py OUT.json &   ...   kill -TERM $!

Every second, reads the CPU time of every process from /proc and adds what
each used since the last look to its group: the service (`ledger`), the
load driver (`ledger-load`, `pgbench`), PostgreSQL (`postgres`), and
everything else on the box. On SIGTERM it writes the totals, with the whole
box's busy time from /proc/stat, as JSON. A process that lives less than a
second may be missed: the groups can add up to a little less than the box.
No third-party packages.
"""

import json
import os
import signal
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
GROUPS = {"ledger": "service", "ledger-load": "driver", "pgbench": "driver", "postgres": "postgres"}


def box():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields[0:3]) + sum(fields[5:8])
    return busy, busy + fields[3] + fields[4]


def processes():
    seen = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        rest = text[text.rindex(")") + 2 :].split()
        # utime and stime are fields 14 and 15; rest starts at field 3.
        seen[(pid, rest[19])] = (comm, int(rest[11]) + int(rest[12]))
    return seen


def main():
    out = sys.argv[1]
    mine = os.getpid()
    totals = {"service": 0, "driver": 0, "postgres": 0, "other": 0}
    with open("/proc/uptime") as f:
        start_ticks = float(f.read().split()[0]) * HZ
    last = processes()
    box_start, box_all_start = box()
    started = time.monotonic()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop:
        time.sleep(1)
        now = processes()
        for key, (comm, ticks) in now.items():
            if int(key[0]) == mine:
                continue
            before = last.get(key, (comm, None))[1]
            # A process first seen now: count all its time if it started
            # after the sampler did, otherwise from this look on.
            if before is None:
                if int(key[1]) < start_ticks:
                    continue
                before = 0
            totals[GROUPS.get(comm, "other")] += ticks - before
        last = now
    box_end, box_all_end = box()
    busy = (box_end - box_start) / HZ
    capacity = (box_all_end - box_all_start) / HZ
    result = {k + "_cpu_s": round(v / HZ, 2) for k, v in totals.items()}
    result.update(
        wall_s=round(time.monotonic() - started, 2),
        box_busy_cpu_s=round(busy, 2),
        box_capacity_cpu_s=round(capacity, 2),
        box_busy_pct=round(100 * busy / capacity, 1) if capacity else 0.0,
    )
    with open(out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
