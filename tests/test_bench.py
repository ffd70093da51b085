"""The benchmark harness (fastnn/benchmark/, ``python -m fastnn bench``):
statistics, the interleaved timer (on a fake clock, so the numbers are
exact), target evaluation, rendering, the command line and accuracy records.

Only one test measures for real: a --quick run of one activation case with a
tiny budget (and a tiny triad array), about a second."""
import dataclasses
import json
import math
import os
import re
import subprocess
import sys

import pytest

import fastnn
from fastnn import benchmark as bench
from fastnn.benchmark import harness, machine, report
from fastnn.benchmark.harness import Case, Settings, paired_ratios
from fastnn.benchmark.record import write_record

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------ helpers --

class FakeClock:
    """Stands in for the `time` module inside harness: perf_counter only
    moves when a fake implementation "runs" (or settle sleeps)."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def process_time(self):         # settle(): this process is never busy
        return 0.0

    def sleep(self, s):
        self.now += s

    def work(self, seconds, log=None, label=None):
        def fn():
            self.now += seconds
            if log is not None:
                log.append(label)
        return fn


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(harness, "time", c)
    return c


@pytest.fixture
def registry(monkeypatch):
    """The real registry (every cases_* module loaded), as a copy this test
    may add to."""
    harness.discover()
    reg = dict(harness._REGISTRY)
    monkeypatch.setattr(harness, "_REGISTRY", reg)
    return reg


def timing(label, samples):
    """One implementation's timing, as harness.time_variants returns it."""
    q1, med, q3 = harness._quantiles(samples)
    isa = report._isa_of(label)
    return {"impl": "fastnn" if label.startswith("fastnn") else label, "isa": isa,
            "median_s": med, "q1_s": q1, "q3_s": q3, "min_s": min(samples),
            "spread": harness._spread(samples), "rounds": len(samples), "number": 1,
            "samples": list(samples)}


def make_row(case, group, threads, samples, unit="byte", work=1e9, params=None):
    """A result row in the schema harness.run_case writes; `samples` maps a
    variant label ('fastnn[avx512]', 'numpy', ...) to its per-round times (or
    to one number: five equal rounds)."""
    samples = {lb: ([s] * 5 if isinstance(s, (int, float)) else s) for lb, s in samples.items()}
    timings = {lb: timing(lb, s) for lb, s in samples.items()}
    c = Case(case, group=group, unit=unit, work=work, setup=lambda want: {})
    res = {"case": case, "group": group, "unit": unit, "work": work, "params": dict(params or {}),
           "threads": threads, "seconds": 1.0, "impls": {}, "ratios": {}}
    for lb, t in timings.items():
        res["impls"][lb] = dict(t, rate=harness.rates(c, t["median_s"]))
    fl = [lb for lb in timings if lb.startswith("fastnn")]
    others = [lb for lb in timings if not lb.startswith("fastnn")]
    for f in fl:
        res["ratios"][f] = {o: paired_ratios(timings, o, f) for o in others}
    return res


def square(n, threads, samples):
    return make_row(f"matmul/square/{n}", "matmul-square", threads, samples, unit="flop",
                    work=2.0 * n ** 3,
                    params={"M": n, "N": n, "K": n, "op": "NN", "shape": f"{n}^3"})


MACHINE = {
    "date": "2026-01-01T00:00:00+00:00", "host": "testhost", "loadavg_before": [0.1, 0.1, 0.1],
    "loadavg_after": [0.2, 0.1, 0.1],
    "fastnn": {"version": "9.9.9", "git": "abc1234 (main)", "isa": "avx512",
               "available_isas": ["ref", "avx2", "avx512"],
               "compiler": "gcc 12.2.0", "cflags": "-O3", "gemm_blocking": {}},
    "python": "3.11.7", "numpy": "2.0.0", "threads": [1, 2], "cpu": "Test CPU 3000",
    "machine": "x86_64", "logical_cpus": 2, "allowed_cpus": 2, "physical_cores": 2,
    "caches": {"L1d": 49152, "L2": 2097152}, "default_threads": 2,
    "blas": {"libraries": [{"internal_api": "openblas", "prefix": "libopenblas",
                            "version": "0.3.31", "architecture": "SkylakeX",
                            "threading_layer": "pthreads", "num_threads": 2,
                            "filepath": "libopenblas.so"}]},
    "openblas_env": {"removed": {}, "still_set": {}}, "torch": None,
    "peak_gflops": {"ref": {"1": 25.0, "2": 50.0}, "avx2": {"1": 100.0, "2": 200.0},
                    "avx512": {"1": 200.0, "2": 400.0}},
    "triad_bytes_per_pass": 3 << 20, "bandwidth_gbs": {"1": 10.0, "2": 20.0},
    "measure_seconds": 1.0,
}


def make_run(**kw):
    run = {"command": "python -m fastnn bench --test", "argv": ["--test"], "quick": False,
           "threads": [1, 2], "isas": ["avx512", "avx2", "ref"], "against": ["numpy", "torch"],
           "only": None, "full_suite": False, "wall_seconds": 123.0,
           "settings": Settings().__dict__, "settings_text": "test settings text",
           "caveat": None, "threadpoolctl_notes": []}
    run.update(kw)
    return run


def targets(results, run=None, machine_=None):
    summary, per_row = report.evaluate_targets(results, machine_ or MACHINE, run or make_run())
    return {s["key"]: s for s in summary}, per_row


def make_report(results, run=None):
    run = run or make_run()
    summary, per_row = report.evaluate_targets(results, MACHINE, run)
    return {"machine": MACHINE, "run": run, "results": results, "targets": summary,
            "_per_row": per_row}


def write_json(path, rep):
    path.write_text(report.to_json(rep))
    return str(path)


def main(argv):
    """fastnn bench's main in-process; never re-executes the test process."""
    return bench.main(argv, reexec=False)


# --------------------------------------------------------- statistics --

def test_quantiles_and_spread_known_values():
    assert harness._quantiles([3.0]) == (3.0, 3.0, 3.0)
    assert harness._quantiles([4.0, 1.0, 3.0, 2.0]) == pytest.approx((1.75, 2.5, 3.25))
    assert harness._quantiles([5, 1, 4, 2, 3]) == pytest.approx((2.0, 3.0, 4.0))
    assert harness._spread([5, 1, 4, 2, 3]) == pytest.approx(2.0 / 3.0)
    assert harness._spread([2.0] * 7) == 0.0
    assert math.isnan(harness._spread([0.0, 0.0, 0.0]))


def test_paired_ratios_ratio_of_medians_and_spread_of_paired_ratios():
    t = {"fastnn[ref]": timing("fastnn[ref]", [1.0, 2.0, 1.0, 2.0, 1.0]),
         "numpy": timing("numpy", [2.0, 4.0, 3.0, 8.0, 5.0])}
    r = paired_ratios(t, "numpy", "fastnn[ref]")
    # medians 4 / 1; per-round ratios 2 2 3 4 5: median 3, IQR (4 - 2) / 3
    assert r["ratio"] == pytest.approx(4.0)
    assert r["paired_median"] == pytest.approx(3.0)
    assert r["spread"] == pytest.approx(2.0 / 3.0)
    inv = paired_ratios(t, "fastnn[ref]", "numpy")
    assert inv["ratio"] == pytest.approx(0.25)


def test_paired_ratios_pair_rounds_so_common_load_cancels():
    # the machine got 3x slower in rounds 3-4 for both: each round's ratio is
    # exactly 2, so the paired spread is 0 though each timing spreads widely
    f = [1.0, 1.0, 3.0, 3.0, 1.0]
    o = [2.0 * x for x in f]
    t = {"fastnn[avx2]": timing("fastnn[avx2]", f), "torch": timing("torch", o)}
    r = paired_ratios(t, "torch", "fastnn[avx2]")
    assert r["ratio"] == pytest.approx(2.0) and r["paired_median"] == pytest.approx(2.0)
    assert r["spread"] == 0.0
    assert t["torch"]["spread"] == pytest.approx(2.0)


