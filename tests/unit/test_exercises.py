"""The exercise checker: right answers accepted, wrong ones refused, typed numbers read as a person writes
them, and per-student instances reproducible and distinct."""

import math

import numpy as np
import pytest

from explorer.analysis.exercises import Exercise, instance_rng, parse_number


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.25", 0.25), (" 1/4 ", 0.25), ("-1.5e-3", -1.5e-3), ("1,234.5", 1234.5), ("0,25", 0.25),
     ("−2", -2.0), ("1,234", 1234.0), ("+3", 3.0)],
)  # fmt: skip
def test_numbers_are_read_as_people_type_them(text, value):
    assert parse_number(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["", "   ", "abc", "1/0", "nan", "inf", "1..2", None])
def test_what_is_not_a_finite_number_is_refused(text):
    assert parse_number(text) is None


def test_a_number_is_right_within_its_tolerance_and_wrong_outside():
    ex = Exercise("x", "What is 1/3?", 1 / 3, hint="Divide.", solution="1/3 ≈ 0.3333", tolerance=0.005)
    assert ex.check("0.333").right and ex.check("1/3").right and ex.check("0.337").right
    assert not ex.check("0.34").right and not ex.check("-0.333").right
    wrong = ex.check("0.5")
    assert not wrong.right and wrong.given == 0.5
    unreadable = ex.check("a third")
    assert not unreadable.right and unreadable.given is None and "not a number" in unreadable.message


def test_a_choice_is_right_only_for_its_index():
    ex = Exercise("c", "Which?", 2, hint="h", solution="s", choices=("a", "b", "c"))
    assert ex.check(2).right
    assert not any(ex.check(i).right for i in (0, 1))
    assert not ex.check(None).right and ex.check(None).given is None
    assert not ex.check(7).right


def test_malformed_exercises_are_refused_when_written():
    with pytest.raises(ValueError):
        Exercise("c", "q", 3, hint="h", solution="s", choices=("a", "b"))
    with pytest.raises(ValueError):
        Exercise("n", "q", 1.0, hint="h", solution="s")  # no tolerance
    with pytest.raises(ValueError):
        Exercise("n", "q", math.nan, hint="h", solution="s", tolerance=0.1)


def test_instances_repeat_per_seed_and_differ_between_seeds_and_exercises():
    a = instance_rng(7, "markov", "stationary").standard_normal(5)
    assert np.array_equal(a, instance_rng(7, "markov", "stationary").standard_normal(5))
    assert not np.allclose(a, instance_rng(8, "markov", "stationary").standard_normal(5))
    assert not np.allclose(a, instance_rng(7, "markov", "mixing").standard_normal(5))
