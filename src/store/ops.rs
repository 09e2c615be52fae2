//! Store, operators' side: what operators read and write next to the records — the failure
//! query both backends share, counts by error code, each failure's history, the append-only
//! audit log and API tokens (stored hashed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FailureFilter, FailureStatus, status_name};

/// Open (or otherwise filtered) failures of one connector with one error code. A failure with
/// several errors of different codes counts once under each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    pub connector: String,
    pub code: String,
    pub count: i64,
}

/// One step in a failure's life: a replay, an edit, an approval, a discard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub detail: Value,
}

/// What an operator did, for the audit log (who, what, on which filter or id, how many, with
/// what outcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAudit {
    pub actor: String,
    pub action: String,
    /// The failure id or other object acted on, when there is one.
    pub target: Option<String>,
    /// The filter the action selected its objects with (empty object when none).
    pub filter: Value,
    pub count: i64,
    pub outcome: Value,
}

/// An audit-log entry as stored: append-only, numbered in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub entry: NewAudit,
}

/// What a token may do. Each role includes the ones before it: a viewer reads (personal data
/// masked), an operator replays, edits and discards, an approver also approves someone else's
/// edit, an admin also manages tokens.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Approver,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "`{other}` is not a role (viewer, operator, approver, admin)"
            )),
        }
    }
}

/// An API token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where an edit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditStatus {
    /// Waiting for a second person.
    Pending,
    /// Approved; its replay ran (see the outcome).
    Approved,
    Rejected,
    /// A newer edit of the same failure replaced it before anyone decided.
    Superseded,
}

impl std::str::FromStr for EditStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(s.to_owned()))
            .map_err(|_| format!("`{s}` is not one of pending, approved, rejected, superseded"))
    }
}

impl EditStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EditStatus::Pending => "pending",
            EditStatus::Approved => "approved",
            EditStatus::Rejected => "rejected",
            EditStatus::Superseded => "superseded",
        }
    }
}

/// An operator's correction of a failed record. The failure keeps its raw payload; the edit
/// holds the patch as written and the edited record the replay will use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditRow {
    pub id: String,
    pub failure_id: String,
    pub editor: String,
    pub created_at: DateTime<Utc>,
    /// The JSON Patch as given (absent when the whole record was given).
    pub patch: Option<Value>,
    pub edited: Value,
    pub note: Option<String>,
    pub status: EditStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub outcome: Option<Value>,
}

/// An edit row as both backends select it: id, failure_id, editor, created µs, patch, edited,
/// note, status, decided_by, decided µs, outcome.
pub(crate) type EditTuple = (
    String,
    String,
    String,
    i64,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
);

pub(crate) fn edit_from_tuple(t: EditTuple) -> super::Result<EditRow> {
    let (
        id,
        failure_id,
        editor,
        created,
        patch,
        edited,
        note,
        status,
        decided_by,
        decided,
        outcome,
    ) = t;
    let json = |ctx: &'static str, v: Option<String>| -> super::Result<Option<Value>> {
        v.map(|s| super::parse_json(ctx, &s)).transpose()
    };
    Ok(EditRow {
        created_at: super::time_from_micros("edit time", created)?,
        patch: json("edit patch", patch)?,
        edited: super::parse_json("edited record", &edited)?,
        status: super::parse_name("edit status", &status)?,
        decided_at: decided
            .map(|d| super::time_from_micros("edit decision time", d))
            .transpose()?,
        outcome: json("edit outcome", outcome)?,
        id,
        failure_id,
        editor,
        note,
        decided_by,
    })
}

