"""Built-in generator of grade-school word problems (GSM8K / TinyGSM style) with exact answers.

A problem is a family-specific opening ("core", 1-4 arithmetic steps) followed by
follow-up events ("tails", 1 step each) that act on the quantity the story has built
so far, e.g. "She sells each box for $2.50." Every step goes through _Work.calc, which
computes with Fraction and records the line "a op b = c", so the answer and the worked
solution come from the same arithmetic. Each step is also kept whole (`MathProblem.worked`:
its operands, where each came from, and the story sentence it acts on), which is what the
reference teacher (factory/backends/reference.py) writes its solutions from. Draws whose numbers come out unusable (a
fractional count of apples, a third of a dollar, a negative amount) are redrawn from
the same rng, which keeps (seed, index) deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Callable

FAMILIES = ("rates", "fractions", "percentages", "money", "time", "multi_step")
MAX_STEPS = {family: 4 for family in FAMILIES} | {"multi_step": 6}
_MAX_ATTEMPTS = 1000  # measured: at most ~0.5 redraws per problem on average; a backstop
_MAX_VALUE = 1_000_000  # keeps numbers grade-school sized


@dataclass(frozen=True)
class WorkedStep:
    """One arithmetic step: a op b = result (canonical numbers, no thousands commas). A
    `*_from` is the index of the earlier step whose result the operand is, or None when the
    number is read from the question (or is a constant such as 60 minutes an hour)."""

    a: str
    op: str
    b: str
    result: str
    a_from: int | None
    b_from: int | None
    sentence: str  # the story sentence this step acts on; "" for a unit conversion with no sentence


@dataclass(frozen=True)
class MathProblem:
    question: str
    answer: str  # canonical: "42" or "2.5" (at most 2 decimals)
    family: str
    steps: int  # number of arithmetic steps == len(solution)
    solution: tuple[str, ...]  # one "a op b = c" line per step
    # The same steps, whole; the question's last sentence is what they answer. Defaults keep
    # MathProblem(question, answer, family, steps, solution) constructible as before.
    worked: tuple[WorkedStep, ...] = field(default=(), compare=False)
    asks: str = field(default="", compare=False)


class _Redraw(Exception):
    """The drawn numbers do not give a clean problem; draw again."""


def _num(x: Fraction) -> str:
    """Canonical text of an exact value with at most 2 decimals: 42, 2.5, 0.75, 1,200."""
    cents = x * 100
    if cents.denominator != 1 or x < 0:
        raise _Redraw
    whole, frac = divmod(int(cents), 100)
    text = f"{whole:,}"
    return f"{text}.{frac:02d}".rstrip("0") if frac else text


def _usd(x: Fraction) -> str:
    """Money as written in a question: $12, $4.50, $1,200."""
    text = _num(x)
    return f"${text}0" if "." in text and len(text.split(".")[1]) == 1 else f"${text}"


class _Work:
    """Records each arithmetic step; its lines are the solution."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.steps: list[tuple] = []   # (a, op, b, c, a_from, b_from), canonical text
        self._results: list[Fraction] = []  # each step's result object, to know where an operand came from

    def _source(self, x: Fraction) -> int | None:
        # By identity, not value: a result is passed on as the same object (q.value, or a
        # nested calc's return), while an equal number read from the question is a new one.
        return next((i for i in range(len(self._results) - 1, -1, -1) if self._results[i] is x), None)

    def calc(self, a: Fraction, op: str, b: Fraction) -> Fraction:
        c = {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
        if not 0 < c <= _MAX_VALUE:
            raise _Redraw
        self.lines.append(f"{_num(a)} {op} {_num(b)} = {_num(c)}".replace(",", ""))
        self.steps.append(tuple(_num(x).replace(",", "") for x in (a, b, c)) + (op, self._source(a), self._source(b)))
        self._results.append(c)
        return c


@dataclass(frozen=True)
class _Q:
    """The quantity a story has built: its value, kind, unit noun and owner."""

    value: Fraction
    # count | cash (money held) | savings (money put aside) | cost (money paid) | minutes |
    # hours | miles | amount | final (takes no follow-ups)
    kind: str
    question: str
    who: str = ""
    noun: str = ""  # plural noun (count) or unit phrase (amount), e.g. "cups of sugar"
    sing: str = ""  # singular noun / unit, e.g. "cup"

    @property
    def Who(self) -> str:  # noqa: N802 - the owner at the start of a sentence
        return self.who[:1].upper() + self.who[1:]


# --- vocabulary -------------------------------------------------------------------
_NAMES = (
    ("Maya", "She"), ("Liam", "He"), ("Aisha", "She"), ("Diego", "He"), ("Priya", "She"),
    ("Noah", "He"), ("Chen", "He"), ("Fatima", "She"), ("Olivia", "She"), ("Mateo", "He"),
    ("Zara", "She"), ("Kofi", "He"), ("Hannah", "She"), ("Ravi", "He"), ("Sofia", "She"),
    ("Ethan", "He"), ("Amara", "She"), ("Lucas", "He"), ("Yuki", "She"), ("Omar", "He"),
)  # fmt: skip
# (base verb, 3rd person, singular, plural)
_PRODUCTS = (
    ("bake", "bakes", "cookie", "cookies"), ("knit", "knits", "scarf", "scarves"),
    ("fold", "folds", "paper crane", "paper cranes"), ("paint", "paints", "postcard", "postcards"),
    ("build", "builds", "birdhouse", "birdhouses"), ("pick", "picks", "apple", "apples"),
    ("sew", "sews", "pillow", "pillows"), ("make", "makes", "bracelet", "bracelets"),
)  # fmt: skip
_COLLECTIBLES = (
    ("marble", "marbles"), ("balloon", "balloons"), ("bead", "beads"),
    ("pencil", "pencils"), ("sticker", "stickers"), ("toy car", "toy cars"),
)  # fmt: skip
_COLORS = ("red", "blue", "green", "yellow", "purple", "orange")
_GOODS = (
    ("notebook", "notebooks"), ("pen", "pens"), ("sandwich", "sandwiches"),
    ("ticket", "tickets"), ("plant", "plants"), ("comic book", "comic books"),
    ("cupcake", "cupcakes"), ("puzzle", "puzzles"),
)  # fmt: skip
_GROUPS = (("friends", "friend"), ("classmates", "classmate"), ("cousins", "cousin"),
           ("teammates", "teammate"), ("neighbors", "neighbor"))  # fmt: skip
_PURCHASES = ("a book", "lunch", "a movie ticket", "a birthday gift", "art supplies", "a hat")
_JOBS = ("walking a neighbor's dog", "washing cars", "selling lemonade", "mowing a lawn")
_EXTRAS = ("stretching", "tidying up afterwards", "getting ready", "packing up")
_TASKS = ("math problems", "emails", "piano pieces", "laps of the pool", "drawings")
# Prices with whole cents so that price * count stays exact to 2 decimals.
_PRICES = tuple(Fraction(p) for p in
                ("0.5", "0.75", "1.25", "1.5", "2", "2.5", "3", "3.75", "4", "5", "6", "7.5", "8", "12"))  # fmt: skip
# Unit fractions as GSM8K writes them; larger denominators stay as digits.
_UNIT_FRACTION = {2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}


def _F(x: int | str) -> Fraction:  # noqa: N802
    return Fraction(x)


def _person(rng: random.Random, *, other: str = "") -> tuple[str, str]:
    """(name, capitalised pronoun), never `other`."""
    return rng.choice([n for n in _NAMES if n[0] != other])


def _hours(h: Fraction) -> str:
    return "1 hour" if h == 1 else f"{_num(h)} hours"


def _divisors(value: Fraction, low: int, high: int) -> list[int]:
    """k in [low, high] that split `value` into equal whole parts."""
    if value.denominator != 1:
        return []
    return [k for k in range(low, high + 1) if int(value) % k == 0]


def _whole(value: Fraction) -> Fraction:
    """Counts of things must be whole."""
    if value.denominator != 1:
        raise _Redraw
    return value


# --- cores: (family, cost, builder); a builder returns (story sentences, quantity) ----
Core = Callable[[random.Random, _Work], tuple[list[str], _Q]]
_CORES: list[tuple[str, int, Core]] = []


def _core(family: str, cost: int) -> Callable[[Core], Core]:
    def register(fn: Core) -> Core:
        _CORES.append((family, cost, fn))
        return fn

    return register


@_core("rates", 1)
def _production(rng, w):
    (name, pron), (base, third, sing, plural) = _person(rng), rng.choice(_PRODUCTS)
    rate, hours = _F(rng.randint(2, 30)), _F(rng.randint(2, 10))
    unit = rng.choice([("hour", "hours"), ("day", "days")])
    story = [f"{name} {third} {_num(rate)} {plural} per {unit[0]}.",
             f"{pron} keeps going for {_num(hours)} {unit[1]}."]
    total = w.calc(rate, "*", hours)
    return story, _Q(total, "count", f"How many {plural} does {name} {base} in all?",
                     name, plural, sing)


@_core("rates", 1)
def _drive(rng, w):
    name, _ = _person(rng)
    speed, hours = _F(rng.choice(range(20, 75, 5))), _F(rng.randint(2, 6))
    mode = rng.choice([("drives", "drive"), ("rides the bus", "ride"), ("bikes", "bike")])
    if mode[1] == "bike":
        speed = _F(rng.randint(8, 16))
    story = [f"{name} {mode[0]} at {_num(speed)} miles per hour for {_num(hours)} hours."]
    miles = w.calc(speed, "*", hours)
    return story, _Q(miles, "miles", f"How many miles does {name} {mode[1]}?", name)


@_core("rates", 1)
def _reading_time(rng, w):
    name, pron = _person(rng)
    rate, minutes = _F(rng.randint(2, 6)), _F(rng.randint(10, 60))
    pages = rate * minutes
    story = [f"{name} reads {_num(rate)} pages per minute.",
             f"{pron} wants to finish a {_num(pages)}-page book."]
    took = w.calc(pages, "/", rate)
    return story, _Q(took, "minutes", f"How many minutes will it take {name} to finish the book?",
                     name)


@_core("rates", 2)
def _team(rng, w):
    (a, _), (base, third, sing, plural) = _person(rng), rng.choice(_PRODUCTS)
    b = _person(rng, other=a)[0]
    r1, r2, hours = _F(rng.randint(2, 15)), _F(rng.randint(2, 15)), _F(rng.randint(2, 8))
    story = [f"{a} {third} {_num(r1)} {plural} per hour and {b} {third} {_num(r2)} {plural} per hour.",
             f"They work together for {_num(hours)} hours as a team."]
    total = w.calc(w.calc(r1, "+", r2), "*", hours)
    return story, _Q(total, "count", f"How many {plural} does the team {base}?",
                     "the team", plural, sing)


@_core("rates", 2)
def _machine(rng, w):
    name, _ = _person(rng)
    sing, plural = rng.choice([("bottle of juice", "bottles of juice"), ("jar of honey", "jars of honey"),
                               ("bag of rice", "bags of rice")])
    rate, hours = _F(rng.randint(2, 12)), _F(rng.randint(2, 5))
    story = [f"{name}'s machine fills {_num(rate)} {plural} every minute.",
             f"It runs for {_num(hours)} hours."]
    total = w.calc(w.calc(hours, "*", _F(60)), "*", rate)
    return story, _Q(total, "count", f"How many {plural} does the machine fill?",
                     name, plural, sing)


@_core("rates", 3)
def _two_legs(rng, w):
    name, _ = _person(rng)
    s1, s2 = (_F(rng.choice(range(20, 75, 5))) for _ in range(2))
    t1, t2 = _F(rng.randint(2, 4)), _F(rng.randint(2, 4))
    story = [f"{name} drives at {_num(s1)} miles per hour for {_num(t1)} hours,"
             f" then at {_num(s2)} miles per hour for {_num(t2)} hours."]
    miles = w.calc(w.calc(s1, "*", t1), "+", w.calc(s2, "*", t2))
    return story, _Q(miles, "miles", f"How many miles does {name} drive in total?", name)


@_core("fractions", 1)
def _colored_part(rng, w):
    (name, _), (sing, plural) = _person(rng), rng.choice(_COLLECTIBLES)
    den = rng.choice([2, 3, 4, 5, 6, 8, 10])
    n = _F(den * rng.randint(2, 12))
    color = rng.choice(_COLORS)
    part = _UNIT_FRACTION.get(den, f"1/{den}")
    story = [f"{name} has {_num(n)} {plural}.", f"{part.capitalize()} of them are {color}."]
    got = w.calc(n, "/", _F(den))
    return story, _Q(got, "count", f"How many {color} {plural} does {name} have?",
                     name, f"{color} {plural}", f"{color} {sing}")


@_core("fractions", 1)
def _whole_book(rng, w):
    name, _ = _person(rng)
    den, read = rng.choice([2, 3, 4, 5, 8]), _F(rng.randint(12, 90))
    part = _UNIT_FRACTION.get(den, f"1/{den}")
    story = [f"{name} has read {_num(read)} pages, which is {part} of a book."]
    pages = w.calc(read, "*", _F(den))
    return story, _Q(pages, "final", "How many pages does the book have?")


@_core("fractions", 1)
def _saved_part(rng, w):
    name, _ = _person(rng)
    den = rng.choice([2, 4, 5, 10])
    allowance = _F(den * rng.randint(2, 15))
    part = _UNIT_FRACTION.get(den, f"1/{den}")
    story = [f"{name} gets {_usd(allowance)} of allowance and saves {part} of it."]
    saved = w.calc(allowance, "/", _F(den))
    return story, _Q(saved, "savings", f"How much money does {name} save?", name)


@_core("fractions", 2)
def _gives_fraction(rng, w):
    (name, pron), (sing, plural) = _person(rng), rng.choice(_COLLECTIBLES)
    friend, _ = _person(rng, other=name)
    den = rng.choice([3, 4, 5, 6, 8])
    top = rng.randint(2, den - 1)
    n = _F(den * rng.randint(2, 10))
    story = [f"{name} has {_num(n)} {plural}.", f"{pron} gives {top}/{den} of them to {friend}."]
    got = w.calc(w.calc(n, "/", _F(den)), "*", _F(top))
    return story, _Q(got, "count", f"How many {plural} does {friend} get?", friend, plural, sing)


@_core("fractions", 2)
def _recipe(rng, w):
    name, _ = _person(rng)
    den = rng.choice([2, 3, 4])
    top = rng.randint(1, den - 1) if den > 2 else 1
    batches = _F(rng.randint(2, 12))
    what = rng.choice(["sugar", "flour", "milk", "oats"])
    story = [f"A recipe needs {top}/{den} cup of {what} for each batch.",
             f"{name} makes {_num(batches)} batches."]
    cups = w.calc(w.calc(batches, "*", _F(top)), "/", _F(den))
    return story, _Q(cups, "amount", f"How many cups of {what} does {name} use?",
                     name, f"cups of {what}", "cup")


@_core("fractions", 3)
def _rest_of_them(rng, w):
    (name, _), (sing, plural) = _person(rng), rng.choice(_COLLECTIBLES)
    c1, c2 = rng.sample(_COLORS, 2)
    den = rng.choice([3, 4, 5, 8])
    top = rng.randint(1, den - 1)
    n = _F(den * rng.randint(2, 12))
    story = [f"{name} has {_num(n)} {plural}.",
             f"{top}/{den} of them are {c1} and the rest are {c2}."]
    first = w.calc(w.calc(n, "/", _F(den)), "*", _F(top))
    rest = w.calc(n, "-", first)
    return story, _Q(rest, "count", f"How many {c2} {plural} does {name} have?",
                     name, f"{c2} {plural}", f"{c2} {sing}")


@_core("fractions", 3)
def _tank(rng, w):
    name, _ = _person(rng)
    den = rng.choice([2, 3, 4, 5])
    top = rng.randint(1, den - 1)
    size = _F(den * rng.randint(4, 30))
    story = [f"{name}'s fish tank holds {_num(size)} liters of water.", f"It is {top}/{den} full."]
    filled = w.calc(w.calc(size, "/", _F(den)), "*", _F(top))
    more = w.calc(size, "-", filled)
    return story, _Q(more, "amount", f"How many more liters of water does {name} need to fill the tank?",
                     name, "liters of water", "liter")


def _pct(p: int) -> Fraction:
    return Fraction(p, 100)


@_core("percentages", 1)
def _share_of_group(rng, w):
    p = rng.choice([5, 10, 20, 25, 30, 40, 50, 60, 75, 80])
    n = _F(Fraction(100, p).numerator * rng.randint(1, 12))  # makes n * p% whole
    place, people = rng.choice([("a school", "students"), ("a concert", "people"),
                                ("a summer camp", "children"), ("a club", "members")])
    trait = rng.choice(["wear glasses", "have a pet", "play an instrument", "are left-handed"])
    story = [f"There are {_num(n)} {people} at {place}.", f"{p}% of them {trait}."]
    some = _whole(w.calc(n, "*", _pct(p)))
    return story, _Q(some, "final", f"How many of the {people} {trait}?")


@_core("percentages", 1)
def _saves_percent(rng, w):
    name, _ = _person(rng)
    p, pay = rng.choice([5, 10, 15, 20, 25, 30, 40, 50]), _F(rng.randint(4, 60) * 10)
    story = [f"{name} earns {_usd(pay)} this month and puts {p}% of it into savings."]
    saved = w.calc(pay, "*", _pct(p))
    return story, _Q(saved, "savings", f"How much money does {name} put into savings?", name)


@_core("percentages", 2)
def _score(rng, w):
    name, pron = _person(rng)
    total = _F(rng.choice([4, 5, 10, 20, 25, 40, 50]))
    right = _F(rng.randint(1, int(total)))
    story = [f"{name} answered {_num(right)} of the {_num(total)} questions on a quiz correctly."]
    share = w.calc(right, "/", total)
    percent = w.calc(share, "*", _F(100))
    return story, _Q(percent, "final", f"What percentage of the questions did {pron.lower()} get right?")


@_core("percentages", 2)
def _sale_price(rng, w):
    (name, _), (sing, _) = _person(rng), rng.choice(_GOODS + (("jacket", ""), ("bike", "")))
    p, price = rng.choice([10, 20, 25, 30, 40, 50]), _F(rng.randint(2, 40) * 5)
    story = [f"A {sing} normally costs {_usd(price)}.", f"This week it is {p}% off, and {name} buys one."]
    off = w.calc(price, "*", _pct(p))
    paid = w.calc(price, "-", off)
    return story, _Q(paid, "cost", f"How much does {name} pay for the {sing}?", name)


@_core("percentages", 2)
def _tip(rng, w):
    name, pron = _person(rng)
    p, bill = rng.choice([10, 15, 18, 20, 25]), _F(rng.randint(8, 120))
    story = [f"{name}'s dinner costs {_usd(bill)}.", f"{pron} adds a {p}% tip."]
    tip = w.calc(bill, "*", _pct(p))
    total = w.calc(bill, "+", tip)
    return story, _Q(total, "cost", f"How much does {name} pay in total?", name)


@_core("percentages", 2)
def _raise(rng, w):
    name, _ = _person(rng)
    # (bill, lowest, highest, step) in dollars
    thing, low, high, step = rng.choice([("monthly rent", 600, 2000, 50), ("phone bill", 20, 90, 5),
                                         ("gym membership", 20, 80, 5)])
    p, cost = rng.choice([2, 4, 5, 8, 10, 15]), _F(rng.randrange(low, high + 1, step))
    story = [f"{name}'s {thing} is {_usd(cost)}.", f"Next year it goes up by {p}%."]
    more = w.calc(cost, "*", _pct(p))
    new = w.calc(cost, "+", more)
    return story, _Q(new, "cost", f"What will {name}'s {thing} be next year?", name)


@_core("percentages", 4)
def _discount_then_tax(rng, w):
    (name, _), (sing, _) = _person(rng), rng.choice(_GOODS)
    p, q, price = rng.choice([10, 20, 25, 50]), rng.choice([5, 6, 8, 10]), _F(rng.randint(2, 30) * 10)
    story = [f"A {sing} costs {_usd(price)}.", f"The store takes {p}% off,"
             f" and then {name} pays {q}% sales tax on the sale price."]
    sale = w.calc(price, "-", w.calc(price, "*", _pct(p)))
    total = w.calc(sale, "+", w.calc(sale, "*", _pct(q)))
    return story, _Q(total, "cost", f"How much does {name} pay in total?", name)


@_core("money", 1)
def _buys_several(rng, w):
    (name, _), (sing, plural) = _person(rng), rng.choice(_GOODS)
    k, price = _F(rng.randint(2, 12)), rng.choice(_PRICES)
    story = [f"{name} buys {_num(k)} {plural} for {_usd(price)} each."]
    spent = w.calc(k, "*", price)
    return story, _Q(spent, "cost", f"How much does {name} spend?", name)


@_core("money", 1)
def _money_left(rng, w):
    name, pron = _person(rng)
    has, cost = _F(rng.randint(10, 100)), rng.choice(_PRICES) * rng.randint(1, 3)
    story = [f"{name} has {_usd(has)}.", f"{pron} spends {_usd(cost)} on {rng.choice(_PURCHASES)}."]
    left = w.calc(has, "-", cost)
    return story, _Q(left, "cash", f"How much money does {name} have left?", name)


@_core("money", 1)
def _wage(rng, w):
    name, pron = _person(rng)
    wage, hours = _F(rng.randint(8, 25)) + rng.choice([0, Fraction(1, 2)]), _F(rng.randint(2, 9))
    story = [f"{name} earns {_usd(wage)} an hour {rng.choice(_JOBS)}.", f"{pron} works {_num(hours)} hours."]
    pay = w.calc(wage, "*", hours)
    return story, _Q(pay, "cash", f"How much money does {name} earn?", name)


@_core("money", 1)
def _split_bill(rng, w):
    people, bill = rng.randint(2, 8), _F(rng.randint(20, 240))
    group = rng.choice(_GROUPS)
    story = [f"{people} {group[0]} share a {_usd(bill)} bill equally."]
    each = w.calc(bill, "/", _F(people))
    return story, _Q(each, "final", f"How much does each {group[1]} pay?")


@_core("money", 2)
def _change(rng, w):
    (name, _), (sing, plural) = _person(rng), rng.choice(_GOODS)
    k, price = _F(rng.randint(2, 6)), rng.choice(_PRICES)
    bill = next(b for b in (_F(5), _F(10), _F(20), _F(50), _F(100)) if b > k * price)
    story = [f"{name} buys {_num(k)} {plural} at {_usd(price)} each and pays with a {_usd(bill)} bill."]
    change = w.calc(bill, "-", w.calc(k, "*", price))
    return story, _Q(change, "cash", f"How much change does {name} get?", name)


@_core("money", 2)
def _saving_up(rng, w):
    (name, pron), (sing, plural) = _person(rng), rng.choice(_GOODS)
    k, price = _F(rng.randint(2, 8)), rng.choice(_PRICES) * 2
    has = _F(rng.randint(1, max(1, int(k * price) - 1)))
    story = [f"{name} wants to buy {_num(k)} {plural} that cost {_usd(price)} each.", f"{pron} has {_usd(has)}."]
    need = w.calc(w.calc(k, "*", price), "-", has)
    return story, _Q(need, "final", f"How much more money does {name} need?", name)


@_core("money", 3)
def _two_kinds(rng, w):
    name, _ = _person(rng)
    (_, p1), (_, p2) = rng.sample(_GOODS, 2)
    k1, k2 = _F(rng.randint(2, 9)), _F(rng.randint(2, 9))
    c1, c2 = rng.choice(_PRICES), rng.choice(_PRICES)
    story = [f"{name} buys {_num(k1)} {p1} at {_usd(c1)} each and {_num(k2)} {p2} at {_usd(c2)} each."]
    total = w.calc(w.calc(k1, "*", c1), "+", w.calc(k2, "*", c2))
    return story, _Q(total, "cost", f"How much does {name} spend altogether?", name)


@_core("time", 1)
def _per_task(rng, w):
    name, _ = _person(rng)
    task = rng.choice(_TASKS)
    m, k = _F(rng.randint(3, 25)), _F(rng.randint(2, 12))
    story = [f"{name} spends {_num(m)} minutes on each of {_num(k)} {task}."]
    total = w.calc(m, "*", k)
    return story, _Q(total, "minutes", f"How many minutes does {name} spend on the {task}?", name)


@_core("time", 1)
def _movie(rng, w):
    name, _ = _person(rng)
    hours = _F(rng.randint(1, 3)) + rng.choice([0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)])
    what = rng.choice(["a movie", "a soccer tournament", "a road trip", "a science fair"])
    story = [f"{name} spends {_hours(hours)} at {what}."]
    minutes = w.calc(hours, "*", _F(60))
    return story, _Q(minutes, "minutes", "How many minutes is that?", name)


