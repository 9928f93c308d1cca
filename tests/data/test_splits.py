"""Work-level splits: a stable hash of the piece's path, about 94/3/3."""

from collections import Counter

from cadenza.data.splits import SPLITS, split_of


def test_split_of_is_deterministic_and_about_94_3_3():
    paths = [f"collection{i % 7}/piece{i}.mid" for i in range(1000)]
    first = [split_of(p) for p in paths]
    assert first == [split_of(p) for p in paths]
    counts = Counter(first)
    assert set(counts) == set(SPLITS)
    assert 900 <= counts["train"] <= 975
    assert 10 <= counts["validation"] <= 55 and 10 <= counts["test"] <= 55
