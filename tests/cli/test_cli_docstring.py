"""factory/cli.py's docstring lists every verb the parser has, and no other."""
import re

import factory.cli as cli


def _verbs(parser) -> set[str]:
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set()
    for name, child in sub.choices.items():
        nested = [a for a in child._actions if getattr(a, "choices", None) and a.dest != "help"
                  and isinstance(a.choices, dict)]
        names |= {f"{name} {inner}" for a in nested for inner in a.choices} if nested else {name}
    return names


def test_the_module_docstring_lists_every_verb():
    listed = set()
    block = cli.__doc__.split("Verbs")[1].split("\n\n")[0]
    for line in block.splitlines()[1:]:
        usage = re.split(r"\s{2,}", line.strip())
        usage = usage[1] if len(usage) == 3 else usage[0]
        words = [w for w in usage.split() if re.fullmatch(r"[a-z]+", w)]
        listed.add(" ".join(words))
    assert listed == _verbs(cli._parser())
