"""Free phrasings of toy-world edit instructions: what people type, not only the four training templates.

    import phrasing
    rng = np.random.default_rng(0)
    phrasing.instruction(edit, rng, "train")     # a training phrasing (templates x synonyms x typos)
    phrasing.instruction(edit, rng, "heldout")   # a phrasing from templates never used in training
    phrasing.captions(edit, rng, "train")        # (source, target) captions for toy-sd, freely worded

An instruction is a template (per edit type) filled with an object phrase and a colour or shape word:
- templates: TRAIN[type] (>= 30 per edit type, each optionally with a politeness prefix/suffix) and
  HELDOUT[type] (other constructions and verbs; the phrasings the issue's users typed are among them).
  `check_disjoint()` proves no training phrasing equals a held-out one (prefixes and suffixes included).
- object phrases: the shape or a synonym ("ball", "disc" for circle; "box", "block" for square; "mug" for
  cup ...), optionally with its colour ("the red circle"), or the colour alone when it names one object
  only ("the red one").
- colour words: the world's 8 colours or synonyms mapped to them ("crimson" -> red, "navy" -> blue, "lime"
  -> green ...).
- typos: `typo_rate` of the training phrasings get one typo (a swapped, dropped or doubled letter) in one
  word of four or more letters.
Everything is drawn from the caller's numpy Generator, so a seed gives the same phrasing every time.
"""
from __future__ import annotations

import functools

import numpy as np

COLOR_WORDS = {
    "red": ["red", "crimson", "scarlet"],
    "green": ["green", "lime", "emerald"],
    "blue": ["blue", "navy", "azure", "cobalt"],
    "yellow": ["yellow", "golden", "lemon"],
    "orange": ["orange", "tangerine", "amber"],
    "purple": ["purple", "violet", "plum"],
    "white": ["white", "ivory", "snow white"],
    "black": ["black", "jet black", "charcoal"],
}
SHAPE_WORDS = {
    "circle": ["circle", "ball", "disc", "disk", "dot"],
    "square": ["square", "box", "block", "tile"],
    "triangle": ["triangle", "triangle shape", "wedge"],
    "star": ["star", "star shape", "little star"],
    "ring": ["ring", "donut", "doughnut", "hoop"],
    "cup": ["cup", "mug", "teacup"],
}

