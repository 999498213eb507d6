"""A LightGBM fit worker: `python -m processors.engine.fit_worker`, driven by `FitPool`.

Reads pickled requests from stdin and answers on the stdout it was started with;
LightGBM's own log lines are sent to stderr so they cannot corrupt a frame.

    ("base", key, x, y)    remember a base matrix (raw features) and target
    ("drop", key)          forget one
    ("fit", key, extra, categorical, train_idx, valid_idx, task, seed, learning_rate, stop_idx)
                           fit on [x | extra], answer ("ok", FitResult) or ("error", text)

It starts by importing LightGBM (without scikit-learn, see `lgbm`) and answering
("ready", pid), so a pool can start workers early and wait only when it needs them.
"""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection
from typing import Any


def serve(inbox: Connection, outbox: Connection) -> None:
    import numpy as np

    from processors.engine.lgbm import import_lightgbm
    from processors.engine.scoring import FitJob, fit_and_score

    import_lightgbm()
    outbox.send(("ready", os.getpid()))
    bases: dict[str, tuple[Any, Any]] = {}
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "base":
            bases[message[1]] = (message[2], message[3])
        elif kind == "drop":
            bases.pop(message[1], None)
        elif kind == "fit":
            _, key, extra, categorical, train_idx, valid_idx, task, seed, learning_rate, stop_idx = message
            try:
                x, y = bases[key]
                if extra is not None:
                    x = np.hstack([x, extra])
                job = FitJob(x, y, train_idx, valid_idx, categorical, stop_idx)
                result = fit_and_score(job, task, seed, 1, learning_rate)
                outbox.send(("ok", result))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
                outbox.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            outbox.send(("error", f"unknown request {kind!r}"))


def main() -> None:
    protocol_fd = os.dup(1)
    os.dup2(2, 1)  # C++ log lines (LightGBM warnings) must not land in the protocol stream
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops this worker
    serve(Connection(0, writable=False), Connection(protocol_fd, readable=False))
    # Nothing to flush or clean up: skip the interpreter's teardown of numpy and LightGBM
    # (0.05-0.1 s the parent would wait for at the end of every `afep run`).
    os._exit(0)


if __name__ == "__main__":
    main()
