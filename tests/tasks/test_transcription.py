"""Speech recognition pieces on known inputs: text normalisation and the vocabulary, padded and
bucketed batches, the CTC loss on a known alignment (padding changes nothing), greedy and beam
decoding, the word list, CER/WER, and the padding mask the model computes from a waveform."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcli.tasks.ctc import BLANK, Decoder, DecoderConfig, TextConfig, Vocabulary
from dlcli.tasks.transcription import TranscriptionConfig, TranscriptionTask, length_table, score


def test_text_normalisation_folds_case_and_drops_punctuation_but_not_apostrophes():
    text = TextConfig()
    assert text.normalize("  Hello, World!  It's 'quoted'... ") == "hello world it's quoted"
    assert text.normalize("Caf\u0065\u0301 NOIR") == "caf\u00e9 noir"  # NFC: one character
    kept = TextConfig(lowercase=False, punctuation="keep")
    assert kept.normalize("Hello,   World!") == "Hello, World!"


def test_vocabulary_puts_the_blank_first_and_round_trips(tmp_path):
    vocab = Vocabulary.build(["ba c", "cab"])
    assert vocab.tokens == (BLANK, " ", "a", "b", "c")
    ids, unknown = vocab.encode("abz c")
    assert ids == [2, 3, 1, 4] and unknown == {"z"}
    assert vocab.decode(ids) == "ab c"
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == vocab


def test_empty_training_transcripts_are_a_clear_error():
    from dlcli.errors import DataError

    with pytest.raises(DataError, match="all empty"):
        Vocabulary.build(["", ""])


def test_buckets_group_similar_lengths_and_keep_every_step():
    import tensorflow as tf

    from dlcli.data.transcripts import bucketed_batch, duration_buckets

    lengths = [100, 3000, 120, 2900, 110, 3100, 130, 2800, 105, 3050, 115, 2950]
    boundaries = duration_buckets(lengths, buckets=2)
    assert len(boundaries) == 1 and 130 < boundaries[0] <= 2801
    waves = tf.data.Dataset.from_generator(
        lambda: ((np.ones(n, np.float32), np.array([1, 2], np.int32)) for n in lengths),
        output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)),
    )
    batches = list(bucketed_batch(boundaries)(waves, 4, False))
    assert len(batches) >= len(lengths) // 4
    for wave, _ in batches:
        real = (wave.numpy() != 0).sum(axis=1)
        assert real.max() / real.min() < 2  # never a short clip padded to a long one
        assert wave.shape[1] == real.max()  # padded to the longest in its batch, no further


def test_padded_batch_pads_waves_with_zeros_and_tokens_with_the_blank():
    import tensorflow as tf

    from dlcli.data.base import padded_batch

    ds = tf.data.Dataset.from_generator(
        lambda: iter(
            [
                (np.ones(3, np.float32), np.array([2], np.int32)),
                (np.ones(5, np.float32), np.array([3, 4, 1], np.int32)),
            ]
        ),
        output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)),
    )
    wave, tokens = next(iter(padded_batch(ds, 2, False)))
    np.testing.assert_array_equal(wave.numpy(), [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(tokens.numpy(), [[2, 0, 0], [3, 4, 1]])


def _task(vocab: Vocabulary, **config: object) -> TranscriptionTask:
    from dlcli.data.base import DataSpec

    spec = DataSpec(input_shape=(None,), modality="audio", sample_rate=8000)
    task = TranscriptionTask(TranscriptionConfig(**config), spec)
    task.vocabulary = vocab
    return task


def _one_hot(path: list[int], tokens: int, confidence: float = 0.98) -> np.ndarray:
    """Frames that each put `confidence` on one token of `path`."""
    probs = np.full((len(path), tokens), (1 - confidence) / (tokens - 1), np.float32)
    probs[np.arange(len(path)), path] = confidence
    return probs


def test_ctc_loss_is_small_on_the_alignment_and_padding_adds_nothing():
    import tensorflow as tf

    task = _task(Vocabulary((BLANK, "a", "b")))
    aligned = _one_hot([0, 1, 1, 0, 2, 0], 3)  # "ab": blank a a blank b blank
    padded = np.concatenate([aligned, np.eye(3, dtype=np.float32)[[0, 0, 0]]])  # + 3 blanks
    targets = tf.constant([[1, 2], [1, 2], [2, 1]], tf.int32)
    outputs = tf.constant(np.stack([padded, padded, padded]))
    loss = task.per_example_loss(targets, outputs).numpy()
    short = task.per_example_loss(targets[:1], tf.constant(aligned[None])).numpy()
    assert loss[0] < 0.5  # log-likelihood of the right text: near 0
    assert loss[0] == pytest.approx(short[0], abs=1e-3)  # certain-blank padding changes nothing
    assert loss[2] > 10 * loss[0]  # "ba" against frames that say "ab"


def test_ctc_loss_gives_unalignable_targets_nothing_not_infinity():
    import tensorflow as tf

    task = _task(Vocabulary((BLANK, "a", "b")))
    outputs = tf.constant(_one_hot([1, 0], 3)[None])
    loss = task.per_example_loss(tf.constant([[1, 1, 2]], tf.int32), outputs).numpy()
    assert loss.tolist() == [0.0]  # needs 4 frames (a, blank, a, b), has 2


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
    vocab = Vocabulary((BLANK, " ", "a", "b"))
    decoder = Decoder(DecoderConfig(type="greedy"), vocab)
    frames = _one_hot([2, 2, 0, 2, 3, 3, 1, 1, 3, 0], 4)  # a a _ a b b ' ' ' ' b _
    assert decoder(frames[None]) == ["aab b"]


def test_beam_search_finds_the_likelier_text_that_greedy_misses():
    # Each frame alone prefers the blank (0.55), so greedy reads nothing; summed over its
    # alignments "a" is likelier (1 - 0.55^2 = 0.6975) than "" (0.3025).
    vocab = Vocabulary((BLANK, "a"))
    frames = np.array([[[0.55, 0.45], [0.55, 0.45]]], np.float32)
    assert Decoder(DecoderConfig(type="greedy"), vocab)(frames) == [""]
    assert Decoder(DecoderConfig(type="beam", beam_width=4), vocab)(frames) == ["a"]


def test_a_word_list_keeps_the_beam_to_listed_words(tmp_path):
    vocab = Vocabulary((BLANK, " ", "e", "n", "o", "t"))
    idx = {c: i for i, c in enumerate(vocab.tokens)}
    words = tmp_path / "words.txt"
    words.write_text("one\nten\n")
    # Frames that read "tne" greedily (t, then n and o nearly tied, then e).
    frames = np.full((5, len(vocab)), 0.01, np.float32)
    frames[0, idx["t"]] = 0.9
    frames[1, idx["n"]], frames[1, idx["e"]] = 0.5, 0.44
    frames[2, idx["n"]] = 0.9
    frames[3, idx["e"]] = 0.9
    frames[4, 0] = 0.9
    frames /= frames.sum(axis=1, keepdims=True)
    plain = Decoder(DecoderConfig(type="beam", beam_width=8), vocab)(frames[None])
    listed = Decoder(DecoderConfig(type="beam", beam_width=8, words=words), vocab)(frames[None])
    assert plain == ["tne"]
    assert listed == ["ten"]


def test_cer_and_wer_come_from_jiwer_on_known_pairs():
    result = score(["three one four", "two"], ["three one for", "two"])
    assert result["wer"] == pytest.approx(1 / 4)  # one word of four
    assert result["cer"] == pytest.approx(1 / 17)  # "four" -> "for": one deletion in 17 chars
    table = length_table(["a b", "a b c d e"], ["a b", "a x c d e"])
    assert [(row["words"], row["utterances"]) for row in table] == [("1-3", 1), ("4-6", 1)]
    assert table[0]["wer"] == 0.0 and table[1]["wer"] == pytest.approx(0.2)
    assert math.isnan(score([""], ["x"])["cer"])  # no reference text: no rate, not a crash


def test_padding_frames_mark_audio_up_to_the_last_nonzero_sample():
    import keras

    from dlcli.layers.sequence import BlankPadding, PaddingFrames

    waves = np.zeros((2, 1000), np.float32)
    waves[0, :1000] = 0.5
    waves[1, :430] = 0.5
    frames = np.zeros((2, 10, 3), np.float32)
    framing = {"hop": 100, "window": 100}  # uncentered: 1 + (430 - 100) // 100 = 4 frames
    mask = keras.ops.convert_to_numpy(PaddingFrames(framing)(waves, frames))
    assert mask[0].all() and mask[1].tolist() == [True] * 4 + [False] * 6
    centered = {"hop": 100, "window": 0, "pools": [2]}  # 1 + 430 // 100 = 5, then ceil(5 / 2)
    assert keras.ops.convert_to_numpy(PaddingFrames(centered)(waves, frames))[1].sum() == 3
    probs = np.full((2, 10, 3), 1 / 3, np.float32)
    out = keras.ops.convert_to_numpy(BlankPadding()(probs, mask))
    np.testing.assert_allclose(out[1, 4:], [[1, 0, 0]] * 6)
    np.testing.assert_allclose(out[1, :4], probs[1, :4])


@pytest.mark.parametrize("model_type", ["crnn", "rnn"])
def test_an_utterance_reads_the_same_alone_and_in_a_padded_batch(model_type: str):
    """Padding is invisible to the model: the front end's statistics, the convolutions, the
    recurrence and the outputs of a short utterance batched with a long one match its own."""
    from dlcli.data.base import DataSpec
    from dlcli.models import create_model
    from dlcli.models.heads import FramesHead
    from dlcli.registry import MODELS

    spec = DataSpec(input_shape=(None,), modality="audio", sample_rate=8000)
    config = MODELS.get(model_type).config(**MODELS.get(model_type).config.example)
    model = create_model(config, spec, head=FramesHead(5))
    rng = np.random.default_rng(0)
    short = rng.uniform(-0.5, 0.5, 3000).astype("float32")
    long = rng.uniform(-0.5, 0.5, 9000).astype("float32")
    alone = model.predict_on_batch(short[None])[0]
    batch = np.zeros((2, 9000), np.float32)
    batch[0, :3000], batch[1] = short, long
    together = model.predict_on_batch(batch)[0]
    np.testing.assert_allclose(together[: len(alone)], alone, atol=1e-4)
    blank = np.zeros(5, np.float32)
    blank[0] = 1.0
    np.testing.assert_allclose(
        together[len(alone) + 1 :], blank[None].repeat(len(together) - len(alone) - 1, 0)
    )
