"""ext.SlotTable: instances of a __slots__ class made with every slot None and read as a tuple, both implementations."""
from __future__ import annotations

import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.enriched import FIELDS, EnrichedEvent


class Point:
    __slots__ = ("x", "y", "z")

    def __init__(self):
        raise AssertionError("new() does not call __init__")


class Point3(Point):
    __slots__ = ("w",)


class Other:  # the same slot names, another class: read by name, never by place
    __slots__ = ("x", "y", "z")


class WithProperty:
    __slots__ = ("x",)
    y = property(lambda self: 1)
    z = 3


def test_new_sets_every_slot_to_none_without_calling_init(codec):
    table = codec.SlotTable(Point, ("x", "y", "z"))
    point = table.new()
    assert type(point) is Point and (point.x, point.y, point.z) == (None, None, None)
    assert table.values(point) == (None, None, None)


def test_values_are_the_slots_in_the_order_named(codec):
    table = codec.SlotTable(Point, ("z", "x"))
    point = table.new()
    point.x, point.z = "a", [1]
    assert table.values(point) == ([1], "a")
    assert table.values(point)[0] is point.z


def test_a_slot_not_set_is_an_attribute_error_as_attrgetter_raises_it(codec):
    table = codec.SlotTable(Point, ("x", "y"))
    point = table.new()
    del point.y
    with pytest.raises(AttributeError) as got:
        table.values(point)
    with pytest.raises(AttributeError) as expected:
        operator.attrgetter("x", "y")(point)
    assert str(got.value) == str(expected.value)


def test_a_subclass_or_another_class_is_read_by_name(codec):
    table = codec.SlotTable(Point, ("x", "y"))
    sub = Point3.__new__(Point3)
    sub.x, sub.y, sub.w = 1, 2, 3
    assert table.values(sub) == (1, 2)
    other = Other()
    other.x, other.y = "o", "p"
    assert table.values(other) == ("o", "p")
    with pytest.raises(AttributeError):
        table.values(object())


@pytest.mark.parametrize("cls,names,message", [
    (Point, ("x", "nope"), "Point.nope is not a slot"),
    (WithProperty, ("y",), "WithProperty.y is not a slot"),
    (WithProperty, ("z",), "WithProperty.z is not a slot"),
    (Point, (1,), "slot names must be str, not int"),
    ("Point", ("x",), "cls must be a class, not str"),
])
def test_what_is_not_a_slot_of_the_class_is_refused(codec, cls, names, message):
    with pytest.raises(TypeError) as info:
        codec.SlotTable(cls, names)
    assert str(info.value) == message


def test_no_names_reads_an_empty_tuple(codec):
    table = codec.SlotTable(Point, ())
    assert table.values(table.new()) == ()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.none(), st.text(max_size=5), st.integers()),
                       max_size=40))
def test_the_enriched_event_reads_as_attrgetter_reads_it(fields):
    import ext

    table = ext.SlotTable(EnrichedEvent, FIELDS)
    event = table.new()
    for name, value in fields.items():
        setattr(event, name, value)
    assert table.values(event) == operator.attrgetter(*FIELDS)(event) == operator.attrgetter(*FIELDS)(
        EnrichedEvent(**fields))


def test_one_name_whose_value_is_a_tuple_reads_as_a_tuple_of_it(codec):
    table = codec.SlotTable(Point, ("x",))
    point = table.new()
    point.x = (1, 2)
    assert table.values(point) == ((1, 2),)
