"""Teacher-forced training of a CompositionLM: masked cross-entropy, Adam, early stopping on a
validation split carved (seeded) from the training compositions, optional checkpoints.

With a ``run_dir`` every epoch leaves ``last/`` (network, optimizer state, epoch and the
early-stopping state), ``best/`` (the best network by validation loss) and ``log.csv``
(epoch, losses, seconds, plus whatever ``evaluate`` returns); each is written to a temporary
name and renamed. ``resume=True`` continues at the saved epoch with the saved optimizer
state, and gives the same result as an uninterrupted run because each epoch's shuffle is
seeded by (seed, epoch). ``budget_s`` stops after the epoch that exhausts the wall-clock
budget (a resumable stop, not an early stop).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from discovery.atomic import atomic_write, recover_dir, replace_dir, staging_dir
from discovery.generation.lm_tokens import GRAMMAR, PAD, counts_to_tokens


def masked_logits(logits: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Grammar-masked next-token logits for inputs x [B, T]: step t follows token x[t-1]."""
    steps = tf.range(tf.shape(x)[1])
    prev = tf.pad(x[:, :-1], [[0, 0], [1, 0]], constant_values=PAD)
    idx = tf.stack([tf.broadcast_to(steps[None], tf.shape(x)), prev], axis=-1)
    allowed = tf.gather_nd(tf.constant(GRAMMAR), idx)
    return tf.where(allowed, logits, -1e9)


def sequence_loss(model, tokens: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """(sum of token cross-entropies, number of target tokens) of token sequences [B, L]."""
    x, y = tokens[:, :-1], tokens[:, 1:]
    logits = masked_logits(model(x, training=training), x)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    w = tf.cast(y != PAD, ce.dtype)
    return tf.reduce_sum(ce * w), tf.reduce_sum(w)


def _atomic_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=float) + "\n"))


