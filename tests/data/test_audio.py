"""Audio decoding, scanning, caching, splitting and augmentation, on files written here with
soundfile and on a copy of real FSDD recordings."""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from dlcli.data import DataBundle, audio, create_dataset
from dlcli.data.audio import audio_problem, fit_length, read_audio, read_windows, scan_audio
from dlcli.data.audio_folder import FSDD_REGEX, AudioFolderConfig, folder_rows
from dlcli.data.audio_manifest import AudioManifestConfig, split_rows
from dlcli.data.base import DataSpec
from dlcli.errors import DataError
from tests.conftest import SHARED

FSDD = SHARED / "data" / "fsdd" / "recordings"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, data: np.ndarray, rate: int = 8000, **kwargs: str) -> str:
    sf.write(path, data, rate, **kwargs)
    return str(path)


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


def load(config: AudioFolderConfig | AudioManifestConfig) -> DataBundle:
    return create_dataset(config, seed=0)


def bundle_paths(config: AudioFolderConfig, split: str) -> list[str]:
    """The files a folder source puts in a split, before scanning."""
    parts, _ = split_rows(folder_rows(config.path, config, None), config, seed=0)
    return parts[split][0]


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 real recordings: 6 speakers, digits 0 and 1, takes 0, 1, 2 (test) and 30, 40."""
    root = tmp_path_factory.mktemp("fsdd")
    for speaker in SPEAKERS:
        for digit in (0, 1):
            for take in (0, 1, 2, 30, 40):
                name = f"{digit}_{speaker}_{take}.wav"
                shutil.copy(FSDD / name, root / name)
    return root


@pytest.fixture
def classes(tmp_path: Path) -> Path:
    """Two class folders of 1 s noise-like clips at 16 kHz (4 each)."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(4):
            wave = (0.3 * rng.standard_normal(16000)).astype(np.float32)
            write(tmp_path / "data" / label / f"{i}.wav", wave, 16000)
    return tmp_path / "data"


# --- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "subtype", "tolerance"),
    [
        ("WAV", "PCM_U8", 1e-2),
        ("WAV", "PCM_16", 1e-4),
        ("WAV", "PCM_24", 1e-6),
        ("WAV", "PCM_32", 1e-6),
        ("WAV", "FLOAT", 0.0),
        ("WAVEX", "PCM_24", 1e-6),
        ("FLAC", "PCM_24", 1e-6),
    ],
)
def test_lossless_formats_decode_to_the_written_samples(
    tmp_path: Path, fmt: str, subtype: str, tolerance: float
):
    wave = sine(440, 0.25, 8000)
    suffix = ".flac" if fmt == "FLAC" else ".wav"
    path = write(tmp_path / f"x{suffix}", wave, format=fmt, subtype=subtype)
    if fmt == "WAVEX":  # the format tag of WAVE_FORMAT_EXTENSIBLE
        assert Path(path).read_bytes()[20:22] == b"\xfe\xff"
    decoded = read_audio(path, 8000)
    assert decoded.dtype == np.float32 and decoded.shape == wave.shape
    np.testing.assert_allclose(decoded, wave, atol=tolerance)


def test_ogg_vorbis_decodes(tmp_path: Path):
    path = write(tmp_path / "x.ogg", sine(440, 0.5, 16000), 16000, format="OGG")
    decoded = read_audio(path, 16000)
    assert abs(len(decoded) - 8000) < 50
    assert abs(peak_hz(decoded, 16000) - 440) < 5


@pytest.mark.parametrize("channels", [2, 6])
def test_channels_are_averaged(tmp_path: Path, channels: int):
    levels = np.linspace(0.1, 0.6, channels, dtype=np.float32)
    data = np.tile(levels, (800, 1))
    path = write(tmp_path / "x.wav", data, format="WAVEX", subtype="FLOAT")
    decoded = read_audio(path, 8000)
    assert decoded.shape == (800,)
    np.testing.assert_allclose(decoded, levels.mean(), atol=1e-6)


def test_44k1_is_resampled_to_16k_keeping_the_pitch(tmp_path: Path):
    path = write(tmp_path / "x.wav", sine(440, 1.0, 44100), 44100, subtype="PCM_24")
    decoded = read_audio(path, 16000)
    assert abs(len(decoded) - 16000) <= 1
    assert abs(peak_hz(decoded, 16000) - 440) < 2