def test_paired_ratios_skip_zero_denominators_and_empty_pairs():
    t = {"f": {"median_s": 1.0, "samples": [1.0, 0.0, 1.0]},
         "o": {"median_s": 2.0, "samples": [2.0, 5.0, 2.0]}}
    r = paired_ratios(t, "o", "f")
    assert r["paired_median"] == 2.0 and r["spread"] == 0.0
    t = {"f": {"median_s": 1.0, "samples": [0.0]}, "o": {"median_s": 2.0, "samples": [1.0]}}
    r = paired_ratios(t, "o", "f")
    assert r["ratio"] == 2.0 and math.isnan(r["spread"]) and math.isnan(r["paired_median"])


def test_rates_per_unit():
    mk = lambda unit, work: Case("x", group="g", unit=unit, work=work,  # noqa: E731
                                 setup=lambda want: {})
    assert harness.rates(mk("flop", 2e9), 0.5) == pytest.approx(4.0)       # GFLOP/s
    assert harness.rates(mk("byte", 3e9), 1.5) == pytest.approx(2.0)       # GB/s
    assert harness.rates(mk("sample", 128), 0.01) == pytest.approx(12800)  # samples/s


# ----------------------------------------------------- cases, registry --

def test_case_validation_and_register(registry):
    with pytest.raises(ValueError, match="unit"):
        Case("t/x", group="g", unit="furlong", work=1, setup=lambda want: {})
    with pytest.raises(ValueError, match="work"):
        Case("t/x", group="g", unit="byte", work=0, setup=lambda want: {})
    with pytest.raises(TypeError):
        harness.register("t/x")
    c = harness.register(Case("t/x", group="g", unit="byte", work=1, setup=lambda want: {}))
    assert registry["t/x"] is c
    with pytest.raises(ValueError, match="already registered"):
        harness.register(Case("t/x", group="g", unit="byte", work=2, setup=lambda want: {}))
    c2 = harness.register(Case("t/x", group="g", unit="byte", work=2, setup=lambda want: {}),
                          replace=True)
    assert registry["t/x"] is c2

    @bench.case("t/deco", group="g", unit="flop", work=5, quick=False)
    def setup(want):
        return {}
    assert registry["t/deco"].setup is setup and registry["t/deco"].quick is False


def test_select_substring_glob_comma_and_quick():
    mk = lambda name, quick=True: Case(name, group="g", unit="byte", work=1,  # noqa: E731
                                       setup=lambda want: {}, quick=quick)
    cases = [mk("matmul/square/256"), mk("matmul/square/4096", quick=False),
             mk("matmul/train/NT/b128-784x1024"), mk("act/relu/256x4096")]
    names = lambda cs: [c.name for c in cs]  # noqa: E731
    assert names(harness.select(cases)) == names(cases)
    assert names(harness.select(cases, quick=True)) == [
        "matmul/square/256", "matmul/train/NT/b128-784x1024", "act/relu/256x4096"]
    assert names(harness.select(cases, "square")) == ["matmul/square/256", "matmul/square/4096"]
    # a glob must match the whole name; a plain pattern is a substring
    assert names(harness.select(cases, "matmul/*/256")) == ["matmul/square/256"]
    assert names(harness.select(cases, "relu*")) == []
    assert names(harness.select(cases, " act/ , NT/b128 ")) == [
        "matmul/train/NT/b128-784x1024", "act/relu/256x4096"]
    assert names(harness.select(cases, "square", quick=True)) == ["matmul/square/256"]
    assert harness.select(cases, "nothing-like-this") == []


def test_registered_cases_include_the_target_cases():
    names = {c.name for c in harness.all_cases()}
    for t in ("train/mlp-large/b128", "train/mlp-small/b64", f"optim/adam/{10 << 20}",
              "matmul/square/1024"):
        assert t in names
    by = {c.name: c for c in harness.all_cases()}
    assert by["matmul/square/1024"].isa_sensitive and by["matmul/square/1024"].unit == "flop"
    assert by["matmul/square/1024"].work == 2.0 * 1024 ** 3
    assert by["train/mlp-small/b64"].unit == "sample" and by["train/mlp-small/b64"].rss
    assert not by["matmul/square/4096"].quick


# ------------------------------------------------ timer (fake clock) --

def test_time_variants_exact_medians_calibration_and_budget(clock):
    s = Settings(sample_time=0.01, budget=0.1, min_rounds=3, max_rounds=25, warmup=1)
    vs = [harness.Variant("fastnn[ref]", "fastnn", clock.work(1e-3)),
          harness.Variant("numpy", "numpy", clock.work(3e-3))]
    out = harness.time_variants(vs, s)
    f, o = out["fastnn[ref]"], out["numpy"]
    # a sample lasts ~sample_time: 10 calls of 1 ms, 3 calls of 3 ms
    assert (f["number"], o["number"]) == (10, 3)
    assert f["median_s"] == pytest.approx(1e-3) and o["median_s"] == pytest.approx(3e-3)
    assert f["q1_s"] == pytest.approx(1e-3) and f["q3_s"] == pytest.approx(1e-3)
    assert f["spread"] == pytest.approx(0.0, abs=1e-9)
    # a round takes 19 ms: 6 rounds reach the 0.1 s budget
    assert f["rounds"] == o["rounds"] == 6 == len(f["samples"]) == len(o["samples"])
    assert (f["impl"], f["isa"], o["impl"], o["isa"]) == ("fastnn", None, "numpy", None)
    assert paired_ratios(out, "numpy", "fastnn[ref]")["ratio"] == pytest.approx(3.0)


def test_time_variants_round_limits(clock):
    v = [harness.Variant("a", "a", clock.work(1e-3))]
    big = Settings(sample_time=0.01, budget=1e9, min_rounds=3, max_rounds=7)
    assert harness.time_variants(v, big)["a"]["rounds"] == 7
    # 10 ms rounds, budget spent after two of them: still min_rounds
    tiny = Settings(sample_time=0.01, budget=0.015, min_rounds=4, max_rounds=7)
    assert harness.time_variants(v, tiny)["a"]["rounds"] == 4
    # 1 s calls, budget 0.5 s: min_rounds (5) would take 10x the budget, stop at 3
    slow = [harness.Variant("a", "a", clock.work(1.0))]
    s = Settings(sample_time=0.01, budget=0.5, min_rounds=5, max_rounds=25)
    r = harness.time_variants(slow, s)["a"]
    assert r["rounds"] == 3 and r["number"] == 1 and r["median_s"] == pytest.approx(1.0)


def test_time_variants_interleaves_and_alternates_order(clock):
    log = []
    vs = [harness.Variant(lb, lb, clock.work(1e-3, log, lb)) for lb in "ABC"]
    s = Settings(sample_time=0.004, budget=1e9, min_rounds=4, max_rounds=4)
    harness.time_variants(vs, s)
    runs = [x for i, x in enumerate(log) if i == 0 or log[i - 1] != x]
    # calibration A B C, then rounds A B C / C B A / A B C / C B A
    assert "".join(runs) == "ABC" + "ABC" + "BA" + "BC" + "BA"


def test_time_variants_selects_each_variants_isa():
    isas = list(fastnn.available_isas())
    seen = {isa: set() for isa in isas}
    vs = [harness.Variant(f"fastnn[{isa}]", "fastnn",
                          lambda isa=isa: seen[isa].add(fastnn.get_isa()), isa) for isa in isas]
    harness.time_variants(vs, Settings(sample_time=1e-4, budget=0.0, min_rounds=3, max_rounds=3))
    assert seen == {isa: {isa} for isa in isas}


def test_time_variants_samples_the_peak_before_every_sample(clock):
    log = []
    peaks = iter([100.0, 110.0, 120.0, 130.0])
    vs = [harness.Variant("A", "A", clock.work(1e-3, log, "A"),
                          peak=lambda: log.append("p") or next(peaks)),
          harness.Variant("B", "B", clock.work(1e-3, log, "B"))]
    s = Settings(sample_time=0.002, budget=1e9, min_rounds=4, max_rounds=4)
    out = harness.time_variants(vs, s)
    assert out["A"]["peak_samples"] == [100.0, 110.0, 120.0, 130.0]
    assert "peak_samples" not in out["B"]
    # calibration A B, then p A B / B p A / p A B / B p A (a sample is 2 calls):
    # the peak run of a round comes right before its implementation's sample,
    # after the settle, never right after another library's call
    assert "".join(log) == "AB" + "pAABB" + "BBpAA" + "pAABB" + "BBpAA"


