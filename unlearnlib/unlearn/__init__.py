"""Unlearning algorithms, one module per family, and the registry that names them.

Every method has the call shape ``method(model, request, data, **hyperparameters) -> nn.Module``
and never changes the model it is given.  :data:`METHODS` maps names to
methods (for sweeps and the leaderboard); :func:`get` looks one up and
:func:`methods` lists them in teaching order.
"""

from .adversarial_regularisation import adversarial
from .boundary import boundary_expand, boundary_shrink
from .class_forgetting import bad_teaching, pbu, unsir
from .exact import eu_k, retrain
from .fine_tuning import cf_k, finetune, finetune_l2
from .fisher_forgetting import fisher
from .influence_removal import influence
from .negative_gradient import gradient_ascent, neggrad_plus
from .random_labels import random_labels, salun
from .registry import METHODS, Method, check_overrides, get, methods, register
from .scrub import scrub
from .sisa import sisa
from .sparsity import l1_sparse
from .synaptic_dampening import ssd

__all__ = [
    "METHODS",
    "Method",
    "adversarial",
    "bad_teaching",
    "boundary_expand",
    "boundary_shrink",
    "check_overrides",
    "cf_k",
    "eu_k",
    "finetune",
    "finetune_l2",
    "fisher",
    "get",
    "gradient_ascent",
    "influence",
    "l1_sparse",
    "methods",
    "neggrad_plus",
    "pbu",
    "random_labels",
    "register",
    "retrain",
    "salun",
    "scrub",
    "sisa",
    "ssd",
    "unsir",
]
