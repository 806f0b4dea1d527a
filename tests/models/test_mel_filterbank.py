"""The built-in encoder's mel filterbank is ours (no torchaudio for our torch pin); it must
equal librosa's HTK filters without normalisation, where librosa is installed."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker.models.encoders import mel_filterbank


@pytest.mark.parametrize(
    "n_mels, n_fft, sr", [(80, 400, 16000), (40, 512, 16000), (64, 1024, 22050)]
)
def test_mel_filterbank_equals_librosa_htk(n_mels, n_fft, sr):
    filters = pytest.importorskip("librosa.filters")
    ours = mel_filterbank(n_mels, n_fft, sr).numpy()
    ref = filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, htk=True, norm=None)
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, atol=2e-5)
