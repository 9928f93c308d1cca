"""The engine's static KV cache, shared by the symbolic LM and the codec LM."""

from __future__ import annotations

import torch

from cadenza.engine.kv_cache import KVCache, LayerCaches


def test_update_writes_keys_and_values_at_their_positions_in_one_buffer():
    cache = KVCache(2, 3, 8, 4, torch.float32, "cpu")
    assert cache.kv.shape == (2, 6, 8, 4)  # keys in heads 0..2, values in 3..5
    k, v = torch.randn(2, 3, 2, 4), torch.randn(2, 3, 2, 4)
    keys, values = cache.update(torch.tensor([5, 1]), k, v)
    assert keys.shape == values.shape == (2, 3, 8, 4)
    assert torch.equal(cache.kv[:, :3, 5], k[:, :, 0]) and torch.equal(cache.kv[:, 3:, 1], v[:, :, 1])
    assert torch.equal(keys[:, :, 1], k[:, :, 1]) and torch.equal(values[:, :, 5], v[:, :, 0])
    assert cache.kv[:, :, [0, 2, 3, 4, 6, 7]].abs().sum() == 0  # nothing else written


def test_update_casts_to_the_cache_dtype():
    cache = KVCache(1, 1, 4, 2, torch.bfloat16, "cpu")
    keys, _ = cache.update(torch.tensor([0]), torch.ones(1, 1, 1, 2), torch.ones(1, 1, 1, 2))
    assert keys.dtype == torch.bfloat16 and keys[0, 0, 0].tolist() == [1.0, 1.0]


def test_cache_buffer_is_not_persistent():
    assert KVCache(1, 2, 4, 2, torch.float32, "cpu").state_dict() == {}


def test_a_static_set_is_kept_and_reused_for_the_same_shape():
    caches = LayerCaches(n_layers=3, n_heads=2, head_dim=4)
    cpu = torch.device("cpu")
    first = caches.setup(2, 16, torch.float32, cpu, static=True)
    assert len(first) == 3 and caches.active is first
    caches.release()
    assert caches.active is None and caches.spare is first
    again = caches.setup(2, 16, torch.float32, cpu, static=True)
    assert [c.kv for c in again] == [c.kv for c in first]  # same tensors: a CUDA graph stays valid
    caches.release()
    other = caches.setup(2, 16, torch.float64, cpu, static=True)  # another dtype: fresh tensors
    assert other[0].kv.dtype == torch.float64 and other[0] is not first[0]
    caches.release()
    caches.setup(3, 16, torch.float64, cpu, static=False)  # another shape, not static: nothing kept
    caches.release()
    assert caches.spare is None
