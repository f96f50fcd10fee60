"""The check every hostile-input test ends with: the server logged no traceback.

A server in the test process logs through ``logging`` (asyncio's own "exception was
never retrieved" and "Fatal error on transport" reports too), so pytest's ``caplog``
holds every line it wrote; a record with ``exc_info`` is printed as a traceback.
"""

from __future__ import annotations

import logging

import pytest


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Fail with the offending lines if any captured record carries a traceback."""
    bad = [record for record in caplog.records
           if record.exc_info is not None or "Traceback" in record.getMessage()]
    assert not bad, "server logged a traceback:\n" + "\n".join(
        logging.Formatter().format(record) for record in bad)
