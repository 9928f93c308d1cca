// The codec LM's one-frame CPU step in one C++ function: the same maths as CodecLM.forward for one new
// step over a KV cache (cadenza/generators/codec_lm/lm.py), on the weights of step.py's CodecStepWeights.
//
// Why C++: at the CFG batch of 2 the default model's step streams about 19 MB of float32 weights through
// 21 matrix products and does about 60 small operations besides (embeddings, layer norms, attention,
// GELU, residual adds), each of which costs microseconds of dispatch in Python. Here the products stay
// ATen calls (at::mm / addmm: the BLAS at the cache's read speed) and the rest are plain loops.
//
// The model: pre-norm layers (LayerNorm with weight and bias), self-attention over a KV cache without
// rotary positions, optional cross-attention to per-generation keys/values, a two-matrix feed-forward
// with GELU (erf) or ReLU, a final LayerNorm and one head per codebook. No linear biases (MusicGen's and
// ours): step.py only builds this step for such models.
//
// Layouts (float32, contiguous): emb [K, card + 1, D]; per layer qkv [D, 3D] (q | k | v, H heads of Dh),
// o [D, D], cross_q [D, D], cross_o [D, D], ff1 [D, F], ff2 [F, D], norms [3 or 2, 2, D] (self, cross,
// ff: weight row then bias row); out_norm [2, D] (or empty); heads [D, K * card]; freq_div [D / 2] = max_period^(i / (D/2 - 1))
// (positions: [cos | sin] of pos / freq_div, times pos_scale). Self caches
// [B, 2H, S, Dh] (keys in heads 0..H-1, values in H..2H-1); cross keys / values [B, H, S_c, Dh].
// attend, attend_cached, check_caches and check_float come from cadenza/engine/step_common.cpp (put first).
#include <algorithm>

// x [B, D] -> out [B, D] = LayerNorm(x) * w + b (biased variance, eps 1e-5 as torch's nn.LayerNorm here)
static void layer_norm_into(const float* x, float* out, const float* w, const float* bias, int64_t B, int64_t D) {
  for (int64_t b = 0; b < B; ++b) {
    const float* xr = x + b * D;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += xr[i];
    const float mean = s / static_cast<float>(D);
    float v = 0.f;
#pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < D; ++i) v += (xr[i] - mean) * (xr[i] - mean);
    const float r = 1.f / std::sqrt(v / static_cast<float>(D) + 1e-5f);
    float* o = out + b * D;
    for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - mean) * r * w[i] + bias[i];
  }
}

// One model's step. Not reentrant (it owns work buffers and writes the caches it was given): one call at
// a time, as the model's own KV cache already demands.
class CodecStep {
 public:
  CodecStep(torch::Tensor emb, std::vector<torch::Tensor> qkv, std::vector<torch::Tensor> o,
            std::vector<torch::Tensor> cross_q, std::vector<torch::Tensor> cross_o, std::vector<torch::Tensor> ff1,
            std::vector<torch::Tensor> ff2, std::vector<torch::Tensor> norms, torch::Tensor out_norm,
            torch::Tensor heads, torch::Tensor freq_div, double pos_scale, int64_t n_heads, bool gelu)
      : emb_(emb), out_norm_(out_norm), heads_(heads), freq_div_(freq_div), qkv_(qkv), o_(o), cross_q_(cross_q),
        cross_o_(cross_o), ff1_(ff1), ff2_(ff2), norms_(norms), pos_scale_(static_cast<float>(pos_scale)),
        H_(n_heads), gelu_(gelu) {
    TORCH_CHECK(emb.dim() == 3, "emb must be [K, card + 1, D]");
    const int64_t D = emb.size(2), L = static_cast<int64_t>(qkv.size());
    cross_ = !cross_q.empty();
    TORCH_CHECK(L > 0 && o.size() == qkv.size() && ff1.size() == qkv.size() && ff2.size() == qkv.size() &&
                norms.size() == qkv.size() && (!cross_ || (cross_q.size() == qkv.size() && cross_o.size() == qkv.size())),
                "one qkv, o, ff1, ff2 and norms matrix per layer (and cross_q, cross_o for all or none)");
    TORCH_CHECK(D % n_heads == 0 && D % 2 == 0, "dim must split into heads and be even");
    TORCH_CHECK(heads.dim() == 2 && heads.size(0) == D && heads.size(1) % emb.size(0) == 0, "heads must be [D, K * card]");
    TORCH_CHECK(freq_div.dim() == 1 && freq_div.size(0) == D / 2, "freq_div must be [D / 2]");
    TORCH_CHECK(out_norm.numel() == 0 || (out_norm.dim() == 2 && out_norm.size(0) == 2 && out_norm.size(1) == D),
                "out_norm must be [2, D] or empty");
    check_float(emb, "emb");
    check_float(heads, "heads");
    check_float(freq_div, "freq_div");
    if (out_norm.numel()) check_float(out_norm, "out_norm");
    for (int64_t l = 0; l < L; ++l) {
      TORCH_CHECK(qkv[l].size(0) == D && qkv[l].size(1) == 3 * D && o[l].size(0) == D && o[l].size(1) == D &&
                  ff1[l].size(0) == D && ff2[l].size(1) == D && ff2[l].size(0) == ff1[l].size(1) &&
                  norms[l].dim() == 3 && norms[l].size(0) == (cross_ ? 3 : 2) && norms[l].size(1) == 2 &&
                  norms[l].size(2) == D, "layer ", l, ": matrix shapes do not fit dim ", D);
      for (const auto& t : {qkv[l], o[l], ff1[l], ff2[l], norms[l]}) check_float(t, "layer weights");
      if (cross_) {
        TORCH_CHECK(cross_q[l].size(0) == D && cross_q[l].size(1) == D && cross_o[l].size(0) == D &&
                    cross_o[l].size(1) == D, "layer ", l, ": cross-attention matrices must be [D, D]");
        check_float(cross_q[l], "cross_q");
        check_float(cross_o[l], "cross_o");
      }
    }
  }

