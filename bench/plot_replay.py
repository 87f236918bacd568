#!/usr/bin/python3
"""plot_replay.py - hit-ratio curves from `replay --table` output, one PNG per trace.

    bench/plot_replay.py REPLAY_MARKDOWN OUT_DIR

Reads the Markdown tables that `bench/replay --table` prints (one "### TRACE ..." section per
trace, columns "c", "paper LRU", "paper ARC", "paper OPT", then strategy/stripes columns) and
writes OUT_DIR/hit-ratio-<trace>.png: hit ratio against cache size for every engine column,
with the paper's LRU, ARC and OPT as dashed reference lines. The traces and the paper's figures
are from Megiddo & Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache", USENIX FAST
2003; the plot's caption says so.
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")  # no display on a build machine
import matplotlib.pyplot as plt  # noqa: E402

CITATION = ('Traces and "paper" figures: Megiddo & Modha, "ARC: A Self-Tuning, Low Overhead '
            'Replacement Cache", USENIX FAST 2003')
# Engine columns worth a line (the others are duplicates or checks).
ENGINE_COLUMNS = ["lru/1", "lru/64", "s3fifo/64", "sieve/64", "fifo/64", "lfu/64", "default/64"]
PAPER_COLUMNS = ["paper LRU", "paper ARC", "paper OPT", "sim W-TinyLFU"]


def parse_tables(text):
    """Yields (trace, header, rows) for each '### TRACE' section's first table."""
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    for section in sections:
        trace = section.split()[0]
        lines = [ln for ln in section.splitlines() if ln.startswith("|")]
        if len(lines) < 3 or not lines[0].startswith("| c |"):
            continue
        header = [cell.strip() for cell in lines[0].strip("|").split("|")]
        rows = []
        for ln in lines[2:]:
            cells = [cell.strip() for cell in ln.strip("|").split("|")]
            if len(cells) != len(header) or not cells[0].isdigit():
                break
            rows.append(cells)
        yield trace, header, rows


def number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def plot(trace, header, rows, out_dir):
    sizes = [int(r[0]) for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for name in PAPER_COLUMNS:
        if name in header:
            i = header.index(name)
            ys = [number(r[i]) for r in rows]
            if any(y is not None for y in ys):
                ax.plot(sizes, ys, linestyle="--", marker=".", label=name, alpha=0.8)
    for name in ENGINE_COLUMNS:
        # The default's header names what it resolved to: "default/64 (= wtinylfu/64)".
        found = [h for h in header if h == name or h.startswith(name + " ")]
        if found:
            i = header.index(found[0])
            width = 2.6 if name == "default/64" else 1.4
            ax.plot(sizes, [number(r[i]) for r in rows], marker="o", markersize=3,
                    linewidth=width, label=found[0])
    ax.set_xscale("log")
    ax.set_xlabel("cache size (entries)")
    ax.set_ylabel("hit ratio (%)")
    ax.set_title(f"{trace}: shmcache engine (strategy/stripes) vs the ARC paper")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.text(0.01, 0.005, CITATION, fontsize=6.5, alpha=0.8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = f"{out_dir}/hit-ratio-{trace}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_replay.py REPLAY_MARKDOWN OUT_DIR")
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    # The ARC traces only: the LIRS traces' sections have no published curves to draw against.
    made = [plot(t, h, r, sys.argv[2]) for t, h, r in parse_tables(text)
            if r and "paper LRU" in h]
    if not made:
        sys.exit("plot_replay.py: no replay table found")
    for path in made:
        print(path)


if __name__ == "__main__":
    main()
