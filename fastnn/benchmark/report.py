"""Turning results into tables (terminal and markdown), target checks, JSON
and a bar chart.

Reading the numbers: `×numpy` is numpy's time / fastnn's time (above 1:
fastnn is faster); `spread` is the interquartile range / median of the
per-round paired ratios (of the timings when there is nothing to compare
with); `% pk` is the share of the measured fp32 peak of the same ISA path at
the same thread count (numpy and torch are compared with the best ISA's
peak); for the GEMM cases the peak is sampled in every round beside the
product and `% pk` is the median of the per-round shares, so a drifting
clock moves both alike; `% bw` the share of the measured triad bandwidth."""
import json
import math
import statistics
from dataclasses import dataclass
from typing import Callable

from . import machine as mach

ISA_ORDER = ("avx512", "avx2", "ref")


# ------------------------------------------------------------ helpers --

def _isa_of(label):
    return label[label.index("[") + 1:-1] if "[" in label else None


def variant_order(labels):
    """fastnn variants best ISA first, then the others (numpy, torch, ...)."""
    def key(lb):
        isa = _isa_of(lb)
        if lb.startswith("fastnn"):
            return (0, ISA_ORDER.index(isa) if isa in ISA_ORDER else 9, lb)
        return (1, {"numpy": 0, "torch": 1}.get(lb, 2), lb)
    return sorted(set(labels), key=key)


def primary_other(labels):
    others = [lb for lb in variant_order(labels) if not lb.startswith("fastnn")]
    return others[0] if others else None


def short(label):
    """'fastnn[avx512]' -> 'avx512' for column titles."""
    return _isa_of(label) if label.startswith("fastnn[") else label


def fmt_rate(x):
    if x is None or not math.isfinite(x):
        return "n/a"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(x):
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"


def fmt_pct(x):
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.0f}%"


def fmt_bytes(b):
    if b is None:
        return "n/a"
    return f"{b / 2**20:.0f} MiB"


def pct_of_peak(res, label, machine):
    """Rate / measured peak of the variant's ISA (best ISA for non-fastnn) at
    the row's thread count, for flop and byte cases; None otherwise. Where
    the rounds sampled the peak beside the case (the GEMM cases), the median
    over rounds of the paired shares; else the peak measured at the start."""
    t = res["impls"][label]
    rate = t["rate"]
    if res["unit"] == "flop" and t.get("peak_samples"):
        shares = [res["work"] / s / 1e9 / p
                  for s, p in zip(t["samples"], t["peak_samples"]) if s > 0 and p > 0]
        if shares:
            return statistics.median(shares)
    if res["unit"] == "flop":
        isa = _isa_of(label) or (machine["fastnn"]["available_isas"][-1]
                                 if machine.get("fastnn") else None)
        pk = mach.peak(machine, isa, res["threads"])
        return rate / pk if pk else None
    if res["unit"] == "byte":
        bw = mach.bandwidth(machine, res["threads"])
        return rate / bw if bw else None
    return None


def ok_rows(results):
    return [r for r in results if "skipped" not in r]


# ------------------------------------------------------------ targets --

@dataclass
class Target:
    """A goal the kernels are tuned against. `collect(results, machine, run)`
    returns [(where, value)] for every row it applies to; `where` is
    (case, threads, variant label) or a free text."""
    key: str
    text: str
    op: str               # '>=' or '<='
    threshold: float
    collect: Callable
    fmt: Callable = fmt_ratio

    def passes(self, v):
        if v is None or not math.isfinite(v):
            return None
        return v >= self.threshold if self.op == ">=" else v <= self.threshold


def _ratio_rows(results, groups, variant, other, pred=lambda r: True):
    out = []
    for r in ok_rows(results):
        if r["group"] in groups and pred(r):
            d = r["ratios"].get(variant, {}).get(other)
            if d:
                out.append(((r["case"], r["threads"], variant), d["ratio"]))
    return out


def _large_square(r):
    return r["params"].get("M", 0) >= 1024 and r["params"].get("M") == r["params"].get("N") \
        == r["params"].get("K")


