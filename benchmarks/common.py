"""What every benchmark script shares: writing its result record, with the machine it ran on."""

from __future__ import annotations

import json
from pathlib import Path

from synface.runtime import describe_host, host_info


def write_result(path: Path, result: dict) -> None:
    """Write ``result`` as JSON to ``path`` (folders created) and echo it on stdout. Every
    record says which host produced it (CPU model and capability, bf16 support, threads,
    torch): a figure from one CPU does not hold on the next."""
    if "host" not in result:
        result = {**result, "host": host_info(), "host_summary": describe_host()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"measured on: {result.get('host_summary') or describe_host(result['host'])}")
