#!/usr/bin/env python3
"""Generates an Ansible-like git repository with a long history, for the stg-age benchmark.

Usage: gen_repo.py DIR [COMMITS] [FILES] [CONDITIONS]
       (defaults 44000 commits, 4300 files, about 800 conditions: the size of a real
       infrastructure tree such as fedora-infra/ansible)
       gen_repo.py --more DIR N   adds N commits on top of a generated repository (the
       incremental runs of the benchmark), editing a few condition-carrying files.

The tree has roles (tasks, handlers, templates, files), inventory host_vars and group_vars,
and playbooks. Files are added over the first half of the history; about one file in thirteen
is "hot" (edited often, and where the conditions go), the rest are edited now and then. Each
commit edits one file, or two or three; an edit appends a task, inserts one near the top (so
blame traces moved lines), rewrites a command, re-indents a block (whitespace only, for -w) or
drops a task. Now and then a block moves from one file to another in one commit (found by
-C), and a file is renamed (found by -M). A few staging variant files (*.staging, host_vars
of *.stg.* hosts) are added along the way. Conditions take every form stg-age detects. Dates
are fixed, one hour apart, and the generator is seeded, so ages are reproducible. Built with
`git fast-import`: 44,000 commits in well under a minute. Prints the number of conditions in
the final tree.
"""
import random
import re
import subprocess
import sys

FORMS = [
    ['  when: env == "staging"'],
    ["  when: env != 'staging'"],
    ['  when: env == "staging" and inventory_hostname in groups["fas"]'],
    ["  when:", "    - env == 'staging'", "    - ansible_distribution == 'Fedora'"],
    ["  args:", "    url: \"{{ 'https://a.stg.example.org' if env == 'staging' else 'https://a.example.org' }}\""],
    ["  vars:", "    port: \"{{ (env == 'staging') | ternary(8443, 443) }}\""],
]
CONDITION = re.compile(r"""env [!=]= ["']staging["']""")
START = 1262304000  # 2010-01-01T00:00:00Z


