"""fastnn's benchmark suite: ``python -m fastnn bench``.

Measures the machine (CPU, fp32 peak per ISA path, memory bandwidth), then
times every registered case for fastnn against numpy/torch, interleaved, at
each thread count, and reports medians, speedups, spreads and the targets the
kernels are tuned against. See docs/bench.md.

Other modules add cases with :func:`register` (or the :func:`case`
decorator); modules named ``fastnn.benchmark.cases_*`` are imported
automatically."""
import argparse
import os
import shlex
import sys
import time

from .harness import Case, Settings, case, register

__all__ = ["main", "Case", "register", "case", "Settings"]

DEFAULT_AGAINST = "numpy,torch"


def _int_list(text, what):
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: expected a comma-separated list of "
                                         f"integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"{what}: every value must be >= 1, got {text!r}")
    return sorted(set(vals))


def _positive_seconds(text):
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"--budget: expected seconds > 0, got {text!r}")
    return v


def build_parser(prog="python -m fastnn bench"):
    p = argparse.ArgumentParser(
        prog=prog, description="Benchmark fastnn's kernels against numpy (OpenBLAS) and torch: "
                               "machine peak and bandwidth first, then every case interleaved "
                               "A/B/A/B at each thread count.")
    p.add_argument("--quick", action="store_true",
                   help="a short run (under a minute): fewer shapes, shorter timing, the ISA "
                        "in use only unless --isa is given")
    p.add_argument("--threads", type=lambda s: _int_list(s, "--threads"), metavar="LIST",
                   help="thread counts, e.g. 1,2 (default: 1 and all usable cores)")
    p.add_argument("--only", metavar="PATTERN",
                   help="only cases whose name contains PATTERN (a glob if it has * ? [); "
                        "comma-separated for several, e.g. 'matmul/square'")
    p.add_argument("--isa", metavar="LIST",
                   help="ISA paths for the ISA-sensitive cases (GEMM), e.g. avx512,avx2,ref "
                        "(default: all available; --quick: the one in use)")
    p.add_argument("--against", metavar="LIST", default=DEFAULT_AGAINST,
                   help=f"what fastnn is compared with (default {DEFAULT_AGAINST}; those not "
                        "installed are dropped; 'none' for fastnn alone)")
    p.add_argument("--json", metavar="PATH", help="write all results (raw samples included) as JSON")
    p.add_argument("--markdown", metavar="PATH",
                   help="write the report as markdown (machine header, targets, tables, date, "
                        "command line), e.g. bench/RESULTS.md")
    p.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of the speedups "
                                                 "(needs matplotlib)")
    p.add_argument("--baseline", metavar="JSON",
                   help="a previous --json file: report the run-to-run change of every ratio")
    p.add_argument("--budget", type=_positive_seconds, metavar="SECONDS",
                   help="seconds of timed rounds per case and thread count "
                        "(default 2, --quick 0.25)")
    p.add_argument("--caveat", metavar="TEXT",
                   help="a note printed at the top of the markdown report "
                        "(e.g. that the machine was busy)")
    p.add_argument("--from-json", metavar="PATH",
                   help="measure nothing: re-render a previous --json run (text, --markdown, "
                        "--plot, --baseline)")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _resolve_isas(args, parser):
    import fastnn
    avail = list(fastnn.available_isas())
    if args.isa:
        isas = [s.strip() for s in args.isa.split(",") if s.strip()]
        if not isas:
            parser.error(f"--isa: expected a comma-separated list of ISA paths "
                         f"(available: {', '.join(avail)}, or all), got {args.isa!r}")
        if "all" in isas:
            isas = avail
        bad = [s for s in isas if s not in avail]
        if bad:
            parser.error(f"--isa: {', '.join(bad)} not available on this CPU/build "
                         f"(available: {', '.join(avail)})")
    else:
        isas = [fastnn.get_isa()] if args.quick else avail
    order = ("avx512", "avx2", "ref")
    return sorted(set(isas), key=order.index)


def _resolve_against(text, progress):
    names = [s.strip() for s in (text or "").split(",") if s.strip() and s.strip() != "none"]
    out = []
    for n in names:
        if n == "numpy":
            out.append(n)
        elif n == "torch":
            try:
                import torch  # noqa: F401  (imported now so its threads are set with the rest)
                out.append(n)
            except ImportError:
                progress("torch is not installed: comparing without it")
        else:
            out.append(n)       # a name some registered case may provide
    return out


