"""TFLite conversion of every model, run in the LiteRT interpreter."""

import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils
from test_case import IMAGE_ONLY_NAMES, check_picks_differ_only_at_near_ties

from aekeras import data, tflite
from aekeras.choices import CALIBRATED
from aekeras.serving import LocalServer, ServingError
from aekeras.signatures import Contract

NAMES = IMAGE_ONLY_NAMES


@pytest.fixture(scope="module")
def calibration(mnist_dir):
    return tflite.calibration_images("mnist", 200, data_dir=mnist_dir)


@pytest.fixture(scope="module")
def converted(exported_models, calibration):
    """name -> {quantization: Runner}, converted once for the module."""
    _, exported = exported_models
    return {
        name: {
            q: tflite.Runner(tflite.convert(path, q, images=calibration if q in CALIBRATED else None))
            for q in tflite.QUANTIZATIONS
        }
        for name, (_, path) in exported.items()
        if name in NAMES
    }


def keras_reconstruction(model, images):
    spec = model.image_spec
    return spec.to_unit_scale(model(spec.to_model_scale(images)).numpy())


@pytest.mark.parametrize("name", NAMES)
def test_float32_matches_keras(exported_models, converted, digits, name):
    model, path = exported_models[1][name]
    runner = converted[name]["none"]
    assert runner.path == path / f"{name}-none.tflite"
    assert set(runner.signatures) == set(LocalServer(path).model.signatures)
    out = runner("serving_default", images=digits[:32])
    np.testing.assert_allclose(out["reconstruction"], keras_reconstruction(model, digits[:32]), atol=1e-5)
    latent = runner("encode", images=digits[:32])["latent"]
    np.testing.assert_allclose(latent, model.encode(model.image_spec.to_model_scale(digits[:32])), atol=1e-5)
    np.testing.assert_allclose(runner("decode", latent=latent)["images"], out["reconstruction"], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_float16_and_dynamic_stay_close(exported_models, converted, digits, name):
    model, _ = exported_models[1][name]
    expected = keras_reconstruction(model, digits[:256])
    float16 = converted[name]["float16"]("serving_default", images=digits[:256])["reconstruction"]
    np.testing.assert_allclose(float16, expected, atol=1e-2)
    # Dynamic-range kernels quantise activations on the fly: single pixels
    # move by up to a few hundredths (README, "TFLite"), the mean far less.
    dynamic = converted[name]["dynamic"]("serving_default", images=digits[:256])["reconstruction"]
    assert np.mean(np.abs(dynamic - expected)) < 1e-2
    assert np.max(np.abs(dynamic - expected)) < 0.1


@pytest.mark.parametrize("name", NAMES)
def test_int8_mse_within_ten_percent_of_float(converted, digits, name):
    float_mse = converted[name]["none"].reconstruction_mse(digits)
    int8_mse = converted[name]["int8"].reconstruction_mse(digits)
    assert int8_mse <= 1.10 * float_mse
    sizes = {q: r.path.stat().st_size for q, r in converted[name].items()}
    assert sizes["dynamic"] < sizes["none"] and sizes["int8"] < sizes["none"]


@pytest.mark.parametrize("name", NAMES)
def test_int16x8_is_closer_than_int8_in_every_signature(exported_models, converted, digits, name):
    # The TFLite converter's own 16x8 mode put latents 1.7 away from the
    # SavedModel's wherever two signatures share weights; without the
    # widened ranges a conv model's latents clipped by 0.3 on test images
    # past the calibrated maximum.
    path = exported_models[1][name][1]
    int16x8 = tflite.max_differences(converted[name]["int16x8"].path, digits)
    int8 = tflite.max_differences(converted[name]["int8"].path, digits)
    assert {"serving_default", "encode", "decode"} <= set(int16x8) and "sample" not in int16x8
    if name == "vqvae":
        # Images whose codebook picks flipped are counted, not compared, and int8 activations flip
        # so many that few images are left to compare; int16x8 flips fewer.
        assert int16x8.picks_differ < int8.picks_differ, (int16x8.picks_differ, int8.picks_differ)
    for signature, outputs in int16x8.items():
        if name == "vqvae" and signature in ("encode", "serving_default"):
            continue
        for output, difference in outputs.items():
            assert difference < int8[signature][output] and difference < 0.1, (signature, output, difference)
    runner = converted[name]["int16x8"]
    assert runner.contract == converted[name]["none"].contract  # float32 in and out, like every mode
    # Per-channel scales and 64-bit biases cost about 60 KiB whatever the
    # model: only where the weights dominate is the file under 60% of float's.
    float_size = converted[name]["none"].path.stat().st_size
    assert runner.path.stat().st_size < (0.6 if float_size > 1e6 else 1.0) * float_size
    assert runner.path == path / f"{name}-int16x8.tflite"


def test_vqvae_indices_survive_conversion(exported_models, converted, digits):
    model, path = exported_models[1]["vqvae"]
    saved_picks = LocalServer(path).model.signatures["encode"](images=tf.constant(digits))["indices"].numpy()
    expected = converted["vqvae"]["none"]("encode", images=digits)["indices"]
    assert expected.dtype == np.int32 and expected.shape == (len(digits), 7, 7)
    # The float file sums its distances in another order than TensorFlow:
    # it may pick the other of two vectors tied up to rounding, and no other.
    assert check_picks_differ_only_at_near_ties(model, digits, expected, saved_picks) <= 1e-3
    agreement = {}
    for quantize, runner in converted["vqvae"].items():
        agreement[quantize] = np.mean(runner("encode", images=digits)["indices"] == expected)
        images = runner("decode_indices", indices=expected)["images"]
        reference = converted["vqvae"]["none"]("decode_indices", indices=expected)["images"]
        assert np.max(np.abs(images - reference)) < 0.3
    # Quantised distances may flip a position between two near-equal
    # codebook vectors. Measured on a one-epoch model: float16 99.93%,
    # int16x8 99.07%, dynamic 93.5% (its activations are quantised to 8
    # bits as it runs) and int8 57% (with a collapsed codebook, when the VQ
    # term was summed: dynamic 99.5%, int8 54-73%). 8-bit activations are
    # too coarse for nearest-vector search, which README's advice (int16x8)
    # rests on.
    agreement = {q: round(float(a), 4) for q, a in agreement.items()}
    assert agreement["float16"] >= 0.98 and agreement["int16x8"] >= 0.98, agreement
    assert agreement["dynamic"] >= 0.9, agreement
    assert agreement["int8"] < agreement["int16x8"], agreement


def test_int16x8_keeps_the_dense_models_pixels_within_a_hundredth(converted, digits):
    differences = tflite.max_differences(converted["dense"]["int16x8"].path, digits)
    assert differences["serving_default"]["reconstruction"] < 1e-2 and differences["decode"]["images"] < 1e-2


def test_vae_sample_runs_in_litert(converted):
    for q in ("none", "int8", "int16x8"):
        runner = converted["vae"][q]
        first = runner("sample", num_samples=np.array(4, np.int32))["images"]
        second = runner("sample", num_samples=np.array(4, np.int32))["images"]
        assert first.shape == (4, 28, 28, 1) and not np.array_equal(first, second)
        assert 0 <= first.min() and first.max() <= 1


def _sample_draws(path):
    """The random ops' `RandomOptions` and the range (one side) of int16 values their draws are quantized to."""
    model = flatbuffer_utils.read_model(str(path))
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            if isinstance(operator.builtinOptions, schema.RandomOptionsT):
                (draws,) = operator.outputs
                quantize = next(op for op in subgraph.operators if draws in op.inputs)
                scale = subgraph.tensors[quantize.outputs[0]].quantization.scale[0]
                yield operator.builtinOptions, scale * np.iinfo(np.int16).max


def test_vae_int16x8_calibrates_sample_alike_on_as_many_draws_as_images(
    exported_models, converted, calibration
):
    # LiteRT seeded `sample`'s calibration draws afresh, so each conversion
    # of one export gave its own ranges and file; now the same file.
    path = converted["vae"]["int16x8"].path
    before = path.read_bytes()
    assert tflite.convert(exported_models[1]["vae"][1], "int16x8", images=calibration).read_bytes() == before
    # A prior code drawn per calibration image (200 codes, 800 values): at
    # one code per batch of 64 (3 codes, 12 values), draws beyond about 2
    # standard deviations were clipped. The file's op draws afresh (no
    # seed), as the SavedModel's does.
    ((options, reach),) = _sample_draws(path)
    assert options.seed == options.seed2 == 0 and reach > 3


def test_bad_arguments(exported_models, converted, tmp_path):
    _, exported = exported_models
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        tflite.convert(exported["dense"][1], "int4")
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        tflite.convert(tmp_path, "none")
    runner = tflite.Runner(tflite.tflite_path(exported["dense"][1], "none"))
    with pytest.raises(ValueError, match="unknown signature 'sample'"):
        runner("sample", num_samples=np.array(1, np.int32))
    for quantize in CALIBRATED:
        with pytest.raises(ValueError, match=f"{quantize} quantisation needs calibration images"):
            tflite.convert(exported["dense"][1], quantize)


def test_every_calibration_image_and_label_is_checked(exported_models, converted, calibration, digits):
    """One bad image after a good first one would skew the calibrated ranges without a word."""
    _, exported = exported_models
    pixels = calibration[:8].copy()
    pixels[1:] *= 255
    written = tflite.tflite_path(exported["dense"][1], "int8")
    before = written.stat().st_mtime_ns if written.exists() else None
    with pytest.raises(ServingError, match=r"expects images on \[0, 1\]; got values from 0 to 255"):
        tflite.convert(exported["dense"][1], "int8", images=pixels)
    assert (written.stat().st_mtime_ns if written.exists() else None) == before  # nothing written
    unknown_class = np.array([3] * 7 + [10])
    with pytest.raises(ServingError, match="expects labels from 0 to 9; got values from 3 to 10"):
        tflite.convert(exported["cvae"][1], "int16x8", images=calibration[:8], labels=unknown_class)
    with pytest.raises(
        ServingError, match=r"expects images: float32 \[batch, 28, 28, 1\]; got images: float32 \[8, 28, 28\]"
    ):
        tflite.max_differences(tflite.tflite_path(exported["dense"][1], "none"), digits[:8, ..., 0])


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_runner_checks_every_call_against_the_file(converted, digits, quantize):
    # LiteRT itself resizes its inputs to whatever it gets: [1, 56, 28, 1]
    # would be taken as two images.
    runner = converted["dense"][quantize]
    assert runner.contract.signature("encode").inputs[0].shape == (None, 28, 28, 1)
    for wrong in (
        np.zeros((1, 56, 28, 1), np.float32),
        np.zeros((1, 28, 28), np.float32),
        np.zeros((1, 28, 28, 3), np.float32),
    ):
        with pytest.raises(
            ServingError, match=r"signature 'encode' expects images: float32 \[batch, 28, 28, 1\]"
        ):
            runner("encode", images=wrong)
    with pytest.raises(ServingError, match=r"expects images on \[0, 1\]"):
        runner("serving_default", images=digits[:2] * 255)
    with pytest.raises(ServingError, match=r"signature 'decode' expects latent: float32 \[batch, 16\]"):
        runner("decode", latent=np.zeros((2, 3), np.float32))
    # float64 images are sent as float32, as to TF Serving.
    assert runner("encode", images=digits[:2].astype(np.float64))["latent"].shape == (2, 16)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_pixels_in_litert_are_refused_by_the_runner(converted, digits, name):
    images = digits[:3].copy()
    images[1, 14, 14, 0] = np.nan
    images[2, 0, 0, 0] = np.inf
    for quantize, runner in converted[name].items():
        # Unchecked, the float files answer with non-finite scores, as the
        # SavedModel does; the calibrated files answer with plausible ones.
        raw = runner.interpreter.get_signature_runner("serving_default")(images=images)["score"]
        assert np.isfinite(raw[0])
        if quantize in CALIBRATED:
            assert np.isfinite(raw[1:]).all() and (raw[1:] < 1).all()
        else:
            assert not np.isfinite(raw[1:]).any()
        with pytest.raises(ServingError, match=r"got NaN or infinite values in images \(2 of 3 examples\)"):
            runner("serving_default", images=images)


def test_the_runner_says_whether_dynamic_range_quantized_any_weight(tmp_path, converted):
    """Kernels of fewer than 1,024 values stay float32: an 8x8 model's dynamic file is its float one."""
    from aekeras import export
    from aekeras.models import DenseAutoencoder

    version = export.saved_model(DenseAutoencoder(latent_dim=4, image_shape=(8, 8, 1)), tmp_path, "small")
    small = tflite.Runner(tflite.convert(version, "dynamic"))
    assert small.quantized_tensors() == 0
    assert small.path.stat().st_size == tflite.convert(version, "none").stat().st_size
    assert (
        converted["dense"]["dynamic"].quantized_tensors()
        > 0
        == converted["dense"]["none"].quantized_tensors()
    )


def test_int16x8_keeps_the_scores_mean_in_float(converted):
    """LiteRT's int16 MEAN sums in int32: on 256x256x3 images the sum wrapped, and an anomalous
    image scored -0.04 where the SavedModel said 0.22 (the wrap grows with the image's size)."""
    model = flatbuffer_utils.read_model(str(converted["dense"]["int16x8"].path))
    reductions = (schema.BuiltinOperator.MEAN, schema.BuiltinOperator.SUM)
    found = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) in reductions:
                found.append(subgraph.name)
                types = [subgraph.tensors[i].type for i in (op.inputs[0], *op.outputs)]
                assert types == [schema.TensorType.FLOAT32] * len(types), (subgraph.name, types)
    assert b"serving_default" in found  # the score's mean


