"""CPython stand-in for MicroPython's `micropython` module, so sans-I/O cores import on CPython."""


def const(x):
    return x


def schedule(fn, arg):
    fn(arg)


def heap_lock():
    return 0


def heap_unlock():
    return 0
