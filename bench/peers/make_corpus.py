"""Write the benchmark corpus: every number of core/tests/data/*.jsonl, repeated.

Usage: python3 make_corpus.py OUT REPEAT
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parents[2] / "core" / "tests" / "data"
numbers = []
for name in ("tracking_number_data_cases.jsonl", "cn_cases.jsonl"):
    for line in (root / name).read_text(encoding="utf-8").splitlines():
        if line.strip():
            numbers.append(json.loads(line)["number"])
out, repeat = sys.argv[1], int(sys.argv[2])
with open(out, "w", encoding="utf-8") as f:
    for _ in range(repeat):
        for n in numbers:
            f.write(n + "\n")
print(f"{out}: {len(numbers)} distinct numbers x {repeat}")
