"""Character-level language model on Tiny Shakespeare (Karpathy's char-rnn
setup): Embedding, a 2-layer LSTM with dropout between the layers, dropout,
Linear to the 65 characters; truncated backpropagation through time over
contiguous batch streams; Adam with gradient-norm clipping.

    python examples/char_lm.py [../shared/data/tinyshakespeare/input.txt] --time-budget 30

With these defaults (hidden 512, batch 64, 64 steps, Adam lr 2e-3, clipping
at norm 1, 30 minutes) the recorded run on the 2-core Intel Xeon reached a
validation loss of 1.450 nats per character (2.092 bits) after 13.5 epochs
(bench/RESULTS.md, bench/rnn/char_lm_curve.json).

The data: the text is encoded as character indices; the first 90% trains,
the last 10% validates. Each part is cut into B parallel streams (stream b is
the b-th contiguous 1/B of the text) laid side by side, so the chunk of
seq_len steps at time i of every stream continues the chunk at time i-1: the
LSTM state (h, c) is carried from one batch to the next and only the
gradient is cut at the chunk boundary (truncated BPTT; the state starts at
zero each epoch). Validation runs the same way over the held-out 10% in
eval mode under fastnn.no_grad() (no dropout, nothing saved).

Stops after --epochs epochs or when --time-budget minutes of training have
passed, whichever comes first (the budget counts the training steps and the
periodic validations; the final validation and the sample come after it).
The learning rate follows a cosine from --lr to --lr/20 over the run's
progress (the larger of elapsed / budget and step / total steps).

Prints a progress line every --log-every steps and a validation line every
--eval-every steps: loss in nats per character and in bits per character
(bpc = nats / ln 2). Finally prints the validation loss, a sample generated
with --temperature, and writes --curve (JSON, and a PNG beside it if
matplotlib is installed) and --record (for bench/RESULTS.md).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

import fastnn
from fastnn import nn, optim

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare", "input.txt")
LN2 = math.log(2.0)


# ------------------------------------------------------------------ data --

def load_text(path):
    """The text file as a str (UTF-8)."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


class Vocab:
    """The characters of a text, sorted; encode/decode between str and int32 indices."""

    def __init__(self, text_or_chars):
        self.chars = sorted(set(text_or_chars))
        if not self.chars:
            raise ValueError("Vocab: empty text")
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        try:
            return np.fromiter((self.index[ch] for ch in text), dtype=np.int32, count=len(text))
        except KeyError as e:
            raise ValueError(f"Vocab.encode: character {e.args[0]!r} is not in the vocabulary") \
                from None

    def decode(self, idx):
        return "".join(self.chars[int(i)] for i in np.asarray(idx).reshape(-1))