  // One [B, 2H, S, Dh] self cache per layer; an empty list lets go of the last ones (and of the cross
  // keys / values).
  void set_caches(std::vector<torch::Tensor> caches) {
    check_caches(caches, qkv_.size(), H_, emb_.size(2) / H_);
    caches_ = std::move(caches);
    if (caches_.empty()) {
      cross_k_.clear();
      cross_v_.clear();
    }
  }

  // Per layer cross keys and values [B, H, S_c, Dh] for this generation (after set_caches).
  void set_cross(std::vector<torch::Tensor> keys, std::vector<torch::Tensor> values) {
    TORCH_CHECK(cross_, "this model has no cross-attention");
    TORCH_CHECK(!caches_.empty(), "set_caches first");
    TORCH_CHECK(keys.size() == qkv_.size() && values.size() == qkv_.size(), "one cross key and value tensor per layer");
    const int64_t B = caches_[0].size(0), Dh = emb_.size(2) / H_;
    for (size_t l = 0; l < keys.size(); ++l) {
      for (const auto& t : {keys[l], values[l]}) {
        check_float(t, "cross keys / values");
        TORCH_CHECK(t.dim() == 4 && t.size(0) == B && t.size(1) == H_ && t.size(3) == Dh &&
                    t.size(2) == keys[0].size(2) && t.size(2) > 0, "cross keys / values must be [B, H, S_c, Dh]");
      }
    }
    cross_k_ = std::move(keys);
    cross_v_ = std::move(values);
  }

  // codes [B, K] (long) at cache position pos (+ score [B, D], or an empty tensor) -> logits [B, K * card]
  torch::Tensor forward(torch::Tensor codes, int64_t pos, torch::Tensor score) {
    TORCH_CHECK(!caches_.empty(), "set_caches first");
    TORCH_CHECK(!cross_ || !cross_k_.empty(), "set_cross first: the model cross-attends to conditioning");
    const int64_t B = caches_[0].size(0), K = emb_.size(0), D = emb_.size(2);
    TORCH_CHECK(codes.dim() == 2 && codes.size(0) == B && codes.size(1) == K && codes.scalar_type() == torch::kLong,
                "codes must be [B, K] long for the cache's B rows");
    TORCH_CHECK(pos >= 0 && pos < caches_[0].size(2), "position ", pos, " is outside the cache");
    TORCH_CHECK(score.numel() == 0 || (score.dim() == 2 && score.size(0) == B && score.size(1) == D),
                "score must be [B, D] or empty");
    auto c = codes.contiguous();
    const int64_t* cp = c.data_ptr<int64_t>();
    const int64_t rows = emb_.size(1);
    for (int64_t i = 0; i < B * K; ++i) TORCH_CHECK(cp[i] >= 0 && cp[i] < rows, "code ", cp[i], " is out of range");
    torch::Tensor s = score.numel() ? score.contiguous().to(torch::kFloat) : score;
    return step(cp, pos, s);
  }

 private:
  torch::Tensor step(const int64_t* codes, int64_t pos, const torch::Tensor& score);

  torch::Tensor emb_, out_norm_, heads_, freq_div_;
  torch::Tensor x_, h_, y_, qkv_buf_, q_buf_, ff_buf_;  // work buffers for the current batch size
  std::vector<torch::Tensor> qkv_, o_, cross_q_, cross_o_, ff1_, ff2_, norms_, caches_, cross_k_, cross_v_;
  float pos_scale_;
  int64_t H_;
  bool gelu_, cross_ = false;
};

