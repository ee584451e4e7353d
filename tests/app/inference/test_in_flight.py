"""The one count of requests in flight: taken at admission, given back whatever happens."""

import pytest

from app.inference.in_flight import InFlight
from app.inference.work_shares import ServerBusyError


def test_a_place_is_taken_until_the_request_ends_and_none_beyond_the_limit():
    in_flight = InFlight(2)
    with in_flight.admitted(), in_flight.admitted():
        assert (in_flight.count, in_flight.full) == (2, True)
        with pytest.raises(ServerBusyError), in_flight.admitted():
            pass
        assert in_flight.count == 2  # a refusal takes nothing
    assert (in_flight.count, in_flight.full) == (0, False)


def test_a_failed_request_gives_its_place_back():
    in_flight = InFlight(1)
    with pytest.raises(ValueError, match="failed"), in_flight.admitted():
        raise ValueError("the request failed")
    assert in_flight.count == 0


def test_without_a_limit_it_only_counts():
    in_flight = InFlight()
    with in_flight.admitted(), in_flight.admitted():
        assert (in_flight.count, in_flight.full) == (2, False)
