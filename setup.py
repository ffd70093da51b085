"""Build fastnn's extension: the C kernels in csrc/ plus the thin Cython layer.

No -march=native by default: the library picks AVX-512, AVX2+FMA or portable C
kernels at run time (csrc/cpu.c), so one build runs on any CPU of its
architecture. Environment knobs:
  FASTNN_NATIVE=1     also compile for the building machine's CPU
  FASTNN_NO_OPENMP=1  build single-threaded even if the compiler has OpenMP
  FASTNN_SANITIZE=address  build with AddressSanitizer (see README)
"""
import os
import shlex
import sys
import tempfile
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def compiler_accepts(compiler, flags, link_flags=()):
    """Compile and link a tiny OpenMP program with `flags`; True on success."""
    src = '#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn omp_get_max_threads()>0&&n>0?0:1;}\n'
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        try:
            objs = compiler.compile([path], output_dir=tmp, extra_postargs=list(flags))
            compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                     extra_postargs=list(link_flags))
            return True
        except Exception:
            return False


class BuildExt(build_ext):
    def build_extensions(self):
        cc = self.compiler
        cflags = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fno-wrapv",
                  "-Wall", "-Wno-unused-function", "-Wno-unknown-pragmas"]
        ldflags = []
        if os.environ.get("FASTNN_NATIVE") == "1":
            cflags.append("-march=native")
        openmp = False
        if os.environ.get("FASTNN_NO_OPENMP") != "1":
            for cf, lf in ((["-fopenmp"], ["-fopenmp"]),
                           (["-Xpreprocessor", "-fopenmp"], ["-lomp"])):
                if compiler_accepts(cc, cf, lf):
                    cflags += cf
                    ldflags += lf
                    openmp = True
                    break
        if not openmp:
            print("fastnn: the compiler has no OpenMP; building single-threaded",
                  file=sys.stderr)
        san = os.environ.get("FASTNN_SANITIZE")
        if san:
            cflags += [f"-fsanitize={san}", "-fno-omit-frame-pointer", "-g"]
            ldflags += [f"-fsanitize={san}"]
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

setup(
    ext_modules=cythonize([ext], language_level=3,
                          compiler_directives={"boundscheck": False, "wraparound": False,
                                               "initializedcheck": False, "cdivision": True}),
    cmdclass={"build_ext": BuildExt},
)
