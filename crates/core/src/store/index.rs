//! The index tables behind the app's screens, kept in step with the documents inside the same
//! transaction as every document write. They hold only what can be derived from documents, so
//! they can always be rebuilt.

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter, types::Value};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::{Code, DocumentId, GridId, HouseholdId, MemberId, RequestId, VisitId};
use crate::lifecycle::RequestStatus;
use crate::model::household::{Household, HouseholdSummary};
use crate::model::request::{Request, RequestSummary, Urgency};
use crate::model::resident::ResidentTag;
use crate::model::same_household::SameAsMark;
use crate::model::visit::VisitKind;
use crate::time::Timestamp;

/// Writes the index rows of a household, its "same household as" marks included.
pub(crate) fn index_household(
    conn: &Connection,
    household: &Household,
    has_conflict: bool,
    marks: &[SameAsMark],
) -> Result<()> {
    let id = household.id.to_string();
    remove_household(conn, &id)?;
    let mut link = conn.prepare_cached(
        "INSERT OR REPLACE INTO household_link_ix (household_id, link_id, mark) VALUES (?1, ?2, ?3)",
    )?;
    for mark in marks {
        let json = serde_json::to_string(mark)
            .map_err(|e| crate::error::CoreError::InvalidValue { field: "same_as", reason: e.to_string() })?;
        link.execute(params![id, mark.id.to_string(), json])?;
    }
    conn.execute(
        "INSERT INTO household_ix (household_id, grid_id, display_name, address_line, resident_count,
                                   last_visit_at, has_conflict)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            household.address.grid.to_string(),
            household.display_name(),
            household.address.short_line(),
            household.residents.iter().filter(|r| !r.removed).count() as i64,
            household.last_visit().map(|v| v.at.millis()),
            has_conflict,
        ],
    )?;
    let mut tag = conn.prepare_cached("INSERT INTO household_tag_ix (tag, household_id) VALUES (?1, ?2)")?;
    for t in household.tags() {
        tag.execute(params![t.as_str(), id])?;
    }
    let mut visit = conn.prepare_cached(
        "INSERT INTO timeline_ix (household_id, item_kind, item_id, at, detail, summary)
         VALUES (?1, 'visit', ?2, ?3, ?4, ?5)",
    )?;
    for v in &household.visits {
        let summary: String = v.notes.lines().next().unwrap_or_default().chars().take(80).collect();
        visit.execute(params![id, v.id.to_string(), v.at.millis(), v.kind.as_str(), summary])?;
    }
    Ok(())
}

/// Indexes one appended visit: its timeline row and the household's last-visit time. The
/// result is the same as re-indexing the whole household (a test checks it).
pub(crate) fn index_new_visit(
    conn: &Connection,
    household: HouseholdId,
    visit: VisitId,
    at: Timestamp,
    kind: VisitKind,
    notes: &str,
) -> Result<()> {
    let id = household.to_string();
    let summary: String = notes.trim().lines().next().unwrap_or_default().chars().take(80).collect();
    conn.prepare_cached(
        "INSERT INTO timeline_ix (household_id, item_kind, item_id, at, detail, summary)
         VALUES (?1, 'visit', ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, visit.to_string(), at.millis(), kind.as_str(), summary])?;
    conn.prepare_cached(
        "UPDATE household_ix SET last_visit_at = max(COALESCE(last_visit_at, ?2), ?2) WHERE household_id = ?1",
    )?
    .execute(params![id, at.millis()])?;
    Ok(())
}

fn remove_household(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("DELETE FROM household_ix WHERE household_id = ?1", [id])?;
    conn.execute("DELETE FROM household_tag_ix WHERE household_id = ?1", [id])?;
    conn.execute("DELETE FROM household_link_ix WHERE household_id = ?1", [id])?;
    conn.execute("DELETE FROM timeline_ix WHERE household_id = ?1 AND item_kind = 'visit'", [id])?;
    Ok(())
}

/// Writes the index rows of a request.
pub(crate) fn index_request(conn: &Connection, request: &Request) -> Result<()> {
    let id = request.id.to_string();
    remove_request(conn, &id)?;
    let title: String = request.description.lines().next().unwrap_or_default().chars().take(80).collect();
    let d = &request.derived;
    conn.execute(
        "INSERT INTO request_ix (request_id, household_id, grid_id, category, status, is_open, urgency,
                                 title, raised_at, due_at, assignee, department, supervised, has_conflict)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            id,
            request.household.map(|h| h.to_string()),
            request.grid.to_string(),
            request.category.as_str(),
            d.status.as_str(),
            d.status.is_open(),
            request.urgency.as_str(),
            title,
            request.raised_at.millis(),
            request.due_at.millis(),
            d.assignee.map(|a| a.to_string()),
            d.department.as_ref().map(|c| c.as_str().to_owned()),
            d.supervised,
            !d.conflicts.is_empty(),
        ],
    )?;
    if let Some(household) = request.household {
        conn.execute(
            "INSERT INTO timeline_ix (household_id, item_kind, item_id, at, detail, summary)
             VALUES (?1, 'request', ?2, ?3, ?4, ?5)",
            params![household.to_string(), id, request.raised_at.millis(), d.status.as_str(), title],
        )?;
    }
    Ok(())
}

