//! The `xiezhi` binary: parses the command line and hands over to [`xiezhi::cli`].

use clap::Parser;

// The pipeline allocates and frees many page-sized buffers across threads; glibc's allocator
// spent over a third of the fetch thread's time consolidating them (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    xiezhi::memory::purge_freed_memory_promptly();
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
