"""Measurement helpers shared by the benchmarks: memory peaks and machine-wide CPU use, read from /proc."""

from __future__ import annotations

import os
import re
import time


def mem_mb() -> dict[str, float]:
    """Current RSS and peak RSS (VmHWM) of this process in MiB."""
    with open("/proc/self/status") as fh:
        status = fh.read()
    return {k: int(re.search(k + r":\s+(\d+)", status).group(1)) / 1024 for k in ("VmRSS", "VmHWM")}


def reset_peak() -> bool:
    """Reset VmHWM so the next reading covers only what follows (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def busy_s() -> float:
    """Machine-wide busy CPU seconds so far (all cores), from /proc/stat: shows whether another job competed."""
    with open("/proc/stat") as fh:
        f = [int(v) for v in fh.readline().split()[1:9]]
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")


def wait_idle(max_wait_s: float = 120.0, foreign_cores: float = 0.15) -> float:
    """Wait until other processes use < foreign_cores CPUs (sampled over 1 s); return the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait_s:
        b, c = busy_s(), time.process_time()
        time.sleep(1.0)
        if (busy_s() - b) - (time.process_time() - c) < foreign_cores:
            break
    return time.perf_counter() - t0


# -- data ---------------------------------------------------------------------------------------------
