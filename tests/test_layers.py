"""Imports run one way: no module imports a later pipeline stage (synface.STAGES)."""

import ast
from pathlib import Path

import synface

ROOT = Path(synface.__file__).resolve().parent


def synface_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synface.") and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("synface.")]
    return found


def backward_imports(root: Path, stages: tuple[str, ...]) -> list[str]:
    """Every import in the package at ``root`` of a later stage than its own module's."""
    rank = {name: i for i, name in enumerate(stages)}
    modules = [p for p in root.rglob("*.py") if p.parent != root or p.stem != "__init__"]
    unknown = {p.relative_to(root).parts[0].removesuffix(".py") for p in modules} - set(rank)
    assert not unknown, f"stages missing from synface.STAGES: {unknown}"
    wrong = []
    for path in modules:
        mine = path.relative_to(root).parts[0].removesuffix(".py")
        for lineno, module in synface_imports(path):
            theirs = module.split(".")[1]
            if rank[theirs] > rank[mine]:
                wrong.append(f"{path.relative_to(root)}:{lineno} imports {module} ({mine} before {theirs})")
    return wrong


def test_every_import_points_to_the_same_or_an_earlier_stage():
    wrong = backward_imports(ROOT, synface.STAGES)
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_import_of_a_later_stage(tmp_path):
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "bad.py").write_text("import numpy\n\nfrom synface.train.loop import Trainer\n")
    (tmp_path / "train.py").write_text("from synface.faces import align\n")
    assert backward_imports(tmp_path, ("faces", "train")) == [
        "faces/bad.py:3 imports synface.train.loop (faces before train)"]
