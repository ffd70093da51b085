"""pytest configuration for the benchmarks (pytest bench/ --benchmark-only).

numpy's OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE when it loads;
some machines set them and they slow numpy down, which would flatter fastnn.
If either is set, pytest is re-executed without them (same command line)."""
import os

from fastnn.benchmark import machine


def pytest_configure(config):
    # pytest has redirected stdout/stderr to capture files by now: restore the
    # terminal first, or the re-executed pytest would write into those files.
    if any(k in os.environ for k in machine.OPENBLAS_ENV):
        capman = config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            capman.suspend_global_capture(in_=True)
    config._fastnn_env_note = machine.clean_openblas_env(reexec=True)


def pytest_report_header(config):
    import fastnn
    info = machine.blas_info()
    libs = ", ".join(f"{d['internal_api']} {d['version']} ({d['architecture']})"
                     for d in info.get("libraries", [])) or info.get("error", "none")
    lines = [f"fastnn {fastnn.__version__}: ISA in use {fastnn.get_isa()}, available "
             f"{', '.join(fastnn.available_isas())}; numpy BLAS: {libs}"]
    removed = getattr(config, "_fastnn_env_note", {}).get("removed")
    if removed:
        lines.append("removed from the environment before numpy loaded: "
                     + ", ".join(f"{k}={v}" for k, v in removed.items()))
    return lines


def pytest_collect_file(file_path, parent):
    """Collect bench_*.py here (pytest's default pattern is test_*.py)."""
    import pytest
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