def test_loudness_normalisation(tmp_path: Path):
    path = write(tmp_path / "x.wav", sine(300, 0.5, 8000, 0.1), subtype="FLOAT")
    peak = read_audio(path, 8000, "peak", -6.0)
    assert np.max(np.abs(peak)) == pytest.approx(10 ** (-6 / 20), rel=1e-4)
    rms = read_audio(path, 8000, "rms")  # default -20 dBFS
    assert np.sqrt(np.mean(rms**2)) == pytest.approx(0.1, rel=1e-3)


def bad_files(folder: Path) -> dict[str, str]:
    """Each kind of unusable file, with a word its reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "empty.wav", np.zeros(0, np.float32))
    write(folder / "silent.wav", np.zeros(4000, np.float32))
    whole = Path(write(folder / "whole.wav", sine(440, 0.5, 8000))).read_bytes()
    (folder / "whole.wav").unlink()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    (folder / "text.wav").write_text("not audio at all\n")
    return {"empty": "empty", "silent": "silent", "truncated": "truncated", "text": "format"}


def test_unusable_files_are_named_with_a_reason(tmp_path: Path):
    for name, word in bad_files(tmp_path).items():
        problem = audio_problem(str(tmp_path / f"{name}.wav"))
        assert problem is not None and word in problem.lower(), (name, problem)
    assert audio_problem(write(tmp_path / "ok.wav", sine(440, 0.1, 8000))) is None


def test_skip_or_fail_on_bad_files(classes: Path):
    bad_files(classes / "a")
    config = AudioFolderConfig(path=classes, sample_rate=16000, on_bad_file="skip")
    bundle = load(config)
    assert sorted(Path(p).name for p, _ in bundle.skipped) == [
        "empty.wav",
        "silent.wav",
        "text.wav",
        "truncated.wav",
    ]
    assert sum(bundle.sizes.values()) == 8
    with pytest.raises(DataError, match=r"Cannot use audio file .*(empty|silent|text|truncated)"):
        load(config.model_copy(update={"on_bad_file": "fail"}))


# --- clip length ------------------------------------------------------------------------------


def test_fit_length_pads_or_keeps_the_centre():
    wave = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(wave, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(wave, 12), [*range(10), 0, 0])


def test_training_crops_at_random_evaluation_at_the_centre(classes: Path):
    config = AudioFolderConfig(
        path=classes, sample_rate=16000, duration=0.25, split={"validation": 0.25, "test": 0.25}
    )
    bundle = load(config)
    assert bundle.input_shape == (4000,) and bundle.modality == "audio"
    assert bundle.sample_rate == 16000 and bundle.spec.sample_rate == 16000
    train = bundle.split("train")
    first, second = (np.stack([x for x, _ in train.as_numpy_iterator()]) for _ in range(2))
    assert first.shape == (4, 4000) and not np.array_equal(first, second)  # new crops each epoch
    again = np.stack([x for x, _ in load(config).split("train").as_numpy_iterator()])
    np.testing.assert_array_equal(first, again)  # and the same ones for the same seed
    path = bundle_paths(config, "validation")[0]
    clip = next(bundle.split("validation").as_numpy_iterator())[0]
    np.testing.assert_array_equal(clip, read_audio(path, 16000)[6000:10000])


# --- labels and splits on real FSDD recordings ------------------------------------------------


def test_group_split_keeps_each_speaker_in_one_split(fsdd: Path):
    config = AudioFolderConfig(
        path=fsdd,
        label_regex=FSDD_REGEX,
        sample_rate=8000,
        group_column="speaker",
        split={"validation": 0.2, "test": 0.2},
        cache="none",
    )
    speakers = {
        split: {Path(p).name.split("_")[1] for p in bundle_paths(config, split)}
        for split in ("train", "validation", "test")
    }
    assert all(speakers.values())
    for one, other in itertools.combinations(speakers.values(), 2):
        assert not one & other
    bundle = load(config)
    assert bundle.class_names == ["0", "1"] and sum(bundle.sizes.values()) == 60


def test_fsdd_official_split_by_rule(fsdd: Path):
    config = AudioFolderConfig(
        path=fsdd,
        label_regex=FSDD_REGEX,
        sample_rate=8000,
        split_rule={"column": "take", "test": "0-4"},
        split={"validation": 0.25},
    )
    take = {
        s: {int(Path(p).stem.split("_")[2]) for p in bundle_paths(config, s)}
        for s in ("train", "validation", "test")
    }
    assert take["test"] == {0, 1, 2}
    assert take["train"] <= {30, 40} and take["validation"] <= {30, 40}
    bundle = load(config)
    assert bundle.sizes == {"train": 18, "validation": 6, "test": 36}
    assert bundle.class_counts == [9, 9]
    rule = {"column": "speaker", "test": "theo", "validation": ["lucas"]}
    leave_out = AudioFolderConfig(path=fsdd, label_regex=FSDD_REGEX, split_rule=rule)
    names = {
        s: {Path(p).name.split("_")[1] for p in bundle_paths(leave_out, s)}
        for s in ("validation", "test")
    }
    assert names == {"validation": {"lucas"}, "test": {"theo"}}


def test_manifest_with_relative_paths_regex_columns_and_line_errors(fsdd: Path, tmp_path: Path):
    lines = ["path"] + [os.path.relpath(f, tmp_path) for f in sorted(fsdd.glob("*.wav"))]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    config = AudioManifestConfig(
        path=manifest,
        label_regex=FSDD_REGEX,
        sample_rate=8000,
        split_rule={"column": "take", "test": "0-4"},
        group_column="speaker",
    )
    bundle = load(config)
    assert bundle.sizes["test"] == 36 and bundle.class_names == ["0", "1"]
    (tmp_path / "bad.csv").write_text("path,label\na.wav,x\n,y\n")
    with pytest.raises(DataError, match=r"bad.csv:3: missing path"):
        load(AudioManifestConfig(path=tmp_path / "bad.csv"))


def test_config_errors_are_caught_early(tmp_path: Path):
    with pytest.raises(ValueError, match="named group `label`"):
        AudioFolderConfig(path=tmp_path, label_regex=r"^(?P<digit>\d+)_")
    with pytest.raises(ValueError, match="not a named group of label_regex"):
        AudioFolderConfig(path=tmp_path, label_regex=FSDD_REGEX, group_column="speeker")


# --- caching ----------------------------------------------------------------------------------


def test_disk_cache_is_reused_and_survives_two_loads_at_once(
    fsdd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    config = AudioFolderConfig(
        path=fsdd,
        label_regex=FSDD_REGEX,
        sample_rate=16000,
        cache="disk",
        cache_dir=tmp_path / "cache",
    )
    results: list[object] = []
    both_missed = threading.Barrier(2, timeout=60)
    scan = audio.scan_audio

    def scan_together(*args: Any, **kwargs: Any) -> Any:
        both_missed.wait()  # both runs found no cache: both build one, and race to rename it
        return scan(*args, **kwargs)

    monkeypatch.setattr(audio, "scan_audio", scan_together)

    def load_in_thread() -> None:
        try:
            bundle = load(config)
            results.append({s: list(bundle.splits[s].as_numpy_iterator()) for s in bundle.splits})
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=load_in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not [r for r in results if isinstance(r, Exception)], results
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(entries) == 3 and not [e for e in entries if e.startswith(".")]  # 3 splits, no temp

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded although the cache holds every clip")

    monkeypatch.setattr(audio, "read_audio", no_decoding)
    monkeypatch.setattr(audio, "scan_audio", no_decoding)
    bundle = load(config)
    again = list(bundle.split("test").as_numpy_iterator())
    first = results[0]["test"]  # type: ignore[index]
    assert len(again) == len(first) == 12
    np.testing.assert_array_equal(again[0][0], first[0][0])


# --- augmentation, prediction, windows --------------------------------------------------------


def test_augmenter_changes_training_batches_only(classes: Path, tmp_path: Path):
    import tensorflow as tf

    from dlcli.train.loop import distribute

    noise = tmp_path / "noise"
    noise.mkdir()
    write(noise / "hum.wav", sine(50, 0.3, 16000), 16000)
    config = AudioFolderConfig(
        path=classes,
        sample_rate=16000,
        duration=0.25,
        random_crop=False,
        augment={"shift": 0.2, "gain_db": 6, "noise": {"path": noise, "snr_db": [10, 10]}},
    )
    assert AudioFolderConfig(path=classes).train_transform(2, 0) is None  # off by default
    bundle = load(config)
    augment = config.train_transform(len(bundle.class_names), seed=0)
    clips = bundle.split("train")
    plain = np.stack([x for x, _ in clips.as_numpy_iterator()])
    strategy = tf.distribute.get_strategy()
    trained, _ = distribute(strategy, clips, 2, training=True, batch_map=augment)
    evaluated, _ = distribute(strategy, clips, 2, training=False)
    trained_x = np.concatenate([x.numpy() for x, _ in trained])
    evaluated_x = np.concatenate([x.numpy() for x, _ in evaluated])
    np.testing.assert_array_equal(evaluated_x, plain)
    assert trained_x.shape == plain.shape and not np.allclose(trained_x, plain, atol=1e-3)


def test_noise_is_mixed_at_the_asked_snr(tmp_path: Path):
    import tensorflow as tf

    from dlcli.data.audio_augment import AudioAugmentConfig, build_audio_augmenter

    (tmp_path / "noise").mkdir()
    rng = np.random.default_rng(1)
    write(tmp_path / "noise" / "n.flac", (0.2 * rng.standard_normal(8000)).astype("float32"))
    config = AudioAugmentConfig(noise={"path": tmp_path / "noise", "snr_db": [10, 10]})
    clean = np.stack([sine(440, 0.5, 8000)] * 4)
    noisy, _ = build_audio_augmenter(config, 8000, seed=0)(tf.constant(clean), tf.zeros(4))
    added = noisy.numpy() - clean
    snr = 10 * np.log10(np.mean(clean**2, axis=1) / np.mean(added**2, axis=1))
    np.testing.assert_allclose(snr, 10.0, atol=0.1)


@pytest.mark.parametrize(("color", "slope_db"), [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_generated_noise_has_its_colour_and_snr_and_spares_the_padding(color: str, slope_db: float):
    """No path: Gaussian noise shaped to the colour, at the asked SNR over the recording; the
    zero padding after it (what evaluation sees as silence) stays zero."""
    import tensorflow as tf

    from dlcli.data.audio_augment import AudioAugmentConfig, build_audio_augmenter

    config = AudioAugmentConfig(noise={"colors": [color], "snr_db": [10, 10]})
    clean = np.zeros((8, 16000), np.float32)
    clean[:, :12000] = sine(440, 1.5, 8000)  # 1.5 s of tone, then 0.5 s of padding
    noisy, _ = build_audio_augmenter(config, 8000, seed=0)(tf.constant(clean), tf.zeros(8))
    added = noisy.numpy()[:, :12000] - clean[:, :12000]
    assert np.all(noisy.numpy()[:, 12000:] == 0)
    snr = 10 * np.log10(np.mean(clean[:, :12000] ** 2, axis=1) / np.mean(added**2, axis=1))
    np.testing.assert_allclose(snr, 10.0, atol=0.1)
    # Power per octave band: 250-500 Hz against 1-2 kHz, two octaves apart.
    power = np.mean(np.abs(np.fft.rfft(added, axis=1)) ** 2, axis=0)
    hz = np.fft.rfftfreq(12000, 1 / 8000)
    per_octave = [10 * np.log10(power[(hz >= a) & (hz < 2 * a)].mean()) for a in (250, 1000)]
    # Mean power density falls by slope_db per octave: 2 octaves apart.
    assert per_octave[1] - per_octave[0] == pytest.approx(2 * (slope_db), abs=1.0)


def test_generated_noise_draws_a_colour_per_clip_and_keeps_whole_utterance_lengths():
    import tensorflow as tf

    from dlcli.data.audio_augment import AudioAugmentConfig, build_audio_augmenter

    config = AudioAugmentConfig(noise={"snr_db": [0, 0]})  # white and pink
    utterances = np.zeros((16, 8000), np.float32)
    for i in range(16):
        utterances[i, : 2000 + 300 * i] = sine(300, 1.0, 8000)[: 2000 + 300 * i]
    augment = build_audio_augmenter(config, 8000, seed=0, whole=True)
    noisy = augment(tf.constant(utterances), tf.zeros(16))[0].numpy()
    lasts = [np.flatnonzero(w)[-1] for w in noisy]
    assert lasts == [2000 + 300 * i - 1 for i in range(16)]  # frame masks read the same lengths
    added = noisy - utterances
    power = np.abs(np.fft.rfft(added[:, :2000], axis=1)) ** 2
    share = power[:, 600:].sum(axis=1) / power.sum(axis=1)  # above 2.4 kHz
    assert max(share) > 4 * min(share)  # some clips white (flat), some pink (falling)


def test_noise_config_errors():
    from dlcli.data.audio_augment import AudioAugmentConfig

    with pytest.raises(ValueError, match="colors is for generated noise"):
        AudioAugmentConfig(noise={"path": ".", "colors": ["pink"]})
    with pytest.raises(ValueError, match="colors"):
        AudioAugmentConfig(noise={"colors": ["purple"]})
    with pytest.raises(ValueError, match="snr_db"):
        AudioAugmentConfig(noise={"snr_db": [20, 5]})


def _pitch(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


def test_speed_perturbation_changes_pitch_and_tempo_per_clip():
    import tensorflow as tf

    from dlcli.data.audio_augment import AudioAugmentConfig, build_audio_augmenter

    clip = sine(400, 1.0, 8000)
    slow = build_audio_augmenter(AudioAugmentConfig(speed=(0.8, 0.8)), 8000, seed=0)
    out, _ = slow(tf.constant(clip[None]), tf.zeros(1))
    assert out.shape == (1, 8000)  # a clip keeps its length
    assert _pitch(out.numpy()[0], 8000) == pytest.approx(320, abs=3)
    # Whole utterances (zero-padded, transcription): slower lengthens, nothing is cut.
    utterance = np.concatenate([clip[:6000], np.zeros(2000, np.float32)])[None]
    whole = build_audio_augmenter(AudioAugmentConfig(speed=(0.8, 0.8)), 8000, 0, whole=True)
    longer, _ = whole(tf.constant(utterance), tf.zeros(1))
    assert longer.shape == (1, 10000) and np.flatnonzero(longer.numpy()[0])[-1] == 7499
    spread = build_audio_augmenter(AudioAugmentConfig(speed=(0.9, 1.1)), 8000, seed=0)
    batch, _ = spread(tf.constant(np.stack([clip] * 6)), tf.zeros(6))
    pitches = {round(_pitch(w[:4000], 8000)) for w in batch.numpy()}
    assert len(pitches) > 2 and all(355 <= p <= 445 for p in pitches)  # drawn per clip
    with pytest.raises(ValueError, match="speed"):
        AudioAugmentConfig(speed=(1.2, 0.9))


def test_predict_inputs_decode_like_training(tmp_path: Path):
    spec = DataSpec(input_shape=(8000,), modality="audio", class_names=["a", "b"], sample_rate=8000)
    files = [
        write(tmp_path / "long.wav", sine(440, 2.0, 44100), 44100),
        write(tmp_path / "short.flac", sine(440, 0.3, 16000), 16000),
        write(tmp_path / "silent.wav", np.zeros(100, np.float32)),
    ]
    read = AudioFolderConfig(path=tmp_path, sample_rate=8000).read_inputs(files, spec)
    assert read.paths == files[:2] and [Path(p).name for p, _ in read.skipped] == ["silent.wav"]
    clips = list(read.dataset.as_numpy_iterator())
    assert [c.shape for c in clips] == [(8000,), (8000,)]
    assert np.all(clips[1][2500:] == 0)  # 0.3 s, padded to 1 s


@pytest.mark.parametrize(("seconds", "count"), [(3.5, 6), (3.6, 7), (0.3, 1)])
def test_read_windows_covers_the_recording(tmp_path: Path, seconds: float, count: int):
    spec = DataSpec(input_shape=(8000,), modality="audio", sample_rate=8000)
    path = write(tmp_path / "long.wav", sine(440, seconds, 16000), 16000)
    windows, starts = read_windows(path, spec, window_s=1.0, hop_s=0.5)
    assert windows.shape == (count, 8000)
    np.testing.assert_allclose(starts, np.arange(count) * 0.5)


def test_scan_threads_keep_order(tmp_path: Path):
    paths = [write(tmp_path / f"{i}.wav", sine(100 + i, 0.05, 8000)) for i in range(20)]
    scan = scan_audio(paths, list(range(20)), on_bad_file="fail")
    assert scan.good == paths and scan.labels == list(range(20))
