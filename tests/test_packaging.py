"""Packaging: the sdist ships what its tests need and a LICENSE, the wheel
only what runs, a missing compiler is reported as one, and an unbuilt source
tree says what to run.

The sdist tests build with `python -m build --no-isolation` from a copy of the
source tree (a few seconds: no compiling). Building the wheel compiles the
whole extension (about a minute on 2 cores), so that test runs only in CI
(CI=true, as CI sets it for .ci/run) or with FASTNN_TEST_WHEEL=1."""
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pytest

import fastnn
from helpers import ROOT

BUILT = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
LEAVE_OUT = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                   ".pytest_cache", ".benchmarks", "*.so", "*.o", "*.pyc",
                                   ".venv", "venv")


def _need(*dists):
    # installed distributions, not importable names: a build/ folder in the
    # current directory imports as a namespace package called `build`
    for dist, least in dists:
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{dist} is not installed (pip install -e '.[test]')")
        if int(re.match(r"\d+", have).group()) < least:
            pytest.skip(f"{dist} {have} < {least} (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of the source tree without build products, to build in."""
    _need(("Cython", 3), ("setuptools", 77))
    if not os.path.exists(os.path.join(ROOT, "setup.py")):
        pytest.skip("not run from a source tree")
    dst = tmp_path_factory.mktemp("src") / "fastnn-src"
    shutil.copytree(ROOT, dst, ignore=LEAVE_OUT)
    return dst


def _run(args, cwd, timeout, **env):
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    e.update(env)
    return subprocess.run(args, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def _build(tree, out, *what):
    _need(("build", 1))
    p = _run([sys.executable, "-m", "build", *what, "--no-isolation", "--outdir", str(out)],
             tree, 1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def test_sdist_ships_license_and_tests_that_collect(tree, tmp_path):
    _build(tree, tmp_path / "dist", "--sdist")
    (sdist,) = (tmp_path / "dist").glob("fastnn-*.tar.gz")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path)
    want_tests = {"tests/" + f for f in os.listdir(os.path.join(ROOT, "tests")) if f.endswith(".py")}
    assert {"tests/helpers.py", "tests/conftest.py"} <= want_tests
    missing = want_tests - names
    assert not missing, f"the sdist lacks {sorted(missing)}"
    assert {"LICENSE", "setup.py", "pyproject.toml", "fastnn/_ext/_C.pyx", "csrc/fastnn.h",
            "examples/dropout_mnist.py"} <= names
    assert not [n for n in names if n.endswith((".so", ".pyc")) or n == "fastnn/_ext/_C.c"]
    # The unpacked tests collect against the package already built here (the
    # sdist's own fastnn/ is unbuilt, so run from outside it).
    p = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
              str(tmp_path / top / "tests")], tmp_path, 600, PYTHONPATH=BUILT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    m = re.search(r"(\d+) tests? collected", p.stdout)
    assert m and int(m.group(1)) > 100, p.stdout[-2000:]


@pytest.mark.skipif(os.environ.get("CI") != "true" and os.environ.get("FASTNN_TEST_WHEEL") != "1",
                    reason="compiles the whole extension: runs in CI (CI=true) or with FASTNN_TEST_WHEEL=1")
def test_wheel_built_from_sdist_holds_only_what_runs(tree, tmp_path):
    _build(tree, tmp_path)          # sdist, then the wheel from the unpacked sdist, as pip does
    (whl,) = tmp_path.glob("fastnn-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        (so,) = [n for n in names if re.fullmatch(r"fastnn/_ext/_C\..*(\.so|\.pyd)", n)]
        binary = z.read(so)
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert not [n for n in names if n.endswith((".c", ".h", ".pyx", ".pxi", ".pxd"))], names
    assert not [n for n in names if n.startswith(("tests/", "csrc/", "bench/"))]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "fastnn/data/digits.csv.gz" in names and "fastnn/_ext/__init__.py" in names
    assert "fastnn = fastnn.__main__:main" in entry_points
    if binary[:4] == b"\x7fELF":     # no DWARF unless FASTNN_DEBUG=1
        assert b".debug_info" not in binary, f"{so} carries debug information"


def test_missing_compiler_is_reported_first(tree, tmp_path):
    p = _run([sys.executable, "setup.py", "build_ext", "-b", str(tmp_path / "lib"),
              "-t", str(tmp_path / "tmp")], tree, 300, CC="/nonexistent/cc")
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "the C compiler /nonexistent/cc does not work" in out, out[-3000:]
    assert "apt-get install gcc" in out and "xcode-select --install" in out
    assert "OpenMP" not in out, "the OpenMP note came before the real error"


def test_unbuilt_source_tree_says_what_to_run(tmp_path):
    root = tmp_path / "checkout"
    shutil.copytree(os.path.join(BUILT, "fastnn"), root / "fastnn", ignore=LEAVE_OUT)
    for pythonpath, hidden in ((None, False), (BUILT, True)):
        env = {} if pythonpath is None else {"PYTHONPATH": pythonpath}
        p = _run([sys.executable, "-c", "import fastnn"], root, 120, **env)
        assert p.returncode != 0
        msg = p.stderr.strip().splitlines()[-1]
        assert msg.startswith("ImportError: fastnn: Python imported the source folder "
                              f"{root / 'fastnn'}"), p.stderr[-2000:]
        assert "the current directory is first on sys.path" in msg
        assert "`fastnn train`" in msg and "`pip install -e .`" in msg
        assert "build_ext --inplace" in msg
        if hidden:                  # without PYTHONPATH it depends on what this venv installed
            assert f"The installed fastnn in {BUILT} is hidden behind it." in msg


@pytest.fixture
def setup_py():
    """setup.py's helpers, imported without running setup()."""
    _need(("Cython", 3), ("setuptools", 77))
    path = os.path.join(ROOT, "setup.py")
    if not os.path.exists(path):
        pytest.skip("not run from a source tree")
    spec = importlib.util.spec_from_file_location("fastnn_setup", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler
    cc = new_compiler()
    customize_compiler(cc)
    if cc.compiler_type != "unix":
        pytest.skip("the probes are tested with a Unix compiler")
    return mod, cc


def test_compiler_probe_names_what_is_missing(setup_py, tmp_path):
    mod, cc = setup_py
    py_include = sysconfig.get_paths()["include"]
    mod.check_compiler(cc, [py_include])                    # this machine builds
    fake = tmp_path / "include"
    fake.mkdir()
    (fake / "Python.h").write_text("#error no Python headers here\n")
    with pytest.raises(Exception, match=r"works but cannot find Python\.h.*python3-dev"):
        mod.check_compiler(cc, [str(fake)])
    cc.set_executables(compiler_so=[str(tmp_path / "no-such-cc")])
    with pytest.raises(Exception, match=r"the C compiler .*no-such-cc does not work.*apt-get install gcc"):
        mod.check_compiler(cc, [py_include])


def test_parallel_compile_builds_every_file_and_reports_errors(setup_py, tmp_path):
    mod, cc = setup_py
    srcs = []
    for i in range(5):
        srcs.append(str(tmp_path / f"f{i}.c"))
        with open(srcs[-1], "w") as f:
            f.write("".join(f"int f{i}_{j}(int x) {{ return x + {j}; }}\n" for j in range(1 + i)))
    mod.compile_in_parallel(cc, 2)
    objs = cc.compile(srcs, output_dir=str(tmp_path / "obj"))
    assert len(objs) == 5 and all(os.path.getsize(o) > 0 for o in objs)
    with open(srcs[2], "a") as f:
        f.write("this is not C\n")
    with pytest.raises(Exception, match=r"f2\.c") as err:        # distutils' CompileError
        cc.compile(srcs, output_dir=str(tmp_path / "obj2"))
    assert type(err.value).__name__ == "CompileError"