def _t_peak_share(results, machine, run):
    """1-thread share of the measured peak of the ISA in use (the best fastnn
    variant of the squares), large squares."""
    rows = [r for r in ok_rows(results) if r["group"] == "matmul-square" and _large_square(r)]
    best = _best_fastnn(rows)
    return [((r["case"], r["threads"], best), pct_of_peak(r, best, machine))
            for r in rows if r["threads"] == 1 and best in r["impls"]]


def _output_layer(r):
    """The output-layer products: N = 10 classes, or K = 10 (the input gradient's shape)."""
    return 10 in (r["params"].get("N"), r["params"].get("K"))


def _t_ref_vs_avx2(results, machine, run):
    out = []
    for r in ok_rows(results):
        im = r["impls"]
        if r["group"].startswith("matmul") and "fastnn[ref]" in im and "fastnn[avx2]" in im:
            out.append(((r["case"], r["threads"], "fastnn[ref]"),
                        im["fastnn[ref]"]["median_s"] / im["fastnn[avx2]"]["median_s"]))
    return out


def thread_scaling(results, n_from=1, n_to=2):
    """{(case, variant): t(n_from) / t(n_to)} for fastnn variants measured at both."""
    by = {}
    for r in ok_rows(results):
        for lb, t in r["impls"].items():
            by.setdefault((r["case"], lb), {})[r["threads"]] = t["median_s"]
    return {k: v[n_from] / v[n_to] for k, v in by.items()
            if n_from in v and n_to in v and k[1].startswith("fastnn")}


def _best_fastnn(results):
    labels = [lb for r in ok_rows(results) for lb in r["impls"] if lb.startswith("fastnn")]
    order = variant_order(labels)
    return order[0] if order else None


def best_vs_numpy(group, pred=lambda r: True):
    """A target's collector: the best fastnn variant of `group`'s rows
    (AVX-512 where the CPU has it, else AVX2) against numpy, on the rows
    `pred` keeps."""
    def collect(results, machine, run):
        rows = [r for r in ok_rows(results) if r["group"] == group]
        return _ratio_rows(rows, (group,), _best_fastnn(rows), "numpy", pred)
    return collect


def vs_torch_at_2_threads(case, group):
    """A target's collector: the best fastnn variant of `case` against torch
    at 2 threads."""
    def collect(results, machine, run):
        best = _best_fastnn([r for r in results if r["case"] == case])
        return _ratio_rows(results, (group,), best, "torch",
                           lambda r: r["case"] == case and r["threads"] == 2)
    return collect


def _t_scaling(groups, pred):
    def collect(results, machine, run):
        best = _best_fastnn([r for r in results if r["group"] in groups])
        sc = thread_scaling(results)
        rows = {r["case"]: r for r in ok_rows(results)}
        return [((case, 2, lb), v) for (case, lb), v in sc.items()
                if lb == best and rows[case]["group"] in groups and pred(rows[case])]
    return collect


def _t_wall(results, machine, run):
    if not run.get("full_suite"):
        return []
    return [("whole run", run.get("wall_seconds"))]


def _t_spread(results, machine, run):
    out = []
    for r in ok_rows(results):
        for f, d in r["ratios"].items():
            for o, x in d.items():
                out.append(((r["case"], r["threads"], f"{f} vs {o}"), x["spread"]))
    return out


def _t_run_to_run(results, machine, run):
    base = run.get("baseline_ratios")
    if not base:
        return []
    out = []
    for r in ok_rows(results):
        for f, d in r["ratios"].items():
            for o, x in d.items():
                b = base.get(f"{r['case']}|{r['threads']}|{f}|{o}")
                if b:
                    out.append(((r["case"], r["threads"], f"{f} vs {o}"),
                                abs(x["ratio"] - b) / b))
    return out


def _t_vs_torch(case):
    """fastnn (best ISA) / torch speed ratio of one case, at 2 threads."""
    def collect(results, machine, run):
        best = _best_fastnn([r for r in results if r["case"] == case])
        return _ratio_rows(results, ("training", "optimizer"), best, "torch",
                           lambda r: r["case"] == case and r["threads"] == 2)
    return collect


