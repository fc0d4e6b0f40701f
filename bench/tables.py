#!/usr/bin/env python3
"""Markdown for the compression parts of docs/benchmarks.md (called by bench/run.sh).

Usage: tables.py levels|links|choice TSV KEY=VALUE...
  levels  TSV rows: label, compression, db (full|small), wall s, bytes, peak RSS KiB, decode s,
          CPU s (user + sys of stg-dump and its pg_dump), tool (stg-dump, refused, zstd-cli), note
  links   TSV rows: compression (or "floor"), Mbit/s (0: no limit), wall s, bytes, people
  choice  the levels TSV again: which zstd level the measurements support, and why
KEY=VALUE: the run's scalars (sop_bytes, t_pgdump, t_rs_plain, ...), see run.sh.
Every figure printed is one measured in the run, or a ratio of two such figures; the one
estimate (zstd:19's bytes against the SOP when it runs on the small database) says so.
"""
import csv
import sys

MIB = 1024
RSS_BOUND_KIB = 64 * MIB
BYTES_TARGET = 1.35


def load(path, names):
    with open(path) as f:
        return [dict(zip(names, row)) for row in csv.reader(f, delimiter="\t") if row]


def mib(kib):
    return f"{int(kib) / MIB:.1f} MiB"


def rss_cell(kib):
    cell = mib(kib)
    return f"**{cell}, over 64 MiB**" if int(kib) > RSS_BOUND_KIB else cell


def r(a, b):
    return f"{float(a) / float(b):.2f}"


def mbit(m):
    m = int(m)
    if m == 0:
        return "no limit"
    return f"{m // 1000} Gbit/s" if m >= 1000 and m % 1000 == 0 else f"{m} Mbit/s"


LEVEL_COLS = ["label", "c", "db", "t", "bytes", "rss", "dec", "cpu", "tool", "note"]


def ordered(rows):
    """Full-size rows first, each refused level followed by its CLI reference, then small ones."""
    out = []
    for db in ("full", "small"):
        here = [x for x in rows if x["db"] == db]
        cli = [x for x in here if x["tool"] == "zstd-cli"]
        for x in here:
            if x["tool"] == "zstd-cli":
                continue
            out.append(x)
            if x["tool"] == "refused":
                out += [y for y in cli if y["c"] == x["c"]]
        out += [y for y in cli if not any(z["tool"] == "refused" and z["c"] == y["c"] for z in here)]
    return out


