//! The precision of a trial's passes (`training.precision`) and the libtorch settings that go with
//! it.
//!
//! bf16 is explicit casts with fp32 master weights, tch 0.24's autocast being unusable for it (it
//! turns on libtorch's fp16 default and exposes neither the dtype nor TF32): the model casts each
//! weight to bf16 where it multiplies ([`crate::model`]'s `linear`), so matrix products and the
//! attention run in bf16 — on CUDA the flash kernel — while the residual stream, LayerNorm,
//! softmax and the loss stay fp32, as under PyTorch's bf16 autocast; gradients reach the fp32
//! weights through the casts, and the optimizer never sees bf16. TF32 (for the fp32 products
//! that remain, and for fp32 trials on CUDA) is set through a small C++ shim over ATen's global
//! context (`src/shim/context.cpp`).

use std::os::raw::c_int;

use tch::{Device, Kind};

use orrery_core::spec::Precision;

extern "C" {
    fn orrery_set_allow_tf32(on: c_int);
    fn orrery_allow_tf32() -> c_int;
}

/// Allows (or forbids) TF32 in fp32 matrix products and convolutions on CUDA, process-wide.
pub fn set_allow_tf32(on: bool) {
    // SAFETY: the shim only sets two booleans of ATen's global context.
    unsafe { orrery_set_allow_tf32(on as c_int) }
}

/// Whether TF32 is allowed in fp32 matrix products on CUDA (cuBLAS and cuDNN both).
pub fn tf32_allowed() -> bool {
    // SAFETY: reads two booleans of ATen's global context.
    unsafe { orrery_allow_tf32() != 0 }
}

/// The precision a trial runs in on `device` (`auto` resolved) and the tensor kind of its matrix
/// products.
pub fn resolve(p: Precision, device: Device) -> (Precision, Kind) {
    match p.resolve(device.is_cuda()) {
        Precision::Bf16 => (Precision::Bf16, Kind::BFloat16),
        _ => (Precision::Fp32, Kind::Float),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf32_flag_round_trips_through_the_shim() {
        set_allow_tf32(true);
        assert!(tf32_allowed());
        set_allow_tf32(false);
        assert!(!tf32_allowed());
    }

    #[test]
    fn auto_is_bf16_on_cuda_only() {
        assert_eq!(resolve(Precision::Auto, Device::Cpu).1, Kind::Float);
        assert_eq!(resolve(Precision::Auto, Device::Cuda(0)).1, Kind::BFloat16);
        assert_eq!(resolve(Precision::Bf16, Device::Cpu).1, Kind::BFloat16);
        assert_eq!(resolve(Precision::Fp32, Device::Cuda(0)).1, Kind::Float);
    }
}
