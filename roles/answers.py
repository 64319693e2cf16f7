"""Final-answer extraction and comparison for GSM8K-style numeric answers."""

from __future__ import annotations

import re
import threading
from decimal import Decimal, InvalidOperation
from fractions import Fraction

# A number as written in prose: '$', thousands groups ("1,200", and "80 000" as some
# GSM8K solutions write it, but not "3 100-page"), decimals ("18.00", ".5") and simple
# fractions ("3/4"). A '-' is a sign only where it cannot be a binary minus, i.e. not
# right after a word character or a closing bracket ("10-4" is 10 and 4).
_NUMBER = re.compile(
    r"(?:(?<![\w)\]}])(?P<sign>-))?\$?(?<![\d.])(?P<num>"
    r"(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+(?![\d-])|\d+)(?:\.\d+)?(?:/\d+(?![.\d]\d))?"
    r"|\.\d+)"
)
_CALC = re.compile(r"<<[^<>]*>>")  # GSM8K calculator annotations, e.g. <<48/2=24>>
_CALC_RESULT = re.compile(r"<<[^<>]*=([^<>=]*)>>")
_ROUNDED = re.compile(r"\bround(?:s|ed|ing)?\s+(?:up\s+|down\s+)?to\b(?P<rest>.*)", re.I)
# Justification clauses that follow a stated result: "He pays $50 because 50 < 52".
_JUSTIFICATION = re.compile(r"\b(?:because|since|as|if)\b", re.I)
# Sentence boundaries inside a line; titles ("Ms. Alice") do not end a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\bMr\.)(?<!\bMs\.)(?<!\bMrs\.)(?<!\bDr\.)\s+(?=[A-Z$])")
_CONNECTIVE = re.compile(r"^\W*(?:so|thus|therefore|hence|then|finally)\b\W*", re.I)

# Explicit final-answer markers; the last one in the text wins.
_MARKERS = re.compile(
    r"####\s*(?P<hash>[^\n]*)"
    r"|final\s+answer\s*(?:is|:)?\s*:?\s*(?P<final>[^\n]*)"
    r"|the\s+answer\s+is\s*:?\s*(?P<answer>[^\n]*)"
    # (?<!\S): start only at the beginning of a word; without it a 1 MB string with no
    # space costs O(n^2) (\S+ tried from every position: 1.2 s at 16 kB, ~80 min at 1 MB).
    r"|(?<!\S)(?P<before>\S+)\s+is\s+the\s+(?:final\s+)?answer\b",
    re.IGNORECASE,
)

# The final answer lives at the end of a solution: extraction reads only its last 4,000
# characters, twice the longest solution a role asks for (long_solver: 512 tokens, ~2,000
# characters), so a 1 MB garbage completion costs what a real solution costs (issue 15: a
# 1 MB solver output ran past 150 s on the whole-text regexes).
MAX_ANSWER_SCAN_CHARS = 4_000

# Inputs longer than this are not a final answer; also bounds sympy's work when
# math_verify runs without its signal timeout (see _verify_symbolic).
_MAX_SYMBOLIC_CHARS = 200


def gsm8k_gold(answer_field: str) -> str:
    """The gold answer of a GSM8K `answer` field: the text after '####'."""
    return answer_field.rpartition("####")[2].replace(",", "").strip()


def gsm8k_reasoning(answer_field: str) -> str:
    """The worked solution of a GSM8K `answer` field: everything before '####'."""
    head, sep, _ = answer_field.rpartition("####")
    return (head if sep else answer_field).rstrip()


def _boxed_contents(text: str) -> list[str]:
    """Contents of every \\boxed{...}, with nested braces balanced, in order of their start.
    One pass with a stack of open braces: scanning on from each \\boxed{ to its close is
    O(n^2) on unclosed ones (4.2 s for 16 kB of "\\boxed{")."""
    opens = {m.end() - 1 for m in re.finditer(r"\\boxed\s*\{", text)}
    found, stack = [], []
    for m in re.finditer(r"[{}]", text):
        i = m.start()
        if m.group() == "{":
            stack.append(i)
        elif stack:
            start = stack.pop()
            if start in opens:
                found.append((start, text[start + 1 : i]))
    return [content for _, content in sorted(found)]


