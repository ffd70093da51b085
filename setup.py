"""Build fastnn's extension: the C kernels in csrc/ plus the thin Cython layer.

No -march=native by default: the library picks AVX-512, AVX2+FMA or portable C
kernels at run time (csrc/cpu.c), so one build runs on any CPU of its
architecture. The sources compile in parallel (one job per available core, or
`build_ext -j N`) and without debug information. Environment knobs:
  FASTNN_NATIVE=1     also compile for the building machine's CPU
  FASTNN_DEBUG=1      keep debug information (-g) in the extension
  FASTNN_SANITIZE=address  build with AddressSanitizer (see README)
"""
import os
import shlex
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import PlatformError

INSTALL_CC = ("install a C compiler and the Python headers: `apt-get install gcc python3-dev` "
              "(Debian, Ubuntu), `dnf install gcc python3-devel` (Fedora, RHEL), "
              "`xcode-select --install` (macOS); or set CC to a working compiler")


def try_compile(compiler, src, flags=(), link_flags=None, include_dirs=()):
    """Compile `src` (C text) with `flags`, and link it into an executable if
    `link_flags` is not None. Returns None on success, else the error as text."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        try:
            objs = compiler.compile([path], output_dir=tmp, include_dirs=list(include_dirs),
                                    extra_postargs=list(flags))
            if link_flags is not None:
                compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                         extra_postargs=list(link_flags))
        except Exception as e:  # CompileError, LinkError, DistutilsExecError, OSError
            return str(e) or type(e).__name__
    return None


def check_compiler(compiler, python_include_dirs=()):
    """Stop with a message naming the compiler (and what to install) when it
    cannot compile a trivial C file, or cannot find Python.h."""
    cmd = getattr(compiler, "compiler_so", None) or ["the C compiler"]
    name = shlex.join(cmd[:1]) if isinstance(cmd, list) else str(cmd)
    err = try_compile(compiler, "int main(void) { return 0; }\n")
    if err is not None:
        raise PlatformError(f"fastnn: cannot build: the C compiler {name} does not work "
                            f"(compiling a one-line C file failed: {err}). fastnn's kernels are "
                            f"C, so {INSTALL_CC}.")
    err = try_compile(compiler, "#include <Python.h>\nint main(void) { return 0; }\n",
                      include_dirs=python_include_dirs)
    if err is not None:
        raise PlatformError(f"fastnn: cannot build: the C compiler {name} works but cannot "
                            f"find Python.h ({err}); {INSTALL_CC}.")



def compile_in_parallel(compiler, jobs):
    """Make `compiler.compile` run its sources on `jobs` threads (each runs a
    compiler process), the largest file first so the long ones start early."""
    def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=False,
                extra_preargs=None, extra_postargs=None, depends=None):
        macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)
        todo = sorted((o for o in objects if o in build),
                      key=lambda o: -os.path.getsize(build[o][0]))
        with ThreadPoolExecutor(max(1, min(jobs, len(todo)))) as pool:
            for f in [pool.submit(compiler._compile, o, *build[o], cc_args, extra_postargs,
                                  pp_opts) for o in todo]:
                f.result()          # re-raises the first CompileError
        return objects
    compiler.compile = compile


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class BuildExt(build_ext):
    def build_extensions(self):
        cc = self.compiler
        check_compiler(cc, self.include_dirs)
        if cc.compiler_type == "unix":
            compile_in_parallel(cc, int(self.parallel or available_cores()))
        cflags = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fno-wrapv",
                  "-Wall", "-Wno-unused-function", "-Wno-unknown-pragmas"]
        ldflags = []
        if os.environ.get("FASTNN_NATIVE") == "1":
            cflags.append("-march=native")
        # Threads come from fastnn's own POSIX-thread pool (csrc/parallel.c): no OpenMP.
        cflags.append("-pthread")
        ldflags.append("-pthread")
        san = os.environ.get("FASTNN_SANITIZE")
        if san:
            cflags += [f"-fsanitize={san}", "-fno-omit-frame-pointer", "-g"]
            ldflags += [f"-fsanitize={san}"]
        else:   # Python's own CFLAGS usually carry -g: a 6.3 MB extension instead of 1.6 MB
            cflags.append("-g" if os.environ.get("FASTNN_DEBUG") == "1" else "-g0")
        compiler_name = getattr(cc, "compiler_so", ["cc"])[0]
        for ext in self.extensions:
            ext.extra_compile_args = cflags
            ext.extra_link_args = ldflags
            ext.define_macros += [
                ("FNN_BUILD_CFLAGS", '"%s"' % " ".join(cflags).replace('"', "")),
                ("FNN_BUILD_CC", '"%s"' % os.path.basename(shlex.split(str(compiler_name))[0])),
            ]
        super().build_extensions()


csrc = sorted(glob(os.path.join("csrc", "*.c")))
ext = Extension(
    "fastnn._ext._C",
    sources=[os.path.join("fastnn", "_ext", "_C.pyx")] + csrc,
    include_dirs=["csrc", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=glob(os.path.join("csrc", "*.h")) + glob(os.path.join("fastnn", "_ext", "*.pxi")),
)

if __name__ == "__main__":      # as pip and build run it; tests import the helpers above
    setup(
        ext_modules=cythonize([ext], language_level=3,
                              compiler_directives={"boundscheck": False, "wraparound": False,
                                                   "initializedcheck": False, "cdivision": True}),
        cmdclass={"build_ext": BuildExt},
    )