def test_time_variants_settles_before_a_peak_run_behind_another_library(clock, monkeypatch):
    """On 2 threads a peak run never follows numpy's (or torch's) call without
    a settle, even where that library's sample comes twice in a row (the
    round boundary of B A / A B); after fastnn's own call it needs none."""
    log = []
    monkeypatch.setattr(harness, "settle", lambda max_wait: log.append("s") or 0.0)
    vs = [harness.Variant("A", "fastnn", clock.work(1e-3, log, "A"),
                          peak=lambda: log.append("p") or 1.0),
          harness.Variant("B", "numpy", clock.work(1e-3, log, "B"),
                          peak=lambda: log.append("q") or 1.0)]
    s = Settings(sample_time=0.001, budget=1e9, min_rounds=3, max_rounds=3)
    harness.time_variants(vs, s, threads=2)
    rounds = "".join(log)[len("sAsB"):]      # after the calibration
    assert rounds == "spA" + "sqB" + "sqB" + "spA" + "pA" + "sqB"


def test_peak_sampler_measures_the_chains_of_each_isa():
    for isa in fastnn.available_isas():
        f = machine.peak_sampler(isa, 1, seconds=0.001)
        g = [f() for _ in range(3)]
        assert all(0.1 < x < 1e5 for x in g), (isa, g)


def test_variants_for_gives_gemm_variants_a_peak_sampler(monkeypatch):
    made = []
    monkeypatch.setattr(machine, "peak_sampler",
                        lambda isa, threads: made.append((isa, threads)) or (lambda: 1.0))
    impls = {"fastnn": lambda: None, "numpy": lambda: None}
    gemm = Case("m", group="g", unit="flop", work=1, setup=None, isa_sensitive=True)
    v = harness.variants_for(gemm, impls, ["avx2", "ref"], 2)
    assert all(x.peak is not None for x in v)
    best = fastnn.available_isas()[-1]
    assert made == [("avx2", 2), ("ref", 2)] + ([] if best in ("avx2", "ref") else [(best, 2)])
    conv = Case("c", group="g", unit="flop", work=1, setup=None)
    assert all(x.peak is None for x in harness.variants_for(conv, impls, ["avx2"], 1))


def test_variants_for_expands_isa_sensitive_cases():
    impls = {"fastnn": lambda: None, "numpy": lambda: None}
    sens = Case("m", group="g", unit="flop", work=1, setup=None, isa_sensitive=True)
    plain = Case("p", group="g", unit="byte", work=1, setup=None)
    v = harness.variants_for(sens, impls, ["avx2", "ref"])
    assert [(x.label, x.impl, x.isa) for x in v] == [
        ("fastnn[avx2]", "fastnn", "avx2"), ("fastnn[ref]", "fastnn", "ref"),
        ("numpy", "numpy", None)]
    cur = fastnn.get_isa()
    v = harness.variants_for(plain, impls, ["avx2", "ref"])
    assert [(x.label, x.isa) for x in v] == [(f"fastnn[{cur}]", cur), ("numpy", None)]
    # skip_isas leaves a path out, unless it is all the selection has
    big = Case("b", group="g", unit="flop", work=1, setup=None, isa_sensitive=True,
               skip_isas=("ref",))
    assert [x.label for x in harness.variants_for(big, impls, ["avx2", "ref"])] == [
        "fastnn[avx2]", "numpy"]
    assert [x.label for x in harness.variants_for(big, impls, ["ref"])] == [
        "fastnn[ref]", "numpy"]
    harness.discover()
    assert harness._REGISTRY["matmul/square/4096"].skip_isas == ("ref",)
    assert harness._REGISTRY["matmul/square/2048"].skip_isas == ()


def test_run_case_rows_per_thread_count(clock):
    wants = []

    def setup(want):
        wants.append(want)
        return {"fastnn": clock.work(2e-3), "numpy": clock.work(5e-3), "torch": clock.work(1e-3)}
    c = Case("t/fake", group="fake", unit="byte", work=1e9, setup=setup, params={"shape": "3x4"})
    s = Settings(sample_time=0.01, budget=0.05, min_rounds=3, max_rounds=5, settle_max=0.01)
    isa = fastnn.get_isa()
    rows = harness.run_case(c, [1, 2], [isa], {"fastnn", "numpy"}, s, harness.ThreadControl())
    assert wants == [frozenset({"fastnn", "numpy"})]
    assert [r["threads"] for r in rows] == [1, 2]
    lb = f"fastnn[{isa}]"
    for r in rows:
        assert (r["case"], r["group"], r["unit"], r["work"]) == ("t/fake", "fake", "byte", 1e9)
        assert r["params"] == {"shape": "3x4"}
        assert set(r["impls"]) == {lb, "numpy"}           # torch was not asked for
        assert r["impls"][lb]["median_s"] == pytest.approx(2e-3)
        assert r["impls"][lb]["rate"] == pytest.approx(500.0)   # 1 GB / 2 ms in GB/s
        assert r["impls"]["numpy"]["rate"] == pytest.approx(200.0)
        assert set(r["ratios"]) == {lb} and set(r["ratios"][lb]) == {"numpy"}
        assert r["ratios"][lb]["numpy"]["ratio"] == pytest.approx(2.5)
    # make_row (used by the target tests below) writes the same schema
    fake = make_row("t/fake", "fake", 1, {lb: 2e-3, "numpy": 5e-3}, params={"shape": "3x4"})
    assert set(fake) == set(rows[0])
    assert set(fake["impls"][lb]) == set(rows[0]["impls"][lb])
    assert set(fake["ratios"][lb]["numpy"]) == set(rows[0]["ratios"][lb]["numpy"])


def test_run_case_restores_isa_and_threads(clock):
    isas = list(fastnn.available_isas())
    before_isa, before_n = fastnn.get_isa(), fastnn.get_num_threads()
    other = "ref" if before_isa != "ref" else isas[-1]
    c = Case("t/isa", group="g", unit="flop", work=1.0, isa_sensitive=True,
             setup=lambda want: {"fastnn": clock.work(1e-3)})
    s = Settings(sample_time=0.002, budget=0.0, min_rounds=3, max_rounds=3, settle_max=0.01)
    rows = harness.run_case(c, [1, 2], [other], {"fastnn"}, s, harness.ThreadControl())
    assert list(rows[0]["impls"]) == [f"fastnn[{other}]"]
    assert fastnn.get_isa() == before_isa and fastnn.get_num_threads() == before_n


def test_run_case_skips_failing_setups_and_calls(clock):
    def bad_setup(want):
        raise AttributeError("no such layer")
    c = Case("t/bad", group="g", unit="byte", work=1, setup=bad_setup)
    s = Settings(sample_time=0.002, budget=0.0, min_rounds=3, max_rounds=3)
    tctl = harness.ThreadControl()
    rows = harness.run_case(c, [1, 2], ["ref"], {"fastnn"}, s, tctl)
    assert rows == [{"case": "t/bad", "group": "g", "unit": "byte",
                     "skipped": "setup failed: AttributeError: no such layer"}]
    c = Case("t/none", group="g", unit="byte", work=1, setup=lambda want: {"numpy": lambda: 0})
    rows = harness.run_case(c, [1], ["ref"], {"fastnn", "numpy"}, s, tctl)
    assert "no 'fastnn'" in rows[0]["skipped"]

    def boom():
        raise RuntimeError("kernel fault")
    c = Case("t/boom", group="g", unit="byte", work=1, setup=lambda want: {"fastnn": boom})
    rows = harness.run_case(c, [1], ["ref"], {"fastnn"}, s, tctl)
    assert rows == [{"case": "t/boom", "group": "g", "unit": "byte", "threads": 1,
                     "skipped": "RuntimeError: kernel fault"}]
    assert report.skipped_lines(rows) == ["t/boom @ 1 thr: RuntimeError: kernel fault"]


def test_peak_rss_of_this_process_and_of_a_child():
    assert harness._peak_rss() > 10 << 20
    rss = harness.child_peak_rss("act/relu/256x4096", "fastnn", None, 1, steps=1)
    assert rss is not None and 10 << 20 < rss < 4 << 30
    assert harness.child_peak_rss("no/such/case", "fastnn", None, 1) is None


