"""The candidate fixes in a thread: patch mails and series, diffs inline in replies,
patches the archive cut short, and code that is not a patch (quoted, or a line in the
prose), each named by the messages that carry it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from .diff import Completeness, Diffstat, FileDiff, completeness, parse_diff, parse_diffstat
from .mbox import Message, MessageRef
from .subject import Subject, parse_subject


class Kind(Enum):
    PATCH = "patch"  # a [PATCH] mail, or a series of them, with its diff
    INLINE = "inline diff"  # a diff in the text of a reply ("something like this?")
    INCOMPLETE = "incomplete"  # announced as a patch, but its diff is missing or cut short
    NOT_A_PATCH = "not a patch"  # code quoted from another mail, or a line of it in prose


@dataclass(frozen=True)
class PatchMail:
    """One mail's patch: its commit message and the diff under it."""

    message: MessageRef
    from_header: str  # the From header as sent: git am takes the author from it
    title: str  # the subject without Re: and the [PATCH] tag
    commit_message: str
    files: tuple[FileDiff, ...]
    diffstat: Diffstat | None
    completeness: Completeness

    def diff_text(self) -> str:
        return "".join(f.text() for f in self.files)


@dataclass(frozen=True)
class Candidate:
    kind: Kind
    messages: tuple[MessageRef, ...]  # every message that carries it, the first names it
    patches: tuple[PatchMail, ...]  # in the order they apply (a series has several)
    completeness: Completeness
    note: str = ""  # for INCOMPLETE and NOT_A_PATCH: what is wrong, in one line

    @property
    def ref(self) -> MessageRef:
        return self.messages[0]

    @property
    def label(self) -> str:
        """A name for its folder and recipe: the Message-ID, in safe characters."""
        return "mail-" + re.sub(r"[^A-Za-z0-9._+-]", "_", self.ref.message_id)[:48]

    @property
    def appliable(self) -> bool:
        return self.kind in (Kind.PATCH, Kind.INLINE) and bool(self.patches)


_FOOTER = re.compile(r"^--\s*$")
_CODE_LINE = re.compile(r"^\s*\S.*(->|==|&&|\|\||\w\(.*\)).*[;{}]\s*$")


def body_lines(body: str) -> list[str]:
    """The body's lines without the mailing list's footer (`--` then "To unsubscribe")."""
    lines = body.splitlines()
    for i in range(len(lines) - 1, 0, -1):
        if _FOOTER.match(lines[i]) and i + 1 < len(lines) \
                and lines[i + 1].startswith("To unsubscribe"):
            return lines[:i]
    return lines


def _own(lines: Sequence[str]) -> list[str]:
    return [line for line in lines if not line.startswith(">")]


def _unquoted(line: str) -> str:
    return re.sub(r"^(>\s?)+", "", line)


def _patch_mail(msg: Message, subject: Subject, lines: Sequence[str]) -> PatchMail:
    own = _own(lines)
    cut = own.index("---") if "---" in own else None
    files = tuple(parse_diff(own))
    first_diff = next((i for i, line in enumerate(own) if line.startswith("diff --git")),
                      len(own))
    end = cut if cut is not None and cut < first_diff else first_diff
    stat = parse_diffstat(own[end:first_diff])
    message = "\n".join(own[:end]).strip("\n")
    return PatchMail(msg.ref, msg.from_header, subject.title, message, files, stat,
                     completeness(files, stat))


def _ends_at_separator(lines: Sequence[str]) -> bool:
    own = [line for line in lines if line.strip()]
    return bool(own) and own[-1] == "---"


def _from_patch_message(msg: Message, subject: Subject, lines: list[str]) -> Candidate | None:
    mail = _patch_mail(msg, subject, lines)
    if mail.files:
        kind = Kind.PATCH if mail.completeness.complete else Kind.INCOMPLETE
        note = "" if kind is Kind.PATCH else mail.completeness.problems[0]
        return Candidate(kind, (msg.ref,), (mail,), mail.completeness, note)
    if subject.number == 0:
        return None  # a cover letter: its series is found from its patches
    note = ("the body stops at the `---` line: no diffstat, no diff (the archive cut it "
            "short)" if _ends_at_separator(lines) else "announced as a patch, but no diff "
            "in the body")
    return Candidate(Kind.INCOMPLETE, (msg.ref,), (), Completeness(False, (note,)), note)


