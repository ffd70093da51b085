"""What the machine can do, measured once per benchmark run: CPU, cores,
the fp32 arithmetic peak of each ISA path (csrc/bench.c), memory bandwidth
(STREAM triad), the BLAS numpy uses, and how loaded the machine was."""
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import fastnn
from fastnn._ext import _C

# Environment variables that change which OpenBLAS kernels numpy uses. Some
# machines set them (e.g. a core type forced for reproducibility) and they
# make numpy slower than it is by default; the benchmark runs without them.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REEXEC_MARK = "_FASTNN_BENCH_REMOVED_ENV"


def clean_openblas_env(reexec=True):
    """Make sure numpy's OpenBLAS was loaded without OPENBLAS_ENV.

    OpenBLAS reads them when it is loaded, which has already happened (fastnn
    imports numpy), so if any is set the process re-executes itself (same
    interpreter, same command line, sys.orig_argv) without them. Returns the
    removed variables (after a re-exec, read back from a marker variable);
    with reexec=False, or when the command line is unknown, it only warns."""
    found = {k: os.environ[k] for k in OPENBLAS_ENV if k in os.environ}
    if found and reexec and not os.environ.get(_REEXEC_MARK):
        argv = list(getattr(sys, "orig_argv", []) or [])
        if len(argv) >= 2 and sys.executable:
            env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_ENV}
            env[_REEXEC_MARK] = json.dumps(found)
            print("fastnn bench: re-running without " + ", ".join(f"{k}={v}" for k, v in found.items())
                  + " (they slow numpy's OpenBLAS)", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, [sys.executable] + argv[1:], env)
    if found:
        print("fastnn bench: warning: " + ", ".join(found) + " set in the environment;"
              " numpy's OpenBLAS was loaded with them", file=sys.stderr)
        return {"removed": {}, "still_set": found}
    removed = {}
    mark = os.environ.get(_REEXEC_MARK)
    if mark:
        try:
            removed = json.loads(mark)
        except ValueError:
            removed = {}
    return {"removed": removed, "still_set": {}}


def blas_info():
    """The BLAS libraries numpy (and anything else loaded) uses, as
    threadpoolctl sees them: library, version, core type, threading."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"error": "threadpoolctl is not installed: numpy's BLAS threads cannot be "
                         "limited (pip install threadpoolctl)"}
    libs = []
    for d in threadpool_info():
        if d.get("user_api") != "blas":
            continue
        libs.append({k: d.get(k) for k in ("internal_api", "prefix", "version", "architecture",
                                            "threading_layer", "num_threads")}
                    | {"filepath": os.path.basename(d.get("filepath", ""))})
    return {"libraries": libs}


def torch_info():
    """torch version and BLAS backend, if torch is already imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    d = {"version": torch.__version__}
    try:
        cfg = torch.__config__.show()
        for key in ("BLAS_INFO", "USE_MKLDNN"):
            i = cfg.find(key + "=")
            if i >= 0:
                d[key.lower()] = cfg[i + len(key) + 1:].split(",")[0]
        for line in cfg.splitlines():
            if "CPU capability usage" in line:
                d["cpu_capability"] = line.split(":", 1)[1].strip()
    except Exception as e:  # informational only
        d["error"] = str(e)
    return d


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _size_bytes(text):
    if not text:
        return None
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper()
    if t[-1] in mult:
        return int(t[:-1]) * mult[t[-1]]
    return int(t)