fn remove_request(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("DELETE FROM request_ix WHERE request_id = ?1", [id])?;
    conn.execute("DELETE FROM timeline_ix WHERE item_kind = 'request' AND item_id = ?1", [id])?;
    Ok(())
}

/// Removes every index row of a document.
pub(crate) fn remove_document(conn: &Connection, id: DocumentId) -> Result<()> {
    let id = id.to_string();
    remove_household(conn, &id)?;
    remove_request(conn, &id)
}

/// Empties every index table (before a rebuild).
pub(crate) fn clear(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM household_ix; DELETE FROM household_tag_ix; DELETE FROM household_link_ix;
         DELETE FROM request_ix; DELETE FROM timeline_ix;",
    )?;
    Ok(())
}

const HOUSEHOLD_SUMMARY: &str = "
    SELECT h.household_id, h.grid_id, h.display_name, h.address_line, h.resident_count,
           h.last_visit_at, h.has_conflict,
           (SELECT count(*) FROM request_ix r WHERE r.household_id = h.household_id AND r.is_open = 1),
           (SELECT group_concat(t.tag) FROM household_tag_ix t WHERE t.household_id = h.household_id)
    FROM household_ix h";

fn household_summary(row: &Row<'_>) -> rusqlite::Result<HouseholdSummary> {
    let tags: Option<String> = row.get(8)?;
    let mut tags: Vec<ResidentTag> =
        tags.unwrap_or_default().split(',').filter_map(ResidentTag::from_stored).collect();
    tags.sort();
    Ok(HouseholdSummary {
        id: parse_col(row, 0)?,
        grid: parse_col(row, 1)?,
        display_name: row.get(2)?,
        address_line: row.get(3)?,
        resident_count: row.get(4)?,
        last_visit_at: row.get::<_, Option<i64>>(5)?.map(Timestamp),
        has_conflict: row.get(6)?,
        open_requests: row.get(7)?,
        tags,
    })
}

/// Parses a text column into an id type; a malformed value is reported as a conversion error.
fn parse_col<T: std::str::FromStr>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    text.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("bad id {text:?}").into(),
        )
    })
}

/// Every "same household as" mark the replica's households carry (each once).
pub(crate) fn same_household_marks(conn: &Connection) -> Result<Vec<SameAsMark>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT link_id, mark FROM household_link_ix ORDER BY link_id")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(1))?;
    let mut out = Vec::new();
    for row in rows {
        // A row this build cannot read is skipped; the document still holds the mark.
        if let Ok(mark) = serde_json::from_str::<SameAsMark>(&row?) {
            out.push(mark);
        }
    }
    Ok(out)
}

