//! The `xiezhi` binary: parses the command line and hands over to [`xiezhi::cli`].

use clap::Parser;

// The pipeline allocates and frees many page-sized buffers across threads; glibc's allocator
// spent over a third of the fetch thread's time consolidating them (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
