"""The benchmark harness: a registry of cases and the interleaved timer.

A case is a name, a group, a unit of work and a ``setup(want)`` that builds
the inputs once and returns zero-argument callables, one per implementation
('fastnn' and, when available, 'numpy', 'torch', ...). ``want`` is the set of
implementation names the run asks for, so a setup can skip importing what is
not wanted (torch is slow to import). The harness times the callables
interleaved, A B C / C B A / A B C ..., in rounds, so a drift in machine load
hits every implementation alike; each round gives one sample per
implementation (a sample is `number` back-to-back calls, number calibrated so
a sample lasts about `sample_time`). Reported: median seconds per call, the
spread (IQR / median) and, per round, the paired ratio other / fastnn.

Registering a case from any module (modules named ``fastnn.benchmark.cases_*``
are imported automatically)::

    from fastnn.benchmark import Case, register

    def setup(want):
        x = ...
        impls = {"fastnn": lambda: fastnn_step(x)}
        if "torch" in want:
            import torch
            ...
            impls["torch"] = lambda: torch_step(xt)
        return impls

    register(Case("train/mlp/b128", group="training", unit="sample", work=128,
                  setup=setup, params={"model": "mlp", "batch": 128}, rss=True))

Units: 'flop' (reported as GFLOP/s and % of the measured peak), 'byte' (GB/s
and % of the measured bandwidth), 'sample' (training: steps/s, samples/s,
s/epoch for `epoch_samples` samples, and with rss=True the peak resident
memory of a separate process that runs only that implementation: Linux's
VmHWM, or resource.getrusage's ru_maxrss on other systems)."""
import fnmatch
import gc
import importlib
import json
import math
import os
import pkgutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import fastnn
from fastnn._ext import _C

from . import machine as mach

UNITS = ("flop", "byte", "sample")
_REGISTRY: Dict[str, "Case"] = {}


@dataclass
class Case:
    """One benchmark.

    name          unique, '/'-separated, e.g. 'matmul/square/1024'
    group         the report table it goes in, e.g. 'matmul-square'
    unit          'flop', 'byte' or 'sample'
    work          units of work per call (flops, bytes moved, or samples per step)
    setup         setup(want: frozenset[str]) -> {impl name: zero-arg callable}
    params        extra columns for the report (shape, op, batch, ...)
    isa_sensitive run the 'fastnn' callable once per selected ISA path
    quick         part of the --quick run
    epoch_samples training cases: samples in one epoch (s/epoch column)
    rss           training cases: also measure peak RSS per implementation in
                  a child process (VmHWM on Linux, else resource.getrusage)
    skip_isas     ISA paths an isa_sensitive case leaves out unless nothing
                  else of the selection is left (the portable path on 4096^3)
    description   one line for the report
    """
    name: str
    group: str
    unit: str
    work: float
    setup: Callable
    params: dict = field(default_factory=dict)
    isa_sensitive: bool = False
    quick: bool = True
    epoch_samples: int = 60000
    rss: bool = False
    skip_isas: tuple = ()
    description: str = ""

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"Case {self.name!r}: unit must be one of {UNITS}, got {self.unit!r}")
        if not self.work > 0:
            raise ValueError(f"Case {self.name!r}: work must be > 0, got {self.work!r}")


def register(case, replace=False):
    """Add a Case to the registry (returns it). A second case with the same
    name is an error unless replace=True."""
    if not isinstance(case, Case):
        raise TypeError(f"register: expected a Case, got {type(case).__name__}")
    if case.name in _REGISTRY and not replace:
        raise ValueError(f"register: a case named {case.name!r} is already registered")
    _REGISTRY[case.name] = case
    return case


def case(name, group, unit, work, **kw):
    """Decorator form of register: the decorated function is the setup."""
    def deco(setup):
        register(Case(name=name, group=group, unit=unit, work=work, setup=setup, **kw))
        return setup
    return deco


_discovered = False


def discover():
    """Import every fastnn.benchmark.cases_* module (each registers its cases)
    once; a module that fails to import is reported, not fatal."""
    global _discovered
    errors = {}
    if not _discovered:
        _discovered = True
        pkg = importlib.import_module("fastnn.benchmark")
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if mod.name.startswith("cases_"):
                try:
                    importlib.import_module(f"fastnn.benchmark.{mod.name}")
                except Exception as e:
                    errors[mod.name] = f"{type(e).__name__}: {e}"
                    print(f"fastnn bench: could not load {mod.name}: {e}", file=sys.stderr)
    return errors


def all_cases():
    discover()
    return list(_REGISTRY.values())


