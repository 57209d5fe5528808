"""Protobuf conversions every service makes the same way."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(when: dt.datetime | None = None) -> Timestamp:
    """A protobuf Timestamp of `when` (now, in UTC, when omitted)."""
    ts = Timestamp()
    ts.FromDatetime(when if when is not None else dt.datetime.now(dt.UTC))
    return ts


def optional_timestamp(when: dt.datetime | None) -> Timestamp | None:
    """A Timestamp, or None (the field stays unset) when there is no time."""
    return None if when is None else timestamp(when)
