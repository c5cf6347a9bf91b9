"""torch tensors (and JAX arrays, where installed) in, the same type out, through DLPack.

CI runs these with torch on the CPU; a CUDA tensor takes the CuPy path of the same code.
"""

import numpy as np
import pytest

import gpu_histeq as gh

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(11)
FACES = RNG.integers(60, 120, (5, 1, 16, 12), dtype=np.uint8)
FLOATS = RNG.normal(size=(4, 3, 10, 9)).astype(np.float32)


@pytest.mark.parametrize("images, kwargs", [
    (FACES, {}),
    (FACES, {"method": "pil"}),
    (FACES, {"method": "skimage", "axes": (0, 2, 3)}),
    (FLOATS, {"mask": FLOATS[0, 0] > 0}),
    (FLOATS.astype(np.float64), {"axes": (1, 2)}),
    (RNG.integers(0, 4000, (3, 8, 8), dtype=np.uint16), {}),
])
def test_equalize_tensor_matches_numpy(images, kwargs):
    tensor = torch.from_numpy(images.copy())
    torch_kwargs = {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray)
                    else v for k, v in kwargs.items()}
    result = gh.equalize_hist(tensor, **torch_kwargs)
    expected = gh.equalize_hist(images, **kwargs)
    assert isinstance(result, torch.Tensor) and result.device == tensor.device
    assert result.dtype == torch.from_numpy(expected).dtype
    np.testing.assert_array_equal(result.numpy(), expected)
    np.testing.assert_array_equal(tensor.numpy(), images)  # input untouched


def test_cpu_tensors_cross_as_views():
    tensor = torch.from_numpy(FACES.copy())
    out = torch.empty_like(tensor)
    returned = gh.equalize_hist(tensor, out=out)
    assert returned is out  # written in place through a NumPy view of its memory
    np.testing.assert_array_equal(out.numpy(), gh.equalize_hist(FACES))
    from gpu_histeq._interop.tensors import from_array, to_array

    view = to_array(tensor)
    assert isinstance(view, np.ndarray) and np.shares_memory(view, tensor.numpy())
    back = from_array(view, tensor)
    assert back.data_ptr() == tensor.data_ptr()  # and back again without a copy


def test_strided_and_grad_tensors():
    base = torch.from_numpy(FLOATS.copy()).requires_grad_(True)
    view = base.transpose(2, 3)[:, ::2]  # non-contiguous, needs no copy to be read
    result = gh.equalize_hist(view)
    assert not result.requires_grad
    np.testing.assert_array_equal(
        result.numpy(), gh.equalize_hist(FLOATS.transpose(0, 1, 3, 2)[:, ::2]))


def test_histogram_cdf_and_lut_return_tensors():
    tensor = torch.from_numpy(FACES)
    counts, centers = gh.histogram(tensor)
    ref_counts, ref_centers = gh.histogram(FACES)
    assert isinstance(counts, torch.Tensor) and isinstance(centers, torch.Tensor)
    np.testing.assert_array_equal(counts.numpy(), ref_counts)
    np.testing.assert_array_equal(centers.numpy(), ref_centers)
    cdf, _ = gh.cumulative_distribution(tensor)
    np.testing.assert_array_equal(cdf.numpy(), gh.cumulative_distribution(FACES)[0])
    lut = torch.arange(256, dtype=torch.int64).flip(0)
    mapped = gh.apply_lut(tensor, lut)
    assert isinstance(mapped, torch.Tensor)
    np.testing.assert_array_equal(mapped.numpy(), 255 - FACES.astype(np.int64))


def test_errors_are_the_numpy_errors():
    with pytest.raises(ValueError, match="`axes`"):
        gh.equalize_hist(torch.from_numpy(FACES), axes=(7,))
    with pytest.raises(TypeError, match="bfloat16"):
        gh.equalize_hist(torch.zeros((2, 4, 4), dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="`method='opencv'`"):
        gh.equalize_hist(torch.zeros((2, 4, 4)), method="opencv")


def test_jax_arrays_round_trip():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    images = jnp.asarray(FACES)
    result = gh.equalize_hist(images)
    assert isinstance(result, jax.Array)
    assert result.devices() == images.devices()
    np.testing.assert_array_equal(np.asarray(result), gh.equalize_hist(FACES))
    counts, _ = gh.histogram(jnp.asarray(FLOATS))
    np.testing.assert_array_equal(np.asarray(counts), gh.histogram(FLOATS)[0])
    with pytest.raises(TypeError, match="JAX arrays are immutable"):
        gh.equalize_hist(images, out=jnp.zeros_like(images))


@pytest.mark.gpu
def test_cuda_tensors_stay_on_their_device():
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    pytest.importorskip("cupy")
    tensor = torch.from_numpy(FACES).cuda()
    result = gh.equalize_hist(tensor)
    assert result.device == tensor.device
    np.testing.assert_array_equal(result.cpu().numpy(), gh.equalize_hist(FACES))


def test_clahe_and_matching_through_the_adapter():
    """The tensor adapter serves CLAHE and matching too (their public functions route here once
    their modules have the two-line hook)."""
    from gpu_histeq import adaptive, matching
    from gpu_histeq._interop import tensors as _tensors

    if not hasattr(gh, "clahe") or not hasattr(gh, "match_histograms"):
        pytest.skip("no CLAHE / matching in this gpu_histeq")
    tensor = torch.from_numpy(FACES)
    result = _tensors.call(adaptive.clahe, tensor, 2.0, (2, 2))
    assert isinstance(result, torch.Tensor)
    np.testing.assert_array_equal(result.numpy(), gh.clahe(FACES, 2.0, (2, 2)))
    matched = _tensors.call(matching.match_histograms, tensor, torch.from_numpy(FACES[0, 0]))
    np.testing.assert_array_equal(matched.numpy(), gh.match_histograms(FACES, FACES[0, 0]))
