// The two libtorch settings tch 0.24 does not expose: TF32 for fp32 matrix products on CUDA
// (cuBLAS and cuDNN). Plain C functions over ATen's global context, called from
// worker/src/precision.rs. The flags are process-wide and exist on CPU-only machines too, so the
// test reads them back there.
#include <ATen/Context.h>

extern "C" void orrery_set_allow_tf32(int on) {
  at::globalContext().setAllowTF32CuBLAS(on != 0);
  at::globalContext().setAllowTF32CuDNN(on != 0);
}

extern "C" int orrery_allow_tf32() {
  return at::globalContext().allowTF32CuBLAS() && at::globalContext().allowTF32CuDNN();
}
