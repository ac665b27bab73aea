//! Accounts and journals, balances, connection state, tenancy.

use super::support::*;

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn accounts_get_journals_and_mapping_checks_currency(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let accounts = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap();
    let journals = mapping::journals(&pool, f.company).await.unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(journals.len(), 2, "one journal per new account");
    for a in &accounts {
        let j = journals.iter().find(|j| j.id == a.journal_id).unwrap();
        assert_eq!(j.currency, a.currency);
    }
    // Map the first account to a fresh journal: wrong currency is refused, nothing changes.
    let acc = &accounts[0];
    let other_ccy = if acc.currency == "EUR" { "USD" } else { "EUR" };
    let wrong = mapping::create_journal(&pool, f.company, "Other", other_ccy, None)
        .await
        .unwrap();
    let e = mapping::map_account(&pool, f.company, acc.id, wrong.id)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::CurrencyMismatch { .. }), "{e:?}");
    assert_eq!(
        mapping::accounts_of_connection(&pool, f.conn)
            .await
            .unwrap()[0]
            .journal_id,
        acc.journal_id
    );
    // Another company's journal is not found.
    let stranger = companies::create(&pool, "Stranger").await.unwrap();
    let theirs = mapping::create_journal(&pool, stranger.id, "Theirs", &acc.currency, None)
        .await
        .unwrap();
    assert!(matches!(
        mapping::map_account(&pool, f.company, acc.id, theirs.id).await,
        Err(SyncError::NotFound { .. })
    ));
    // Same currency works, and new lines go there.
    let right = mapping::create_journal(&pool, f.company, "Main bank", &acc.currency, None)
        .await
        .unwrap();
    mapping::map_account(&pool, f.company, acc.id, right.id)
        .await
        .unwrap();
    f.sim.advance(&f.se_conn);
    let r = sync(&pool, &f, false).await;
    assert!(r.run.inserted > 0);
    let in_new: i64 =
        sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE journal_id = $1")
            .bind(right.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(in_new > 0);

    // An account that disappears keeps its journal and lines.
    let se_accounts = f.client.list_accounts(&f.se_conn).await.unwrap();
    let out = mapping::sync_accounts(
        &pool,
        f.company,
        f.conn,
        ("bank", "Bank"),
        &se_accounts[..1],
    )
    .await
    .unwrap();
    assert_eq!(out.disappeared, 1);
    let gone = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.disappeared_at.is_some())
        .unwrap();
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE bank_account_id = $1")
            .bind(gone.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(kept > 0);
    assert_eq!(
        mapping::journals(&pool, f.company).await.unwrap().len(),
        4,
        "two automatic, two made by hand; none deleted"
    );
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn balance_mismatch_is_recorded_not_fixed(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    let first = sync(&pool, &f, false).await;
    assert_eq!(first.run.balance_mismatches, serde_json::json!([]));
    f.sim.advance(&f.se_conn);
    let second = sync(&pool, &f, false).await;
    assert_eq!(
        second.run.balance_mismatches,
        serde_json::json!([]),
        "journal follows the bank"
    );

    // Someone edits the opening balance: the next sync reports the difference and changes no line.
    let acc = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap()
        .remove(0);
    sqlx::query("UPDATE bank_accounts SET opening_balance = opening_balance + 1 WHERE id = $1")
        .bind(acc.id)
        .execute(&pool)
        .await
        .unwrap();
    let before = lines(&pool, f.conn).await;
    let third = sync(&pool, &f, false).await;
    let m = third.run.balance_mismatches.as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["bank_account_id"], acc.id.to_string());
    assert_eq!(
        m[0]["difference"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        Decimal::from(-1)
    );
    let acc = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id == acc.id)
        .unwrap();
    assert_eq!(acc.balance_mismatch, Some(Decimal::from(-1)));
    assert_eq!(lines(&pool, f.conn).await, before);
}