def select(cases, only=None, quick=False):
    """Cases whose name matches any of the comma-separated patterns in `only`
    (a glob if it has * ? [, else a substring), and with quick=True only the
    quick ones."""
    out = []
    pats = [p.strip() for p in (only or "").split(",") if p.strip()]
    for c in cases:
        if quick and not c.quick:
            continue
        if pats and not any(fnmatch.fnmatchcase(c.name, p) if any(ch in p for ch in "*?[")
                            else p in c.name for p in pats):
            continue
        out.append(c)
    return out


# ------------------------------------------------------------ threads --

class ThreadControl:
    """Sets every library's thread count together, so a run at n threads is
    n threads for fastnn (OpenMP), numpy's BLAS (threadpoolctl) and torch;
    nothing is oversubscribed. Restores the previous settings on exit."""

    def __init__(self):
        self.notes = []
        try:
            import threadpoolctl
            self._tpc = threadpoolctl
        except ImportError:
            self._tpc = None
            self.notes.append("threadpoolctl not installed: numpy's BLAS thread count was not "
                              "limited (pip install threadpoolctl)")

    @contextmanager
    def limit(self, n):
        old_fastnn = fastnn.get_num_threads()
        torch = sys.modules.get("torch")
        old_torch = torch.get_num_threads() if torch is not None else None
        fastnn.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)
        ctl = None
        if self._tpc is not None:
            ctl = self._tpc.threadpool_limits(limits=n, user_api="blas")
        try:
            yield
        finally:
            if ctl is not None:
                ctl.restore_original_limits()
            fastnn.set_num_threads(old_fastnn)
            if torch is not None and old_torch is not None:
                torch.set_num_threads(old_torch)


# ------------------------------------------------------------ timing --

@dataclass
class Settings:
    """How long to measure. sample_time: seconds per sample (calls are
    repeated `number` times to reach it); budget: seconds of rounds per case
    and thread count; rounds between min_rounds and max_rounds (a round slower
    than budget / min_rounds still gets min_rounds)."""
    sample_time: float = 0.05
    budget: float = 2.0
    min_rounds: int = 5
    max_rounds: int = 25
    warmup: int = 1
    settle_max: float = 0.5


    @classmethod
    def quick(cls):
        return cls(sample_time=0.01, budget=0.25, min_rounds=3, max_rounds=9, warmup=1,
                   settle_max=0.3)


@dataclass
class Variant:
    """One implementation as timed: label (e.g. 'fastnn[avx512]' or 'numpy'),
    the callable, and the ISA to select before each sample (fastnn only)."""
    label: str
    impl: str
    fn: Callable
    isa: Optional[str] = None
    peak: Optional[Callable] = None    # a flop case: one peak GFLOP/s sample per round

    def enter(self):
        if self.isa is not None:
            _C.set_isa(_C.ISA_NAMES.index(self.isa))


def _quantiles(xs):
    """(q1, median, q3) of a list (linear interpolation)."""
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def _spread(xs):
    q1, med, q3 = _quantiles(xs)
    return (q3 - q1) / med if med > 0 else float("nan")


def settle(max_wait, window=0.005):
    """Wait until this process's other threads stop using the CPU (at most
    `max_wait` seconds); returns the seconds waited. After a call, OpenBLAS's
    worker threads spin (sched_yield) for about 0.1 s before they sleep: the
    implementation timed next would share its cores with them."""
    t0 = time.perf_counter()
    while True:
        c0, w0 = time.process_time(), time.perf_counter()
        time.sleep(window)
        busy = (time.process_time() - c0) / max(time.perf_counter() - w0, 1e-9)
        waited = time.perf_counter() - t0
        if busy < 0.2 or waited >= max_wait:
            return waited


