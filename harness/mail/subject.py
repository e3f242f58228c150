"""What a subject line says: a reply or not, and its [PATCH ...] tag (RFC, RESEND, vN,
M/K), as `git format-patch --subject-prefix` and the list's habits write it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_REPLY = re.compile(r"^\s*((re|aw|fwd?)\s*:\s*)+", re.I)
_TAG = re.compile(r"^\s*\[([^\]]*\bPATCH\b[^\]]*)\]\s*", re.I)
_VERSION = re.compile(r"^v(\d+)$", re.I)
_NUMBER = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Subject:
    text: str
    reply: bool  # starts with Re: (a reply, whatever it quotes)
    patch: bool  # carries a [PATCH ...] tag at its start
    rfc: bool = False
    resend: bool = False
    version: int = 1
    number: int | None = None  # M of M/K
    total: int | None = None  # K of M/K
    title: str = ""  # the subject without Re: and the tag


def parse_subject(text: str) -> Subject:
    reply = _REPLY.match(text)
    rest = text[reply.end():] if reply else text
    tag = _TAG.match(rest)
    if tag is None:
        return Subject(text, reply is not None, False, title=rest.strip())
    words = tag.group(1).replace(",", " ").split()
    version, number, total = 1, None, None
    for word in words:
        if (v := _VERSION.match(word)) is not None:
            version = int(v.group(1))
        elif (n := _NUMBER.match(word)) is not None:
            number, total = int(n.group(1)), int(n.group(2))
    upper = [w.upper() for w in words]
    return Subject(text, reply is not None, True, rfc="RFC" in upper, resend="RESEND" in upper,
                   version=version, number=number, total=total, title=rest[tag.end():].strip())