# {o}: object phrase without article ("circle", "red ball", "red one"); {c}: colour word; {s}: new shape
# word with its article ("a star"); {b}: "background" or a synonym.
TRAIN = {
    "recolor": [
        "make the {o} {c}", "turn the {o} {c}", "change the {o} to {c}", "change the {o} into {c}",
        "change the colour of the {o} to {c}", "change the color of the {o} to {c}", "colour the {o} {c}",
        "color the {o} {c}", "paint the {o} {c}", "recolor the {o} {c}", "recolour the {o} {c}",
        "recolor the {o} to {c}", "turn the {o} into a {c} one", "make the {o} {c} instead",
        "the {o} needs to be {c}", "give the {o} a {c} colour", "give the {o} a {c} color",
        "set the {o} to {c}", "make it so the {o} is {c}", "let the {o} be {c}", "change the {o} colour to {c}",
        "paint the {o} in {c}", "dye the {o} {c}", "{o} to {c}", "make the {o} look {c}", "turn the {o} to {c}",
        "i'd like the {o} {c}", "fill the {o} with {c}", "switch the {o} to {c}", "shade the {o} {c}",
        "make the {o} become {c}", "the {o} must be {c}", "use {c} for the {o}", "{c} {o} please",
        "redo the {o} in {c}", "i need the {o} to be {c}",
    ],
    "reshape": [
        "turn the {o} into {s}", "make the {o} {s}", "change the {o} to {s}", "replace the {o} with {s}",
        "change the {o} into {s}", "swap the {o} for {s}", "transform the {o} into {s}", "convert the {o} to {s}",
        "convert the {o} into {s}", "make the {o} into {s}", "turn the {o} to {s}", "reshape the {o} into {s}",
        "exchange the {o} for {s}", "put {s} where the {o} is", "the {o} needs to be {s}",
        "let the {o} be {s}", "the {o} must become {s}", "i'd like {s} instead of the {o}",
        "use {s} instead of the {o}", "draw {s} instead of the {o}", "change the shape of the {o} to {s}",
        "morph the {o} into {s}", "{o} to {s}", "swap out the {o} for {s}", "make the {o} a shape like {s}",
        "i need {s} in place of the {o}", "change the {o} so it is {s}", "substitute {s} for the {o}",
        "switch the {o} to {s}", "redo the {o} as {s}", "make {s} out of the {o}",
    ],
    "background": [
        "make the {b} {c}", "change the {b} to {c}", "turn the {b} {c}", "paint the {b} {c}",
        "colour the {b} {c}", "color the {b} {c}", "recolor the {b} {c}", "recolour the {b} to {c}",
        "set the {b} to {c}", "change the {b} colour to {c}", "change the color of the {b} to {c}",
        "make the {b} {c} instead", "the {b} needs to be {c}", "give it a {c} {b}", "use a {c} {b}",
        "fill the {b} with {c}", "let the {b} be {c}", "i'd like a {c} {b}", "switch the {b} to {c}",
        "dye the {b} {c}", "{b} to {c}", "make the {b} look {c}", "turn the {b} into {c}",
        "paint the {b} in {c}", "the {b} must be {c}", "put it on a {c} {b}", "swap the {b} for a {c} one",
        "redo the {b} in {c}", "i need the {b} to be {c}", "replace the {b} with {c}", "shade the {b} {c}",
    ],
    "remove": [
        "remove the {o}", "delete the {o}", "take away the {o}", "erase the {o}", "get rid of the {o}",
        "take out the {o}", "remove the {o} from the picture", "delete the {o} from the image", "drop the {o}",
        "lose the {o}", "clear the {o}", "make the {o} disappear", "the {o} has to go", "take the {o} away",
        "wipe out the {o}", "rub out the {o}", "cut the {o}", "cut out the {o}", "pull out the {o}",
        "no more {o}", "without the {o}", "leave out the {o}", "do away with the {o}", "remove that {o}",
        "the {o} should go away", "delete the {o} completely", "erase the {o} from the scene",
        "i don't want the {o}", "take the {o} out of the picture", "scrub the {o}", "eliminate the {o}",
    ],
}
HELDOUT = {
    "recolor": [
        "please recolour the {o} to {c}", "i want the {o} in {c}", "can you paint the {o} {c}",
        "the {o} should be {c}", "i would like the {o} to be {c}", "could the {o} be {c}?",
        "transform the {o} to {c}", "apply {c} to the {o}", "the {o} ought to be {c}", "tint the {o} {c}",
        "alter the {o}'s color to {c}", "go ahead and make the {o} {c}", "render the {o} in {c}",
        "can the {o} be {c}", "change only the {o} to {c}", "i'd prefer the {o} {c}", "have the {o} be {c}",
        "make that {o} {c}",
    ],
    "reshape": [
        "please turn the {o} into {s} for me", "i want {s} instead of the {o}", "can you make the {o} {s}",
        "the {o} should be {s}", "could the {o} become {s}?", "i would prefer {s} over the {o}",
        "go ahead and replace the {o} with {s}", "rebuild the {o} as {s}",
    ],
    "background": [
        "please recolour the {b} to {c}", "i want the {b} in {c}", "can you paint the {b} {c}",
        "the {b} should be {c}", "could the {b} be {c}?", "tint the {b} {c}", "apply {c} to the {b}",
        "go ahead and make the {b} {c}",
    ],
    "remove": [
        "please remove the {o} for me", "i want the {o} gone", "can you delete the {o}", "the {o} should vanish",
        "could you get rid of the {o}?", "go ahead and erase the {o}", "banish the {o}", "strip the {o} away",
    ],
}
PREFIXES = ["", "", "", "", "please ", "can you ", "could you ", "now ", "ok, ", "hey, ", "just "]
SUFFIXES = ["", "", "", "", " please", ".", "!", " thanks", ", thank you"]
BACKGROUND_WORDS = ["background", "backdrop", "background colour", "background color"]


