"""Times training epochs of pmixer's PyTorch SASRec; runs INSIDE a peer virtualenv with torch.

Started by `benchmarks/sasrec_pytorch_peer.py` (never imported by tf-attnrec): it needs
`torch`, which lives only in the peer virtualenv, and pmixer/SASRec.pytorch's `model.py` and
`utils.py`, imported from `--peer-src` (a checkout: `git clone
https://github.com/pmixer/SASRec.pytorch`; the benchmark's docstring names the commits used).
Peer code is never copied into this repository.

It trains pmixer's `SASRec` as pmixer's `main.py` training loop does, step for step: its
`data_partition` (leave-one-out: the last two items of a user with 3 or more are held out),
`num_batch = len(user_train) // batch_size` steps per epoch (the tail is dropped), its
`WarpSampler` with `n_workers=3` (users drawn with replacement, one uniformly sampled
negative per position that is not in the user's training items), Xavier-normal initialisation
of every parameter that takes it, `BCEWithLogitsLoss` on the positive and negative logits of
the non-padded positions, `l2_emb * torch.norm(...)` over the item embedding added to the loss
(computed even at `l2_emb` 0, as pmixer does), and `Adam(lr, betas=(0.9, 0.98))`. Differences,
none of which is inside the timed training step:

* no evaluation, and no `<dataset>_<train_dir>/` folder (args.txt, log.txt, final `.pth`);
* the per-step loss is read with `loss.item()` as pmixer does, but not printed: stdout is
  this script's JSON report;
* `data_partition` reads `data/<name>.txt` relative to the working directory, so the data
  file is linked into a temporary `data/` folder and the partition runs there;
* NumPy's and torch's global RNGs are seeded (`--seed`; pmixer seeds nothing), which fixes
  the sampler workers' seeds (drawn from NumPy's global RNG) and the initialisation;
* `torch.set_num_threads(--threads)` (pmixer leaves torch's default).

Usage:

    <venv>/bin/python benchmarks/peers/sasrec_pytorch_driver.py --peer-src DIR \\
        --data ../shared/data/ml-1m/ml-1m.txt [--epochs 2] [--warmup-epochs 1] [--threads 2] \\
        [--maxlen 200] [--hidden-units 50] [--num-blocks 2] [--num-heads 1] \\
        [--dropout-rate 0.2] [--batch-size 128] [--lr 0.001] [--l2-emb 0.0] [--seed 0]

The last line of stdout is one JSON object (`REPORT_KEYS`): `seconds_per_epoch` lists the
timed epochs (each from its first `next_batch()` to its last optimizer step, the sampler's
waits included), `warmup_seconds_per_epoch` the untimed ones before them.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

PEER = "pmixer/SASRec.pytorch"
PEER_FILES = ("model.py", "utils.py")
SAMPLER_WORKERS = 3  # pmixer's main.py: WarpSampler(..., n_workers=3)
ADAM_BETAS = (0.9, 0.98)  # pmixer's main.py
# What the JSON report holds; `benchmarks/sasrec_pytorch_peer.py` checks for these keys.
REPORT_KEYS = ("peer", "seconds_per_epoch", "warmup_seconds_per_epoch", "steps_per_epoch",
               "sequences_per_epoch", "threads", "torch_version", "config", "last_loss")


def import_peer(peer_src: pathlib.Path):
    """pmixer's `model` and `utils` modules, imported from the checkout `peer_src`."""
    missing = [name for name in PEER_FILES if not (peer_src / name).is_file()]
    if missing:
        raise SystemExit(
            f"--peer-src {peer_src}: expected a checkout of {PEER} (git clone "
            f"https://github.com/pmixer/SASRec.pytorch) with {', '.join(PEER_FILES)} at its root; "
            f"missing {', '.join(missing)}."
        )
    sys.path.insert(0, str(peer_src))  # first: the peer's generic names `model` / `utils` win
    import model as peer_model  # noqa: E402
    import utils as peer_utils  # noqa: E402

    return peer_model, peer_utils


