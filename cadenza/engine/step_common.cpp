// What the language models' C++ one-step kernels share (cpp_kernel.py puts this before each family's
// step_kernel.cpp): the single-query attention over a KV cache, the cache's layout and its checks.
//
// A self-attention cache is [B, 2H, S, Dh] float32 (cadenza/engine/kv_cache.py): keys in heads 0..H-1,
// values in H..2H-1, so a step writes a position's keys and values with one copy per head.
#include <cmath>
#include <cstring>
#include <vector>

// t must be a contiguous float32 CPU tensor (``what`` names it in the error).
static void check_float(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous(), what,
              ": the step kernel takes contiguous float32 CPU tensors");
}

// One [B, 2H, S, Dh] cache per layer (n_layers of them), all of one B and S; an empty list is allowed.
static void check_caches(const std::vector<torch::Tensor>& caches, size_t n_layers, int64_t H, int64_t Dh) {
  TORCH_CHECK(caches.empty() || caches.size() == n_layers, "one cache per layer");
  for (const auto& c : caches)
    TORCH_CHECK(c.dim() == 4 && c.size(1) == 2 * H && c.size(3) == Dh && c.device().is_cpu() &&
                c.scalar_type() == torch::kFloat && c.is_contiguous() && c.size(0) == caches[0].size(0) &&
                c.size(2) == caches[0].size(2), "caches must be [B, 2H, S, Dh] contiguous float32 CPU tensors");
}

// Row b's keys k [H * Dh] and values v [H * Dh] into cache [B, 2H, S, Dh] at position pos.
static void write_kv(float* cache, const float* k, const float* v, int64_t b, int64_t H, int64_t S, int64_t Dh,
                     int64_t pos) {
  for (int64_t hh = 0; hh < H; ++hh) {
    std::memcpy(cache + ((b * 2 * H + hh) * S + pos) * Dh, k + hh * Dh, Dh * sizeof(float));
    std::memcpy(cache + ((b * 2 * H + H + hh) * S + pos) * Dh, v + hh * Dh, Dh * sizeof(float));
  }
}

// One query q [Dh] over n keys K and values V (rows Dh apart) -> out [Dh] = softmax(q.K * scale) V;
// scores is scratch of at least n floats.
static void attend(const float* q, const float* K, const float* V, int64_t n, int64_t Dh, float scale, float* scores,
                   float* out) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float* k = K + j * Dh;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < Dh; ++i) s += q[i] * k[i];
    s *= scale;
    scores[j] = s;
    mx = s > mx ? s : mx;
  }
  float total = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - mx);
    total += scores[j];
  }
  for (int64_t i = 0; i < Dh; ++i) out[i] = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    const float p = scores[j] / total;
    const float* v = V + j * Dh;
    for (int64_t i = 0; i < Dh; ++i) out[i] += p * v[i];
  }
}

// Self-attention of every row's one query over cache positions 0..pos, after writing this position's
// keys and values: qkv [B, 3D] (q | k | v, H heads of Dh each) -> y [B, D].
static void attend_cached(const float* qkv, float* cache, float* y, int64_t B, int64_t H, int64_t S, int64_t Dh,
                          int64_t pos, float scale, float* scores) {
  const int64_t D = H * Dh;
  for (int64_t b = 0; b < B; ++b) {
    const float* row = qkv + b * 3 * D;
    write_kv(cache, row + D, row + 2 * D, b, H, S, Dh, pos);
    for (int64_t hh = 0; hh < H; ++hh)
      attend(row + hh * Dh, cache + (b * 2 * H + hh) * S * Dh, cache + (b * 2 * H + H + hh) * S * Dh, pos + 1, Dh,
             scale, scores, y + b * D + hh * Dh);
  }
}
