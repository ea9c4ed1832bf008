use std::process::ExitCode;

use wxlogin::cli::{self, Command};
use wxlogin::config::Config;
use wxlogin::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wxlogin: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if command == Command::Help {
        println!("{}", cli::USAGE);
        return ExitCode::SUCCESS;
    }
    let logs = wxlogin::telemetry::init_subscriber();
    let result = run(command).await;
    // Everything logged is out before the verdict is printed.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxlogin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    if command != Command::Serve {
        return cli::run_admin_command(command, &config);
    }
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    Ok(())
}
