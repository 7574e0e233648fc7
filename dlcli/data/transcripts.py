"""Whole utterances with their transcripts, for speech recognition: no cropping, batches padded
to their longest member, and training batches bucketed by duration so padding stays small
(`tf.data.Dataset.bucket_by_sequence_length`, as Lingvo and ESPnet batch speech).

Elements are `(waveform, transcript)`; the transcription task turns the text into token ids
before batching. Padding is zeros at the end of each waveform (and 0, the CTC blank, after each
token sequence), which is how the model tells padding from audio.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dlcli.data.audio import AudioOptions, decode_split, log_skipped_audio
from dlcli.data.base import SPLITS, DataBundle, padded_batch

log = logging.getLogger("dlcli")


def duration_buckets(samples: list[int], buckets: int) -> list[int]:
    """Bucket boundaries (in samples) at quantiles of the training durations."""
    if buckets < 2 or len(samples) < 2 * buckets:
        return []
    edges = np.quantile(np.asarray(samples), np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({int(e) + 1 for e in edges})


def bucketed_batch(boundaries: list[int]) -> Any:
    """Training batching: examples of similar length batched together, then zero-padded.

    Every bucket keeps its partial last batch, so a pass yields at least `size // batch_size`
    batches and the trainer's fixed number of steps per epoch is always there."""
    if not boundaries:
        return padded_batch

    def batch(dataset: Any, batch_size: int, drop_remainder: bool) -> Any:
        import tensorflow as tf

        return dataset.bucket_by_sequence_length(
            lambda wave, *_: tf.shape(wave)[0],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            drop_remainder=False,
        )

    return batch


def file_samples(paths: list[str], sample_rate: int) -> list[int]:
    """Each file's length in samples at `sample_rate`, from its header (no decoding)."""
    import soundfile as sf

    def samples(path: str) -> int:
        info = sf.info(path)
        return round(info.frames * sample_rate / info.samplerate)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        return list(pool.map(samples, paths))


def transcript_bundle(
    parts: dict[str, tuple[list[str], list[str]]], options: AudioOptions, buckets: int
) -> DataBundle:
    """Scan and decode each split's whole recordings; elements `(waveform, transcript)`."""
    import tensorflow as tf

    splits, sizes, skipped, paths, texts = {}, {}, [], {}, {}
    settings = options.decode_settings(None)  # whole utterances
    boundaries: list[int] = []
    for name in SPLITS:
        files, transcripts = parts.get(name, ([], []))
        scan, waves = decode_split(files, list(range(len(files))), settings, options)
        skipped += scan.bad
        kept = [transcripts[i] for i in scan.labels]
        splits[name] = tf.data.Dataset.zip(
            waves, tf.data.Dataset.from_tensor_slices(tf.constant(kept, tf.string))
        ).apply(tf.data.experimental.assert_cardinality(len(scan.good)))
        sizes[name], paths[name], texts[name] = len(scan.good), scan.good, kept
        if name == "train" and scan.good:
            lengths = file_samples(scan.good, options.sample_rate)
            boundaries = duration_buckets(lengths, buckets)
            seconds = np.asarray(lengths) / options.sample_rate
            log.info(
                "utterances: %.1f to %.1f s (median %.1f), %d duration bucket(s)",
                seconds.min(),
                seconds.max(),
                float(np.median(seconds)),
                len(boundaries) + 1,
            )
    log_skipped_audio(skipped)
    return DataBundle(
        class_names=[],
        input_shape=(None,),  # type: ignore[arg-type]  # whole utterances: any length
        splits=splits,
        sizes=sizes,
        skipped=skipped,
        modality="audio",
        batch=padded_batch,
        train_batch=bucketed_batch(boundaries),
        sample_rate=options.sample_rate,
        paths=paths,
        transcripts=texts,
    )
