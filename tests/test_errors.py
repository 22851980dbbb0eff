"""mnistlab.errors: the UserError family and `one_line`."""

from __future__ import annotations

import pytest

from mnistlab.errors import NoDigitError, NoInkError, UserError, one_line


def test_the_kinds_nest_so_one_except_catches_them_all():
    assert issubclass(NoDigitError, NoInkError) and issubclass(NoInkError, UserError)
    with pytest.raises(UserError):
        raise NoDigitError("no digit found in x.png: a speck")


def test_one_line_folds_whitespace_and_falls_back_to_the_type_name():
    assert one_line(ValueError("bad\n  value\tthere ")) == "bad value there"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(OSError("  \n ")) == "OSError"


def test_the_package_exports_user_error():
    import mnistlab

    assert mnistlab.UserError is UserError
