"""The KTAP/TAP parser on hand-written documents: nesting, directives, output cut off
mid-run, garbage around and between the lines, and the TAP dialects."""

from __future__ import annotations

import json

from harness.ktap import KtapDocument, Result, parse

SPEC_EXAMPLE = """\
KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
"""


def _flat(doc: KtapDocument) -> list[tuple[str, str]]:
    return [("/".join(path), result.value) for path, result in doc.flatten()]


def test_the_spec_example_nests_by_indentation() -> None:
    doc = parse(SPEC_EXAMPLE)
    assert doc.version == "KTAP version 1" and doc.plan == 1 and doc.complete
    assert not doc.errors
    assert _flat(doc) == [
        ("main_test/example_test_1/test_1", "pass"),
        ("main_test/example_test_2/test_1", "skip"),
        ("main_test/example_test_2/test_2", "pass"),
        ("main_test/example_test_3/test_1", "pass"),
        ("main_test/example_test_3/test_2", "fail"),
        ("main_test/example_test_3/test_3", "skip")]
    main = doc.tests[0]
    assert main.result is Result.FAIL and main.plan == 3 and main.line == 22
    first = main.subtests[0].subtests[0]
    assert first.diagnostics == ("test_1: initializing test_1",)
    skipped = main.subtests[1].subtests[0]
    assert skipped.directive == "SKIP" and skipped.reason == "test_1 skipped" and skipped.ok
    assert main.subtests[2].subtests[1].diagnostics == ("test_2: FAIL",)
    assert doc.counts()["pass"] == 3 and doc.counts()["skip"] == 2


def test_directives_and_diagnostic_data() -> None:
    doc = parse("KTAP version 1\n1..7\nok 1 a # SKIP no hugetlb\nnot ok 2 b # TODO later\n"
                "not ok 3 c # XFAIL known\nnot ok 4 d # TIMEOUT 30 seconds\n"
                "not ok 5 e # ERROR no memory\nok 6 f # rcode=0\nnot ok 7 g # skipped: no\n")
    got = [(t.name, t.result.value, t.directive, t.reason) for t in doc.tests]
    assert got == [("a", "skip", "SKIP", "no hugetlb"), ("b", "todo", "TODO", "later"),
                   ("c", "xfail", "XFAIL", "known"), ("d", "fail", "TIMEOUT", "30 seconds"),
                   ("e", "fail", "ERROR", "no memory"), ("f", "pass", None, "rcode=0"),
                   ("g", "skip", "SKIP", "no")]


def test_output_cut_off_mid_run_loses_no_test() -> None:
    cut = SPEC_EXAMPLE[:SPEC_EXAMPLE.index("    ok 2 test_2")]
    doc = parse(cut + "[   12.5] Kernel panic - not syncing: Fatal exception\n")
    assert not doc.complete
    got = [("/".join(p), t.result.value) for p, t in doc.walk()]
    assert got == [("test 1", "crashed"), ("test 1/example_test_1", "pass"),
                   ("test 1/example_test_1/test_1", "pass"), ("test 1/test 2", "crashed"),
                   ("test 1/test 2/test_1", "skip"), ("test 1/test 2/test 2", "missing"),
                   ("test 1/test 3", "missing")]
    crashed = doc.tests[0].subtests[1]
    assert crashed.ok is None and crashed.plan == 2 and crashed.line is None
    assert "Kernel panic - not syncing: Fatal exception" in crashed.output


def test_a_plan_longer_than_the_output_is_missing_tests() -> None:
    doc = parse("TAP version 13\n1..3\nok 1 first\n")
    assert _flat(doc) == [("first", "pass"), ("test 2", "missing"), ("test 3", "missing")]
    assert doc.counts()["missing"] == 2


def test_bail_out_stops_the_document() -> None:
    doc = parse("TAP version 13\n1..2\nok 1 a\nBail out! no disk\nok 2 b\n")
    assert doc.bailed_out == "no disk"
    assert _flat(doc) == [("a", "pass"), ("test 2", "missing")]


