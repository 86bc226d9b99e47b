//! Translates the domain's [`Cond`] into sea-query conditions.

use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Func, LikeExpr, Query, SimpleExpr};
use serde_json::Value as Json;
use tollgate_domain::{
    error::StoreError,
    query::{CmpOp, Cond},
};

fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

pub(crate) fn value(v: &Json) -> Result<sea_orm::Value, StoreError> {
    Ok(match v {
        Json::String(s) => s.clone().into(),
        Json::Bool(b) => (*b).into(),
        Json::Number(n) => n
            .as_i64()
            .ok_or_else(|| StoreError::Other(format!("unsupported number {n}")))?
            .into(),
        other => {
            return Err(StoreError::Other(format!(
                "unsupported filter value {other}"
            )));
        }
    })
}

/// `%`/`_`/`\` are literal in a search text.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub fn condition(cond: &Cond) -> Result<Condition, StoreError> {
    Ok(match cond {
        Cond::True => Condition::all(),
        Cond::All(items) => items.iter().try_fold(Condition::all(), |acc, c| {
            Ok::<_, StoreError>(acc.add(condition(c)?))
        })?,
        Cond::Any(items) => items.iter().try_fold(Condition::any(), |acc, c| {
            Ok::<_, StoreError>(acc.add(condition(c)?))
        })?,
        Cond::Not(inner) => condition(inner)?.not(),
        other => Condition::all().add(expr(other)?),
    })
}

fn expr(cond: &Cond) -> Result<SimpleExpr, StoreError> {
    Ok(match cond {
        Cond::Eq(c, Json::Null) | Cond::IsNull(c) => col(c).is_null(),
        Cond::Eq(c, v) => col(c).eq(value(v)?),
        Cond::In(c, values) if values.is_empty() => {
            let _ = c;
            Expr::val(1).eq(0)
        }
        Cond::In(c, values) => {
            col(c).is_in(values.iter().map(value).collect::<Result<Vec<_>, _>>()?)
        }
        Cond::NotNull(c) => col(c).is_not_null(),
        Cond::Cmp(c, op, v) => {
            let v = value(v)?;
            match op {
                CmpOp::Lt => col(c).lt(v),
                CmpOp::Le => col(c).lte(v),
                CmpOp::Gt => col(c).gt(v),
                CmpOp::Ge => col(c).gte(v),
                CmpOp::Ne => col(c).ne(v),
            }
        }
        Cond::Search(columns, text) => {
            let pattern = like_escape(text);
            let mut any = Condition::any();
            for c in columns {
                any =
                    any.add(Func::lower(col(c)).like(LikeExpr::new(pattern.clone()).escape('\\')));
            }
            any.into()
        }
        Cond::StartsWith(c, prefix) => {
            let pattern = like_escape(prefix);
            let pattern = pattern[1..].to_owned();
            col(c).like(LikeExpr::new(pattern).escape('\\'))
        }
        Cond::InSelect {
            column,
            table,
            select,
            cond,
        } => col(column).in_subquery(
            Query::select()
                .column(Alias::new(select.as_str()))
                .from(Alias::new(table.as_str()))
                .cond_where(condition(cond)?)
                .to_owned(),
        ),
        Cond::True | Cond::All(_) | Cond::Any(_) | Cond::Not(_) => condition(cond)?.into(),
    })
}
