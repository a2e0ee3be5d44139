"""Assertion helpers shared by the MicroPython test files (MicroPython has no pytest.raises)."""


def raises(exc, fn, text=None):
    """Run `fn()`; it must raise `exc`, with `text` in its message if given. Returns the error."""
    try:
        fn()
    except exc as e:
        if text is not None:
            assert text in str(e), str(e)
        return e
    raise AssertionError("{} not raised".format(exc.__name__))
