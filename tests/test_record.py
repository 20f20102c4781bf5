"""The record's identity and time rendering agree with their definitions for any input.

These helpers run once per alert and are written for speed (see bench/), so each is
checked here against the plain standard-library form it replaces.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertpull.record import ID_NAMESPACE, parse_json, record_id
from alertpull.timeutil import format_time, parse_time, to_epoch_ms

AWARE = st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=9)),
                                                timezone(timedelta(hours=-5, minutes=-30))]))


@given(st.text())
def test_record_id_is_the_uuid5_of_the_dedup_key(key: str) -> None:
    assert record_id(key) == str(uuid.uuid5(ID_NAMESPACE, key))


@given(AWARE)
def test_format_time_is_utc_milliseconds_with_z(moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    assert format_time(moment) == f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
    assert parse_time(format_time(moment)) == utc.replace(microsecond=utc.microsecond // 1000
                                                          * 1000)


@given(AWARE)
def test_to_epoch_ms_is_exact(moment: datetime) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert to_epoch_ms(moment) == (moment - epoch) // timedelta(milliseconds=1)


@given(st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=20))
def test_parse_json_reads_what_json_reads(value: object) -> None:
    body = json.dumps(value).encode()
    assert parse_json(body) == json.loads(body)


def test_parse_json_reads_what_only_json_accepts_and_refuses_what_is_not_json() -> None:
    assert math.isnan(parse_json(b'{"score": NaN}')["score"])
    for body in (b"<html>Bad Gateway</html>", b'{"value": [', b"\xff\xfe{}"):
        with pytest.raises(ValueError):
            parse_json(body)
