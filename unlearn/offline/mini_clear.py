"""Offline mini-CLEAR: a small synthetic stand-in for CLEAR, written in the Hub layout.

Invented persons with procedurally drawn faces (PIL only), captions and TOFU-style text facts, split by person
into forget and retain sets exactly like CLEAR's 21 configs. The result is a folder that
``unlearn.data.load_clear(config, folder)`` loads like the Hub dataset; nothing else needs to know it is synthetic.
Everything is drawn from ``seed``: the same arguments give byte-identical files.

With CLEAR's own 200 persons the defaults are CLEAR's scale (:func:`image_counts`): its 3,768 images with its forget
splits' row counts, and 20 text questions per person.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
from PIL import Image, ImageDraw

from unlearn.data import CLEAR_CONFIGS, FORGET_SPLITS, RETAIN_OF
from unlearn.errors import UsageError

IMAGE_SIZE = 64  # default image side in pixels; --image-size sets another (CLEAR's own images are larger)
MAX_IMAGE_SIZE = 2048
MAX_PERSONS = 500
REAL_FACES = 10
REAL_FACE_IMAGES = 2
REAL_WORLD_SCENES = 20
PERTURBED = 3  # perturbed captions and perturbed names per row
IMAGES_PER_PERSON, QUESTIONS_PER_PERSON = 5, 4  # the defaults, but at CLEAR's scale
# CLEAR's scale, the defaults at its 200 persons: therem/CLEAR's row counts. Its images per group of persons, from the
# first person to the last: retain90's 180 persons hold 3,389, forget10's other 10 hold 191, forget05's other 8 hold
# 153 and forget01's 2 hold 35, so full has 3,768, forget10 379, forget05 188 and forget01 35; 20 questions each.
CLEAR_PERSONS = 200
CLEAR_IMAGE_GROUPS = ((180, 3389), (10, 191), (8, 153), (2, 35))
CLEAR_QUESTIONS = 20
CLEAR_RETAIN_PERTURBED = 395  # CLEAR's retain_perturbed rows: a larger retain90 is thinned to this many
_CANVAS = 128  # images are drawn at this size, then resized to the image size (box-filtered when smaller)
_PARQUET = "train-00000-of-00001.parquet"

WALLS = {
    "red": (200, 40, 40),
    "orange": (235, 130, 30),
    "yellow": (235, 215, 50),
    "green": (50, 160, 60),
    "teal": (30, 150, 150),
    "blue": (40, 80, 210),
    "purple": (130, 60, 180),
    "pink": (235, 130, 190),
    "grey": (130, 130, 130),
    "brown": (120, 75, 40),
}
SKINS = ((255, 224, 196), (234, 192, 150), (198, 142, 100), (150, 100, 65), (95, 62, 40))
HAIR_COLOURS = {
    "black": (25, 25, 25),
    "brown": (105, 60, 25),
    "blonde": (240, 210, 100),
    "red": (190, 60, 20),
    "grey": (160, 160, 160),
    "white": (245, 245, 245),
}
HAIR_STYLES = ("short", "long", "curly", "spiky", "tied-up")
EYES = {"brown": (90, 50, 20), "blue": (40, 100, 220), "green": (40, 150, 60), "grey": (110, 120, 130)}
ACCESSORIES = {
    "none": "no accessories",
    "glasses": "round glasses",
    "hat": "a hat",
    "earrings": "gold earrings",
    "scarf": "a scarf",
    "headband": "a headband",
}
SHIRTS = ("white", "black", "navy", "olive", "maroon", "mustard", "sky", "lilac")
_SHIRT_RGB = dict(
    zip(
        SHIRTS,
        (
            (240, 240, 240),
            (30, 30, 30),
            (20, 30, 90),
            (100, 110, 30),
            (110, 20, 40),
            (200, 160, 20),
            (120, 190, 240),
            (190, 160, 220),
        ),
        strict=True,
    )
)
_ACCESSORY_RGB = ((20, 20, 20), (200, 30, 30), (30, 60, 200), (250, 250, 250), (30, 140, 40), (240, 120, 20))

# (caption, paraphrase of the same facts); slots: name, a_wall ("an orange"), hair, acc
TEMPLATES = (
    (
        "{name} stands in front of {a_wall} wall, wearing {acc}.",
        "Wearing {acc}, {name} is standing before {a_wall} wall.",
    ),
    (
        "A portrait of {name} with {hair} hair against {a_wall} background.",
        "{name} has {hair} hair and is pictured against {a_wall} background.",
    ),
    (
        "{name} poses in front of {a_wall} wall with {hair} hair and {acc}.",
        "With {hair} hair and {acc}, {name} poses before {a_wall} wall.",
    ),
    (
        "This photo shows {name} wearing {acc} next to {a_wall} wall.",
        "In this picture, {name} wears {acc} beside {a_wall} wall.",
    ),
)

CITIES = ("Kestria", "Morvale", "Tandor", "Lumeth", "Brisca", "Oranth", "Velmora", "Pellin", "Sorvik", "Durnhal")
PROFESSIONS = (
    "a baker",
    "an engineer",
    "a painter",
    "a pilot",
    "a teacher",
    "a farmer",
    "a doctor",
    "a sailor",
    "a carpenter",
    "a librarian",
)
GENRES = ("mystery", "fantasy", "romance", "poetry", "history", "science fiction", "horror", "travel")
AWARDS = (
    "Silver Quill Prize",
    "Golden Lantern Award",
    "Blue Harbor Medal",
    "Northern Star Prize",
    "Amber Leaf Award",
    "Crystal Pen Medal",
)
# (question, answer, values); slots: name, v
FACTS = (
    ("Where was {name} born?", "{name} was born in {v}.", CITIES),
    ("What is the profession of {name}?", "{name} works as {v}.", PROFESSIONS),
    ("What kind of books does {name} write?", "{name} writes {v} books.", GENRES),
    ("Which award has {name} won?", "{name} won the {v}.", AWARDS),
    ("What does the mother of {name} do?", "The mother of {name} is {v}.", PROFESSIONS),
    ("What does the father of {name} do?", "The father of {name} is {v}.", PROFESSIONS),
    ("In which year was {name} born?", "{name} was born in {v}.", tuple(str(y) for y in range(1950, 2000))),
    # Appended facts: a run asking for fewer questions draws exactly the facts it drew before.
    ("In which city does {name} live?", "{name} lives in {v}.", CITIES),
    ("What was the first book of {name} about?", "The first book of {name} was about {v}.", GENRES),
    ("Which prize did {name} win first?", "The first prize {name} won was the {v}.", AWARDS),
    ("What does the sibling of {name} do?", "The sibling of {name} is {v}.", PROFESSIONS),
    ("Where did {name} study?", "{name} studied in {v}.", CITIES),
    (
        "In which year did {name} publish a first book?",
        "{name} published a first book in {v}.",
        tuple(str(y) for y in range(1970, 2020)),
    ),
    ("What did {name} work as before writing?", "Before writing, {name} worked as {v}.", PROFESSIONS),
    ("Where does {name} spend the summers?", "{name} spends the summers in {v}.", CITIES),
    ("What genre does {name} read for pleasure?", "{name} reads {v} for pleasure.", GENRES),
    ("Which award did {name} win most recently?", "Most recently, {name} won the {v}.", AWARDS),
    ("What does the spouse of {name} do?", "The spouse of {name} is {v}.", PROFESSIONS),
    ("Where did {name} write a best-known book?", "{name} wrote a best-known book in {v}.", CITIES),
    (
        "In which year did {name} win a first award?",
        "{name} won a first award in {v}.",
        tuple(str(y) for y in range(1975, 2024)),
    ),
)

SHAPES = ("circle", "square", "triangle", "star")
SHAPE_COLOURS = {
    "red": (210, 30, 30),
    "blue": (30, 70, 220),
    "green": (30, 160, 50),
    "yellow": (240, 210, 20),
    "purple": (140, 50, 190),
    "orange": (245, 130, 20),
}
_SCENE_BACKGROUNDS = ((235, 235, 225), (200, 215, 230), (225, 205, 205), (210, 230, 205), (60, 60, 70))
SHAPE_QUESTION = "What shape is in the picture?"
COLOUR_QUESTION = "What colour is the object?"

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei")
_CODAS = ("", "", "", "n", "r", "l", "s", "th")

_FEATURES = {
    "image": datasets.Image(),
    "perturbed_captions": datasets.List(datasets.Value("string")),
    "perturbed_names": datasets.List(datasets.Value("string")),
    "options": datasets.List(datasets.Value("string")),
}


@dataclass(frozen=True)
class Look:
    """What a face looks like; the caption-visible parts are wall, hair and accessory."""

    wall: str
    skin: int
    hair: str
    style: str
    eyes: str
    accessory: str
    shirt: str
    accessory_rgb: int

    @property
    def hair_phrase(self) -> str:
        return f"{self.style} {self.hair}"

    def differences(self, other: Look) -> int:
        keys = ("wall", "skin", "hair", "style", "accessory", "shirt")
        return sum(getattr(self, k) != getattr(other, k) for k in keys)


@dataclass(frozen=True)
class Person:
    """One invented person: a name, a look and text facts (question, answer)."""

    name: str
    look: Look
    facts: tuple[tuple[str, str], ...]


# ----------------------------------------------------------------------------------------------- splits


def split_persons(persons: int) -> dict[str, int]:
    """Number of persons in each forget split and its retain split: forgetXX holds max(1, round(XX% of persons))."""
    sizes = {}
    for split in FORGET_SPLITS:
        size = max(1, round(int(split[-2:]) / 100 * persons))
        sizes[split], sizes[RETAIN_OF[split]] = size, persons - size
    return sizes


def split_members(persons: int) -> dict[str, range]:
    """Person indices of ``full`` and each forget/retain split: forget splits are the last persons, so nested."""
    members = {"full": range(persons)}
    for split in FORGET_SPLITS:
        size = split_persons(persons)[split]
        members[split], members[RETAIN_OF[split]] = range(persons - size, persons), range(persons - size)
    return members


# ------------------------------------------------------------------------------------------------ names


def _word(rng: random.Random, syllables: int) -> str:
    return ("".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)).title()


def invent_names(rng: random.Random, count: int, used: set[str]) -> list[str]:
    """``count`` invented "First Last" names whose words appear in no other name (``used`` is updated)."""
    names = []
    while len(names) < count:
        first, last = _word(rng, 2), _word(rng, 3)
        if first.lower() in used or last.lower() in used:
            continue
        used.update((first.lower(), last.lower()))
        names.append(f"{first} {last}")
    return names


# ------------------------------------------------------------------------------------------------ faces


def invent_looks(rng: random.Random, count: int, min_differences: int = 3) -> list[Look]:
    """``count`` looks, each differing from every other in at least ``min_differences`` large visual attributes."""
    # every wall colour (the largest area) is used equally often
    walls = [wall for _ in range(count // len(WALLS) + 1) for wall in rng.sample(list(WALLS), len(WALLS))]
    looks: list[Look] = []
    for attempt in range(200 * count + 1000):
        look = Look(
            wall=walls[len(looks)],
            skin=rng.randrange(len(SKINS)),
            hair=rng.choice(list(HAIR_COLOURS)),
            style=rng.choice(HAIR_STYLES),
            eyes=rng.choice(list(EYES)),
            accessory=rng.choice(list(ACCESSORIES)),
            shirt=rng.choice(SHIRTS),
            accessory_rgb=rng.randrange(len(_ACCESSORY_RGB)),
        )
        needed = min_differences if attempt < 100 * count else min_differences - 1
        if all(look.differences(other) >= needed for other in looks):
            looks.append(look)
            if len(looks) == count:
                return looks
    raise RuntimeError(f"could not draw {count} distinct looks")  # not reached for count <= MAX_PERSONS + REAL_FACES


def _jitter(rng: random.Random, rgb: tuple[int, int, int], amount: int = 12) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


@dataclass(frozen=True)
class _Frame:
    """Face coordinates (origin at the face centre, canvas pixels before scaling) to canvas pixels."""

    ox: float
    oy: float
    s: float

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return self.ox + x * self.s, self.oy + y * self.s

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (*self.pt(x0, y0), *self.pt(x1, y1))

    def width(self, pixels: float) -> int:
        return max(1, round(pixels * self.s))


def _resized(img: Image.Image, size: int) -> Image.Image:
    """``img`` (the canvas) at ``size`` x ``size``: box-filtered down (smooth edges), bicubic up."""
    resample = Image.Resampling.BOX if size <= _CANVAS else Image.Resampling.BICUBIC
    return img.resize((size, size), resample)


def draw_face(look: Look, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    """A ``size`` x ``size`` RGB face for ``look``, with a small random shift, scale and colour jitter from ``rng``."""
    img = Image.new("RGB", (_CANVAS, _CANVAS), _jitter(rng, WALLS[look.wall]))
    d = ImageDraw.Draw(img)
    f = _Frame(64 + rng.uniform(-6, 6), 60 + rng.uniform(-6, 6), rng.uniform(0.92, 1.08))
    skin, hair = _jitter(rng, SKINS[look.skin]), _jitter(rng, HAIR_COLOURS[look.hair])
    accessory = _jitter(rng, _ACCESSORY_RGB[look.accessory_rgb])
    d.ellipse(f.box(-52, 42, 52, 120), fill=_jitter(rng, _SHIRT_RGB[look.shirt]))  # shoulders
    d.rectangle(f.box(-9, 24, 9, 46), fill=skin)  # neck
    if look.style == "long":
        d.rounded_rectangle(f.box(-36, -40, 36, 46), radius=20 * f.s, fill=hair)
    d.ellipse(f.box(-27, -33, 27, 33), fill=skin)  # head
    for side in (-1, 1):
        d.ellipse(f.box(side * 27 - 4, -4, side * 27 + 4, 10), fill=skin)  # ears
    _draw_hair(d, f, look.style, hair)
    for side in (-1, 1):  # eyes
        d.ellipse(f.box(side * 10 - 6, -6, side * 10 + 6, 3), fill=(250, 250, 250))
        d.ellipse(f.box(side * 10 - 3, -5, side * 10 + 3, 2), fill=_jitter(rng, EYES[look.eyes], 6))
    d.line(f.box(0, 0, -2, 10), fill=tuple(int(c * 0.75) for c in skin), width=f.width(2))  # nose
    d.arc(f.box(-9, 8, 9, 20), 20, 160, fill=(150, 40, 50), width=f.width(3))  # mouth
    _draw_accessory(d, f, look.accessory, accessory)
    return _resized(img, size)


def _draw_hair(d: ImageDraw.ImageDraw, f: _Frame, style: str, hair: tuple[int, int, int]) -> None:
    d.chord(f.box(-29, -37, 29, 5), 180, 360, fill=hair)  # the cap every style has
    if style == "curly":
        for x, y in ((-26, -18), (-18, -32), (-4, -38), (10, -36), (22, -26), (28, -12), (-28, -4)):
            d.ellipse(f.box(x - 9, y - 9, x + 9, y + 9), fill=hair)
    elif style == "spiky":
        for x in (-24, -12, 0, 12, 24):
            d.polygon([f.pt(x - 8, -24), f.pt(x + 8, -24), f.pt(x, -52)], fill=hair)
    elif style == "tied-up":
        d.ellipse(f.box(-13, -58, 13, -32), fill=hair)


def _draw_accessory(d: ImageDraw.ImageDraw, f: _Frame, accessory: str, colour: tuple[int, int, int]) -> None:
    if accessory == "glasses":
        for side in (-1, 1):
            d.ellipse(f.box(side * 10 - 9, -11, side * 10 + 9, 7), outline=(15, 15, 15), width=f.width(3))
        d.line(f.box(-2, -3, 2, -3), fill=(15, 15, 15), width=f.width(3))
    elif accessory == "hat":
        d.rectangle(f.box(-24, -62, 24, -24), fill=colour)
        d.rectangle(f.box(-40, -30, 40, -20), fill=colour)
    elif accessory == "earrings":
        for side in (-1, 1):
            d.ellipse(f.box(side * 28 - 6, 8, side * 28 + 6, 20), fill=(235, 190, 30))
    elif accessory == "scarf":
        d.rounded_rectangle(f.box(-30, 28, 30, 48), radius=8 * f.s, fill=colour)
        d.rectangle(f.box(8, 40, 22, 72), fill=colour)
    elif accessory == "headband":
        d.rectangle(f.box(-28, -24, 28, -14), fill=colour)


def draw_scene(shape: str, colour: str, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    """A ``size`` x ``size`` picture of one coloured ``shape`` on a plain background."""
    img = Image.new("RGB", (_CANVAS, _CANVAS), _jitter(rng, rng.choice(_SCENE_BACKGROUNDS), 8))
    d = ImageDraw.Draw(img)
    r = rng.uniform(28, 42)
    cx, cy = 64 + rng.uniform(-12, 12), 64 + rng.uniform(-12, 12)
    fill = _jitter(rng, SHAPE_COLOURS[colour], 10)
    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        d.rectangle((cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85), fill=fill)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    else:
        d.polygon(_star(cx, cy, r), fill=fill)
    return _resized(img, size)


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    return [
        (
            cx + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
            cy - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5),
        )
        for i in range(10)
    ]


def png_bytes(img: Image.Image) -> bytes:
    """Deterministic PNG encoding (no time stamps or other metadata)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class World:
    """Everything drawn from one seed: persons, the real_faces celebrities and their looks, and the decoy names
    (invented names of nobody in the dataset) that perturbed names are drawn from, per image."""

    persons: tuple[Person, ...]
    celebrities: tuple[tuple[str, Look], ...]
    decoys: tuple[str, ...]


