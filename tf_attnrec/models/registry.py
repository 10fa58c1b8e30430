"""The model zoo: `@register_model` beside each family's definition, `create_model` to build one.

A family module registers a builder function (as timm's `@register_model` does):

    @register_model(task="retrieval", configurable=(SASRecEncoder, SequentialRetrievalModel),
                    training={"patience": 20}, tiny={"hidden_dim": 8})
    def sasrec(vocab_size: int, **config: Any) -> SequentialRetrievalModel:
        '''SASRec: causal self-attention over the item sequence (SASRec+).'''
        ...

The builder's name is the zoo name and its docstring's first line the description. A model's
config defaults have one source: the keyword defaults of the classes named in
`configurable` (read from their signatures). `models/<name>/config.yaml` overrides them for a
zoo run, and `create_model(name, **overrides)` for a call.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Optional

import tensorflow as tf

TASKS = ("retrieval", "ranking", "collaborative", "multitask")
# Arguments that a builder receives from the data, never from a config.
DATA_ARGUMENTS = ("vocab_size", "feature_sizes", "num_users", "item_content")
_NOT_CONFIG = {"self", "encoder", "name", *DATA_ARGUMENTS}


def signature_defaults(*classes: type) -> dict[str, Any]:
    """Keyword defaults of the classes' `__init__`, following `**kwargs` into base classes.

    Args:
        *classes: Classes whose constructor arguments make up a model config.

    Returns:
        `{argument: default}` without data arguments (`vocab_size`, `feature_sizes`), `name`
        and arguments that have no default. Earlier classes win.

    Example:
        >>> from tf_attnrec.models.mean_pooling import MeanPoolingEncoder
        >>> signature_defaults(MeanPoolingEncoder)["embedding_dim"]
        64
    """
    defaults: dict[str, Any] = {}
    for cls in classes:
        for klass in cls.__mro__:
            if klass.__module__.startswith(("tf_keras", "keras", "tensorflow")) or "__init__" not in vars(klass):
                continue
            parameters = inspect.signature(klass.__init__).parameters.values()
            for parameter in parameters:
                if parameter.name in _NOT_CONFIG or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                    continue
                if parameter.default is not parameter.empty:
                    default = parameter.default
                    defaults.setdefault(parameter.name, list(default) if isinstance(default, tuple) else default)
            if not any(p.kind is p.VAR_KEYWORD for p in parameters):
                break  # the chain of **kwargs ends here
    return defaults


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to build one zoo model.

    Attributes:
        name: Registry name (the builder's name).
        task: "retrieval" (next-item retrieval over the catalogue), "ranking" (click
            probability of a candidate), "collaborative" (a known user's top items over the
            whole catalogue, the CF protocol) or "multitask" (retrieval, rating and click
            heads over one user stack); it selects the `tf_attnrec.tasks.Task`.
        description: One line for `tf-attnrec list-models` (the builder's docstring).
        builder: `(vocab_size, [feature_sizes,] **config) -> tf.keras.Model`.
        configurable: Classes whose constructor defaults are the model's config defaults.
        training: Training-loop settings that differ from `tf_attnrec.training.fit_model`'s
            defaults for this model (the zoo config overrides them).
        tiny: Config overrides for a model small enough for one test step.
    """

    name: str
    task: str
    description: str
    builder: Callable[..., tf.keras.Model]
    configurable: tuple = ()
    training: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tiny: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def default_config(self) -> dict[str, Any]:
        """The model config defaults (constructor defaults of `configurable`)."""
        return signature_defaults(*self.configurable)

    def build(self, **arguments: Any) -> tf.keras.Model:
        """Checks the config keys, then calls the builder with defaults + `arguments`."""
        defaults = self.default_config()
        config = {key: value for key, value in arguments.items() if key not in DATA_ARGUMENTS}
        unknown = sorted(set(config) - set(defaults))
        if unknown:
            raise ValueError(
                f"create_model({self.name!r}): unknown config keys {unknown}; {self.name!r} accepts "
                f"{sorted(defaults)}."
            )
        data = {key: arguments[key] for key in DATA_ARGUMENTS if key in arguments}
        return self.builder(**data, **{**defaults, **config})


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    task: str,
    configurable: tuple = (),
    training: Optional[Mapping[str, Any]] = None,
    tiny: Optional[Mapping[str, Any]] = None,
    name: Optional[str] = None,
) -> Callable[[Callable[..., tf.keras.Model]], Callable[..., tf.keras.Model]]:
    """Decorator: registers a builder function in the zoo under its name.

    Args:
        task: one of `TASKS`.
        configurable: Classes whose constructor defaults form the config defaults.
        training: Training settings that differ from the loop's defaults.
        tiny: Config overrides for the test harness's one-step model.
        name: Registry name (default: the function's name).

    Returns:
        The decorator (which returns the builder unchanged).

    Raises:
        ValueError: unknown task, or a name that is already registered by another builder.
    """
    if task not in TASKS:
        raise ValueError(f"register_model: task must be one of {TASKS}; got {task!r}.")

    def decorate(builder: Callable[..., tf.keras.Model]) -> Callable[..., tf.keras.Model]:
        key = name or builder.__name__
        previous = _REGISTRY.get(key)
        if previous is not None and previous.builder.__qualname__ != builder.__qualname__:
            raise ValueError(f"A model named {key!r} is already registered (by {previous.builder.__module__}).")
        description = (inspect.getdoc(builder) or key).splitlines()[0]
        _REGISTRY[key] = ModelSpec(key, task, description, builder, tuple(configurable),
                                   dict(training or {}), dict(tiny or {}))
        return builder

    return decorate


def list_models(task: Optional[str] = None) -> list[str]:
    """Names of the registered models, sorted, optionally of one task only.

    Args:
        task: None for every model, else one of `TASKS`.

    Returns:
        Sorted names.

    Example:
        >>> "din" in list_models(task="ranking") and "sasrec" in list_models(task="retrieval")
        True
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"list_models: task must be one of {TASKS} or None; got {task!r}.")
    return sorted(name for name, spec in _REGISTRY.items() if task is None or spec.task == task)


def get_model_spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered under `name` (KeyError naming the valid names otherwise)."""
    if name not in _REGISTRY:
        raise KeyError(f"Unknown model {name!r}; registered models: {list_models()}.")
    return _REGISTRY[name]


def create_model(name: str, vocab_size: int, **overrides: Any) -> tf.keras.Model:
    """Builds a zoo model from its defaults plus `overrides`.

    Args:
        name: A name from `list_models()`.
        vocab_size: Item ids including padding and OOV (`vocabulary.size`).
        **overrides: Config keys replacing the defaults (e.g. `hidden_dim`, `max_length`,
            `loss`); ranking models also need `feature_sizes=` (`FeatureVocabularies.sizes()`).

    Returns:
        The Keras model (a `tfrs.Model`).

    Raises:
        KeyError: Unknown model name.
        ValueError: An override key that the model does not accept.

    Example:
        >>> model = create_model("sasrec", vocab_size=100, hidden_dim=16, max_length=20)
        >>> model.encoder.hidden_dim
        16
    """
    return get_model_spec(name).build(vocab_size=vocab_size, **overrides)
