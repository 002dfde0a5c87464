"""Extractor traits: routing, auto's candidates and the UI read the class, not lists of names."""

import numpy as np
import pytest

from segapp.autoselect import candidates
from segapp.errors import ConfigError
from segapp.features import get_extractor, list_extractors
from segapp.features.base import FeatureExtractor, _REGISTRY, register, traits
from segapp.jobs.routing import is_deep


def test_declared_traits():
    assert traits("classical") == {"gpu_worthy": False, "relative_cost": 1.0, "auto_candidate": True,
                                   "weight_files": ()}
    eff = traits("effnet-lite0")
    assert eff["gpu_worthy"] and eff["auto_candidate"] and eff["relative_cost"] > 1
    assert traits("vgg16")["weight_files"] == ("vgg16.pth", "vgg16.safetensors")
    assert not traits("vgg16")["auto_candidate"]          # needs a weights file: auto must work offline
    combo = traits("classical+effnet-lite0")
    assert combo["gpu_worthy"] and combo["relative_cost"] == 1.0 + eff["relative_cost"]
    assert traits(get_extractor("classical+effnet-lite0").config()) == combo
    assert get_extractor("classical").receptive_field == 2 * get_extractor("classical").margin + 1
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        traits("nope")


@pytest.fixture
def toy_backbone():
    @register
    class ToyNet(FeatureExtractor):
        """A new backbone is one class: its traits are all the rest of segapp needs."""
        name = "toy-net"
        description = "test backbone"
        gpu_worthy = True
        relative_cost = 2.0
        auto_candidate = True

        def n_features(self, n_channels):
            return 2

        def compute(self, image):
            return np.repeat(image[..., :1], 2, axis=-1)

    yield ToyNet
    del _REGISTRY["toy-net"]


def test_a_new_backbone_is_routed_and_tried_by_auto_without_other_edits(toy_backbone):
    assert is_deep("toy-net") and is_deep("classical+toy-net") and not is_deep("classical")
    found = candidates()
    assert "toy-net" in found and "classical+toy-net" in found
    assert found.index("toy-net") < found.index("effnet-lite0")      # cheaper first
    assert {e["name"]: e for e in list_extractors()}["toy-net"]["gpu_worthy"] is True