def test_garbage_before_between_and_inside_is_kept_as_output() -> None:
    text = ("random boot noise\nok this is not a result\n[    1.000000] KTAP version 1\n"
            "[    1.000100] 1..2\n[    1.000200] some kernel message\n"
            "[    1.000300] ok 1 a\n\x00\xff binary junk\n[    1.000400] # note\n"
            "ok then, said a daemon\n"
            "[    1.000500] not ok 2 b\n")
    doc = parse(text)
    assert _flat(doc) == [("a", "pass"), ("b", "fail")] and not doc.errors
    assert doc.tests[0].output == ("some kernel message",)
    assert doc.tests[1].output == ("\x00\xff binary junk", "ok then, said a daemon")
    assert doc.tests[1].diagnostics == ("note",)


def test_wrong_numbers_and_versions_are_errors_not_exceptions() -> None:
    doc = parse("KTAP version 2\n1..2\nok 2 a\nok 2 b\n")
    assert _flat(doc) == [("a", "pass"), ("b", "pass")]
    assert len(doc.errors) == 2 and "KTAP version 2" in doc.errors[0]
    assert "test number 2, expected 1" in doc.errors[1]
    assert parse("").errors and parse("nothing here\n").tests == ()


def test_tap13_without_numbers_or_version_and_a_trailing_plan() -> None:
    doc = parse("ok - first\nnot ok - second\n1..2\n")
    assert doc.version is None and doc.plan == 2
    assert [(t.number, t.name, t.result.value) for t in doc.tests] == [
        (1, "first", "pass"), (2, "second", "fail")]


def test_tap14_and_kunit_subtest_headers() -> None:
    tap14 = ("TAP version 14\n1..1\n# Subtest: suite\n    1..2\n    ok 1 - a\n"
             "    not ok 2 - b\nnot ok 1 - suite\n")
    assert _flat(parse(tap14)) == [("suite/a", "pass"), ("suite/b", "fail")]
    no_plan = parse(tap14.replace("1..1\n", "", 1))
    assert _flat(no_plan) == [("suite/a", "pass"), ("suite/b", "fail")]
    kunit = ("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: suite\n    1..1\n"
             "    ok 1 - case\nok 1 - suite\n")
    doc = parse(kunit)
    assert _flat(doc) == [("suite/case", "pass")] and not doc.errors
    cut = parse(kunit.rsplit("ok 1 - suite", 1)[0])
    assert [(t.name, t.result.value) for t in cut.tests] == [("suite", "crashed")]


def test_kselftest_prefixed_output_and_unindented_nesting() -> None:
    text = ("# TAP version 13\n# 1..2\n# ok 1 mrelease\n# ok 2 other # SKIP no\n")
    assert _flat(parse(text)) == [("mrelease", "pass"), ("other", "skip")]
    logged = parse("t: x\nt:   KTAP version 1\nt:   1..1\nt:   ok 1 a\nt: unrelated\n")
    assert _flat(logged) == [("a", "pass")] and not logged.errors
    flat = parse("TAP version 13\n1..1\nTAP version 13\n1..1\nok 1 inner\nok 1 outer\n")
    assert _flat(flat) == [("outer/inner", "pass")] and len(flat.errors) == 1


def test_kselftest_runner_nesting_by_hash_prefix() -> None:
    """run_kselftest.sh prefixes a program's own TAP with '# ' under its result line."""
    text = ("TAP version 13\n1..2\n# selftests: vm: mrelease_test\n# TAP version 13\n"
            "# 1..2\n# ok 1 mrelease\n# # TAP version 13\n# # 1..1\n# # ok 1 deep\n"
            "# ok 2 nested\n# # Totals: pass:1 fail:0\nok 1 selftests: vm: mrelease_test\n"
            "# selftests: vm: other\n# TAP version 13\n# 1..1\n# ok 1 first\n")
    doc = parse(text)
    assert _flat(doc) == [
        ("selftests: vm: mrelease_test/mrelease", "pass"),
        ("selftests: vm: mrelease_test/nested/deep", "pass"),
        ("test 2/first", "pass")]
    assert doc.tests[0].diagnostics[0] == "selftests: vm: mrelease_test"
    assert doc.tests[1].result is Result.CRASHED and not doc.errors


def test_json_edge_round_trips() -> None:
    doc = parse(SPEC_EXAMPLE[:SPEC_EXAMPLE.index("    ok 2 test_2")])
    data = json.loads(json.dumps(doc.to_json()))
    assert data["schema_version"] == 1 and data["complete"] is False
    assert data["counts"]["missing"] == 2
    assert KtapDocument.from_json(data) == doc
