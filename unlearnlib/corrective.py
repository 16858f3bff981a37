"""Corrective unlearning: repairing a model trained on poisoned data by unlearning the poisons that were found.

The threat (:func:`backdoored_pair`): a two-class task, possibly imbalanced, in
which an attacker has stamped a trigger on some training images and flipped their
labels, so that a model trained on it classifies any triggered image as the other
class.  A :class:`Repair` holds the poisoned model and the model trained on the
clean data (what a perfect repair would give), and :meth:`Repair.run` applies an
unlearning method to a deletion set (:func:`unlearnlib.forget.corrective_forget`).
Its row is the :func:`~unlearnlib.metrics.evaluate` row every method gets (against
the model retrained without the deletion set), followed by what a repair is for
(:func:`scores`): accuracy on the minority class and the attack success rate on
the triggered test set, and what the deletion set held.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn

from . import validate
from .checkpoints import TrainedModel, get_or_train, network
from .forget import ForgetRequest
from .imagedata import ImageData
from .metrics import attack_success, evaluate
from .poisoning import Poisoning, Trigger, class_pair, poison
from .train import TrainConfig, predict
from .unlearn import Method, get
from .unlearn.cache import get_or_unlearn

SIMILAR_CLASSES: dict[str, tuple[str, str]] = {
    "cifar10": ("dog", "cat"),
    "fashion-mnist": ("T-shirt/top", "Shirt"),
    "mnist": ("4", "9"),
    "digits": ("3", "8"),
}
"""For each dataset, two classes that look alike, for the class-imbalance task; the second is the minority.

On CIFAR-10 the cat is the minority, as in Goel et al.'s (2024) imbalance study (cats at a ratio of 5,000 dogs)."""

SCORES = ("test_accuracy", "minority_accuracy", "attack_success")
"""The columns :func:`scores` fills: accuracy on the clean test set (the model's utility, named as in an
:func:`~unlearnlib.metrics.evaluate` row), its accuracy on the minority class (where the task has one), the
backdoor's strength."""


DIRECTIONS = ("into_minority_attack_success", "into_majority_attack_success")
"""The columns of each direction of a two-class backdoor in a :func:`scores` row, where that direction was
attacked: the attack success on the triggered majority images (their poisons were placed in the minority), then
on the triggered minority images (placed in the majority)."""


def backdoored_pair(
    data: ImageData,
    classes: tuple[int | str, int | str],
    *,
    minority: int | str,
    ratio: float,
    poisons: int,
    minority_share: float,
    n_majority: int | None = None,
    n_test: int | None = None,
    trigger: Trigger | Mapping[int | str, Trigger] | None = None,
    seed: int = 0,
) -> Poisoning:
    """A two-class task (:func:`~unlearnlib.poisoning.class_pair`) with a backdoor that flips the class.

    ``poisons`` training images get the trigger and the other class's label; a
    share ``minority_share`` of them are placed in the minority class (majority
    images labelled as the minority), the rest in the majority class (minority
    images labelled as the majority).  The backdoor attacks each direction that
    received poisons.  ``trigger`` is one :class:`~unlearnlib.poisoning.Trigger` for
    both directions, or a map from each class of the pair (a name, or an index in ``data``) to the
    trigger its images carry when poisoned, so that each direction has its own patch;
    a direction with no poisons drops its class's entry.
    """
    minority_share = validate.interval("minority_share", minority_share, 0.0, 1.0, low_open=False)
    poisons = validate.integer("poisons", poisons, minimum=1)
    pair = class_pair(data, classes, minority=minority, ratio=ratio, n_majority=n_majority, n_test=n_test, seed=seed)
    small = _pair_index(data, pair, minority)
    large = 1 - small  # the pair's labels are 0 and 1
    share = {large: minority_share, small: 1 - minority_share}
    targets = {source: 1 - source for source, weight in share.items() if weight > 0}
    if trigger is not None and not isinstance(trigger, Trigger):
        if not isinstance(trigger, Mapping):
            raise TypeError(f"trigger must be a Trigger or a dict of class -> Trigger, got {type(trigger).__name__}")
        by_index = {_pair_index(data, pair, cls): one for cls, one in trigger.items()}
        trigger = {source: one for source, one in by_index.items() if source in targets}
        if set(trigger) != set(targets):
            raise ValueError(
                f"the trigger map needs a Trigger for each class of the pair {classes} that is poisoned, "
                f"got one for {[pair.info.classes[c] for c in by_index]}"
            )
    return poison(pair, poisons, targets, share={s: share[s] for s in targets}, trigger=trigger, seed=seed)


def _pair_index(data: ImageData, pair: ImageData, cls: int | str) -> int:
    """The label in ``pair`` of class ``cls``, a name or an index of the class in ``data``."""
    name = data.info.classes[data.info.class_index(cls)]
    if name not in pair.info.classes:
        raise ValueError(f"class {cls!r} is not one of the pair {pair.info.classes}")
    return pair.info.classes.index(name)


