// The symbolic model's one-token CPU step in one C++ function: the same maths as
// PythonStep (cadenza/generators/symbolic/step.py), on the same StepWeights.
//
// Why C++: at batch 1 the step streams 21 MB of float32 weights through 25 matrix products (at::mm /
// at::addmm: MKL at the cache's read speed, ~0.78 ms on one core of the Xeon VM) and does ~165 small
// operations besides. In Python each small op costs 1.5-3 us of dispatch, 0.5-0.6 ms a step; here the
// RMS norms, RoPE, cache writes, single-query attention and SwiGLU are plain loops costing microseconds.
//
// Layouts (all float32, contiguous): embed [V, D]; per layer qkv [D, 3D] (q | k | v, H heads of Dh),
// o [D, D], gate_up [D, 2F], down [F, D]; head [D, V]; cos/sin [S_max, Dh/2] (RoPE, half-split layout);
// caches [B, 2H, S, Dh] (keys in heads 0..H-1, values in H..2H-1). Norm weights and sqrt(D) are already
// folded into the matrices, so a norm here is x / sqrt(sum(x^2) + D * eps).
// attend_cached, check_caches and check_float come from cadenza/engine/step_common.cpp (put first).

// x [B, D] -> out [B, D] = x / sqrt(sum(x^2) + dim_eps)   (weights and sqrt(D) folded into the next matmul)
static void rms_into(const float* x, float* out, int64_t B, int64_t D, float dim_eps) {
  for (int64_t b = 0; b < B; ++b) {
    const float* xr = x + b * D;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += xr[i] * xr[i];
    const float r = 1.f / std::sqrt(s + dim_eps);
    float* o = out + b * D;
    for (int64_t i = 0; i < D; ++i) o[i] = xr[i] * r;
  }
}

// One model's step. Not reentrant (it owns work buffers and writes the caches it was given): one call at
// a time, as the model's own KV cache already demands.
class SymbolicStep {
 public:
  SymbolicStep(torch::Tensor embed, std::vector<torch::Tensor> qkv, std::vector<torch::Tensor> o,
               std::vector<torch::Tensor> gate_up, std::vector<torch::Tensor> down, torch::Tensor head,
               torch::Tensor cos, torch::Tensor sin, int64_t n_heads, double dim_eps)
      : embed_(embed), head_(head), cos_(cos), sin_(sin), qkv_(qkv), o_(o), gate_up_(gate_up), down_(down),
        H_(n_heads), dim_eps_(static_cast<float>(dim_eps)) {
    const int64_t D = embed.size(1);
    TORCH_CHECK(!qkv.empty() && qkv.size() == o.size() && o.size() == gate_up.size() && gate_up.size() == down.size(),
                "one qkv, o, gate_up and down matrix per layer");
    TORCH_CHECK(D % n_heads == 0 && (D / n_heads) % 2 == 0, "dim must split into heads of even size");
    std::vector<torch::Tensor> all = {embed, head, cos, sin};
    for (size_t l = 0; l < qkv.size(); ++l) {
      all.insert(all.end(), {qkv[l], o[l], gate_up[l], down[l]});
      TORCH_CHECK(qkv[l].size(0) == D && qkv[l].size(1) == 3 * D && o[l].size(0) == D && o[l].size(1) == D &&
                  gate_up[l].size(0) == D && down[l].size(1) == D && gate_up[l].size(1) == 2 * down[l].size(0),
                  "layer ", l, ": matrix shapes do not fit dim ", D);
    }
    for (const auto& t : all) check_float(t, "weights");
    TORCH_CHECK(head.size(0) == D && cos.size(1) == D / n_heads / 2 && sin.sizes() == cos.sizes(), "head/RoPE shapes");
  }

  // One [B, 2H, S, Dh] cache per layer; an empty list lets go of the last ones.
  void set_caches(std::vector<torch::Tensor> caches) {
    check_caches(caches, qkv_.size(), H_, embed_.size(1) / H_);
    caches_ = std::move(caches);
  }

  // token [B] (long) at position pos -> logits [B, V]
  torch::Tensor forward(torch::Tensor token, int64_t pos) {
    TORCH_CHECK(!caches_.empty(), "set_caches first");
    TORCH_CHECK(token.dim() == 1 && token.size(0) == caches_[0].size(0), "token must be [B] for the cache's B rows");
    TORCH_CHECK(pos >= 0 && pos < caches_[0].size(2) && pos < cos_.size(0), "position ", pos, " is outside the cache");
    return step(token, pos);
  }

