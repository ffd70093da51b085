"""Command line: python -m fastnn {info,train,bench}."""
import json
import sys


def _info(argv):
    import argparse
    p = argparse.ArgumentParser(prog="python -m fastnn info",
                                description="Version, CPU, kernel path, threads and build flags.")
    p.add_argument("--json", action="store_true", help="print as JSON")
    args = p.parse_args(argv)
    import fastnn
    d = fastnn.info()
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    width = max(len(k) for k in d)
    for k, v in d.items():
        print(f"{k:<{width}}  {v}")
    return 0


def _train(argv):
    from .cli import train_main
    return train_main(argv)


def _bench(argv):
    from .benchmark import main as bench_main
    return bench_main(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"info": _info, "train": _train, "bench": _bench}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: python -m fastnn {%s} [options]" % ",".join(commands), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return commands[argv[0]](argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
