"""Small helpers shared by test modules (importable: tests/ is on sys.path under pytest)."""

from pathlib import Path

from synface.locks import LOCK_NAME


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, but the writer lock (who held the folder, not
    what it holds): equal trees, equal dicts."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}