/// SQL spelling differences the shared failure query has to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to the shared failure query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// ` AND …` conditions (to follow a `WHERE true`) selecting `filter`'s failures from a table
/// aliased `f`, with placeholders numbered from 1 in the dialect's spelling, and the values to
/// bind in order. Only fixed fragments and placeholder numbers go into the text.
pub(crate) fn failure_conditions(filter: &FailureFilter, dialect: Dialect) -> (String, Vec<Bind>) {
    let mut sql = String::new();
    let mut binds: Vec<Bind> = Vec::new();
    let mut add = |cond: &str, values: Vec<Bind>| {
        // Each `?` of the fragment takes the next value, numbered in the dialect's spelling.
        sql.push_str(" AND ");
        let mut parts = cond.split('?');
        sql.push_str(parts.next().unwrap_or_default());
        let mut values = values.into_iter();
        for part in parts {
            if let Some(v) = values.next() {
                binds.push(v);
            }
            match dialect {
                Dialect::Sqlite => sql.push_str(&format!("?{}", binds.len())),
                Dialect::Postgres => sql.push_str(&format!("${}", binds.len())),
            }
            sql.push_str(part);
        }
    };
    let text = |s: &str| Bind::Text(s.to_owned());
    if let Some(v) = &filter.connector {
        add("f.connector = ?", vec![text(v)]);
    }
    if let Some(v) = &filter.stream {
        add("f.stream = ?", vec![text(v)]);
    }
    if let Some(v) = filter.record_type {
        add("f.record_type = ?", vec![text(v.as_str())]);
    }
    if let Some(v) = filter.stage {
        add("f.stage = ?", vec![text(v.as_str())]);
    }
    if let Some(v) = &filter.code {
        add(
            match dialect {
                Dialect::Sqlite => {
                    "EXISTS (SELECT 1 FROM json_each(f.errors) AS e WHERE e.value->>'code' = ?)"
                }
                Dialect::Postgres => {
                    "f.errors @> jsonb_build_array(jsonb_build_object('code', ?::text))"
                }
            },
            vec![text(v)],
        );
    }
    if !filter.status.is_empty() {
        let json = status_names_json(&filter.status);
        add(
            match dialect {
                Dialect::Sqlite => "f.status IN (SELECT value FROM json_each(?))",
                // ARRAY(…) is computed once (an init plan), so the planner can still walk the
                // primary key in order; `IN (SELECT …)` made it a join that sorted every row.
                Dialect::Postgres => {
                    "f.status = ANY(ARRAY(SELECT jsonb_array_elements_text(?::text::jsonb)))"
                }
            },
            vec![Bind::Text(json)],
        );
    }
    let micros = |t: &DateTime<Utc>| Bind::Int(t.timestamp_micros());
    let at = match dialect {
        Dialect::Sqlite => "?",
        Dialect::Postgres => "to_timestamp(?::bigint / 1000000.0)",
    };
    if let Some(t) = &filter.since {
        add(&format!("f.last_seen >= {at}"), vec![micros(t)]);
    }
    if let Some(t) = &filter.until {
        add(&format!("f.last_seen < {at}"), vec![micros(t)]);
    }
    if let Some(q) = filter.text.as_deref().filter(|q| !q.is_empty()) {
        // Free text over the keys: a substring of the natural key or the upstream id. LIKE's
        // wildcards in the text are matched literally.
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        add(
            "(f.natural_key LIKE ? ESCAPE '\\' OR f.upstream_id LIKE ? ESCAPE '\\' OR f.id = ?)",
            vec![text(&pattern), text(&pattern), text(q)],
        );
    }
    if !filter.ids.is_empty() {
        let json = serde_json::to_string(&filter.ids).unwrap_or_else(|_| "[]".into());
        add(
            match dialect {
                Dialect::Sqlite => "f.id IN (SELECT value FROM json_each(?))",
                Dialect::Postgres => {
                    "f.id = ANY(ARRAY(SELECT jsonb_array_elements_text(?::text::jsonb)))"
                }
            },
            vec![Bind::Text(json)],
        );
    }
    if let Some(v) = &filter.after_id {
        add("f.id > ?", vec![text(v)]);
    }
    (sql, binds)
}

/// `SELECT connector, code, count` of the failures matching `filter` (paging ignored), grouped
/// by connector and error code, largest first.
pub(crate) fn failure_counts_query(
    filter: &FailureFilter,
    dialect: Dialect,
) -> (String, Vec<Bind>) {
    let unpaged = FailureFilter {
        after_id: None,
        ..filter.clone()
    };
    let (cond, binds) = failure_conditions(&unpaged, dialect);
    let errors = match dialect {
        Dialect::Sqlite => "json_each(f.errors) AS e",
        Dialect::Postgres => "jsonb_array_elements(f.errors) AS e(value)",
    };
    (
        format!(
            "SELECT f.connector, e.value->>'code' AS code, count(DISTINCT f.id) AS n \
             FROM failures AS f CROSS JOIN {errors} WHERE true{cond} \
             GROUP BY f.connector, code ORDER BY n DESC, f.connector, code"
        ),
        binds,
    )
}

