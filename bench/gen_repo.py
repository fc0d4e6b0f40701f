#!/usr/bin/env python3
"""Generates an Ansible-like git repository with a long history, for the stg-age benchmark.

Usage: gen_repo.py DIR [COMMITS] [FILES]  (defaults 20000 commits, 300 files)
Each commit edits one tasks file: it appends a task, and now and then inserts one near the
top (so blame has to trace moved lines). About 700 of the tasks carry an environment
condition in one of the forms stg-age detects. Dates are fixed, one hour apart, so ages are
reproducible. Built with `git fast-import`, so 20,000 commits take seconds, not minutes.
"""
import subprocess
import sys

target = sys.argv[1]
commits = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
nfiles = int(sys.argv[3]) if len(sys.argv) > 3 else 300
forms = [
    '  when: env == "staging"',
    "  when: env != 'staging'",
    '  when: env == "staging" and inventory_hostname in groups["fas"]',
    "  when:\n    - env == 'staging'\n    - ansible_distribution == 'Fedora'",
]
files = [[f"# role r{i}", "---"] for i in range(nfiles)]
subprocess.run(["git", "init", "-q", "-b", "main", target], check=True)
fi = subprocess.Popen(["git", "-C", target, "fast-import", "--quiet"], stdin=subprocess.PIPE)
out = fi.stdin
start = 1262304000  # 2010-01-01T00:00:00Z
conditions = 0
for k in range(commits):
    i = k % nfiles
    lines = files[i]
    task = [f"- name: task {k}", f"  command: /usr/bin/true {k}"]
    if k % 28 == 5:
        task.append(forms[k % len(forms)])
        conditions += 1
    if k % 11 == 0 and len(lines) > 6:
        lines[3:3] = task  # insert near the top
    else:
        lines.extend(task)
    body = ("\n".join(lines) + "\n").encode()
    msg = f"change {k}\n".encode()
    ts = start + k * 3600
    out.write(f"commit refs/heads/main\nmark :{k + 1}\n".encode())
    out.write(f"author Dev {k % 17} <dev{k % 17}@example.org> {ts} +0000\n".encode())
    out.write(f"committer Dev {k % 17} <dev{k % 17}@example.org> {ts} +0000\n".encode())
    out.write(b"data %d\n%s" % (len(msg), msg))
    if k > 0:
        out.write(f"from :{k}\n".encode())
    out.write(f"M 100644 inline roles/r{i}/tasks/main.yml\n".encode())
    out.write(b"data %d\n%s\n" % (len(body), body))
out.close()
if fi.wait() != 0:
    sys.exit("git fast-import failed")
subprocess.run(["git", "-C", target, "checkout", "-q", "main"], check=True)
print(conditions)
