"""Speech recognition on continuous FSDD digits: test CER and WER on the held-out speaker (theo),
greedy against beam search (alone and kept to a word list), training time, and the real-time
factor of `dlcli predict` on CPU.

The utterances are built by scripts/fsdd_sentences.py (2-7 digits of one speaker joined with
short silences; theo is never heard in training), then `dlcli run pipelines/fsdd_ctc.yaml` trains
and evaluates as a user would; `dlcli evaluate RUN --set task.decoder.words=words.txt` scores
the same model with the beam kept to the words of the training transcripts (the ten digit
names: a closed vocabulary, as digit-string recognisers use). Goal: CER under 5% on the
held-out speaker.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

from _shared import REPO, dlcli_json

FSDD = REPO.parent / "shared" / "data" / "fsdd" / "recordings"
GOAL_CER = 0.05


def audio_seconds(files: list[Path]) -> float:
    import soundfile as sf

    return sum(sf.info(f).duration for f in files)


def training_words(manifest: Path) -> list[str]:
    """The words of the training split's transcripts: the word list a user would write."""
    with manifest.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "train"]
    return sorted({w for r in rows for w in r["transcript"].split()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--set", action="append", default=[], help="pipeline overrides")
    args = parser.parse_args()
    if not FSDD.is_dir():
        sys.exit(f"needs the Free Spoken Digit Dataset in {FSDD} (see ../shared/README.md)")
    with tempfile.TemporaryDirectory() as work:
        data = Path(work) / "sentences"
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "fsdd_sentences.py"), "--out", str(data)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        sets = [f"data.path={data / 'manifest.csv'}", f"seed={args.seed}", *args.set]
        command = ["run", str(REPO / "pipelines" / "fsdd_ctc.yaml"), "--quiet"]
        document, seconds = dlcli_json([*command, *(a for s in sets for a in ("--set", s))], work)
        run, report, train = document["run_dir"], document["evaluation"], document["train"]
        words = Path(work) / "words.txt"
        words.write_text("\n".join(training_words(data / "manifest.csv")) + "\n")
        listed, _ = dlcli_json(["evaluate", run, "--set", f"task.decoder.words={words}"], work)
        test = sorted((data / "wavs" / "test").glob("*.wav"))
        heard = audio_seconds(test)
        factors = {}
        for batch in (1, 32):
            predicted, _ = dlcli_json(
                ["predict", run, str(data / "wavs" / "test"), "--batch-size", str(batch)], work
            )
            factors[batch] = (len(test) / predicted["per_second"]) / heard
    print(
        f"\nFSDD continuous digits, speaker theo held out: {report['utterances']} test "
        f"utterances, {heard / 60:.1f} min; trained on {train['data']['train']} utterances "
        f"of 5 other speakers, {train['epochs_run']} epochs (best {train['best_epoch']}), "
        f"{train['parameters']} parameters\n"
    )
    print("| decoder | test CER | test WER |")
    print("| --- | ---: | ---: |")
    print(f"| greedy | {report['greedy_cer']:.4f} | {report['greedy_wer']:.4f} |")
    beam = f"beam search, width {report['beam_width']}"
    print(f"| {beam} | {report['cer']:.4f} | {report['wer']:.4f} |")
    print(f"| {beam}, training words only | {listed['cer']:.4f} | {listed['wer']:.4f} |")
    verdict = "met" if report["cer"] < GOAL_CER else "MISSED"
    listed_verdict = "met" if listed["cer"] < GOAL_CER else "MISSED"
    print(
        f"\nGoal: test CER < {GOAL_CER}: beam {verdict}, beam with the word list "
        f"{listed_verdict}.\n"
    )
    print("| measure | value |")
    print("| --- | ---: |")
    print(f"| training + evaluation, wall time (2 CPU cores) | {seconds / 60:.1f} min |")
    print(f"| real-time factor of `dlcli predict`, one file at a time (beam) | {factors[1]:.4f} |")
    print(f"| real-time factor of `dlcli predict`, batches of 32 (beam) | {factors[32]:.4f} |")
    print("\nCER by reference length (beam):\n")
    print("| words | utterances | CER | WER |")
    print("| --- | ---: | ---: | ---: |")
    for row in report["cer_by_length"]:
        print(f"| {row['words']} | {row['utterances']} | {row['cer']:.4f} | {row['wer']:.4f} |")


if __name__ == "__main__":
    main()
