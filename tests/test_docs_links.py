"""Every image a page shows is in the repository: a benchmark section written under build/ and copied into docs/
keeps links relative to build/, which break on the copy (docs/native-eval.md, stages 32 and 33)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_every_image_link_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages for target in IMAGE.findall(page.read_text())
              if "://" not in target and not (page.parent / target).is_file()]
    assert not broken, broken
