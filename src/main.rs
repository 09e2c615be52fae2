//! The `xiezhi` binary: parses the command line and hands over to [`xiezhi::cli`].

use clap::Parser;

// The pipeline allocates and frees many page-sized buffers across threads; glibc's allocator
// spent over a third of the fetch thread's time consolidating them (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    purge_freed_memory_promptly();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async_main()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Where the kernel backs anonymous memory with transparent huge pages "always" (as on the
/// benchmark machine), every 2 MiB region the allocator touches becomes resident in full:
/// measured, that doubled the peak resident memory of a small benchmark run (55 → 103 MB). xiezhi's heap is
/// made of many short-lived, page-sized buffers, which gain nothing from huge pages, so the
/// process opts out before the runtime allocates anything.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes a flag of this
        // process; it cannot touch Rust-visible memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            eprintln!(
                "warning: could not opt out of transparent huge pages: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same index in its v2 and v3
/// headers; mimalloc keeps retired options as placeholders so indexes never move). The Rust
/// binding does not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc returns freed pages to the OS 10 ms after they empty (100 ms for its arenas). The
/// pipeline frees most of what it allocates within milliseconds, on another thread, so at that
/// delay the freed pages of a long sync were a large share of the peak resident memory: on
/// RabbitMQ + PostgreSQL at 1,000,000 records, 196–204 MB with the default and 128–131 MB at
/// 3 ms, for 11,200–12,400 records/s either way (`xiezhi bench`; 0 ms cost about 10% of it).
fn purge_freed_memory_promptly() {
    // SAFETY: sets an integer option of the allocator; safe at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 3) };
}

async fn async_main() -> std::process::ExitCode {
    let cli = xiezhi::cli::Cli::parse();
    let level = match cli.command {
        xiezhi::cli::Command::Run | xiezhi::cli::Command::Simulate { .. } => "info",
        _ => "warn",
    };
    xiezhi::cli::init_tracing(level);
    match xiezhi::cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