def main(argv=None, prog="python -m fastnn bench", reexec=True):
    """Command-line entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.from_json:
        return _rerender(args, prog)
    if args.baseline:           # before measuring for minutes, not after
        from . import report
        try:
            baseline = report.baseline_ratios(args.baseline)
        except ValueError as e:
            parser.error(f"--baseline: {e}")
    from . import machine
    env_note = machine.clean_openblas_env(reexec=reexec)

    import fastnn
    from . import harness, report

    quiet = args.quiet
    t_start = time.perf_counter()

    def note(text):
        if not quiet:
            print(f"[{time.perf_counter() - t_start:6.1f}s] {text}", file=sys.stderr, flush=True)

    default_threads = fastnn.runtime.default_num_threads()
    threads = args.threads or sorted(set([1, default_threads]))
    isas = _resolve_isas(args, parser)
    cases = harness.select(harness.all_cases(), args.only, args.quick)
    if not cases:
        print(f"fastnn bench: no case matches --only {args.only!r} "
              f"(try --list without --only to see the names)", file=sys.stderr)
        return 2
    if args.list:
        for c in cases:
            print(f"{c.name:<40} {c.group:<15} {c.unit:<6} {c.description}")
        return 0
    against = _resolve_against(args.against, note)
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    if max(threads) > allowed:
        note(f"warning: {max(threads)} threads on {allowed} usable CPUs: oversubscribed, "
             "timings will be unreliable")

    settings = harness.Settings.quick() if args.quick else harness.Settings()
    if args.budget is not None:
        settings.budget = args.budget
    note(f"{len(cases)} cases x threads {','.join(map(str, threads))}; ISA paths "
         f"{','.join(isas)}; against {','.join(against) or 'nothing'}")
    m = machine.measure(threads, quick=args.quick, progress=note, env_note=env_note)
    note(f"machine measured in {m['measure_seconds']:.1f} s")
    print(report.render_header(m), flush=True)

    tctl = harness.ThreadControl()
    for n in tctl.notes:
        note(n)
    prog_ = harness.Progress(len(cases) * len(threads), enabled=not quiet)
    prog_.t0 = t_start
    results = []
    for c in cases:
        results += harness.run_case(c, threads, isas, set(against) | {"fastnn"}, settings,
                                    tctl, prog_)
    m["loadavg_after"] = machine.load_average()
    wall = time.perf_counter() - t_start

    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    run = {"command": command, "argv": argv, "quick": args.quick, "threads": threads,
           "isas": isas, "against": against, "only": args.only,
           "full_suite": not args.quick and not args.only,
           "wall_seconds": wall, "settings": settings.__dict__,
           "settings_text": (f"{'quick' if args.quick else 'full'} run, threads "
                             f"{','.join(map(str, threads))}, ISA paths {','.join(isas)}, "
                             f"against {','.join(against) or 'nothing'}, "
                             f"{settings.sample_time * 1e3:.0f} ms samples, "
                             f"{settings.min_rounds}-{settings.max_rounds} rounds, "
                             f"{settings.budget:g} s budget per case and thread count"),
           "caveat": args.caveat, "threadpoolctl_notes": tctl.notes}
    if args.baseline:
        run["baseline_ratios"] = baseline
        run["baseline"] = args.baseline
    summary, per_row = report.evaluate_targets(results, m, run)
    rep = {"machine": m, "run": run, "results": results, "targets": summary,
           "_per_row": per_row}
    print(report.render_text(rep, header=False))
    _write_outputs(rep, args, note)
    return 0


def _rerender(args, prog):
    """--from-json: the report of a saved run, with today's report code."""
    from . import harness, report
    harness.discover()      # the case modules register their targets (T21, T31, ...)

    def note(text):
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)
    opt = "--from-json"
    try:
        rep = report.load_report(args.from_json)
        opt = "--baseline"
        base = report.baseline_ratios(args.baseline) if args.baseline else None
    except ValueError as e:
        print(f"{prog}: error: {opt}: {e}", file=sys.stderr)
        return 2
    run = rep["run"]
    run.pop("baseline_ratios", None)
    if args.baseline:
        run["baseline_ratios"] = base
        run["baseline"] = args.baseline
    if args.caveat:
        run["caveat"] = args.caveat
    run["rerendered"] = f"{prog} --from-json {args.from_json}"
    rep["targets"], rep["_per_row"] = report.evaluate_targets(rep["results"], rep["machine"], run)
    print(report.render_text(rep))
    _write_outputs(rep, args, note, write_json=False)
    return 0


def _write_outputs(rep, args, note, write_json=True):
    from . import report
    if args.json and write_json:
        with open(args.json, "w") as f:
            f.write(report.to_json(rep))
        note(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report.render_markdown(rep, records_dir=os.path.join(
                os.path.dirname(os.path.abspath(args.markdown)), "accuracy")))
        note(f"wrote {args.markdown}")
    if args.plot:
        err = report.plot(rep, args.plot)
        if err:
            print(f"fastnn bench: {err}", file=sys.stderr)
        else:
            note(f"wrote {args.plot}")