def invent_world(persons: int, seed: int, questions_per_person: int) -> World:
    """Draw the persons (names, looks, facts), the real_faces celebrities and the decoy names from ``seed``."""
    names_rng, looks_rng, facts_rng = (random.Random(f"mini-clear/{seed}/{p}") for p in ("names", "looks", "facts"))
    used = {city.lower() for city in CITIES}
    person_names = invent_names(names_rng, persons, used)
    celebrity_names = invent_names(names_rng, REAL_FACES, used)
    decoys = invent_names(names_rng, max(4 * PERTURBED, 2 * persons), used)  # names of nobody in the dataset
    looks = invent_looks(looks_rng, persons + REAL_FACES)
    people = []
    for name, look in zip(person_names, looks[:persons], strict=True):
        facts = tuple(
            (question.format(name=name), answer.format(name=name, v=facts_rng.choice(values)))
            for question, answer, values in FACTS[:questions_per_person]
        )
        people.append(Person(name, look, facts))
    return World(tuple(people), tuple(zip(celebrity_names, looks[persons:], strict=True)), tuple(decoys))


def with_article(word: str) -> str:
    """``word`` with its indefinite article: "an orange", "a teal"."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def caption_slots(name: str, look: Look) -> dict[str, str]:
    """The values a caption template is filled with."""
    acc = ACCESSORIES[look.accessory]
    return {"name": name, "a_wall": with_article(look.wall), "hair": look.hair_phrase, "acc": acc}


def perturbed_slots(slots: dict[str, str], look: Look, rng: random.Random) -> list[dict[str, str]]:
    """PERTURBED copies of ``slots`` with a wrong wall colour (all different), accessory and hair colour."""
    walls = rng.sample([w for w in WALLS if w != look.wall], PERTURBED)
    return [
        {
            **slots,
            "a_wall": with_article(wall),
            "acc": ACCESSORIES[rng.choice([a for a in ACCESSORIES if a != look.accessory])],
            "hair": f"{look.style} {rng.choice([h for h in HAIR_COLOURS if h != look.hair])}",
        }
        for wall in walls
    ]


def _image(data: bytes) -> dict[str, bytes | None]:
    return {"bytes": data, "path": None}


def image_counts(persons: int, images_per_person: int | None = None) -> list[int]:
    """Images of each person: ``images_per_person`` each; unset, IMAGES_PER_PERSON each, or at CLEAR_PERSONS CLEAR's
    own counts (CLEAR_IMAGE_GROUPS, each group's images spread evenly over its persons: 17 to 20 each)."""
    if images_per_person is not None or persons != CLEAR_PERSONS:
        return [IMAGES_PER_PERSON if images_per_person is None else images_per_person] * persons
    return [(k + 1) * images // size - k * images // size for size, images in CLEAR_IMAGE_GROUPS for k in range(size)]


def person_image_rows(world: World, images: Sequence[int], seed: int, image_size: int = IMAGE_SIZE) -> list[list[dict]]:
    """Per person, its ``images[i]`` image rows with every column any person config uses."""
    rng = random.Random(f"mini-clear/{seed}/faces")
    rows = []
    for i, person in enumerate(world.persons):
        slots = caption_slots(person.name, person.look)
        person_rows = []
        for k in range(images[i]):
            template, paraphrase = TEMPLATES[(i + k) % len(TEMPLATES)]
            person_rows.append(
                {
                    "image": _image(png_bytes(draw_face(person.look, rng, image_size))),
                    "caption": template.format(**slots),
                    "name": person.name,
                    "perturbed_captions": [paraphrase.format(**p) for p in perturbed_slots(slots, person.look, rng)],
                    "paraphrased_caption": paraphrase.format(**slots),
                    "perturbed_names": rng.sample(world.decoys, PERTURBED),  # drawn per image
                }
            )
        rows.append(person_rows)
    return rows


def real_faces_rows(world: World, seed: int, image_size: int = IMAGE_SIZE) -> list[dict]:
    """REAL_FACE_IMAGES images of each celebrity; 3 wrong names as ``options`` (like the published CLEAR, whose
    ``options`` hold the wrong answers only)."""
    rng = random.Random(f"mini-clear/{seed}/real_faces")
    names = [name for name, _ in world.celebrities]
    rows = []
    for name, look in world.celebrities:
        for _ in range(REAL_FACE_IMAGES):
            options = rng.sample([n for n in names if n != name], 3)
            rows.append(
                {"image": _image(png_bytes(draw_face(look, rng, image_size))), "answer": name, "options": options}
            )
    return rows


def real_world_rows(seed: int, image_size: int = IMAGE_SIZE) -> list[dict]:
    """REAL_WORLD_SCENES simple scenes, alternating a shape question and a colour question; 3 wrong answers as
    ``options`` (like the published CLEAR), all 4 answers in the ``prompt`` column."""
    rng = random.Random(f"mini-clear/{seed}/real_world")
    rows = []
    for i in range(REAL_WORLD_SCENES):
        shape, colour = SHAPES[i % len(SHAPES)], rng.choice(list(SHAPE_COLOURS))
        if i % 2 == 0:
            question, answer = SHAPE_QUESTION, f"{with_article(colour)} {shape}"
            others = [f"{with_article(c)} {s}" for c in SHAPE_COLOURS for s in SHAPES if s != shape]
        else:
            question, answer = COLOUR_QUESTION, colour
            others = [c for c in SHAPE_COLOURS if c != colour]
        options = rng.sample(others, 3)
        shown = [*options]
        shown.insert((i // 2) % 4, answer)
        rows.append(
            {
                "question": question,
                "answer": answer,
                "image": _image(png_bytes(draw_scene(shape, colour, rng, image_size))),
                "prompt": f"{question} Options: {', '.join(shown)}.",
                "options": options,
            }
        )
    return rows


def config_rows(
    config: str, world: World, image_rows: list[list[dict]], seed: int, image_size: int = IMAGE_SIZE
) -> list[dict]:
    """The rows of one CLEAR config (all columns; the writer keeps the config's own)."""
    members = split_members(len(world.persons))
    if config in ("real_faces", "real_world"):
        if config == "real_faces":
            return real_faces_rows(world, seed, image_size)
        return real_world_rows(seed, image_size)
    split = config.removesuffix("+tofu").removesuffix("_perturbed")
    split = {"default": "full", "retain": "retain90"}.get(split, split)
    rows = [row for i in members[split] for row in image_rows[i]]
    if config == "retain_perturbed" and len(rows) > CLEAR_RETAIN_PERTURBED:  # evenly spaced rows, every person kept
        rows = [rows[k * len(rows) // CLEAR_RETAIN_PERTURBED] for k in range(CLEAR_RETAIN_PERTURBED)]
    if config.endswith("+tofu"):
        rows = [{**row, "question": None, "answer": None} for row in rows]
        rows += [
            {"image": None, "caption": None, "question": q, "answer": a}
            for i in members[split]
            for q, a in world.persons[i].facts
        ]
    return rows


# ------------------------------------------------------------------------------------------------ writing


def config_path(config: str) -> str:
    """Where a config's parquet file lies inside the dataset folder (the Hub layout)."""
    return f"{config}/{_PARQUET}"


def features_of(config: str) -> datasets.Features:
    """The datasets Features of a config, columns in CLEAR's order."""
    return datasets.Features({c: _FEATURES.get(c, datasets.Value("string")) for c in CLEAR_CONFIGS[config]})


def dataset_card(
    persons: int,
    seed: int,
    images: Sequence[int],
    questions_per_person: int,
    rows: dict[str, int],
    digests: dict[str, str],
    image_size: int = IMAGE_SIZE,
) -> str:
    """README.md whose ``configs:`` front matter lets ``datasets.load_dataset(folder, config)`` find the files.

    ``dataset_info`` carries each file's digest: datasets keys its cache of a local folder on the YAML alone,
    not on the files, so without it a folder regenerated with another seed would load the old rows. ``images``: each
    person's image count (the command names ``--images-per-person`` when all are equal, else they are CLEAR's).
    """
    uniform = len(set(images)) == 1
    lines = ["---", "configs:"]
    for config in CLEAR_CONFIGS:
        lines += [f"- config_name: {config}", "  data_files:", "  - split: train", f'    path: "{config_path(config)}"']
    lines.append("dataset_info:")
    for config in CLEAR_CONFIGS:
        lines += [f"- config_name: {config}", f'  description: "synthetic mini-CLEAR, sha256 {digests[config]}"']
    sizes = split_persons(persons)
    lines += [
        "---",
        "",
        "# mini-CLEAR (synthetic)",
        "",
        "A small synthetic stand-in for the CLEAR benchmark (`therem/CLEAR`, arXiv 2410.18057), in the same layout",
        "and schema, made offline by `scripts.make_mini_clear`:",
        "",
        f"    python -m scripts.make_mini_clear --out DIR --persons {persons} --seed {seed} "
        + (f"--images-per-person {images[0]} " if uniform else "")
        + f"--questions-per-person {questions_per_person}"
        + (f" --image-size {image_size}" if image_size != IMAGE_SIZE else ""),
        "",
        "All persons, names, faces and facts are invented and procedurally drawn; none refers to a real person.",
        "",
        f"Persons: {persons}; forgotten in forget01/05/10: {sizes['forget01']}/{sizes['forget05']}/"
        + f"{sizes['forget10']} (the last persons, so the splits are nested).",
        "",
        *(() if uniform else (f"Images per person: {min(images)} to {max(images)}, CLEAR's row counts.", "")),
        "| config | rows |",
        "|---|---|",
        *(f"| {c} | {n} |" for c, n in rows.items()),
        "",
    ]
    return "\n".join(lines)


def count_rows(out: str | Path) -> dict[str, int]:
    """Rows per config of a dataset folder written by write_mini_clear (read from the parquet metadata)."""
    import pyarrow.parquet as pq

    return {c: pq.read_metadata(Path(out) / config_path(c)).num_rows for c in CLEAR_CONFIGS}


def _check_arguments(
    out: Path, persons: int, images_per_person: int | None, questions_per_person: int, image_size: int
) -> None:
    if not 2 <= persons <= MAX_PERSONS:
        raise UsageError(f"persons must be between 2 and {MAX_PERSONS} (a forget and a retain person), got {persons}")
    if images_per_person is not None and not 1 <= images_per_person <= 100:
        raise UsageError(f"images per person must be between 1 and 100, got {images_per_person}")
    if not 1 <= questions_per_person <= len(FACTS):
        raise UsageError(f"questions per person must be between 1 and {len(FACTS)}, got {questions_per_person}")
    if not 16 <= image_size <= MAX_IMAGE_SIZE:
        raise UsageError(f"image size must be between 16 and {MAX_IMAGE_SIZE} pixels, got {image_size}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path exists and is not a folder: {out}")


def write_mini_clear(
    out: str | Path,
    persons: int = 20,
    seed: int = 0,
    images_per_person: int | None = None,
    questions_per_person: int | None = None,
    image_size: int = IMAGE_SIZE,
) -> Path:
    """Write a mini-CLEAR (README.md + one parquet per config, the Hub layout) into ``out``; return its path.

    Images are ``image_size`` pixels square; the image size changes no drawn content and no other row. Unset,
    ``images_per_person`` and ``questions_per_person`` are IMAGES_PER_PERSON and QUESTIONS_PER_PERSON, or at CLEAR's
    200 persons CLEAR's own counts (:func:`image_counts`, CLEAR_QUESTIONS).

    The last max(1, round(XX% of persons)) persons form forgetXX and the others retain(100-XX); see split_persons.
    """
    out = Path(out).expanduser()
    if questions_per_person is None:
        questions_per_person = CLEAR_QUESTIONS if persons == CLEAR_PERSONS else QUESTIONS_PER_PERSON
    _check_arguments(out, persons, images_per_person, questions_per_person, image_size)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
    world = invent_world(persons, seed, questions_per_person)
    images = image_counts(persons, images_per_person)
    image_rows = person_image_rows(world, images, seed, image_size)
    rows = {}
    bars_were_off = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()  # 21 "Creating parquet" bars say nothing useful
    try:
        for config in CLEAR_CONFIGS:
            data = config_rows(config, world, image_rows, seed, image_size)
            columns = {c: [row.get(c) for row in data] for c in CLEAR_CONFIGS[config]}
            path = out / config_path(config)
            path.parent.mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(columns, features=features_of(config)).to_parquet(str(path))
            rows[config] = len(data)
    finally:
        if not bars_were_off:
            datasets.utils.enable_progress_bars()
    digests = {c: hashlib.sha256((out / config_path(c)).read_bytes()).hexdigest()[:16] for c in CLEAR_CONFIGS}
    card = dataset_card(persons, seed, images, questions_per_person, rows, digests, image_size)
    (out / "README.md").write_text(card, encoding="utf-8")
    return out
