"""The documentation keeps up with the code: every setting is documented (and nothing else is), every
relative link and anchor resolves, and the README points to every page of ``docs/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.settings import Settings
from tests.unit.test_project import readme_commands

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md")])

#: ``[text](target)`` and ``![alt](target)``; targets have no spaces in our pages.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def settings_variables() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def documented_variables() -> dict[str, str]:
    """Variable -> its default cell, from the table under "## Environment variables"."""
    text = CONFIGURATION.read_text()
    section = re.search(r"^## Environment variables\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "docs/configuration.md must keep its '## Environment variables' section"
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", section.group(1), re.M)
    assert rows, "no variable rows found in the table of docs/configuration.md"
    return dict(rows)


def test_the_documented_variables_are_exactly_the_settings() -> None:
    documented, actual = set(documented_variables()), settings_variables()
    missing, stale = sorted(actual - documented), sorted(documented - actual)
    assert not missing, f"settings not documented in docs/configuration.md's table: {missing}"
    assert not stale, f"docs/configuration.md documents variables Settings does not have: {stale}"


def test_the_documented_defaults_are_the_settings_defaults() -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    documented = documented_variables()
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        cell = documented[f"{prefix}{name}".upper()]
        shown = re.match(r"`([^`]*)`", cell)
        if default is None or default == []:
            assert cell.startswith("empty"), f"{name}: the default is unset, the table says {cell!r}"
        elif isinstance(default, bool | str):
            assert shown and shown.group(1) == str(default), f"{name}: {default!r} vs {cell!r}"
        elif isinstance(default, int | float):
            assert shown and float(shown.group(1)) == default, f"{name}: {default!r} vs {cell!r}"
        else:  # a path
            assert shown and Path(shown.group(1)) == Path(default), f"{name}: {default!r} vs {cell!r}"


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target} (no file {resolved.relative_to(ROOT)})")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)} has broken links: {broken}"


def test_the_readme_links_every_page_of_the_docs_and_shows_a_report() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    unlinked = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link to docs/{unlinked}"
    assert (DOCS / "screenshots" / "report-binary.png").resolve() in linked


def test_the_readme_keeps_two_setup_commands_and_nothing_points_outside_the_repository() -> None:
    assert len(readme_commands()) == 2
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, page.name