pub(crate) fn counts_from_rows(rows: Vec<(String, String, i64)>) -> Vec<FailureCount> {
    rows.into_iter()
        .map(|(connector, code, count)| FailureCount {
            connector,
            code,
            count,
        })
        .collect()
}

/// Binds the shared query's values in order.
pub(crate) fn bind_all<'q, DB, O>(
    mut q: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>,
    binds: Vec<Bind>,
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for b in binds {
        q = match b {
            Bind::Text(t) => q.bind(t),
            Bind::Int(i) => q.bind(i),
        };
    }
    q
}

/// An audit row as both backends select it: seq, at µs, actor, action, target, filter JSON,
/// count, outcome JSON.
pub(crate) type AuditTuple = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    i64,
    String,
);

pub(crate) fn audit_from_tuple(t: AuditTuple) -> super::Result<AuditEntry> {
    let (seq, at, actor, action, target, filter, count, outcome) = t;
    Ok(AuditEntry {
        seq,
        at: super::time_from_micros("audit time", at)?,
        entry: NewAudit {
            actor,
            action,
            target,
            filter: super::parse_json("audit filter", &filter)?,
            count,
            outcome: super::parse_json("audit outcome", &outcome)?,
        },
    })
}

/// A token row as both backends select it: id, name, role, created µs, revoked µs.
pub(crate) type TokenTuple = (String, String, String, i64, Option<i64>);

pub(crate) fn token_from_tuple(t: TokenTuple) -> super::Result<TokenRow> {
    let (id, name, role, created, revoked) = t;
    Ok(TokenRow {
        role: role.parse().map_err(|reason| super::StoreError::Corrupt {
            context: "token role",
            reason,
        })?,
        created_at: super::time_from_micros("token creation time", created)?,
        revoked_at: revoked
            .map(|r| super::time_from_micros("token revocation time", r))
            .transpose()?,
        id,
        name,
    })
}

/// Statuses as a JSON array of their names, to bind as one value.
pub(crate) fn status_names_json(from: &[FailureStatus]) -> String {
    let names: Vec<&str> = from.iter().map(|s| status_name(*s)).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordType, Stage};

    #[test]
    fn conditions_number_placeholders_in_each_dialect() {
        let f = FailureFilter {
            connector: Some("credit".into()),
            record_type: Some(RecordType::Penalty),
            stage: Some(Stage::Normalize),
            code: Some("USCC_CHECK_DIGIT".into()),
            status: vec![FailureStatus::Open, FailureStatus::Replayed],
            text: Some("50%_off".into()),
            ..Default::default()
        };
        let (sql, binds) = failure_conditions(&f, Dialect::Sqlite);
        assert!(
            sql.contains("?1") && sql.contains("?8") && !sql.contains("?9"),
            "{sql}"
        );
        assert!(
            sql.contains("f.natural_key LIKE ?6") && sql.contains("f.id = ?8"),
            "{sql}"
        );
        assert_eq!(binds.len(), 8);
        assert_eq!(binds[5], Bind::Text("%50\\%\\_off%".into()));
        let (pg, pg_binds) = failure_conditions(&f, Dialect::Postgres);
        assert!(pg.contains("$8") && pg.contains("@>"), "{pg}");
        assert_eq!(pg_binds, binds);
        assert_eq!(
            failure_conditions(&FailureFilter::default(), Dialect::Sqlite),
            (String::new(), vec![])
        );
    }

    #[test]
    fn roles_include_the_ones_before_them() {
        assert!(Role::Admin.allows(Role::Approver));
        assert!(Role::Approver.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Approver));
        assert_eq!("approver".parse::<Role>(), Ok(Role::Approver));
        assert!("root".parse::<Role>().unwrap_err().contains("viewer"));
    }
}
