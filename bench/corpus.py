"""Deterministic synthetic corpus of blog posts for benchmarking the feed service.

The feed service reads posts stored as text files with YAML front matter in a
static-site layout. Benchmarks need many such posts in exactly that format, and
need the same posts on every run so timings from different runs or branches can
be compared. ``post_text(index, seed=...)`` always returns the same text for the
same arguments, and ``write_corpus`` writes byte-identical files for the same
``(count, seed)``. Only the standard library is used.

CLI: ``python bench/corpus.py OUT_DIR --count N [--seed S]``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from datetime import datetime, timedelta
from functools import cache
from math import gcd
from pathlib import Path

CATEGORIES: tuple[str, ...] = (
    "latest",
    "news",
    "world",
    "politics",
    "business",
    "technology",
    "science",
    "health",
    "sport",
    "football",
    "culture",
    "film",
    "music",
    "travel",
    "food",
    "opinion",
    "environment",
    "education",
    "transport",
    "weather",
)
_OTHER_CATEGORIES = CATEGORIES[1:]

_DATE_START = datetime(2015, 1, 1)
# Seconds from 2015-01-01 00:00:00 up to and including 2025-12-31 23:59:59.
_DATE_SPAN = int((datetime(2026, 1, 1) - _DATE_START).total_seconds())
# Weyl-sequence step (~golden ratio of the span), coprime with the span so that
# indices below _DATE_SPAN map to distinct seconds: no date ties, even spread.
_DATE_STEP = next(
    s for s in range(int(_DATE_SPAN * 0.6180339887), _DATE_SPAN) if gcd(s, _DATE_SPAN) == 1
)

_POOL_SEED = 20_240_601
_POOL_SIZE = 4096
_MARKDOWN_SHARE = 0.35


def _words(text: str) -> tuple[str, ...]:
    """Split a whitespace-separated word list."""
    return tuple(text.split())


# Vocabulary: ordinary words only (no apostrophes, colons or hashes) so that
# titles and descriptions are always valid, non-boolean YAML plain scalars.
_NOUNS = _words("""
council city town village river bridge road street station railway train bus
tram airport harbour market shop business company factory office worker union
school college university student teacher pupil lesson exam library museum
gallery theatre cinema film festival concert band album song artist writer
novel book poem painting exhibition hospital clinic doctor nurse patient
treatment vaccine study report survey research scientist laboratory experiment
team player coach match season league club stadium goal trophy final
government minister parliament election vote campaign policy budget tax
economy price wage pension rent housing estate neighbourhood community
resident family child parent volunteer charity church park garden forest
farm farmer harvest crop weather storm flood rain heatwave winter summer
spring autumn climate energy wind solar panel network signal phone computer
software app website platform data system engine project plan proposal
decision debate meeting committee inquiry court judge lawyer police officer
crime safety fire ambulance lane cycle path walk journey visitor tourist
hotel restaurant kitchen menu chef meal bakery coffee water supply coast
island mountain valley lake beach region county border country nation
""")

_ADJECTIVES = _words("""
new old local national regional public private small large major minor
early late recent annual monthly weekly daily rural urban northern southern
eastern western central coastal quiet busy popular familiar modest ambitious
careful cautious bold clear complex simple strong weak rising falling steady
sudden gradual long short brief detailed independent official informal
historic modern digital green wet dry cold warm bright dark heavy light
expensive affordable free fresh young senior junior full empty open closed
narrow wide safe risky fair generous difficult remarkable ordinary unusual
""")

_VERBS_PAST = _words("""
approved rejected announced delayed opened closed launched reviewed
supported opposed welcomed criticised questioned confirmed described
explained improved reduced increased extended replaced repaired visited
completed started finished planned funded published revealed discussed
challenged defended promised expected received recorded measured tested
changed shared joined left reached won lost built moved protected
""")

_VERBS_BASE = _words("""
approve reject announce delay open close launch review support oppose
welcome question confirm explain improve reduce increase extend replace
repair visit complete start finish plan fund publish reveal discuss
challenge defend change share join reach win build move protect consider
""")

_VERBS_3RD = _words("""
Approves Rejects Announces Delays Opens Closes Launches Reviews Backs
Opposes Welcomes Questions Confirms Explains Improves Cuts Extends
Replaces Repairs Plans Funds Publishes Reveals Debates Defends Expands
Unveils Considers Wins Builds Protects Pauses Restores Upgrades
""")

_ADVERBS = _words("""
quickly slowly carefully quietly openly clearly firmly gradually finally
recently eventually largely mostly partly briefly widely closely directly
""")

_PREPOSITIONS = _words("in near across around along outside inside behind beside")
_REPORTING = _words("said argued noted warned suggested believed feared claimed agreed")
_CONNECTORS = _words("and but while although because after before since")
_INTROS = (
    "Last year",
    "In recent weeks",
    "On Monday",
    "On Tuesday",
    "On Wednesday",
    "On Thursday",
    "On Friday",
    "Over the weekend",
    "For now",
    "In the end",
    "Earlier this month",
    "At the same time",
    "By contrast",
    "In practice",
    "Meanwhile",
    "Even so",
    "For many people",
)
_SPEAKERS = (
    "officials said",
    "a spokesperson said",
    "residents said",
    "the report found",
    "critics argued",
    "supporters said",
    "the committee noted",
    "one researcher said",
)
_GROUPS = (
    "many residents",
    "several officials",
    "some teachers",
    "local businesses",
    "most visitors",
    "two experts",
    "several families",
    "some players",
    "many farmers",
    "a few volunteers",
)
_TITLE_TAILS = _words("After Amid Despite Before Following During Without Beyond")
_DETERMINERS = ("this", "its", "their", "our")
_SMALL_WORDS = frozenset({"of", "and", "the", "for", "in", "to", "a", "an"})
_SLUG_SKIP = _SMALL_WORDS | frozenset(_DETERMINERS)


def _article(word: str) -> str:
    """Return ``a`` or ``an`` for the word that follows."""
    return "an" if word[0] in "aeiou" and not word.startswith(("union", "univ")) else "a"


def _noun_phrase(rng: random.Random) -> list[str]:
    """Return a short noun phrase such as ``the new railway station``."""
    words: list[str] = []
    if rng.random() < 0.6:
        words.append(rng.choice(_ADJECTIVES))
    words.append(rng.choice(_NOUNS))
    if rng.random() < 0.25 and (noun := rng.choice(_NOUNS)) != words[-1]:
        words.append(noun)
    roll = rng.random()
    if roll < 0.3:
        det = _article(words[0])
    elif roll < 0.8:
        det = "the"
    else:
        det = rng.choice(_DETERMINERS)
    phrase = [det, *words]
    if rng.random() < 0.2:
        phrase += ["of", "the", rng.choice(_NOUNS)]
    return phrase


def _clause(rng: random.Random) -> list[str]:
    """Return a subject-verb-object clause, sometimes with a place phrase."""
    words = [*_noun_phrase(rng), rng.choice(_VERBS_PAST), *_noun_phrase(rng)]
    if rng.random() < 0.4:
        words += [rng.choice(_PREPOSITIONS), *_noun_phrase(rng)]
    return words


def _raw_sentence(rng: random.Random) -> str:
    """Return one sentence from a small set of grammatical patterns."""
    kind = rng.randrange(7)
    if kind == 0:
        text = " ".join(_clause(rng))
    elif kind == 1:
        first, second = " ".join(_clause(rng)), " ".join(_clause(rng))
        text = f"{first}, {rng.choice(_CONNECTORS)} {second}"
    elif kind == 2:
        text = f"{rng.choice(_INTROS)}, {' '.join(_clause(rng))}"
    elif kind == 3:
        subject, obj = " ".join(_noun_phrase(rng)), " ".join(_noun_phrase(rng))
        modal = rng.choice(("would", "could", "should", "might", "will"))
        text = f"{subject} said that {obj} {modal} {rng.choice(_VERBS_BASE)}"
        text += f" {' '.join(_noun_phrase(rng))} {rng.choice(_ADVERBS)}"
    elif kind == 4:
        first, second = " ".join(_noun_phrase(rng)), " ".join(_noun_phrase(rng))
        text = f"{first}, which {rng.choice(_VERBS_PAST)} {second}, "
        obj = " ".join(_noun_phrase(rng))
        text += f"{rng.choice(_VERBS_PAST)} {obj} {rng.choice(_ADVERBS)}"
    elif kind == 5:
        clause = " ".join(_clause(rng))
        text = f"{rng.choice(_GROUPS)} {rng.choice(_REPORTING)} that {clause}"
    else:
        text = f"{' '.join(_clause(rng))}, {rng.choice(_SPEAKERS)}"
    return text[0].upper() + text[1:] + "."


def _sentence(rng: random.Random, low: int = 8, high: int = 24) -> str:
    """Return a sentence whose word count lies in ``[low, high]``."""
    while True:
        text = _raw_sentence(rng)
        if low <= len(text.split()) <= high:
            return text


def _link_sentence(rng: random.Random) -> str:
    """Return a sentence whose object is a Markdown link to example.org."""
    while True:
        obj = _noun_phrase(rng)
        slug = "-".join(w for w in obj if w not in _SLUG_SKIP)
        section = rng.choice(_OTHER_CATEGORIES)
        subject = _noun_phrase(rng)
        text = f"{' '.join(subject)} {rng.choice(_VERBS_PAST)} [{' '.join(obj)}](https://example.org/{section}/{slug})"
        if rng.random() < 0.5:
            text += f" {rng.choice(_ADVERBS)}"
        text = text[0].upper() + text[1:] + "."
        if 8 <= len(text.split()) <= 24:
            return text


def _emphasis_sentence(rng: random.Random) -> str:
    """Return a sentence with one word wrapped in ``*emphasis*``."""
    words = _sentence(rng).split()
    candidates = [i for i in range(1, len(words) - 1) if words[i].isalpha()]
    i = rng.choice(candidates)
    words[i] = f"*{words[i]}*"
    return " ".join(words)


def _title_case(words: list[str]) -> str:
    """Capitalise words, keeping short function words lower case mid-title."""
    return " ".join(
        w if i and w in _SMALL_WORDS else w[0].upper() + w[1:] for i, w in enumerate(words)
    )


_Pools = tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...], tuple[str, ...]]


@cache
def _pools() -> _Pools:
    """Build the shared sentence pools once per process (seed-independent)."""
    rng = random.Random(_POOL_SEED)
    sentences = tuple(_sentence(rng) for _ in range(_POOL_SIZE))
    counts = tuple(len(s.split()) for s in sentences)
    links = tuple(_link_sentence(rng) for _ in range(512))
    emphasis = tuple(_emphasis_sentence(rng) for _ in range(512))
    return sentences, counts, links, emphasis


def _title(rng: random.Random) -> str:
    """Return a 6-12 word headline in Title Case."""
    subject = (
        [rng.choice(_NOUNS)]
        if rng.random() < 0.4
        else [rng.choice(_ADJECTIVES), rng.choice(_NOUNS)]
    )
    obj = [rng.choice(_ADJECTIVES), rng.choice(_NOUNS)]
    if rng.random() < 0.5:
        obj.append(rng.choice(_NOUNS))
    tail = rng.choice(_TITLE_TAILS).split()
    tail += [rng.choice(_ADJECTIVES)] * (rng.random() < 0.7) + [rng.choice(_NOUNS)]
    if rng.random() < 0.3:
        tail += [rng.choice(_PREPOSITIONS), rng.choice(_NOUNS)]
    return _title_case([*subject, rng.choice(_VERBS_3RD).lower(), *obj, *tail])


def _heading(rng: random.Random) -> str:
    """Return a Markdown level-two subheading."""
    words = [rng.choice(_ADJECTIVES), rng.choice(_NOUNS)]
    if rng.random() < 0.5:
        words += ["and", rng.choice(_NOUNS)]
    return "## " + _title_case(words)


def _paragraph(rng: random.Random, special: str | None = None) -> tuple[str, int]:
    """Return a paragraph of 40-120 words and its word count."""
    sentences, counts, _, _ = _pools()
    size = len(sentences)
    target = rng.randint(45, 95)
    parts: list[str] = []
    total = 0
    if special is not None:
        parts.append(special)
        total = len(special.split())
    random_ = rng.random
    while total < target:
        i = int(random_() * size)
        parts.append(sentences[i])
        total += counts[i]
    if special is not None:
        j = int(random_() * len(parts))
        parts[0], parts[j] = parts[j], parts[0]
    return " ".join(parts), total


def _body(rng: random.Random) -> str:
    """Return 600-1,500 words of prose, with light Markdown in some posts."""
    target = rng.randint(640, 1350)
    markdown = rng.random() < _MARKDOWN_SHARE
    _, _, links, emphasis = _pools()
    specials: dict[int, str] = {}
    headings: set[int] = set()
    if markdown:
        specials[rng.randint(0, 2)] = rng.choice(links)
        specials[rng.randint(3, 5)] = rng.choice(emphasis)
        headings = {rng.randint(2, 5), rng.randint(4, 8)}
    blocks: list[str] = []
    total = 0
    index = 0
    while total < target:
        if index in headings:
            blocks.append(_heading(rng))
        text, words = _paragraph(rng, specials.get(index))
        blocks.append(text)
        total += words
        index += 1
    return "\n\n".join(blocks)


def _date(index: int, seed: int) -> datetime:
    """Return the post date: distinct per index, spread over 2015-2025."""
    offset = (index * _DATE_STEP + seed * 7_919_993) % _DATE_SPAN
    return _DATE_START + timedelta(seconds=offset)


def _rng(index: int, seed: int) -> random.Random:
    """Return the per-post generator (never the global one)."""
    return random.Random(seed * 1_000_003 + index)


def file_name(index: int, *, seed: int = 0) -> str:
    """Return the file name of post ``index``, e.g. ``000123_8e8ec7cb684a81b7.txt``."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).hexdigest()
    return f"{index:06d}_{digest}.txt"


