"""gpu_histeq.transforms inside torchvision.transforms.v2 pipelines.

Peers: ``torchvision.transforms.v2.functional.equalize`` (bit-exact with ``method="pil"`` on
uint8, per channel), ``cv2.createCLAHE`` (CLAHE), ``skimage.exposure.match_histograms``
(MatchHistograms); real photographs from ``skimage.data``. CUDA tensors are tested only where a
GPU, CuPy and a CUDA build of torch are present.
"""

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gpu_histeq

_IMPORT_WITHOUT_TORCH = textwrap.dedent("""
    import sys

    class Block:  # torch and torchvision are not installed, as far as this process can tell
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError(f"No module named {name!r}")

    sys.meta_path.insert(0, Block())
    import gpu_histeq
    import gpu_histeq.transforms
    from gpu_histeq.transforms import CLAHE, EqualizeHist, MatchHistograms
    assert "torch" not in sys.modules
    for cls in (EqualizeHist, CLAHE, MatchHistograms):
        try:
            cls()
        except ImportError as error:
            assert "needs torch and torchvision" in str(error), error
            assert "pip install torch torchvision" in str(error), error
        else:
            raise AssertionError(f"{cls.__name__}() did not raise ImportError")
    print("ok")
""")


def test_importable_without_torch_and_says_what_it_needs():
    run = subprocess.run([sys.executable, "-c", _IMPORT_WITHOUT_TORCH], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_import_does_not_import_torch():
    code = ("import sys, gpu_histeq, gpu_histeq.transforms; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_unknown_name_is_an_attribute_error():
    import gpu_histeq.transforms as transforms
    with pytest.raises(AttributeError, match="Equalise"):
        transforms.Equalise  # noqa: B018


torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

from gpu_histeq.transforms import CLAHE, EqualizeHist, MatchHistograms  # noqa: E402


def _photos():
    """``{name: (C, H, W) uint8 tensor}`` from scikit-image's sample photographs."""
    data = pytest.importorskip("skimage.data")
    gray = {"camera": data.camera(), "moon": data.moon(), "coins": data.coins()}
    rgb = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}
    photos = {name: torch.from_numpy(image)[None] for name, image in gray.items()}
    photos.update({name: torch.from_numpy(image).permute(2, 0, 1).contiguous()
                   for name, image in rgb.items()})
    return photos


PHOTOS = _photos()


def _crops(count=6, size=96, channels=3):
    """``(count, channels, size, size)`` uint8 crops of the RGB photographs, squeezed in range."""
    rng = np.random.default_rng(0)
    sources = [image for image in PHOTOS.values() if image.shape[0] == channels]
    out = torch.empty((count, channels, size, size), dtype=torch.uint8)
    for i in range(count):
        image = sources[i % len(sources)]
        y, x = (int(rng.integers(0, s - size)) for s in image.shape[1:])
        crop = image[:, y:y + size, x:x + size].double()
        out[i] = (rng.uniform(20, 90) + crop * rng.uniform(0.2, 0.5)).clamp(0, 255).to(torch.uint8)
    return out


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_pil_method_equals_torchvision_equalize_on_photographs(name):
    image = PHOTOS[name]
    result = EqualizeHist(method="pil")(image)
    assert type(result) is torch.Tensor and result.dtype == torch.uint8
    assert torch.equal(result, F.equalize(image))
    assert not torch.equal(result, image)  # it did equalize


def test_colour_channels_are_equalized_independently_as_torchvision_does():
    image = PHOTOS["astronaut"]
    result = EqualizeHist(method="pil")(image)
    for c in range(3):
        assert torch.equal(result[c], F.equalize(image[c:c + 1])[0])
    assert torch.equal(result, F.equalize(image))


def test_batched_images_and_video_equal_torchvision():
    batch = _crops(6)
    transform = EqualizeHist(method="pil")
    assert torch.equal(transform(batch), F.equalize(batch))
    image = tv_tensors.Image(batch[0])
    result = transform(image)
    assert isinstance(result, tv_tensors.Image) and torch.equal(result, F.equalize(image))
    video = tv_tensors.Video(batch.reshape(2, 3, 3, 96, 96))  # (N, T, C, H, W)
    result = transform(video)
    assert isinstance(result, tv_tensors.Video) and result.shape == video.shape
    assert torch.equal(result, F.equalize(video))


def test_default_method_equals_the_function_on_numpy():
    batch = _crops(4)
    assert torch.equal(EqualizeHist()(batch), torch.from_numpy(gpu_histeq.equalize_hist(batch.numpy())))
    floats = batch.float() / 255
    result = EqualizeHist(nbins=64)(floats)
    assert result.dtype == torch.float32
    expected = gpu_histeq.equalize_hist(floats.numpy(), 64)
    np.testing.assert_array_equal(result.numpy(), expected)
    from skimage import exposure
    np.testing.assert_array_equal(result[1, 2].numpy(), exposure.equalize_hist(floats[1, 2].numpy(), 64))


def test_in_compose_with_other_v2_transforms():
    photo = PHOTOS["coffee"].permute(1, 2, 0).numpy()  # HWC, as a dataset delivers it
    ours = v2.Compose([v2.ToImage(), v2.CenterCrop(256), v2.RandomHorizontalFlip(p=1.0),
                       EqualizeHist(method="pil"), v2.ToDtype(torch.float32, scale=True)])
    theirs = v2.Compose([v2.ToImage(), v2.CenterCrop(256), v2.RandomHorizontalFlip(p=1.0),
                         v2.RandomEqualize(p=1.0), v2.ToDtype(torch.float32, scale=True)])
    result = ours(photo)
    assert isinstance(result, tv_tensors.Image) and result.dtype == torch.float32
    assert result.shape == (3, 256, 256)
    assert torch.equal(result, theirs(photo))


def test_labels_boxes_and_masks_pass_through_unchanged():
    image = tv_tensors.Image(_crops(1)[0])
    boxes = tv_tensors.BoundingBoxes([[1, 2, 30, 40]], format="XYXY", canvas_size=(96, 96))
    mask = tv_tensors.Mask(torch.zeros(96, 96, dtype=torch.uint8))
    scores = torch.tensor([0.5])  # a pure tensor beside an explicit image: not an image
    sample = {"image": image, "boxes": boxes, "masks": mask, "label": 7, "scores": scores}
    out = v2.Compose([EqualizeHist(method="pil")])(sample)
    assert torch.equal(out["image"], F.equalize(image)) and isinstance(out["image"], tv_tensors.Image)
    for key in ("boxes", "masks", "label", "scores"):
        assert out[key] is sample[key]
    image_out, label_out = EqualizeHist()(image, 3)  # (image, label) tuples too
    assert label_out == 3 and isinstance(image_out, tv_tensors.Image)


def test_a_pure_tensor_alone_is_the_image():
    batch = _crops(2)
    out, target = EqualizeHist(method="pil")(batch, torch.tensor([1, 2]))
    assert torch.equal(out, F.equalize(batch)) and torch.equal(target, torch.tensor([1, 2]))


def test_clahe_equals_opencv_per_channel():
    cv2 = pytest.importorskip("cv2")
    batch = _crops(3)
    result = CLAHE(clip_limit=2.0, tile_grid=(4, 4))(tv_tensors.Image(batch))
    assert isinstance(result, tv_tensors.Image) and result.dtype == torch.uint8
    clahe = cv2.createCLAHE(2.0, (4, 4))
    expected = np.stack([[clahe.apply(plane) for plane in image] for image in batch.numpy()])
    np.testing.assert_array_equal(result.numpy(), expected)


def test_match_histograms_equals_scikit_image():
    from skimage import exposure
    batch = _crops(3)
    reference = PHOTOS["chelsea"][:, :120, :150]
    shared = MatchHistograms(reference[0].numpy())(batch)  # one 2-D reference for every plane
    expected = np.stack([[exposure.match_histograms(p, reference[0].numpy()) for p in image]
                         for image in batch.numpy()])
    assert shared.dtype == torch.float64
    np.testing.assert_array_equal(shared.numpy(), expected)
    per_channel = MatchHistograms(reference)(tv_tensors.Image(batch[0]))
    expected = exposure.match_histograms(batch[0].numpy(), reference.numpy(), channel_axis=0)
    assert isinstance(per_channel, tv_tensors.Image)
    np.testing.assert_array_equal(per_channel.numpy(), expected)
    with pytest.raises(ValueError, match="`reference` has 3 channels"):
        MatchHistograms(reference)(batch[:, :1])


def test_mask_and_luminance_are_passed_to_the_function():
    batch = _crops(2)
    mask = torch.zeros(96, 96, dtype=torch.bool)
    mask[20:70, 10:80] = True
    result = EqualizeHist(method="pil", mask=mask)(batch)
    expected = gpu_histeq.equalize_hist(batch.numpy(), method="pil", mask=mask.numpy())
    np.testing.assert_array_equal(result.numpy(), expected)
    assert not torch.equal(result, F.equalize(batch))
    luma = EqualizeHist(luminance=True)(batch)
    expected = gpu_histeq.equalize_hist(batch.numpy(), channel_axis=-3, luminance=True)
    np.testing.assert_array_equal(luma.numpy(), expected)


def test_dataloader_pipeline_and_batch_after_collate_agree():
    batch = _crops(8)

    class Crops(torch.utils.data.Dataset):
        def __init__(self, transform=None):
            self.transform = transform

        def __len__(self):
            return len(batch)

        def __getitem__(self, index):
            image, label = tv_tensors.Image(batch[index]), index % 2
            return (image, label) if self.transform is None else self.transform(image, label)

    per_sample = torch.utils.data.DataLoader(Crops(EqualizeHist(method="pil")), batch_size=4)
    after_collate = torch.utils.data.DataLoader(Crops(), batch_size=4)
    equalize = EqualizeHist(method="pil")
    for (images, labels), (raw, raw_labels) in zip(per_sample, after_collate):
        assert torch.equal(images, equalize(raw)) and torch.equal(labels, raw_labels)


def test_transforms_pickle_for_dataloader_workers():
    transform = MatchHistograms(PHOTOS["camera"][0, :64, :64])
    copy = pickle.loads(pickle.dumps(transform))
    assert type(copy) is MatchHistograms
    batch = _crops(2, channels=1)
    assert torch.equal(copy(batch), transform(batch))
    assert pickle.loads(pickle.dumps(EqualizeHist(32, method="skimage"))).nbins == 32


def test_narrow_images_are_planes_without_a_colour_warning():
    thin = _crops(2)[..., :3]  # (2, 3, 96, 3): W = 3 is a width here, not channels
    result = EqualizeHist(method="pil")(thin)  # warnings are errors in this test suite
    assert torch.equal(result, F.equalize(thin))
    assert CLAHE(tile_grid=(1, 4))(thin).shape == thin.shape
    assert MatchHistograms(thin[0, 0])(thin).shape == thin.shape


def test_empty_and_zero_size_tensors():
    empty = torch.zeros((0, 3, 8, 8), dtype=torch.uint8)
    assert EqualizeHist()(empty).shape == (0, 3, 8, 8)
    assert EqualizeHist(method="pil")(torch.zeros((2, 3, 0, 8), dtype=torch.uint8)).shape == (2, 3, 0, 8)


def test_pil_images_are_transformed_and_stay_pil_images():
    from PIL import Image
    photo = Image.fromarray(PHOTOS["astronaut"].permute(1, 2, 0).numpy())
    result = EqualizeHist(method="pil")(photo)
    assert isinstance(result, Image.Image) and result.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(result), np.asarray(F.equalize(photo)))
    with pytest.raises(TypeError, match="PILToImage"):  # float results do not fit a PIL image
        EqualizeHist(method="skimage")(photo)