def time_variants(variants, settings, threads=1):
    """Time `variants` interleaved; returns {label: {...stats, 'samples'}}.
    With threads > 1 the harness lets the machine go idle (settle) whenever
    the next sample belongs to a different library."""
    number = {}
    for v in variants:                       # warm up and calibrate
        if threads > 1:
            settle(settings.settle_max)
        v.enter()
        t = float("inf")
        for _ in range(max(1, settings.warmup)):
            t0 = time.perf_counter()
            v.fn()
            t = min(t, time.perf_counter() - t0)
        if t < settings.sample_time / 2:     # a second estimate for short calls
            reps = max(1, min(1000, int(settings.sample_time / 4 / max(t, 1e-7))))
            t0 = time.perf_counter()
            for _ in range(reps):
                v.fn()
            t = (time.perf_counter() - t0) / reps
        number[v.label] = max(1, int(round(settings.sample_time / max(t, 1e-9))))
    samples = {v.label: [] for v in variants}
    peaks = {v.label: [] for v in variants}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        r = 0
        last_impl, settled = None, 0.0
        while True:
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                k = number[v.label]
                fn = v.fn
                # numpy's and torch's threads spin after their calls: the next
                # library, or a peak run, would share the cores with them
                if threads > 1 and (v.impl != last_impl or (
                        v.peak is not None and last_impl not in (None, "fastnn"))):
                    settled += settle(settings.settle_max)
                last_impl = v.impl
                if v.peak is not None:      # before the sample, after the settle
                    peaks[v.label].append(v.peak())
                v.enter()
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                samples[v.label].append((time.perf_counter() - t0) / k)
            r += 1
            elapsed = time.perf_counter() - start - settled
            if r >= settings.max_rounds:
                break
            if r >= settings.min_rounds and elapsed >= settings.budget:
                break
            # stop early when even min_rounds would blow the budget 3x over
            if r >= 3 and elapsed / r * settings.min_rounds > 3 * settings.budget:
                break
    finally:
        if gc_was:
            gc.enable()
    out = {}
    for v in variants:
        xs = samples[v.label]
        q1, med, q3 = _quantiles(xs)
        out[v.label] = {"impl": v.impl, "isa": v.isa, "median_s": med, "q1_s": q1, "q3_s": q3,
                        "min_s": min(xs), "spread": _spread(xs), "rounds": len(xs),
                        "number": number[v.label], "samples": xs}
        if peaks[v.label]:
            out[v.label]["peak_samples"] = peaks[v.label]
    return out


def paired_ratios(timings, num, den):
    """timings[num] / timings[den] (other / fastnn: the speedup of den): the
    ratio of the medians, plus the median and IQR/median (spread) of the
    per-round paired ratios."""
    a, b = timings[num]["samples"], timings[den]["samples"]
    pairs = [x / y for x, y in zip(a, b) if y > 0]
    ratio = timings[num]["median_s"] / timings[den]["median_s"]
    return {"ratio": ratio, "spread": _spread(pairs) if pairs else float("nan"),
            "paired_median": statistics.median(pairs) if pairs else float("nan")}


# ------------------------------------------------------------ running --

def variants_for(case, impls, isas, threads=1):
    """Expand the setup's callables into timed variants: 'fastnn' becomes
    one variant per ISA path when the case is ISA-sensitive. The variants of
    an ISA-sensitive flop case (the GEMM's) sample the peak of their ISA
    path (numpy, torch: the best path's) in every round."""
    cur = fastnn.get_isa()
    best = fastnn.available_isas()[-1]
    samplers = {}

    def peak(isa):
        if not (case.isa_sensitive and case.unit == "flop"):
            return None
        if isa not in samplers:
            samplers[isa] = mach.peak_sampler(isa, threads)
        return samplers[isa]

    out = []
    for name, fn in impls.items():
        if name == "fastnn":
            paths = list(isas) if case.isa_sensitive else [cur]
            paths = [i for i in paths if i not in case.skip_isas] or paths
            for isa in paths:
                out.append(Variant(f"fastnn[{isa}]", "fastnn", fn, isa, peak(isa)))
        else:
            out.append(Variant(name, name, fn, None, peak(best)))
    return out


def rates(case, med_s):
    """Work per second in the report's unit: GFLOP/s, GB/s or samples/s."""
    per_s = case.work / med_s
    return per_s / 1e9 if case.unit in ("flop", "byte") else per_s


