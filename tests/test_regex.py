"""The portable regex subset of ``matches``: what the scanner accepts and refuses, how
it respells patterns for the engines, and that every backend finds what the
reference evaluator finds."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import doqu
from doqu import Q, QueryError
from doqu._tree import check_regex, make_cond, regex_replace_end_anchor
from doqu.backend import compile_regex, matches

# Each with the strings it must find, by Python's re.search with "." matching a
# newline and "$" only at the very end.
ACCEPTED: list[tuple[str, list[str], list[str]]] = [
    # the patterns of issue 16
    (r"a\(?b", ["ab", "a(b", "xa(bx"], ["a((b", "a)b"]),
    ("[(?]", ["(", "?", "a?"], ["a", ")"]),
    ("a[.]b", ["a.b"], ["axb", "a\nb"]),
    (r"\\d", ["\\d", "a\\dc"], ["d", "\\", "7"]),
    (r"^\[:alpha:\]$", ["[:alpha:]"], ["a", ":", "x[:alpha:]", "[:alpha:]\n"]),
    # classes
    ("[]a]", ["]", "a", "x]"], ["b", "["]),
    ("[]]", ["]", "a]b"], ["a"]),
    ("[^]]", ["a", "]a"], ["]", "]]", ""]),
    (r"[a\]b]", ["a", "]", "b"], ["\\", "c"]),
    ("[\\\\]", ["\\", "a\\b"], ["a"]),
    ("[^\\\\]", ["a", "\\a"], ["\\", "\\\\"]),
    ("[$]", ["$", "a$b"], ["a"]),
    ("[$]$", ["a$", "$"], ["$a", "$\n"]),
    ("[:alpha:]", ["a", ":", "h"], ["b", "[", "]"]),
    ("[[]", ["[", "a[b"], ["]", "a"]),
    ("[a[]", ["[", "a"], ["]"]),
    ("[a-]", ["a", "-"], ["b"]),
    ("[-a]", ["a", "-"], ["b"]),
    ("[a-z-0]", ["q", "-", "0"], ["5", "A"]),
    ("[!--]", ["!", "+", "-"], [".", "a"]),
    (r"[\--/]", ["-", ".", "/"], [",", "0"]),
    ("[a&&b]", ["&", "a", "b"], ["c"]),
    ("[|&~]", ["|", "&", "~"], ["a"]),
    ("[\\^a]", ["^", "a"], ["b"]),
    ("[a^]", ["^", "a"], ["b"]),
    ("[^^]", ["a"], ["^", ""]),
    ("[.]", ["."], ["a"]),
    ("[=]", ["="], ["a"]),
    ("[à-ÿ]", ["é", "ÿ"], ["e", "Ā"]),
    ("^[^a]$", ["b", "\n", "é", "😀"], ["a", "bb", ""]),
    ("[😀]", ["😀"], ["😁"]),
    # escapes and other literals
    (r"\.", [".", "a.b"], ["a"]),
    ("\\\\", ["\\", "a\\b"], ["a"]),
    (r"\$", ["$", "a$b"], ["a"]),
    (r"a\$", ["a$"], ["a"]),
    (r"\$$", ["$", "a$"], ["$a", "$\n"]),
    (r"\^", ["^", "a^"], ["a"]),
    (r"^\^", ["^a"], ["a^"]),
    (r"\{\}", ["{}"], ["{", "}"]),
    ("a}", ["a}"], ["a"]),
    ("]", ["]"], ["["]),
    (r"a\ b", ["a b"], ["ab"]),
    ("\\—", ["—"], ["-"]),
    (r"(\(|\))", ["(", ")"], ["a"]),
    (r"a\|b", ["a|b"], ["a", "b"]),
    # quantifiers, anchors, groups, alternation
    ("x{2,3}", ["xx", "xxx", "xxxx"], ["x", "x x"]),
    ("^x{2,3}$", ["xx", "xxx"], ["x", "xxxx"]),
    ("^x{2}$", ["xx"], ["x", "xxx"]),
    ("^x{2,}$", ["xx", "xxxxx"], ["x"]),
    ("^x{0}$", [""], ["x"]),
    ("^x{007}$", ["xxxxxxx"], ["xxxxxx"]),
    ("^x{255}$", ["x" * 255], ["x" * 254]),
    ("x*?y", ["y", "xxy"], ["x"]),
    ("^x+?$", ["x", "xx"], [""]),
    ("^x??$", ["", "x"], ["xx"]),
    ("^x{2,3}?$", ["xx", "xxx"], ["x"]),
    ("a|b$", ["a", "xb", "ab\nb", "a\n"], ["b\n", "c"]),
    ("^(a|)b$", ["ab", "b"], ["aab"]),
    ("()", ["", "a"], []),
    ("(^)*a", ["a", "ba"], ["b"]),
    ("a.b", ["a.b", "a\nb"], ["ab"]),
    ("^.$", ["é", "😀", "\n"], ["", "ab"]),
    ("b$", ["ab"], ["b\n"]),
    ("^$", [""], ["\n", "a"]),
    ("$", ["", "a"], []),
    ("", ["", "a"], []),
    ("a^", [], ["a", "a^"]),
    ("((a))|b", ["a", "b"], ["c"]),
]

# Each with the piece the error names and its position.
REFUSED: list[tuple[str, str, int]] = [
    (r"\d", r"\d", 0),
    (r"a\w", r"\w", 1),
    (r"\1", r"\1", 0),
    (r"\b", r"\b", 0),
    (r"a\Z", r"\Z", 1),
    (r"\é", r"\é", 0),
    (r"[\d]", r"\d", 1),
    ("(?i)x", "(?", 0),
    ("a(?:b)", "(?", 1),
    ("(?=a)", "(?", 0),
    ("[[:alpha:]]", "[:", 1),
    ("[a[=a=]]", "[=", 2),
    ("[[.a.]]", "[.", 1),
    ("[a-[:]", "[:", 3),
    ("a{", "{", 1),
    ("a{x}", "{", 1),
    ("a{,3}", "{", 1),
    ("a{1", "{", 1),
    ("a{ 1}", "{", 1),
    ("{3}", "{3}", 0),
    ("*a", "*", 0),
    ("a|+b", "+", 2),
    ("(?a)", "(?", 0),
    ("(*a)", "*", 1),
    ("^*", "*", 1),
    ("a$?", "?", 2),
    ("a**", "*", 2),
    ("a*+", "+", 2),
    ("a{2}{3}", "{3}", 4),
    ("a???", "?", 3),
    ("a{256}", "{256}", 1),
    ("a{1,999999999999999999999}", "{1,999999999999999999999}", 1),
    ("a{3,2}", "{3,2}", 1),
    ("(a", "(", 0),
    ("((a)", "(", 0),
    ("a)", ")", 1),
    ("(a))", ")", 3),
    ("[a", "[", 0),
    ("[]", "[", 0),
    ("[^]", "[", 0),
    ("a\\", "\\", 1),
    ("[z-a]", "z-a", 1),
    (r"[a-\]]", r"a-\]", 1),
    ("a\x00", "\x00", 1),
    ("[\x00]", "\x00", 1),
    ("\\\x00", "\x00", 1),
    ("(" * 101 + ")" * 101, "(", 100),
]


# ------------------------------------------------------------------ the scanner
@pytest.mark.parametrize(("pattern", "found", "missed"), ACCEPTED)
def test_accepted_patterns_mean_what_python_says(
    pattern: str, found: list[str], missed: list[str]
) -> None:
    check_regex(pattern)
    Q(s__matches=pattern)  # no QueryError
    rx = compile_regex(pattern)
    assert [s for s in found if not rx.search(s)] == []
    assert [s for s in missed if rx.search(s)] == []


@pytest.mark.parametrize(("pattern", "piece", "position"), REFUSED)
def test_refused_patterns_name_the_piece_and_its_position(
    pattern: str, piece: str, position: int
) -> None:
    with pytest.raises(QueryError, match=re.escape(f"{piece!r} at position {position} ")):
        check_regex(pattern)
    with pytest.raises(QueryError):
        Q(s__matches=pattern)


def test_group_nesting_limit_and_count_limit_are_inclusive() -> None:
    check_regex("(" * 100 + "a" + ")" * 100)
    check_regex("a{255}b{0,255}c{255,}")


@pytest.mark.parametrize(
    ("pattern", "sent"),
    [
        ("a$", r"a\Z"),
        ("[$]$", r"[\$]\Z"),
        (r"\$$", r"\$\Z"),
        (r"[\$]", r"[\$]"),
        ("[^$]$|$", r"[^\$]\Z|\Z"),
        ("[]$]", r"[\]\$]"),
        ("[^]$]$", r"[^\]\$]\Z"),
        ("a[.]b", r"a[\.]b"),
        ("[:alpha:]", r"[\:alpha\:]"),
        ("[a-z-0]", r"[a-z\-0]"),
        ("a}]", r"a\}\]"),
        ("\\—\\ ", "— "),
        ("x{2,3}?y{007}z{1,}", "x{2,3}?y{7}z{1,}"),
        ("^(a|b)*.$", r"^(a|b)*.\Z"),
    ],
)
def test_the_end_anchor_is_rewritten_only_outside_classes_and_escapes(
    pattern: str, sent: str
) -> None:
    assert regex_replace_end_anchor(pattern, r"\Z") == sent


def test_rewriting_refuses_what_the_check_refuses() -> None:
    with pytest.raises(QueryError, match="at position 1"):
        regex_replace_end_anchor(r"a\d$", r"\z")


_PIECES = st.sampled_from([
    "a", "b", "x", "é", "\n", "-", ".", "^", "$", "|", "(", ")", "(?", "[", "[^", "]",
    "*", "+", "?", "{", "}", "{2}", "{1,2}", "{2,}", "{,2}", ":", "=", "&", "~",
    "\\", "\\.", "\\\\", "\\$", "\\]", "\\[", "\\-", "\\^", "\\d", "\\b", "\\(", "\\{",
])  # fmt: skip
_SUBJECTS = st.text(st.sampled_from("abxé\n-.^$|()[]{}:=&~\\d"), max_size=6).filter(
    lambda s: not s.endswith("\n")  # there, Python's "$" would also match before it
)


@settings(max_examples=400)
@given(st.lists(_PIECES, max_size=8).map("".join), st.lists(_SUBJECTS, max_size=8))
def test_whatever_is_accepted_finds_what_python_re_finds(pattern: str, texts: list[str]) -> None:
    """Differential: the scanner against Python's own reading of the raw pattern."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning on "[[" and "&&": still valid
            raw: re.Pattern[str] | None = re.compile(pattern, re.DOTALL)
    except re.error:
        raw = None
    try:
        check_regex(pattern)
    except QueryError:
        return
    assert raw is not None, "accepted a pattern Python's re refuses"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the respelled pattern draws no warning
        ours = compile_regex(pattern)
    for text in texts:
        assert bool(ours.search(text)) == bool(raw.search(text)), text