def test_run_case_measures_peak_rss_of_every_implementation_and_thread_count():
    # the children run side by side; each row still gets its own figure
    harness.discover()
    c = dataclasses.replace(harness._REGISTRY["act/relu/256x4096"], rss=True)
    s = Settings(sample_time=0.002, budget=0.0, min_rounds=3, max_rounds=3)
    rows = harness.run_case(c, [1, 2], [fastnn.get_isa()], {"fastnn", "numpy"}, s,
                            harness.ThreadControl())
    assert [r["threads"] for r in rows] == [1, 2]
    for r in rows:
        assert set(r["impls"]) == {f"fastnn[{fastnn.get_isa()}]", "numpy"}
        for impl in r["impls"].values():
            assert 10 << 20 < impl["peak_rss_bytes"] < 4 << 30


# ------------------------------------------------------------ targets --

def test_target_thresholds_are_inclusive():
    t = {x.key: x for x in report.TARGETS}
    assert t["T1"].passes(1.0) is True and t["T1"].passes(0.9999) is False
    assert t["T4"].passes(4.0) is True and t["T4"].passes(4.001) is False
    assert t["T12"].passes(3.0) is True and t["T10"].passes(1.99) is False
    assert t["T1"].passes(float("nan")) is None and t["T1"].passes(None) is None
    # a NaN value (e.g. a spread of no pairs) is left out, not counted as a failure
    row = make_row("act/relu/256x4096", "activation", 1, {"fastnn[avx512]": 1.0, "numpy": 2.0})
    row["ratios"]["fastnn[avx512]"]["numpy"]["spread"] = float("nan")
    assert targets([row])[0]["T8"]["status"] == "n/a"


def test_no_results_every_target_is_na():
    s, per_row = targets([])
    assert [k for k in s] == [t.key for t in report.TARGETS]
    assert all(x["status"] == "n/a" and x["n"] == 0 for x in s.values())
    assert per_row == {}


def test_t1_t4_gemm_targets_pass_and_fail():
    n = 1024
    # avx2 rate: 2 n^3 / t; t chosen for 90% (pass) and 80% (fail) of the 100 GFLOP/s peak
    t_pass, t_fail = 2.0 * n ** 3 / 90e9, 2.0 * n ** 3 / 80e9
    good = [square(n, 1, {"fastnn[avx512]": 1.0, "fastnn[avx2]": t_pass,
                          "fastnn[ref]": 3.0 * t_pass, "numpy": 1.0}),
            square(512, 1, {"fastnn[avx512]": 1.0, "fastnn[avx2]": 1.0, "fastnn[ref]": 1.0,
                            "numpy": 0.5}),       # n < 1024: not a T1 or T3 row
            make_row("matmul/train/NT/b128-784x1024", "matmul-train", 1,
                     {"fastnn[avx512]": 1.0, "numpy": 1.1}, unit="flop")]
    s, per_row = targets(good)
    assert (s["T1"]["status"], s["T1"]["n"], s["T1"]["worst"]) == ("PASS", 1, pytest.approx(1.0))
    assert s["T1"]["where"] == "matmul/square/1024 @ 1 thr, fastnn[avx512]"
    assert s["T2"]["status"] == "PASS" and s["T2"]["worst"] == pytest.approx(1.1)
    # T4: both squares (ref / avx2 = 3 and 1)
    assert (s["T4"]["status"], s["T4"]["n"], s["T4"]["worst"]) == ("PASS", 2, pytest.approx(3.0))
    assert ("T1", True) in per_row[("matmul/square/1024", 1)]
    assert not any(k == "T1" for k, _ in per_row[("matmul/square/512", 1)])

    bad = [square(n, 1, {"fastnn[avx512]": 1.0, "fastnn[avx2]": t_fail,
                         "fastnn[ref]": 5.0 * t_fail, "numpy": 0.9}),
           square(2048, 1, {"fastnn[avx512]": 1.0, "fastnn[avx2]": 2.0 * 2048 ** 3 / 95e9,
                            "fastnn[ref]": 2.0 * 2.0 * 2048 ** 3 / 95e9, "numpy": 1.0})]
    s, per_row = targets(bad)
    assert (s["T1"]["status"], s["T1"]["passed"], s["T1"]["n"]) == ("FAIL", 1, 2)
    assert s["T1"]["worst"] == pytest.approx(0.9) and "square/1024" in s["T1"]["where"]
    assert s["T4"]["status"] == "FAIL" and s["T4"]["worst"] == pytest.approx(5.0)
    assert s["T4"]["where"] == "matmul/square/1024 @ 1 thr, fastnn[ref]"
    assert ("T1", False) in per_row[("matmul/square/1024", 1)]
    assert s["T2"]["status"] == "n/a"


def test_t1_t2_take_the_best_isa_of_the_run():
    """On a CPU without AVX-512 the run has no fastnn[avx512] rows: T1 and T2
    judge the AVX2 path instead of reading n/a."""
    rows = [square(1024, 2, {"fastnn[avx2]": 1.0, "fastnn[ref]": 4.0, "numpy": 0.9}),
            square(2048, 2, {"fastnn[avx2]": 1.0, "fastnn[ref]": 4.0, "numpy": 1.2}),
            make_row("matmul/train/NT/b128-784x1024", "matmul-train", 2,
                     {"fastnn[avx2]": 1.0, "fastnn[ref]": 3.0, "numpy": 0.95}, unit="flop")]
    s, per_row = targets(rows)
    assert (s["T1"]["status"], s["T1"]["passed"], s["T1"]["n"]) == ("FAIL", 1, 2)
    assert s["T1"]["where"] == "matmul/square/1024 @ 2 thr, fastnn[avx2]"
    assert s["T2"]["status"] == "FAIL" and s["T2"]["worst"] == pytest.approx(0.95)
    assert "fastnn[avx2]" in s["T2"]["where"]
    # with AVX-512 in the run, its rows are the ones judged
    rows = [square(1024, 2, {"fastnn[avx512]": 1.0, "fastnn[avx2]": 2.0, "numpy": 1.1})]
    s, _ = targets(rows)
    assert s["T1"]["status"] == "PASS" and s["T1"]["where"].endswith("fastnn[avx512]")


def test_t5_t6_thread_scaling():
    rows = [square(1024, 1, {"fastnn[avx512]": 1.0, "fastnn[ref]": 4.0}),
            square(1024, 2, {"fastnn[avx512]": 0.5, "fastnn[ref]": 4.0}),
            make_row("matmul/train/NN/b64-784x1024", "matmul-train", 1,
                     {"fastnn[avx512]": 1.0}, unit="flop"),
            make_row("matmul/train/NN/b64-784x1024", "matmul-train", 2,
                     {"fastnn[avx512]": 0.6}, unit="flop")]
    s, _ = targets(rows)
    # only the best ISA counts: ref did not scale at all, avx512 2.0x
    assert (s["T5"]["status"], s["T5"]["n"], s["T5"]["worst"]) == ("PASS", 1, pytest.approx(2.0))
    assert s["T5"]["where"] == "matmul/square/1024 @ 2 thr, fastnn[avx512]"
    assert s["T6"]["status"] == "FAIL" and s["T6"]["worst"] == pytest.approx(1.0 / 0.6)
    sc = report.thread_scaling(rows)
    assert sc[("matmul/square/1024", "fastnn[ref]")] == 1.0
    assert sc[("matmul/square/1024", "fastnn[avx512]")] == 2.0
    # numpy is measured at both counts too, but scaling is fastnn's only
    rows += [square(2048, 1, {"fastnn[avx512]": 4.0, "numpy": 4.0}),
             square(2048, 2, {"fastnn[avx512]": 2.0, "numpy": 1.0})]
    assert ("matmul/square/2048", "numpy") not in report.thread_scaling(rows)
    assert targets(rows)[0]["T5"]["n"] == 2


