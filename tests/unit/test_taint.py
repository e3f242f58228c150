from harness.taint import describe, new_taint


def test_describe_letters() -> None:
    flags = [t["flag"] for t in describe((1 << 5) | (1 << 9) | (1 << 7))]
    assert flags == ["B", "D", "W"]


def test_new_taint_only_counts_fresh_bits() -> None:
    assert new_taint(1 << 9, (1 << 9) | (1 << 5)) == [
        {"bit": 5, "flag": "B", "meaning": "bad page referenced or unexpected page flags"}
    ]
    assert new_taint(None, 4) == []
    assert new_taint(0, 0) == []