TARGETS = [
    Target("T1", "best ISA vs numpy, large squares (n >= 1024)", ">=", 1.0,
           best_vs_numpy("matmul-square", _large_square)),
    Target("T2", "best ISA vs numpy, training shapes", ">=", 1.0,
           best_vs_numpy("matmul-train")),
    Target("T3", "1 thread, share of the peak of the ISA in use, large squares", ">=", 0.85,
           _t_peak_share, fmt_pct),
    Target("T4", "portable C time / AVX2 time (matmul)", "<=", 4.0, _t_ref_vs_avx2),
    Target("T5", "2 threads / 1 thread speedup, best ISA, large squares", ">=", 1.85,
           _t_scaling(("matmul-square",), _large_square)),
    Target("T6", "2 threads / 1 thread speedup, best ISA, training shapes", ">=", 1.7,
           _t_scaling(("matmul-train",), lambda r: True)),
    Target("T7", "full suite wall time (s)", "<=", 900.0, _t_wall, lambda v: f"{v:.0f}"),
    Target("T8", "spread of ratios within the run (IQR / median)", "<=", 0.05, _t_spread,
           fmt_pct),
    Target("T9", "run-to-run change of ratios vs --baseline", "<=", 0.05, _t_run_to_run,
           fmt_pct),
    Target("T10", "MLP 784-1024-1024-10 training, x torch, 2 threads", ">=", 2.0,
           _t_vs_torch("train/mlp-large/b128")),
    Target("T11", "MLP 784-256-10 training, x torch, 2 threads", ">=", 2.0,
           _t_vs_torch("train/mlp-small/b64")),
    Target("T12", "Adam step over 10M parameters, x torch.optim.Adam defaults, 2 threads",
           ">=", 3.0, _t_vs_torch(f"optim/adam/{10 << 20}")),
    Target("T13", "output-layer products (N or K = 10), best ISA vs numpy", ">=", 1.0,
           best_vs_numpy("matmul-output", _output_layer)),
]


def evaluate_targets(results, machine, run):
    """One summary per target: worst value and where, pass counts, status;
    plus {(case, threads): [(key, pass)]} for the per-row column."""
    summary, per_row = [], {}
    for t in TARGETS:
        vals = [(w, v) for w, v in t.collect(results, machine, run)
                if v is not None and math.isfinite(v)]
        if not vals:
            summary.append({"key": t.key, "text": t.text, "op": t.op, "threshold": t.threshold,
                            "threshold_text": t.fmt(t.threshold), "status": "n/a", "n": 0,
                            "passed": 0})
            continue
        worst = min(vals, key=lambda wv: wv[1]) if t.op == ">=" else max(vals, key=lambda wv: wv[1])
        passed = sum(1 for _, v in vals if t.passes(v))
        for w, v in vals:
            if isinstance(w, tuple):
                per_row.setdefault((w[0], w[1]), []).append((t.key, t.passes(v)))
        summary.append({"key": t.key, "text": t.text, "op": t.op, "threshold": t.threshold,
                        "threshold_text": t.fmt(t.threshold), "worst": worst[1],
                        "worst_text": t.fmt(worst[1]), "median_text": t.fmt(
                            statistics.median(v for _, v in vals)),
                        "where": _where(worst[0]), "n": len(vals), "passed": passed,
                        "status": "PASS" if passed == len(vals) else "FAIL"})
    return summary, per_row


def _where(w):
    if isinstance(w, tuple):
        return f"{w[0]} @ {w[1]} thr, {w[2]}"
    return str(w)


# ------------------------------------------------------------ tables --

class Table:
    """Rows of strings; `align` per column, 'l' or 'r' (default: the first
    column left, the rest right)."""

    def __init__(self, title, headers, note=None, align=None):
        self.title, self.headers, self.rows, self.note = title, headers, [], note
        self.align = align or "l" + "r" * (len(headers) - 1)

    def add(self, row):
        self.rows.append([str(x) for x in row])

    def markdown(self):
        out = [f"### {self.title}", ""]
        if self.note:
            out += [self.note, ""]
        out.append("| " + " | ".join(self.headers) + " |")
        out.append("|" + "|".join("---" if a == "l" else "---:" for a in self.align) + "|")
        for r in self.rows:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
        return "\n".join(out) + "\n"

    def text(self):
        w = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
             for i, h in enumerate(self.headers)]
        line = lambda cells: "  ".join(c.ljust(w[i]) if self.align[i] == "l"  # noqa: E731
                                       else c.rjust(w[i]) for i, c in enumerate(cells))
        out = [self.title, line(self.headers), line(["-" * x for x in w])]
        out += [line(r) for r in self.rows]
        return "\n".join(out) + "\n"