@_core("time", 1)
def _minutes_left(rng, w):
    name, pron = _person(rng)
    need, done = _F(rng.randint(30, 120)), _F(rng.randint(5, 25))
    job = rng.choice(["a jigsaw puzzle", "a painting", "a model plane", "an essay"])
    story = [f"{name} needs {_num(need)} minutes to finish {job}.",
             f"{pron} has already worked on it for {_num(done)} minutes."]
    left = w.calc(need, "-", done)
    return story, _Q(left, "minutes", f"How many more minutes does {name} need?", name)


@_core("time", 1)
def _work_days(rng, w):
    name, _ = _person(rng)
    per_day, days = _F(rng.randint(2, 8)), _F(rng.randint(2, 6))
    story = [f"{name} volunteers at the library for {_num(per_day)} hours a day on {_num(days)} days."]
    hours = w.calc(per_day, "*", days)
    return story, _Q(hours, "hours", f"How many hours does {name} volunteer?", name)


@_core("time", 2)
def _hours_and_minutes(rng, w):
    name, _ = _person(rng)
    hours, minutes = _F(rng.randint(1, 4)), _F(rng.randint(5, 55))
    story = [f"{name}'s train ride takes {_hours(hours)} and {_num(minutes)} minutes."]
    total = w.calc(w.calc(hours, "*", _F(60)), "+", minutes)
    return story, _Q(total, "minutes", "How many minutes long is the train ride?", name)


