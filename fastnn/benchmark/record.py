"""Write an accuracy-run record (JSON) that the benchmark report renders in
its "Accuracy runs" table: what the run measured, never typed by hand."""
import json
import os
import shlex
import sys
import time

import fastnn


def write_record(path, name, test_error_pct, epochs, wall_seconds, goal=""):
    info = fastnn.info()
    rec = {"name": name, "test_error_pct": float(test_error_pct), "goal": goal,
           "epochs": int(epochs), "wall_seconds": float(wall_seconds),
           "seconds_per_epoch": float(wall_seconds) / max(1, int(epochs)),
           "threads": info["num_threads"], "isa": info["isa"], "cpu": info["cpu"],
           "fastnn": info["version"], "date": time.strftime("%Y-%m-%d"),
           "command": "python " + " ".join(shlex.quote(a) for a in
                                           ([os.path.relpath(sys.argv[0])] if not
                                            sys.argv[0].endswith("__main__.py") else ["-m", "fastnn"])
                                           + sys.argv[1:])}
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump(rec, f, indent=1)
    return rec