torch::Tensor CodecStep::step(const int64_t* codes, int64_t pos, const torch::Tensor& score) {
  const int64_t H = H_, K = emb_.size(0), rows = emb_.size(1), D = emb_.size(2), Dh = D / H, half = D / 2;
  const int64_t B = caches_[0].size(0), S = caches_[0].size(2), F = ff1_[0].size(1);
  const float scale = 1.f / std::sqrt(static_cast<float>(Dh));
  if (!x_.defined() || x_.size(0) != B) {  // work buffers, reused while the batch size stays
    const auto options = emb_.options();
    x_ = torch::empty({B, D}, options);
    h_ = torch::empty({B, D}, options);
    y_ = torch::empty({B, D}, options);
    qkv_buf_ = torch::empty({B, 3 * D}, options);
    q_buf_ = torch::empty({B, D}, options);
    ff_buf_ = torch::empty({B, F}, options);
  }
  float* x = x_.data_ptr<float>();
  // input: the codebooks' embeddings, the score row, the sinusoidal position ([cos | sin] halves)
  const float* emb = emb_.data_ptr<float>();
  const float* div = freq_div_.data_ptr<float>();
  const float* sc = score.numel() ? score.data_ptr<float>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    float* xr = x + b * D;
    for (int64_t i = 0; i < D; ++i) xr[i] = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const float* e = emb + (k * rows + codes[b * K + k]) * D;
      for (int64_t i = 0; i < D; ++i) xr[i] += e[i];
    }
    if (sc != nullptr)
      for (int64_t i = 0; i < D; ++i) xr[i] += sc[b * D + i];
    for (int64_t i = 0; i < half; ++i) {
      const float phase = static_cast<float>(pos) / div[i];
      xr[i] += pos_scale_ * std::cos(phase);
      xr[half + i] += pos_scale_ * std::sin(phase);
    }
  }
  int64_t widest = pos + 1;
  if (cross_) widest = std::max(widest, cross_k_[0].size(2));
  std::vector<float> scores(widest);
  float* h = h_.data_ptr<float>();
  float* y = y_.data_ptr<float>();
  for (size_t l = 0; l < qkv_.size(); ++l) {
    const float* norm = norms_[l].data_ptr<float>();  // [n, 2, D]
    // self-attention
    layer_norm_into(x, h, norm, norm + D, B, D);
    const float* qkv = torch::mm_out(qkv_buf_, h_, qkv_[l]).data_ptr<float>();  // [B, 3D]
    attend_cached(qkv, caches_[l].data_ptr<float>(), y, B, H, S, Dh, pos, scale, scores.data());
    x_.addmm_(y_, o_[l]);
    // cross-attention to the conditioning (every position: no mask, as the module does)
    if (cross_) {
      layer_norm_into(x, h, norm + 2 * D, norm + 3 * D, B, D);
      const float* q = torch::mm_out(q_buf_, h_, cross_q_[l]).data_ptr<float>();  // [B, D]
      const float* ck = cross_k_[l].data_ptr<float>();
      const float* cv = cross_v_[l].data_ptr<float>();
      const int64_t Sc = cross_k_[l].size(2);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t hh = 0; hh < H; ++hh)
          attend(q + b * D + hh * Dh, ck + ((b * H + hh) * Sc) * Dh, cv + ((b * H + hh) * Sc) * Dh, Sc, Dh, scale,
                 scores.data(), y + b * D + hh * Dh);
      x_.addmm_(y_, cross_o_[l]);
    }
    // feed-forward
    const float* ffn_norm = norm + (cross_ ? 4 : 2) * D;
    layer_norm_into(x, h, ffn_norm, ffn_norm + D, B, D);
    float* a = torch::mm_out(ff_buf_, h_, ff1_[l]).data_ptr<float>();  // [B, F]
    if (gelu_) {
      for (int64_t i = 0; i < B * F; ++i) a[i] = 0.5f * a[i] * (1.f + std::erf(a[i] * static_cast<float>(M_SQRT1_2)));
    } else {
      for (int64_t i = 0; i < B * F; ++i) a[i] = a[i] > 0.f ? a[i] : 0.f;
    }
    x_.addmm_(ff_buf_, ff2_[l]);
  }
  if (out_norm_.numel()) {
    const float* on = out_norm_.data_ptr<float>();
    layer_norm_into(x, h, on, on + D, B, D);
    return torch::mm(h_, heads_);
  }
  return torch::mm(x_, heads_);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<CodecStep>(m, "CodecStep")
      .def(pybind11::init<torch::Tensor, std::vector<torch::Tensor>, std::vector<torch::Tensor>,
                          std::vector<torch::Tensor>, std::vector<torch::Tensor>, std::vector<torch::Tensor>,
                          std::vector<torch::Tensor>, std::vector<torch::Tensor>, torch::Tensor, torch::Tensor,
                          torch::Tensor, double, int64_t, bool>())
      .def("set_caches", &CodecStep::set_caches)
      .def("set_cross", &CodecStep::set_cross)
      .def("__call__", &CodecStep::forward, pybind11::call_guard<pybind11::gil_scoped_release>());
}
