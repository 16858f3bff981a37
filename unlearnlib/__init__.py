"""unlearnlib: the shared, tested code of the machine unlearning course.

Start a notebook or script with :func:`unlearnlib.session.start`; see the README for a map of the modules.
The names a notebook needs most are here too, so that its imports fit on a line or two::

    from unlearnlib import Trial, get_or_train, plots, record, session, standard_requests

Each is loaded from its module on first use (:data:`EXPORTS`), so that importing the
package alone stays cheap for the command-line tools.
"""

from __future__ import annotations

import importlib

EXPORTS: dict[str, str] = {
    "TrainConfig": "train",
    "fit": "train",
    "new_model": "train",
    "predict": "train",
    "get_or_train": "checkpoints",
    "get_or_train_seeds": "checkpoints",
    "ForgetRequest": "forget",
    "random_forget": "forget",
    "class_forget": "forget",
    "corrective_forget": "forget",
    "standard_requests": "forget",
    "mia_efficacy": "mia",
    "evaluate": "metrics",
    "short_table": "metrics",
    "Trial": "trial",
    "Repair": "corrective",
    "class_pair": "poisoning",
    "record": "course",
}
"""Public names re-exported by the package, and the module that defines each."""

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> object:
    if name in EXPORTS:
        return getattr(importlib.import_module(f".{EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(EXPORTS))