/// Stage `finish` is not success: a real connection (corpus `connection-show.1.json`) ended
/// at `finish` with ProviderAccessNotGranted; its record shows that error. A later attempt
/// that succeeded clears it.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn connection_state_comes_from_the_last_attempt_not_the_stage(pool: PgPool) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/saltedge-v5-payloads/connection-show.1.json");
    let env: saltedge_client::models::Envelope<saltedge_client::models::Connection> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut se = env.data;
    let company = companies::create(&pool, "Real").await.unwrap().id;
    let c = connections::upsert_from_saltedge(&pool, company, &se)
        .await
        .unwrap();
    assert_eq!(c.stage.as_deref(), Some("finish"));
    assert_eq!(
        c.last_error_class.as_deref(),
        Some("ProviderAccessNotGranted")
    );
    assert_eq!(
        c.last_error_message.as_deref(),
        Some("Unfinished authorization.")
    );
    let attempt = se.last_attempt.as_mut().unwrap();
    attempt.success_at = Some(banksync_testkit::clock::now());
    let c = connections::upsert_from_saltedge(&pool, company, &se)
        .await
        .unwrap();
    assert_eq!(
        c.last_error_class, None,
        "a success later than the failure clears it"
    );
}

/// Balances by nature and balance type: a credit card's balance is the sum of its negative
/// transactions; an available balance cannot be derived from lines and is recorded as not
/// comparable, with the reason. Neither yields a false mismatch, sync after sync.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn balances_are_compared_by_nature_and_balance_type(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.accounts_per_connection = 4).await;
    for _ in 0..3 {
        let r = sync(&pool, &f, false).await;
        assert_eq!(
            r.run.balance_mismatches,
            serde_json::json!([]),
            "no false mismatch"
        );
        f.sim.advance(&f.se_conn);
    }
    let accounts = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap();
    let by_nature = |n: &str| {
        accounts
            .iter()
            .find(|a| a.nature == n)
            .unwrap_or_else(|| panic!("no {n} account"))
    };
    let card = by_nature("credit_card");
    assert_eq!(card.balance_check.as_deref(), Some("credit_card_spend"));
    assert!(card.bank_balance.unwrap() < Decimal::ZERO);
    let has_payments: bool = sqlx::query_scalar(
        "SELECT bool_or(amount > 0) FROM statement_lines WHERE bank_account_id = $1",
    )
    .bind(card.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        has_payments,
        "the card has payments, which a booked comparison would wrongly count"
    );
    assert_eq!(
        by_nature("account").balance_check.as_deref(),
        Some("booked")
    );
    assert_eq!(by_nature("credit").balance_check.as_deref(), Some("booked"));

    // A provider that reports available balances.
    let (_, se_conn) = f
        .sim
        .seed_connection("acme-available", "fakebank_available_xf");
    let se = f.client.show_connection(&se_conn).await.unwrap();
    let conn = connections::upsert_from_saltedge(&pool, f.company, &se)
        .await
        .unwrap()
        .id;
    for _ in 0..2 {
        let r = sync_connection(&pool, &f.client, conn, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(r.run.balance_mismatches, serde_json::json!([]));
        f.sim.advance(&se_conn);
    }
    for a in mapping::accounts_of_connection(&pool, conn).await.unwrap() {
        assert_eq!(
            a.balance_check.as_deref(),
            Some("not_comparable"),
            "{}",
            a.nature
        );
        assert!(a.balance_note.unwrap().contains("available balance"));
        assert_eq!(a.balance_mismatch, None);
    }
}

