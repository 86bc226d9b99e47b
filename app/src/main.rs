use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tollgate::install_crypto_provider();
    let cli = tollgate::cli::Cli::parse();
    match tollgate::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
