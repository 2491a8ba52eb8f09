"""The shell's statement splitter (pure): `;` ends a statement outside quotes and comments only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from skewless.sql.statements import is_blank, split_statements


def test_statements_end_at_semicolons_outside_quotes_and_comments() -> None:
    text = ("SELECT ';' AS a, \"x;y\" AS b, `c;d` FROM t; -- a comment; with a semicolon\n"
            "SELECT 'it\\'s;' /* block; comment */ FROM u;\n  ;  -- only a comment;\nSELECT 3")
    split = split_statements(text)
    assert split.statements == ("SELECT ';' AS a, \"x;y\" AS b, `c;d` FROM t",
                                "-- a comment; with a semicolon\nSELECT 'it\\'s;' /* block; comment */ FROM u")
    assert split.rest == "  -- only a comment;\nSELECT 3"
    assert not is_blank(split.rest) and is_blank("  -- x;\n /* y; */ ")


def test_an_unfinished_statement_waits_for_more_lines() -> None:
    first = split_statements("SELECT 'a;\n")
    assert first.statements == () and first.rest == "SELECT 'a;\n"
    second = split_statements(first.rest + "b' AS x;\n")
    assert second.statements == ("SELECT 'a;\nb' AS x",) and second.rest == "\n"


_plain = st.text(alphabet="abc XYZ019_=(),.*\n", min_size=1, max_size=30).filter(lambda s: s.strip() != "")
_quoted = st.text(alphabet="ab;- */\n", max_size=10).map(lambda s: f"'{s}'")


@given(st.lists(st.lists(st.one_of(_plain, _quoted), min_size=1, max_size=4).map("".join), min_size=1, max_size=5))
def test_joined_statements_split_back(statements: list[str]) -> None:
    statements = [s for s in statements if s.strip()]
    text = "".join(s + ";" for s in statements)
    split = split_statements(text)
    assert split.statements == tuple(s.strip() for s in statements if not is_blank(s))
    assert split.rest == ""
