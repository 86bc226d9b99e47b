//! Helpers shared by the tests that run the real binary.

use sea_orm::{ConnectionTrait, Database};

/// A fresh database: SQLite file, or a new PostgreSQL database when the suite runs on it.
pub async fn fresh_database_url() -> String {
    let name = format!(
        "tg_test_{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    if std::env::var("TOLLGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres") {
        let server = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin = Database::connect(&server)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
        format!("{base}/{name}")
    } else {
        format!(
            "sqlite://{}?mode=rwc",
            std::env::temp_dir().join(format!("{name}.db")).display()
        )
    }
}