def test_t3_one_thread_share_of_the_peak_of_the_isa_in_use():
    n = 1024
    t = lambda gflops: 2.0 * n ** 3 / (gflops * 1e9)
    # avx512 peak 200 (1 thread): 180 GFLOP/s = 90%; avx2 (peak 100) at 50% does
    # not count (not the ISA in use); the 2-thread row and n < 1024 neither
    rows = [square(n, 1, {"fastnn[avx512]": t(180), "fastnn[avx2]": t(50), "numpy": 1.0}),
            square(n, 2, {"fastnn[avx512]": t(100), "fastnn[avx2]": t(50), "numpy": 1.0}),
            square(512, 1, {"fastnn[avx512]": 1.0, "fastnn[avx2]": 1.0, "numpy": 1.0})]
    s, _ = targets(rows)
    assert (s["T3"]["status"], s["T3"]["n"]) == ("PASS", 1)
    assert s["T3"]["worst"] == pytest.approx(0.90) and s["T3"]["worst_text"] == "90%"
    assert s["T3"]["where"] == "matmul/square/1024 @ 1 thr, fastnn[avx512]"
    assert s["T3"]["threshold_text"] == "85%"
    rows[0] = square(n, 1, {"fastnn[avx512]": t(160), "fastnn[avx2]": t(95), "numpy": 1.0})
    s, _ = targets(rows)
    assert s["T3"]["status"] == "FAIL" and s["T3"]["worst"] == pytest.approx(0.80)
    # --isa avx2: the ISA in use is avx2, against its own peak (100)
    s, _ = targets([square(n, 1, {"fastnn[avx2]": t(90), "fastnn[ref]": t(20)})])
    assert s["T3"]["status"] == "PASS" and s["T3"]["worst"] == pytest.approx(0.90)
    assert s["T3"]["where"] == "matmul/square/1024 @ 1 thr, fastnn[avx2]"
    # peaks sampled in the rounds: the median of the per-round shares, not the
    # median rate over the header's peak (here 90 / 100 would pass)
    row = square(n, 1, {"fastnn[avx2]": [t(90), t(90), t(90), t(99), t(99)]})
    row["impls"]["fastnn[avx2]"]["peak_samples"] = [110.0, 110.0, 110.0, 100.0, 120.0]
    s, _ = targets([row])
    assert s["T3"]["status"] == "FAIL"
    assert s["T3"]["worst"] == pytest.approx(90 / 110)


def test_t6_threshold_and_t13_output_layer():
    t6 = {x.key: x for x in report.TARGETS}["T6"]
    assert t6.passes(1.7) is True and t6.passes(1.69) is False

    def out(op, B, ratio, threads=2, N=10):
        return make_row(f"matmul/output/{op}/b{B}-256x{N}", "matmul-output", threads,
                        {"fastnn[avx512]": 1.0, "fastnn[avx2]": 3.0, "numpy": ratio},
                        unit="flop", params={"M": B, "N": N, "K": 256, "op": op})
    rows = [out("NT", 64, 1.2), out("TN", 128, 1.05, threads=1),
            out("NN", 64, 0.1, N=16),                         # not N = 10: not a T13 row
            make_row("matmul/train/NT/b64-1024x256", "matmul-train", 2,
                     {"fastnn[avx512]": 1.0, "numpy": 0.5}, unit="flop")]   # decoy
    s, per_row = targets(rows)
    assert (s["T13"]["status"], s["T13"]["n"], s["T13"]["passed"]) == ("PASS", 2, 2)
    assert s["T13"]["worst"] == pytest.approx(1.05)
    assert s["T13"]["where"] == "matmul/output/TN/b128-256x10 @ 1 thr, fastnn[avx512]"
    assert ("T13", True) in per_row[("matmul/output/NT/b64-256x10", 2)]
    rows.append(out("TT", 256, 0.9))
    s, _ = targets(rows)
    assert s["T13"]["status"] == "FAIL" and s["T13"]["worst"] == pytest.approx(0.9)
    assert "matmul/output/TT/b256-256x10" in s["T13"]["where"]
    # the input gradient's shape, K = 10, counts as well
    rows.append(make_row("matmul/output-k/NN/b64-256x10", "matmul-output", 1,
                         {"fastnn[avx512]": 1.0, "numpy": 0.8}, unit="flop",
                         params={"M": 64, "N": 256, "K": 10, "op": "NN"}))
    s, _ = targets(rows)
    assert (s["T13"]["n"], s["T13"]["worst"]) == (4, pytest.approx(0.8))
    assert "matmul/output-k/NN/b64-256x10" in s["T13"]["where"]


def test_output_layer_cases_are_registered():
    from fastnn.benchmark import cases_kernels, harness
    cases = {c.name: c for c in harness.all_cases()}
    names = [n for n in cases if n.startswith("matmul/output/")]
    assert len(names) == 4 * len(cases_kernels.BATCHES) * len(cases_kernels.OUTPUT_INPUTS)
    c = cases["matmul/output/TT/b64-256x10"]
    assert c.group == "matmul-output" and c.params["N"] == 10 and c.params["K"] == 256
    impls = c.setup(("numpy",))
    impls["fastnn"]()
    impls["numpy"]()
    names_k = [n for n in cases if n.startswith("matmul/output-k/")]
    assert len(names_k) == len(names)
    c = cases["matmul/output-k/TN/b128-1024x10"]
    assert c.group == "matmul-output" and (c.params["M"], c.params["N"], c.params["K"]) == (128, 1024, 10)
    impls = c.setup(("numpy",))
    impls["fastnn"]()
    impls["numpy"]()


def test_t5_uses_the_best_isa_measured_on_the_squares():
    # --isa avx2,ref: the GEMM rows have no avx512 variant, the activation
    # (not ISA-sensitive) runs on the ISA in use, avx512
    rows = [square(1024, 1, {"fastnn[avx2]": 1.0, "fastnn[ref]": 4.0}),
            square(1024, 2, {"fastnn[avx2]": 0.5, "fastnn[ref]": 2.5}),
            make_row("act/relu/256x4096", "activation", 1, {"fastnn[avx512]": 1.0}),
            make_row("act/relu/256x4096", "activation", 2, {"fastnn[avx512]": 0.7})]
    s, _ = targets(rows)
    assert s["T5"]["status"] == "PASS" and s["T5"]["n"] == 1
    assert s["T5"]["where"] == "matmul/square/1024 @ 2 thr, fastnn[avx2]"


def test_t7_wall_time_only_for_the_full_suite():
    rows = [make_row("act/relu/256x4096", "activation", 1, {"fastnn[avx512]": 1.0})]
    assert targets(rows, make_run(full_suite=False))[0]["T7"]["status"] == "n/a"
    s = targets(rows, make_run(full_suite=True, wall_seconds=400.0))[0]["T7"]
    assert (s["status"], s["worst"], s["where"], s["worst_text"]) == (
        "PASS", 400.0, "whole run", "400")
    assert targets(rows, make_run(full_suite=True, wall_seconds=901.0))[0]["T7"]["status"] == "FAIL"


def test_t8_spread_of_ratios():
    steady = make_row("act/relu/256x4096", "activation", 1,
                      {"fastnn[avx512]": [1.0] * 5, "numpy": [2.0, 2.01, 1.99, 2.02, 1.98]})
    noisy = make_row("act/tanh/256x4096", "activation", 1,
                     {"fastnn[avx512]": [1.0] * 5, "numpy": [1.0, 2.0, 3.0, 4.0, 5.0]})
    s, per_row = targets([steady])
    assert s["T8"]["status"] == "PASS" and s["T8"]["worst"] == pytest.approx(0.01)
    s, _ = targets([steady, noisy])
    assert s["T8"]["status"] == "FAIL" and s["T8"]["passed"] == 1
    assert s["T8"]["worst"] == pytest.approx(2.0 / 3.0)
    assert s["T8"]["where"] == "act/tanh/256x4096 @ 1 thr, fastnn[avx512] vs numpy"


def _vs_torch_rows(case, group, unit, ratio_at_2, ratio_at_1=0.5):
    return [make_row(case, group, 1, {"fastnn[avx512]": 1.0, "torch": ratio_at_1}, unit=unit),
            make_row(case, group, 2, {"fastnn[avx512]": 1.0, "torch": ratio_at_2}, unit=unit)]


