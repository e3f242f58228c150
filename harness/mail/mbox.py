"""Reading a thread: an mbox (mboxo or mboxrd, as public-inbox and b4 write them) into
typed messages, each with the headers that name it and its text/plain body."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from ..errors import UsageError
from ..inputs import open_regular

_FROM_LINE = re.compile(rb"^From \S")
_ESCAPED_FROM = re.compile(rb"^>(>*From )")  # mboxrd: each quoting level gets one more '>'


@dataclass(frozen=True)
class MessageRef:
    """What names a message in a table: its author, date, subject and Message-ID."""

    message_id: str  # without the angle brackets
    author: str
    date: str  # the Date header as sent
    subject: str


@dataclass(frozen=True)
class Message:
    ref: MessageRef
    in_reply_to: str | None
    references: tuple[str, ...]
    body: str  # the text/plain part, decoded
    when: datetime | None  # the Date header parsed (None when it does not parse)
    from_header: str


def _msgids(text: str | None) -> tuple[str, ...]:
    return tuple(re.findall(r"<([^<>\s]+)>", text or ""))


def split_mbox(raw: bytes) -> Iterator[bytes]:
    """Each message's bytes, its mbox From line dropped and mboxrd escapes undone."""
    current: list[bytes] | None = None
    previous_blank = True
    for line in raw.splitlines(keepends=True):
        if previous_blank and _FROM_LINE.match(line):
            if current is not None:
                yield b"".join(current)
            current = []
        elif current is not None:
            current.append(_ESCAPED_FROM.sub(rb"\1", line))
        previous_blank = line.strip() == b""
    if current is not None:
        yield b"".join(current)


def _text_body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset: the bytes as latin-1
        payload = part.get_payload(decode=True)
        content = payload.decode("latin-1") if isinstance(payload, bytes) else ""
    return str(content).replace("\r\n", "\n")


def parse_message(data: bytes) -> Message:
    """One message (RFC 5322 bytes, as a mail client or b4 hands it over)."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    from_header = str(msg.get("From", ""))
    name, address = email.utils.parseaddr(from_header)
    try:
        when: datetime | None = email.utils.parsedate_to_datetime(str(msg.get("Date", "")))
    except (TypeError, ValueError):
        when = None
    ids = _msgids(str(msg.get("Message-ID", "")))
    raw_date = next((v for k, v in msg.raw_items() if k.lower() == "date"), "")
    ref = MessageRef(message_id=ids[0] if ids else "", author=name or address,
                     date=" ".join(str(raw_date).split()),
                     subject=" ".join(str(msg.get("Subject", "")).split()))
    reply = _msgids(str(msg.get("In-Reply-To", "")))
    return Message(ref=ref, in_reply_to=reply[0] if reply else None,
                   references=_msgids(str(msg.get("References", ""))),
                   body=_text_body(msg), when=when, from_header=from_header)


def read_mbox(path: Path) -> list[Message]:
    """The messages of an mbox file in file order; a file that is none is a UsageError."""
    with open_regular(path, "--mbox", "give the thread as an mbox file (b4 mbox ID)") as f:
        raw = f.read()
    messages = [parse_message(chunk) for chunk in split_mbox(raw)]
    if not messages:
        raise UsageError(f"--mbox {path}: no messages in it (an mbox starts each message "
                         "with a 'From ' line); get one with `b4 mbox MESSAGE-ID`")
    return messages
