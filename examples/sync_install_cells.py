"""Writes the install cell (the first code cell) of every example notebook from `setup.cfg`.

The cell installs tf-attnrec from the project's repository, `url` in setup.cfg's `[metadata]`, the
one place it is set: never a package of that name from the package index, which this project does
not publish (anyone could take the name). The package's own requirements pin what Colab's
preinstalled TensorFlow and Keras 3 would otherwise break (TensorFlow 2.20, tf-keras, TFRS).
Without a `url` the cell stops with a clear message wherever tf_attnrec is not installed yet.

Usage:
    python examples/sync_install_cells.py          # rewrite the cells
    python examples/sync_install_cells.py --check  # exit 1 if a notebook's cell differs
"""

from __future__ import annotations

import argparse
import configparser
import pathlib
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]


def repository_url(setup_cfg: pathlib.Path = ROOT / "setup.cfg") -> str:
    """setup.cfg's `[metadata] url`, or "" while the project has none."""
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    return config.get("metadata", "url", fallback="").strip()


def install_cell(url: str) -> str:
    """The source of the install cell for repository `url` ("" = none yet)."""
    return f'''# Colab: install tf-attnrec from its repository (setup.cfg's `url`); its requirements pin
# TensorFlow 2.20, tf-keras and TFRS over Colab's preinstalled TensorFlow and Keras 3. Does
# nothing where tf_attnrec is installed already (e.g. in CI). Written by examples/sync_install_cells.py.
import importlib.util

SOURCE = "{url}"
if importlib.util.find_spec("tf_attnrec") is None:
    if not SOURCE:
        raise RuntimeError("tf_attnrec is not installed, and setup.cfg names no repository to install it "
                           "from yet: install it from a checkout (pip install -e '.[plot]') and rerun.")
    %pip install -q "tf-attnrec[plot] @ git+{{SOURCE}}"'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks whose cell differs")
    args = parser.parse_args(argv)
    expected = install_cell(repository_url())
    stale = []
    for path in sorted((ROOT / "examples").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cell = next(cell for cell in notebook.cells if cell.cell_type == "code")
        if cell.source != expected:
            stale.append(path.name)
            if not args.check:
                cell.source = expected
                nbformat.write(notebook, path)
    if stale:
        print(("differ from setup.cfg: " if args.check else "rewrote: ") + ", ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
