from harness.taint import TaintChange, TaintFlag, describe, new_taint


def test_describe_letters() -> None:
    flags = [t.flag for t in describe((1 << 5) | (1 << 9) | (1 << 7))]
    assert flags == ["B", "D", "W"]


def test_new_taint_only_counts_fresh_bits() -> None:
    assert new_taint(1 << 9, (1 << 9) | (1 << 5)) == [
        TaintFlag(5, "B", "bad page referenced or unexpected page flags")
    ]
    assert new_taint(None, 4) == []
    assert new_taint(0, 0) == []


def test_taint_change_round_trips_through_json() -> None:
    change = TaintChange(before=0, after=1 << 9)
    data = change.to_json()
    assert data["new"] == [{"bit": 9, "flag": "W", "meaning": "kernel issued a warning"}]
    assert TaintChange.from_json(data) == change
