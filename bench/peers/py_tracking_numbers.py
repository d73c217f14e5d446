"""Throughput of the PyPI package `tracking-numbers` (get_tracking_number) on one thread."""
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
start = time.perf_counter()
found = run(numbers)
elapsed = time.perf_counter() - start
print(f"pypi tracking-numbers\t{len(numbers)}\t{elapsed:.3f}s\t{len(numbers) / elapsed:.0f} numbers/s\t{found} detected")
