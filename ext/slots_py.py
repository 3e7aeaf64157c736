"""Instances of a ``__slots__`` class made with every slot None, and read as a tuple, pure Python.

The twin of ``ext/_slots.pyx``: same class, same results, same errors.

``SlotTable(cls, names)`` is for a class whose ``names`` are all its own
writable slots (``__slots__``; a name that is not one is a ``TypeError``).
``table.new()`` is a new instance without calling ``__init__``, every one of
``names`` set to None; ``table.values(obj)`` the tuple of ``obj``'s values for
``names`` in order, as ``operator.attrgetter(*names)(obj)`` gives it (an
``AttributeError`` for a slot that is not set; any object, subclasses of ``cls``
included).

The enriched event (``processor.enriched``) has 131 slots: made and read once
per event, a generated ``__init__`` and ``attrgetter`` cost about 1 and 2 µs; the
compiled twin reads and writes the slots where they are in the instance.
"""
from __future__ import annotations

import operator
from types import MemberDescriptorType
from typing import Any

__all__ = ["SlotTable"]


def check_slots(cls: type, names: tuple[str, ...]) -> None:
    """``TypeError`` unless every one of ``names`` is a slot of ``cls`` (a member descriptor found on it)."""
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a class, not {type(cls).__name__}")
    for name in names:
        if type(name) is not str:
            raise TypeError(f"slot names must be str, not {type(name).__name__}")
        descriptor = getattr(cls, name, None)
        if type(descriptor) is not MemberDescriptorType or descriptor.__name__ != name:
            raise TypeError(f"{cls.__name__}.{name} is not a slot")


class SlotTable:
    """See the module docstring."""

    def __init__(self, cls: type, names) -> None:
        names = tuple(names)
        check_slots(cls, names)
        self.cls, self.names = cls, names
        # attrgetter of one name gives the value itself, not a tuple of one
        self._get = operator.attrgetter(*names) if len(names) > 1 else \
            (lambda obj: tuple(getattr(obj, name) for name in names))
        self._setters = tuple(getattr(cls, name).__set__ for name in names)

    def new(self) -> Any:
        obj = self.cls.__new__(self.cls)
        for set_slot in self._setters:
            set_slot(obj, None)
        return obj

    def values(self, obj: Any) -> tuple:
        return self._get(obj)