/// The households of a grid, the longest unvisited first (never-visited before all).
pub(crate) fn households_in_grid(conn: &Connection, grid: GridId) -> Result<Vec<HouseholdSummary>> {
    let sql = format!(
        "{HOUSEHOLD_SUMMARY} WHERE h.grid_id = ?1
         ORDER BY h.last_visit_at IS NOT NULL, h.last_visit_at, h.address_line"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([grid.to_string()], household_summary)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The households with a resident carrying `tag`.
pub(crate) fn households_with_tag(conn: &Connection, tag: ResidentTag) -> Result<Vec<HouseholdSummary>> {
    let sql = format!(
        "{HOUSEHOLD_SUMMARY} WHERE h.household_id IN (SELECT household_id FROM household_tag_ix WHERE tag = ?1)
         ORDER BY h.last_visit_at IS NOT NULL, h.last_visit_at, h.address_line"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([tag.as_str()], household_summary)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One household's index row.
pub(crate) fn household_summary_of(conn: &Connection, id: HouseholdId) -> Result<Option<HouseholdSummary>> {
    let sql = format!("{HOUSEHOLD_SUMMARY} WHERE h.household_id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id.to_string()], household_summary).optional()?)
}

/// Which requests to list. Unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Only these statuses.
    pub statuses: Vec<RequestStatus>,
    /// Only open ones (not resolved, closed or cancelled).
    pub open_only: bool,
    /// Only this category.
    pub category: Option<Code>,
    /// Only requests held by this person.
    pub assignee: Option<MemberId>,
    /// Only this grid.
    pub grid: Option<GridId>,
    /// Only this household's.
    pub household: Option<HouseholdId>,
    /// Only open requests due before this time (overdue at `now`).
    pub overdue_at: Option<Timestamp>,
}

fn request_summary(row: &Row<'_>) -> rusqlite::Result<RequestSummary> {
    let household: Option<String> = row.get(1)?;
    let category: String = row.get(3)?;
    let status: String = row.get(4)?;
    let assignee: Option<String> = row.get(9)?;
    let department: Option<String> = row.get(10)?;
    Ok(RequestSummary {
        id: parse_col(row, 0)?,
        household: household.and_then(|h| h.parse().ok()),
        grid: parse_col(row, 2)?,
        category: Code::new(category).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
        status: RequestStatus::from_stored(&status).unwrap_or(RequestStatus::Raised),
        urgency: Urgency::from_stored(&row.get::<_, String>(5)?),
        title: row.get(6)?,
        raised_at: Timestamp(row.get(7)?),
        due_at: Timestamp(row.get(8)?),
        assignee: assignee.and_then(|a| a.parse().ok()),
        department: department.and_then(|d| Code::new(d).ok()),
        supervised: row.get(11)?,
        has_conflict: row.get(12)?,
    })
}

/// Requests matching `filter`, most urgent and earliest due first.
pub(crate) fn list_requests(conn: &Connection, filter: &RequestFilter) -> Result<Vec<RequestSummary>> {
    let mut sql = String::from(
        "SELECT request_id, household_id, grid_id, category, status, urgency, title, raised_at, due_at,
                assignee, department, supervised, has_conflict
         FROM request_ix WHERE 1 = 1",
    );
    let mut args: Vec<Value> = Vec::new();
    if !filter.statuses.is_empty() {
        let marks = vec!["?"; filter.statuses.len()].join(", ");
        sql.push_str(&format!(" AND status IN ({marks})"));
        args.extend(filter.statuses.iter().map(|s| Value::Text(s.as_str().into())));
    }
    if filter.open_only {
        sql.push_str(" AND is_open = 1");
    }
    if let Some(category) = &filter.category {
        sql.push_str(" AND category = ?");
        args.push(Value::Text(category.as_str().into()));
    }
    if let Some(assignee) = filter.assignee {
        sql.push_str(" AND assignee = ?");
        args.push(Value::Text(assignee.to_string()));
    }
    if let Some(grid) = filter.grid {
        sql.push_str(" AND grid_id = ?");
        args.push(Value::Text(grid.to_string()));
    }
    if let Some(household) = filter.household {
        sql.push_str(" AND household_id = ?");
        args.push(Value::Text(household.to_string()));
    }
    if let Some(now) = filter.overdue_at {
        sql.push_str(" AND is_open = 1 AND due_at < ?");
        args.push(Value::Integer(now.millis()));
    }
    sql.push_str(
        " ORDER BY CASE urgency WHEN 'critical' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END, due_at, request_id",
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), request_summary)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What a timeline entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum TimelineItem {
    /// A visit to the household.
    Visit {
        /// The visit.
        id: VisitId,
        /// Its kind.
        kind: VisitKind,
    },
    /// A request concerning the household.
    Request {
        /// The request.
        id: RequestId,
        /// Its current status.
        status: RequestStatus,
    },
}

/// One line of a household's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When (device clock of the visit, or raising time of the request).
    pub at: Timestamp,
    /// The visit or request.
    pub item: TimelineItem,
    /// First line of its notes or description.
    pub summary: String,
}

/// A household's visits and requests, newest first.
pub(crate) fn timeline(conn: &Connection, household: HouseholdId) -> Result<Vec<TimelineEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT item_kind, item_id, at, detail, summary FROM timeline_ix
         WHERE household_id = ?1 ORDER BY at DESC, item_id DESC",
    )?;
    let rows = stmt.query_map([household.to_string()], |row| {
        let kind: String = row.get(0)?;
        let detail: String = row.get(3)?;
        let item = if kind == "visit" {
            TimelineItem::Visit { id: parse_col(row, 1)?, kind: VisitKind::from_stored(&detail) }
        } else {
            TimelineItem::Request {
                id: parse_col(row, 1)?,
                status: RequestStatus::from_stored(&detail).unwrap_or(RequestStatus::Raised),
            }
        };
        Ok(TimelineEntry { at: Timestamp(row.get(2)?), item, summary: row.get(4)? })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Documents whose index rows say they hold a conflict.
pub(crate) fn documents_with_conflicts(conn: &Connection) -> Result<Vec<DocumentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT household_id FROM household_ix WHERE has_conflict = 1
         UNION ALL SELECT request_id FROM request_ix WHERE has_conflict = 1",
    )?;
    let rows = stmt.query_map([], |row| parse_col::<DocumentId>(row, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