def run_case(case, threads_list, isas, want, settings, tctl, progress=None):
    """All measurements of one case: one result dict per thread count."""
    results = []
    try:
        impls = case.setup(frozenset(want))
    except Exception as e:  # a layer whose API moved on: skip, don't abort the run
        impls = {"error": f"setup failed: {type(e).__name__}: {e}"}
    if "fastnn" not in impls:
        why = impls.get("error") or "setup returned no 'fastnn' implementation"
        if progress:
            progress.case_skipped(case, why, len(threads_list))
        return [{"case": case.name, "group": case.group, "unit": case.unit, "skipped": why}]
    impls = {k: v for k, v in impls.items() if k == "fastnn" or k in want}
    params = dict(case.params)
    if case.unit == "sample":      # the training table's s/epoch column reads it
        params.setdefault("epoch_samples", case.epoch_samples)
    saved_isa = fastnn.get_isa()
    try:
        for n in threads_list:
            if progress:
                progress.case_start(case, n)
            t0 = time.perf_counter()
            with tctl.limit(n):
                variants = variants_for(case, impls, isas, n)
                try:
                    timings = time_variants(variants, settings, n)
                except Exception as e:
                    why = f"{type(e).__name__}: {e}"
                    results.append({"case": case.name, "group": case.group, "unit": case.unit,
                                    "threads": n, "skipped": why})
                    if progress:
                        progress.case_failed(why)
                    continue
                finally:
                    fastnn.set_isa(saved_isa)
            res = {"case": case.name, "group": case.group, "unit": case.unit,
                   "work": case.work, "params": dict(params), "threads": n,
                   "seconds": time.perf_counter() - t0, "impls": {}, "ratios": {}}
            for label, t in timings.items():
                t = dict(t)
                t["rate"] = rates(case, t["median_s"])
                res["impls"][label] = t
            fl = [lb for lb in timings if lb.startswith("fastnn")]
            others = [lb for lb in timings if not lb.startswith("fastnn")]
            for f in fl:
                res["ratios"][f] = {o: paired_ratios(timings, o, f) for o in others}
            results.append(res)
            if progress:
                progress.case_done(res)
    finally:
        fastnn.set_isa(saved_isa)
    if case.rss and results and "skipped" not in results[-1]:
        # one child process per (implementation, thread count), as many at
        # once as fastnn's default thread count (the cores this process may
        # use, or FASTNN_NUM_THREADS): nothing is timed meanwhile, and each
        # child's peak is its own, so running them side by side changes no
        # figure, only the run's wall time (16 children of ~3 s each over
        # the training cases)
        todo = [(res["impls"][label], res["threads"])
                for label in results[-1]["impls"] for res in results
                if label in res.get("impls", {})]
        with ThreadPoolExecutor(max_workers=fastnn.runtime.default_num_threads()) as pool:
            peaks = pool.map(lambda job: child_peak_rss(case.name, job[0]["impl"],
                                                        job[0]["isa"], job[1]), todo)
            for (impl, _), peak in zip(todo, peaks):
                impl["peak_rss_bytes"] = peak
    return results


# ------------------------------------------------------------ peak RSS --

def child_peak_rss(case_name, impl, isa, threads, steps=5):
    """Peak resident memory (bytes) of a fresh Python process that imports
    fastnn, runs the case's setup for `impl` alone and `steps` calls of it.
    Includes the interpreter and the imported libraries (torch's are large):
    it is what a script training this way costs."""
    code = ("import sys, json; from fastnn.benchmark.harness import _rss_child; "
            "print(json.dumps(_rss_child(*json.loads(sys.argv[1]))))")
    args = json.dumps([case_name, impl, isa, threads, steps])
    try:
        p = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True,
                           timeout=600, env=dict(os.environ))
        if p.returncode != 0:
            return None
        return json.loads(p.stdout.strip().splitlines()[-1]).get("peak_rss_bytes")
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _rss_child(case_name, impl, isa, threads, steps):
    discover()
    c = _REGISTRY[case_name]
    if isa:
        fastnn.set_isa(isa)
    tctl = ThreadControl()
    with tctl.limit(threads):
        fns = c.setup(frozenset([impl]))
        fn = fns[impl]
        for _ in range(steps):
            fn()
    return {"peak_rss_bytes": _peak_rss()}


def _peak_rss():
    """This process's peak resident set, in bytes. On Linux from VmHWM in
    /proc/self/status: getrusage's ru_maxrss survives execve, so a child of a
    big parent would report the parent's peak. Elsewhere ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * (1 if sys.platform == "darwin" else 1024)   # bytes on macOS, KiB elsewhere


# ------------------------------------------------------------ progress --

class Progress:
    """One line per case and thread count on stderr: what runs, then how
    long it took and the headline ratio."""

    def __init__(self, total, stream=None, enabled=True):
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def note(self, text):
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {text}", file=self.stream, flush=True)

    def case_start(self, case, threads):
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] ({self.done + 1}/{self.total}) "
                  f"{case.name} @ {threads} thr ...", end="", file=self.stream, flush=True)

    def case_done(self, res):
        self.done += 1
        if not self.enabled:
            return
        bits = []
        for f, d in res["ratios"].items():
            for o, r in d.items():
                bits.append(f"{f.replace('fastnn', '')} x{r['ratio']:.2f} vs {o}")
        if not bits:
            lb = next(iter(res["impls"]))
            bits.append(f"{res['impls'][lb]['rate']:.3g}")
        print(f" {res['seconds']:.1f}s  " + ", ".join(bits), file=self.stream, flush=True)

    def case_failed(self, why):
        self.done += 1
        if self.enabled:
            print(f" failed, skipped: {why}", file=self.stream, flush=True)

    def case_skipped(self, case, why, count=1):
        self.done += count
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] skip {case.name}: {why}",
                  file=self.stream, flush=True)


def finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