def partition(peer_utils, data: pathlib.Path):
    """pmixer's `data_partition` on `data`: it opens `data/<name>.txt` under the working directory."""
    if not data.is_file():
        raise SystemExit(f"--data {data}: expected a SASRec-form text file (lines 'user item'), not found.")
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="sasrec-pytorch-data-") as folder:
        (pathlib.Path(folder) / "data").mkdir()
        (pathlib.Path(folder) / "data" / data.name).symlink_to(data.resolve())
        os.chdir(folder)
        try:
            return peer_utils.data_partition(data.name[: -len(".txt")] if data.name.endswith(".txt") else data.name)
        finally:
            os.chdir(previous)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-src", required=True, type=pathlib.Path, help=f"a checkout of {PEER}")
    parser.add_argument("--data", required=True, type=pathlib.Path, help="SASRec-form 'user item' text file")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--maxlen", type=int, default=200)
    parser.add_argument("--hidden-units", type=int, default=50)
    parser.add_argument("--num-blocks", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=1)
    parser.add_argument("--dropout-rate", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--l2-emb", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.warmup_epochs < 0 or args.threads < 1:
        parser.error("--epochs and --threads must be >= 1, --warmup-epochs >= 0.")

    import numpy as np
    import torch

    peer_model, peer_utils = import_peer(args.peer_src)
    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    dataset = partition(peer_utils, args.data)
    user_train, _, _, usernum, itemnum = dataset
    num_batch = len(user_train) // args.batch_size
    if num_batch < 1:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than the {len(user_train)} users: "
                         "pmixer's main.py would train 0 steps per epoch.")
    # The attributes pmixer's SASRec reads from main.py's argparse namespace (norm_first: later versions).
    model_args = argparse.Namespace(device="cpu", hidden_units=args.hidden_units, maxlen=args.maxlen,
                                    num_blocks=args.num_blocks, num_heads=args.num_heads,
                                    dropout_rate=args.dropout_rate, norm_first=False)

    sampler = peer_utils.WarpSampler(user_train, usernum, itemnum, batch_size=args.batch_size,
                                     maxlen=args.maxlen, n_workers=SAMPLER_WORKERS)
    try:
        model = peer_model.SASRec(usernum, itemnum, model_args).to(model_args.device)
        for _, param in model.named_parameters():
            try:
                torch.nn.init.xavier_normal_(param.data)
            except ValueError:  # pmixer: `except: pass` (1-D tensors have no fan-in / fan-out)
                pass
        model.train()
        bce_criterion = torch.nn.BCEWithLogitsLoss()
        adam_optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=ADAM_BETAS)

        epoch_seconds, loss_value = [], float("nan")
        for _ in range(args.warmup_epochs + args.epochs):
            start = time.perf_counter()
            for _ in range(num_batch):
                u, seq, pos, neg = sampler.next_batch()
                u, seq, pos, neg = np.array(u), np.array(seq), np.array(pos), np.array(neg)
                pos_logits, neg_logits = model(u, seq, pos, neg)
                pos_labels = torch.ones(pos_logits.shape, device=model_args.device)
                neg_labels = torch.zeros(neg_logits.shape, device=model_args.device)
                adam_optimizer.zero_grad()
                indices = np.where(pos != 0)
                loss = bce_criterion(pos_logits[indices], pos_labels[indices])
                loss += bce_criterion(neg_logits[indices], neg_labels[indices])
                for param in model.item_emb.parameters():
                    loss += args.l2_emb * torch.norm(param)
                loss.backward()
                adam_optimizer.step()
                loss_value = loss.item()  # pmixer prints it every step
            epoch_seconds.append(time.perf_counter() - start)
    finally:
        sampler.close()

    report = {
        "peer": PEER,
        "seconds_per_epoch": epoch_seconds[args.warmup_epochs:],
        "warmup_seconds_per_epoch": epoch_seconds[: args.warmup_epochs],
        "steps_per_epoch": num_batch,
        "sequences_per_epoch": num_batch * args.batch_size,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "config": {"maxlen": args.maxlen, "hidden_units": args.hidden_units, "num_blocks": args.num_blocks,
                   "num_heads": args.num_heads, "dropout_rate": args.dropout_rate, "batch_size": args.batch_size,
                   "lr": args.lr, "adam_betas": list(ADAM_BETAS), "l2_emb": args.l2_emb,
                   "sampler_workers": SAMPLER_WORKERS, "users": len(user_train), "items": itemnum},
        "last_loss": loss_value,
        "python": platform.python_version(),
    }
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