def split_train_val(data, val_fraction=0.1):
    """(train, val): the first 1 - val_fraction of the sequence and the last val_fraction."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = int(len(data) * val_fraction)
    if n_val < 2 or len(data) - n_val < 2:
        raise ValueError(f"a text of {len(data)} characters is too short to split "
                         f"with val_fraction={val_fraction}")
    return data[:len(data) - n_val], data[len(data) - n_val:]


def batch_streams(data, batch_size):
    """(L, B) array: column b is the b-th of B equal contiguous pieces of data
    (the tail that does not divide evenly is dropped), so row t+1 continues
    row t in every column (the layout of char-rnn and PyTorch's
    word_language_model example)."""
    L = len(data) // batch_size
    if L < 2:
        raise ValueError(f"{len(data)} characters are too few for {batch_size} streams "
                         f"(each needs at least 2)")
    return np.ascontiguousarray(np.asarray(data[:L * batch_size]).reshape(batch_size, L).T)


def chunks(streams, seq_len):
    """Yield (x, y), each (T, B) with T <= seq_len: x = streams[i:i+T], y the
    next characters streams[i+1:i+T+1], for i = 0, seq_len, 2 seq_len, ...
    (the last chunk may be shorter). Consecutive chunks continue each other."""
    L = streams.shape[0]
    for i in range(0, L - 1, seq_len):
        T = min(seq_len, L - 1 - i)
        yield streams[i:i + T], streams[i + 1:i + 1 + T]


def num_chunks(streams, seq_len):
    return -(-(streams.shape[0] - 1) // seq_len)


# ----------------------------------------------------------------- model --

@fastnn.io.register_module
class CharLSTM(nn.Module):
    """Embedding -> LSTM(num_layers, dropout between layers) -> Dropout ->
    Linear(vocab). forward(idx (T, B), state=None) returns (logits (T*B, V),
    state (h_n, c_n)); backward(dL/dlogits) runs back through the chunk only
    (the incoming state is treated as a constant: truncated BPTT)."""

    def __init__(self, vocab_size, embed_dim=64, hidden_size=512, num_layers=2, dropout=0.2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx, state=None):
        T, B = idx.shape
        out, state = self.lstm(self.embed(idx), state)
        logits = self.head(self.drop(out.reshape(T * B, -1)))
        self.save_for_backward(out.shape)
        return logits, state

    def backward(self, grad_logits):
        shape, = self.saved_tensors()
        g = self.drop.backward(self.head.backward(grad_logits))
        g = self.lstm.backward(g.reshape(shape))
        if isinstance(g, tuple):             # forward was given a state: (dx, d state), dropped
            g = g[0]
        self.embed.backward(g)
        return None                          # character indices have no gradient


def evaluate(model, streams, seq_len, loss_fn):
    """Mean loss (nats per character) over the streams, the state carried
    across chunks, in eval mode under no_grad."""
    was = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        with fastnn.no_grad():
            for x, y in chunks(streams, seq_len):
                logits, state = model(x, state)
                total += loss_fn(logits, y.reshape(-1)) * y.size
                count += y.size
    finally:
        model.train(was)
    return total / count


def sample(model, vocab, n, temperature=0.8, prime="\n", seed=0):
    """n characters generated after `prime`, each drawn from
    softmax(logits / temperature) (temperature -> 0: greedy)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rng = np.random.default_rng(seed)
    was = model.training
    model.eval()
    out = []
    try:
        with fastnn.no_grad():
            idx = vocab.encode(prime).reshape(-1, 1)
            logits, state = model(idx, None)
            for _ in range(n):
                z = logits[-1].astype(np.float64) / temperature
                p = np.exp(z - z.max())
                p /= p.sum()
                ch = int(rng.choice(len(p), p=p))
                out.append(ch)
                logits, state = model(np.array([[ch]], np.int32), state)
    finally:
        model.train(was)
    return prime + vocab.decode(out)


# ------------------------------------------------------------ training --

