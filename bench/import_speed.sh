#!/usr/bin/env bash
# Pair import timing check. Run by hand, never as a test:
#
#     bench/import_speed.sh [N]        # default 200000 pairs
#
# Generates N small distinct pairs as JSONL in /tmp, then imports them with `manage.py import_pairs` into a fresh
# PostgreSQL database of its own (arbiter_import_speed on 127.0.0.1:5432, trust auth; dropped and re-created), then
# imports the same file again (must create 0). Prints the command's summary and pairs/s.
set -euo pipefail
N=${1:-200000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/arbiter-import-speed.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_import_speed ARBITER_VAR_DIR="$WORK/var"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS arbiter_import_speed" \
    -c "CREATE DATABASE arbiter_import_speed" 2>&1 | grep -v NOTICE || true
.venv/bin/python manage.py migrate -v 0
.venv/bin/python manage.py shell -v 0 -c "from annotation.models import Project; Project.objects.create(slug='speed', name='Speed')"
.venv/bin/python - "$N" "$WORK/pairs.jsonl" <<'PY'
import sys
import orjson
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "wb") as f:
    for i in range(n):
        row = {"id": f"p{i}", "prompt": f"Question {i}: what is {i} squared?", "response_a": f"It is {i * i}.",
               "response_b": f"I think it is {i * i + 1}.", "model_a": "model-alpha", "model_b": "model-beta"}
        f.write(orjson.dumps(row) + b"\n")
PY
echo "$(du -h "$WORK/pairs.jsonl" | cut -f1) file, $N pairs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for pass in first again; do
    start=$(date +%s.%N)
    summary=$(.venv/bin/python manage.py import_pairs speed "$WORK/pairs.jsonl" 2>/dev/null)
    end=$(date +%s.%N)
    echo "$pass: $summary"
    python3 -c "import sys; n, s = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); print(f'  {s:.1f} s wall (with Django start-up): {n / s:,.0f} rows/s')" "$N" "$start" "$end"
done
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE arbiter_import_speed"
