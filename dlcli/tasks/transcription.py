"""Speech recognition with CTC: recordings and their transcripts in, text out, scored by
character and word error rates (CER, WER) computed with jiwer, as SpeechBrain and NeMo report.

The model outputs a distribution over characters (index 0: the CTC blank) for every frame; the
loss is CTC (`keras.ops.ctc_loss`) and padded frames are a certain blank (see
`dlcli.layers.sequence`), so no lengths travel beside the batches. Each epoch's validation
reports the greedy CER in the graph (`tf.edit_distance`), under any strategy; evaluation and
prediction decode greedily or with a beam search (`keras.ops.ctc_decode`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from dlcli.errors import ConfigError
from dlcli.registry import TASKS
from dlcli.tasks.base import Direction, EvalContext, Task, TaskConfig
from dlcli.tasks.ctc import LOG_FLOOR, Decoder, DecoderConfig, TextConfig, Vocabulary

VOCABULARY_FILE = "vocabulary.json"
WORST_SHOWN = 10
LENGTH_BINS = ((1, 3), (4, 6), (7, 10), (11, 20), (21, None))  # reference words
log = logging.getLogger("dlcli")


class TranscriptionConfig(TaskConfig):
    """`task:` for `type: transcription`."""

    type: Literal["transcription"] = "transcription"
    text: TextConfig = Field(default_factory=TextConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)

    metrics: ClassVar[dict[str, Direction]] = {"loss": "min", "cer": "min"}
    targets: ClassVar[str] = "transcript"
    example: ClassVar[dict[str, Any]] = {"decoder": {"type": "beam", "beam_width": 4}}

    def default_monitor(self, has_validation: bool) -> str:
        return "val_cer" if has_validation else "loss"

    def resumable_keys(self) -> tuple[str, ...]:
        return ("task.decoder",)


def score(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """Corpus CER and WER (jiwer: errors over reference characters or words)."""
    import jiwer

    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r]
    if not pairs:
        return {"cer": float("nan"), "wer": float("nan")}
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return {"cer": float(jiwer.cer(refs, hyps)), "wer": float(jiwer.wer(refs, hyps))}


def utterance_cer(reference: str, hypothesis: str) -> float:
    import jiwer

    if not reference:
        return float(len(hypothesis))  # every character is an insertion
    return float(jiwer.cer(reference, hypothesis))


@TASKS.register("transcription", config=TranscriptionConfig)
class TranscriptionTask(Task):
    """Character-level CTC speech recognition."""

    config: TranscriptionConfig
    artifact_files = (VOCABULARY_FILE,)

    def __init__(self, config: TranscriptionConfig, spec: Any) -> None:
        super().__init__(config, spec)
        if spec.modality != "audio":
            raise ConfigError(
                f"Transcription needs audio. Received data of modality `{spec.modality}`."
            )
        self.vocabulary: Vocabulary | None = None
        self.references: dict[str, list[str]] = {}
        self._decoder: Decoder | None = None

    @property
    def decoder(self) -> Decoder:
        if self._decoder is None:
            self._decoder = Decoder(self.config.decoder, self._vocabulary())
        return self._decoder

    def _vocabulary(self) -> Vocabulary:
        if self.vocabulary is None:
            raise ConfigError("The transcription task has no vocabulary yet (no training data).")
        return self.vocabulary

    def reported_metrics(self, has_validation: bool) -> list[str]:
        return ["loss", *(["val_loss", "val_cer"] if has_validation else [])]

    def eval_keys(self, train_keys: list[str]) -> list[str]:
        return [*train_keys, "edits", "characters"]

    # ---- data and model -------------------------------------------------------------------
    def adapt_data(self, data: Any) -> Any:
        """Normalise the transcripts, build the vocabulary from the training ones (unless the
        run has one), and pair each waveform with its token ids."""
        import tensorflow as tf

        normalize = self.config.text.normalize
        self.references = {
            s: [normalize(t) for t in texts] for s, texts in data.transcripts.items()
        }
        if self.vocabulary is None:
            self.vocabulary = Vocabulary.build(self.references.get("train", []))
            log.info("vocabulary: %d characters and the blank", len(self.vocabulary) - 1)
        splits = {}
        for name, dataset in data.splits.items():
            encoded = [self.vocabulary.encode(text) for text in self.references.get(name, [])]
            unknown = sorted(set().union(*(u for _, u in encoded)))
            if unknown:
                log.warning(
                    "%s split: characters outside the vocabulary, left out of the targets: %s",
                    name,
                    " ".join(repr(c) for c in unknown[:20]),
                )
            lengths = [len(ids) for ids, _ in encoded]
            padded = np.zeros((len(encoded), max(lengths, default=0)), np.int32)
            for row, (ids, _) in zip(padded, encoded, strict=True):
                row[: len(ids)] = ids
            tokens = tf.data.Dataset.from_tensor_slices((padded, np.asarray(lengths, np.int32)))
            splits[name] = tf.data.Dataset.zip(
                dataset.map(lambda wave, text: wave), tokens.map(lambda ids, n: ids[:n])
            ).apply(tf.data.experimental.assert_cardinality(len(encoded)))
        return dataclasses.replace(data, splits=splits)

    def head(self) -> Any:
        from dlcli.models.heads import FramesHead

        return FramesHead(len(self._vocabulary()))

    # ---- loss and metrics -----------------------------------------------------------------
    def per_example_loss(self, targets: Any, outputs: Any) -> Any:
        """CTC loss per utterance. An utterance with more tokens (and repeats) than the model
        has frames cannot be aligned: it adds nothing, rather than an infinite loss."""
        import keras
        import tensorflow as tf

        probabilities = tf.cast(outputs, tf.float32)
        targets = tf.cast(targets, tf.int32)
        frames = tf.shape(probabilities)[1]
        lengths = tf.math.count_nonzero(targets, axis=1, dtype=tf.int32)
        repeats = tf.math.count_nonzero(
            (targets[:, 1:] == targets[:, :-1]) & (targets[:, 1:] != 0), axis=1, dtype=tf.int32
        )
        alignable = lengths + repeats <= frames
        loss = keras.ops.ctc_loss(
            tf.where(alignable[:, None], targets, 0),
            tf.math.log(probabilities + LOG_FLOOR),
            tf.where(alignable, lengths, 0),
            tf.fill(tf.shape(lengths), frames),
            mask_index=0,
        )
        return loss * tf.cast(alignable, tf.float32)

    def eval_step(self, model: Any, batch: Any) -> dict[str, Any]:
        """Loss and the greedy decoding's character edits against the targets."""
        import tensorflow as tf

        waves, targets = batch
        outputs = model(waves, training=False)
        per_example = self.per_example_loss(targets, outputs)
        sums = self.batch_sums(targets, outputs, per_example)
        best = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        before = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
        hypothesis = tf.ragged.boolean_mask(best, (best != before) & (best != 0)).to_sparse()
        truth = tf.cast(targets, tf.int32)
        reference = tf.ragged.boolean_mask(truth, truth != 0).to_sparse()
        edits = tf.edit_distance(hypothesis, reference, normalize=False)
        sums["edits"] = tf.reduce_sum(tf.cast(edits, tf.float32))
        sums["characters"] = tf.cast(tf.math.count_nonzero(truth), tf.float32)
        return sums

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        out = {"loss": sums["loss"] / max(sums.get("count", 0.0), 1.0)}
        if "edits" in sums:
            out["cer"] = sums["edits"] / max(sums["characters"], 1.0)
        return out

    # ---- run artifacts --------------------------------------------------------------------
    def save_artifacts(self, run_dir: Path) -> None:
        self._vocabulary().save(run_dir / VOCABULARY_FILE)

    def load_artifacts(self, run_dir: Path) -> None:
        path = run_dir / VOCABULARY_FILE
        if path.is_file():
            self.vocabulary = Vocabulary.load(path)

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> dict[str, Any]:
        from dlcli import runs

        dataset = ctx.data.batch(ctx.data.split(ctx.split), ctx.batch_size, False)
        beam = self.config.decoder.type == "beam"
        hypotheses, greedy = [], []
        for waves, _ in dataset:
            probabilities = ctx.model.predict_on_batch(waves)
            hypotheses += self.decoder(probabilities)
            if beam:
                greedy += self.decoder(probabilities, "greedy")
        references = self.references[ctx.split]
        paths = ctx.data.paths.get(ctx.split) or [""] * len(references)
        rates = [utterance_cer(r, h) for r, h in zip(references, hypotheses, strict=True)]
        report: dict[str, Any] = {
            **score(references, hypotheses),
            "decoder": self.config.decoder.type,
            "utterances": len(references),
            "words": sum(len(r.split()) for r in references),
            "characters": sum(len(r) for r in references),
        }
        if beam:
            report["beam_width"] = self.config.decoder.beam_width
            report |= {f"greedy_{k}": v for k, v in score(references, greedy).items()}
        report["cer_by_length"] = length_table(references, hypotheses)
        worst = np.argsort(-np.asarray(rates), kind="stable")[:WORST_SHOWN]
        report["worst"] = [
            {
                "path": paths[i],
                "reference": references[i],
                "hypothesis": hypotheses[i],
                "cer": round(rates[i], 4),
            }
            for i in worst
            if rates[i] > 0
        ]
        rows = [
            {"path": p, "reference": r, "hypothesis": h, "cer": round(c, 4)}
            for p, r, h, c in zip(paths, references, hypotheses, rates, strict=True)
        ]
        runs.atomic_write_csv(ctx.out_dir / "transcripts.csv", rows)
        return report

    def report_lines(self, report: dict[str, Any]) -> Iterator[Any]:
        from rich.table import Table

        table = Table(title="CER by reference length", box=None)
        for column in ("words", "utterances", "cer", "wer"):
            table.add_column(column, justify="right")
        for row in report["cer_by_length"]:
            table.add_row(
                row["words"], str(row["utterances"]), f"{row['cer']:.4f}", f"{row['wer']:.4f}"
            )
        yield table
        if report["worst"]:
            worst = Table(title="worst utterances", box=None)
            for column in ("cer", "reference", "hypothesis"):
                worst.add_column(column, justify="right" if column == "cer" else "left")
            for row in report["worst"][:5]:
                worst.add_row(f"{row['cer']:.2f}", row["reference"], row["hypothesis"])
            yield worst
        decoder = report["decoder"] + (
            f" (width {report['beam_width']})" if "beam_width" in report else ""
        )
        greedy = (
            f"  greedy: CER {report['greedy_cer']:.4f} WER {report['greedy_wer']:.4f}"
            if "greedy_cer" in report
            else ""
        )
        yield (
            f"[bold]{report['split']} split: CER {report['cer']:.4f}  WER {report['wer']:.4f}[/]  "
            f"{decoder}{greedy}  ({report['utterances']} utterances; transcripts in "
            f"{report['output_dir']})"
        )

    # ---- prediction -----------------------------------------------------------------------
    def predict_outputs(self, model: Any, inputs: Any) -> Any:
        return self.decoder(model.predict_on_batch(inputs))

    def predict_rows(
        self, outputs: Any, paths: list[str], *, top_k: int
    ) -> Iterator[dict[str, Any]]:
        for path, text in zip(paths, outputs, strict=True):
            yield {"path": path, "transcript": text}


def length_table(references: list[str], hypotheses: list[str]) -> list[dict[str, Any]]:
    """CER and WER of the utterances grouped by how many words their reference has."""
    table = []
    for low, high in LENGTH_BINS:
        chosen = [
            (r, h)
            for r, h in zip(references, hypotheses, strict=True)
            if low <= len(r.split()) and (high is None or len(r.split()) <= high)
        ]
        if chosen:
            rates = score([r for r, _ in chosen], [h for _, h in chosen])
            label = f"{low}-{high}" if high is not None else f"{low}+"
            table.append({"words": label, "utterances": len(chosen), **rates})
    return table