/// An adopted connection records its Salt Edge customer, so the lost-callback catch-up covers
/// it as it covers a linked one; a customer belongs to one company only.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn adopted_connections_are_caught_up_and_customers_stay_with_one_company(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = client_for(&sim, 0);
    let (se_customer, se_conn) = sim.seed_connection("adopted@acme.example", "fake_client_xf");
    let company = companies::create(&pool, "Adopter").await.unwrap().id;
    let conn = connections::adopt(&pool, &client, company, &se_conn)
        .await
        .unwrap();
    let customer = companies::customer_of(&pool, company)
        .await
        .unwrap()
        .expect("the customer is recorded");
    assert_eq!(
        (customer.saltedge_id.as_str(), customer.identifier.as_str()),
        (se_customer.as_str(), "adopted@acme.example")
    );
    sync_connection(&pool, &client, conn.id, &SyncOptions::default())
        .await
        .unwrap();

    // Salt Edge fetched at night; the callback never came.
    sim.advance(&se_conn);
    let cfg = sync_engine::schedule::ScheduleConfig {
        window_start_hour: 0,
        window_end_hour: 0,
        ..Default::default()
    };
    sync_engine::schedule::tick(&pool, &client, &cfg, banksync_testkit::clock::now())
        .await
        .unwrap();
    assert_eq!(
        run_listings(&pool, &client, &cfg).await,
        1,
        "the adopted connection's customer is listed"
    );
    let catch_up: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE connection_id = $1 AND trigger = 'catch_up' AND status = 'queued'")
        .bind(conn.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(catch_up, 1, "the adopted connection is caught up");

    // Another company cannot adopt a connection of that customer…
    let other = companies::create(&pool, "Other").await.unwrap().id;
    let (_, second_conn) = sim.seed_connection("adopted@acme.example", "fakebank_simple_xf");
    let e = connections::adopt(&pool, &client, other, &second_conn)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::Conflict { .. }), "{e:?}");
    // …nor can the first company take a second customer.
    let (_, foreign) = sim.seed_connection("someone-else@x.example", "fake_client_xf");
    assert!(matches!(
        connections::adopt(&pool, &client, company, &foreign).await,
        Err(SyncError::Conflict { .. })
    ));
    assert!(companies::customer_of(&pool, other)
        .await
        .unwrap()
        .is_none());
}

/// Every tenant table carries its company (row-level security or distributing by company
/// needs no redesign); the global ones (catalogue, queue, inbox, secrets) do not.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn every_tenant_table_carries_company_id(pool: PgPool) {
    for t in [
        "saltedge_customers",
        "connections",
        "journals",
        "bank_accounts",
        "sync_runs",
        "statement_lines",
        "pending_transactions",
        "quarantined_records",
        "refresh_attempts",
    ] {
        let nullable: Option<String> = sqlx::query_scalar(
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = $1 AND column_name = 'company_id'",
        )
        .bind(t)
        .fetch_optional(&pool)
        .await
        .unwrap();
        assert_eq!(nullable.as_deref(), Some("NO"), "{t}.company_id");
    }
}

/// The status enums hold exactly the values the columns' CHECK constraints allow.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn status_enums_match_the_check_constraints(pool: PgPool) {
    use sync_engine::status::{
        ConnectionStatus, DeliveryState, JobStatus, MatchStatus, PendingState, RecordKind,
        RunStatus, TokenKind,
    };
    let tables: [(&str, &str, Vec<&str>); 10] = [
        (
            "statements",
            "period",
            sync_engine::statements::Period::ALL
                .iter()
                .map(|p| p.as_str())
                .collect(),
        ),
        (
            "line_events",
            "kind",
            sync_engine::history::EventKind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect(),
        ),
        (
            "connections",
            "status",
            ConnectionStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "sync_runs",
            "status",
            RunStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "pending_transactions",
            "state",
            PendingState::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "jobs",
            "status",
            JobStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "api_tokens",
            "kind",
            TokenKind::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "quarantined_records",
            "kind",
            RecordKind::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "account_match_proposals",
            "status",
            MatchStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "webhook_deliveries",
            "state",
            DeliveryState::ALL.iter().map(|s| s.as_str()).collect(),
        ),
    ];
    for (table, column, values) in tables {
        let def: String = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
             WHERE t.relname = $1 AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE '%(' || $2 || '%'",
        )
        .bind(table)
        .bind(column)
        .fetch_one(&pool)
        .await
        .unwrap();
        let allowed: Vec<&str> = def.split('\'').skip(1).step_by(2).collect();
        let mut want = values.clone();
        want.sort();
        let mut got = allowed.clone();
        got.sort();
        assert_eq!(got, want, "{table}: {def}");
    }
}
