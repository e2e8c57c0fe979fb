"""The panel's words live once, in dashboard/words.py: the browser scripts keep no copy, and
the page constants hand the scripts the same words and codes Python shows (docs/panel.md
"Words and codes")."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from dashboard import constants, words
from monitor.alarms.config import load_config
from monitor.core.model import Phase, Priority

ASSETS = Path(__file__).resolve().parent.parent / "dashboard" / "assets"

# A regex literal can only follow one of these (the scripts write no `a / b / c` with quotes).
_BEFORE_REGEX = set("(,=:[!&|?{};")


def js_string_literals(source: str) -> list[tuple[int, str]]:
    """Every string literal of a script ('…', "…", `…`) with its line, comments and regex
    literals skipped (a word in a comment is documentation, not text the page shows)."""
    out: list[tuple[int, str]] = []
    i, n, line, before = 0, len(source), 1, ""
    while i < n:
        c = source[i]
        if c == "\n":
            line += 1
            i += 1
        elif source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
        elif source.startswith("/*", i):
            end = source.index("*/", i + 2)
            line += source.count("\n", i, end)
            i = end + 2
        elif c in "\"'`":
            j = i + 1
            while j < n and source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append((line, source[i + 1 : j]))
            line += source.count("\n", i, j)
            i, before = j + 1, c
        elif c == "/" and before in _BEFORE_REGEX:
            j, in_class = i + 1, False
            while j < n and (source[j] != "/" or in_class):
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                j += 1
            i, before = j + 1, "/"
        else:
            if not c.isspace():
                before = c
            i += 1
    return out


def phase_and_priority_words() -> set[str]:
    """The codes and every display form of a phase or a priority, read from words.py itself:
    a word added there is banned from the scripts at once."""
    found: set[str] = {p.value for p in Phase} | {p.value for p in Priority}
    for table in (
        words.PHASE_TITLES,
        words.PHASE_WORDS,
        words.PRIORITY_WORDS,
        words.PRIORITY_ALARM_WORDS,
        words.PRIORITY_BADGES,
        words.DIRECTION_WORDS,
    ):
        found |= set(table.values())
    # Each word of a multi-word form on its own ("Session ended" -> "ended", "!!! HIGH" ->
    # "high"), minus the words a priority or phase does not own.
    single = {w.lower() for text in found for w in re.findall(r"[A-Za-z]+", text)}
    return single - {"priority", "session"}


def test_the_banned_list_holds_every_phase_and_priority_and_their_display_forms() -> None:
    """docs/panel.md "Words and codes": the check covers the phases, priorities and their forms."""
    banned = phase_and_priority_words()
    assert {"baseline", "infusion", "recovery", "ended", "dosing"} <= banned
    assert {"high", "medium", "low"} <= banned


def test_the_literal_scanner_finds_strings_and_skips_comments_and_regexes() -> None:
    """docs/panel.md "Words and codes": the scan sees what a script shows, not its comments."""
    source = (
        '// "Infusion" in a comment\n/* "Baseline" */ var a = "Recovery " + x;\n'
        "var r = /\"ended\"/g; var b = 'high';\n"
    )
    assert js_string_literals(source) == [(2, "Recovery "), (3, "high")]


def test_no_browser_script_writes_a_phase_or_priority_word_of_its_own() -> None:
    """docs/panel.md "Words and codes": the scripts take every such word from the page constants."""
    banned = phase_and_priority_words()
    pattern = re.compile(
        r"(?<![A-Za-z0-9_])(" + "|".join(sorted(map(re.escape, banned))) + r")(?![A-Za-z0-9_])",
        re.IGNORECASE,
    )
    scripts = sorted(ASSETS.glob("*.js"))
    assert scripts, "no script found under dashboard/assets"
    hits = [
        f"{path.name}:{line}: {text!r}"
        for path in scripts
        for line, text in js_string_literals(path.read_text(encoding="utf-8"))
        if pattern.search(text)
    ]
    assert hits == []


def test_the_page_constants_carry_the_words_and_the_codes_the_scripts_read() -> None:
    """docs/panel.md "Words and codes": the page gets words.py's words and the monitor's codes."""
    sent = orjson.loads(constants.constants_json(load_config()))
    assert sent["words"] == orjson.loads(orjson.dumps(words.browser_words()))
    assert sent["codes"]["phase"] == {p.name: p.value for p in Phase}
    assert sent["codes"]["priority"] == {p.name: p.value for p in Priority}
    assert sent["words"]["phase_title"]["infusion"] == words.PHASE_TITLES[Phase.INFUSION]
    assert sent["words"]["badge"]["high"] == words.PRIORITY_BADGES[Priority.HIGH]


def test_the_record_line_the_browser_fills_reads_as_the_bed_pages() -> None:
    """docs/panel.md "Words and codes": the tile's record line is the bed page's sentence."""
    w = words.browser_words()
    for kind, event_id in (("infusion_stop", 7), ("no_such_kind", None)):
        what = w["record_event"].get(kind, w["record_unknown"])
        which = w["record_event_id"].replace("{id}", str(event_id)) if event_id else ""
        browser = w["record_line"].replace("{what}", what).replace("{which}", which)
        assert browser == words.record_text({"type": kind, "event_id": event_id})
    assert words.record_text({"type": "infusion_stop", "event_id": 7}) == (
        "Record needs attention: an infusion stop that does not fit (event 7). "
        "Ask an administrator."
    )
