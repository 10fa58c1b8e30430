"""Runs `tf-attnrec` and SIGKILLs its own process after N training steps (for tests/test_resume.py).

Usage: python -m tests.kill_training STEPS ARGS...: `tf-attnrec ARGS...`, killed, with no
cleanup and no Python exit, at the end of training step STEPS of its first `fit`.
"""

from __future__ import annotations

import os
import signal
import sys

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import cli, training


class KillAfterSteps(tf.keras.callbacks.Callback):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    steps, argv = int(sys.argv[1]), sys.argv[2:]
    fit_model = training.fit_model

    def killed_fit_model(*args, callbacks=(), **kwargs):
        # Before the loop's own logging and backup callbacks: the kill lands after this
        # step trained and before it could be backed up.
        return fit_model(*args, callbacks=[KillAfterSteps(steps), *callbacks], **kwargs)

    from tf_attnrec.tasks import collaborative, multitask, ranking, retrieval

    for module in (collaborative, multitask, ranking, retrieval):
        module.fit_model = killed_fit_model
    sys.exit(cli.main(argv))


if __name__ == "__main__":
    main()