# Captions (the prompts of toy-sd's p2p / ddim / sdedit): a scene described as a user might, the source and
# target caption of one edit worded alike except for the edited word(s), as a user writes the source caption
# and then changes the word. {objs}: the objects ("a red circle and a blue square"); {bg}: the background
# with its article ("a green background").
CAPTION_TRAIN = [
    "{objs} on {bg}", "{objs} against {bg}", "{objs} over {bg}", "{objs} in front of {bg}", "{objs}, {bg}",
    "a picture of {objs} on {bg}", "an image of {objs} on {bg}", "a drawing of {objs} on {bg}",
    "{bg} with {objs}", "{objs} on top of {bg}", "a simple drawing of {objs} on {bg}", "{objs} set on {bg}",
]
CAPTION_HELDOUT = [
    "a photo of {objs} on {bg}", "there is {objs} on {bg}", "{objs} sitting on {bg}", "{bg} behind {objs}",
    "an illustration showing {objs} against {bg}", "{objs} placed over {bg}",
]
CAPTION_JOINERS_TRAIN = [" and ", " and ", " next to ", " beside ", ", ", " with "]
CAPTION_JOINERS_HELDOUT = [" as well as ", " near "]
CAPTION_BG_WORDS = ["background", "background", "backdrop"]
CAPTION_EMPTY = {"train": "just {bg}", "heldout": "nothing but {bg}"}  # every object removed
# "little star" reads badly after a colour ("a red little star"): shape words for captions leave it out
CAPTION_SHAPE_WORDS = {k: [w for w in v if w != "little star"] for k, v in SHAPE_WORDS.items()}