PARAM_COLUMNS = (("op", "op"), ("role", "product"), ("layer", "layer"), ("batch", "batch"),
                 ("shape", "shape"), ("optimizer", "optimizer"), ("params", "params"))

UNIT_RATE = {"flop": ("GFLOP/s", "% pk"), "byte": ("GB/s", "% bw"), "sample": ("samples/s", None)}


def group_tables(results, machine, per_row):
    """One table per (group, thread count) for flop and byte groups; a long
    table for training (sample) groups; a thread-scaling table."""
    tables = []
    groups = []
    for r in ok_rows(results):
        if r["group"] not in groups:
            groups.append(r["group"])
    for g in groups:
        rows = [r for r in ok_rows(results) if r["group"] == g]
        unit = rows[0]["unit"]
        if unit == "sample":
            tables.append(training_table(g, rows, machine))
            continue
        labels = variant_order(lb for r in rows for lb in r["impls"])
        fl = [lb for lb in labels if lb.startswith("fastnn")]
        others = [lb for lb in labels if not lb.startswith("fastnn")]
        prim = primary_other(labels)
        pcols = [(k, h) for k, h in PARAM_COLUMNS if any(k in r["params"] for r in rows)]
        rate_name, pct_name = UNIT_RATE[unit]
        for n in sorted(set(r["threads"] for r in rows)):
            headers = [h for _, h in pcols] or ["case"]
            headers += [f"{short(lb)} {rate_name}" + (f" ({pct_name})" if pct_name else "")
                        for lb in fl]
            headers += [f"{lb} {rate_name}" for lb in others]
            if prim:
                headers += [f"{short(f)} ×{prim}" for f in fl]
            for o in others[1:]:
                headers += [f"{short(fl[0])} ×{o}"]
            headers += ["spread", "targets"]
            tab = Table(f"{g}, {n} thread{'s' if n > 1 else ''}", headers,
                        align="l" * max(1, len(pcols)) + "r" * (len(headers) - max(1, len(pcols)) - 1)
                        + "l")
            for r in rows:
                if r["threads"] != n:
                    continue
                cells = [str(r["params"].get(k, "")) for k, _ in pcols] or [r["case"]]
                for lb in fl:
                    if lb in r["impls"]:
                        p = pct_of_peak(r, lb, machine)
                        cells.append(fmt_rate(r["impls"][lb]["rate"])
                                     + (f" ({fmt_pct(p)})" if p is not None else ""))
                    else:
                        cells.append("")
                for lb in others:
                    cells.append(fmt_rate(r["impls"][lb]["rate"]) if lb in r["impls"] else "")
                spreads = []
                pairs = [(f, prim) for f in fl] if prim else []
                pairs += [(fl[0], o) for o in others[1:]]
                for f, o in pairs:
                    d = r["ratios"].get(f, {}).get(o)
                    cells.append(fmt_ratio(d["ratio"]) if d else "")
                    if d and math.isfinite(d["spread"]):
                        spreads.append(d["spread"])
                if not spreads:
                    spreads = [t["spread"] for t in r["impls"].values()]
                cells.append(fmt_pct(max(spreads)) if spreads else "")
                checks = per_row.get((r["case"], r["threads"]), [])
                cells.append(" ".join(f"{k}{'✓' if ok else '✗'}" for k, ok in checks
                                      if ok is not None and k not in ("T8",))
                             or "")
                tab.add(cells)
            tables.append(tab)
    sc = scaling_table(results, machine)
    if sc:
        tables.append(sc)
    return tables


