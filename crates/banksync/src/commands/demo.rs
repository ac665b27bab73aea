//! The offline tour: starts the simulator, links a bank through its Connect page over HTTP
//! (as a browser would), then reads accounts and transactions back with the signed client.

use anyhow::Context;
use futures::TryStreamExt;
use saltedge_client::models::{AttemptRequest, ConsentRequest, CreateConnectSession};
use saltedge_client::{Client, TransactionQuery};
use saltedge_sim::{SimConfig, Simulator};

#[derive(clap::Args)]
pub struct Args {
    /// Postgres URL; when given, migrations are applied first.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    #[arg(long, default_value = "fake_client_xf")]
    pub provider: String,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    if let Some(url) = &a.database_url {
        let pool = sqlx::PgPool::connect(url).await.context("cannot reach Postgres (DATABASE_URL)")?;
        sync_engine::MIGRATOR.run(&pool).await.context("migrations failed")?;
        println!("✓ database ready at the latest schema");
    }
    let sim = Simulator::start(SimConfig::default()).await?;
    println!("✓ Salt Edge simulator at {}", sim.api_base());
    let client = Client::new(sim.client_config())?;
    let customer = client.create_customer("demo-company@example.com").await?;
    println!("✓ customer {} created (signed request)", customer.id);
    let session = client
        .create_connect_session(&CreateConnectSession {
            customer_id: customer.id.clone(),
            consent: ConsentRequest::default(),
            attempt: AttemptRequest::default(),
            provider_code: Some(a.provider.clone()),
            include_fake_providers: Some(true),
            ..Default::default()
        })
        .await?;
    println!("✓ connect session: {}", session.connect_url);
    let page = reqwest::Client::new()
        .post(&session.connect_url)
        .form(&[("login", "username"), ("password", "secret"), ("consent", "on")])
        .send()
        .await?
        .text()
        .await?;
    let conn_id = page
        .split("id=\"connection_id\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .filter(|s| !s.is_empty())
        .context("the Connect page did not complete")?
        .to_string();
    println!("✓ bank linked through the Connect page: connection {conn_id}");
    let accounts = client.list_accounts(&conn_id).await?;
    let mut pages = 0;
    let mut total = 0;
    let mut stream = std::pin::pin!(client.transaction_pages(TransactionQuery::connection(&conn_id)));
    while let Some(p) = stream.try_next().await? {
        pages += 1;
        total += p.items.len();
    }
    println!("✓ {} accounts, {total} posted transactions in {pages} page(s):", accounts.len());
    for acc in &accounts {
        println!("    {:<40} {:>14} {}", acc.name, acc.balance, acc.currency_code);
    }
    sim.stop().await;
    Ok(())
}
