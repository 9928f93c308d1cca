"""Convert Magenta DDSP solo-instrument models (TensorFlow checkpoint + operative gin, e.g. the Tone
Transfer models) into Cadenza DDSP checkpoints.

Needs Magenta's ``ddsp`` with TensorFlow (the ``ddsp-magenta`` extra, then ``pip install --no-deps
ddsp==3.7.0``; ~1.5 GB); nothing else in Cadenza imports TensorFlow. The decoder must be an
``RnnFcDecoder`` over ``('ld_scaled', 'f0_scaled')`` with a GRU, the synth harmonic + filtered noise
(+ trainable reverb), at 16 kHz. Weights map one to one; only the layout differs:

- Keras ``Dense`` kernels are ``[in, out]`` (ours ``[out, in]``); Keras' GRU gates are ordered
  (update, reset, new), PyTorch's (reset, update, new); both use ``reset_after`` (Keras' default).
- Magenta concatenates (loudness, f0) before the GRU and (loudness, f0, GRU) after it; ours (f0,
  loudness) and (GRU, f0, loudness): those weight rows are permuted.
- Keras' LayerNormalization epsilon (1e-3) is kept in the config; Magenta zeroes the reverb's first
  tap (the dry path is added separately), which is done here too.

Magenta's loudness statistics (``dataset_statistics.pkl``) are a pickle and are not read: the converted
model gets default statistics, so use ``--no-auto-adjust``-style options or pass ``stats``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cadenza.checkpoints import CheckpointSpec
from cadenza.errors import CheckpointError, MissingDependency
from cadenza.generators.ddsp.model import DDSPDecoder, DecoderConfig, InstrumentStats

INSTALL_HINT = ("converting Magenta DDSP checkpoints needs TensorFlow and Magenta's ddsp: "
                "pip install 'cadenza[ddsp-magenta]' && pip install --no-deps ddsp==3.7.0")


def read_gin_bindings(path: str | Path) -> dict[str, object]:
    """``Name.param = value`` bindings of a gin file (values parsed as Python literals where they are
    ones, else kept as text such as ``@decoders.RnnFcDecoder()``)."""
    bindings: dict[str, object] = {}
    statement, depth = "", 0
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not statement and (not line or line.startswith("#") or line.startswith("import") or line.startswith("include")):
            continue
        continued = line.endswith("\\")
        line = line.rstrip("\\")
        statement += " " + line
        depth += sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
        if depth > 0 or continued:
            continue
        match = re.match(r"\s*([\w./%]+)\s*=\s*(.+)$", statement)
        statement, depth = "", 0
        if not match:
            continue
        key, value = match.group(1), match.group(2).strip()
        try:
            bindings[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            bindings[key] = value
    return bindings


def config_from_gin(bindings: dict[str, object]) -> DecoderConfig:
    """Our decoder config for the model a Magenta gin file describes; CheckpointError if unsupported."""
    def get(name: str, default):
        for key, value in bindings.items():
            if key.split("/")[-1] == name:
                return value
        return default

    if get("RnnFcDecoder.rnn_type", "gru") != "gru":
        raise CheckpointError("only GRU decoders convert (RnnFcDecoder.rnn_type is not 'gru')")
    keys = tuple(get("RnnFcDecoder.input_keys", ("ld_scaled", "f0_scaled")))
    if keys != ("ld_scaled", "f0_scaled"):
        raise CheckpointError(f"only (loudness, f0) decoders convert; this one reads {keys}")
    splits = dict(get("RnnFcDecoder.output_splits", (("amps", 1), ("harmonic_distribution", 60), ("noise_magnitudes", 65))))
    sample_rate = int(get("Harmonic.sample_rate", get("Additive.sample_rate", 16000)))
    if sample_rate != 16000:
        raise CheckpointError(f"only 16 kHz models convert (this one is {sample_rate} Hz)")
    n_samples = int(get("Harmonic.n_samples", get("Additive.n_samples", 64000)))
    time_steps = int(get("F0LoudnessPreprocessor.time_steps", get("DefaultPreprocessor.time_steps", 1000)))
    uses_reverb = any("Reverb" in str(v) for v in bindings.values())
    reverb = int(get("TrainableReverb.reverb_length", 48000 if uses_reverb else 0))  # 48000: ddsp's default
    return DecoderConfig(sample_rate=sample_rate, hop=n_samples // time_steps,
                         n_harmonics=int(splits["harmonic_distribution"]), n_noise=int(splits["noise_magnitudes"]),
                         hidden=int(get("RnnFcDecoder.ch", 512)), gru=int(get("RnnFcDecoder.rnn_channels", 512)),
                         mlp_layers=int(get("RnnFcDecoder.layers_per_stack", 3)), reverb_s=reverb / sample_rate,
                         layer_norm_eps=1e-3)


def _gru_rows(w: np.ndarray, h: int) -> np.ndarray:
    """Keras gate blocks (z, r, n) along axis 0 -> PyTorch's (r, z, n)."""
    return np.concatenate([w[h:2 * h], w[:h], w[2 * h:]], axis=0)


