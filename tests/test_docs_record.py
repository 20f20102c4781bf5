"""docs/record.md lists exactly the record's fields, and marks required exactly those the
shipped JSON Schema requires: the page cannot drift from what is written."""

from __future__ import annotations

import json
import re

from tests.conftest import REPO

ROW = re.compile(r"^\| `(\w+)` \| [^|]+ \| (yes|no) \|", re.MULTILINE)


def documented() -> dict[str, bool]:
    text = (REPO / "docs" / "record.md").read_text(encoding="utf-8")
    fields = text.split("## Fields", 1)[1].split("\n## ", 1)[0]
    return {name: flag == "yes" for name, flag in ROW.findall(fields)}


def test_record_page_lists_every_schema_field_and_what_is_required() -> None:
    schema = json.loads((REPO / "alertpull" / "schema" / "record.schema.json").read_text())
    rows = documented()
    assert set(rows) == set(schema["properties"])
    assert {name for name, required in rows.items() if required} == set(schema["required"])
