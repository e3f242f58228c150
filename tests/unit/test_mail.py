"""Mail parsing on the real linux-mm thread (../shared/threads, 35 messages): the candidate
fixes in it, each named by its messages, checked for completeness; and the forms a thread
can take (mboxrd escapes, series, damaged or cut diffs) on small made-up mails."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.mail.candidates import Kind, find_candidates
from harness.mail.diff import completeness, parse_diff, parse_diffstat
from harness.mail.mbox import parse_message, read_mbox
from harness.mail.subject import parse_subject

from ..conftest import REPO, missing_shared

THREAD = REPO.parent / "shared" / "threads" / "oom-reaper-tlb-2017.mbox"
WANG_RFC = "20171106033651.172368-1-wangnan0@huawei.com"
WANG_RESEND = "20171107095453.179940-1-wangnan0@huawei.com"
LAZY_DRAFT = "20171110101529.op6yaxtdke2p4bsh@dhcp22.suse.cz"
LAZY_CUT = ("20171110122635.q26xdxytgdfjy5q3@dhcp22.suse.cz",
            "20171120160422.5ieustt5ovbyelyx@dhcp22.suse.cz")
EXIT_RFC = "20171123090236.18574-1-mhocko@kernel.org"
EXIT_PATCH = "20171205145853.26614-1-mhocko@kernel.org"
MINCHAN = "20171113002833.GA18301@bbox"


@pytest.fixture(scope="module")
def thread() -> list:  # type: ignore[type-arg]
    if not THREAD.is_file():
        missing_shared(f"{THREAD} is not here")
    return read_mbox(THREAD)


def test_the_thread_reads_as_35_messages_each_named(thread: list) -> None:  # type: ignore[type-arg]
    assert len(thread) == 35
    assert all(m.ref.message_id and m.ref.author and m.when for m in thread)
    first = thread[0].ref
    assert (first.author, first.date, first.message_id) == (
        "Wang Nan", "Mon, 6 Nov 2017 03:36:51 +0000", WANG_RFC)
    assert first.subject == ("[RFC PATCH] mm, oom_reaper: gather each vma to prevent leaking "
                             "TLB entry")
    assert thread[1].in_reply_to == WANG_RFC


def test_the_candidates_of_the_thread(thread: list) -> None:  # type: ignore[type-arg]
    found = {c.ref.message_id: c for c in find_candidates(thread)}
    wang = found[WANG_RFC]
    assert wang.kind is Kind.PATCH and [m.message_id for m in wang.messages] == [
        WANG_RFC, WANG_RESEND]  # the same diff twice: one candidate naming both
    assert WANG_RESEND not in found
    (mail,) = wang.patches
    assert [(f.path, f.added, f.removed) for f in mail.files] == [("mm/oom_kill.c", 4, 3)]
    assert wang.completeness.complete and mail.diffstat is not None
    assert (mail.diffstat.insertions, mail.diffstat.deletions) == (4, 3)
    assert mail.commit_message.startswith("tlb_gather_mmu(&tlb, mm, 0, -1) means")
    for cut in LAZY_CUT:
        assert found[cut].kind is Kind.INCOMPLETE and not found[cut].patches
        assert "stops at the `---` line" in found[cut].note
    draft = found[LAZY_DRAFT]
    assert draft.kind is Kind.INLINE and len(draft.patches[0].files) == 9
    assert draft.patches[0].diffstat is None and draft.completeness.complete
    for exit_patch, plus in ((EXIT_RFC, 31), (EXIT_PATCH, 29)):
        c = found[exit_patch]
        assert c.kind is Kind.PATCH and c.completeness.complete, c.completeness
        stat = c.patches[0].diffstat
        assert stat is not None and (len(stat.files), stat.insertions, stat.deletions) == (
            10, plus, 11)
        assert sum(f.added for f in c.patches[0].files) == plus
    minchan = found[MINCHAN]
    assert minchan.kind is Kind.NOT_A_PATCH and "mm_users) == 0;" in minchan.note
    appliable = [c.ref.message_id for c in found.values() if c.appliable]
    assert appliable == [WANG_RFC, LAZY_DRAFT, EXIT_RFC, EXIT_PATCH]
    # Replies that quote a patch claim nothing: not a patch, and not appliable.
    quoting = [c for c in found.values() if c.note.startswith("quotes a diff")]
    assert len(quoting) >= 6 and all(c.kind is Kind.NOT_A_PATCH for c in quoting)


def test_a_diff_cut_or_miscounted_is_incomplete() -> None:
    stat = parse_diffstat([" mm/a.c | 3 ++-", " 1 file changed, 2 insertions(+), 1 deletion(-)"])
    assert stat is not None and stat.files[0].changes == 3
    whole = ["diff --git a/mm/a.c b/mm/a.c", "--- a/mm/a.c", "+++ b/mm/a.c",
             "@@ -1,3 +1,4 @@", " one", "-two", "+2", "+2b", "", "-- ", "2.10.1"]
    files = parse_diff(whole)
    assert completeness(files, stat).complete  # "" is the blank context line mail trimmed
    cut = parse_diff(whole[:6])
    assert any("cut short" in p for p in completeness(cut, stat).problems)
    more = parse_diffstat([" mm/a.c | 5 ++++-", " mm/b.c | 1 +", " 2 files changed, 5 "
                           "insertions(+), 1 deletion(-)"])
    problems = completeness(files, more).problems
    assert "mm/a.c: diffstat says 5 lines changed, its hunks change 3" in problems
    assert "mm/b.c: in the diffstat, but no diff of it" in problems


@pytest.mark.parametrize(("text", "expect"), [
    ("[PATCH v3 2/5] mm: x", (False, True, 3, 2, 5, False, False)),
    ("Re: [RFC PATCH] mm: x", (True, True, 1, None, None, True, False)),
    ("[RESEND PATCH] mm: x", (False, True, 1, None, None, False, True)),
    ("[PATCH] a (was: Re: [RESEND PATCH] b)", (False, True, 1, None, None, False, False)),
    ("Re: mm: x", (True, False, 1, None, None, False, False)),
])
def test_subject_tags(text: str, expect: tuple[object, ...]) -> None:
    s = parse_subject(text)
    assert (s.reply, s.patch, s.version, s.number, s.total, s.rfc, s.resend) == expect


def _mail(msgid: str, subject: str, body: str, reply: str | None = None) -> str:
    head = f"From: A Dev <a@example.org>\nDate: Mon, 6 Nov 2017 03:36:51 +0000\n" \
           f"Message-ID: <{msgid}>\nSubject: {subject}\n"
    if reply:
        head += f"In-Reply-To: <{reply}>\nReferences: <{reply}>\n"
    return f"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n{head}\n{body}\n"


def _patch_body(path: str) -> str:
    return (f"Change {path}.\n\nSigned-off-by: A Dev <a@example.org>\n---\n {path} | 1 +\n"
            f" 1 file changed, 1 insertion(+)\n\ndiff --git a/{path} b/{path}\n--- a/{path}\n"
            f"+++ b/{path}\n@@ -1 +1,2 @@\n x\n+y\n-- \n2.39.0\n")


def test_a_series_is_one_candidate_in_patch_order(tmp_path: Path) -> None:
    box = tmp_path / "t.mbox"
    box.write_text(
        _mail("c@x", "[PATCH v2 0/2] two", "cover\n>From the archive\n")
        + _mail("p2@x", "[PATCH v2 2/2] second", _patch_body("b.c"), reply="c@x")
        + _mail("p1@x", "[PATCH v2 1/2] first", _patch_body("a.c"), reply="c@x")
        + _mail("r@x", "Re: [PATCH v2 1/2] first", "> diff --git a/a.c b/a.c\n"
                "> @@ -1 +1,2 @@\n>  x\n> +y\nLooks fine.\n", reply="p1@x"))
    messages = read_mbox(box)
    assert len(messages) == 4 and messages[0].body.startswith("cover\nFrom the archive")
    (series, quote) = find_candidates(messages)
    assert series.kind is Kind.PATCH and [m.message_id for m in series.messages] == [
        "p1@x", "p2@x"]
    assert [p.files[0].path for p in series.patches] == ["a.c", "b.c"]
    assert quote.kind is Kind.NOT_A_PATCH
    half = tmp_path / "half.mbox"
    half.write_text(_mail("p2@x", "[PATCH 2/2] second", _patch_body("b.c")))
    (only,) = find_candidates(read_mbox(half))
    assert only.kind is Kind.INCOMPLETE and only.note == "patch 1/2 is not in the thread"


def test_a_single_mail_and_bad_files() -> None:
    msg = parse_message(_mail("s@x", "[PATCH] one", _patch_body("a.c")).split("\n", 1)[1]
                        .encode())
    assert msg.ref.message_id == "s@x" and msg.ref.author == "A Dev"
    with pytest.raises(UsageError, match="no messages in it"):
        read_mbox(Path(__file__))
    with pytest.raises(UsageError, match="--mbox /nonexistent"):
        read_mbox(Path("/nonexistent"))
