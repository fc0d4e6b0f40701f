#!/usr/bin/env python3
"""Checks stg-age's dates against plain `git blame -w -M -C --porcelain` of whole files.

Usage: compare_blame.py AGE_JSONL BLAME_DIR
       compare_blame.py --runs REFERENCE_JSONL OTHER_JSONL
BLAME_DIR holds one porcelain blame per file, named by the path with '/' turned into '__'.
Prints `checked mismatches` for the findings whose file was blamed. With --runs, compares
the commit and date of every finding of two stg-age runs (a finding missing from either
counts as a mismatch) and prints `checked mismatches`.
"""
import datetime
import json
import os
import sys



def findings(path):
    out = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "finding":
                out[(rec["path"], rec["line"], rec["kind"])] = (rec["commit"], rec["introduced_at"])
    return out


if sys.argv[1] == "--runs":
    ref, other = findings(sys.argv[2]), findings(sys.argv[3])
    keys = set(ref) | set(other)
    bad = [k for k in keys if ref.get(k) != other.get(k)]
    for k in bad[:10]:
        print(f"differs: {k}: {ref.get(k)} vs {other.get(k)}", file=sys.stderr)
    print(len(keys), len(bad))
    sys.exit(0)

age_path, blame_dir = sys.argv[1], sys.argv[2]


def blame_times(path):
    """Line number -> author time of a porcelain blame."""
    times, commit_time, current = {}, {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and len(parts[0]) == 40 and all(c in "0123456789abcdef" for c in parts[0]):
                current = (parts[0], int(parts[2]))
            elif line.startswith("author-time "):
                commit_time[current[0]] = int(parts[1])
            elif line.startswith("\t") and current:
                times[current[1]] = commit_time.get(current[0])
    return times


cache, checked, mismatches = {}, 0, 0
with open(age_path) as f:
    for line in f:
        rec = json.loads(line)
        if rec.get("type") != "finding" or rec.get("kind") == "file":
            continue
        blame_file = os.path.join(blame_dir, rec["path"].replace("/", "__"))
        if not os.path.exists(blame_file):
            continue
        if blame_file not in cache:
            cache[blame_file] = blame_times(blame_file)
        expected = cache[blame_file].get(rec["line"])
        got = datetime.datetime.fromisoformat(rec["introduced_at"].replace("Z", "+00:00")).timestamp()
        checked += 1
        if expected is None or int(got) != expected:
            mismatches += 1
            print(f"mismatch: {rec['path']}:{rec['line']} stg-age {rec['introduced_at']} blame {expected}", file=sys.stderr)
print(checked, mismatches)
