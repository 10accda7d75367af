"""Names shared by every binning: the transforms, the profiles, the drift decisions and the one-shot report."""

from __future__ import annotations

OTHER = "__other__"  # the bin of every category outside the reference's set
