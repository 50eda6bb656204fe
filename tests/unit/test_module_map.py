"""docs/architecture.md's module map lists every module of the package, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "hevcq"
ROW = re.compile(r"^\| (\*\*)?`?([\w./]+?)`?(\*\*)? \|")


def _mapped() -> set[str]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    out = set()
    for line in section.splitlines():
        m = ROW.match(line)
        if not m or m.group(2) in ("module", "---"):
            continue
        name = m.group(2)
        if name == "core":
            name = "__init__.py"
        elif name.endswith("/"):
            name += "__init__.py"
        out.add(name)
    return out


def test_the_module_map_names_every_module_and_only_those() -> None:
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    mapped = _mapped()
    assert sorted(modules - mapped) == [], "modules missing from the map"
    assert sorted(mapped - modules) == [], "rows naming no module"
