"""Judging unlearning methods on one forget request: the models they start from, the models they are
measured against, and the runs.

A :class:`Trial` holds, for one request, the N original models (seeds 0..N-1)
that a method starts from and N models retrained without the forget set at
other seeds (N..2N-1) that it is judged against, so that even retraining faces
independent retrained models.  :meth:`Trial.run` runs a method on every original
and returns the :func:`unlearnlib.metrics.evaluate` row; :meth:`Trial.sweep`
does so over a grid of hyperparameters.  The algorithm notebooks and the
leaderboard all judge methods this way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import metrics, validate
from .checkpoints import get_or_train_seeds
from .forget import ForgetRequest
from .imagedata import ImageData
from .train import TrainConfig
from .unlearn import Method, get
from .unlearn.cache import get_or_unlearn


class Trial:
    """One request, its original and retrained models, and the outputs of every method run on it.

    ``recipe`` trains both sides (the session's :attr:`~unlearnlib.session.Setup.recipe`), N = ``n_models``
    models each (the profile's ``n_models``; at least 3, as forgetting quality needs).  A method runs on
    each original through its door (:meth:`~unlearnlib.unlearn.registry.Method.run`), via the cache of
    unlearned models, with the recipe's batch size unless told otherwise.
    """

    def __init__(
        self, recipe: TrainConfig, data: ImageData, request: ForgetRequest, *, n_models: int = 3, progress: bool = True
    ):
        if not isinstance(recipe, TrainConfig):
            raise TypeError(f"recipe must be a TrainConfig (setup.recipe), got {type(recipe).__name__}")
        if not isinstance(request, ForgetRequest):
            raise TypeError(f"request must be a ForgetRequest, got {type(request).__name__}")
        n = validate.integer("n_models", n_models, minimum=3)
        request.check_fits(data)
        self.data = data
        self.request = request
        self.originals = get_or_train_seeds(recipe, data, range(n), progress=progress)
        self.retrained = get_or_train_seeds(recipe, data, range(n, 2 * n), request.retain, progress=progress)
        self.original_outputs = [metrics.model_outputs(m, data, request) for m in self.originals]
        self.retrained_outputs = [metrics.model_outputs(m, data, request) for m in self.retrained]
        self.retrain_seconds = float(np.mean([m.train_seconds for m in self.retrained]))
        self.outputs: dict[str, list[metrics.ModelOutputs]] = {}
        """The unlearned models' outputs of each run, by the run's name."""

    def do_nothing(self) -> pd.Series:
        """The :func:`~unlearnlib.metrics.evaluate` row of the original models themselves, named "original":
        the score of not unlearning at all, in no time."""
        return metrics.evaluate(
            self.original_outputs,
            self.retrained_outputs,
            self.original_outputs,
            self.data,
            self.request,
            seconds=0.0,
            retrain_seconds=self.retrain_seconds,
            name="original",
        )

    def run(
        self, method: str | Method, *, name: str | None = None, progress: bool = True, **hyperparameters
    ) -> pd.Series:
        """Run ``method`` on each original model and return its :func:`~unlearnlib.metrics.evaluate` row.

        The method gets the recipe's batch size unless ``hyperparameters`` say
        otherwise.  The row is named ``name`` (default: the method's name), and the
        unlearned models' outputs are kept in ``self.outputs[name]``.
        """
        method = get(method) if isinstance(method, str) else method
        name = name or method.name
        outputs, seconds = [], []
        for original in tqdm(self.originals, desc=name, unit="model", disable=not progress, leave=False):
            unlearned = get_or_unlearn(method, original, self.request, self.data, **hyperparameters)
            outputs.append(metrics.model_outputs(unlearned.model, self.data, self.request))
            seconds.append(unlearned.seconds)
        self.outputs[name] = outputs
        return metrics.evaluate(
            outputs,
            self.retrained_outputs,
            self.original_outputs,
            self.data,
            self.request,
            seconds=float(np.mean(seconds)),
            retrain_seconds=self.retrain_seconds,
            name=name,
        )

    def sweep(
        self,
        method: str | Method,
        grid: dict[str, Sequence] | Sequence[dict],
        *,
        progress: bool = True,
        **fixed,
    ) -> pd.DataFrame:
        """:meth:`run` at every combination of ``grid``'s values (with ``fixed`` besides).

        ``grid`` maps each hyperparameter to its values, and every combination is run;
        or it lists the settings to run, each a dict (when the settings are not a
        product, as in a paper's table).  One row per setting, led by its values and
        named after them, for example ``"finetune lr=0.1 epochs=5"``.
        """
        settings = _settings(grid)
        method = get(method) if isinstance(method, str) else method
        for chosen in settings:
            overlap = set(chosen) & set(fixed)
            if overlap:
                raise ValueError(f"{', '.join(sorted(overlap))} both swept and fixed: give each in one place")
            method.check_hyperparameters({**fixed, **chosen})  # before the first run, so that a typo costs no run
        rows = []
        for chosen in tqdm(settings, desc=f"{method.name} sweep", disable=not progress):
            label = " ".join([method.name, *(f"{key}={value}" for key, value in chosen.items())])
            row = self.run(method, name=label, progress=False, **fixed, **chosen)
            rows.append(pd.concat([pd.Series(chosen), row]).rename(label))
        return pd.DataFrame(rows)


def _settings(grid: dict[str, Sequence] | Sequence[dict]) -> list[dict]:
    """The settings a sweep runs: every combination of a dict of values, or a list of settings as given."""
    if isinstance(grid, dict):
        for key, values in grid.items():
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise TypeError(f"grid[{key!r}] must be a list of values, got {values!r:.60}")
        if not grid or any(len(values) == 0 for values in grid.values()):
            raise ValueError("the grid needs at least one value for each hyperparameter it names")
        return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if isinstance(grid, str) or not isinstance(grid, Sequence):
        raise TypeError(
            f"grid must be a dict of hyperparameter -> list of values, or a list of settings, got {grid!r:.60}"
        )
    if not grid:
        raise ValueError("the list of settings is empty")
    for setting in grid:
        if not isinstance(setting, dict) or not setting:
            raise TypeError(
                f"each listed setting must be a non-empty dict of hyperparameter -> value, got {setting!r:.60}"
            )
        if list(setting) != list(grid[0]):
            raise ValueError(
                f"every listed setting must name the same hyperparameters in the same order: {list(grid[0])} "
                f"then {list(setting)}"
            )
    return [dict(setting) for setting in grid]
