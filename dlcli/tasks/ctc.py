"""What CTC speech recognition needs besides a model: text normalisation, a character
vocabulary with the blank at index 0, and decoding of per-frame probabilities into text
(greedy or beam search with `keras.ops.ctc_decode`, optionally kept to a word list)."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt

from dlcli.config.base import ResolvedPath, StrictModel
from dlcli.errors import ConfigError, DataError

BLANK = "<blank>"
LOG_FLOOR = 1e-7  # log(p + floor): a frame's probabilities as log-probabilities


class TextConfig(StrictModel):
    """`task.text`: how transcripts are normalised before training and scoring (references
    and hypotheses alike, as NeMo and SpeechBrain score)."""

    lowercase: bool = Field(True, description="fold case")
    punctuation: Literal["remove", "keep"] = Field(
        "remove", description="remove: drop Unicode punctuation (apostrophes inside words stay)"
    )

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        if self.punctuation == "remove":
            text = "".join(
                " " if unicodedata.category(c).startswith("P") and c != "'" else c for c in text
            )
            text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)  # quotes, not apostrophes
        return " ".join(text.split())


class DecoderConfig(StrictModel):
    """`task.decoder`: how per-frame probabilities become text at evaluation and prediction."""

    type: Literal["greedy", "beam"] = Field(
        "beam", description="greedy: the best token per frame; beam: CTC prefix beam search"
    )
    beam_width: PositiveInt = 16
    words: ResolvedPath | None = Field(
        None,
        description="a word list (one per line): of the beam's best paths, the first whose "
        "words are all listed wins, and words of the others are snapped to the nearest listed",
    )


@dataclass(frozen=True)
class Vocabulary:
    """Characters of the training transcripts; id 0 is the CTC blank."""

    tokens: tuple[str, ...]  # tokens[0] == BLANK

    @classmethod
    def build(cls, texts: list[str]) -> Vocabulary:
        chars = sorted({c for text in texts for c in text})
        if not chars:
            raise DataError(
                "The training transcripts are all empty: there is nothing to learn to write.",
                hint="check data.transcript_column and the manifest's transcripts",
            )
        return cls((BLANK, *chars))

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.tokens) if i}

    def encode(self, text: str) -> tuple[list[int], set[str]]:
        """Token ids of `text`, and the characters not in the vocabulary (dropped)."""
        index = self.index
        ids = [index[c] for c in text if c in index]
        return ids, {c for c in text if c not in index}

    def decode(self, ids: Any) -> str:
        return "".join(self.tokens[i] for i in ids if 0 < i < len(self.tokens))

    def save(self, path: Path) -> None:
        from dlcli.runs import atomic_write_json

        atomic_write_json(path, {"blank": 0, "tokens": list(self.tokens)})

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            tokens = json.loads(path.read_text())["tokens"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path} is not a dlcli vocabulary: {exc}") from None
        return cls(tuple(str(t) for t in tokens))


def read_words(path: Path) -> set[str]:
    if not path.is_file():
        raise ConfigError(f"task.decoder.words: no such file: {path}")
    words = {w for line in path.read_text(encoding="utf-8").splitlines() for w in line.split()}
    if not words:
        raise ConfigError(f"task.decoder.words: {path} lists no words")
    return words


def nearest_word(word: str, words: set[str]) -> str:
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import extractOne

    best = extractOne(word, words, scorer=Levenshtein.distance)
    return str(best[0]) if best else word


class Decoder:
    """Per-frame probabilities `[batch, frames, tokens]` to one string per utterance."""

    def __init__(self, config: DecoderConfig, vocabulary: Vocabulary) -> None:
        self.config, self.vocabulary = config, vocabulary
        self.words = read_words(config.words) if config.words else None

    def __call__(self, probabilities: Any, strategy: str | None = None) -> list[str]:
        import keras

        strategy = strategy or self.config.type
        probs = np.asarray(probabilities, np.float32)
        if probs.shape[1] == 0:
            return [""] * probs.shape[0]
        log_probs = np.log(probs + LOG_FLOOR)
        lengths = np.full(probs.shape[0], probs.shape[1], np.int32)
        if strategy == "greedy":
            decoded, _ = keras.ops.ctc_decode(log_probs, lengths, strategy="greedy")
            return [self.vocabulary.decode(row) for row in keras.ops.convert_to_numpy(decoded[0])]
        paths = min(self.config.beam_width, 8) if self.words else 1
        decoded, _ = keras.ops.ctc_decode(
            log_probs,
            lengths,
            strategy="beam_search",
            beam_width=self.config.beam_width,
            top_paths=paths,
        )
        beams = keras.ops.convert_to_numpy(decoded)  # [paths, batch, length], -1 padded
        texts = [
            [self.vocabulary.decode(beams[p, b]) for p in range(paths)] for b in range(len(probs))
        ]
        return [self._pick(candidates) for candidates in texts]

    def _pick(self, candidates: list[str]) -> str:
        """The first (most probable) beam whose words are all listed; else the best beam with
        each unlisted word replaced by the nearest listed one."""
        if self.words is None:
            return candidates[0]
        for text in candidates:
            if all(w in self.words for w in text.split()):
                return text
        return " ".join(
            w if w in self.words else nearest_word(w, self.words) for w in candidates[0].split()
        )
