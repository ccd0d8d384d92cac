"""Dedupe and split on their own: grouping rules, label conflicts, and split properties."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from skyclass.prepare.dedupe import confirmed, dedupe, make_thumb, near_pairs, similarity
from skyclass.prepare.process import THUMB_SIDE, Processed, dihedral_phashes, grey_thumb, phash64
from skyclass.prepare.scan import Source
from skyclass.prepare.split import split_groups


def _thumb(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return grey_thumb(Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)))


SAME = _thumb(1)  # one detailed picture: items carrying it are confirmed copies of each other


def _item(
    index: int, label: str, phash: int, sha: str = "", thumb: bytes = SAME, name: str = ""
) -> Processed:
    return Processed(
        index=index,
        source=Source(f"{label}/{name or f'{index:03d}.jpg'}", label, f"/x/{index}"),
        sha256=sha or f"{index:064x}",
        phash=phash,
        dihedral=(phash,) * 8,
        width=100,
        height=100,
        spool_file="",
        thumb=thumb,
    )


def test_exact_copies_in_a_class_keep_the_first_path():
    items = [_item(0, "a", 0, sha="s"), _item(1, "a", 0, sha="s"), _item(2, "b", 2**64 - 1)]
    result = dedupe(items, "near", 6)
    assert [it.index for it in result.kept] == [0, 2]
    assert [(s.path, s.reason) for s in result.skipped] == [("a/001.jpg", "duplicate")]
    assert "a/000.jpg" in result.skipped[0].detail


def test_near_copies_are_grouped_within_the_threshold_only():
    base = 0x0F0F_0F0F_0F0F_0F0F
    items = [
        _item(0, "a", base),
        _item(1, "a", base ^ 0b111111),
        _item(2, "a", base ^ (0x7F << 20)),
    ]
    result = dedupe(items, "near", 6)
    assert result.near_groups == [[0, 1]]  # 6 bits apart: grouped; 7 bits: not
    assert len(result.kept) == 3 and not result.skipped
    assert dedupe(items, "exact", 6).near_groups == []
    assert dedupe(items, "off", 6).near_groups == []


def test_near_pairs_catch_rotations_through_the_dihedral_hashes():
    a = _item(0, "a", 0x1234)
    rotated = Processed(
        **{
            **a.__dict__,
            "index": 1,
            "phash": 0xFFFF_0000,
            "dihedral": (0xFFFF_0000, 0x1234, 0, 0, 0, 0, 0, 0),
        }
    )
    assert near_pairs([a, rotated], 0) == [(0, 1)]


def test_hash_match_must_be_confirmed_by_the_thumbnails_in_a_class_too():
    items = [_item(0, "a", 5), _item(1, "a", 5, thumb=_thumb(2)), _item(2, "a", 5)]
    result = dedupe(items, "near", 6)
    assert result.near_groups == [[0, 2]] and result.unconfirmed_matches == 2


def test_cross_class_hash_match_must_be_confirmed_by_the_thumbnails():
    same, other = SAME, _thumb(2)
    confirmed = [_item(0, "a", 5, thumb=same), _item(1, "b", 5, thumb=same)]
    result = dedupe(confirmed, "near", 6)
    assert result.conflicts == [["a/000.jpg", "b/001.jpg"]] and not result.kept
    assert {s.reason for s in result.skipped} == {"label_conflict"}
    unconfirmed = [_item(0, "a", 5, thumb=same), _item(1, "b", 5, thumb=other)]
    result = dedupe(unconfirmed, "near", 6)
    assert not result.conflicts and len(result.kept) == 2
    assert result.unconfirmed_matches == 1
    # Exact copies across classes need no confirmation.
    exact = [_item(0, "a", 5, sha="s", thumb=same), _item(1, "b", 9, sha="s", thumb=other)]
    assert dedupe(exact, "exact", 0).conflicts == [["a/000.jpg", "b/001.jpg"]]


def test_thumbnail_check_is_rotation_and_brightness_invariant():
    img = Image.fromarray(np.random.default_rng(3).integers(0, 200, (64, 64), dtype=np.uint8))
    brighter = Image.fromarray((np.asarray(img, np.int16) + 40).clip(0, 255).astype(np.uint8))
    a = make_thumb(_item(0, "a", 0, thumb=grey_thumb(img)))
    turned = brighter.transpose(Image.Transpose.ROTATE_90)
    b = make_thumb(_item(1, "b", 0, thumb=grey_thumb(turned)))
    plain, detail = similarity(a, b)
    assert plain > 0.999 and detail > 0.99 and confirmed(a, b)
    assert len(grey_thumb(img)) == THUMB_SIDE * THUMB_SIDE
    other = make_thumb(_item(2, "b", 0, thumb=_thumb(9)))
    assert max(similarity(a, other)) < 0.5 and not confirmed(a, other)


def test_flat_images_are_never_near_copies_only_exact_ones():
    flat = grey_thumb(Image.new("L", (64, 64), 128))
    ramp = grey_thumb(Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (64, 1)) // 16 + 120))
    items = [
        _item(0, "a", 5, thumb=flat),
        _item(1, "b", 5, thumb=flat),
        _item(2, "a", 5, thumb=ramp),
        _item(3, "a", 5, thumb=ramp),
    ]
    result = dedupe(items, "near", 6)
    assert not result.conflicts and not result.near_groups and len(result.kept) == 4
    assert result.low_detail == 4
    twins = [_item(0, "a", 5, thumb=flat, sha="s"), _item(1, "a", 5, thumb=flat, sha="s")]
    assert [s.reason for s in dedupe(twins, "near", 6).skipped] == ["duplicate"]


def test_a_label_conflict_names_only_the_photos_it_matched():
    """A chain of 10 copies in class a, one of them also filed under b: each a-photo is reported
    with the b-photo, the b-photo with a few a-photos and how many more."""
    items = [_item(i, "a", 5) for i in range(10)] + [_item(10, "b", 5)]
    result = dedupe(items, "near", 6)
    assert len(result.conflicts) == 1 and len(result.conflicts[0]) == 11
    details = {s.path: s.detail for s in result.skipped}
    assert details["a/000.jpg"].endswith(": b/010.jpg")
    assert "a/000.jpg, a/001.jpg, a/002.jpg and 7 more" in details["b/010.jpg"]


classes = st.dictionaries(
    st.sampled_from(["bird", "drone", "plane"]),
    st.lists(st.integers(1, 6), min_size=1, max_size=25),  # group sizes
    min_size=1,
)


def _layout(spec: dict[str, list[int]]) -> tuple[list[Processed], dict[int, int]]:
    items, group_of = [], {}
    for c, (label, sizes) in enumerate(sorted(spec.items())):
        for g, size in enumerate(sizes):
            for _ in range(size):
                index = len(items)
                items.append(_item(index, label, 0))
                if size > 1:
                    group_of[index] = 1000 * c + g
    return items, group_of


FRACTIONS = [(0.0, 0.0), (0.0, 0.3), (0.1, 0.1), (0.15, 0.15), (0.2, 0.3), (0.3, 0.2)]


@settings(max_examples=150, deadline=None)
@given(spec=classes, fractions=st.sampled_from(FRACTIONS), seed=st.integers(0, 99))
def test_split_properties(spec, fractions, seed):
    val_f, test_f = fractions
    items, group_of = _layout(spec)
    kw = {"val_fraction": val_f, "test_fraction": test_f, "seed": seed}
    split = split_groups(items, group_of, **kw)
    assert set(split) == {it.index for it in items}
    assert split == split_groups(list(reversed(items)), group_of, **kw)  # deterministic
    sides = defaultdict(set)
    for index, group in group_of.items():
        sides[group].add(split[index])
    assert all(len(s) == 1 for s in sides.values())  # no group straddles
    for label, sizes in spec.items():
        total = sum(sizes)
        got = Counter(split[it.index] for it in items if it.source.label == label)
        for name, fraction in (("val", val_f), ("test", test_f)):
            assert abs(got[name] - round(total * fraction)) <= max(sizes) + 1  # stratified
            if fraction == 0:
                assert got[name] == 0
        if total >= 2:
            assert got["train"] > 0  # a class always keeps training images


def test_split_depends_on_the_seed():
    items, group_of = _layout({"bird": [1] * 40, "drone": [2] * 20})
    kw = {"val_fraction": 0.15, "test_fraction": 0.15}
    a = split_groups(items, group_of, seed=0, **kw)
    assert a != split_groups(items, group_of, seed=1, **kw)
    assert Counter(a.values()) == Counter({"train": 56, "val": 12, "test": 12})  # 6+6 a class


def test_a_group_in_several_classes_stays_on_one_side():
    """A user group (a contributor, say) with photos in two classes is placed once."""
    items = [_item(i, "bird" if i % 2 else "drone", 0, thumb=_thumb(i)) for i in range(40)]
    group_of = {it.index: f"person{it.index % 8}" for it in items}
    split = split_groups(items, group_of, val_fraction=0.25, test_fraction=0.25, seed=3)
    sides = defaultdict(set)
    for it in items:
        sides[group_of[it.index]].add(split[it.index])
    assert all(len(s) == 1 for s in sides.values())
    assert set(split.values()) == {"train", "val", "test"}


def test_near_pairs_same_whatever_the_chunking():
    rng = np.random.default_rng(5)
    hashes = [int(h) for h in rng.integers(0, 2**63, 300, dtype=np.int64)]
    hashes += [h ^ (1 << int(rng.integers(0, 64))) for h in hashes[:40]]  # planted near copies
    items = [_item(i, "a", h) for i, h in enumerate(hashes)]
    one_shot = near_pairs(items, 4, max_block=10**9)
    assert near_pairs(items, 4, max_block=8 * len(items) * 7) == one_shot  # 7 rows a chunk
    assert {(i, i + 300) for i in range(40)} <= set(one_shot)


def test_dihedral_hashes_are_the_hashes_of_the_rotated_images(birds):
    """One DCT gives all 8 hashes; each equals the hash of the actually rotated/flipped photo."""
    with Image.open(birds[0]) as img:
        grey = img.convert("L").resize((224, 160))
    hashes = dihedral_phashes(grey)
    assert hashes[0] == phash64(grey) and len(set(hashes)) == 8
    for t in Image.Transpose:
        assert dihedral_phashes(grey.transpose(t))[0] in hashes, t
    darker = grey.point(lambda v: v * 0.7)
    assert bin(phash64(darker) ^ hashes[0]).count("1") <= 2  # brightness barely matters
