"""Class settings that task specs of several ui caches share (``explorer.tasks.Spec`` reads them)."""

from __future__ import annotations

from typing import ClassVar


class KeptOnDisk:
    """Mixin for a ``tasks.Spec`` whose finished results are written to the disk store (``KEEP``), with at most
    four of them held in memory (``MAX_FINISHED``; one dropped from memory is read back from disk). List it
    before the spec base so that these settings win over the base's defaults."""

    KEEP: ClassVar[bool] = True
    MAX_FINISHED: ClassVar[int] = 4
