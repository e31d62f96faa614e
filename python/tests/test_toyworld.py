"""Issue 5: the toy world's generator (tools/toyworld/world.py) is what the training scripts, the quality
benchmark and the Swift tests agree on, so its contracts are tested here: seeded determinism, the
held-out seed split, edits that change only what they say, and the paired two-object edits used as
binding data for toy-instruct (tools/train_unet.py --pairs).

Run: make test-python
"""
import os
import sys

import pytest

np = pytest.importorskip("numpy")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "toyworld"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import world  # noqa: E402
from quality import dilate  # noqa: E402  (the benchmark's own mask dilation)


def test_same_seed_same_edit_and_pixels():
    a = world.edit_for_seed(world.HELDOUT_SEED_BASE + 17, "recolor")
    b = world.edit_for_seed(world.HELDOUT_SEED_BASE + 17, "recolor")
    assert a.instruction == b.instruction and a.source.caption() == b.source.caption()
    ra, rb = world.edit_arrays(a), world.edit_arrays(b)
    assert np.array_equal(ra["source"], rb["source"]) and np.array_equal(ra["target"], rb["target"])
    c = world.edit_for_seed(world.HELDOUT_SEED_BASE + 18, "recolor")
    assert not np.array_equal(world.edit_arrays(c)["source"], ra["source"])


@pytest.mark.parametrize("kind", world.EDIT_TYPES)
def test_edit_changes_only_its_region(kind):
    for i in range(20):
        e = world.edit_for_seed(world.HELDOUT_SEED_BASE + 300 + i, kind)
        r = world.edit_arrays(e)
        assert e.edit_type == kind
        diff = np.any(r["source"] != r["target"], axis=-1)
        assert diff.any(), f"{kind} seed {i}: the edit changed nothing"
        # anti-aliased edges may touch the pixels right next to the region, nothing further out
        near = dilate(r["region"], 2)
        assert not (diff & ~near).any(), f"{kind} seed {i}: pixels changed outside the edited region"


def test_recolor_instruction_names_the_edited_object_and_colour():
    for i in range(30):
        e = world.edit_for_seed(world.HELDOUT_SEED_BASE + 900 + i, "recolor")
        obj = e.target.objects[e.obj_index]
        assert obj.shape in e.instruction and e.target_color in e.instruction
        assert obj.color == e.target_color != e.source.objects[e.obj_index].color


@pytest.mark.parametrize("kind", ["recolor", "remove"])
def test_pair_edits_share_the_scene_and_edit_each_object_once(kind):
    for i in range(10):
        a, b = world.edit_pair_for_seed(50_000_000 + i, kind)
        assert a.source is b.source and len(a.source.objects) == 2
        assert (a.obj_index, b.obj_index) == (0, 1)
        assert a.instruction != b.instruction
        shapes = [o.shape for o in a.source.objects]
        assert shapes[0] in a.instruction and shapes[1] in b.instruction
        ra, rb = world.edit_arrays(a), world.edit_arrays(b)
        assert np.array_equal(ra["source"], rb["source"])
        assert not np.array_equal(ra["target"], rb["target"])
    a2, _ = world.edit_pair_for_seed(50_000_000, kind)
    a1, _ = world.edit_pair_for_seed(50_000_000, kind)
    assert a1.instruction == a2.instruction  # seeded


def test_pair_edits_reject_types_without_an_object():
    with pytest.raises(ValueError, match="background"):
        world.edit_pair_for_seed(50_000_000, "background")


def test_t2i_colour_check_captions_and_scorer():
    """tools/t2i_colour_check.py (session 6 diagnostic): its captions never put an object on a background of
    its own colour, and its scorer accepts a rendered scene of the named colour and rejects another colour."""
    import t2i_colour_check as tc
    caps = tc.captions(48)
    assert len(caps) == 48
    assert all(col != bg for _, col, bg in caps)
    assert {col for _, col, _ in caps} == set(world.COLOR_NAMES)
    scene = world.Scene(objects=[world.Obj("star", "green", 32, 32, 14)], background=world.Background(["yellow"]))
    img = world.render(scene)[0].astype(np.float32)
    ok, mean = tc.score(img, "green", "yellow")
    assert ok and np.linalg.norm(mean - np.array(world.COLORS["green"])) < 60
    assert not tc.score(img, "purple", "yellow")[0]
    blank = world.render(world.Scene(objects=[], background=world.Background(["yellow"])))[0].astype(np.float32)
    assert tc.score(blank, "green", "yellow") == (False, None)