def _from_reply(msg: Message, subject: Subject, lines: list[str]) -> Candidate | None:
    own = _own(lines)
    files = tuple(parse_diff(own))
    if files:
        check = completeness(files, None)
        message = f"{subject.title}\n\nAn inline diff in a reply: {msg.ref.message_id}"
        mail = PatchMail(msg.ref, msg.from_header, subject.title, message, files, None, check)
        kind = Kind.INLINE if check.complete else Kind.INCOMPLETE
        return Candidate(kind, (msg.ref,), (mail,), check, "" if check.complete
                         else check.problems[0])
    quotes_diff = bool(parse_diff([_unquoted(line) for line in lines if line.startswith(">")]))
    code = [line.strip() for line in own if _CODE_LINE.match(line)]
    if code:
        more = f" (+{len(code) - 1} line(s))" if len(code) > 1 else ""
        note = f"code in the text, not a diff: `{code[0][:70]}`{more}"
    elif quotes_diff:
        note = "quotes a diff from another mail: quoted code is not a patch"
    else:
        return None
    return Candidate(Kind.NOT_A_PATCH, (msg.ref,), (), Completeness(False, (note,)), note)


def _candidate(msg: Message) -> Candidate | None:
    subject = parse_subject(msg.ref.subject)
    lines = body_lines(msg.body)
    if subject.patch and not subject.reply:
        return _from_patch_message(msg, subject, lines)
    return _from_reply(msg, subject, lines)


def _series_anchor(msg: Message, subject: Subject, by_id: dict[str, Message]) -> str:
    """The cover letter (0/K) or first patch (1/K) a patch of a series replies to."""
    for parent_id in (msg.in_reply_to, *msg.references[:1]):
        parent = by_id.get(parent_id or "")
        if parent is None:
            continue
        tag = parse_subject(parent.ref.subject)
        if tag.patch and tag.total == subject.total and tag.number in (0, 1) \
                and tag.version == subject.version:
            return parent.ref.message_id
    return msg.ref.message_id


def _series(members: Sequence[tuple[int, Candidate]], total: int) -> Candidate:
    members = sorted(members, key=lambda m: m[0])
    patches = tuple(p for _, c in members for p in c.patches)
    problems = [f"patch {n}/{total} is not in the thread" for n in range(1, total + 1)
                if n not in {m[0] for m in members}]
    problems += [p for _, c in members for p in c.completeness.problems]
    check = Completeness(not problems, tuple(problems))
    kind = Kind.PATCH if check.complete else Kind.INCOMPLETE
    return Candidate(kind, tuple(c.ref for _, c in members), patches, check,
                     "" if check.complete else problems[0])


def _diff_key(c: Candidate) -> tuple[object, ...]:
    """Two candidates with this equal carry the same change, however the mails differ."""
    return tuple((f.path, tuple((h.header.split(" @@")[0], tuple(x.rstrip() for x in h.lines))
                                for h in f.hunks)) for p in c.patches for f in p.files)


def find_candidates(messages: Sequence[Message]) -> list[Candidate]:
    """Every candidate in the thread, in the order the first message naming it was sent;
    equal diffs (an RFC and its RESEND) are one candidate naming all their messages."""
    by_id = {m.ref.message_id: m for m in messages}
    found: list[Candidate] = []
    series: dict[str, list[tuple[int, Candidate]]] = {}
    totals: dict[str, int] = {}
    for msg in messages:
        candidate = _candidate(msg)
        if candidate is None:
            continue
        subject = parse_subject(msg.ref.subject)
        if subject.patch and not subject.reply and (subject.total or 1) > 1 and subject.number:
            anchor = _series_anchor(msg, subject, by_id)
            series.setdefault(anchor, []).append((subject.number, candidate))
            totals[anchor] = subject.total or 1
            continue
        found.append(candidate)
    found += [_series(members, totals[anchor]) for anchor, members in series.items()]
    return _merge_equal(found, by_id)


def _merge_equal(found: Sequence[Candidate], by_id: dict[str, Message]) -> list[Candidate]:
    merged: list[Candidate] = []
    index: dict[tuple[object, ...], int] = {}
    for c in found:
        key = _diff_key(c)
        if c.patches and key in index:
            first = merged[index[key]]
            merged[index[key]] = replace(first, messages=first.messages + c.messages)
            continue
        if c.patches:
            index[key] = len(merged)
        merged.append(c)

    position = {mid: i for i, mid in enumerate(by_id)}

    def sent(c: Candidate) -> tuple[float, int]:
        when = by_id[c.ref.message_id].when if c.ref.message_id in by_id else None
        return (when.timestamp() if when else 0.0, position.get(c.ref.message_id, 0))

    return sorted(merged, key=sent)