def test_every_modes_contract_is_the_saved_models_and_a_shape_tells_contracts_apart(
    exported_models, converted
):
    """The files keep the SavedModel's inputs and outputs, in its order; equal names with other shapes are no match."""
    saved = LocalServer(exported_models[1]["dense"][1]).contract
    for quantize, runner in converted["dense"].items():
        assert runner.contract == saved, quantize
        assert [o.name for o in runner.contract.signature("serving_default").outputs] == [
            "reconstruction",
            "score",
        ]
    signature = saved.signature("serving_default")
    batch_of_one = dataclasses.replace(signature.outputs[1], shape=(1,))  # the quantizer's outputs, unmended
    other = Contract(
        {
            **saved.signatures,
            "serving_default": dataclasses.replace(signature, outputs=(signature.outputs[0], batch_of_one)),
        }
    )
    assert other != saved and other.differences(saved) == [
        "serving_default output score: float32 [1] -> score: float32 [batch]"
    ]


def test_max_differences_is_the_largest_absolute_difference_over_every_image(
    exported_models, converted, digits
):
    """Worked out directly on 1,000 digits in one call, against `max_differences` in batches of 300 (the last short)."""
    saved = LocalServer(exported_models[1]["dense"][1]).model.signatures
    images = digits[:1000]
    for quantize in ("int8", "dynamic"):
        runner = converted["dense"][quantize]
        latent = saved["encode"](images=images)["latent"].numpy()
        got = {
            "serving_default": (
                runner("serving_default", images=images),
                saved["serving_default"](images=images),
            ),
            "encode": (runner("encode", images=images), {"latent": latent}),
            "decode": (runner("decode", latent=latent), saved["decode"](latent=latent)),
        }
        expected = {
            name: {key: float(np.max(np.abs(mine[key] - np.asarray(theirs[key])))) for key in mine}
            for name, (mine, theirs) in got.items()
        }
        differences = tflite.max_differences(runner.path, images, batch_size=300)
        # Outputs move in their last bits with the batch's size (a runtime's matmuls block it
        # otherwise): the largest difference by 6e-8 where this test ran alone.
        assert differences.keys() == expected.keys()
        for name, outputs in expected.items():
            assert differences[name] == pytest.approx(outputs, rel=0, abs=1e-6), (quantize, name)
        assert all(value > 0 for outputs in expected.values() for value in outputs.values())