def levels(rows, v):
    sop = float(v["sop_bytes"])
    default_c, xz_c = v["default_c"], v["xz_c"]
    measured = [x for x in rows if x["tool"] != "refused"]
    full_def = next((x for x in rows if x["db"] == "full" and x["c"] == default_c and x["tool"] == "stg-dump"), None)
    small_def = next((x for x in rows if x["db"] == "small" and x["c"] == default_c and x["tool"] == "stg-dump"), None)
    out = [
        "| compression | wall time, `stg-dump --compress C db > file` (ratio to `pg_dump db > /dev/null`) "
        "| CPU, user + sys, pg_dump's included | compressed bytes | ratio to the SOP's `xz -6` file "
        "| decode alone, one thread, `> /dev/null` (MB/s of SQL; ratio to the server's load) | peak RSS of stg-dump |",
        "|---|---|---|---|---|---|---|",
    ]
    sop_row_done = False
    for x in ordered(rows):
        if x["db"] == "small" and not sop_row_done:
            out.append(sop_row(v, sop))
            sop_row_done = True
        small = x["db"] == "small"
        where = f", on fas2_small ({v['small']} people)" if small else ""
        if x["tool"] == "refused":
            out.append(f"| `{x['c']}`{where} | refused by stg-dump (exit 2): \"{x['note']}\" | | | | | |")
            continue
        cli = x["tool"] == "zstd-cli"
        if cli:
            name = (f"`zstd -{x['c'].split(':')[1]} -T1` on the plain SQL{where}, for reference "
                    "(stg-dump refuses this level)")
        else:
            name = f"`{x['c']}`{where}" + (" (the default)" if x["c"] == default_c else "")
            name += " (`--compress xz`)" if x["c"] == xz_c and not small else ""
        pg = v["t_pgdump_small"] if small else v["t_pgdump"]
        base = small_def if small else full_def
        if cli:
            tcell = f"{float(x['t']):.2f} s (compression alone, no pg_dump"
        else:
            tcell = f"{float(x['t']):.2f} s ({r(x['t'], pg)}"
        if base and x is not base and x["c"].startswith("zstd"):
            tcell += f"; {r(x['t'], base['t'])}x stg-dump's `{default_c}` on the same data"
        tcell += ")"
        if small and small_def and x is not small_def:
            est = float(x["bytes"]) / float(small_def["bytes"]) * float(full_def["bytes"]) / sop
            bytes_ratio = (f"about {est:.2f} (estimated: {r(x['bytes'], small_def['bytes'])}x `{default_c}`'s bytes "
                           f"on the same small SQL, times `{default_c}`'s ratio above)")
        elif small:
            bytes_ratio = "(the small database's reference)"
        else:
            bytes_ratio = r(x["bytes"], sop)
        sql = float(v["small_sql_bytes"] if small else v["sql_bytes"])
        dec = f"{float(x['dec']):.2f} s ({sql / 1e6 / float(x['dec']):.0f} MB/s"
        dec += ")" if small else f"; {r(x['dec'], v['t_rs_plain'])})"
        rss = ("zstd itself: " + mib(x["rss"]) + (" (over 64 MiB)" if int(x["rss"]) > RSS_BOUND_KIB else "")
               if cli else rss_cell(x["rss"]))
        out.append(f"| {name} | {tcell} | {x['cpu']} s | {x['bytes']} | {bytes_ratio} | {dec} | {rss} |")
    if not sop_row_done:
        out.append(sop_row(v, sop))
    print("\n".join(out))
    print()
    # What the table means, and what bounds the restore at each level.
    load = float(v["t_rs_plain"])
    zfull = [x for x in measured if x["db"] == "full" and x["c"].startswith("zstd")]
    slowest_z = max(zfull, key=lambda x: float(x["dec"]))
    xz = next((x for x in measured if x["db"] == "full" and x["c"] == xz_c), None)
    refused = [x["c"] for x in rows if x["tool"] == "refused"]
    print(
        f"Reading this table: stg-dump's wall time includes pg_dump's (`pg_dump db > /dev/null` alone: "
        f"{float(v['t_pgdump']):.2f} s on fas2, {float(v['t_pgdump_small']):.2f} s on fas2_small), so a ratio "
        f"near 1.00 means the encoder keeps up with pg_dump and the dump costs nothing more; the CPU column "
        f"(pg_dump alone: {v['cpu_pgdump']} s on fas2) is the work, which on a shared machine varies less than the "
        f"wall time, and which the dump takes from the rest of the sync on the same cores; the bytes are the "
        f"stream on the wire, against the SOP's `xz -6` file of the same database (target at most {BYTES_TARGET}x); "
        f"the memory is stg-dump's own VmHWM (the bound is 64 MiB; stg-dump was given the default threads, the "
        f"{v['threads']} cores, and decides itself how many workers a level gets). "
        + (f"stg-dump refuses {', '.join('`' + c + '`' for c in refused)}; their rows measure the zstd CLI with "
           f"one thread on the plain SQL instead: what the level would cost and save, not stg-dump. "
           if refused else "")
        + f"Decoding: the slowest zstd stream to decode, `{slowest_z['c']}`, takes {float(slowest_z['dec']):.2f} s, "
        f"{r(slowest_z['dec'], load)}x the server's load of the same SQL ({load:.2f} s, the restore section's "
        f"`psql < file.sql`), so "
        + ("with zstd at any level the load, not the decoder, bounds the restore" if float(slowest_z["dec"]) < load
           else "at that level the decoder, not the load, bounds the restore")
        + (f"; xz:0 takes {float(xz['dec']):.2f} s, {r(xz['dec'], load)}x the load, so "
           + ("with `--compress xz` the decoder bounds the restore." if float(xz["dec"]) >= load
              else "with `--compress xz` the load still bounds the restore, by a smaller margin.")
           if xz else ".")
    )
    small_other = [x for x in measured if x["db"] == "small" and x["tool"] == "stg-dump" and x is not small_def]
    if full_def and small_def and small_other:
        print()
        print(
            f"Memory against the input: stg-dump at `{default_c}` peaked at {mib(small_def['rss'])} on fas2_small "
            f"and {mib(full_def['rss'])} on fas2 (the encoder's buffers fill as input arrives), so "
            + ", ".join(f"`{x['c']}`'s {mib(x['rss'])} on fas2_small" for x in small_other)
            + " is a lower bound of what it takes on fas2 (`BENCH_ZSTD19_FULL=1` measures it there)."
        )


