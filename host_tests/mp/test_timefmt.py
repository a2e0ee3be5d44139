"""ocpp16.timefmt in the Unix port: RFC 3339 parse/format, calendar arithmetic, bad input."""
# mp-heapsize: 64K

from ocpp16.timefmt import (
    parse_rfc3339,
    parse_rfc3339_ms,
    format_rfc3339,
    days_from_civil,
    civil_from_days,
)

# (text, unix seconds, milliseconds of the fraction)
VALID = (
    ("1970-01-01T00:00:00Z", 0, 0),
    ("1970-01-01T00:00:00.999Z", 0, 999),
    ("1969-12-31T23:59:59Z", -1, 0),
    ("2000-02-29T00:00:00Z", 951782400, 0),  # leap: divisible by 400
    ("2024-02-29T12:30:45Z", 1709209845, 0),
    ("2038-01-19T03:14:08Z", 2147483648, 0),  # past the signed 32-bit rollover
    ("2024-06-01T12:00:00.5Z", 1717243200, 500),
    ("2024-06-01T12:00:00.05Z", 1717243200, 50),
    ("2024-06-01T12:00:00.123456789Z", 1717243200, 123),
    ("2024-06-01T14:00:00+02:00", 1717243200, 0),
    ("2024-06-01T06:30:00-05:30", 1717243200, 0),
    ("2024-06-01T12:00:00-00:00", 1717243200, 0),
    ("2024-06-01T12:00:00+00:00", 1717243200, 0),
    ("2024-06-02T11:59:00+23:59", 1717243200, 0),
    ("2024-06-01t12:00:00z", 1717243200, 0),  # RFC 3339 5.6: t and z may be lower case
    ("2024-12-31T23:59:59.1+00:00", 1735689599, 100),
    ("0001-01-01T00:00:00Z", -62135596800, 0),
    ("9999-12-31T23:59:59Z", 253402300799, 0),
)

INVALID = (
    "",
    "yesterday",
    "2024-06-01",
    "2024-06-01T12:00:00",  # no offset: not RFC 3339
    "2024-06-01 12:00:00Z",  # space separator
    "2024-06-01T12:00Z",
    "2024-06-01T12:00:00ZZ",
    "2024-06-01T12:00:00Z ",
    " 2024-06-01T12:00:00Z",
    "2024-06-01T12:00:00Z\n",
    "2024-06-01T12:00:00.Z",
    "2024-06-01T12:00:00,5Z",
    "2024-06-01T12:00:00+0200",
    "2024-06-01T12:00:00+02",
    "2024-06-01T12:00:00+24:00",
    "2024-06-01T12:00:00+02:60",
    "2024-06-01T24:00:00Z",
    "2024-06-01T12:60:00Z",
    "2024-06-01T12:00:60Z",  # no leap seconds, like rfc3339-validator
    "2023-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",  # not leap: divisible by 100, not by 400
    "2024-04-31T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-00-01T00:00:00Z",
    "2024-01-00T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "+2024-01-01T00:00:00Z",
    "2024-1-01T00:00:00Z",
    "20240601T120000Z",
    "2024-06-01T12:00:00.1.2Z",
    "２０２４-06-01T12:00:00Z",  # full-width digits
    "2024-06-01T1a:00:00Z",
    "2024-06-01T12:00:00+02:00:00",
)


def test_valid_strings_parse_to_unix_seconds_and_milliseconds():
    for text, secs, ms in VALID:
        assert parse_rfc3339(text) == secs, text
        assert parse_rfc3339_ms(text) == secs * 1000 + ms, text


def test_results_are_integers():
    # Single-precision floats (ESP32) would lose minutes on 1.7e9 s.
    assert type(parse_rfc3339("2024-06-01T12:00:00.5Z")) is int
    assert type(parse_rfc3339_ms("2024-06-01T12:00:00.5Z")) is int


def test_invalid_strings_raise_value_error():
    for text in INVALID:
        try:
            parse_rfc3339(text)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % text)


def test_non_strings_raise_value_error():
    for v in (None, 5, b"2024-06-01T12:00:00Z", ["2024-06-01T12:00:00Z"]):
        try:
            parse_rfc3339(v)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (v,))


def test_format_gives_utc_with_z():
    assert format_rfc3339(0) == "1970-01-01T00:00:00Z"
    assert format_rfc3339(1709209845) == "2024-02-29T12:30:45Z"
    assert format_rfc3339(-1) == "1969-12-31T23:59:59Z"
    assert format_rfc3339(2147483648) == "2038-01-19T03:14:08Z"
    assert format_rfc3339(253402300799) == "9999-12-31T23:59:59Z"
    assert format_rfc3339(1717243200.9) == "2024-06-01T12:00:00Z"  # floats floored
    assert format_rfc3339(-0.5) == "1969-12-31T23:59:59Z"


def test_format_outside_years_1_to_9999_raises():
    for t in (253402300800, -62135596801):
        try:
            format_rfc3339(t)
        except ValueError:
            continue
        raise AssertionError(t)


def test_round_trip_text_to_seconds_to_text():
    for _text, secs, _ms in VALID:
        assert parse_rfc3339(format_rfc3339(secs)) == secs
    for text in ("2024-02-29T23:59:59Z", "2100-03-01T00:00:00Z", "1999-12-31T23:59:59Z"):
        assert format_rfc3339(parse_rfc3339(text)) == text


def test_round_trip_seconds_across_many_instants():
    t = -2000000000
    while t < 4200000000:
        assert parse_rfc3339(format_rfc3339(t)) == t, t
        t += 86400 * 37 + 3607  # walks through every month, hour and leap day over the years


def test_days_from_civil_known_values():
    assert days_from_civil(1970, 1, 1) == 0
    assert days_from_civil(2000, 1, 1) == 10957  # MicroPython's embedded epoch
    assert days_from_civil(2000, 3, 1) == 11017
    assert days_from_civil(1969, 12, 31) == -1
    assert days_from_civil(1, 1, 1) == -719162


def test_civil_from_days_inverts_days_from_civil_day_by_day():
    # 1896..2104: crosses 1900 and 2100 (not leap) and 2000 (leap).
    y, m, d = 1896, 1, 1
    z = days_from_civil(y, m, d)
    while y < 2104:
        assert civil_from_days(z) == (y, m, d), (y, m, d)
        z += 1
        d += 1
        leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        dim = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[m - 1]
        if d > dim:
            d = 1
            m += 1
            if m > 12:
                m = 1
                y += 1
        assert days_from_civil(y, m, d) == z
