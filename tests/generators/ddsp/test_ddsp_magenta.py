"""Magenta DDSP interop.

Without TensorFlow: the gin reader, and the weight mapping checked against a NumPy re-implementation of
Magenta's RnnFcDecoder forward (Keras Dense/LayerNorm/GRU semantics) on stand-in layer objects.
With Magenta's ``ddsp`` importable (the ``ddsp-magenta`` extra): parity of our synths with ddsp's
Harmonic and FilteredNoise on the same controls, and conversion of a tiny TF checkpoint made here.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cadenza.generators.ddsp import core
from cadenza.generators.ddsp.magenta import config_from_gin, read_gin_bindings, state_from_keras
from cadenza.generators.ddsp.model import DDSPDecoder, DecoderConfig, controls_from_outputs

GIN = """
# Parameters for RnnFcDecoder:
# ==============================================================================
RnnFcDecoder.ch = 8
RnnFcDecoder.input_keys = ('ld_scaled', 'f0_scaled')
RnnFcDecoder.layers_per_stack = 2
RnnFcDecoder.output_splits = \\
    (('amps', 1), ('harmonic_distribution', 5), ('noise_magnitudes', 7))
RnnFcDecoder.rnn_channels = 6
RnnFcDecoder.rnn_type = 'gru'
Autoencoder.decoder = @decoders.RnnFcDecoder()
Harmonic.n_samples = 64000
Harmonic.sample_rate = 16000
F0LoudnessPreprocessor.time_steps = 1000
ProcessorGroup.dag = [(@synths.Harmonic(), ['amps', 'harmonic_distribution', 'f0_hz']),
                      (@effects.TrainableReverb(), ['add/signal'])]
