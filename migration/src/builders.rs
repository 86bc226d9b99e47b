//! Small helpers so each table reads like its column list.

use sea_orm_migration::prelude::*;

pub fn table(name: &str, columns: Vec<ColumnDef>) -> TableCreateStatement {
    let mut stmt = Table::create();
    stmt.table(Alias::new(name)).if_not_exists();
    for mut column in columns {
        stmt.col(&mut column);
    }
    stmt.to_owned()
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

pub fn id() -> ColumnDef {
    col("id").text().not_null().primary_key().to_owned()
}
pub fn text(name: &str) -> ColumnDef {
    col(name).text().not_null().to_owned()
}
pub fn text_null(name: &str) -> ColumnDef {
    col(name).text().null().to_owned()
}
pub fn int(name: &str) -> ColumnDef {
    col(name).big_integer().not_null().to_owned()
}
pub fn int_null(name: &str) -> ColumnDef {
    col(name).big_integer().null().to_owned()
}
pub fn boolean(name: &str) -> ColumnDef {
    col(name).boolean().not_null().to_owned()
}
pub fn json(name: &str) -> ColumnDef {
    col(name).json_binary().not_null().to_owned()
}

/// `created_at`, `updated_at` and the soft-delete marker.
pub fn lifecycle() -> Vec<ColumnDef> {
    vec![int("created_at"), int("updated_at"), int_null("deleted_at")]
}

pub fn fk(table: &str, column: &str, target: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}__{column}"))
        .from(Alias::new(table), Alias::new(column))
        .to(Alias::new(target), Alias::new("id"))
        .to_owned()
}

pub fn index(table: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("ix_{table}__{}", columns.join("_")))
        .table(Alias::new(table))
        .if_not_exists();
    for column in columns {
        stmt.col(Alias::new(*column));
    }
    stmt.to_owned()
}

/// Unique among live rows, case-insensitive. The name `uq_<table>__<column>` lets the
/// persistence adapter tell which attribute a violation is about.
pub fn unique_live_lower(table: &str, column: &str) -> String {
    format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS \"uq_{table}__{column}\" ON \"{table}\" (lower(\"{column}\")) WHERE \"deleted_at\" IS NULL"
    )
}