# ------------------------------------------------------------- every backend
STORED: dict[str, Any] = {
    f"t{i:02d}": text
    for i, text in enumerate(
        sorted({s for _, found, missed in ACCEPTED for s in found + missed if len(s) < 20})
    )
}
STORED.update({"num": 5, "list": ["ab", "a"], "null": None, "obj": {"s": "a"}})


def test_every_backend_finds_what_the_evaluator_finds(db: doqu.Storage) -> None:
    """``where(s__matches=p)`` and ``where_not`` agree with the reference evaluator."""
    db.save_many(
        [{"pk": pk, "s": value} for pk, value in STORED.items()]
        + [{"pk": "missing", "other": "a"}],
        collection="rx",
    )
    rows = [(pk, {"s": value}) for pk, value in STORED.items()] + [("missing", {"other": "a"})]
    everything = {pk for pk, _ in rows}
    wrong = []
    for pattern, _, _ in ACCEPTED:
        cond = make_cond("s__matches", pattern)
        want = {pk for pk, data in rows if matches(cond, pk, data)}
        got = {d["pk"] for d in db.query("rx").where(s__matches=pattern)}
        rest = {d["pk"] for d in db.query("rx").where_not(s__matches=pattern)}
        if got != want or rest != everything - want:
            wrong.append((pattern, sorted(got ^ want), sorted(rest ^ (everything - want))))
    assert wrong == []
