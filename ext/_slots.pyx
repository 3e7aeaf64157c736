# cython: language_level=3, boundscheck=False, wraparound=False
"""Instances of a ``__slots__`` class made with every slot None, and read as a tuple, compiled.

The twin of ``ext/slots_py.py`` (read its docstring): same class, same results,
same errors.  Each slot's place in the instance is taken from its member
descriptor once (``PyMemberDescrObject.d_member->offset``, a slot being a
``Py_T_OBJECT_EX`` member); an instance of exactly ``cls`` is then made and read
there, without a lookup per slot.  Any other object (a subclass) is read
attribute by attribute.
"""

__all__ = ["SlotTable"]

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.stdlib cimport malloc, free

from .slots_py import check_slots

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
        int type
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    int T_OBJECT_EX
    int READONLY
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object v)


cdef class SlotTable:
    """See ``ext/slots_py.py``."""

    cdef readonly object cls
    cdef readonly tuple names
    cdef Py_ssize_t* offsets
    cdef Py_ssize_t count

    def __cinit__(self):
        self.offsets = NULL
        self.count = 0

    def __init__(self, cls, names):
        names = tuple(names)
        check_slots(cls, names)
        cdef Py_ssize_t n = len(names), i
        cdef Py_ssize_t* offsets = <Py_ssize_t*>malloc((n if n else 1) * sizeof(Py_ssize_t))
        cdef PyMemberDef* member
        cdef object descriptor
        if offsets == NULL:
            raise MemoryError()
        for i in range(n):
            descriptor = getattr(cls, names[i])  # a member descriptor: check_slots made sure
            member = (<PyMemberDescrObject*><PyObject*>descriptor).d_member
            if member.type != T_OBJECT_EX or member.flags & READONLY:
                free(offsets)
                raise TypeError(f"{cls.__name__}.{names[i]} is not a writable object slot")
            offsets[i] = member.offset
        free(self.offsets)
        self.offsets, self.count = offsets, n
        self.cls, self.names = cls, names

    def __dealloc__(self):
        free(self.offsets)

    def new(self):
        obj = self.cls.__new__(self.cls)
        if type(obj) is not self.cls:  # a __new__ of its own made something else: leave it to the slots
            for name in self.names:
                setattr(obj, name, None)
            return obj
        cdef char* base = <char*><PyObject*>obj
        cdef PyObject** slot
        cdef Py_ssize_t i
        for i in range(self.count):
            slot = <PyObject**>(base + self.offsets[i])
            if slot[0] == NULL:  # as object.__new__ leaves it; anything there already is kept
                Py_INCREF(None)
                slot[0] = <PyObject*>None
        return obj

    def values(self, obj):
        cdef Py_ssize_t i
        cdef PyObject* value
        cdef char* base
        if type(obj) is not self.cls:
            return tuple([getattr(obj, name) for name in self.names])
        base = <char*><PyObject*>obj
        out = PyTuple_New(self.count)
        for i in range(self.count):
            value = (<PyObject**>(base + self.offsets[i]))[0]
            if value == NULL:
                raise AttributeError(f"'{self.cls.__name__}' object has no attribute '{self.names[i]}'")
            Py_INCREF(<object>value)
            PyTuple_SET_ITEM(out, i, <object>value)
        return out