def cosine_lr(lr, progress, final_fraction=0.05):
    progress = min(max(progress, 0.0), 1.0)
    return lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(args, text=None, log=print):
    """The whole run; returns a dict of results (also written by --record/--curve)."""
    if args.threads:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)
    if text is None:
        text = load_text(args.data)
    if args.text_chars:
        text = text[:args.text_chars]
    vocab = Vocab(text)
    data = vocab.encode(text)
    train_data, val_data = split_train_val(data, args.val_fraction)
    tr = batch_streams(train_data, args.batch_size)
    va = batch_streams(val_data, min(args.batch_size, len(val_data) // (args.seq_len + 1)) or 1)
    model = CharLSTM(len(vocab), args.embed, args.hidden, args.layers, args.dropout)
    params = model.parameters()
    opt = optim.Adam(params, lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = num_chunks(tr, args.seq_len)
    budget = args.time_budget * 60.0 if args.time_budget else math.inf
    epochs = args.epochs if args.epochs else (1 << 30)
    total_steps = steps_per_epoch * epochs if args.epochs else None
    info = fastnn.info()
    log(f"fastnn {info['version']} on {info['cpu']} ({info['isa']}, {info['num_threads']} threads); "
        f"{len(text)} characters, vocabulary {len(vocab)}; train {len(train_data)} as "
        f"{args.batch_size} streams of {tr.shape[0]}, val {len(val_data)}; "
        f"{steps_per_epoch} steps of {args.seq_len} per epoch; "
        f"{model.num_parameters()} parameters")
    from fastnn.benchmark.machine import git_revision
    commit = git_revision(branch=False)      # the code this run started from
    v0 = evaluate(model, va, args.seq_len, loss_fn)
    log(f"  validation loss {v0:.4f} nats/char ({v0 / LN2:.3f} bpc) before training "
        f"(uniform: ln {len(vocab)} = {math.log(len(vocab)):.4f})")
    curve = [{"step": 0, "epoch": 0, "chars": 0, "seconds": 0.0, "train_loss": None,
              "val_loss": v0, "grad_norm_median": None, "grad_norm_max": None}]
    t0 = time.perf_counter()
    step, chars, epoch, stop = 0, 0, 0, False
    run_loss, run_n, t_log, c_log = 0.0, 0, t0, 0
    win_loss, win_n, train_curve = 0.0, 0, []
    norms = []
    while not stop and epoch < epochs:
        epoch += 1
        state = None
        for x, y in chunks(tr, args.seq_len):
            elapsed = time.perf_counter() - t0
            progress = elapsed / budget
            if total_steps:
                progress = max(progress, step / total_steps)
            for g in opt.param_groups:
                g["lr"] = cosine_lr(args.lr, progress)
            logits, state = model(x, state)          # the state of the previous chunk, detached:
            lval = loss_fn(logits, y.reshape(-1))    # backward stops at this chunk's start
            if not math.isfinite(lval):
                raise FloatingPointError(f"loss became {lval} at step {step + 1}")
            opt.zero_grad()
            model.backward(loss_fn.backward())
            norms.append(nn.utils.clip_grad_norm_(params, args.clip))
            opt.step()
            step += 1
            chars += y.size
            run_loss += lval * y.size
            run_n += y.size
            win_loss += lval * y.size
            win_n += y.size
            now = time.perf_counter()
            last = now - t0 >= budget or (total_steps is not None and step >= total_steps)
            if step % args.log_every == 0 or last:
                rate = (chars - c_log) / (now - t_log)
                wl = win_loss / win_n
                train_curve.append({"step": step, "chars": chars, "seconds": now - t0,
                                    "loss": wl, "lr": opt.param_groups[0]["lr"]})
                log(f"epoch {epoch} step {step}/{steps_per_epoch * epoch}  loss {wl:.4f} "
                    f"({wl / LN2:.3f} bpc)  grad norm {np.median(norms[-args.log_every:]):.2f} "
                    f"(max {max(norms[-args.log_every:]):.2f}, clip {args.clip})  lr {opt.param_groups[0]['lr']:.2e}  "
                    f"{rate:.0f} chars/s  {now - t0:.0f} s")
                t_log, c_log = now, chars
                win_loss, win_n = 0.0, 0
            if step % args.eval_every == 0 and not last:
                vl = evaluate(model, va, args.seq_len, loss_fn)
                log(f"  validation loss {vl:.4f} nats/char ({vl / LN2:.3f} bpc) at step {step}, "
                    f"{time.perf_counter() - t0:.0f} s")
                curve.append({"step": step, "epoch": epoch, "chars": chars,
                              "seconds": time.perf_counter() - t0,
                              "train_loss": run_loss / run_n, "val_loss": vl,
                              "grad_norm_median": float(np.median(norms)),
                              "grad_norm_max": float(max(norms))})
                run_loss, run_n, norms = 0.0, 0, []
            if last:
                stop = True
                break
    train_seconds = time.perf_counter() - t0
    vl = evaluate(model, va, args.seq_len, loss_fn)
    curve.append({"step": step, "epoch": epoch, "chars": chars, "seconds": train_seconds,
                  "train_loss": run_loss / max(run_n, 1), "val_loss": vl,
                  "grad_norm_median": float(np.median(norms)) if norms else None,
                  "grad_norm_max": float(max(norms)) if norms else None})
    prime = args.prime or ("\n" if "\n" in vocab.index else text[0])
    text_sample = sample(model, vocab, args.sample_chars, args.temperature, prime, args.seed)
    res = {"val_loss": vl, "val_bpc": vl / LN2, "steps": step, "epochs": step / steps_per_epoch,
           "train_seconds": train_seconds, "chars_per_second": chars / train_seconds,
           "sample": text_sample, "curve": curve, "train_curve": train_curve}
    log(f"final validation loss {vl:.4f} nats/char ({vl / LN2:.3f} bpc) after {step} steps "
        f"({step / steps_per_epoch:.2f} epochs, {chars} characters) in {train_seconds:.0f} s "
        f"of training ({chars / train_seconds:.0f} chars/s)")
    log(f"sample (temperature {args.temperature}):\n{text_sample}")
    settings = {k: getattr(args, k) for k in ("hidden", "layers", "embed", "dropout", "batch_size",
                                              "seq_len", "lr", "clip", "time_budget", "epochs",
                                              "seed", "temperature")}
    if args.curve:
        write_curve(args.curve, res, settings, log)
    if args.save:
        fastnn.save(model, args.save, optimizer=opt)
        log(f"saved {args.save}")
    if args.record:
        from fastnn.benchmark.record import write_record
        write_record(args.record, f"char LM, Tiny Shakespeare: {args.layers}-layer LSTM-{args.hidden}",
                     None, round(res["epochs"], 2), train_seconds,
                     goal=args.goal,
                     result=f"val loss {vl:.3f} nats/char ({vl / LN2:.3f} bpc)",
                     extra={"git_commit": commit, "val_loss_nats": vl, "val_bpc": vl / LN2, "steps": step,
                            "chars_per_second": res["chars_per_second"], "settings": settings,
                            "curve": os.path.relpath(args.curve) if args.curve else None})
    return res


def write_curve(path, res, settings, log=print):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"settings": settings, "val_loss": res["val_loss"], "val_bpc": res["val_bpc"],
                   "train_seconds": res["train_seconds"], "curve": res["curve"],
                   "train_curve": res["train_curve"],
                   "sample": res["sample"]}, f, indent=1)
    log(f"wrote {path}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot")
        return
    c = res["curve"]
    mins = [p["seconds"] / 60 for p in c]
    fig, ax = plt.subplots(figsize=(6, 4))
    tc = res["train_curve"]
    ax.plot([p["seconds"] / 60 for p in tc], [p["loss"] for p in tc], lw=1,
            label="train (mean over each --log-every steps)")
    ax.plot(mins, [p["val_loss"] for p in c], marker="o", label="validation")
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("loss (nats per character)")
    ax.set_title(f"char LM, Tiny Shakespeare: {settings['layers']}x LSTM-{settings['hidden']}")
    ax.grid(alpha=0.3)
    ax.legend()
    png = os.path.splitext(path)[0] + ".png"
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    log(f"wrote {png}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", default=os.path.relpath(DEFAULT_DATA),
                   help="the text file (default: %(default)s)")
    p.add_argument("--time-budget", type=float, default=30.0, metavar="MIN",
                   help="stop after this many minutes of training (0: no limit; default %(default)s)")
    p.add_argument("--epochs", type=int, default=0, help="stop after this many epochs (0: no limit)")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm (default %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--text-chars", type=int, default=0, metavar="N",
                   help="use only the first N characters of the text (a quick try)")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--sample-chars", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--prime", default=None, help="the text the sample starts from (default: a newline)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curve", default=None, metavar="PATH", help="write the loss curve as JSON (+ PNG)")
    p.add_argument("--save", default=None, metavar="PATH", help="save the model and optimizer at the end")
    p.add_argument("--record", default=None, metavar="PATH",
                   help="write the result as JSON for bench/RESULTS.md (bench/accuracy/...)")
    p.add_argument("--goal", default="<= 1.60 nats/char in 30 min")
    args = p.parse_args(argv)
    if not args.time_budget and not args.epochs:
        p.error("give --time-budget or --epochs (or both)")
    for name in ("hidden", "layers", "embed", "batch_size", "seq_len", "log_every", "eval_every"):
        if getattr(args, name) < 1:
            p.error(f"argument --{name.replace('_', '-')}: must be >= 1")
    if args.temperature <= 0:
        p.error("argument --temperature: must be > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if not os.path.exists(args.data):
        print(f"char_lm.py: no such file: {args.data} (Tiny Shakespeare's input.txt)", file=sys.stderr)
        return None
    return train(args, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