TrainableReverb.reverb_length = 160
"""


def test_gin_bindings_to_config(tmp_path):
    path = tmp_path / "operative_config-0.gin"
    path.write_text(GIN)
    bindings = read_gin_bindings(path)
    assert bindings["RnnFcDecoder.output_splits"][1] == ("harmonic_distribution", 5)
    assert bindings["Autoencoder.decoder"] == "@decoders.RnnFcDecoder()"
    config = config_from_gin(bindings)
    assert (config.hidden, config.gru, config.mlp_layers, config.n_harmonics, config.n_noise) == (8, 6, 2, 5, 7)
    assert config.hop == 64 and config.reverb_s == pytest.approx(0.01) and config.layer_norm_eps == 1e-3


# ---- a NumPy Magenta decoder on Keras-shaped weights ------------------------------------------------
def _dense(rng, n_in, n_out):
    return SimpleNamespace(kernel=SimpleNamespace(numpy=lambda k=rng.normal(0, 0.5, (n_in, n_out)): k),
                           bias=SimpleNamespace(numpy=lambda b=rng.normal(0, 0.1, n_out): b))


def _norm(rng, n):
    return SimpleNamespace(gamma=SimpleNamespace(numpy=lambda g=1 + rng.normal(0, 0.1, n): g),
                           beta=SimpleNamespace(numpy=lambda b=rng.normal(0, 0.1, n): b))


def _stack(rng, n_in, ch, layers):
    return SimpleNamespace(layers=[SimpleNamespace(layers=[_dense(rng, n_in if i == 0 else ch, ch), _norm(rng, ch)])
                                   for i in range(layers)])


def _keras_decoder(config: DecoderConfig, seed: int = 0):
    rng = np.random.default_rng(seed)
    ch, h = config.hidden, config.gru
    weights = [rng.normal(0, 0.3, (2 * ch, 3 * h)), rng.normal(0, 0.3, (h, 3 * h)), rng.normal(0, 0.1, (2, 3 * h))]
    return SimpleNamespace(input_stacks=[_stack(rng, 1, ch, config.mlp_layers), _stack(rng, 1, ch, config.mlp_layers)],
                           rnn=SimpleNamespace(rnn=SimpleNamespace(get_weights=lambda: weights)),
                           out_stack=_stack(rng, 2 * ch + h, ch, config.mlp_layers),
                           dense_out=_dense(rng, ch, 1 + config.n_harmonics + config.n_noise))


def _run_stack(stack, x, eps=1e-3):
    for fc in stack.layers:
        dense, norm = fc.layers
        x = x @ dense.kernel.numpy() + dense.bias.numpy()
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * norm.gamma.numpy() + norm.beta.numpy()
        x = np.where(x > 0, x, 0.2 * x)  # tf.nn.leaky_relu
    return x


def _magenta_forward(decoder, ld_scaled, f0_scaled):
    """RnnFcDecoder.compute_output + dense_out, as Magenta writes it (Keras GRU, reset_after=True)."""
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    inputs = [_run_stack(decoder.input_stacks[0], ld_scaled), _run_stack(decoder.input_stacks[1], f0_scaled)]
    x = np.concatenate(inputs, -1)
    kernel, recurrent, bias = decoder.rnn.rnn.get_weights()
    h = np.zeros(recurrent.shape[0])
    n = recurrent.shape[0]
    outs = []
    for t in range(x.shape[0]):
        xi = x[t] @ kernel + bias[0]
        hi = h @ recurrent + bias[1]
        z = sigmoid(xi[:n] + hi[:n])
        r = sigmoid(xi[n:2 * n] + hi[n:2 * n])
        cand = np.tanh(xi[2 * n:] + r * hi[2 * n:])
        h = z * h + (1 - z) * cand
        outs.append(h)
    x = np.concatenate(inputs + [np.stack(outs)], -1)
    x = _run_stack(decoder.out_stack, x)
    return x @ decoder.dense_out.kernel.numpy() + decoder.dense_out.bias.numpy()


def test_weight_mapping_reproduces_magentas_forward():
    config = DecoderConfig(hop=64, n_harmonics=5, n_noise=7, hidden=8, gru=6, mlp_layers=2, layer_norm_eps=1e-3,
                           reverb_s=0.01)
    keras = _keras_decoder(config)
    ours = DDSPDecoder(config)
    ir = np.random.default_rng(1).normal(size=160)
    ours.load_state_dict(state_from_keras(keras, config, ir))
    assert float(ours.reverb_ir.detach()[0]) == 0.0 and float(ours.reverb_ir.detach()[1]) == pytest.approx(ir[1], rel=1e-6)
    f0 = torch.linspace(180, 400, 12)[None]
    ld = torch.linspace(-70, -20, 12)[None]
    expected = _magenta_forward(keras, (ld / 120 + 1).numpy()[0, :, None].astype(np.float64),
                                (core.hz_to_midi(f0) / 127).numpy()[0, :, None].astype(np.float64))
    ours_raw = []
    ours.out.register_forward_hook(lambda module, args, out: ours_raw.append(out))
    with torch.no_grad():
        controls, _ = ours(f0, ld)
    assert np.allclose(ours_raw[0][0].numpy(), expected, atol=1e-4)
    reference = controls_from_outputs(torch.from_numpy(expected).float()[None], f0, 5, 16000)
    assert torch.allclose(controls.harmonics, reference.harmonics, atol=1e-5)


# ---- with Magenta's ddsp installed --------------------------------------------------------------------
def magenta_ddsp():
    """Magenta's ``ddsp`` package, or skip. A bare ``import ddsp`` can find this test folder (a namespace
    package once pytest puts ``tests/generators`` on the path), so ask for what only Magenta's has."""
    ddsp = pytest.importorskip("ddsp")
    if not hasattr(ddsp, "synths"):
        pytest.skip("Magenta's ddsp is not installed (the ddsp-magenta extra)")
    return ddsp


