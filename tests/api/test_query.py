"""The shared query-string parsers: comma lists and RFC 3339 times."""

from __future__ import annotations

import pytest

from causeflow.api.query import comma_list, query_time
from causeflow.errors import ValidationFailed

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (" , ,", None),
        ("a", frozenset({"a"})),
        (" a, b,,a ", frozenset({"a", "b"})),
    ],
)
def test_comma_list(value: str | None, expected: frozenset[str] | None) -> None:
    assert comma_list(value) == expected


def test_query_time_reads_rfc3339_and_names_the_parameter_when_it_cannot() -> None:
    assert query_time("since", None) is None
    assert query_time("since", "1970-01-01T00:00:01Z") == 1000
    with pytest.raises(ValidationFailed) as caught:
        query_time("until", "yesterday")
    assert caught.value.details == {
        "errors": [{"path": "query.until", "message": "not an RFC 3339 time"}]
    }
