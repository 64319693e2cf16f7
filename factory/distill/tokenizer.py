"""A tokenizer trained on a distillation's own rows (`student.tokenizer: {kind: trained,
vocab_size: 512}`, issue 22 item 1), so that a tiny student's output layer is 512 wide, not
SmolLM2's 49,152: at hidden 64 that layer was ~90% of a step's FLOPs and 3.15 M of the 3.41 M
parameters (docs/DESIGN facts: 35.2 s -> 2.5 s a step of 8 x 256 tokens on this box).

What it is: HF `tokenizers` BPE over characters. The text is first cut into pieces (a word
with its leading space, one digit, a punctuation run, a whitespace run) and merges never
cross a piece, so every digit is its own token and numbers are spelled digit by digit (the
student adds column by column instead of memorising 3-digit tokens). The alphabet is every
character of the rows plus the ten digits; a character outside it (only possible in text
the tokenizer never saw: evaluation prompts) becomes <unk>, and run.py counts and reports
those. The decoder concatenates tokens, and no normalizer or cleanup touches the text, so
decode(encode(row)) == row for every training row, exactly.

Rows in, the same tokenizer out: the BPE trainer is deterministic for the same texts in the
same order, and the texts are sorted and deduplicated first. The trained tokenizer is saved
under <output_dir>/tokenizers/<key> (key: the texts, vocab_size and TOKENIZER_VERSION) and
reloaded from there by a rerun or resume; its sha256 (of tokenizer.json) enters run ids."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from factory.keys import digest
from factory.spec import JobError

TOKENIZER_VERSION = 1  # bump when PATTERN, SPECIALS or the trainer settings change
UNK, EOS = "<unk>", "<eos>"
SPECIALS = [UNK, EOS]
DIGITS = "0123456789"
# GPT-2's split with digits taken one at a time: " word", "7", " +=", "   " (a run of spaces
# but its last, which joins the next word), or any single other whitespace character.
PATTERN = r" ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s"
META_FILE = "factory_tokenizer.json"


class TokenizerError(JobError):
    """Bad input (exit 2, nothing written): a vocab_size the rows cannot support."""
    exit_code = 2  # bad input: nothing written (factory/cli.py's codes)


@dataclass
class TrainedTokenizer:
    tokenizer: object  # a transformers PreTrainedTokenizerFast
    sha256: str  # of tokenizer.json: names this exact tokenizer (run ids, resume keys)
    path: Path  # where it is saved
    meta: dict  # vocab_size, alphabet size, rows, texts, reloaded

    def describe(self) -> dict:
        """What enters the student's description (and so the resume key): the tokenizer itself."""
        return {"kind": "trained", "vocab_size": self.meta["vocab_size"], "sha256": self.sha256}


def alphabet_of(texts) -> set[str]:
    return {ch for t in texts for ch in t} | set(DIGITS)


def _raw_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()  # concatenate: the pieces carry their own spaces
    return tok


def _wrap(raw):
    from transformers import PreTrainedTokenizerFast

    # clean_up_tokenization_spaces would turn " ." into "." on decode: off, for exact round trips
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token=UNK, eos_token=EOS, pad_token=EOS,
                                   clean_up_tokenization_spaces=False)


def check_vocab_size(vocab_size: int, texts: list[str], field: str = "student.tokenizer.vocab_size") -> None:
    """Below the alphabet: one line. (Above what the rows can fill is known after training.)"""
    chars = alphabet_of(texts)
    floor = len(chars) + len(SPECIALS)
    if vocab_size < floor:
        raise TokenizerError(f"{field}: {vocab_size} is below what the rows need: {len(chars)} distinct characters "
                             f"(the 10 digits included) + {len(SPECIALS)} special tokens = {floor}; raise it to "
                             f"at least {floor}")


def train_raw(texts: list[str], vocab_size: int, field: str = "student.tokenizer.vocab_size"):
    """A BPE tokenizer of exactly vocab_size tokens from texts, or one line saying why not."""
    from tokenizers import trainers

    texts = sorted(set(texts))  # the same set of rows trains the same tokenizer, in any order
    check_vocab_size(vocab_size, texts, field)
    raw = _raw_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=list(DIGITS),
                                  show_progress=False)
    raw.train_from_iterator(texts, trainer=trainer)
    if raw.get_vocab_size() < vocab_size:
        raise TokenizerError(f"{field}: {vocab_size} is above what the rows can fill: with every word of the "
                             f"{len(texts)} distinct texts a single token the vocabulary has "
                             f"{raw.get_vocab_size()} tokens; lower it to at most {raw.get_vocab_size()}")
    return raw


def tokenizer_key(texts: list[str], vocab_size: int) -> str:
    return digest("trained-tokenizer", TOKENIZER_VERSION, vocab_size, sorted(set(texts)))


def trained_tokenizer(texts: list[str], vocab_size: int, root: Path) -> TrainedTokenizer:
    """The tokenizer of these texts: reloaded from root/<key> when saved there, else trained
    and saved (atomically: a killed save never looks complete)."""
    from factory.distill.student import write_dir_atomically

    key = tokenizer_key(texts, vocab_size)
    target = Path(root) / key
    reloaded = (target / META_FILE).is_file()
    if not reloaded:
        raw = train_raw(texts, vocab_size)
        wrapped = _wrap(raw)
        meta = {"key": key, "version": TOKENIZER_VERSION, "vocab_size": raw.get_vocab_size(),
                "alphabet": len(alphabet_of(set(texts))), "texts": len(set(texts))}

        def write(tmp: Path) -> None:
            wrapped.save_pretrained(tmp)
            (tmp / META_FILE).write_text(json.dumps(meta))

        write_dir_atomically(target, write)
    return load_trained_tokenizer(target, reloaded=reloaded)


def load_trained_tokenizer(path: Path, reloaded: bool = True) -> TrainedTokenizer:
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    sha = hashlib.sha256((path / "tokenizer.json").read_bytes()).hexdigest()
    meta = {**json.loads((path / META_FILE).read_text()), "reloaded": reloaded}
    return TrainedTokenizer(tokenizer, sha, path, meta)


def unknown_chars(tokenizer: TrainedTokenizer, texts: list[str]) -> int:
    """Characters of texts that the tokenizer has no token for (they encode as <unk>)."""
    vocab = tokenizer.tokenizer.get_vocab()
    return sum(1 for t in texts for ch in t if ch not in vocab)
