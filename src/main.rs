use wxlogin::config::Config;
use wxlogin::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxlogin::telemetry::init_subscriber();
    let config = Config::from_env()?;
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    Ok(())
}