@pytest.mark.parametrize("make, error, match", [
    (lambda: EqualizeHist(0), ValueError, "`nbins` must be a positive integer, got 0"),
    (lambda: EqualizeHist(2.5), TypeError, "`nbins` must be a positive integer, got 2.5"),
    (lambda: EqualizeHist(True), TypeError, "`nbins` must be a positive integer, got True"),
    (lambda: EqualizeHist(method="cv2"), ValueError, "`method` must be None or one of"),
    (lambda: EqualizeHist(method=1), TypeError, "`method` must be None or one of"),
    (lambda: EqualizeHist(luminance="yes"), TypeError, "`luminance` must be a bool, got 'yes'"),
    (lambda: EqualizeHist(mask=np.ones((4, 4))), TypeError, "`mask` must have bool dtype"),
    (lambda: EqualizeHist(mask=[[True]]), TypeError, "`mask` must be a torch.Tensor or a numpy"),
    (lambda: CLAHE(-1.0), ValueError, "`clip_limit` must be a finite number >= 0, got -1.0"),
    (lambda: CLAHE(float("nan")), ValueError, "`clip_limit` must be a finite number >= 0"),
    (lambda: CLAHE("2"), TypeError, "`clip_limit` must be a real number >= 0, got '2'"),
    (lambda: CLAHE(tile_grid=(8,)), ValueError, r"`tile_grid` must be two positive integers"),
    (lambda: CLAHE(tile_grid=(0, 8)), ValueError, r"`tile_grid` entries must be >= 1, got \(0, 8\)"),
    (lambda: CLAHE(tile_grid=(8.0, 8)), TypeError, "`tile_grid` entries must be integers"),
    (lambda: MatchHistograms([[1, 2]]), TypeError, "`reference` must be a torch.Tensor or a numpy"),
    (lambda: MatchHistograms(np.zeros((2, 2, 2, 2))), ValueError,
     r"`reference` must have 2 or 3 dimensions, got shape \(2, 2, 2, 2\)"),
    (lambda: MatchHistograms(torch.zeros((0, 5))), ValueError, "`reference` must not be empty"),
    (lambda: MatchHistograms(torch.zeros((2, 2), dtype=torch.complex64)), TypeError,
     "`reference` must have an integer or real floating dtype, got torch.complex64"),
])
def test_bad_arguments_are_refused_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_wrong_images_raise_the_functions_errors():
    with pytest.raises(TypeError):  # CLAHE: uint8/uint16 only
        CLAHE()(torch.rand(1, 8, 8))
    with pytest.raises(TypeError):  # method="pil" on floats
        EqualizeHist(method="pil")(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        EqualizeHist()(torch.zeros(5, dtype=torch.uint8))


def _cuda_or_reason():
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        import cupy  # noqa: F401
    except ImportError as error:
        return f"CuPy is not importable ({error})"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_or_reason() is not None, reason=str(_cuda_or_reason()))
def test_cuda_batches_stay_on_the_device_and_equal_torchvision():
    batch = _crops(6).cuda()
    result = v2.Compose([EqualizeHist(method="pil")])(tv_tensors.Image(batch))
    assert result.device == batch.device and isinstance(result, tv_tensors.Image)
    assert torch.equal(result, F.equalize(batch))
    reference = PHOTOS["coffee"][:, :64, :64]
    matched = MatchHistograms(reference)(batch)
    assert matched.device == batch.device
    np.testing.assert_array_equal(matched.cpu().numpy(), MatchHistograms(reference)(batch.cpu()).numpy())
