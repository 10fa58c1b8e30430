"""Errors raised by `tf_attnrec.data` when files or downloads are not what they should be."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A data file does not have the expected format.

    The message names the file, the 1-based line (where one applies), what was found and
    what was expected, so the user can fix the file or pass the right option.

    Example:
        ```python
        try:
            read_sasrec_txt("ml-1m.txt")
        except DataFormatError as error:
            print(error)  # ml-1m.txt, line 3: found '1 x'; expected 'user item' ...
        ```
    """


class ChecksumMismatchError(OSError):
    """A downloaded archive does not have the published sha256 checksum.

    The bad file has already been deleted when this is raised, so a retry downloads it
    afresh.
    """


class DownloadError(OSError):
    """A dataset archive could not be fetched (no network, HTTP error, bad archive layout)."""