def test_float16_and_dynamic_files_hold_their_own_weight_types(converted):
    types = {
        q: {t["dtype"] for t in r.interpreter.get_tensor_details()} for q, r in converted["dense"].items()
    }
    assert np.float16 in types["float16"] and np.int8 not in types["float16"], types
    assert np.int8 in types["dynamic"] and np.float16 not in types["dynamic"], types
    assert np.float16 not in types["none"] and np.int8 not in types["none"], types


def test_calibration_uses_distinct_training_images_on_the_signatures_scale(
    exported_models, calibration, mnist_dir
):
    train = data.load_arrays("mnist", "train", data_dir=mnist_dir)[0]
    chosen = np.sort(np.random.default_rng(0).choice(len(train), 200, replace=False))
    np.testing.assert_array_equal(calibration, train[chosen])
    assert len(np.unique(calibration.reshape(200, -1), axis=0)) == 200
    other = tflite.calibration_images("mnist", 200, seed=1, data_dir=mnist_dir)
    assert not np.array_equal(other, calibration)
    # int16x8: every signature calibrated on the images themselves, and decode on their codes.
    saved_model = LocalServer(exported_models[1]["dense"][1]).model
    batches = tflite._calibration_batches(saved_model, calibration, None)
    np.testing.assert_array_equal(
        np.concatenate([b["images"] for b in batches["serving_default"]]), calibration
    )
    codes = saved_model.signatures["encode"](images=calibration)["latent"].numpy()
    np.testing.assert_allclose(np.concatenate([b["latent"] for b in batches["decode"]]), codes, atol=1e-6)