def training_table(group, rows, machine):
    headers = ["case", "thr", "impl", "steps/s", "samples/s", "s/epoch", "peak RSS",
               "speedup", "spread"]
    tab = Table(f"{group} (end-to-end training steps)", headers, align="lrlrrrrrr",
                note="s/epoch: seconds for `epoch_samples` samples at the measured rate; "
                     "peak RSS: a separate process running only that implementation "
                     "(interpreter and libraries included); speedup: that implementation's "
                     "time / fastnn's.")
    for r in rows:
        labels = variant_order(r["impls"])
        fl = [lb for lb in labels if lb.startswith("fastnn")]
        for lb in labels:
            t = r["impls"][lb]
            sps = r["work"] / t["median_s"]
            eps = r["params"].get("epoch_samples", 60000)
            if lb.startswith("fastnn"):
                sp = ""
            else:
                d = r["ratios"].get(fl[0], {}).get(lb) if fl else None
                sp = f"×{fmt_ratio(d['ratio'])}" if d else ""
            tab.add([r["case"], r["threads"], lb, fmt_rate(1.0 / t["median_s"]), fmt_rate(sps),
                     fmt_rate(eps / sps), fmt_bytes(t.get("peak_rss_bytes")), sp,
                     fmt_pct(t["spread"])])
    return tab


def scaling_table(results, machine):
    counts = sorted(set(r["threads"] for r in ok_rows(results)))
    if 1 not in counts or len(counts) < 2:
        return None
    top = counts[-1]
    sc = thread_scaling(results, 1, top)
    if not sc:
        return None
    rows = {r["case"]: r for r in ok_rows(results)}
    tab = Table(f"thread scaling, 1 -> {top} threads (time at 1 / time at {top})",
                ["case", "impl", "1 thr rate", f"{top} thr rate", "speedup",
                 "target" if top == 2 else f"ideal {top}"], align="llrrrr")
    by_case = {}
    for (case, lb), v in sc.items():
        by_case.setdefault(case, []).append((lb, v))
    goal = {}                   # (case, variant) -> the scaling target (T5, T6) it counts for
    if top == 2:
        for t in TARGETS:
            if t.key in ("T5", "T6"):
                for (case, _, lb), _v in t.collect(results, machine, {}):
                    goal[(case, lb)] = t
    for case in rows:
        if case not in by_case:
            continue
        for lb, v in sorted(by_case[case], key=lambda x: variant_order([x[0]])):
            r1 = [r for r in ok_rows(results) if r["case"] == case and r["threads"] == 1][0]
            rN = [r for r in ok_rows(results) if r["case"] == case and r["threads"] == top][0]
            unit = UNIT_RATE[rows[case]["unit"]][0]
            t = goal.get((case, lb))
            target = (f"{'✓' if t.passes(v) else '✗'} {t.key} ≥{t.threshold:g}" if t
                      else "" if top == 2 else f"{top}")
            tab.add([case, short(lb), f"{fmt_rate(r1['impls'][lb]['rate'])} {unit}",
                     f"{fmt_rate(rN['impls'][lb]['rate'])} {unit}", fmt_ratio(v), target])
    return tab


def targets_table(summary):
    tab = Table("targets", ["", "target", "goal", "worst measured", "median", "where (worst)",
                            "pass", "status"], align="llrrrlrl")
    for s in summary:
        if s["status"] == "n/a":
            tab.add([s["key"], s["text"], f"{s['op']} {s['threshold_text']}", "n/a", "",
                     "not measured in this run", "", "n/a"])
            continue
        tab.add([s["key"], s["text"], f"{s['op']} {s['threshold_text']}", s["worst_text"],
                 s["median_text"], s["where"], f"{s['passed']}/{s['n']}", s["status"]])
    return tab


def skipped_lines(results):
    return [f"{r['case']}" + (f" @ {r['threads']} thr" if "threads" in r else "")
            + f": {r['skipped']}" for r in results if "skipped" in r]


# ------------------------------------------------------------ outputs --