def state_from_keras(decoder, config: DecoderConfig, reverb_ir: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Our state dict from a built Keras ``RnnFcDecoder`` (ddsp.training.decoders)."""
    state: dict[str, np.ndarray] = {}
    ch, h = config.hidden, config.gru

    def fc_stack(stack, prefix: str, first_rows: list[slice] | None = None) -> None:
        for j, fc in enumerate(stack.layers):
            dense, norm = fc.layers[0], fc.layers[1]
            kernel = dense.kernel.numpy()
            if j == 0 and first_rows is not None:
                kernel = np.concatenate([kernel[s] for s in first_rows], axis=0)
            state[f"{prefix}.{3 * j}.weight"] = kernel.T
            state[f"{prefix}.{3 * j}.bias"] = dense.bias.numpy()
            state[f"{prefix}.{3 * j + 1}.weight"] = norm.gamma.numpy()
            state[f"{prefix}.{3 * j + 1}.bias"] = norm.beta.numpy()

    loudness_stack, f0_stack = decoder.input_stacks
    fc_stack(loudness_stack, "loudness_mlp")
    fc_stack(f0_stack, "f0_mlp")
    kernel, recurrent, bias = decoder.rnn.rnn.get_weights()
    if bias.ndim != 2:
        raise CheckpointError("the GRU was built with reset_after=False, which PyTorch's GRU does not compute")
    kernel = np.concatenate([kernel[ch:2 * ch], kernel[:ch]], axis=0)  # inputs (ld, f0) -> (f0, ld)
    state["gru.weight_ih_l0"] = _gru_rows(kernel.T, h)
    state["gru.weight_hh_l0"] = _gru_rows(recurrent.T, h)
    state["gru.bias_ih_l0"] = _gru_rows(bias[0], h)
    state["gru.bias_hh_l0"] = _gru_rows(bias[1], h)
    fc_stack(decoder.out_stack, "out_mlp", [slice(2 * ch, 2 * ch + h), slice(ch, 2 * ch), slice(0, ch)])
    state["out.weight"] = decoder.dense_out.kernel.numpy().T
    state["out.bias"] = decoder.dense_out.bias.numpy()
    if reverb_ir is not None:
        ir = np.array(reverb_ir, dtype=np.float32).reshape(-1)
        ir[0] = 0.0
        state["reverb_ir"] = ir
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}


def _import_ddsp():
    try:
        import gin
        import tensorflow as tf
        from ddsp.training import models  # noqa: F401  (registers the gin configurables)
    except ImportError as exc:
        raise MissingDependency(f"{INSTALL_HINT} ({exc})") from exc
    return tf, gin


def convert_checkpoint(checkpoint_dir: str | Path, out_dir: str | Path, name: str,
                       stats: InstrumentStats = InstrumentStats()) -> CheckpointSpec:
    """Convert a Magenta solo-instrument model folder (``operative_config-*.gin`` + ``ckpt-*``) into
    ``out_dir`` (safetensors + manifest)."""
    from cadenza.generators.ddsp.export import save_instrument

    tf, gin = _import_ddsp()
    folder = Path(checkpoint_dir)
    gins = sorted(folder.glob("operative_config*.gin"))
    prefix = tf.train.latest_checkpoint(str(folder))
    if not gins or prefix is None:
        raise CheckpointError(f"{folder}: needs an operative_config-*.gin and a TensorFlow checkpoint (ckpt-*)")
    config = config_from_gin(read_gin_bindings(gins[-1]))
    from ddsp.training import decoders

    decoder = decoders.RnnFcDecoder(rnn_channels=config.gru, rnn_type="gru", ch=config.hidden,
                                    layers_per_stack=config.mlp_layers, input_keys=("ld_scaled", "f0_scaled"),
                                    output_splits=(("amps", 1), ("harmonic_distribution", config.n_harmonics),
                                                   ("noise_magnitudes", config.n_noise)), name="decoder")
    checkpoint = tf.train.Checkpoint(model=tf.Module())
    checkpoint.model.decoder = decoder
    status = checkpoint.restore(prefix)
    zeros = tf.zeros([1, 4, 1])
    decoder({"ld_scaled": zeros, "f0_scaled": zeros})  # builds the layers; the restore fills them now
    status.expect_partial()
    reader = tf.train.load_checkpoint(prefix)
    reverb_ir = None
    taps = int(round(config.reverb_s * config.sample_rate))
    if taps:
        names = [n for n, shape in reader.get_variable_to_shape_map().items() if list(shape) == [taps] and "reverb" in n]
        if not names:
            config = replace(config, reverb_s=0.0)
        else:
            reverb_ir = reader.get_tensor(names[0])
    ours = DDSPDecoder(config)
    ours.load_state_dict(state_from_keras(decoder, config, reverb_ir))
    return save_instrument(ours, stats, out_dir, name,
                           license="as the converted Magenta model (Magenta's DDSP models: Apache-2.0)",
                           description=f"DDSP instrument converted from the Magenta checkpoint {folder.name}",
                           made_by={"converted_from": str(folder), "checkpoint": Path(prefix).name,
                                    "tool": "cadenza train ddsp --from-magenta"},
                           metrics={})