def _numbers(text: str) -> list[str]:
    """Every number in `text`, canonicalised: no '$', no commas, sign kept."""
    return [
        (m["sign"] or "") + re.sub(r"[, ]", "", m["num"]) for m in _NUMBER.finditer(text)
    ]


def _computed(text: str) -> tuple[str, str] | None:
    """The result of the last computation in `text`: its last calculator annotation
    ("= $<<18+20=38>>38"), else the first number after its last '=' ("14*20=140 min"),
    or the number before it when the right side is a variable ("so 20 = A")."""
    results = [n for r in _CALC_RESULT.findall(text) if (n := _numbers(r))]
    if results:
        return results[-1][-1], "annotation"
    left, eq, right = _CALC.sub(" ", text).rpartition("=")
    if not eq:
        return None
    if _numbers(right):
        return _numbers(right)[0], "equals"
    if _numbers(left) and re.fullmatch(r"\s*[a-zA-Z]\w*\W*", right):
        return _numbers(left)[-1], "equals"
    return None


def _from_segment(segment: str) -> str | None:
    """The answer a marker introduces: a plain number, raw LaTeX (left to math_verify),
    a computation's result ("the answer is 15 * 8 = 120"), else the first number."""
    segment = segment.strip()
    plain = re.sub(r"\\text\{[^{}]*\}|\\[,!;: ]|\\%|\\\$|[$%\s]", "", segment)
    if _NUMBER.fullmatch(plain):
        return _numbers(plain)[0]
    if re.search(r"\\[a-zA-Z]", segment):
        return segment
    computed = _computed(segment)
    if computed:
        return computed[0]
    nums = _numbers(segment)
    return nums[0] if nums else None


def _main_clause(sentence: str) -> str:
    """`sentence` without its justification: "Since 168 < 182, she needs 4 bottles" ->
    "she needs 4 bottles"; "He spends $50 if he buys ... because 50 < 52" -> "He spends $50"."""
    sentence = _CONNECTIVE.sub("", sentence)
    leading = re.match(rf"{_JUSTIFICATION.pattern}[^,]*,(?P<main>.*)", sentence, re.I)
    if leading:
        return leading["main"]
    return _JUSTIFICATION.split(sentence, maxsplit=1)[0]


def _from_sentence(sentence: str, previous: str) -> tuple[str, str] | None:
    """(answer, rule) that `sentence` states, or None when it states no number.

    Most specific first, following how worked solutions state their result: an
    explicit rounding ("15.36 minutes, which rounds down to 15"), the last computation
    (_computed). A sentence without one concludes: its main clause restates the
    previous sentence's result ("There are 33 ounces of cereal in those 3 boxes": 33,
    after "14 + 7 + 12 = 33"), else gives it last ("they will last 4 weeks"). A sentence
    whose only numbers sit in a justification ("..., because 2 > 1.5") states none.
    """
    rounded = [m for m in _ROUNDED.finditer(sentence) if _numbers(m["rest"])]
    if rounded:
        return _numbers(rounded[-1]["rest"])[0], "rounded"
    computed = _computed(sentence)
    if computed:
        return computed
    prose = _CALC.sub(" ", sentence)
    stated = _numbers(_main_clause(prose))
    if not stated:
        return None
    before = _computed(previous)
    if before and any(_to_fraction(n) == _to_fraction(before[0]) for n in stated):
        return before[0], "restated_result"
    return stated[-1], "stated_number"


