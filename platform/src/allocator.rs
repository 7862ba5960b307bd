//! The allocator of every EcoEco binary: jemalloc, tuned for a small, steady resident set.
//!
//! [`crate::allocator!`] declares it in a binary crate (the options must be a symbol of the final
//! binary for jemalloc to read them at start). Against glibc's malloc, threads do not each keep
//! their own high-water mark in per-thread arenas. The options, measured in
//! `ecoeco-bench sustained` (README, "Memory"):
//!
//! - `narenas:2`: two arenas, not jemalloc's four per CPU of the *host* (8 here, 128 on a
//!   32-core node running a pod limited to one CPU). Memory freed in one arena is not reused
//!   by the threads of another, so fewer arenas hold less. Every small allocation goes through
//!   a per-thread cache first, so two arenas are not contended at our thread counts.
//! - `dirty_decay_ms:1000`: freed pages go back to the system after about a second, not ten.
//! - `background_thread:true`: a jemalloc thread returns them on time even while the process
//!   is idle, instead of at its next allocation.
//!
//! `_RJEM_MALLOC_CONF` in the environment overrides them (jemalloc reads it after these).

/// jemalloc's options, a C string (see the module documentation).
pub const MALLOC_CONF: &[u8; 53] = b"narenas:2,dirty_decay_ms:1000,background_thread:true\0";

/// Declares jemalloc as the binary's global allocator, with [`MALLOC_CONF`]. The binary crate
/// depends on `tikv-jemallocator`.
#[macro_export]
macro_rules! allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: ::tikv_jemallocator::Jemalloc = ::tikv_jemallocator::Jemalloc;

        /// Read by jemalloc at start: a pointer to a C string (its `malloc_conf`).
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static MALLOC_CONF: &[u8; $crate::allocator::MALLOC_CONF.len()] = $crate::allocator::MALLOC_CONF;
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_options_are_one_c_string() {
        let conf = std::ffi::CStr::from_bytes_with_nul(super::MALLOC_CONF).unwrap();
        assert!(conf.to_str().unwrap().split(',').all(|o| o.contains(':')));
    }
}
