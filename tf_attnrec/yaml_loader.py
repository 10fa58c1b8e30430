"""`load_yaml`: YAML as configs are written, with `1e-3` read as a float (YAML 1.2), not a string."""

from __future__ import annotations

import re
from typing import Any

import yaml


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's float syntax.

    PyYAML follows YAML 1.1, where a float needs a dot (`1.0e-3`), so `learning_rate: 1e-3`
    or `--set attention_l2=1e-2` would silently become the string "1e-3" and fail far from
    where it was written.
    """


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """The value of YAML `text` (safe tags only), floats written `1e-3` included."""
    return yaml.load(text, Loader=_ConfigLoader)


__all__ = ["load_yaml"]
