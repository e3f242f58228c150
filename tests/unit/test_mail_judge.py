"""`oomrace evaluate --mbox`: a made-up thread on a made-up tree, a fake build and a fake
runner. Each candidate gets one row per arch naming its message; those that cannot run
say why; evaluation.json rows carry message_id and judgement."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from harness import evaluate
from harness.arches import get_arch
from harness.errors import KernelError
from harness.kernel.build import builder, recipes
from harness.kernel.build.recipes import Recipe
from harness.machine import MachineOptions
from harness.mail.judge import ThreadResult, evaluate_thread, table, to_json
from harness.mail.mbox import read_mbox

from ..conftest import REPO
from .test_evaluate import FakeRunner
from .test_mail import _mail


def _patch(path: str, old: str, new: str) -> str:
    return (f"Fix it.\n\nSigned-off-by: A Dev <a@example.org>\n---\n {path} | 2 +-\n"
            f" 1 file changed, 1 insertion(+), 1 deletion(-)\n\ndiff --git a/{path} b/{path}\n"
            f"--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,2 @@\n-{old}\n+{new}\n keep\n-- \n2.39\n")


def _thread(tmp_path: Path) -> Path:
    box = tmp_path / "thread.mbox"
    box.write_text(
        _mail("good@x", "[PATCH] mm: the fix", _patch("mm/a.c", "bug();", "fixed();"))
        + _mail("bad@x", "[PATCH] mm: not the fix", _patch("mm/a.c", "bug();", "other();"))
        + _mail("misfit@x", "[PATCH] mm: elsewhere", _patch("mm/a.c", "nothing();", "x();"))
        + _mail("broken@x", "[PATCH] mm: typo", _patch("mm/a.c", "bug();", "bug(;"))
        + _mail("cut@x", "[PATCH] mm: cut", "Changelog only.\n---\n")
        + _mail("talk@x", "Re: [PATCH] mm: the fix", "Or just:\n\n\tif (mm->users == 0) {\n",
                reply="good@x"))
    return box


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    (tree / "mm").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 4\nPATCHLEVEL = 14\nSUBLEVEL = 2\n")
    (tree / "Kconfig").write_text("")
    (tree / "mm" / "a.c").write_text("bug();\nkeep\n")
    return tree


def _fake_build(recipe: Recipe, arch: str) -> builder.BuiltKernel:
    patched = "".join(Path(p).read_text() for p in recipe.patches)
    if "bug(;" in patched:
        raise KernelError("make failed:\nmm/a.c:1:5: error: expected expression before ';'")
    return builder.BuiltKernel(
        arch=get_arch(arch), image=Path(f"/k/{recipe.name}"), config=Path("/k/c"),
        source_identity="tree:x", recipe=recipe.name, patches=(), compiler="gcc",
        build_log=Path("/k/log"), directory=Path("/k"), kernel_version="4.14.2")


def test_each_candidate_is_judged_or_says_why(tmp_path: Path) -> None:
    base = replace(recipes.load_recipe("v4.14.2"), source=str(_tree(tmp_path)), sha256=None)
    ev = replace(evaluate.load_evaluation("v4.14.2"), fixes=())
    runner = FakeRunner({("v4.14.2", "aarch64"): 0.9, ("mail-bad_x", "aarch64"): 0.5})
    result = evaluate_thread(read_mbox(_thread(tmp_path)), ev, base, [get_arch("aarch64")],
                             tmp_path / "out", MachineOptions(cpus=8), recipes.load_recipe,
                             ThreadResult([], [], []), runner=runner, build=_fake_build,
                             progress=lambda _: None)
    assert [r.recipe for r in result.rows] == ["v4.14.2"]
    rows = {r.message.message_id: r for r in result.sorted_mail_rows()}
    assert list(rows) == ["good@x", "bad@x", "misfit@x", "broken@x", "cut@x", "talk@x"]
    assert rows["good@x"].judgement.startswith("fixes it") and rows["good@x"].arch == "aarch64"
    assert rows["good@x"].message.author == "A Dev" and rows["good@x"].run is not None
    assert rows["bad@x"].judgement.startswith("does not fix it")
    assert rows["misfit@x"].judgement == ("does not apply: error: patch failed: mm/a.c:1 "
                                          "(mm/a.c: @@ -1,2 +1,2 @@)")
    assert rows["broken@x"].judgement == ("does not build: mm/a.c:1:5: error: expected "
                                          "expression before ';'")
    assert rows["cut@x"].judgement.startswith("incomplete: the body stops at the `---` line")
    assert rows["talk@x"].judgement == ("not a patch: code in the text, not a diff: "
                                        "`if (mm->users == 0) {`")
    assert rows["cut@x"].arch == "-" and rows["talk@x"].run is None
    data = to_json(ev, base, tmp_path / "thread.mbox", result)
    assert all("message_id" in r and "judgement" in r for r in data["rows"])
    assert data["rows"][0]["message_id"] is None and data["rows"][1]["message_id"] == "good@x"
    assert data["rows"][1]["subject"] == "[PATCH] mm: the fix"
    json.dumps(data)
    lines = table(result).splitlines()
    assert lines[0].split()[:4] == ["author", "date", "subject", "message-id"]
    assert len(lines) == 2 + 6 and "good@x" in lines[2]


def test_a_candidate_that_is_an_evaluation_fix_takes_its_run(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    base = replace(recipes.load_recipe("v4.14.2"), source=str(tree), sha256=None)
    own = tmp_path / "own.patch"  # the evaluation's own fix: good@x's change, its own words
    own.write_text("Our own copy.\n---\n" + _patch("mm/a.c", "bug();", "fixed();")
                   .split("\n\n", 2)[2].replace("-- \n2.39\n", ""))
    own_recipes = {"own-fix": replace(base, name="own-fix", patches=(str(own),))}
    ev = replace(evaluate.load_evaluation("v4.14.2"), fixes=("own-fix",))
    runner = FakeRunner({("v4.14.2", "aarch64"): 0.9})
    result = evaluate_thread(read_mbox(_thread(tmp_path)), ev, base, [get_arch("aarch64")],
                             tmp_path / "out", MachineOptions(cpus=8),
                             lambda name: own_recipes.get(name) or recipes.load_recipe(name),
                             ThreadResult([], [], []), runner=runner, build=_fake_build,
                             progress=lambda _: None)
    assert [r.recipe for r in result.rows] == ["v4.14.2", "own-fix"]
    good = next(r for r in result.mail_rows if r.message.message_id == "good@x")
    assert good.run is result.rows[1] and good.judgement.startswith("fixes it")
    assert good.judgement.endswith("(the same change as recipe own-fix)")
    ran = [s.kernel.requested for s in runner.specs]
    assert "mail-good_x" not in ran and "mail-bad_x" in ran  # run once, as the recipe


def test_only_the_chosen_candidates_are_built(tmp_path: Path) -> None:
    base = replace(recipes.load_recipe("v4.14.2"), source=str(_tree(tmp_path)), sha256=None)
    ev = replace(evaluate.load_evaluation("v4.14.2"), fixes=())
    runner = FakeRunner({("v4.14.2", "aarch64"): 0.9})
    built: list[str] = []

    def build(recipe: Recipe, arch: str) -> builder.BuiltKernel:
        built.append(recipe.name)
        return _fake_build(recipe, arch)

    result = evaluate_thread(read_mbox(_thread(tmp_path)), ev, base, [get_arch("aarch64")],
                             tmp_path / "out", MachineOptions(cpus=8), recipes.load_recipe,
                             ThreadResult([], [], []), runner=runner, build=build,
                             only={"good@x"}, progress=lambda _: None)
    rows = {r.message.message_id: r for r in result.sorted_mail_rows()}
    assert "mail-bad_x" not in built and "mail-broken_x" not in built
    assert rows["good@x"].judgement.startswith("fixes it")
    for left in ("bad@x", "broken@x"):  # they apply; --candidate left them out
        assert rows[left].judgement == "not tried: --candidate chose others (it applies)"
    assert rows["misfit@x"].judgement.startswith("does not apply")
    assert rows["cut@x"].judgement.startswith("incomplete")


def _oomrace(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_bad_thread_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    box = _thread(tmp_path)
    for argv, expect in (
        (["--msgid", "x@y", "--base", "v4.14.2"], "--msgid needs b4 on PATH"),
        (["--mbox", str(tmp_path / "none")], "--mbox"),
        (["--mbox", str(box)], "--mbox/--msgid needs a base"),
        (["--mbox", str(box), "--base", "v6.1"], "no known bug runs on v6.1: give --scenario"),
        (["--mbox", str(box), "--base", "v4.14.2", "--scenario", "nope"], "nope"),
        (["v4.14.2", "--mbox", str(box), "--base", "v6.1"], "runs on v4.14.2"),
        (["v4.14.2", "--base", "v6.1"], "--base and --scenario go with --mbox"),
    ):
        # No b4 on this PATH (nothing at all: bad input is refused before any tool runs).
        env = {"PATH": str(tmp_path / "bin"), "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
        done = _oomrace("evaluate", *argv, "--artifacts", str(tmp_path / "a"), env=env)
        assert done.returncode == 2, (argv, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and expect in done.stderr, done.stderr
    assert not (tmp_path / "a").exists()  # refused before a run folder was made
