#!/usr/bin/env bash
# The cpca-new side-by-side of BENCHMARKS.md "Place of every line": installs cpca-new
# (PyPI, 2026 data) into a throwaway venv, reads every line of core/corpus/places.tsv with
# it, and counts lines whose province and city are both right, per split and language.
# cpca-new is never a dependency of the project.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
# cpca-new does not declare what it imports (pyahocorasick, pandas).
"$venv/bin/pip" install -q "cpca-new==0.1.2" pyahocorasick pandas
"$venv/bin/python" - core/corpus/places.tsv <<'PY'
import sys, time, warnings
warnings.filterwarnings("ignore")
import cpca_new
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1], encoding="utf-8")
        if not l.startswith("#")]
lines = [r[4] for r in rows]
t0 = time.perf_counter()
df = cpca_new.transform(lines)
elapsed = time.perf_counter() - t0
tally = {}
for (split, prov, city, _next, line), (_, got) in zip(rows, df.iterrows()):
    gp, gc = got["省"] or "", got["市"] or ""
    # A municipality's city may come back as itself or as 市辖区: both count as right.
    city_ok = gc == city or (city == prov and gc in (prov, "市辖区"))
    lang = "en" if line.isascii() else "zh"
    for key in ((split, lang), (split, "all"), ("all", "all")):
        t = tally.setdefault(key, [0, 0])
        t[0] += 1
        t[1] += gp == prov and city_ok
for key in sorted(tally):
    n, ok = tally[key]
    print(f"{key[0]:>4} {key[1]:>3}: {ok}/{n} = {100 * ok / n:.1f} %")
print(f"throughput: {len(lines) / elapsed:.0f} lines/s ({len(lines)} lines in {elapsed:.2f} s)")
PY