@_core("time", 2)
def _daily_routine(rng, w):
    name, _ = _person(rng)
    m1, m2 = _F(rng.randint(10, 60)), _F(rng.randint(5, 30))
    a1, a2 = rng.sample(["homework", "chores", "practicing guitar", "jogging", "reading"], 2)
    story = [f"Every day of the week, {name} spends {_num(m1)} minutes on {a1} and {_num(m2)} minutes on {a2}."]
    week = w.calc(w.calc(m1, "+", m2), "*", _F(7))
    return story, _Q(week, "minutes", f"How many minutes does {name} spend on {a1} and {a2} in a week?",
                     name)


@_core("time", 3)
def _weekdays_weekend(rng, w):
    name, _ = _person(rng)
    m1, m2 = _F(rng.randint(10, 45)), _F(rng.randint(20, 90))
    act = rng.choice(["reads", "practices piano", "plays outside", "swims"])
    story = [f"{name} {act} for {_num(m1)} minutes on each of the 5 weekdays"
             f" and for {_num(m2)} minutes on each of the 2 weekend days."]
    total = w.calc(w.calc(m1, "*", _F(5)), "+", w.calc(m2, "*", _F(2)))
    return story, _Q(total, "minutes", f"How many minutes does {name} spend on this in a week?", name)


