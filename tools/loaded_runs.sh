#!/usr/bin/env bash
# Run the README's test command N times in a row (default 10) on a clean checkout of
# HEAD, with two CPU-bound processes beside it; print one line per run.
# Usage: tools/loaded_runs.sh [N]
set -uo pipefail
runs=${1:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
git -C "$repo" worktree add -q --detach "$work/checkout" HEAD
python3 -c "while True: pass" & hog1=$!
python3 -c "while True: pass" & hog2=$!
trap 'kill $hog1 $hog2; git -C "$repo" worktree remove --force "$work/checkout"; rm -rf "$work"' EXIT
cd "$work/checkout"
for i in $(seq 1 "$runs"); do
    [ "$i" -eq 1 ] && rm -rf .venv  # later runs: the same command over the same .venv
    start=$(date +%s)
    python3 -m venv .venv && .venv/bin/pip install -q '.[test]' >/dev/null 2>&1 &&
        .venv/bin/python -m pytest -q -p no:cacheprovider > "$work/run-$i.log" 2>&1
    status=$?
    echo "run $i: exit $status, $(( $(date +%s) - start )) s: $(grep -E '^[0-9]+ (passed|failed)|(passed|failed).* in ' "$work/run-$i.log" | tail -1)"
    [ $status -eq 0 ] || grep -E '^(FAILED|ERROR)' "$work/run-$i.log"
done
