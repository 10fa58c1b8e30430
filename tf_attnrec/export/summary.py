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


@dataclasses.dataclass(frozen=True)
class ExportSummary:
    """What an export wrote and the signatures it serves (`print` it; every export returns one).

    Attributes:
        export_dir: The SavedModel directory (`serving/<model_name>/<version>`).
        model_name: The `<model_name>` folder (TF Serving's `--model_name`).
        version: The integer `<version>` folder.
        signatures: `{signature: {"inputs": {name: TensorInfo}, "outputs": {name: TensorInfo}}}`.
        files: Extra files written next to the graph, e.g. `{"item_ids": path}`.
        details: What this kind of export serves, e.g. `{"index": "brute_force", "k": 10,
            "exclude_history": True, "max_length": 200, "num_items": 3416}` for top-k
            retrieval; each key also reads as an attribute (`summary.k`).

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
    signatures: Mapping[str, Mapping[str, Mapping[str, TensorInfo]]]
    files: Mapping[str, pathlib.Path]
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        details = self.__dict__.get("details") or {}
        if name in details:
            return details[name]
        raise AttributeError(f"ExportSummary has no attribute {name!r}; details: {sorted(details)}.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (paths and tensor infos as strings; details flattened)."""
        return {
            "export_dir": str(self.export_dir),
            "model_name": self.model_name,
            "version": self.version,
            **dict(self.details),
            "signatures": {
                name: {part: {key: str(info) for key, info in tensors.items()} for part, tensors in signature.items()}
                for name, signature in self.signatures.items()
            },
            "files": {key: str(path) for key, path in self.files.items()},
        }

    def __str__(self) -> str:
        names = [key for signature in self.signatures.values() for part in signature.values()
                 for key in part] + list(self.files)
        width = max([16, *map(len, names)])
        details = "  ".join(f"{key}={value:,}" if isinstance(value, int) and not isinstance(value, bool)
                            else f"{key}={value}" for key, value in self.details.items())
        lines = [
            f"SavedModel {self.export_dir}  (model_name={self.model_name!r}, version={self.version})",
            f"  {details}",
        ]
        for name, signature in self.signatures.items():
            lines.append(f"  signature {name!r}:")
            for part in ("inputs", "outputs"):
                for key, info in signature[part].items():
                    lines.append(f"    {part[:-1]:6s} {key:{width}s} {info}")
        for key, path in self.files.items():
            lines.append(f"  file {key:{width}s} {path}")
        return "\n".join(lines)