# --- tails: one step each; a tail returns (sentence, quantity) or None if it does not fit
Tail = Callable[[random.Random, _Work, _Q], "tuple[str, _Q] | None"]


def _count_more(rng, w, q):
    x = _F(rng.randint(2, 30))
    text = rng.choice([f"Later, {q.who} gets {_num(x)} more {q.noun}.",
                       f"{q.Who} then finds another {_num(x)} {q.noun}."])
    return text, replace(q, value=w.calc(q.value, "+", x), question=f"How many {q.noun} does {q.who} have now?")


def _count_give(rng, w, q):
    if q.value < 2:
        return None
    x = _F(rng.randint(1, min(int(q.value) - 1, 40)))
    friend = _person(rng, other=q.who)[0]
    text = rng.choice([f"{q.Who} gives {_num(x)} of them to {friend}.",
                       f"{q.Who} sells {_num(x)} of them at a school fair."])
    return text, replace(q, value=w.calc(q.value, "-", x), question=f"How many {q.noun} does {q.who} have left?")


def _count_pack(rng, w, q):
    sizes = [k for k in _divisors(q.value, 2, 12) if q.value / k >= 2]
    if not sizes:
        return None
    k = _F(rng.choice(sizes))
    box = rng.choice([("box", "boxes"), ("bag", "bags"), ("basket", "baskets")])
    text = f"{q.Who} packs them into {box[1]} of {_num(k)}."
    return text, replace(q, value=w.calc(q.value, "/", k), question=f"How many {box[1]} does {q.who} fill?",
                         noun=f"{box[1]} of {q.noun}", sing=f"{box[0]} of {q.noun}")


