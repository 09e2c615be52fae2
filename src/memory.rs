//! How quickly freed memory goes back to the OS: a speed-for-resident-memory trade that the two
//! pipelines (pull → normalise → route → store on the in-process bus and SQLite, or on RabbitMQ
//! and PostgreSQL) want made differently. The binary's allocator is mimalloc (`main.rs`); where
//! another allocator is in use (the test binaries) these calls set an option nobody reads.

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same index in its v2 and v3
/// headers; mimalloc keeps retired options as placeholders so indexes never move). The Rust
/// binding does not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The process default, set before anything is allocated. mimalloc returns freed pages to the
/// OS 10 ms after they empty (100 ms for its arenas). The pipeline frees most of what it
/// allocates within milliseconds, on another thread, so at that delay the freed pages of a long
/// sync were a large share of the peak resident memory: on RabbitMQ + PostgreSQL at 1,000,000
/// records, 196–204 MB with the default and 128–131 MB at 3 ms, for 11,200–12,400 records/s
/// either way (`xiezhi bench`; 0 ms cost about 10% of it).
pub fn purge_freed_memory_promptly() {
    set_purge_delay_ms(3);
}

/// For the embedded pipeline, whose store keeps up with its pulls (nothing waits in a broker):
/// there, pages returned after 3 ms were faulted back in at once by the next page parsed, and
/// the page faults took about a tenth of the machine. At 500 ms the embedded benchmark ran
/// 25,300–27,200 records/s against 23,700 (1,000,000 records), peaking at 124 MB instead of
/// 92 MB.
pub fn keep_freed_memory_longer() {
    set_purge_delay_ms(500);
}

fn set_purge_delay_ms(ms: std::ffi::c_long) {
    // SAFETY: sets an integer option of the allocator; safe at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
}