def sop_row(v, sop):
    return (
        f"| the SOP: `pg_dump -C db \\| xz -c > file` (xz -6, one thread) | {float(v['t_sop_dump']):.2f} s "
        f"({r(v['t_sop_dump'], v['t_pgdump'])}) | {v['cpu_sop']} s | {int(sop)} | 1.00 "
        f"| {float(v['t_sop_dec']):.2f} s ({float(v['sql_bytes']) / 1e6 / float(v['t_sop_dec']):.0f} MB/s; "
        f"{r(v['t_sop_dec'], v['t_rs_plain'])}) | xz itself: {mib(v['rss_xz'])} |"
    )


LINK_COLS = ["c", "mbit", "t", "bytes", "people"]


def links(rows, v):
    default_c = v["default_c"]
    rates = sorted({int(x["mbit"]) for x in rows}, key=lambda m: (m != 0, -m))
    comps = []
    for x in rows:
        if x["c"] not in comps:
            comps.append(x["c"])
    cell = {(x["c"], int(x["mbit"])): x for x in rows}
    base = {m: float(cell[(default_c, m)]["t"]) for m in rates if (default_c, m) in cell}
    out = ["| stream (fas2_small) | bytes on the wire | " + " | ".join(mbit(m) for m in rates) + " |",
           "|---|---|" + "---|" * len(rates)]
    sql = float(v["small_sql_bytes"])
    for c in comps:
        any_row = next(x for x in rows if x["c"] == c)
        if c == "floor":
            name, nbytes = "uncompressed floor: `pg_dump db \\| pv \\| psql`", f"{int(sql)} (the SQL)"
        else:
            name = f"`stg-dump --compress {c} \\| pv \\| stg-restore`" + (" (the default)" if c == default_c else "")
            nbytes = any_row["bytes"]
        cells = []
        for m in rates:
            x = cell.get((c, m))
            if x is None and c == "floor" and m:
                cells.append(f"not run: at least {sql * 8 / (m * 1e6):.0f} s for the SQL alone at this rate")
            elif x is None:
                cells.append("not run")
            else:
                cells.append(f"{float(x['t']):.2f} s ({r(x['t'], base[m])})" if m in base else f"{float(x['t']):.2f} s")
        out.append(f"| {name} | {nbytes} | " + " | ".join(cells) + " |")
    print("\n".join(out))
    print()
    advice = []
    for m in rates:
        here = [x for x in rows if int(x["mbit"]) == m and x["c"] != "floor"]
        if not here:
            continue
        best = min(here, key=lambda x: float(x["t"]))
        bound = [x["c"] for x in here if m and float(x["bytes"]) * 8 / (m * 1e6) >= 0.8 * float(x["t"])]
        text = f"{mbit(m)}: `{best['c']}` was fastest ({float(best['t']):.2f} s, {r(best['t'], base[m])}x the default)"
        if m:
            text += (f"; the link bounded {', '.join('`' + b + '`' for b in bound)} (bytes / rate at least 80% of "
                     f"the sync's time)" if bound else "; the link bounded none of them (bytes / rate under 80% of each sync's time)")
        advice.append(text)
    print(
        "Reading this table: each cell is one `stg-dump | pv -q -L RATE | stg-restore --no-keep` of fas2_small "
        "(the smaller database, to keep the bench short), with its ratio to the default level through the same "
        "link; `pv -L` caps the pipe at RATE bytes per second (1 Gbit/s = 125,000,000 B/s), with the pipes' "
        "buffers on either side standing for the sockets'. A level pays for itself on a link when its bytes / rate "
        "saving exceeds its extra dump time. Per link: " + "; ".join(advice) + ". "
        "On the restore side, zstd decoding at any level is far faster than the server's load (level table), "
        "so the differences between zstd levels come from the dump side and the wire; an xz stream also costs "
        "the restore its slower decoder."
        + (" A \"not run\" cell of a stream is a link it was not sent through, to keep the bench short."
           if any((c, m) not in cell for c in comps if c != "floor" for m in rates) else "")
    )
    bad = [x for x in rows if x["people"] != v["small"]]
    print()
    print(f"Every run above loaded {v['small']} people." if not bad else
          "**Rows differ**: " + ", ".join(f"{x['c']} at {mbit(x['mbit'])} loaded {x['people']} people" for x in bad)
          + f" (expected {v['small']}).")


