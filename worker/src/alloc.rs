//! How the worker's host memory allocator keeps freed memory.
//!
//! libtorch takes every CPU tensor from glibc's `malloc` and frees it when the last reference
//! goes, so one training step allocates and frees the same few dozen activation and gradient
//! buffers (megabytes each) again and again. glibc's defaults hand such blocks back to the kernel:
//! blocks above the mmap threshold are unmapped on free, and the top of the heap is trimmed past
//! the trim threshold. The next step then faults every page in afresh: measured here (the `small`
//! preset, 2 threads) about 2,300 page faults per step, against about 50 with the settings below.
//!
//! The worker therefore keeps what it frees: blocks up to 32 MiB (glibc's ceiling for the
//! threshold) come from the heap, and the heap is never trimmed. A training process reaches its
//! peak footprint again every step, so keeping it costs no memory that the next step would not
//! take anyway. This is the same advice as PyTorch's CPU performance guide (a caching allocator
//! such as jemalloc or tcmalloc), done in-process, with no library to preload; a PyTorch script
//! gets the same from `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=…`.

/// glibc's largest accepted `M_MMAP_THRESHOLD` (half its 64 MiB heap size on 64-bit systems).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Keeps freed host memory in the process (see the module comment). Call before the first tensor.
/// Returns whether glibc took both settings (elsewhere: false, nothing changed).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