def test_int8_is_calibrated_on_the_images_themselves_and_decode_on_their_codes(exported_models, calibration):
    """The int8 converter sees the calibration images on the signatures' [0, 1] scale, one at a time.

    On another scale (0-255, or the model's own [-1, 1]) the input ranges
    are calibrated for images it never gets, and every conversion is
    quietly coarser; `convert` has already refused images off [0, 1].
    """
    saved_model = LocalServer(exported_models[1]["dense"][1]).model
    seen = {}
    for name, inputs in tflite._representative_dataset(saved_model, calibration[:20], None)():
        for key, value in inputs.items():
            seen.setdefault((name, key), []).append(np.asarray(value))
    assert set(seen) == {("serving_default", "images"), ("encode", "images"), ("decode", "latent")}
    for name in ("serving_default", "encode"):
        assert all(len(batch) == 1 for batch in seen[name, "images"])
        np.testing.assert_array_equal(np.concatenate(seen[name, "images"]), calibration[:20])
    codes = saved_model.signatures["encode"](images=calibration[:20])["latent"].numpy()
    np.testing.assert_allclose(np.concatenate(seen["decode", "latent"]), codes, atol=1e-5)


def _tensors(content):
    """Every tensor of a `.tflite` file as `(subgraph, name, type, shape, quantization, weights)`."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    described = []
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            table = tensor.quantization
            quantization = (
                None
                if table is None or table.scale is None
                else (tuple(table.scale), tuple(table.zeroPoint), table.quantizedDimension)
            )
            data = model.buffers[tensor.buffer].data
            weights = None if data is None else bytes(data)
            described.append(
                (subgraph.name, tensor.name, tensor.type, tuple(tensor.shape), quantization, weights)
            )
    return described


def _outputs(runner, digits):
    latent = runner("encode", images=digits)["latent"]
    return {
        **runner("serving_default", images=digits),
        "latent": latent,
        "images": runner("decode", latent=latent)["images"],
    }


def test_files_are_written_compactly_and_hold_the_converters_own_model(
    exported_models, converted, digits, tmp_path
):
    """Each vector, string and quantization table written once: the converter's file, tensor for tensor, smaller."""
    _, path = exported_models[1]["conv"]
    runner = converted["conv"]["none"]
    signature_keys = sorted(runner.signatures)
    own = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=signature_keys).convert()
    written = runner.path.read_bytes()
    assert _tensors(written) == _tensors(own)
    assert len(written) < 0.95 * len(own), (len(written), len(own))
    theirs = tmp_path / "theirs.tflite"
    theirs.write_bytes(own)
    expected = _outputs(tflite.Runner(theirs), digits[:64])
    for output, values in _outputs(runner, digits[:64]).items():
        np.testing.assert_array_equal(values, expected[output], err_msg=output)


