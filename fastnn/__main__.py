"""Command line: ``fastnn {info,train,bench}`` (or ``python -m fastnn ...``)."""
import argparse
import json
import os
import sys

COMMANDS = {
    "info": "print the version, CPU, instruction-set path, threads and build flags",
    "train": "train an MLP or a CNN on the bundled digits, MNIST or any IDX data set; test accuracy",
    "bench": "time fastnn's kernels and training steps side by side with numpy and PyTorch",
}


def _prog():
    """What the user typed: 'python -m fastnn' or the console script's name."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m fastnn" if name in ("", "-c", "__main__.py") else name


def build_parser(prog):
    from . import __version__
    width = max(map(len, COMMANDS))
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"%(prog)s [-h] [--version] {{{','.join(COMMANDS)}}} [options]",
        description="fastnn: fast CPU neural-network training (C kernels under a small "
                    "PyTorch-flavoured numpy API).\n\ncommands:\n"
                    + "\n".join(f"  {c:<{width}}  {h}" for c, h in COMMANDS.items()),
        epilog=f"'{prog} COMMAND --help' lists a command's options. Examples:\n"
               f"  {prog} train                       # the bundled digits, in seconds\n"
               f"  {prog} train --dataset mnist --data-dir DIR --optimizer adam --epochs 20\n"
               f"  {prog} info\n"
               f"  {prog} bench --quick")
    p.add_argument("--version", action="version", version=f"fastnn {__version__}")
    p.add_argument("command", choices=list(COMMANDS), metavar="COMMAND",
                   help=argparse.SUPPRESS)
    return p


def _info(argv, prog):
    p = argparse.ArgumentParser(prog=prog, description=COMMANDS["info"].capitalize() + ".")
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


def _train(argv, prog):
    from .cli import train_main
    return train_main(argv, prog=prog)


def _bench(argv, prog):
    from .benchmark import main as bench_main
    return bench_main(argv, prog=prog)


def _run(argv):
    prog = _prog()
    if argv and argv[0] in COMMANDS:
        run = {"info": _info, "train": _train, "bench": _bench}[argv[0]]
        return run(argv[1:], f"{prog} {argv[0]}") or 0
    parser = build_parser(prog)
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    parser.parse_args(argv[:1])      # exits: help, version, or a usage error (status 2)
    return 2


def main(argv=None):
    """Entry point of ``python -m fastnn`` and the ``fastnn`` console script;
    returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        status = _run(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader went away (e.g. `fastnn bench --list | head`): stop quietly, as
        # Python's documentation recommends, with the status of a process that
        # SIGPIPE ended (128 + 13). Point stdout at devnull so the interpreter's
        # final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
