// Shared helpers of rnnkit's C++ kernels: BLAS calls without dispatcher overhead, vector math.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <cstring>
#include <vector>
#include <cmath>

// Vector variants of the libm functions (glibc's libmvec). glibc declares them only under
// -ffast-math, which would also let the compiler assume no NaN; declaring them here keeps IEEE
// semantics and still lets `#pragma omp simd` loops call the AVX-512 versions.
extern "C" {
__attribute__((simd("notinbranch"))) float expf(float) noexcept;
__attribute__((simd("notinbranch"))) float tanhf(float) noexcept;
__attribute__((simd("notinbranch"))) double exp(double) noexcept;
__attribute__((simd("notinbranch"))) double tanh(double) noexcept;
__attribute__((simd("notinbranch"))) float logf(float) noexcept;
__attribute__((simd("notinbranch"))) double log(double) noexcept;
}

namespace rnnkit {
using at::Tensor;
using at::BFloat16;

template <typename T> inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// The BLAS that libtorch_cpu carries (MKL on x86-64) is called directly: ATen's own entry points
// for these products are not exported, and going through the dispatcher (at::mm) costs a few
// microseconds per call, a large share of one small step. Column-major, like every BLAS.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*, const int*);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*, const int*);
void cblas_gemm_bf16bf16f32(int layout, int transa, int transb, int m, int n, int k, float alpha,
                            const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                            float* c, int ldc);
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest);
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc);
}

// Column-major C (m, n) = op(A) op(B) + beta C, ta/tb in {'N', 'T'}
inline void gemm_cm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  int mi = m, ni = n, ki = k, la = lda, lb = ldb, lc = ldc; float one = 1;
  sgemm_(&ta, &tb, &mi, &ni, &ki, &one, a, &la, b, &lb, &beta, c, &lc);
}
inline void gemm_cm(char ta, char tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                    const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  int mi = m, ni = n, ki = k, la = lda, lb = ldb, lc = ldc; double one = 1;
  dgemm_(&ta, &tb, &mi, &ni, &ki, &one, a, &la, b, &lb, &beta, c, &lc);
}
inline void gemm_cm(char ta, char tb, int64_t m, int64_t n, int64_t k, const BFloat16* a,
                    int64_t lda, const BFloat16* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  // CBLAS: layout 102 = column-major, transpose 111 = no, 112 = yes
  cblas_gemm_bf16bf16f32(102, ta == 'T' ? 112 : 111, tb == 'T' ? 112 : 111, m, n, k, 1.0f,
                         reinterpret_cast<const uint16_t*>(a), lda,
                         reinterpret_cast<const uint16_t*>(b), ldb, beta, c, ldc);
}

// Row-major helpers. M: matrix type (T or bf16), C: result type (T); beta 0 (overwrite) or 1.
// C (rows, n) = A (rows, k) · W^T, W (n, k)
template <typename M, typename C>
inline void gemm_abt(int64_t rows, int64_t n, int64_t k, const M* a, const M* w, C* c, C beta) {
  gemm_cm('T', 'N', n, rows, k, w, k, a, k, beta, c, n);
}
// C (rows, n) = A (rows, k) · W, W (k, n)
template <typename M, typename C>
inline void gemm_ab(int64_t rows, int64_t n, int64_t k, const M* a, const M* w, C* c, C beta) {
  gemm_cm('N', 'N', n, rows, k, w, n, a, k, beta, c, n);
}
// C (n, k) = A^T · B, A (rows, n), B (rows, k)
template <typename M, typename C>
inline void gemm_atb(int64_t rows, int64_t n, int64_t k, const M* a, const M* b, C* c, C beta) {
  if (rows == 0) return;
  gemm_cm('N', 'T', k, n, rows, b, k, a, n, beta, c, k);
}

// The recurrent weight W (N, K) = (G*H, H), prepared once per call for the T small products
//   forward  C (rows, N) = A (rows, K) · W^T      backward  C (rows, K) = A (rows, N) · W
// float: MKL's packed format (the packing of W is otherwise redone inside every product, a large
// share of a small one); bf16: W cast once, fp32 results; double: plain BLAS.
template <typename M> struct Weight;