def test_harmonic_synth_parity_with_magenta():
    ddsp = magenta_ddsp()
    frames, hop, k = 50, 64, 10
    n = (frames - 1) * hop + 1  # ddsp's linear resampling aligns first and last frames with the ends
    rng = np.random.default_rng(0)
    amps = rng.normal(size=(1, frames, 1)).astype(np.float32)
    dist = rng.normal(size=(1, frames, k)).astype(np.float32)
    f0 = np.linspace(200, 500, frames, dtype=np.float32)[None, :, None]
    synth = ddsp.synths.Harmonic(n_samples=n, sample_rate=16000, amp_resample_method="linear")
    theirs = synth(amps, dist, f0).numpy()[0]
    raw = torch.from_numpy(np.concatenate([amps, dist, np.zeros((1, frames, 3), np.float32)], -1))
    controls = controls_from_outputs(raw, torch.from_numpy(f0[..., 0]), k, 16000)
    ours, _ = core.harmonic_synthesis_frames(controls.f0_hz, controls.harmonics, hop, 16000)
    assert np.allclose(ours[0, :n].numpy(), theirs, atol=2e-3)


def test_filtered_noise_parity_with_magenta():
    ddsp = magenta_ddsp()
    rng = np.random.default_rng(0)
    mags = rng.uniform(0, 1, (1, 20, 65)).astype(np.float32)
    theirs = ddsp.core.frequency_impulse_response(mags, window_size=0).numpy()
    ours = core.frequency_impulse_response(torch.from_numpy(mags)).numpy()
    assert theirs.shape == ours.shape
    # the same filters: equal magnitude responses (each design's phase convention aside)
    assert np.allclose(np.abs(np.fft.rfft(theirs, 512)), np.abs(np.fft.rfft(ours, 512)), atol=0.05)
    noise = ddsp.synths.FilteredNoise(n_samples=20 * 160, scale_fn=None)(mags).numpy()[0]
    ours_noise = core.filtered_noise(torch.rand(1, 20, 160) * 2 - 1, torch.from_numpy(mags))[0, :20 * 160].numpy()
    spectrum = lambda x: np.abs(np.fft.rfft(x.reshape(-1, 320), axis=1)).mean(0)  # noqa: E731
    ratio = spectrum(ours_noise)[5:-5] / spectrum(noise)[5:-5]
    assert 0.7 < np.median(ratio) < 1.4


def test_convert_a_tiny_magenta_checkpoint(tmp_path):
    magenta_ddsp()
    import tensorflow as tf
    from ddsp.training import decoders

    from cadenza.generators.ddsp.export import load_instrument
    from cadenza.generators.ddsp.magenta import convert_checkpoint

    folder = tmp_path / "magenta"
    folder.mkdir()
    (folder / "operative_config-0.gin").write_text(GIN.replace("TrainableReverb.reverb_length = 160", ""))
    decoder = decoders.RnnFcDecoder(rnn_channels=6, rnn_type="gru", ch=8, layers_per_stack=2,
                                    input_keys=("ld_scaled", "f0_scaled"),
                                    output_splits=(("amps", 1), ("harmonic_distribution", 5), ("noise_magnitudes", 7)),
                                    name="decoder")
    module = tf.Module()
    module.decoder = decoder
    ld = np.linspace(0.3, 0.8, 12, dtype=np.float32)[None, :, None]
    f0 = np.linspace(0.4, 0.6, 12, dtype=np.float32)[None, :, None]
    theirs = decoder({"ld_scaled": ld, "f0_scaled": f0})
    tf.train.Checkpoint(model=module).save(str(folder / "ckpt"))
    spec = convert_checkpoint(folder, tmp_path / "ddsp-converted", "ddsp-converted")
    instrument = load_instrument(spec)
    f0_hz = core.midi_to_hz(torch.from_numpy(f0[..., 0]) * 127)
    with torch.no_grad():
        controls, _ = instrument.decoder(f0_hz, torch.from_numpy((ld[..., 0] - 1) * 120))
    amps = core.exp_sigmoid(torch.from_numpy(theirs["amps"].numpy()))
    assert torch.allclose(controls.harmonics.sum(-1, keepdim=True), amps, rtol=1e-3, atol=1e-5)


def test_conversion_without_tensorflow_says_what_to_install(tmp_path):
    import importlib.util

    from cadenza.app.cli import main

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed")
    assert main(["train", "ddsp", "--from-magenta", str(tmp_path), "--name", "x", "--export", str(tmp_path / "o")]) == 2
