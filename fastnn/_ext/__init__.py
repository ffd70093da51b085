"""The compiled extension, fastnn._ext._C (the C kernels under Cython).

Importing it here turns the most common first-contact failure, Python picking
up an unbuilt source checkout instead of the installed package, into a message
that says what happened and what to run."""


def _unbuilt_message():
    """The explanation when this folder holds no _C built for this Python, else None."""
    import os
    import sys
    from importlib.machinery import EXTENSION_SUFFIXES, PathFinder

    here = os.path.dirname(os.path.abspath(__file__))
    if any(os.path.exists(os.path.join(here, "_C" + s)) for s in EXTENSION_SUFFIXES):
        return None                 # built for this Python but broken: the real error says why
    pkg = os.path.dirname(here)
    root = os.path.dirname(pkg)
    why = ("the current directory is first on sys.path (`python -m ...` and `python -c ...` "
           "put it there)" if os.path.abspath(os.getcwd()) == root
           else f"{root} is on sys.path ahead of any installed fastnn")
    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != root]
    installed = PathFinder.find_spec("fastnn", others)
    hidden = (f" The installed fastnn in {os.path.dirname(os.path.dirname(installed.origin))}"
              " is hidden behind it." if installed is not None and installed.origin else "")
    return (f"fastnn: Python imported the source folder {pkg}, whose C extension fastnn._ext._C "
            f"is not built there (no _C{EXTENSION_SUFFIXES[0]}), because {why}.{hidden} "
            "Either run from another directory, or use the `fastnn` command that "
            "`pip install .` puts on PATH (e.g. `fastnn train`), or build this checkout in "
            "place: `pip install -e .` (or `python setup.py build_ext --inplace`).")


try:
    from . import _C  # noqa: F401
except ImportError as exc:
    _msg = _unbuilt_message()
    if _msg is None:
        raise
    raise ImportError(_msg) from exc
