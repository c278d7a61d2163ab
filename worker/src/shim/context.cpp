// The two libtorch settings tch 0.24 does not expose — TF32 for fp32 matrix products on CUDA
// (cuBLAS and cuDNN) — and libtorch's version. Plain C functions over ATen's global context, called from
// worker/src/precision.rs. The flags are process-wide and exist on CPU-only machines too, so the
// test reads them back there.
#include <ATen/Context.h>
#include <torch/headeronly/version.h>

extern "C" void orrery_set_allow_tf32(int on) {
  at::globalContext().setAllowTF32CuBLAS(on != 0);
  at::globalContext().setAllowTF32CuDNN(on != 0);
}

extern "C" int orrery_allow_tf32() {
  return at::globalContext().allowTF32CuBLAS() && at::globalContext().allowTF32CuDNN();
}

// The libtorch version the worker was built against (its headers'), for the trial's provenance.
extern "C" const char* orrery_torch_version() { return TORCH_VERSION; }
