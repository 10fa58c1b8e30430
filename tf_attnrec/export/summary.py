"""`ExportSummary`: what an export wrote and the signatures it serves (printable)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Mapping, Optional

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One named signature input or output.

    Attributes:
        dtype: TensorFlow dtype name, e.g. "string".
        shape: Dimensions, None for a dynamic one (e.g. `(None, 10)`); None if the rank
            is unknown.
    """

    dtype: str
    shape: Optional[tuple[Optional[int], ...]]

    @classmethod
    def from_spec(cls, spec: tf.TensorSpec) -> "TensorInfo":
        known_rank = spec.shape.rank is not None
        return cls(dtype=spec.dtype.name, shape=tuple(spec.shape.as_list()) if known_rank else None)

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.dtype} [unknown rank]"
        dims = ", ".join("None" if d is None else str(d) for d in self.shape)
        return f"{self.dtype} [{dims}]"


class PrintableSummary:
    """`to_dict` and `__str__` shared by the export summaries (retrieval and ranking).

    Subclasses are dataclasses with at least `export_dir`, `model_name`, `version`,
    `signatures` and `files`; `details()` gives their own line of the printout.
    """

    def details(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (paths and tensor infos as strings)."""
        result: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "signatures":
                value = {
                    name: {part: {key: str(info) for key, info in tensors.items()}
                           for part, tensors in signature.items()}
                    for name, signature in value.items()
                }
            elif field.name == "files":
                value = {key: str(path) for key, path in value.items()}
            elif isinstance(value, pathlib.Path):
                value = str(value)
            result[field.name] = value
        return result

    def __str__(self) -> str:
        names = [key for signature in self.signatures.values() for part in signature.values()
                 for key in part] + list(self.files)
        width = max([16, *map(len, names)])
        lines = [
            f"SavedModel {self.export_dir}  (model_name={self.model_name!r}, "
            f"version={self.version})",
            f"  {self.details()}",
        ]
        for name, signature in self.signatures.items():
            lines.append(f"  signature {name!r}:")
            for part in ("inputs", "outputs"):
                for key, info in signature[part].items():
                    lines.append(f"    {part[:-1]:6s} {key:{width}s} {info}")
        for key, path in self.files.items():
            lines.append(f"  file {key:{width}s} {path}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class ExportSummary(PrintableSummary):
    """The result of `export_retrieval` / `export_run`.

    Attributes:
        export_dir: The SavedModel directory (`serving/<model_name>/<version>`).
        model_name: The `<model_name>` folder (TF Serving's `--model_name`).
        version: The integer `<version>` folder.
        index: "brute_force" or "scann".
        k: Items returned per history.
        exclude_history: Whether items of the history are left out of the results.
        max_length: History length the model reads (longer histories keep the most recent).
        num_items: Candidate items (the vocabulary without padding / OOV).
        signatures: `{signature: {"inputs": {name: TensorInfo}, "outputs": {name: TensorInfo}}}`.
        files: Extra files written next to the graph, e.g. `{"item_ids": path,
            "item_embeddings": path}` (row `i` of the embeddings is line `i` of the ids).

    Example:
        ```python
        summary = export_run("runs/sasrec_ml1m", "serving/sasrec/1")
        print(summary)                     # signatures, as saved_model_cli lists them
        summary.signatures["serving_default"]["outputs"]["item_ids"].shape  # (None, 10)
        ```
    """

    export_dir: pathlib.Path
    model_name: str
    version: int
    index: str
    k: int
    exclude_history: bool
    max_length: int
    num_items: int
    signatures: Mapping[str, Mapping[str, Mapping[str, TensorInfo]]]
    files: Mapping[str, pathlib.Path]

    def details(self) -> str:
        return (f"index={self.index}  k={self.k}  exclude_history={self.exclude_history}  "
                f"max_length={self.max_length}  items={self.num_items:,}")
