#!/usr/bin/env python3
"""Continuous speech from the Free Spoken Digit Dataset, for speech recognition.

Each utterance joins 2-7 recordings of one speaker with short random silences between them;
its transcript is the digits as words ("three one four"). Written as 16-bit WAVs plus
`manifest.csv` (`path,transcript,speaker,split`, paths relative to the manifest):

- test: every utterance of the held-out speaker (`theo` by default), so the score says how a
  recogniser does on a voice it never heard;
- validation: the other speakers' takes 0-4 (FSDD's official test takes);
- train: the other speakers' takes 5-49.

No recording is in two splits. The same seed writes the same files.

    python scripts/fsdd_sentences.py --out data/fsdd_sentences
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
RATE = 8000


def pools(folder: Path, test_speaker: str) -> dict[tuple[str, str], list[tuple[int, Path]]]:
    """(split, speaker) -> [(digit, file)]: which recordings each split may use."""
    out: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for file in sorted(folder.glob("*.wav")):
        found = NAME.match(file.name)
        if found is None:
            continue
        digit, speaker, take = int(found[1]), found[2], int(found[3])
        split = "test" if speaker == test_speaker else ("validation" if take <= 4 else "train")
        out.setdefault((split, speaker), []).append((digit, file))
    return out


def utterance(
    items: list[tuple[int, Path]], rng: random.Random, silence: tuple[float, float]
) -> tuple[np.ndarray, str]:
    """Recordings joined with silences before, between and after them; the transcript."""
    import soundfile as sf

    parts, words = [], []
    for digit, file in items:
        wave, rate = sf.read(file, dtype="float32", always_2d=True)
        if rate != RATE:
            sys.exit(f"{file}: expected {RATE} Hz, found {rate}")
        parts.append(np.zeros(round(rng.uniform(*silence) * RATE), np.float32))
        parts.append(wave.mean(axis=1))
        words.append(WORDS[digit])
    parts.append(np.zeros(round(rng.uniform(*silence) * RATE), np.float32))
    return np.concatenate(parts), " ".join(words)


def build(
    folder: Path,
    out: Path,
    *,
    test_speaker: str,
    uses: float,
    limit: int | None,
    seed: int,
    silence: tuple[float, float],
) -> int:
    import soundfile as sf

    found = pools(folder, test_speaker)
    if not any(split == "test" for split, _ in found):
        sys.exit(f"no recordings of speaker `{test_speaker}` in {folder}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    rows = []
    try:
        for (split, speaker), items in sorted(found.items()):
            rng = random.Random(f"{seed}:{split}:{speaker}")
            # Enough utterances that each recording is used about `uses` times.
            count = max(1, round(uses * len(items) / 4.5))
            if limit is not None:
                count = min(count, limit)
            (staging / "wavs" / split).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                chosen = rng.sample(items, min(rng.randint(2, 7), len(items)))
                wave, text = utterance(chosen, rng, silence)
                relative = f"wavs/{split}/{speaker}_{index:04d}.wav"
                sf.write(staging / relative, wave, RATE, subtype="PCM_16")
                rows.append(
                    {"path": relative, "transcript": text, "speaker": speaker, "split": split}
                )
        with (staging / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "transcript", "speaker", "split"])
            writer.writeheader()
            writer.writerows(rows)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)  # whole or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(rows)


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fsdd",
        type=Path,
        default=here.parent / "shared/data/fsdd/recordings",
        help="the FSDD recordings folder",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    parser.add_argument("--test-speaker", default="theo")
    parser.add_argument("--uses", type=float, default=2.0, help="times each recording is used")
    parser.add_argument(
        "--limit", type=int, help="at most this many utterances per speaker and split"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--silence", type=float, nargs=2, default=(0.05, 0.3), metavar=("MIN", "MAX")
    )
    args = parser.parse_args()
    if not args.fsdd.is_dir():
        sys.exit(f"no FSDD recordings in {args.fsdd} (see ../shared/README.md)")
    count = build(
        args.fsdd,
        args.out,
        test_speaker=args.test_speaker,
        uses=args.uses,
        limit=args.limit,
        seed=args.seed,
        silence=tuple(args.silence),
    )
    print(f"wrote {count} utterances and {args.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