def quality_warnings(report):
    """Signs that the numbers are disturbed: a busy machine, rates above the
    measured peak (the peak run was disturbed), ratio spreads over 20%."""
    m, out = report["machine"], []
    cpus = m.get("allowed_cpus") or 1
    loads = [la[0] for la in (m.get("loadavg_before"), m.get("loadavg_after")) if la]
    if loads and max(loads) > 0.5 * cpus:
        out.append(f"the machine was busy: 1-minute load average up to {max(loads):.2f} on "
                   f"{cpus} CPUs; multi-thread numbers, scaling and spreads are unreliable")
    # convolution rates are effective (the direct method's flops / time), and
    # Winograd layers (fastnn's, oneDNN's) do fewer flops: they may pass the peak
    over = [(r["case"], r["threads"], lb, p) for r in ok_rows(report["results"])
            for lb in r["impls"] for p in [pct_of_peak(r, lb, m)]
            if r["unit"] == "flop" and not r["group"].startswith("conv-") and p is not None
            and p > 1.05]
    if over:
        worst = max(over, key=lambda x: x[3])
        out.append(f"{len(over)} rates exceed the measured peak (worst {fmt_pct(worst[3])}: "
                   f"{worst[0]} @ {worst[1]} thr, {worst[2]}): the peak measurement was "
                   "disturbed, so the % pk columns are too high")
    spreads = [x["spread"] for r in ok_rows(report["results"]) for d in r["ratios"].values()
               for x in d.values() if math.isfinite(x["spread"])]
    if spreads and statistics.median(spreads) > 0.2:
        out.append(f"median spread of the ratios is {fmt_pct(statistics.median(spreads))}: "
                   "timings were disturbed")
    return out


def render_header(machine):
    return "\n".join(f"{label:<13} {text}" for label, text in mach.header_lines(machine)) + "\n"


def render_text(report, header=True):
    out = [render_header(report["machine"])] if header else []
    out += [f"WARNING: {w}" for w in quality_warnings(report)]
    if out and not header:
        out.append("")
    tabs = [targets_table(report["targets"])] + group_tables(
        report["results"], report["machine"], report["_per_row"])
    for t in tabs:
        out.append(t.text())
    sk = skipped_lines(report["results"])
    if sk:
        out.append("skipped:")
        out += ["  " + s for s in sk]
    la = report["machine"].get("loadavg_after")
    out.append(f"wall time {report['run']['wall_seconds']:.0f} s"
               + (", load average after " + " / ".join(f"{x:.2f}" for x in la) if la else ""))
    return "\n".join(out)