def _count_sell(rng, w, q):
    price = rng.choice(_PRICES)
    text = f"{q.Who} sells each {q.sing} for {_usd(price)}."
    return text, replace(q, value=w.calc(q.value, "*", price), kind="cash",
                         question=f"How much money does {q.who} make?")


def _count_share(rng, w, q):  # the per-person share ends the story
    ks = _divisors(q.value, 2, 10)
    if not ks:
        return None
    k, group = _F(rng.choice(ks)), rng.choice(_GROUPS)
    text = f"{q.Who} shares them equally among {_num(k)} {group[0]}."
    return text, replace(q, value=w.calc(q.value, "/", k), kind="final",
                         question=f"How many {q.noun} does each {group[1]} get?")


def _money_spend(rng, w, q):
    if q.value <= 1:
        return None
    # At most 60% of the money (and $200): a purchase, not the whole balance.
    quarters = min(int(q.value * 4 * Fraction(3, 5)), 800)
    cost = _F(rng.randint(1, max(1, quarters))) / 4 if q.value < 8 else _F(rng.randint(1, quarters // 4))
    text = f"{q.Who} then spends {_usd(cost)} on {rng.choice(_PURCHASES)}."
    return text, replace(q, value=w.calc(q.value, "-", cost), question=f"How much money does {q.who} have left?")


def _money_earn(rng, w, q):
    x = _F(rng.randint(2, 40))
    text = f"{q.Who} also earns {_usd(x)} {rng.choice(_JOBS)}."
    return text, replace(q, value=w.calc(q.value, "+", x), question=f"How much money does {q.who} have now?")


def _money_weeks(rng, w, q):
    weeks = _F(rng.randint(2, 8))
    text = f"{q.Who} puts the same amount aside every week for {_num(weeks)} weeks."
    return text, replace(q, value=w.calc(q.value, "*", weeks),
                         question=f"How much money does {q.who} put aside over the {_num(weeks)} weeks?")


def _money_buy(rng, w, q):
    options = [p for p in _PRICES if (q.value / p).denominator == 1 and 2 <= q.value / p <= 60]
    if not options:
        return None
    price, (sing, plural) = rng.choice(options), rng.choice(_GOODS)
    text = f"{q.Who} spends all that money on {plural} that cost {_usd(price)} each."
    return text, replace(q, value=w.calc(q.value, "/", price), kind="count",
                         question=f"How many {plural} does {q.who} buy?", noun=plural, sing=sing)


def _money_split(rng, w, q):  # the per-person share ends the story
    ks = [k for k in range(2, 9) if (q.value * 100 / k).denominator == 1]
    if not ks:
        return None
    k, group = _F(rng.choice(ks)), rng.choice(_GROUPS)
    text = f"{q.Who} splits the money equally among {_num(k)} {group[0]}."
    return text, replace(q, value=w.calc(q.value, "/", k), kind="final",
                         question=f"How much money does each {group[1]} get?")


def _cost_extra(rng, w, q):
    x = rng.choice(_PRICES)
    extra = rng.choice(["delivery", "gift wrapping", "a drink", "a service fee"])
    text = f"{q.Who} also pays {_usd(x)} for {extra}."
    return text, replace(q, value=w.calc(q.value, "+", x),
                         question=f"How much does {q.who} pay altogether?")


def _cost_weeks(rng, w, q):
    weeks = _F(rng.randint(2, 8))
    text = f"{q.Who} spends the same amount every week for {_num(weeks)} weeks."
    return text, replace(q, value=w.calc(q.value, "*", weeks),
                         question=f"How much does {q.who} spend over the {_num(weeks)} weeks?")


def _cost_change(rng, w, q):
    bill = next((_F(b) for b in (5, 10, 20, 50, 100) if b > q.value), None)
    if bill is None:
        return None
    text = f"{q.Who} pays with a {_usd(bill)} bill."
    return text, replace(q, value=w.calc(bill, "-", q.value), kind="cash",
                         question=f"How much change does {q.who} get?")


def _cost_split(rng, w, q):  # the per-person share ends the story
    ks = [k for k in range(2, 9) if (q.value * 100 / k).denominator == 1]
    if not ks:
        return None
    k, group = _F(rng.choice(ks)), rng.choice(_GROUPS)
    text = f"{q.Who} shares this cost equally with {group[0]}, so {_num(k)} people pay in all."
    return text, replace(q, value=w.calc(q.value, "/", k), kind="final",
                         question="How much does each person pay?")


def _time_weeks(rng, w, q):
    weeks = _F(rng.randint(2, 6))
    text = f"{q.Who} does the same every week for {_num(weeks)} weeks."
    return text, replace(q, value=w.calc(q.value, "*", weeks),
                         question=f"How many {q.kind} does {q.who} spend on it over the {_num(weeks)} weeks?")


def _minutes_extra(rng, w, q):
    x = _F(rng.randint(5, 30))
    text = f"{q.Who} also spends {_num(x)} minutes {rng.choice(_EXTRAS)}."
    return text, replace(q, value=w.calc(q.value, "+", x),
                         question=f"How many minutes does {q.who} spend altogether?")


def _minutes_to_hours(rng, w, q):
    if (q.value * 100 / 60).denominator != 1:
        return None
    return "", replace(q, value=w.calc(q.value, "/", _F(60)), kind="hours",
                       question="How many hours is that?")


def _hours_paid(rng, w, q):
    wage = _F(rng.randint(8, 25))
    text = f"{q.Who} is paid {_usd(wage)} for every hour of it."
    return text, replace(q, value=w.calc(q.value, "*", wage), kind="cash",
                         question=f"How much money does {q.who} earn?")


def _miles_back(rng, w, q):
    text = f"{q.Who} then comes back home the same way."
    return text, replace(q, value=w.calc(q.value, "+", q.value),
                         question=f"How many miles does {q.who} travel there and back?")


def _miles_days(rng, w, q):
    days = _F(rng.randint(2, 6))
    text = f"{q.Who} makes the same trip on {_num(days)} days."
    return text, replace(q, value=w.calc(q.value, "*", days),
                         question=f"How many miles does {q.who} travel over the {_num(days)} days?")


def _miles_fuel(rng, w, q):
    per = [k for k in (10, 15, 20, 25, 30, 40) if (q.value * 100 / k).denominator == 1]
    if not per:
        return None
    k = _F(rng.choice(per))
    text = f"{q.Who}'s car uses 1 gallon of gas for every {_num(k)} miles."
    return text, replace(q, value=w.calc(q.value, "/", k), kind="amount",
                         question=f"How many gallons of gas does {q.who} use?", noun="gallons of gas", sing="gallon")


def _amount_price(rng, w, q):
    price = rng.choice(_PRICES)
    text = f"Each {q.sing} costs {_usd(price)}."
    return text, replace(q, value=w.calc(q.value, "*", price), kind="cost",
                         question=f"How much does {q.who} spend on the {q.noun}?")


def _amount_times(rng, w, q):
    times = _F(rng.randint(2, 5))
    text = f"{q.Who} does this {_num(times)} times this month."
    return text, replace(q, value=w.calc(q.value, "*", times),
                         question=f"How many {q.noun} does {q.who} use this month?")


_TAILS: dict[str, tuple[Tail, ...]] = {
    "count": (_count_more, _count_give, _count_pack, _count_sell, _count_share),
    "cash": (_money_spend, _money_earn, _money_buy, _money_split),
    "savings": (_money_weeks, _money_buy, _money_split),
    "cost": (_cost_extra, _cost_weeks, _cost_change, _cost_split),
    "minutes": (_time_weeks, _minutes_extra, _minutes_to_hours),
    "hours": (_time_weeks, _hours_paid),
    "miles": (_miles_back, _miles_days, _miles_fuel),
    "amount": (_amount_price, _amount_times),
    "final": (),
}
_ENDS_STORY = {_count_share, _money_split, _cost_split}  # only as the last step: "each friend" owns the result


def _build(rng: random.Random, family: str, steps: int) -> MathProblem:
    # multi_step chains at least two follow-ups (steps >= 3) onto an opening from any family.
    # A core whose result takes no follow-ups ("final") only fits when cost == steps;
    # otherwise the tail loop below finds no tail and the draw is redone.
    if family == "multi_step":
        cores = [c for c in _CORES if c[1] <= max(1, steps - 2)]
    else:
        cores = [c for c in _CORES if c[0] == family and c[1] <= steps]
    _, cost, core = rng.choice(cores)
    w = _Work()
    story, q = core(rng, w)
    said = [" ".join(s for s in story if s)] * len(w.lines)  # the opening's sentences, for each of its steps
    used: set[Tail] = set()  # each follow-up at most once: no "aside for 3 weeks ... for 8 weeks"
    for i in range(steps - cost):
        last = i == steps - cost - 1
        tails = [t for t in _TAILS[q.kind] if t not in used and (last or t not in _ENDS_STORY)]
        rng.shuffle(tails)
        for tail in tails:
            step = tail(rng, w, q)
            if step:
                sentence, q = step
                story.append(sentence)
                said.append(sentence)
                used.add(tail)
                break
        else:
            raise _Redraw
    if q.kind == "count":
        _whole(q.value)
    question = " ".join(s for s in story if s) + " " + q.question
    worked = tuple(WorkedStep(a, op, b, c, af, bf, said[i]) for i, (a, b, c, op, af, bf) in enumerate(w.steps))
    return MathProblem(question, _num(q.value).replace(",", ""), family, steps, tuple(w.lines), worked, q.question)


def generate_problem(seed: int, index: int, family: str | None = None,
                     steps: int | None = None) -> MathProblem:
    """The problem for (seed, index); family and steps are drawn when not given."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; allowed: {', '.join(FAMILIES)}")
    top = MAX_STEPS[family] if family else max(MAX_STEPS.values())
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= top):
        where = f"family {family!r}" if family else "any family"
        raise ValueError(f"steps must be an integer from 1 to {top} for {where}, got {steps!r}")
    # A string seed goes through SHA-512 in random.seed, so it is stable across runs
    # and machines (unlike hash(), which is salted per process).
    rng = random.Random(f"factory.math_problems:{seed}:{index}")
    fam = family or rng.choice([f for f in FAMILIES if steps is None or MAX_STEPS[f] >= steps])
    n = steps if steps is not None else rng.randint(1, 4)
    for _ in range(_MAX_ATTEMPTS):
        try:
            return _build(rng, fam, n)
        except _Redraw:
            continue
    raise RuntimeError(f"no clean {fam} problem with {n} steps in {_MAX_ATTEMPTS} draws")