template <> struct Weight<float> {
  int64_t N, K, rows;
  Tensor packed;
  Weight(const Tensor& w, int64_t rows_, bool backward) : N(w.size(0)), K(w.size(1)), rows(rows_) {
    // row-major (101), B matrix (162), transposed (112) for the forward product
    const int m = rows, n = backward ? K : N, k = backward ? N : K;
    const size_t bytes = cblas_sgemm_pack_get_size(162, m, n, k);
    packed = at::empty({static_cast<int64_t>(bytes / sizeof(float)) + 16}, w.options());
    cblas_sgemm_pack(101, 162, backward ? 111 : 112, m, n, k, 1.0f, w.data_ptr<float>(), K,
                     packed.data_ptr<float>());
  }
  void mul_t(const float* a, float* c, float beta) const {  // 151: the packed operand
    cblas_sgemm_compute(101, 111, 151, rows, N, K, a, K, packed.data_ptr<float>(), K, beta, c, N);
  }
  void mul(const float* a, float* c, float beta) const {
    cblas_sgemm_compute(101, 111, 151, rows, K, N, a, N, packed.data_ptr<float>(), K, beta, c, K);
  }
};

template <> struct Weight<BFloat16> {
  int64_t N, K, rows;
  Tensor w16;
  Weight(const Tensor& w, int64_t rows_, bool) : N(w.size(0)), K(w.size(1)), rows(rows_),
                                                 w16(w.to(at::kBFloat16).contiguous()) {}
  const uint16_t* wp() const { return reinterpret_cast<const uint16_t*>(w16.data_ptr<BFloat16>()); }
  void mul_t(const BFloat16* a, float* c, float beta) const {  // row-major 101, 111 N, 112 T
    cblas_gemm_bf16bf16f32(101, 111, 112, rows, N, K, 1.0f, reinterpret_cast<const uint16_t*>(a),
                           K, wp(), K, beta, c, N);
  }
  void mul(const BFloat16* a, float* c, float beta) const {
    cblas_gemm_bf16bf16f32(101, 111, 111, rows, K, N, 1.0f, reinterpret_cast<const uint16_t*>(a),
                           N, wp(), K, beta, c, K);
  }
};

template <> struct Weight<double> {
  int64_t N, K, rows;
  Tensor w;
  Weight(const Tensor& w_, int64_t rows_, bool) : N(w_.size(0)), K(w_.size(1)), rows(rows_), w(w_.contiguous()) {}
  void mul_t(const double* a, double* c, double beta) const {
    gemm_abt<double, double>(rows, N, K, a, w.data_ptr<double>(), c, beta);
  }
  void mul(const double* a, double* c, double beta) const {
    gemm_ab<double, double>(rows, K, N, a, w.data_ptr<double>(), c, beta);
  }
};

// dst[i] = src[i] converted (fp32 -> bf16 for the matrix products of the bf16 path)
template <typename S, typename D>
inline void convert(const S* src, D* dst, int64_t n) {
  if constexpr (std::is_same_v<S, D>) { std::memcpy(dst, src, n * sizeof(S)); }
  else {
    at::parallel_for(0, n, 1 << 16, [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i) dst[i] = static_cast<D>(src[i]);
    });
  }
}

// Rows of a (B, ·) step run in parallel only when the step is large enough to pay for waking a
// second thread (tens of microseconds on a shared machine; the element-wise pass is ~1 ns/element).
inline int64_t row_grain(int64_t width) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, width)); }

// The matrix type M's tensor options (the weights cast once per call)
template <typename M> inline c10::ScalarType scalar_of();
template <> inline c10::ScalarType scalar_of<float>() { return at::kFloat; }
template <> inline c10::ScalarType scalar_of<double>() { return at::kDouble; }
template <> inline c10::ScalarType scalar_of<BFloat16>() { return at::kBFloat16; }
}  // namespace rnnkit
