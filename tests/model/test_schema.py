from __future__ import annotations

import pytest

from vigil.model.schema import FileSpec, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("8760h", 8760 * 3600), ("30m", 1800), ("1d12h", 36 * 3600), ("1y", 365 * 86400), ("2h15m", 8100), ("1.5h", 5400),
     ("250ms", 0.25), ("1w", 7 * 86400), ("45s", 45)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "h", "10", "10 years", "1h30", "-1h", "1h-1m"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_json_schema_describes_the_file_format() -> None:
    schema = FileSpec.model_json_schema()
    assert schema["title"] == "Vigil model"
    component = schema["$defs"]["ComponentSpec"]
    assert {"id", "kind", "runs_on", "depends_on", "domains", "mtbf", "mttr", "availability", "slo", "tier"} <= set(
        component["properties"]
    )
    assert component["additionalProperties"] is False
    assert "critical" in str(schema["$defs"]["Tier"])
