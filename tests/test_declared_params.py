"""The bounds every declared hyperparameter keeps (hsad.detectors.declared), at their edges:
sizes of ``int | None`` kinds too, the U-Net's levels as a network's depth, epochs up to
and including their bound, rates up to float32's largest value, a seed beyond a C int;
and a mutable default copied for each instance of a plugin's detector."""

from __future__ import annotations

import numpy as np
import pytest

from hsad import detectors
from hsad.detectors.ae import Autoencoder
from hsad.detectors.declared import FLOAT32_MAX, INT_MAX, MAX_EPOCHS, MAX_LAYERS
from hsad.errors import ParameterError


def _checked(name: str, **params):
    return detectors.get(name, **params).check_params()


def test_an_optional_size_keeps_the_c_int_bound():
    """``latent: int | None`` is a size as ``int`` ones are: beyond a C int, one line."""
    with pytest.raises(ParameterError, match=f"ae: latent must be at most {INT_MAX}, "
                                             f"got {2**40}"):
        _checked("ae", latent=2**40)
    _checked("ae", latent=INT_MAX)
    _checked("ae", latent=None)


def test_unet_levels_are_bounded_as_layers():
    with pytest.raises(ParameterError, match=f"skip-ganomaly: unet_levels must be at most "
                                             f"{MAX_LAYERS}, got {MAX_LAYERS + 1}"):
        _checked("skip-ganomaly", unet_levels=MAX_LAYERS + 1)
    _checked("skip-ganomaly", unet_levels=MAX_LAYERS)


def test_a_seed_beyond_a_c_int_is_a_seed_not_a_size():
    """A seed is no size torch allocates: 3e9 (within numpy's 32-bit seeds) is taken."""
    seed = 3_000_000_000
    assert seed > INT_MAX
    assert _checked("ae", seed=seed).seed == seed


def test_epochs_are_taken_up_to_and_including_their_bound():
    assert _checked("ae", epochs=MAX_EPOCHS).epochs == MAX_EPOCHS
    with pytest.raises(ParameterError, match=f"ae: epochs must be at most {MAX_EPOCHS}, "
                                             f"got {MAX_EPOCHS + 1}"):
        _checked("ae", epochs=MAX_EPOCHS + 1)


def test_a_rate_is_taken_up_to_float32s_largest_value():
    assert FLOAT32_MAX == float(np.finfo(np.float32).max)
    assert _checked("ae", lr=FLOAT32_MAX).lr == FLOAT32_MAX
    assert _checked("ae", weight_decay=FLOAT32_MAX).weight_decay == FLOAT32_MAX
    above = float(np.nextafter(FLOAT32_MAX, np.inf))
    with pytest.raises(ParameterError, match="weight_decay must be a finite number within "
                                             "float32's range"):
        _checked("ae", weight_decay=above)


class _Widths(Autoencoder):
    """A plugin's detector whose hidden widths are a list hyperparameter (a mutable
    default, as a dataclass would refuse)."""

    name = "widths-plugin"
    widths: list = [64, 32]


def test_a_mutable_default_is_copied_for_each_instance():
    a, b = _Widths(), _Widths()
    assert a.widths == b.widths == [64, 32] and a.widths is not b.widths
    a.widths.append(16)
    assert b.widths == [64, 32] and _Widths().widths == [64, 32]
    assert _Widths._declared["widths"] == [64, 32]
    assert _Widths().get_params()["widths"] == [64, 32]
    given = [8]
    assert _Widths(widths=given).widths is given  # a value given is the caller's own