def _save_dir(lm, path: Path, optimizer=None, state: dict | None = None) -> None:
    """Write a checkpoint folder whole: staged, ``state.json`` last, then swapped in
    (``atomic.replace_dir``; a kill in between is repaired on resume)."""
    tmp = staging_dir(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lm.model.save(tmp / "model.keras")
    if optimizer is not None:
        np.savez(tmp / "optimizer.npz", *[v.numpy() for v in optimizer.variables])
    _atomic_json(tmp / "state.json", state or {})
    replace_dir(path, "state.json")


def _write_log(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def write(p: Path) -> None:
        with p.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def split_train_val(counts: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, early-stopping validation) rows, at least one row in each; a single
    composition is both (nothing to hold out)."""
    if len(counts) < 2:
        return counts, counts
    perm = np.random.default_rng([seed, 7]).permutation(len(counts))
    n_val = min(max(1, int(round(fraction * len(counts)))), len(counts) - 1)
    return counts[np.sort(perm[n_val:])], counts[np.sort(perm[:n_val])]


def train(lm, counts: np.ndarray, seed: int = 0, data_name: str = "counts", run_dir: Path | str | None = None,
          resume: bool = False, budget_s: float | None = None,
          evaluate: Callable[[object], dict] | None = None, log: Callable[[str], None] | None = None,
          init_from: Path | str | None = None) -> dict:
    """Fit ``lm`` (a CompositionLM) on unique count vectors [N, 85]; returns the training summary
    (also stored in ``lm.card['training']``). The best network by validation loss is kept.
    ``init_from`` (a ``.keras`` file of the same architecture) starts from pretrained weights,
    e.g. fine-tuning on MP a network trained on the union."""
    import keras

    from discovery.generation.training import counts_sha256

    hp = lm.hparams
    tr, va = split_train_val(counts, hp["val_fraction"], seed)
    tok_tr, tok_va = counts_to_tokens(tr), counts_to_tokens(va)
    run = Path(run_dir) if run_dir is not None else None
    lm.build(seed)
    if init_from is not None:
        lm.model.set_weights(keras.models.load_model(init_from, compile=False).get_weights())
    opt = keras.optimizers.Adam(hp["learning_rate"])
    opt.build(lm.model.trainable_variables)
    state = {"epoch": 0, "best_val": float("inf"), "best_epoch": 0, "bad_epochs": 0, "seconds": 0.0}
    rows: list[dict] = []
    if run is not None and resume:
        for part in ("last", "best"):
            recover_dir(run / part, "state.json")  # a run killed while writing a checkpoint
    if run is not None and resume and (run / "last" / "state.json").is_file():
        state = json.loads((run / "last" / "state.json").read_text())
        last = keras.models.load_model(run / "last" / "model.keras", compile=False)
        lm.model.set_weights(last.get_weights())
        with np.load(run / "last" / "optimizer.npz") as z:
            for v, a in zip(opt.variables, [z[f"arr_{i}"] for i in range(len(z.files))], strict=True):
                v.assign(a)
        if (run / "log.csv").is_file():
            with (run / "log.csv").open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= state["epoch"]]
    if run is not None:
        run.mkdir(parents=True, exist_ok=True)
    best_weights = (keras.models.load_model(run / "best" / "model.keras", compile=False).get_weights()
                    if run is not None and resume and (run / "best").is_dir() else lm.model.get_weights())

    model = lm.model

    @tf.function(reduce_retracing=True, autograph=False)
    def train_step(batch):
        with tf.GradientTape() as tape:
            total, n = sequence_loss(model, batch, training=True)
            loss = total / n
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return total, n

    @tf.function(reduce_retracing=True, autograph=False)
    def eval_step(batch):
        return sequence_loss(model, batch)

    def batches(tok, order, size):
        for i in range(0, len(order), size):
            b = tok[order[i:i + size]]
            yield tf.constant(b[:, : int((b != PAD).sum(1).max())])

    t0 = time.perf_counter() - state["seconds"]
    while state["epoch"] < hp["epochs"] and state["bad_epochs"] < hp["patience"]:
        epoch = state["epoch"] + 1
        order = np.random.default_rng([seed, epoch]).permutation(len(tok_tr))
        tot = cnt = 0.0
        for b in batches(tok_tr, order, hp["batch_size"]):
            s, n = train_step(b)
            tot, cnt = tot + float(s), cnt + float(n)
        vt = vn = 0.0
        for b in batches(tok_va, np.arange(len(tok_va)), 4096):
            s, n = eval_step(b)
            vt, vn = vt + float(s), vn + float(n)
        val = vt / vn
        improved = val < state["best_val"]
        if improved:
            best_weights = model.get_weights()
        state.update(epoch=epoch, best_val=min(val, state["best_val"]),
                     best_epoch=epoch if improved else state["best_epoch"],
                     bad_epochs=0 if improved else state["bad_epochs"] + 1,
                     seconds=time.perf_counter() - t0)
        row = {"epoch": epoch, "train_loss": round(tot / cnt, 5), "val_loss": round(val, 5),
               "seconds": round(state["seconds"], 1)}
        if evaluate is not None:
            lm.forget_weights()  # weights changed
            row.update(evaluate(lm))
        rows.append(row)
        if log is not None:
            log(", ".join(f"{k}={v}" for k, v in row.items()))
        if run is not None:
            if improved:
                _save_dir(lm, run / "best")
            _save_dir(lm, run / "last", opt, state)
            _write_log(run / "log.csv", rows)
        if budget_s is not None and state["seconds"] >= budget_s:
            break
    model.set_weights(best_weights)
    lm.forget_weights()
    summary = {"data": data_name, "data_sha256": counts_sha256(counts), "compositions": int(len(counts)),
               "train_rows": int(len(tr)), "early_stopping_rows": int(len(va)), "seed": seed,
               "epochs": state["epoch"], "best_epoch": state["best_epoch"],
               "best_val_loss": state["best_val"], "seconds": round(state["seconds"], 1),
               "finished": state["epoch"] >= hp["epochs"] or state["bad_epochs"] >= hp["patience"],
               "initialised_from": str(init_from) if init_from is not None else None}
    lm.card["training"] = summary
    return summary
