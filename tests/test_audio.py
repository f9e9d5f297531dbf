import numpy as np
import pytest
import soundfile as sf

from sicl.data.audio import audio_hash, load_audio
from sicl.errors import AudioError
from sicl.testing import write_tone


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_any_format_stereo_44k_becomes_mono_16k(tmp_path, suffix):
    path = write_tone(tmp_path / f"x.{suffix}", seconds=1.0, sample_rate=44_100, channels=2)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    # mp3 adds encoder delay/padding; everything else is exact to a few samples
    assert abs(len(wav) - 16_000) < (1_200 if suffix == "mp3" else 4)
    assert np.isfinite(wav).all() and np.abs(wav).max() > 0.05


def test_downmix_averages_channels(tmp_path):
    left = np.full(1600, 0.5, dtype=np.float32)
    right = np.full(1600, -0.1, dtype=np.float32)
    sf.write(str(tmp_path / "s.wav"), np.stack([left, right], 1), 16_000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), 0.2, atol=1e-6)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match=r"missing\.wav: audio file not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match=r"junk\.wav: cannot decode audio"):
        load_audio(tmp_path / "junk.wav")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.float32), 16_000)
    with pytest.raises(AudioError, match=r"empty\.wav: audio is empty"):
        load_audio(tmp_path / "empty.wav")
    bad = np.zeros(1600, dtype=np.float32)
    bad[10] = np.nan
    sf.write(str(tmp_path / "nan.wav"), bad, 16_000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio contains NaN"):
        load_audio(tmp_path / "nan.wav")


def test_too_long_is_an_error_not_a_truncation(tmp_path):
    path = write_tone(tmp_path / "long.flac", seconds=3.0)
    with pytest.raises(AudioError, match=r"long\.flac: audio is 3\.00 s, longer than the 2 s limit"):
        load_audio(path, max_seconds=2)
    assert len(load_audio(path, max_seconds=None)) == 48_000


def test_audio_hash_ignores_file_name_and_resampling_path(tmp_path):
    a = load_audio(write_tone(tmp_path / "a.flac", seconds=0.5))
    b = load_audio(write_tone(tmp_path / "copy_under_other_name.flac", seconds=0.5))
    c = load_audio(write_tone(tmp_path / "c.flac", seconds=0.5, freq=300))
    assert audio_hash(a) == audio_hash(b) != audio_hash(c)
