"""RFC 3339 date-time text <-> Unix time, without the port's time module.

OCPP 1.6 sends every timestamp as an RFC 3339 `date-time` (section 5.6 of the RFC); we send UTC
with `Z`. The conversion uses a days-from-civil calculation on the proleptic Gregorian calendar,
not `time.mktime`/`gmtime`, because the epoch differs between MicroPython ports (2000 on some,
1970 on others). Results are integers: ESP32 floats are single precision, and a 1.7e9 float has
128 s steps, so fractions of a second are dropped (`parse_rfc3339`) or returned as integer
milliseconds (`parse_rfc3339_ms`).

Accepted form: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`, `T` and `Z` in either case (RFC
3339 section 5.6 note), ASCII digits only, year 0001-9999, real calendar days (leap years),
hour 00-23, minute 00-59, second 00-59 (no leap second, like the `rfc3339-validator` the CSMS
side uses), offset hour 00-23 and minute 00-59, one or more fraction digits. Nothing else:
no missing offset, no space separator, no surrounding whitespace.
"""

_SECS_PER_DAY = 86400


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of the Gregorian date y-m-d (any year, month 1-12, day 1-31)."""
    # Count years from March, so the leap day is the last day of the counted year.
    if m <= 2:
        y -= 1
    era = y // 400  # floor division: also right for years before 0
    yoe = y - era * 400  # 0..399
    mp = m - 3 if m > 2 else m + 9  # March = 0 .. February = 11
    doy = (153 * mp + 2) // 5 + d - 1  # 0..365
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy  # 0..146096
    return era * 146097 + doe - 719468  # 719468 = days from 0000-03-01 to 1970-01-01


def civil_from_days(z):
    """Inverse of days_from_civil: (year, month, day) of day z since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400
    if m <= 2:
        y += 1
    return y, m, d


def _is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _days_in_month(y, m):
    if m == 2:
        return 29 if _is_leap(y) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _digits(s, i, n):
    """The value of the n ASCII digits of s at i; ValueError if any is not one."""
    v = 0
    for k in range(i, i + n):
        c = ord(s[k]) - 48
        if c < 0 or c > 9:
            raise ValueError("date-time: digit expected")
        v = v * 10 + c
    return v


def _parse(s):
    """Unix milliseconds of s (allocates nothing where ints are small); ValueError if invalid."""
    if type(s) is not str:
        raise ValueError("date-time: not a string")
    n = len(s)
    if n < 20:
        raise ValueError("date-time: too short")
    if s[4] != "-" or s[7] != "-" or s[10] not in "Tt" or s[13] != ":" or s[16] != ":":
        raise ValueError("date-time: bad separators")
    y = _digits(s, 0, 4)
    mo = _digits(s, 5, 2)
    d = _digits(s, 8, 2)
    h = _digits(s, 11, 2)
    mi = _digits(s, 14, 2)
    sec = _digits(s, 17, 2)
    if y < 1 or mo < 1 or mo > 12 or d < 1 or d > _days_in_month(y, mo):
        raise ValueError("date-time: no such date")
    if h > 23 or mi > 59 or sec > 59:
        raise ValueError("date-time: no such time")
    i = 19
    ms = 0
    if s[i] == ".":
        i += 1
        start = i
        while i < n and "0" <= s[i] <= "9":
            if i - start < 3:
                ms = ms * 10 + ord(s[i]) - 48
            i += 1
        if i == start:
            raise ValueError("date-time: empty fraction")
        for _ in range(i - start, 3):
            ms *= 10
    if i >= n:
        raise ValueError("date-time: offset missing")
    c = s[i]
    if c == "Z" or c == "z":
        off = 0
        i += 1
    elif c == "+" or c == "-":
        if n - i < 6 or s[i + 3] != ":":
            raise ValueError("date-time: bad offset")
        oh = _digits(s, i + 1, 2)
        om = _digits(s, i + 4, 2)
        if oh > 23 or om > 59:
            raise ValueError("date-time: bad offset")
        off = oh * 3600 + om * 60
        if c == "-":
            off = -off
        i += 6
    else:
        raise ValueError("date-time: bad offset")
    if i != n:
        raise ValueError("date-time: trailing text")
    secs = days_from_civil(y, mo, d) * _SECS_PER_DAY + h * 3600 + mi * 60 + sec - off
    return secs * 1000 + ms


def parse_rfc3339(s):
    """Unix seconds (int, fraction dropped) of an RFC 3339 date-time; ValueError when invalid."""
    return _parse(s) // 1000  # floor: the fraction is never negative


def parse_rfc3339_ms(s):
    """Unix milliseconds (int; fraction digits past the third dropped); ValueError if invalid."""
    return _parse(s)


def format_rfc3339(unix_s):
    """`YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (an int; a float is floored).

    Raises ValueError outside years 0001-9999.
    """
    t = int(unix_s // 1)
    days = t // _SECS_PER_DAY
    rem = t - days * _SECS_PER_DAY
    y, m, d = civil_from_days(days)
    if y < 1 or y > 9999:
        raise ValueError("date-time: year out of range")
    return "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(
        y, m, d, rem // 3600, rem // 60 % 60, rem % 60
    )
