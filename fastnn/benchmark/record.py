"""Write an accuracy-run record (JSON) that the benchmark report renders in
its "Accuracy runs" table: what the run measured, never typed by hand."""
import json
import os
import shlex
import sys
import time

import fastnn

from .machine import git_revision


def write_record(path, name, test_error_pct, epochs, wall_seconds, goal="", result=None,
                 extra=None):
    """test_error_pct: the final test error in percent, or None for a run
    measured otherwise (a language model's loss), which then gives `result`,
    the text the report shows in its place. extra: more JSON fields."""
    if test_error_pct is None and not result:
        raise ValueError("write_record: give test_error_pct or result")
    info = fastnn.info()
    rec = {"name": name, "test_error_pct": None if test_error_pct is None else float(test_error_pct),
           "goal": goal,
           "epochs": int(epochs) if float(epochs).is_integer() else float(epochs),
           "wall_seconds": float(wall_seconds),
           "seconds_per_epoch": float(wall_seconds) / (epochs if epochs > 0 else 1),
           "threads": info["num_threads"], "isa": info["isa"], "cpu": info["cpu"],
           "fastnn": info["version"], "date": time.strftime("%Y-%m-%d"),
           "command": "python " + " ".join(shlex.quote(a) for a in
                                           ([os.path.relpath(sys.argv[0])] if not
                                            sys.argv[0].endswith("__main__.py") else ["-m", "fastnn"])
                                           + sys.argv[1:])}
    commit = git_revision(branch=False)
    if commit:
        rec["git_commit"] = commit
    if result:
        rec["result"] = str(result)
    rec.update(extra or {})
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump(rec, f, indent=1)
    return rec