@pytest.mark.parametrize("key,case,group,unit,threshold", [
    ("T10", "train/mlp-large/b128", "training", "sample", 2.0),
    ("T11", "train/mlp-small/b64", "training", "sample", 2.0),
    ("T12", f"optim/adam/{10 << 20}", "optimizer", "byte", 3.0),
])
def test_t10_t12_vs_torch_at_two_threads(key, case, group, unit, threshold):
    others = ("T10", "T11", "T12")
    # decoys: the same kind of rows for other cases never count
    decoys = (_vs_torch_rows("optim/adam/1048576", "optimizer", "byte", 0.1)
              + _vs_torch_rows("train/mlp-other/b32", "training", "sample", 0.1))
    passing = _vs_torch_rows(case, group, unit, threshold + 0.5)
    s, per_row = targets(passing + decoys)
    t = s[key]
    assert t["threshold"] == threshold and t["op"] == ">="
    # the 1-thread row (ratio 0.5) is not a T10-T12 row
    assert (t["status"], t["n"], t["passed"]) == ("PASS", 1, 1)
    assert t["worst"] == pytest.approx(threshold + 0.5)
    assert t["where"] == f"{case} @ 2 thr, fastnn[avx512]"
    assert per_row[(case, 2)] == [("T8", True), (key, True)]
    assert all(s[k]["status"] == "n/a" for k in others if k != key)

    failing = _vs_torch_rows(case, group, unit, threshold - 0.1, ratio_at_1=10.0)
    t = targets(failing + decoys)[0][key]
    assert (t["status"], t["n"], t["passed"]) == ("FAIL", 1, 0)
    assert t["worst"] == pytest.approx(threshold - 0.1)
    # without torch, or without a 2-thread row: not measured
    alone = [make_row(case, group, 2, {"fastnn[avx512]": 1.0}, unit=unit)]
    assert targets(alone)[0][key]["status"] == "n/a"
    one_thread = _vs_torch_rows(case, group, unit, 9.0)[:1]
    assert targets(one_thread)[0][key]["status"] == "n/a"


def test_t10_uses_the_variant_the_training_row_has():
    # FASTNN_ISA=avx2 with the GEMM cases on every ISA: the training row's
    # only fastnn variant is fastnn[avx2], the GEMM rows' best fastnn[avx512]
    rows = [square(1024, 2, {"fastnn[avx512]": 1.0, "fastnn[avx2]": 2.0, "numpy": 1.0}),
            make_row("train/mlp-large/b128", "training", 2,
                     {"fastnn[avx2]": 1.0, "torch": 2.5}, unit="sample")]
    t = targets(rows)[0]["T10"]
    assert (t["status"], t["n"]) == ("PASS", 1)
    assert t["where"] == "train/mlp-large/b128 @ 2 thr, fastnn[avx2]"


def test_t9_run_to_run_against_a_baseline(tmp_path):
    base = [make_row("act/relu/256x4096", "activation", 1, {"fastnn[avx512]": 1.0, "numpy": 2.0}),
            make_row("act/tanh/256x4096", "activation", 1, {"fastnn[avx512]": 1.0, "numpy": 3.0})]
    path = write_json(tmp_path / "base.json", make_report(base))
    b = report.baseline_ratios(path)
    assert b == {"act/relu/256x4096|1|fastnn[avx512]|numpy": pytest.approx(2.0),
                 "act/tanh/256x4096|1|fastnn[avx512]|numpy": pytest.approx(3.0)}
    assert targets(base)[0]["T9"]["status"] == "n/a"             # no baseline given
    now = [make_row("act/relu/256x4096", "activation", 1, {"fastnn[avx512]": 1.0, "numpy": 2.06}),
           make_row("act/tanh/256x4096", "activation", 1, {"fastnn[avx512]": 1.0, "numpy": 3.6}),
           make_row("act/gelu/256x4096", "activation", 1, {"fastnn[avx512]": 1.0, "numpy": 9.0})]
    s, per_row = targets(now, make_run(baseline_ratios=b))
    t = s["T9"]
    # relu moved 3%, tanh 20%; gelu is not in the baseline
    assert (t["status"], t["n"], t["passed"]) == ("FAIL", 2, 1)
    assert t["worst"] == pytest.approx(0.2) and t["worst_text"] == "20%"
    assert ("T9", True) in per_row[("act/relu/256x4096", 1)]
    assert ("T9", False) in per_row[("act/tanh/256x4096", 1)]
    assert not any(k == "T9" for k, _ in per_row[("act/gelu/256x4096", 1)])


# ---------------------------------------------------------- rendering --

def sample_results():
    rows = [square(1024, 1, {"fastnn[avx512]": 0.0110, "fastnn[avx2]": 0.0230,
                             "fastnn[ref]": 0.0900, "numpy": 0.0120, "torch": 0.0115}),
            square(1024, 2, {"fastnn[avx512]": 0.0056, "fastnn[avx2]": 0.0118,
                             "fastnn[ref]": 0.0450, "numpy": 0.0061, "torch": 0.0059}),
            make_row("act/relu/256x4096", "activation", 1,
                     {"fastnn[avx512]": 0.001, "numpy": 0.003}, work=20.0 * (1 << 20),
                     params={"shape": "256x4096", "layer": "ReLU"}),
            make_row("train/mlp-small/b64", "training", 2,
                     {"fastnn[avx512]": 0.0005, "torch": 0.001}, unit="sample", work=64,
                     params={"model": "mlp-small", "batch": 64}),
            {"case": "conv/conv2d/b64", "group": "conv", "unit": "flop",
             "skipped": "setup failed: AttributeError: no Conv2d"}]
    rows[3]["impls"]["fastnn[avx512]"]["peak_rss_bytes"] = 300 << 20
    return rows


def test_render_markdown_machine_targets_rows_and_skipped():
    rep = make_report(sample_results(), make_run(caveat="the machine was busy"))
    md = report.render_markdown(rep)
    assert md.startswith("# fastnn benchmark results\n")
    assert "python -m fastnn bench --test" in md
    assert "> **Caveat:** the machine was busy" in md
    # machine header
    assert "## Machine" in md
    assert "| CPU | Test CPU 3000 (x86_64), 2 physical cores, 2 of 2 logical CPUs usable |" in md
    assert "| Peak avx512 | 1 thr 200.0, 2 thr 400.0 GFLOP/s (AVX-512 FMA) |" in md
    assert "| Bandwidth | 1 thr 10.0, 2 thr 20.0 GB/s" in md
    assert "Settings: test settings text. Wall time 123 s." in md
    # targets table: every target, the measured ones with their status
    assert "## Targets" in md
    lines = md.splitlines()
    trow = {ln.split("|")[1].strip(): ln for ln in lines if re.match(r"\| T\d+ \|", ln)}
    assert set(trow) == {t.key for t in report.TARGETS}
    assert "PASS" in trow["T1"] and "1/1" not in trow["T1"] and "2/2" in trow["T1"]
    assert "n/a" in trow["T10"] and "not measured in this run" in trow["T10"]
    # T11: mlp-small at 2 threads, torch 2x slower
    assert "2.00" in trow["T11"] and "PASS" in trow["T11"]
    # result tables: one per group and thread count, then training and scaling
    assert "### matmul-square, 1 thread" in md and "### matmul-square, 2 threads" in md
    assert "### activation, 1 thread" in md
    assert "### training (end-to-end training steps)" in md
    assert "### thread scaling, 1 -> 2 threads" in md
    row = next(ln for ln in lines if ln.startswith("| NN | 1024^3 |") and "195" in ln)
    # 2 * 1024^3 / 11 ms = 195 GFLOP/s = 98% of the 200 peak; numpy 12 / 11 = 1.09
    assert "195 (98%)" in row and "1.09" in row and "T1✓" in row
    relu = next(ln for ln in lines if ln.startswith("| ReLU |"))
    assert "21.0 (210%)" in relu and "3.00" in relu
    train = [ln for ln in lines if ln.startswith("| train/mlp-small/b64 |")]
    assert len(train) == 2
    assert "| fastnn[avx512] | 2000 | 128000 |" in train[0] and "300 MiB" in train[0]
    assert "×2.00" in train[1]
    assert "## Skipped" in md and "- conv/conv2d/b64: setup failed: AttributeError: no Conv2d" in md


def test_render_text_has_header_targets_and_tables():
    rep = make_report(sample_results())
    text = report.render_text(rep)
    assert text.startswith("CPU ")
    assert "Test CPU 3000" in text and "targets" in text
    assert "matmul-square, 2 threads" in text
    assert "skipped:" in text and "wall time 123 s" in text
    assert "T10  MLP 784-1024-1024-10 training" in text