def file_names(n, rng):
    names = []
    roles = max(1, n // 11)
    for r in range(roles):
        names += [f"roles/r{r}/tasks/main.yml", f"roles/r{r}/handlers/main.yml"]
        names += [f"roles/r{r}/templates/t{t}.conf.j2" for t in range(rng.randint(1, 6))]
        names += [f"roles/r{r}/files/f{t}.cfg" for t in range(rng.randint(0, 3))]
    h = 0
    while len(names) < n:
        names.append(f"inventory/host_vars/host{h}.iad2.example.org" if h % 3 else f"playbooks/groups/g{h}.yml")
        h += 1
    return names[:n]


class Repo:
    def __init__(self, out, start_commit):
        self.out = out
        self.k = start_commit

    def commit(self, changes, message):
        """changes: list of ("M", path, lines) | ("D", path) | ("R", old, new)."""
        k = self.k
        ts = START + k * 3600
        who = f"Dev {k % 23} <dev{k % 23}@example.org>"
        msg = f"{message} ({k})\n".encode()
        w = self.out.write
        w(b"commit refs/heads/main\n")
        w(f"author {who} {ts} +0000\ncommitter {who} {ts} +0000\n".encode())
        w(b"data %d\n%s" % (len(msg), msg))
        for change in changes:
            if change[0] == "M":
                body = ("\n".join(change[2]) + "\n").encode()
                w(f"M 100644 inline {change[1]}\n".encode())
                w(b"data %d\n%s\n" % (len(body), body))
            elif change[0] == "R":
                w(f"R {change[1]} {change[2]}\n".encode())
            else:
                w(f"D {change[1]}\n".encode())
        self.k += 1


def task(k, rng, conditions_left, hot):
    lines = [f"- name: task {k} {rng.randrange(10**6)}", f"  command: /usr/bin/true {k} --flag={rng.randrange(999)}"]
    if hot and conditions_left > 0:
        lines += FORMS[k % len(FORMS)]
        return lines, 1
    return lines, 0


def edit(lines, k, rng, want_condition, cond_left):
    """One edit of a file's lines; returns the number of conditions added."""
    kind = rng.random()
    added = 0
    if kind < 0.45 or len(lines) < 12:
        t, added = task(k, rng, cond_left, want_condition)
        lines.extend(t)
    elif kind < 0.65:
        t, added = task(k, rng, cond_left, want_condition)
        lines[3:3] = t
    elif kind < 0.85:
        cmds = [i for i, l in enumerate(lines) if l.startswith("  command:")]
        if cmds:
            i = rng.choice(cmds)
            lines[i] = f"  command: /usr/bin/true {k} --changed"
    elif kind < 0.93:
        # Whitespace only: blame -w sees through it.
        i = rng.randrange(2, len(lines))
        lines[i] = lines[i] + " " if not lines[i].endswith(" ") else lines[i].rstrip()
    else:
        starts = [i for i, l in enumerate(lines) if l.startswith("- name:")]
        if len(starts) > 3:
            j = rng.randrange(len(starts) - 1)
            a, b = starts[j], starts[j + 1]
            if not any(CONDITION.search(l) for l in lines[a:b]):
                del lines[a:b]
    # Long files lose their oldest task without a condition.
    if len(lines) > 400:
        starts = [i for i, l in enumerate(lines) if l.startswith("- name:")] + [len(lines)]
        for a, b in zip(starts, starts[1:]):
            if not any(CONDITION.search(l) for l in lines[a:b]):
                del lines[a:b]
                break
    return added


def generate(target, commits, nfiles, nconditions):
    rng = random.Random(18)
    names = file_names(nfiles, rng)
    hot_every = 13
    variants = {i for i in range(0, nfiles, max(1, nfiles // 24)) if i % hot_every}
    content = {}
    subprocess.run(["git", "init", "-q", "-b", "main", target], check=True)
    fi = subprocess.Popen(["git", "-C", target, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    repo = Repo(fi.stdin, 0)
    created = 0
    cond_added = 0
    # Conditions go into hot files spread over the whole history.
    hot_edits_expected = commits * 0.55 * 1.3
    p_cond = min(1.0, 1.5 * nconditions / hot_edits_expected)
    create_every = max(1, commits // 2 // nfiles)
    live = []
    hot_list = []
    hot_set = set()
    for k in range(commits):
        changes = []
        message = "change"
        if created < nfiles and (k % create_every == 0 or commits - k <= nfiles - created):
            i = created
            created += 1
            path = names[i]
            if i in variants:
                path = path.replace(".yml", ".staging") if path.endswith(".yml") else path.replace(".iad2.", ".stg.iad2.")
                names[i] = path
            content[path] = [f"# {path}", "---", f"- name: first {k}", "  command: /usr/bin/true"]
            live.append(path)
            if i % hot_every == 0:
                hot_list.append(path)
                hot_set.add(path)
            changes.append(("M", path, content[path]))
            message = "add " + path
        elif live:
            n = 1 if rng.random() < 0.7 else rng.randint(2, 3)
            picked = []
            for _ in range(n):
                path = rng.choice(hot_list) if hot_list and rng.random() < 0.55 else rng.choice(live)
                if path not in picked:
                    picked.append(path)
            for path in picked:
                hot = path in hot_set
                want = hot and cond_added < nconditions and rng.random() < p_cond
                cond_added += edit(content[path], k, rng, want, nconditions - cond_added)
                changes.append(("M", path, content[path]))
            if len(picked) >= 2 and rng.random() < 0.3:
                # A block moves between two files changed in the same commit: blame -C.
                a, b = content[picked[0]], content[picked[1]]
                if len(a) > 20:
                    block = a[10:16]
                    del a[10:16]
                    b.extend(block)
                    message = "move a block"
            if k % 1500 == 750:
                # A rename: blame -M follows the file.
                old = rng.choice(hot_list)
                if old not in picked:
                    new = old.replace("/main.yml", "/main2.yml") if "main.yml" in old else old + ".d/main"
                    if new not in content:
                        changes.append(("R", old, new))
                        content[new] = content.pop(old)
                        live[live.index(old)] = new
                        hot_list[hot_list.index(old)] = new
                        hot_set.discard(old)
                        hot_set.add(new)
                        message = "rename " + old
        repo.commit(changes, message)
    fi.stdin.close()
    if fi.wait() != 0:
        sys.exit("git fast-import failed")
    subprocess.run(["git", "-C", target, "checkout", "-q", "main"], check=True)
    return sum(1 for lines in content.values() for l in lines if CONDITION.search(l))


def more(target, n):
    """N more commits on top of `target`: each edits one condition-carrying file (appends a
    task and rewrites a line above a condition), the kind of day-to-day change a cached run
    has to re-date."""
    rng = random.Random(n)
    head = subprocess.run(["git", "-C", target, "rev-list", "--count", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    grep = subprocess.run(["git", "-C", target, "grep", "-l", "-E", "env [!=]= [\"']staging[\"']"],
                          capture_output=True, text=True).stdout.split()
    fi = subprocess.Popen(["git", "-C", target, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    fi.stdin.write(b"reset refs/heads/main\nfrom refs/heads/main^0\n\n")
    repo = Repo(fi.stdin, int(head))
    for _ in range(n):
        path = rng.choice(grep)
        with open(f"{target}/{path}", encoding="utf-8") as f:
            lines = f.read().splitlines()
        k = repo.k
        lines[3:3] = [f"- name: later task {k}", f"  command: /usr/bin/true {k}", '  when: env == "staging"']
        lines.append(f"- name: appended {k}")
        repo.commit([("M", path, lines)], "later change")
        with open(f"{target}/{path}", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    fi.stdin.close()
    if fi.wait() != 0:
        sys.exit("git fast-import failed")
    subprocess.run(["git", "-C", target, "reset", "-q", "--hard", "main"], check=True)


if __name__ == "__main__":
    if sys.argv[1] == "--more":
        more(sys.argv[2], int(sys.argv[3]))
    else:
        target = sys.argv[1]
        commits = int(sys.argv[2]) if len(sys.argv) > 2 else 44000
        nfiles = int(sys.argv[3]) if len(sys.argv) > 3 else 4300
        nconditions = int(sys.argv[4]) if len(sys.argv) > 4 else 800
        print(generate(target, commits, nfiles, nconditions))