 private:
  torch::Tensor step(const torch::Tensor& token, int64_t pos);

  torch::Tensor embed_, head_, cos_, sin_;
  torch::Tensor x_, h_, y_, qkv_buf_, gu_buf_, act_;  // work buffers for the current batch size
  std::vector<torch::Tensor> qkv_, o_, gate_up_, down_, caches_;
  int64_t H_;
  float dim_eps_;
};

torch::Tensor SymbolicStep::step(const torch::Tensor& token, int64_t pos) {
  const int64_t H = H_;
  const int64_t B = token.size(0), D = embed_.size(1), Dh = D / H, half = Dh / 2;
  const int64_t S = caches_[0].size(2);
  const float scale = 1.f / std::sqrt(static_cast<float>(Dh));
  const float* cosp = cos_.data_ptr<float>() + pos * half;  // [S_max, half]: this position's row
  const float* sinp = sin_.data_ptr<float>() + pos * half;
  const int64_t F = down_[0].size(0);
  if (!x_.defined() || x_.size(0) != B) {  // work buffers, reused while the batch size stays
    const auto options = embed_.options();
    x_ = torch::empty({B, D}, options);
    h_ = torch::empty({B, D}, options);
    y_ = torch::empty({B, D}, options);
    qkv_buf_ = torch::empty({B, 3 * D}, options);
    gu_buf_ = torch::empty({B, 2 * F}, options);
    act_ = torch::empty({B, F}, options);
  }
  torch::Tensor x = x_, h = h_, y = y_, act = act_;
  torch::index_select_out(x, embed_, 0, token);  // [B, D]
  std::vector<float> scores(pos + 1);
  for (size_t l = 0; l < qkv_.size(); ++l) {
    rms_into(x.data_ptr<float>(), h.data_ptr<float>(), B, D, dim_eps_);
    torch::Tensor qkv = torch::mm_out(qkv_buf_, h, qkv_[l]);  // [B, 3D]: q | k | v, each H heads of Dh
    float* qp = qkv.data_ptr<float>();
    float* cache = caches_[l].data_ptr<float>();  // [B, 2H, S, Dh]: keys then values
    for (int64_t b = 0; b < B; ++b) {
      float* row = qp + b * 3 * D;
      // RoPE on q and k (half-split layout), in place
      for (int64_t part = 0; part < 2; ++part)
        for (int64_t hh = 0; hh < H; ++hh) {
          float* v = row + part * D + hh * Dh;
          for (int64_t i = 0; i < half; ++i) {
            const float a = v[i], c = v[i + half];
            v[i] = a * cosp[i] - c * sinp[i];
            v[i + half] = c * cosp[i] + a * sinp[i];
          }
        }
    }
    attend_cached(qp, cache, y.data_ptr<float>(), B, H, S, Dh, pos, scale, scores.data());
    x.addmm_(y, o_[l]);
    rms_into(x.data_ptr<float>(), h.data_ptr<float>(), B, D, dim_eps_);
    torch::Tensor gu = torch::mm_out(gu_buf_, h, gate_up_[l]);  // [B, 2F]: gate | up
    const float* g = gu.data_ptr<float>();
    float* a = act.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < F; ++i) {
        const float gv = g[b * 2 * F + i];
        a[b * F + i] = gv / (1.f + std::exp(-gv)) * g[b * 2 * F + F + i];
      }
    x.addmm_(act, down_[l]);
  }
  rms_into(x.data_ptr<float>(), h.data_ptr<float>(), B, D, dim_eps_);
  return torch::mm(h, head_);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<SymbolicStep>(m, "SymbolicStep")
      .def(pybind11::init<torch::Tensor, std::vector<torch::Tensor>, std::vector<torch::Tensor>,
                          std::vector<torch::Tensor>, std::vector<torch::Tensor>, torch::Tensor, torch::Tensor,
                          torch::Tensor, int64_t, double>())
      .def("set_caches", &SymbolicStep::set_caches)
      .def("__call__", &SymbolicStep::forward, pybind11::call_guard<pybind11::gil_scoped_release>());
}
