"""docs/design.md matches the tree: every module its layout names exists, and every module of the
package is named there (``cli/`` is the one folder described as a whole)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHOLE_FOLDERS = ("cli/",)


def layout_modules(text: str) -> set[str]:
    """Paths like ``losses/focal.py`` named in the ``anchordet/`` part of the Layout code block:
    a line starting in column 2 names its folder (``losses/``) or a top-level file; the file
    names on it and on the deeper-indented lines that follow belong to that folder."""
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    names, folder, inside = set(), "", False
    for line in block.splitlines():
        if line.startswith("anchordet/"):
            inside = True
            continue
        if not inside or not line.strip():
            continue
        if not line.startswith(" "):  # tests/, benchmarks/, docs/: past the package
            break
        if not line.startswith("   "):
            first = line.split()[0]
            folder = first if first.endswith("/") else ""
        names |= {folder + name for name in re.findall(r"\b[\w/]+\.py\b", line)}
    return names


def package_modules() -> set[str]:
    package = ROOT / "anchordet"
    return {str(p.relative_to(package)) for p in package.rglob("*.py")
            if p.name != "__init__.py" and not str(p.relative_to(package)).startswith(WHOLE_FOLDERS)}


def test_the_layout_names_every_module_and_only_modules_that_exist():
    named = layout_modules((ROOT / "docs" / "design.md").read_text(encoding="utf-8"))
    named = {n for n in named if not n.startswith(WHOLE_FOLDERS)} - {"cli/main.py", "cli/common.py"}
    actual = package_modules()
    assert not named - actual, f"docs/design.md names modules that do not exist: {sorted(named - actual)}"
    assert not actual - named, f"modules missing from docs/design.md's layout: {sorted(actual - named)}"


def test_the_parser_reads_folders_and_continuation_lines():
    text = ("## Layout\n\n```\nanchordet/\n  losses/   focal.py (x)  box.py\n            multibox.py\n"
            "  video.py  frames\ntests/   mirrors (tests/a/b.py)\n```\n")
    assert layout_modules(text) == {"losses/focal.py", "losses/box.py", "losses/multibox.py", "video.py"}
