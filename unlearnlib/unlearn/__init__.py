"""Unlearning algorithms, one module per family, and the registry that names them.

Every method has the call shape ``method(model, request, data, **hyperparameters) -> nn.Module``
and never changes the model it is given.  :data:`METHODS` maps names to
methods (for sweeps and the leaderboard); :func:`get` looks one up and
:func:`methods` lists them in teaching order.
"""

from .adversarial_regularisation import adversarial
from .class_forgetting import bad_teaching, pbu, unsir
from .exact import eu_k, retrain
from .fine_tuning import cf_k, finetune, finetune_l2
from .influence_removal import influence
from .registry import METHODS, Method, get, methods, register

__all__ = [
    "METHODS",
    "Method",
    "adversarial",
    "bad_teaching",
    "cf_k",
    "eu_k",
    "finetune",
    "finetune_l2",
    "get",
    "influence",
    "methods",
    "pbu",
    "register",
    "retrain",
    "unsir",
]
