"""The math verifier: program results from the sandbox, each solution's final answer, the
ground truth where known, or a majority of k programs where not."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from roles.answers import answers_match

# Float noise from a program (0.1 + 0.2 = 0.30000000000000004) is not a wrong answer;
# grade-school answers have small denominators, so 1e6 keeps every real one exact.
MAX_DENOMINATOR = 1_000_000
# A returned "1e99999" is not a grade-school answer: its exact value has 100,000 digits (str()
# of it raises past Python's 4,300-digit limit, and "1e999999999" takes minutes to build).
# 100 digits either side of the point is far beyond any GSM8K answer.
MAX_EXPONENT = 100


def canonical_number(value: str | None) -> str | None:
    """A program's returned value as a canonical number string, or None if not numeric."""
    if value is None or len(value) > 4 * MAX_EXPONENT:
        return None
    try:
        d = Decimal(value.strip())
        if not d.is_finite() or abs(d.adjusted()) > MAX_EXPONENT:
            return None  # inf and nan ("Infinity" crashed Fraction with OverflowError)
        f = Fraction(d).limit_denominator(MAX_DENOMINATOR)
    except (InvalidOperation, ValueError, ZeroDivisionError):
        try:
            f = Fraction(value.strip()).limit_denominator(MAX_DENOMINATOR)  # "5/2" from a Fraction
        except (ValueError, ZeroDivisionError):
            return None
    if f.denominator == 1:
        return str(f.numerator)
    d = Decimal(f.numerator) / Decimal(f.denominator)
    return format(d.normalize(), "f") if len(str(d)) <= 12 else f"{f.numerator}/{f.denominator}"


@dataclass(frozen=True)
class Verification:
    verified: bool
    reference_answer: str | None
    reference_source: str          # ground_truth | majority | none
    program_answer: str | None     # the programs' majority answer
    programs_ok: int
    programs: int
    agreement: float | None        # share of all k programs that gave the majority answer
    long_correct: bool | None
    short_correct: bool | None
    reason: str


def verify(program_values: list[str | None], ground_truth: str | None, long_answer: str | None,
           short_answer: str | None) -> Verification:
    """program_values: each attempt's canonical value, None where it did not run or was not a number."""
    k = len(program_values)
    ok = [v for v in program_values if v is not None]
    majority, count = Counter(ok).most_common(1)[0] if ok else (None, 0)
    agreement = round(count / k, 4) if k else None
    if ground_truth is not None:
        reference, source = ground_truth, "ground_truth"
    elif count >= 2 and count * 2 > k:
        reference, source = majority, "majority"
    else:
        reference, source = None, "none"

    def correct(answer: str | None) -> bool | None:
        return None if reference is None else answers_match(answer, reference)

    if k == 0:  # programs: 0 - none asked for; the ground truth alone makes a problem checkable
        verified = reference is not None
        reason = "ground truth, no programs asked for" if verified else "no programs and no ground truth"
    elif not ok:
        reason = f"no program returned a number ({k} attempts)"
        verified = False
    elif reference is None:
        reason = f"no ground truth and no majority: {count} of {k} programs agree on {majority}"
        verified = False
    elif not answers_match(majority, reference):
        reason = f"programs' answer {majority} != {source.replace('_', ' ')} {reference}"
        verified = False
    else:
        reason = "verified"
        verified = True
    return Verification(verified, reference, source, majority, len(ok), k, agreement,
                        correct(long_answer), correct(short_answer), reason)