def captions(edit, rng, split: str = "train", synonym_rate: float = 0.3) -> tuple[str, str]:
    """(source caption, target caption) of `edit` (a world.Edit) in a free wording: split "train" (training
    caption templates and joiners) or "heldout" (templates and joiners never used in training). One draw of
    template, joiner and background word serves both captions, and each colour and shape is worded the same in
    both, so only the edited word(s) differ; a colour or shape the source does not have (the edit's new one)
    is worded afresh (a synonym in a share)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"phrasing split {split!r}: expected 'train' or 'heldout'")
    tmpl = _pick(rng, CAPTION_TRAIN if split == "train" else CAPTION_HELDOUT)
    join = _pick(rng, CAPTION_JOINERS_TRAIN if split == "train" else CAPTION_JOINERS_HELDOUT)
    bg_word = _pick(rng, CAPTION_BG_WORDS)
    cw, sw = {}, {}  # colour / shape -> its word in this pair, drawn once (source objects first)

    def cword(c):
        if c not in cw:
            cw[c] = color_word(rng, c, synonym_rate)
        return cw[c]

    def sword(s):
        if s not in sw:
            sw[s] = shape_word(rng, s, synonym_rate, CAPTION_SHAPE_WORDS)
        return sw[s]

    def render(scene):
        objs = join.join(f"{article(cword(o.color))} {cword(o.color)} {sword(o.shape)}" for o in scene.objects)
        bgc = " and ".join(cword(c) for c in scene.background.colors)
        bg = f"{article(bgc)} {bgc} {bg_word}"
        if not objs:
            return CAPTION_EMPTY[split].format(bg=bg)
        return tmpl.format(objs=objs, bg=bg)

    return render(edit.source), render(edit.target)


def for_case(edit, seed: int, split: str) -> tuple[str, tuple[str, str]]:
    """(instruction, (source caption, target caption)) of a scored case worded by `split`, each from its own
    stream of the case's seed ([seed, 1] and [seed, 2]), so the scene never changes with the wording and an
    instruction stays the same whether or not captions are drawn (tools/quality.py, make_quality_fixtures.py)."""
    return (instruction(edit, np.random.default_rng([seed, 1]), split),
            captions(edit, np.random.default_rng([seed, 2]), split))


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pick(rng, xs):
    return xs[int(rng.integers(len(xs)))]


def color_word(rng, color: str, synonym_rate: float) -> str:
    words = COLOR_WORDS[color]
    return words[0] if rng.random() >= synonym_rate else _pick(rng, words[1:])


def shape_word(rng, shape: str, synonym_rate: float, table: dict = SHAPE_WORDS) -> str:
    words = table[shape]
    return words[0] if rng.random() >= synonym_rate else _pick(rng, words[1:])


def object_phrase(rng, edit, synonym_rate: float) -> str:
    """The edited object as a user might name it: its shape (or a synonym), with its colour in a share,
    or its colour alone when no other object has that colour."""
    o = edit.source.objects[edit.obj_index]
    others = [x.color for i, x in enumerate(edit.source.objects) if i != edit.obj_index]
    r = rng.random()
    if r < 0.15 and o.color not in others:
        return color_word(rng, o.color, synonym_rate) + " " + _pick(rng, ["one", "thing", "shape", "object"])
    noun = shape_word(rng, o.shape, synonym_rate)
    if r < 0.35:
        return color_word(rng, o.color, synonym_rate) + " " + noun
    return noun


def _typo(rng, text: str) -> str:
    words = text.split(" ")
    cand = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not cand:
        return text
    i = _pick(rng, cand)
    w = words[i]
    k = int(rng.integers(1, len(w) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        w = w[:k] + w[k + 1] + w[k] + w[k + 2:]
    elif kind == 1:
        w = w[:k] + w[k + 1:]
    else:
        w = w[:k] + w[k] + w[k:]
    words[i] = w
    return " ".join(words)


def _fill(template: str, edit, rng, synonym_rate: float) -> str:
    o = object_phrase(rng, edit, synonym_rate) if "{o}" in template else ""
    c = color_word(rng, edit.target_color, synonym_rate) if "{c}" in template else ""
    s = ""
    if "{s}" in template:
        w = shape_word(rng, edit.target_shape, synonym_rate)
        s = f"{article(w)} {w}"
    b = (BACKGROUND_WORDS[0] if rng.random() < 0.7 else _pick(rng, BACKGROUND_WORDS[1:])) if "{b}" in template else ""
    return template.format(o=o, c=c, s=s, b=b)


def _dress(core: str, rng) -> str:
    """A politeness prefix and/or suffix around a training template."""
    return _pick(rng, PREFIXES) + core + _pick(rng, SUFFIXES)


def instruction(edit, rng, split: str = "train", synonym_rate: float = 0.3, typo_rate: float = 0.05) -> str:
    """A phrasing of `edit` (a world.Edit): split "train" (training templates, dressed, typos in a share) or
    "heldout" (templates never used in training, no typos)."""
    t = edit.edit_type
    if split == "heldout":
        return _fill(_pick(rng, HELDOUT[t]), edit, rng, synonym_rate)
    if split != "train":
        raise ValueError(f"phrasing split {split!r}: expected 'train' or 'heldout'")
    text = _fill(train_template(t, rng), edit, rng, synonym_rate)
    if rng.random() < typo_rate:
        text = _typo(rng, text)
    return text


def _words(text: str) -> set:
    """The alphabetic words of a template or phrase, placeholders and punctuation dropped."""
    out = set()
    for w in text.replace("{o}", " ").replace("{c}", " ").replace("{s}", " ").replace("{b}", " ").split():
        w = w.strip(".,!?'").lower()
        out.update(x for x in w.split("'") if x.isalpha())
    return out


def meaningful_words() -> set:
    """Every word the toy world gives a meaning to or that a template (training or held-out) uses: colour,
    shape and background words and their synonyms, object-phrase words, prefixes, suffixes, template words."""
    ws = set()
    for group in (COLOR_WORDS, SHAPE_WORDS):
        for syns in group.values():
            for x in syns:
                ws |= _words(x)
    for x in BACKGROUND_WORDS + PREFIXES + SUFFIXES + ["one", "thing", "shape", "object", "a", "an"]:
        ws |= _words(x)
    for table in (TRAIN, HELDOUT):
        for ts in table.values():
            for x in ts:
                ws |= _words(x)
    return ws


def noise_pool(vocab_words) -> list:
    """Filler words for unknown-word noise (`add_noise_words`): `vocab_words` (e.g. a tokenizer's common
    whole words) minus every word of `meaningful_words()`, so the noise never contains a held-out template's
    word nor a word that changes the edit."""
    taken = meaningful_words()
    return [w for w in vocab_words if w.isalpha() and w.lower() not in taken]


@functools.lru_cache(maxsize=None)
def _kept_words(edit_type: str) -> frozenset:
    """The words `add_noise_words` never replaces in an instruction of edit_type: those with a meaning in the toy
    world (`meaningful_words()` less the type's own template, prefix and suffix words) and the prepositions."""
    keep = meaningful_words() - _words(" ".join(TRAIN[edit_type] + PREFIXES + SUFFIXES))
    return frozenset(keep | {"the", "to", "into", "in", "of", "for", "with"})


def add_noise_words(text: str, edit_type: str, rng, pool) -> str:
    """Unknown-word noise on a training phrasing: one or two filler words from `pool` inserted at random
    places, and, for the edits whose meaning lives in their colour word (recolour, background; not remove,
    whose verb is its meaning, nor reshape, whose "instead of" / "into" says which shape goes), in half the
    cases one template word (a verb, "colour", "please" ...) replaced by a filler.
    Teaches the model to find the object and the colour among words it has never seen, as free phrasings
    put them; the pool has no held-out template word, so held-out phrasings stay unseen."""
    words = text.split(" ")
    if edit_type in ("recolor", "background") and rng.random() < 0.5:
        keep = _kept_words(edit_type)
        cand = [i for i, w in enumerate(words) if w.isalpha() and w.lower() not in keep]
        if cand:
            words[_pick(rng, cand)] = _pick(rng, pool)
    for _ in range(1 + int(rng.random() < 0.4)):
        words.insert(int(rng.integers(len(words) + 1)), _pick(rng, pool))
    return " ".join(words)


def train_template(t: str, rng) -> str:
    """A dressed training template of edit type t, never one of the held-out templates."""
    held = _heldout_templates(t)
    while True:
        tmpl = _dress(_pick(rng, TRAIN[t]), rng)
        if tmpl not in held:
            return tmpl


_HELD_CACHE: dict = {}


def _heldout_templates(t: str) -> set:
    if t not in _HELD_CACHE:
        _HELD_CACHE[t] = set(HELDOUT[t])
    return _HELD_CACHE[t]


def check_disjoint() -> list:
    """Every (prefix, template, suffix) training combination that equals a held-out template (the
    generator skips those); an empty list when the template lists are disjoint as written."""
    clash = []
    for t in TRAIN:
        held = set(HELDOUT[t])
        for core in TRAIN[t]:
            if core in held:
                clash.append((t, core))
            for p in set(PREFIXES):
                for s in set(SUFFIXES):
                    if p + core + s in held:
                        clash.append((t, p + core + s))
    return clash


if __name__ == "__main__":
    import sys
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import world
    for t in world.EDIT_TYPES:
        print(t, len(TRAIN[t]), "training templates,", len(HELDOUT[t]), "held-out")
    print("combinations equal to a held-out template (skipped when generating):", check_disjoint())
    held = set().union(*(_words(x) for ts in HELDOUT.values() for x in ts))
    demo_pool = noise_pool(["zebra", "quickly", "tint", "apply", "circle", "navy", "banana"])
    assert not held & set(demo_pool) and demo_pool == ["zebra", "quickly", "banana"], demo_pool
    rng = np.random.default_rng(0)
    for i in range(12):
        e = world.edit_for_seed(i, world.EDIT_TYPES[i % 4])
        print(f"{e.instruction!r:40s} train: {instruction(e, rng)!r:50s} heldout: {instruction(e, rng, 'heldout')!r}")
    for i in range(8):
        e = world.edit_for_seed(i, world.EDIT_TYPES[i % 4])
        print(e.edit_type, captions(e, rng), captions(e, rng, "heldout"))