def post_path(folder: Path, index: int, *, seed: int = 0) -> Path:
    """Return where ``write_corpus`` puts post ``index``: ``folder/YEAR/NAME``."""
    return folder / str(_date(index, seed).year) / file_name(index, seed=seed)


def post_text(index: int, *, seed: int = 0) -> str:
    """Return the full text (front matter and Markdown body) of post ``index``."""
    rng = _rng(index, seed)
    sentences = _pools()[0]
    when = _date(index, seed)
    title = _title(rng)
    description = " ".join(rng.choice(sentences) for _ in range(rng.randint(1, 2)))
    extra = rng.sample(_OTHER_CATEGORIES, rng.randint(1, 2))
    categories = ", ".join(["latest", *extra])
    featured = "true" if rng.random() < 0.05 else "false"
    image = f"https://images.example.org/{when:%Y/%m}/p{index:06d}.jpg"
    return (
        "---\n"
        "extends: _layouts.post\n"
        "section: content\n"
        f"image: {image} \n"
        f"title: {title} \n"
        f"description: {description} \n"
        f"date: {when:%Y-%m-%d-%H-%M-%S} \n"
        f"categories: [{categories}] \n"
        f"featured: {featured} \n"
        "--- \n"
        f"{_body(rng)}\n"
    )


def write_corpus(folder: Path, count: int, *, seed: int = 0) -> list[Path]:
    """Write ``count`` posts under ``folder/YEAR/``; return paths in index order."""
    folder = Path(folder)
    made: set[Path] = set()
    paths: list[Path] = []
    for index in range(count):
        path = post_path(folder, index, seed=seed)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(post_text(index, seed=seed).encode())
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Run the command-line interface."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the posts into")
    parser.add_argument("--count", type=int, required=True, help="number of posts")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must not be negative")
    started = time.perf_counter()
    paths = write_corpus(args.out_dir, args.count, seed=args.seed)
    elapsed = time.perf_counter() - started
    total = sum(p.stat().st_size for p in paths)
    print(f"posts={len(paths)} bytes={total} seconds={elapsed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
