"""Throughput of the PyPI package `tracking-numbers` (get_tracking_number) on one thread.

Reports numbers per second of wall time and of process CPU time (the CPU figure is the
one to compare on a shared machine)."""
import sys
import time

from tracking_numbers import get_tracking_number

numbers = [line.rstrip("\n") for line in open(sys.argv[1], encoding="utf-8")]


def run(items):
    found = 0
    for n in items:
        try:
            if get_tracking_number(n):
                found += 1
        except Exception:  # some inputs make the package raise; count them as not found
            pass
    return found


run(numbers[:2000])
wall0, cpu0 = time.perf_counter(), time.process_time()
found = run(numbers)
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
print(f"pypi tracking-numbers\t{len(numbers)} numbers\twall {len(numbers) / wall:.0f}/s\tcpu {len(numbers) / cpu:.0f}/s\t{found} detected")
