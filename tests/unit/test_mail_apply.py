"""Candidates applied as `git am --ignore-whitespace` would, on the real 4.14.2 tree (the
tarball from ../shared/linux, unpacked once into the cache): which apply, with mail's
whitespace damage forgiven, and what a failure says (its first error, every failing hunk)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.kernel.build import recipes
from harness.kernel.build.source import find_source_file, recipe_source
from harness.mail.apply import apply_candidate, touched_paths
from harness.mail.candidates import Candidate, find_candidates
from harness.mail.diff import FileDiff, Hunk
from harness.mail.mbox import read_mbox

from ..conftest import missing_shared
from .test_mail import EXIT_PATCH, EXIT_RFC, LAZY_DRAFT, THREAD, WANG_RFC


@pytest.fixture(scope="module")
def tree() -> Path:
    recipe = recipes.load_recipe("v4.14.2")
    try:
        find_source_file(recipe.source)
    except UsageError as e:
        missing_shared(f"the Linux 4.14.2 tarball is not here: {e}")
    return recipe_source(recipe).tree


@pytest.fixture(scope="module")
def candidates() -> dict[str, Candidate]:
    if not THREAD.is_file():
        missing_shared(f"{THREAD} is not here")
    return {c.ref.message_id: c for c in find_candidates(read_mbox(THREAD))}


def test_which_candidates_apply_to_4_14_2(tree: Path, candidates: dict[str, Candidate],
                                          tmp_path: Path) -> None:
    applied = {}
    for mid in (WANG_RFC, LAZY_DRAFT, EXIT_RFC, EXIT_PATCH):
        applied[mid] = apply_candidate(candidates[mid], tree, tmp_path / mid)
        assert applied[mid].applied, applied[mid].first_error
    wang = applied[WANG_RFC].patch
    assert wang is not None
    text = wang.read_text()
    assert "+\t\t\ttlb_gather_mmu(&tlb, mm, vma->vm_start, vma->vm_end);" in text
    # The change as applied is plain -p1 diff that the kernel build's patch takes as is.
    assert text.startswith("diff --git a/mm/oom_kill.c b/mm/oom_kill.c")
    exit_text = applied[EXIT_PATCH].patch.read_text()  # type: ignore[union-attr]
    assert exit_text.count("diff --git") == 10 and "tlb_gather_mmu_exit" in exit_text


def test_whitespace_damage_is_forgiven_and_a_misfit_names_its_hunks(
        tree: Path, candidates: dict[str, Candidate], tmp_path: Path) -> None:
    wang = candidates[WANG_RFC]
    mail = wang.patches[0]

    def damaged(f: FileDiff) -> FileDiff:  # a mailer that turned tabs of context into spaces
        hunks = tuple(replace(h, lines=tuple(" " + x[1:].replace("\t", "        ")
                                             if x.startswith(" ") else x for x in h.lines))
                      for h in f.hunks)
        return replace(f, hunks=hunks)

    spaced = replace(wang, patches=(replace(mail, files=tuple(map(damaged, mail.files))),))
    assert apply_candidate(spaced, tree, tmp_path / "spaced").applied

    def shifted(h: Hunk) -> Hunk:  # context the tree does not have
        return replace(h, lines=tuple(x.replace("set_bit(MMF_UNSTABLE", "set_bit(MMF_OTHER")
                                      for x in h.lines))

    wrong = replace(mail, files=(replace(mail.files[0], hunks=tuple(
        map(shifted, mail.files[0].hunks))),))
    result = apply_candidate(replace(wang, patches=(wrong,)), tree, tmp_path / "wrong")
    assert not result.applied and result.patch is None
    assert result.first_error == "error: patch failed: mm/oom_kill.c:532"
    assert result.failures == ("mm/oom_kill.c: " + mail.files[0].hunks[0].header,)


def test_a_path_out_of_the_tree_is_refused(candidates: dict[str, Candidate]) -> None:
    mail = candidates[WANG_RFC].patches[0]
    evil = replace(mail, files=(replace(mail.files[0], path="../../etc/passwd"),))
    with pytest.raises(UsageError, match="a path outside the tree"):
        touched_paths([evil])
