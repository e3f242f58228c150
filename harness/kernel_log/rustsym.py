"""Rust v0 symbol names as a title names them.

A Rust frame is titled by its function, as a C one is. A method of a trait impl is
ambiguous by its name alone (`mmap` is every `MiscDevice`'s), so, as the Rust
demangler prints it, it is titled `<Type as Trait>::method`
(`<ashmem_rust::Ashmem as kernel::miscdevice::MiscDevice>::mmap`); any other Rust
function by its last path segment (`copy_transaction_data`).

Only the part of the v0 grammar such paths use is read (crate roots, nested paths,
inherent and trait impls, back-references); anything else falls back to the last
segment.
"""

from __future__ import annotations

import re

_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_IDENT = re.compile(r"(\d+)_?")


class _Unsupported(Exception):
    """A v0 construct this reader does not handle."""


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text  # the symbol without its `_R` prefix
        self.pos = 0

    def _next(self) -> str:
        if self.pos >= len(self.text):
            raise _Unsupported
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def _base62(self) -> int:
        """`_` is 0, else the base-62 digits then `_` are the value plus one."""
        if self.text.startswith("_", self.pos):
            self.pos += 1
            return 0
        value = 0
        while (ch := self._next()) != "_":
            if ch not in _BASE62:
                raise _Unsupported
            value = value * 62 + _BASE62.index(ch)
        return value + 1

    def _disambiguator(self) -> None:
        if self.text.startswith("s", self.pos):
            self.pos += 1
            self._base62()

    def _ident(self) -> str:
        self._disambiguator()
        if self.text.startswith("u", self.pos):
            raise _Unsupported  # punycode
        m = _IDENT.match(self.text, self.pos)
        if m is None:
            raise _Unsupported
        n = int(m.group(1))
        start = m.end()
        self.pos = start + n
        if self.pos > len(self.text):
            raise _Unsupported
        return self.text[start : self.pos]

    def path(self) -> str:
        tag = self._next()
        if tag == "C":
            return self._ident()
        if tag == "N":
            ns = self._next()
            parent = self.path()
            name = self._ident()
            if ns.isupper():  # closures, shims: no plain name
                raise _Unsupported
            return f"{parent}::{name}"
        if tag == "M":
            self._disambiguator()
            self.path()  # the impl's module
            return f"<{self.path()}>"
        if tag == "X":
            self._disambiguator()
            self.path()  # the impl's module
            type_ = self.path()
            return f"<{type_} as {self.path()}>"
        if tag == "B":
            return self._backref()
        raise _Unsupported

    def _backref(self) -> str:
        target = self._base62()
        back, self.pos = self.pos, target
        try:
            return self.path()
        finally:
            self.pos = back


def _last_segment(name: str) -> str:
    """The trailing identifier whose length prefix matches it exactly."""
    for m in _IDENT.finditer(name, 2):
        ident = name[m.end() :]
        if int(m.group(1)) == len(ident) and ident and not ident[0].isdigit():
            return ident
    return name


def rust_name(name: str) -> str:
    """`_RNvXs1_Cs.._11ashmem_rustNtB5_6AshmemNtNtCs.._6kernel10miscdevice10MiscDevice4mmap`
    -> `<ashmem_rust::Ashmem as kernel::miscdevice::MiscDevice>::mmap`; a function
    outside trait impls -> its last segment."""
    try:
        full = _Reader(name[2:]).path()
    except (_Unsupported, ValueError, RecursionError):
        return _last_segment(name)
    if full.startswith("<") and " as " in full:
        head, _, method = full.rpartition("::")
        if head.endswith(">") and head.count("<") == 1:
            return f"{head}::{method}"
    return _last_segment(name)