def scores(
    model: nn.Module | TrainedModel, data: ImageData, poisoning: Poisoning, minority: int | None
) -> dict[str, float]:
    """Clean test accuracy, test accuracy on class ``minority`` and attack success on the triggered test set.

    ``data`` is what ``model`` was trained on (its statistics normalise the
    inputs); the test images are ``data.test``, and their triggered copies carry
    ``poisoning``'s trigger (each image its own class's, where each direction has
    its own).  With ``minority`` ``None`` (a task with no minority class, such as a
    backdoor in all ten classes) the minority's accuracy is left out.  In a
    two-class task with a minority, each direction the backdoor attacks also gets its own attack success,
    named by where its poisons were placed (:data:`DIRECTIONS`): the triggered
    majority images sent to the minority, ``"into_minority_attack_success"``, and the
    other way, ``"into_majority_attack_success"``.
    """
    if minority is not None:
        minority = validate.class_id("minority", minority, data.info.num_classes, dataset=data.info.name)
    net = network(model)
    clean = predict(net, data, data.test)
    triggered = predict(net, data, poisoning.triggered(data.test))
    values = {"test_accuracy": clean.accuracy}
    if minority is not None:
        values["minority_accuracy"] = float(clean.per_class_accuracy(data.info.num_classes)[minority])
    values["attack_success"] = attack_success(triggered.predictions, triggered.labels, poisoning.targets)
    if minority is not None and data.info.num_classes == 2:
        for column, source in zip(DIRECTIONS, (1 - minority, minority), strict=True):
            if source in poisoning.targets:
                one_way = {source: poisoning.targets[source]}
                values[column] = attack_success(triggered.predictions, triggered.labels, one_way)
    return values


class Repair:
    """One poisoned training set, the models trained on it and on its clean version, and repairs of the former.

    Built as a :class:`~unlearnlib.trial.Trial` is: ``recipe`` trains both models
    (through the checkpoint cache, so each is trained once); ``clean`` is the data
    before poisoning.  ``minority`` is the index of the minority class, whose test
    accuracy every row reports (``None`` where the task has none, as a backdoor planted
    in every class of a dataset: the rows then lack that column).  A method runs through its door, via the cache of
    unlearned models, with the recipe's batch size unless told otherwise.
    """

    def __init__(
        self,
        recipe: TrainConfig,
        clean: ImageData,
        poisoning: Poisoning,
        minority: int | None,
        *,
        progress: bool = True,
    ):
        if not isinstance(recipe, TrainConfig):
            raise TypeError(f"recipe must be a TrainConfig (setup.recipe), got {type(recipe).__name__}")
        if len(clean.train) != len(poisoning.data.train):
            raise ValueError(
                f"the clean data has {len(clean.train)} training examples, the poisoned {len(poisoning.data.train)}: "
                "give the clean version of the poisoned data"
            )
        self.recipe = recipe
        self.clean = clean
        self.poisoning = poisoning
        self.minority = (
            None if minority is None else validate.class_id("minority", minority, poisoning.data.info.num_classes)
        )
        self.original = get_or_train(recipe, poisoning.data, progress=progress)
        self.reference = get_or_train(recipe, clean, progress=progress)

    @property
    def data(self) -> ImageData:
        """The poisoned data the original was trained on and every method unlearns from."""
        return self.poisoning.data

    def _row(self, name: str, model: nn.Module | TrainedModel, data: ImageData, seconds: float) -> pd.Series:
        values = scores(model, data, self.poisoning, self.minority)
        return pd.Series({**values, "seconds": seconds}, name=name)

    def do_nothing(self) -> pd.Series:
        """The poisoned original's scores, named "poisoned": what a repair starts from."""
        return self._row("poisoned", self.original, self.data, 0.0)

    def clean_model(self) -> pd.Series:
        """The scores of the model trained on the clean data, named "clean": what a perfect repair reaches."""
        return self._row("clean", self.reference, self.clean, self.reference.train_seconds)

    def run(
        self,
        method: str | Method,
        request: ForgetRequest,
        *,
        name: str | None = None,
        judge: bool = True,
        **hyperparameters,
    ) -> pd.Series:
        """Apply ``method`` to the poisoned original with deletion set ``request``, and judge the result.

        The row is :func:`~unlearnlib.metrics.evaluate`'s (against the model
        retrained without ``request``'s deletion set, from the cache that
        ``retrain`` fills), then the columns of :data:`SCORES` that it lacks, then
        how many poisons the deletion set holds, how many clean examples, and the
        share of all poisons it found.  With ``judge=False`` the row skips the
        evaluate row (and the retraining it needs): only what a repair is for, the
        scores, then ``seconds``, then the counts; a sweep that plots only those
        saves a pass over the data with three models and the membership attacks.
        """
        method = get(method) if isinstance(method, str) else method
        if not isinstance(judge, bool):
            raise TypeError(f"judge must be True or False, got {judge!r}")
        unlearned = get_or_unlearn(method, self.original, request, self.data, **hyperparameters)
        name = name or method.name
        repair = scores(unlearned.model, self.data, self.poisoning, self.minority)
        poisons = int(torch.isin(request.forget, self.poisoning.indices).sum())
        deleted = len(request.forget)
        counts = {
            "deleted": deleted,
            "poisons_deleted": poisons,
            "clean_deleted": deleted - poisons,
            "found": poisons / len(self.poisoning.indices),
        }
        if not judge:
            return pd.Series({**repair, "seconds": unlearned.seconds, **counts}, name=name)
        retrained = get_or_unlearn(get("retrain"), self.original, request, self.data)
        row = evaluate(
            unlearned.model,
            retrained.model,
            self.original,
            self.data,
            request,
            seconds=unlearned.seconds,
            retrain_seconds=retrained.seconds,
            name=name,
        )
        extra = {key: value for key, value in repair.items() if key not in row.index}
        return pd.Series({**row.to_dict(), **extra, **counts}, name=row.name)