def cpu_topology():
    """CPU model, logical CPUs, CPUs this process may use, physical cores
    among them, and the cache sizes (bytes) Linux reports."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 1))
    cores = set()
    for c in allowed:
        base = f"/sys/devices/system/cpu/cpu{c}/topology/"
        pkg, core = _read(base + "physical_package_id"), _read(base + "core_id")
        cores.add((pkg, core) if core is not None else (None, c))
    caches = {}
    for i in range(8):
        base = f"/sys/devices/system/cpu/cpu{allowed[0] if allowed else 0}/cache/index{i}/"
        level, kind = _read(base + "level"), _read(base + "type")
        if level is None:
            break
        if kind == "Instruction":
            continue
        name = f"L{level}" + ("d" if kind == "Data" else "")
        caches[name] = _size_bytes(_read(base + "size"))
    return {"cpu": fastnn.info()["cpu"], "machine": platform.machine(),
            "logical_cpus": os.cpu_count(), "allowed_cpus": len(allowed),
            "physical_cores": len(cores), "caches": caches,
            "default_threads": fastnn.runtime.default_num_threads()}


def _mem_available():
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _peak_iters(idx, threads, seconds):
    """Iterations of the multiply-add chains of ISA index `idx` that take
    about `seconds` at `threads` threads (calibrated by runs 4x longer each)."""
    iters = 20000
    while True:
        t, flops, used = _C.bench_peak(idx, threads, iters)
        if t >= seconds / 4 or iters > 1 << 40:
            break
        iters *= 4
    return max(1, int(iters * seconds / max(t, 1e-9)))


def measure_peak(isa, threads, seconds=0.02, reps=15):
    """Best GFLOP/s over `reps` runs of ~`seconds` each of the multiply-add
    chains on ISA path `isa` with `threads` threads."""
    idx = _C.ISA_NAMES.index(isa)
    iters = _peak_iters(idx, threads, seconds)
    best = 0.0
    for _ in range(reps):
        t, flops, used = _C.bench_peak(idx, threads, iters)
        best = max(best, flops / t / 1e9)
    return {"gflops": best, "threads": used}


def peak_sampler(isa, threads, seconds=0.004):
    """A callable giving one short sample (about `seconds`) of the peak
    GFLOP/s of `isa` at `threads` threads: the harness takes one in every
    round of a flop case, beside the case's own samples, so a share of the
    peak compares two rates measured moments apart (a VM's clock was seen to
    move 104 -> 117 GFLOP/s within minutes, more than a kernel change)."""
    idx = _C.ISA_NAMES.index(isa)
    iters = _peak_iters(idx, threads, seconds)

    def sample():
        t, flops, used = _C.bench_peak(idx, threads, iters)
        return flops / t / 1e9
    return sample


def triad_size(caches):
    """Floats per triad array: the three arrays together at least 4x the
    last-level cache (Linux's figure) and 192 MiB, at most 4 GiB and a third
    of the available memory."""
    llc = max([v for v in caches.values() if v] or [32 << 20])
    total = max(4 * llc, 192 << 20)
    avail = _mem_available()
    cap = 4 << 30
    if avail:
        cap = min(cap, avail // 3)
    total = max(min(total, cap), 48 << 20)
    return int(total // 3 // 4)


def measure_bandwidth(threads, n, reps=5):
    t = _C.bench_triad(n, threads, reps)
    return {"gbs": 3 * n * 4 / t / 1e9, "threads": threads}


def load_average():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def git_revision(branch=True):
    """Commit of the fastnn sources in use when they are a git checkout: the
    short hash, '+dirty' with uncommitted changes to tracked files, and
    ' (branch)' unless branch=False; else None."""
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))

    def git(*args):
        return subprocess.run(["git", "-C", src, *args], capture_output=True, text=True,
                              timeout=10)
    try:
        rev = git("rev-parse", "--short", "HEAD")
        if rev.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no")
        name = git("rev-parse", "--abbrev-ref", "HEAD") if branch else None
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
            + (f" ({name.stdout.strip()})" if name is not None and name.returncode == 0 else ""))


def measure(threads_list, quick=False, progress=None, env_note=None):
    """Everything the report header shows. `threads_list`: the thread counts
    the run uses (peak and bandwidth are measured at each, and at 1)."""
    t0 = time.perf_counter()
    counts = sorted(set([1] + list(threads_list)))
    topo = cpu_topology()
    info = fastnn.info()
    m = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
         "host": platform.node(), "loadavg_before": load_average(),
         "fastnn": {"version": info["version"], "git": git_revision(), "isa": info["isa"],
                    "available_isas": info["available_isas"],
                    "compiler": f"{info['compiler']} {info['compiler_version']}",
                    "cflags": info["cflags"], "gemm_blocking": info["gemm_blocking"]},
         "python": platform.python_version(), "numpy": np.__version__,
         "threads": counts}
    m.update(topo)
    m["blas"] = blas_info()
    m["openblas_env"] = env_note or {"removed": {}, "still_set": {}}
    m["torch"] = torch_info()
    seconds, reps = (0.01, 10) if quick else (0.02, 15)   # many short runs: best-of survives load
    m["peak_gflops"] = {}
    for isa in info["available_isas"]:
        m["peak_gflops"][isa] = {}
        for n in counts:
            if progress:
                progress(f"machine: {isa} peak, {n} thread{'s' if n > 1 else ''}")
            m["peak_gflops"][isa][str(n)] = measure_peak(isa, n, seconds, reps)["gflops"]
    n = triad_size(topo["caches"])
    m["triad_bytes_per_pass"] = 3 * n * 4
    m["bandwidth_gbs"] = {}
    for t in counts:
        if progress:
            progress(f"machine: triad bandwidth, {t} thread{'s' if t > 1 else ''}, "
                     f"{3 * n * 4 / 2**20:.0f} MiB")
        try:
            m["bandwidth_gbs"][str(t)] = measure_bandwidth(t, n, 3 if quick else 5)["gbs"]
        except MemoryError as e:
            m["bandwidth_gbs"][str(t)] = None
            m["bandwidth_error"] = str(e)
    m["measure_seconds"] = time.perf_counter() - t0
    return m


def peak(machine, isa, threads):
    """Measured peak GFLOP/s of `isa` at `threads` threads (None if unknown)."""
    return machine.get("peak_gflops", {}).get(isa, {}).get(str(threads))


def bandwidth(machine, threads):
    return machine.get("bandwidth_gbs", {}).get(str(threads))


def header_lines(machine):
    """The machine description as (label, text) pairs, for text and markdown."""
    m = machine
    rows = [("CPU", f"{m['cpu']} ({m['machine']}), {m['physical_cores']} physical cores, "
                    f"{m['allowed_cpus']} of {m['logical_cpus']} logical CPUs usable")]
    if m.get("caches"):
        rows.append(("Caches", ", ".join(f"{k} {v / 2**10:.0f} KiB" if v < 1 << 20 else
                                         f"{k} {v / 2**20:.0f} MiB"
                                         for k, v in m["caches"].items() if v)
                     + " (as Linux reports them)"))
    f = m["fastnn"]
    rows.append(("fastnn", f"{f['version']} git {f['git'] or 'n/a'}, ISA in use {f['isa']} "
                           f"(available: {', '.join(f['available_isas'])}), "
                           f"{f['compiler']}"))
    rows.append(("Threads", ", ".join(str(t) for t in m["threads"])
                 + f" (default {m['default_threads']})"))
    for isa, d in m["peak_gflops"].items():
        label = {"ref": "plain C (mul+add, compiler-vectorised)", "avx2": "AVX2 FMA",
                 "avx512": "AVX-512 FMA"}.get(isa, isa)
        per = ", ".join(f"{t} thr {v:.1f}" for t, v in d.items())
        rows.append((f"Peak {isa}", f"{per} GFLOP/s ({label})"))
    bw = ", ".join(f"{t} thr {v:.1f}" if v else f"{t} thr n/a"
                   for t, v in m["bandwidth_gbs"].items())
    rows.append(("Bandwidth", f"{bw} GB/s (STREAM triad, {m['triad_bytes_per_pass'] / 2**20:.0f} "
                              "MiB per pass)"))
    blas = m["blas"]
    if "error" in blas:
        rows.append(("numpy BLAS", blas["error"]))
    for lib in blas.get("libraries", []):
        rows.append(("numpy BLAS", f"{lib['internal_api']} {lib['version']}, core type "
                                   f"{lib['architecture']}, {lib['threading_layer']} "
                                   f"({lib['filepath']}); numpy {m['numpy']}"))
    env = m.get("openblas_env") or {}
    if env.get("removed"):
        rows.append(("Environment", "removed " + ", ".join(f"{k}={v}" for k, v in env["removed"].items())
                     + " before loading numpy (re-exec)"))
    if env.get("still_set"):
        rows.append(("Environment", "WARNING: " + ", ".join(env["still_set"])
                     + " still set: numpy's OpenBLAS may be slowed"))
    if m.get("torch"):
        t = m["torch"]
        rows.append(("torch", f"{t.get('version')}, BLAS {t.get('blas_info', '?')}, "
                              f"CPU capability {t.get('cpu_capability', '?')}"))
    rows.append(("Python", f"{m['python']}, host {m['host']}"))
    la = m.get("loadavg_before")
    la2 = m.get("loadavg_after")
    if la:
        text = "before " + " / ".join(f"{x:.2f}" for x in la)
        if la2:
            text += ", after " + " / ".join(f"{x:.2f}" for x in la2)
        rows.append(("Load average", text + " (1 / 5 / 15 min)"))
    rows.append(("Date", m["date"]))
    return rows
