#!/usr/bin/env bash
# Side-by-side guesser throughput: PyPI tracking-numbers, npm ts-tracking-number and
# waybill's core::guess (criterion), on the same corpus, one thread each.
# Peers are installed into $PEERS (default /tmp/peers) at run time, never into the repo.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
peers="${PEERS:-/tmp/peers}"
mkdir -p "$peers"
if [ ! -x "$peers/venv/bin/python" ]; then
  python3 -m venv "$peers/venv"
  "$peers/venv/bin/pip" install -q tracking-numbers
fi
if [ ! -d "$peers/node_modules/ts-tracking-number" ]; then
  (cd "$peers" && npm init -y >/dev/null && npm install -q ts-tracking-number >/dev/null)
fi
corpus="$peers/corpus.txt"
python3 "$here/make_corpus.py" "$corpus" "${REPEAT:-200}"
"$peers/venv/bin/python" "$here/py_tracking_numbers.py" "$corpus"
NODE_PATH="$peers/node_modules" node "$here/ts_tracking_number.js" "$corpus"
cd "$repo"
cargo bench -p waybill-core --bench guess -- --noplot