def test_stripped_names_leave_the_model(exported_models, converted, calibration, digits, tmp_path):
    """--strip-names drops the inner tensors' names only: the same outputs, bit for bit, from a smaller file."""
    _, exported = exported_models[1]["conv"]
    version = shutil.copytree(exported, tmp_path / "1")
    for quantize in ("none", "int16x8"):
        images = calibration if quantize in CALIBRATED else None
        stripped = tflite.Runner(tflite.convert(version, quantize, images=images, strip_names=True))
        named = converted["conv"][quantize]
        assert stripped.contract == named.contract
        tensors = _tensors(stripped.path.read_bytes())
        kept = sum(len(d["inputs"]) + len(d["outputs"]) for d in stripped.signatures.values())
        assert sum(name is not None for _, name, *_ in tensors) == kept < len(tensors)
        assert [rest for _, _, *rest in tensors] == [
            rest for _, _, *rest in _tensors(named.path.read_bytes())
        ]
        expected = _outputs(named, digits[:64])
        for output, values in _outputs(stripped, digits[:64]).items():
            np.testing.assert_array_equal(values, expected[output], err_msg=f"{quantize} {output}")
        assert stripped.path.stat().st_size < 0.85 * named.path.stat().st_size, quantize


def test_the_lessons_conv_models_stripped_int16x8_file_is_at_most_sixty_percent_of_its_float_one(
    mnist_dir, calibration, tmp_path
):
    """The issue's size target, for the model furthest from it: the lesson's conv model (README's), whose
    4,385 weights weigh less than its graph."""
    import keras

    from aekeras import export, registry

    model = registry.build_model("conv", None, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(
        data.load("mnist", "train", limit=1024, batch_size=128, data_dir=mnist_dir), epochs=1, verbose=0
    )
    version = export.saved_model(model, tmp_path, "conv")
    assert model.count_params() == 4385
    sizes = {
        quantize: tflite.convert(version, quantize, images=calibration, strip_names=True).stat().st_size
        for quantize in ("none", "int16x8")
    }
    assert sizes["int16x8"] <= 0.6 * sizes["none"], sizes


def test_weights_after_the_flatbuffer_stay_there_in_a_compact_file(converted, digits):
    """The converter's layout for models of 2 GiB or more, made here of a small one: one weight buffer stored
    after the flatbuffer, where a flatbuffer cannot hold it. Written compactly (and stripped), it stays there."""
    from ai_edge_litert.interpreter import Interpreter

    from aekeras.tflite_files import compact

    model = flatbuffer_utils.convert_bytearray_to_object(
        bytearray(converted["conv"]["none"].path.read_bytes())
    )
    largest = max(model.buffers, key=lambda buffer: 0 if buffer.data is None else len(buffer.data))
    weights = bytes(largest.data)
    largest.data, largest.offset, largest.size = None, 2, len(weights)  # 2: any offset past the header
    head = flatbuffer_utils.convert_object_to_bytearray(model)
    largest.offset = len(head)  # the same length with the real offset: the field is written either way
    content = flatbuffer_utils.convert_object_to_bytearray(model) + weights
    assert len(content) == len(head) + len(weights)
    expected = converted["conv"]["none"]("serving_default", images=digits[:8])["reconstruction"]
    for written in (content, compact(content), compact(content, strip_names=True)):
        outside = [
            b
            for b in flatbuffer_utils.convert_bytearray_to_object(bytearray(written)).buffers
            if b.offset > 1
        ]
        assert [(b.size, written[b.offset : b.offset + b.size]) for b in outside] == [(len(weights), weights)]
        litert = Interpreter(model_content=written).get_signature_runner("serving_default")
        np.testing.assert_array_equal(litert(images=digits[:8])["reconstruction"], expected)
    assert len(compact(content, strip_names=True)) < len(compact(content)) < 0.95 * len(content)