def test_quality_warnings():
    rep = make_report(sample_results())
    assert report.quality_warnings(rep) == []
    busy = dict(MACHINE, loadavg_before=[1.8, 1.0, 1.0])
    # a rate above the peak: 2 * 1024^3 / 5 ms = 429 GFLOP/s on a 200 GFLOP/s peak
    over = [square(1024, 1, {"fastnn[avx512]": 0.005, "numpy": [0.005, 0.01, 0.02, 0.04, 0.08]})]
    w = report.quality_warnings({"machine": busy, "results": over})
    assert len(w) == 3
    assert "busy" in w[0] and "1.80" in w[0]
    assert "exceed the measured peak" in w[1] and "matmul/square/1024" in w[1]
    assert "median spread" in w[2]


def test_to_json_round_trip_drops_private_keys(tmp_path):
    rep = make_report(sample_results())
    d = json.loads(report.to_json(rep))
    assert set(d) == {"machine", "run", "results", "targets"}
    assert d["results"][0]["impls"]["numpy"]["samples"] == rep["results"][0]["impls"]["numpy"][
        "samples"]


def test_from_json_renders_markdown_and_text(tmp_path, capsys):
    src = write_json(tmp_path / "run.json", make_report(sample_results()))
    md_path = tmp_path / "out" / "RESULTS.md"
    md_path.parent.mkdir()
    assert main(["--from-json", src, "--markdown", str(md_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU ") and "matmul-square, 1 thread" in out
    md = md_path.read_text()
    assert "## Machine" in md and "## Targets" in md and "### matmul-square, 1 thread" in md
    assert f"re-rendered from its JSON with `python -m fastnn bench --from-json {src}`" in md
    assert "## Accuracy runs" not in md            # no out/accuracy directory
    assert "| T9 |" in md and "T9✓" not in md       # no baseline


def test_from_json_with_a_baseline_reports_run_to_run(tmp_path, capsys):
    cur = sample_results()
    base = sample_results()
    # the baseline's numpy was 10% slower on the 1024 square at 1 thread
    base[0] = square(1024, 1, {"fastnn[avx512]": 0.0110, "fastnn[avx2]": 0.0230,
                               "fastnn[ref]": 0.0900, "numpy": 0.0132, "torch": 0.0115})
    src = write_json(tmp_path / "cur.json", make_report(cur))
    bpath = write_json(tmp_path / "base.json", make_report(base))
    md_path = tmp_path / "R.md"
    assert main(["--from-json", src, "--baseline", bpath, "--markdown", str(md_path),
                 "--caveat", "rerendered in a test", "--quiet"]) == 0
    md = md_path.read_text()
    t9 = next(ln for ln in md.splitlines() if ln.startswith("| T9 |"))
    assert "FAIL" in t9 and "matmul/square/1024 @ 1 thr, fastnn[" in t9 and "vs numpy" in t9
    n = sum(len(d) for r in report.ok_rows(cur) for d in r["ratios"].values())
    assert f"{n - 3}/{n}" in t9     # that square's three fastnn variants moved vs numpy
    row = next(ln for ln in md.splitlines() if ln.startswith("| NN | 1024^3 |") and "195" in ln)
    assert "T9✗" in row
    relu = next(ln for ln in md.splitlines() if ln.startswith("| ReLU |"))
    assert "T9✓" in relu
    assert "> **Caveat:** rerendered in a test" in md
    # the file written by the run is not changed by a re-render
    assert "baseline_ratios" not in json.loads(open(src).read())["run"]


def test_from_json_of_the_committed_results(tmp_path, capsys):
    path = os.path.join(REPO, "bench", "results.json")
    if not os.path.exists(path):
        pytest.skip("no bench/results.json")
    with open(path) as f:
        d = json.load(f)
    keep, seen = [], set()
    for r in d["results"]:                  # the first rows of each group, both thread counts
        if sum(1 for k in keep if k["group"] == r["group"]) < 2:
            keep.append(r)
            seen.add(r["group"])
    d["results"] = keep
    src = tmp_path / "trimmed.json"
    src.write_text(json.dumps(d))
    md_path = tmp_path / "R.md"
    assert main(["--from-json", str(src), "--markdown", str(md_path), "--quiet"]) == 0
    md = md_path.read_text()
    assert f"| CPU | {d['machine']['cpu']}" in md and "## Targets" in md
    for g in seen:
        assert f"### {g}" in md


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "speedup.png"
    assert report.plot(make_report(sample_results()), str(path)) is None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    alone = [make_row("act/relu/256x4096", "activation", 1, {"fastnn[avx512]": 1.0})]
    assert "no comparisons" in report.plot(make_report(alone), str(tmp_path / "x.png"))


def test_cli_from_json_smoke(tmp_path):
    src = write_json(tmp_path / "run.json", make_report(sample_results()))
    md = tmp_path / "R.md"
    p = subprocess.run([sys.executable, "-m", "fastnn", "bench", "--from-json", src,
                        "--markdown", str(md)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "targets" in p.stdout and f"wrote {md}" in p.stderr
    text = md.read_text()
    assert "### matmul-square, 2 threads" in text
    # a fresh process: the targets the case modules register are there too
    assert all(f"| {t.key} |" in text for t in report.TARGETS)
    assert "| T21 |" in text and "| T31 |" in text


# ------------------------------------------------------- command line --

def test_list_and_only(capsys):
    assert main(["--list", "--only", "act/relu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].split()[:3] == ["act/relu/256x4096", "activation", "byte"]
    assert main(["--list", "--quick", "--only", "matmul/square"]) == 0
    names = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    assert names == ["matmul/square/256", "matmul/square/512", "matmul/square/1024",
                     "matmul/square/2048"]


def test_only_matching_nothing_fails_clearly(capsys):
    assert main(["--only", "no-such-case-xyz", "--threads", "1", "--against", "none"]) == 2
    err = capsys.readouterr().err
    assert "no case matches --only 'no-such-case-xyz'" in err and "--list" in err


@pytest.mark.parametrize("value,msg", [("0", "every value must be >= 1"),
                                       ("abc", "comma-separated list of integers"),
                                       ("1,-2", "every value must be >= 1"),
                                       (",", "every value must be >= 1")])
def test_bad_threads(value, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--threads", value, "--list"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--threads" in err and msg in err


def test_bad_isa(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--isa", "avx9000", "--list"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--isa: avx9000 not available" in err and "available:" in err


def test_isa_resolution():
    p = bench.build_parser()
    res = lambda *a: bench._resolve_isas(p.parse_args(list(a)), p)  # noqa: E731
    avail = list(fastnn.available_isas())
    order = [i for i in ("avx512", "avx2", "ref") if i in avail]
    assert res() == order
    assert res("--quick") == [fastnn.get_isa()]
    assert res("--isa", "all") == order
    assert res("--isa", "ref,ref") == ["ref"]


def test_empty_isa_list_is_rejected(capsys):
    p = bench.build_parser()
    with pytest.raises(SystemExit):
        bench._resolve_isas(p.parse_args(["--isa", ","]), p)
    assert "--isa" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, "not json", '{"machine": {"cpu": ', "[1, 2]",
                                     '{"machine": {}, "run": {}}'])
def test_from_json_bad_file_message_names_the_option(tmp_path, capsys, content):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    rc = main(["--from-json", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "--from-json" in err and str(path) in err


def test_bad_baseline_fails_before_measuring(tmp_path, capsys):
    src = write_json(tmp_path / "run.json", make_report(sample_results()))
    missing = str(tmp_path / "missing.json")
    assert main(["--from-json", src, "--baseline", missing, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--baseline" in err and missing in err
    with pytest.raises(SystemExit):       # a measuring run refuses at once
        main(["--only", "act/relu", "--baseline", missing])
    assert "--baseline" in capsys.readouterr().err


@pytest.mark.parametrize("budget", ["0", "-1", "nan", "x"])
def test_bad_budget(budget, capsys):
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--budget", budget])
    assert "--budget" in capsys.readouterr().err


def test_list_with_only_matching_nothing_fails(capsys):
    assert main(["--list", "--only", "no-such-case-xyz"]) == 2
    assert "no case matches" in capsys.readouterr().err


def test_to_json_is_strict_json():
    import numpy as np
    text = report.to_json({"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32(2.5),
                           "d": np.array([np.nan, 1.0])})
    d = json.loads(text)                    # json.loads accepts NaN; check the text too
    assert "NaN" not in text and "Infinity" not in text
    assert d == {"a": None, "b": [1.0, None], "c": 2.5, "d": [None, 1.0]}


def test_accuracy_section_renders_a_result_text_record(tmp_path):
    acc = tmp_path / "accuracy"
    rec = write_record(str(acc / "lm.json"), "char LM", None, 2.5, 100.0, goal="<= 1.6",
                       result="val loss 1.550 nats/char (2.236 bpc)", extra={"val_bpc": 2.236})
    assert rec["test_error_pct"] is None and rec["val_bpc"] == 2.236
    assert rec["epochs"] == 2.5 and rec["seconds_per_epoch"] == 40.0
    lines = report.accuracy_section(str(acc))
    assert any(ln.startswith("| char LM | val loss 1.550 nats/char (2.236 bpc) | <= 1.6 | 2.5 | "
                             "100 s | 40.00 |") for ln in lines)
    with pytest.raises(ValueError, match="test_error_pct or result"):
        write_record(str(acc / "x.json"), "x", None, 1, 1.0)
    (acc / "noresult.json").write_text(json.dumps({**rec, "result": ""}))
    assert any("noresult.json" in ln and "left out" in ln for ln in report.accuracy_section(str(acc)))


def test_accuracy_section_skips_corrupt_records(tmp_path):
    acc = tmp_path / "accuracy"
    acc.mkdir()
    write_record(str(acc / "ok.json"), "good run", 1.5, 3, 30.0, goal="<= 2%")
    (acc / "broken.json").write_text("{not json")
    (acc / "foreign.json").write_text('{"name": "x"}')
    lines = report.accuracy_section(str(acc))
    text = "\n".join(lines)
    assert "| good run | 1.50% test error |" in text
    assert "broken.json" in text and "foreign.json" in text and "left out" in text


# ----------------------------------------------------- a real tiny run --

def test_real_quick_run_of_one_case(tmp_path, monkeypatch, capsys):
    """One real measurement: --quick, one cheap activation case, threads 1,2,
    fastnn alone, a tiny budget; the triad array shrunk to 1 MiB."""
    monkeypatch.setattr(machine, "triad_size", lambda caches: 1 << 16)
    case = "act/relu/256x4096"
    if case not in {c.name for c in harness.all_cases()}:
        pytest.skip("no ReLU in this fastnn")
    jpath, mpath = tmp_path / "run.json", tmp_path / "RESULTS.md"
    argv = ["--quick", "--only", case, "--threads", "1,2", "--against", "none",
            "--budget", "0.02", "--json", str(jpath), "--markdown", str(mpath), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU ") and "Peak " in out and "activation, 2 threads" in out

    d = json.loads(jpath.read_text())
    assert set(d) == {"machine", "run", "results", "targets"}
    m = d["machine"]
    for isa in fastnn.available_isas():
        assert set(m["peak_gflops"][isa]) == {"1", "2"}
        assert all(v > 0 for v in m["peak_gflops"][isa].values())
    assert set(m["bandwidth_gbs"]) == {"1", "2"} and m["triad_bytes_per_pass"] == 3 * 4 << 16
    assert m["cpu"] and m["fastnn"]["version"] == fastnn.__version__
    assert m["fastnn"]["available_isas"] == list(fastnn.available_isas())
    assert m["threads"] == [1, 2] and m["allowed_cpus"] >= 1 and m["date"]
    run = d["run"]
    assert run["argv"] == argv and run["quick"] is True and run["full_suite"] is False
    assert run["threads"] == [1, 2] and run["against"] == [] and run["only"] == case
    assert run["settings"]["budget"] == 0.02 and run["isas"] == [fastnn.get_isa()]
    rows = d["results"]
    assert [(r["case"], r["threads"]) for r in rows] == [(case, 1), (case, 2)]
    lb = f"fastnn[{fastnn.get_isa()}]"
    for r in rows:
        assert "skipped" not in r and r["group"] == "activation" and r["unit"] == "byte"
        assert list(r["impls"]) == [lb] and r["ratios"] == {lb: {}}
        t = r["impls"][lb]
        assert t["median_s"] > 0 and t["number"] >= 1
        assert 3 <= t["rounds"] == len(t["samples"]) <= Settings.quick().max_rounds
        assert t["min_s"] <= t["q1_s"] <= t["median_s"] <= t["q3_s"]
        assert t["rate"] == pytest.approx(r["work"] / t["median_s"] / 1e9)
    assert len(d["targets"]) == len(report.TARGETS)
    assert all(s["status"] == "n/a" for s in d["targets"])       # nothing to compare with
    md = mpath.read_text()
    assert "## Machine" in md and "## Targets" in md
    assert "### activation, 1 thread" in md and "### activation, 2 threads" in md
    assert "### thread scaling, 1 -> 2 threads" in md


# ------------------------------------------------------------ records --

def test_write_record_fields(tmp_path):
    path = tmp_path / "deep" / "accuracy" / "run.json"
    rec = write_record(str(path), "digits mlp sgd", 2.5, 4, 10.0, goal="<= 3%")
    d = json.loads(path.read_text())
    assert d == rec
    info = fastnn.info()
    assert d["name"] == "digits mlp sgd" and d["goal"] == "<= 3%"
    assert d["test_error_pct"] == 2.5 and d["epochs"] == 4 and d["wall_seconds"] == 10.0
    assert d["seconds_per_epoch"] == 2.5
    assert (d["threads"], d["isa"], d["cpu"], d["fastnn"]) == (
        info["num_threads"], info["isa"], info["cpu"], info["version"])
    assert len(d["date"]) == 10 and d["date"][4] == "-" and d["command"].startswith("python ")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    git = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    if git.returncode == 0:                   # the commit measured, '+dirty' if edited
        assert d["git_commit"].split("+")[0] == git.stdout.strip()
    else:
        assert "git_commit" not in d
    # no epochs (a run stopped at once) does not divide by zero
    assert write_record(str(tmp_path / "z.json"), "z", 1, 0, 3.0)["seconds_per_epoch"] == 3.0


def test_accuracy_section_in_the_report(tmp_path, capsys):
    acc = tmp_path / "accuracy"
    assert report.accuracy_section(str(acc)) == []           # no directory, no section
    write_record(str(acc / "b.json"), "mnist mlp adam", 1.53, 20, 57.6, goal="<= 1.6%")
    rec = write_record(str(acc / "a.json"), "digits mlp sgd", 2.0, 4, 10.0)
    (acc / "notes.txt").write_text("not a record")
    lines = report.accuracy_section(str(acc))
    assert lines[0] == "## Accuracy runs" and "`accuracy/`" in lines[2]
    rows = [ln for ln in lines if ln.startswith("| ") and "| result |" not in ln]
    assert len(rows) == 2 and rows[0].startswith("| digits mlp sgd | 2.00% test error |  | 4 | 10 s | 2.50 |")
    assert rows[0].endswith(f"| {rec['threads']} | {rec['date']} | `{rec['command']}` |")
    assert rows[1].startswith("| mnist mlp adam | 1.53% test error | <= 1.6% | 20 | 58 s | 2.88 |")
    # the markdown written next to accuracy/ includes it
    src = write_json(tmp_path / "run.json", make_report(sample_results()))
    assert main(["--from-json", src, "--markdown", str(tmp_path / "RESULTS.md"), "--quiet"]) == 0
    md = (tmp_path / "RESULTS.md").read_text()
    assert "## Accuracy runs" in md and "| mnist mlp adam | 1.53% test error | <= 1.6% |" in md
    assert md.index("## Targets") < md.index("## Results") < md.index("## Accuracy runs")


def test_training_table_uses_the_cases_epoch_samples(clock):
    c = Case("t/train", group="training", unit="sample", work=128, epoch_samples=2048,
             setup=lambda want: {"fastnn": clock.work(1 / 64)})
    s = Settings(sample_time=0.05, budget=0.0, min_rounds=3, max_rounds=3)
    rows = harness.run_case(c, [1], [fastnn.get_isa()], {"fastnn"}, s, harness.ThreadControl())
    tab = report.training_table("training", rows, MACHINE)
    # 128 samples per 1/64 s step: 8192 samples/s, so 2048 samples take 0.25 s
    assert tab.rows[0][3:6] == ["64.0", "8192", "0.25"]