def extract_final_answer_with_rule(text: str) -> tuple[str | None, str]:
    """extract_final_answer plus the name of the rule that produced it: "boxed", "marker",
    "rounded", "annotation", "equals", "restated_result", "stated_number", "last_number"
    or "none"."""
    if not isinstance(text, str):
        return None, "none"
    text = text[-MAX_ANSWER_SCAN_CHARS:]
    boxed = _boxed_contents(text)
    if boxed:
        return _from_segment(boxed[-1]), "boxed"
    for m in reversed(list(_MARKERS.finditer(text))):
        found = _from_segment(m["hash"] or m["final"] or m["answer"] or m["before"] or "")
        if found is not None:
            return found, "marker"
    sentences = [s for line in text.splitlines() for s in _SENTENCE_END.split(line)]
    for i in reversed(range(len(sentences))):
        found = _from_sentence(sentences[i], sentences[i - 1] if i else "")
        if found:
            return found
    nums = _numbers(_CALC.sub(" ", text))
    return (nums[-1], "last_number") if nums else (None, "none")


def extract_final_answer(text: str) -> str | None:
    """The final answer of a solution text, or None when it holds no number.

    An explicit answer wins: the last \\boxed{}, else the last "####", "Final answer:",
    "The answer is" or "N is the answer". Otherwise the last sentence that states a
    number decides (_from_sentence); a text whose numbers are all in justifications
    falls back to its last number. Numbers come back canonical: "$1,200" -> "1200".
    """
    return extract_final_answer_with_rule(text)[0]


def _to_fraction(text: str) -> Fraction | None:
    """Exact value of a plain numeric answer ("1,200", "80 000", "$18.00", "-2.5", "3/4",
    "25%" -> 25, as GSM8K labels percentages), else None."""
    s = re.sub(r"[$,%]|\\\$|\\%|(?<=\d) (?=\d{3}\b)", "", text.strip()).rstrip(".")
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)(/\d+(\.\d*)?)?", s):
        return None
    try:
        num, _, den = s.partition("/")
        value = Fraction(Decimal(num))
        return value / Fraction(Decimal(den)) if den else value
    except (InvalidOperation, ZeroDivisionError):
        return None


def _verify_symbolic(predicted: str, gold: str) -> bool:
    """math_verify comparison for LaTeX / symbolic forms.

    math_verify.parse/verify time out via signal.alarm (math_verify/utils.py), which
    raises ValueError outside the main thread - and parse re-raises that error even
    with raise_on_error=False. Off the main thread we pass parsing_timeout=None /
    timeout_seconds=None (no signal use) and rely on _MAX_SYMBOLIC_CHARS instead.
    """
    # Imported here: sympy costs ~0.5 s and most comparisons never get this far.
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    if len(predicted) > _MAX_SYMBOLIC_CHARS or len(gold) > _MAX_SYMBOLIC_CHARS:
        return False
    seconds = 5 if threading.current_thread() is threading.main_thread() else None

    def _parse(s: str) -> list:
        # An answer is one expression: without math delimiters parse() reads "1+x" as
        # [1] and finds nothing in "\\sqrt{4}", so delimit it first.
        if "$" not in s and "\\boxed" not in s:
            return parse(f"${s}$", parsing_timeout=seconds) or parse(s, parsing_timeout=seconds)
        return parse(s, parsing_timeout=seconds)

    try:
        g, p = _parse(gold), _parse(predicted)
        return bool(g and p and verify(g, p, timeout_seconds=seconds))
    except TimeoutException:  # a BaseException, so `except Exception` would miss it
        return False


def answers_match(predicted: str | None, gold: str) -> bool:
    """Whether `predicted` equals `gold`: exact numbers first ("2.50" == "2.5" == "5/2"),
    then math_verify for LaTeX / symbolic forms. Bad input gives False, never an error."""
    try:
        if not isinstance(predicted, str) or not isinstance(gold, str):
            return False
        if not predicted.strip() or not gold.strip():
            return False
        p, g = _to_fraction(predicted), _to_fraction(gold)
        if p is not None and g is not None:
            return p == g
        return _verify_symbolic(predicted, gold)
    except Exception:
        return False
