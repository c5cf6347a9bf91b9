"""gpu_histeq.transforms.functional against torchvision.transforms.v2.functional.

``equalize`` is compared with the installed torchvision's ``equalize`` on the same inputs:
scikit-image's photographs as tensors, ``tv_tensors.Image`` / ``Video`` and PIL images, every
dtype torchvision takes (uint8 bit for bit, and the others through the same ``to_dtype``), and
the same exception type for what torchvision refuses. The other functionals equal their
transforms and the batched functions; the transforms take PIL images in samples.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

_WITHOUT_TORCH = textwrap.dedent("""
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError(f"No module named {name!r}")

    sys.meta_path.insert(0, Block())
    from gpu_histeq.transforms import functional
    assert "torch" not in sys.modules
    try:
        functional.equalize(None)
    except ImportError as error:
        assert "needs torch and torchvision" in str(error), error
    else:
        raise AssertionError("no ImportError")
    print("ok")
""")


def test_importable_without_torch_and_says_what_it_needs():
    run = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from PIL import Image  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

import gpu_histeq  # noqa: E402
from gpu_histeq.transforms import CLAHE, EqualizeHist, MatchHistograms  # noqa: E402
from gpu_histeq.transforms import functional as F  # noqa: E402
from test_transforms import _cuda_or_reason  # noqa: E402

skimage_data = pytest.importorskip("skimage.data")
PHOTOS = {"camera": skimage_data.camera(), "moon": skimage_data.moon(),
          "astronaut": skimage_data.astronaut(), "coffee": skimage_data.coffee()}


def as_chw(photo):
    tensor = torch.from_numpy(photo)
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def assert_same(result, expected):
    assert type(result) is type(expected)
    if isinstance(expected, Image.Image):
        assert result.mode == expected.mode and result.size == expected.size
        np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))
        return
    assert result.dtype == expected.dtype and result.shape == expected.shape
    assert torch.equal(result, expected)


@pytest.fixture
def calls(monkeypatch):
    """Counts the batched gpu_histeq calls the functionals make (proof that they did the work)."""
    made = []

    def counting(function):
        def call(images, *args, **kwargs):
            made.append(tuple(images.shape))
            return function(images, *args, **kwargs)
        return call

    for name in ("_equalize_hist", "_clahe", "_match_histograms"):
        monkeypatch.setattr(F, name, counting(getattr(F, name)))
    return made


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_equalize_equals_torchvision_on_photographs(name, calls):
    image = as_chw(PHOTOS[name])
    assert_same(F.equalize(image), TF.equalize(image))
    assert calls == [tuple(image.shape)]  # one batched call did it
    assert not torch.equal(F.equalize(image), image)
    assert_same(F.equalize(tv_tensors.Image(image)), TF.equalize(tv_tensors.Image(image)))
    pil = Image.fromarray(PHOTOS[name])
    assert_same(F.equalize(pil), TF.equalize(pil))


def test_batches_and_videos_in_one_call(calls):
    crops = torch.stack([as_chw(PHOTOS[n])[:, :256, :256] for n in ("astronaut", "coffee")] * 3)
    video = tv_tensors.Video(crops.reshape(2, 3, 3, 256, 256))
    assert_same(F.equalize(video), TF.equalize(video))
    assert calls == [(2, 3, 3, 256, 256)]
    assert_same(F.equalize(crops), TF.equalize(crops))


DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16,
          torch.float16, torch.float32, torch.float64, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES)
def test_equalize_every_dtype_as_torchvision(dtype):
    image = as_chw(PHOTOS["astronaut"])[:, ::2, ::2]
    dim = (image // 4 + 60).to(torch.uint8)  # low contrast
    for source in (image, dim):
        if dtype == torch.int8:
            tensor = (source // 2).to(torch.int8)
        else:
            tensor = TF.to_dtype(source, dtype, scale=True)
        assert_same(F.equalize(tensor), TF.equalize(tensor))


def test_equalize_edge_inputs_as_torchvision():
    empty = torch.zeros((0, 3, 4, 4), dtype=torch.uint8)
    assert F.equalize(empty) is empty and TF.equalize(empty) is empty
    assert_same(F.equalize(tv_tensors.Image(torch.zeros((3, 0, 4)))),
                TF.equalize(tv_tensors.Image(torch.zeros((3, 0, 4)))))
    for constant in (torch.zeros((2, 20, 20), dtype=torch.uint8), torch.full((1, 30, 30), 0.7)):
        assert_same(F.equalize(constant), TF.equalize(constant))
    tiny = torch.tensor([[[0, 3], [9, 200]]], dtype=torch.uint8)  # PIL's step 0: unchanged
    assert_same(F.equalize(tiny), TF.equalize(tiny))
    two = torch.tensor([[[0, 255] * 300]], dtype=torch.uint8)
    assert_same(F.equalize(two), TF.equalize(two))
    for mode in ("P", "RGBA", "LA", "I;16"):  # handed to PIL as torchvision does
        pil = Image.fromarray(PHOTOS["coffee"][:64, :64]).convert(mode)
        try:
            expected = TF.equalize(pil)
        except OSError:
            with pytest.raises(OSError):
                F.equalize(pil)
        else:
            assert_same(F.equalize(pil), expected)


@pytest.mark.parametrize("bad", [
    np.zeros((3, 8, 8), np.uint8),
    tv_tensors.Mask(torch.zeros((8, 8), dtype=torch.uint8)),
    tv_tensors.BoundingBoxes([[1, 2, 3, 4]], format="XYXY", canvas_size=(8, 8)),
    torch.zeros(5, dtype=torch.uint8),
    torch.zeros((3, 8, 8), dtype=torch.bool),
])
def test_equalize_refuses_what_torchvision_refuses(bad):
    with pytest.raises(Exception) as theirs:  # noqa: PT011 - compared below
        TF.equalize(bad)
    with pytest.raises(theirs.type):
        F.equalize(bad)


def test_messages_name_what_is_accepted():
    with pytest.raises(TypeError, match="Tensor, tv_tensors.Image, tv_tensors.Video or a PIL"):
        F.equalize(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(IndexError, match=r"\(\.\.\., H, W\), got a tensor of shape \(5,\)"):
        F.equalize(torch.zeros(5, dtype=torch.uint8))


def test_the_other_functionals_equal_their_transforms_and_functions():
    import cv2
    from skimage import exposure
    rgb = as_chw(PHOTOS["coffee"])[:, :200, :240]
    assert_same(F.equalize_hist(rgb, method="pil"), EqualizeHist(method="pil")(rgb))
    assert_same(F.equalize_hist(rgb), torch.from_numpy(gpu_histeq.equalize_hist(rgb.numpy())))
    floats = TF.to_dtype(rgb, torch.float32, scale=True)
    expected = exposure.equalize_hist(floats[1].numpy(), 64)
    np.testing.assert_array_equal(F.equalize_hist(floats, 64)[1].numpy(), expected)
    clahe = cv2.createCLAHE(3.0, (4, 4))
    expected = np.stack([clahe.apply(plane) for plane in rgb.numpy()])
    np.testing.assert_array_equal(F.clahe(rgb, 3.0, (4, 4)).numpy(), expected)
    reference = as_chw(PHOTOS["astronaut"])[:, :100, :100]
    matched = F.match_histograms(tv_tensors.Image(rgb), reference)
    assert isinstance(matched, tv_tensors.Image) and matched.dtype == torch.uint8
    expected = exposure.match_histograms(rgb.numpy(), reference.numpy(), channel_axis=0)
    np.testing.assert_array_equal(matched.numpy(), expected)
    with pytest.raises(ValueError, match="`reference` has 3 channels"):
        F.match_histograms(rgb[:1], reference)


def test_transforms_take_pil_images_in_samples():
    import cv2
    photo = Image.fromarray(PHOTOS["astronaut"][::2, ::2])
    gray = Image.fromarray(PHOTOS["camera"][::2, ::2])
    ours = v2.Compose([EqualizeHist(method="pil"), v2.PILToTensor()])
    theirs = v2.Compose([v2.RandomEqualize(p=1.0), v2.PILToTensor()])
    for image in (photo, gray):
        assert_same(ours(image), theirs(image))
    sample = {"image": gray, "label": 3}
    out = CLAHE(2.0, (4, 4))(sample)
    assert isinstance(out["image"], Image.Image) and out["label"] == 3
    expected = cv2.createCLAHE(2.0, (4, 4)).apply(np.asarray(gray))
    np.testing.assert_array_equal(np.asarray(out["image"]), expected)
    reference = as_chw(PHOTOS["coffee"])[:, :64, :64]
    matched = MatchHistograms(reference)(photo)  # per channel: uint8, so a PIL image again
    assert isinstance(matched, Image.Image) and matched.mode == "RGB"
    from skimage import exposure
    expected = exposure.match_histograms(np.asarray(photo), reference.permute(1, 2, 0).numpy(),
                                         channel_axis=-1)
    np.testing.assert_array_equal(np.asarray(matched), expected)
    with pytest.raises(TypeError, match="PILToImage"):  # float64 does not fit a PIL image
        MatchHistograms(reference[0])(gray)


def test_pipeline_with_equalize_hist_in_place_of_random_equalize_gives_identical_batches():
    crops = [as_chw(PHOTOS[n])[:, 32:224, 64:256] for n in ("astronaut", "coffee")] * 2
    ours = v2.Compose([v2.RandomHorizontalFlip(p=1.0), EqualizeHist(method="pil"),
                       v2.ToDtype(torch.float32, scale=True)])
    theirs = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.RandomEqualize(p=1.0),
                         v2.ToDtype(torch.float32, scale=True)])
    for crop in crops:
        assert_same(ours(tv_tensors.Image(crop)), theirs(tv_tensors.Image(crop)))
    batch = torch.stack(crops)
    assert_same(ours(batch), theirs(batch))


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_or_reason() is not None, reason=str(_cuda_or_reason()))
def test_cuda_tensors_equal_torchvision_on_the_device():
    batch = torch.stack([as_chw(PHOTOS[n])[:, :256, :256] for n in ("astronaut", "coffee")]).cuda()
    for tensor in (batch, TF.to_dtype(batch, torch.float32, scale=True), tv_tensors.Image(batch)):
        result = F.equalize(tensor)
        assert result.device == tensor.device
        assert_same(result, TF.equalize(tensor))