def render_markdown(report, title="fastnn benchmark results", records_dir=None):
    run, m = report["run"], report["machine"]
    out = [f"# {title}", ""]
    out += ["Generated by:", "", "```bash", run["command"], "```", ""]
    if run.get("rerendered"):
        out += [f"(measured by that command; this page re-rendered from its JSON with "
                f"`{run['rerendered']}`)", ""]
    if run.get("caveat"):
        out += [f"> **Caveat:** {run['caveat']}", ""]
    out += ["## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in mach.header_lines(m)]
    out += [""] + [f"**Warning:** {w}.  " for w in quality_warnings(report)]
    out += ["", f"Settings: {run['settings_text']}. Wall time {run['wall_seconds']:.0f} s.", ""]
    out += ["How to read: rates are medians over interleaved rounds; `×numpy` = numpy time / "
            "fastnn time (above 1: fastnn faster); `% pk` = share of the measured fp32 peak of "
            "the same ISA path and thread count (numpy/torch: best ISA's peak; the GEMM cases: "
            "the median of per-round shares, the peak sampled in each round); `spread` = "
            "IQR / median of the per-round paired ratios; `targets` lists the target checks "
            "(✓ pass, ✗ fail) that apply to the row. See docs/bench.md.", ""]
    out += ["## Targets", ""]
    out.append(targets_table(report["targets"]).markdown().split("\n", 2)[2])
    out += ["## Results", ""]
    for t in group_tables(report["results"], m, report["_per_row"]):
        out.append(t.markdown())
    sk = skipped_lines(report["results"])
    if sk:
        out += ["## Skipped", ""] + [f"- {s}" for s in sk] + [""]
    if records_dir:
        out += accuracy_section(records_dir)
    return "\n".join(out)


def accuracy_section(records_dir):
    """Markdown lines for the accuracy runs recorded as JSON files in
    records_dir (written by `python -m fastnn train --record` and the
    examples' --record): each row is what that run printed, not typed."""
    import glob
    import os
    rows = []
    bad = []
    keys = ("name", "test_error_pct", "epochs", "wall_seconds", "seconds_per_epoch",
            "threads", "date", "command")
    for path in sorted(glob.glob(os.path.join(records_dir, "*.json"))):
        try:
            with open(path) as f:
                r = json.load(f)
            if not isinstance(r, dict) or any(k not in r for k in keys):
                raise ValueError("not a --record file")
            if r["test_error_pct"] is None and not r.get("result"):
                raise ValueError("neither test_error_pct nor result")
            for k in ("test_error_pct", "wall_seconds", "seconds_per_epoch"):
                r[k] = None if r[k] is None else float(r[k])
            rows.append(r)
        except (OSError, ValueError, TypeError) as e:
            bad.append(f"{os.path.basename(path)} ({e})")
    if not rows and not bad:
        return []
    out = ["## Accuracy runs", "",
           "Full training runs, each recorded by its own `--record` flag (files in "
           f"`{os.path.basename(records_dir)}/`).", "",
           "| run | result | goal | epochs | wall time | s/epoch | threads | when | command |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        goal = r.get("goal", "")
        res = (r["result"] if r["test_error_pct"] is None
               else f"{r['test_error_pct']:.2f}% test error")
        out.append(f"| {r['name']} | {res} | {goal} | {r['epochs']} | "
                   f"{r['wall_seconds']:.0f} s | {r['seconds_per_epoch']:.2f} | {r['threads']} | "
                   f"{r['date']} | `{r['command']}` |")
    if bad:
        out += ["", "Unreadable record files (left out): " + "; ".join(bad) + "."]
    return out + [""]


def to_json(report):
    """Strict JSON (NaN and infinities become null)."""
    d = {k: v for k, v in report.items() if not k.startswith("_")}
    return json.dumps(_finite(d), indent=1, default=_json_default, allow_nan=False)


def _finite(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o):
    if hasattr(o, "tolist"):
        return _finite(o.tolist())
    return str(o)


def load_report(path):
    """A previous --json run; ValueError naming the file if it is not one."""
    try:
        with open(path) as f:
            d = json.load(f)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ValueError(f"{path} is not JSON ({e})") from None
    if not (isinstance(d, dict) and isinstance(d.get("results"), list)
            and isinstance(d.get("machine"), dict) and isinstance(d.get("run"), dict)):
        raise ValueError(f"{path} is not a `python -m fastnn bench --json` file "
                         "(no machine/run/results)")
    return d


def baseline_ratios(path):
    """{'case|threads|variant|other': ratio} from a previous --json file."""
    out = {}
    for r in load_report(path)["results"]:
        for fv, dd in (r.get("ratios") or {}).items():
            for o, x in dd.items():
                if x.get("ratio"):
                    out[f"{r['case']}|{r['threads']}|{fv}|{o}"] = x["ratio"]
    return out


def plot(report, path):
    """Horizontal bars of fastnn / primary-other speedups, one panel per
    thread count. Returns None, or an error message if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("--plot needs matplotlib, which is not installed "
                "(pip install matplotlib, or pip install 'fastnn[bench]'); no plot written")
    rows = [r for r in ok_rows(report["results"]) if any(r["ratios"].values())]
    counts = sorted(set(r["threads"] for r in rows))
    if not rows:
        return "no comparisons to plot (nothing measured against numpy/torch)"
    fig_h = max(3.0, 0.22 * max(sum(len(r["ratios"]) for r in rows if r["threads"] == n)
                                for n in counts) + 1.2)
    fig, axes = plt.subplots(1, len(counts), figsize=(7 * len(counts), fig_h), squeeze=False)
    colors = {"avx512": "#1f77b4", "avx2": "#ff7f0e", "ref": "#7f7f7f"}
    others = set()
    for ax, n in zip(axes[0], counts):
        names, vals, cols = [], [], []
        for r in rows:
            if r["threads"] != n:
                continue
            prim = primary_other(r["impls"])
            for fv in variant_order(r["ratios"]):
                d = r["ratios"][fv].get(prim)
                if d:
                    others.add(prim)
                    names.append(f"{r['case']} [{short(fv)}]")
                    vals.append(d["ratio"])
                    cols.append(colors.get(short(fv), "#2ca02c"))
        y = list(range(len(names)))[::-1]
        ax.barh(y, vals, color=cols)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=6)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.axvline(0.95, color="r", lw=0.6, ls="--")
        ax.set_xlabel("speedup: other time / fastnn time")
        ax.set_title(f"{n} thread{'s' if n > 1 else ''}")
    fig.suptitle(f"fastnn speedup over {', '.join(sorted(others))} — {report['machine']['cpu']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
