//! Tenant isolation at the edges: tokens, accounts and callbacks never cross companies.

use super::support::*;
use sync_engine::tokens::{self, Principal};

/// A token row whose kind and company disagree grants nothing — never an operator's
/// rights (the database's check forbids such rows; the code does not lean on it).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_token_row_contradicting_its_kind_grants_nothing(pool: PgPool) {
    let company = companies::create(&pool, "Books").await.unwrap().id;
    let (_, company_token) = tokens::insert(&pool, Some(company), "c", None)
        .await
        .unwrap();
    let (_, operator_token) = tokens::insert(&pool, None, "o", None).await.unwrap();
    assert!(matches!(
        tokens::authenticate(&pool, &company_token).await.unwrap(),
        Some(Principal::Company { company_id, .. }) if company_id == company
    ));
    assert!(matches!(
        tokens::authenticate(&pool, &operator_token).await.unwrap(),
        Some(Principal::Operator { .. })
    ));
    // A damaged row: an operator token that names a company.
    sqlx::query("ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_kind_company")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE api_tokens SET kind = 'operator' WHERE company_id = $1")
        .bind(company)
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        tokens::authenticate(&pool, &company_token)
            .await
            .unwrap()
            .is_none(),
        "refused, not an operator"
    );
}

/// A listing that names an account another company holds (a Salt Edge stand-in that
/// mixes ids up) quarantines it: the account, its journal and its lines stay with their
/// company.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn an_account_of_another_company_is_never_taken_over(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, true).await;
    let theirs = f.client.list_accounts(&f.se_conn).await.unwrap();
    let (_, se) = f.sim.seed_connection("other@x.example", "fake_client_xf");
    let other = companies::create(&pool, "Other Books").await.unwrap().id;
    let conn = connections::adopt(&pool, &f.client, other, &se)
        .await
        .unwrap();
    let owners = || async {
        sqlx::query_as::<_, (String, Uuid, Option<Uuid>)>(
            "SELECT saltedge_id, company_id, connection_id FROM bank_accounts WHERE company_id = $1 ORDER BY saltedge_id",
        )
        .bind(f.company)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let before = owners().await;
    let out = sync_engine::mapping::sync_accounts(
        &pool,
        other,
        conn.id,
        ("fake_client_xf", "Fake"),
        &theirs,
    )
    .await
    .unwrap();
    assert_eq!(out.quarantined.len(), theirs.len(), "each one quarantined");
    assert_eq!(
        owners().await,
        before,
        "still the first company's, on its connection"
    );
    let other_accounts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bank_accounts WHERE company_id = $1")
            .bind(other)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(other_accounts, 0);
}
