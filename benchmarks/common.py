"""What every benchmark script shares: writing its result record."""

from __future__ import annotations

import json
from pathlib import Path


def write_result(path: Path, result: dict) -> None:
    """Write ``result`` as JSON to ``path`` (folders created) and echo it on stdout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