def choice(rows, v):
    sop = float(v["sop_bytes"])
    default_c = v["default_c"]
    full = [x for x in rows if x["db"] == "full" and x["c"].startswith("zstd") and x["tool"] == "stg-dump"]

    def fails(x):
        why = []
        if float(x["bytes"]) / sop > BYTES_TARGET:
            why.append(f"its bytes are {r(x['bytes'], sop)}x the SOP's file, over the {BYTES_TARGET}x target")
        if int(x["rss"]) > RSS_BOUND_KIB:
            why.append(f"stg-dump peaked at {mib(x['rss'])}, over the 64 MiB bound")
        return why

    ok = [x for x in full if not fails(x)]
    d = next((x for x in full if x["c"] == default_c), None)
    if not ok:
        print("No zstd level measured on fas2 met both the bytes target and the memory bound in this run: "
              + "; ".join(f"`{x['c']}`: " + " and ".join(fails(x)) for x in full) + ".")
        return
    fastest = min(float(x["t"]) for x in ok)
    near = [x for x in ok if float(x["t"]) <= 1.10 * fastest]
    pick = min(near, key=lambda x: int(x["bytes"]))
    desc = (f"`{pick['c']}`: {float(pick['t']):.2f} s for the dump ({r(pick['t'], v['t_pgdump'])}x pg_dump alone), "
            f"{r(pick['bytes'], sop)}x the SOP's bytes, stg-dump at {mib(pick['rss'])}")
    rule = ("The rule: among the zstd levels measured on fas2 that meet the bytes target (at most "
            f"{BYTES_TARGET}x the SOP's `xz -6` file) and the 64 MiB bound, take those within 10% of the fastest "
            "dump, and of these the smallest stream.")
    if pick["c"] == default_c:
        print(f"The measurements support stg-dump's default, {desc}. {rule}")
    else:
        why = fails(d) if d else []
        print(f"stg-dump's default is `{default_c}`, but the measurements of this run support {desc}"
              + (f"; `{default_c}` misses: " + " and ".join(why) if why else
                 f"; `{default_c}` meets both bounds too, but took {r(d['t'], pick['t'])}x the time for "
                 f"{r(d['bytes'], pick['bytes'])}x the bytes" if d else "")
              + f". {rule}")
    others = [x for x in full if x is not pick]
    if others:
        print("Against it: " + "; ".join(
            f"`{x['c']}` {r(x['t'], pick['t'])}x the time for {r(x['bytes'], pick['bytes'])}x the bytes"
            + (": " + " and ".join(fails(x)) if fails(x) else "") for x in others) + ".")


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    v = dict(a.split("=", 1) for a in sys.argv[3:])
    if cmd == "levels":
        levels(load(path, LEVEL_COLS), v)
    elif cmd == "links":
        links(load(path, LINK_COLS), v)
    elif cmd == "choice":
        choice(load(path, LEVEL_COLS), v)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
