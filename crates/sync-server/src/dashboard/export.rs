//! Exports: the problem ledger and the visit log as CSV (UTF-8 with a byte-order mark, so
//! Excel shows Chinese) or XLSX, with Chinese column headers by default, for exactly what the
//! viewer's scope and filters show.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use doorstep_core::time::Timestamp;
use serde::Deserialize;

use crate::dashboard::attachments;
use crate::dashboard::error::DashboardError;
use crate::dashboard::figures::{self, LedgerFilter};
use crate::dashboard::html::{Lang, date, date_time};
use crate::dashboard::session::Staff;
use crate::dashboard::view;
use crate::http::{AppState, now};

/// A table to export: headers, then rows of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Sheet name.
    pub name: String,
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<String>>,
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The CSV writer failed.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// The XLSX writer failed.
    #[error("xlsx: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

impl Table {
    /// The table as CSV, with a UTF-8 byte-order mark. A cell a spreadsheet would read as a
    /// formula is neutralised ([`csv_cell`]).
    pub fn to_csv(&self) -> Result<Vec<u8>, ExportError> {
        let mut writer = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
        writer.write_record(self.headers.iter().map(|h| csv_cell(h).into_owned()))?;
        for row in &self.rows {
            writer.write_record(row.iter().map(|cell| csv_cell(cell).into_owned()))?;
        }
        writer.into_inner().map_err(|e| ExportError::Csv(e.into_error().into()))
    }

    /// The table as an XLSX workbook of one sheet.
    pub fn to_xlsx(&self) -> Result<Vec<u8>, ExportError> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let bold = rust_xlsxwriter::Format::new().set_bold();
        let sheet = workbook.add_worksheet();
        sheet.set_name(&self.name)?;
        for (c, h) in self.headers.iter().enumerate() {
            let col = u16::try_from(c).unwrap_or(u16::MAX);
            sheet.write_string_with_format(0, col, h, &bold)?;
            sheet.set_column_width(col, 16)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let r = u32::try_from(r + 1).unwrap_or(u32::MAX);
            for (c, value) in row.iter().enumerate() {
                sheet.write_string(r, u16::try_from(c).unwrap_or(u16::MAX), value)?;
            }
        }
        Ok(workbook.save_to_buffer()?)
    }
}

/// A cell as CSV may carry it: text a spreadsheet would take for a formula (starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, as OWASP recommends against
/// CSV injection, so it shows as the text the worker typed. XLSX needs no such care: it
/// writes every cell as a string.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn headers(lang: Lang, columns: &[(&'static str, &'static str)]) -> Vec<String> {
    columns.iter().map(|(zh, en)| lang.t(zh, en).to_owned()).collect()
}

const LEDGER_COLUMNS: [(&str, &str); 14] = [
    ("编号", "Id"),
    ("网格", "Grid"),
    ("类别", "Category"),
    ("诉求内容", "Description"),
    ("紧急程度", "Urgency"),
    ("状态", "Status"),
    ("承办部门", "Department"),
    ("提出时间", "Raised"),
    ("办理期限", "Due"),
    ("是否逾期", "Overdue"),
    ("督办", "Supervised"),
    ("回访满意度", "Satisfaction"),
    ("待复核冲突", "Conflict"),
    ("照片与附件", "Photos and files"),
];

const VISIT_COLUMNS: [(&str, &str); 10] = [
    ("网格", "Grid"),
    ("社区", "Community"),
    ("地址", "Address"),
    ("住户", "Household"),
    ("走访时间", "Visited at"),
    ("走访类型", "Kind"),
    ("走访人", "Visited by"),
    ("走访记录", "Notes"),
    ("位置", "Location"),
    ("照片与附件", "Photos and files"),
];

/// Query of any export: the ledger's filters and the visit log's.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ExportQuery {
    #[serde(flatten)]
    ledger: LedgerFilter,
    /// Visits: only the last N days (empty: all).
    #[serde(default)]
    days: String,
}

/// `GET /dashboard/export/{ledger|visits}.{csv|xlsx}`.
pub async fn export(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(file): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, DashboardError> {
    let (what, format) = file.rsplit_once('.').ok_or(DashboardError::NotFound)?;
    if !matches!(format, "csv" | "xlsx") || !matches!(what, "ledger" | "visits") {
        return Err(DashboardError::NotFound);
    }
    let lang = staff.lang;
    let scope = staff.scope.clone();
    let what = what.to_owned();
    let base = attachments::base_url(state.config.public_url.as_deref());
    let table = view(&state, move |model, dir, taxonomy| {
        let at = now();
        if what == "ledger" {
            let rows = figures::ledger(model, &scope, &query.ledger, at)
                .into_iter()
                .map(|e| {
                    let r = &e.request;
                    vec![
                        r.id.to_string(),
                        dir.grid_name(r.grid),
                        lang.category(taxonomy, r.category.as_str()),
                        r.description.clone(),
                        lang.urgency(r.urgency).to_owned(),
                        lang.status(r.status()).to_owned(),
                        r.derived
                            .department
                            .as_ref()
                            .map(|d| lang.department(taxonomy, d.as_str()))
                            .unwrap_or_default(),
                        date_time(r.raised_at),
                        date_time(r.due_at),
                        yes_no(lang, figures::is_overdue(r, at)),
                        yes_no(lang, r.derived.supervised),
                        r.derived.satisfaction.map(|s| lang.satisfaction(s).to_owned()).unwrap_or_default(),
                        yes_no(lang, !r.derived.conflicts.is_empty()),
                        attachments::links(&base, r.id.into(), attachments::of_request(r)),
                    ]
                })
                .collect();
            Table {
                name: lang.t("问题台账", "Ledger").into(), headers: headers(lang, &LEDGER_COLUMNS), rows
            }
        } else {
            let since =
                query.days.parse::<u32>().ok().map(|d| Timestamp(at.millis() - i64::from(d) * 86_400_000));
            let mut visits: Vec<(Timestamp, Vec<String>)> = Vec::new();
            for entry in model.households(&scope) {
                let h = &entry.household;
                if !query.ledger.grid.is_empty() && h.address.grid.to_string() != query.ledger.grid {
                    continue;
                }
                for v in h.visits.iter().filter(|v| since.is_none_or(|s| v.at >= s)) {
                    visits.push((
                        v.at,
                        vec![
                            dir.grid_name(h.address.grid),
                            h.address.community.clone(),
                            h.address.short_line(),
                            h.display_name(),
                            date_time(v.at),
                            lang.visit_kind(v.kind).to_owned(),
                            dir.member_name(v.by),
                            v.notes.clone(),
                            v.location
                                .map(|f| {
                                    format!("{:.6},{:.6} ±{:.0}m", f.latitude, f.longitude, f.accuracy_m)
                                })
                                .unwrap_or_default(),
                            attachments::links(&base, h.id.into(), v.attachments.iter().cloned()),
                        ],
                    ));
                }
            }
            visits.sort_by_key(|v| std::cmp::Reverse(v.0));
            Table {
                name: lang.t("走访记录", "Visits").into(),
                headers: headers(lang, &VISIT_COLUMNS),
                rows: visits.into_iter().map(|(_, row)| row).collect(),
            }
        }
    })
    .await?;
    let bytes = if format == "csv" { table.to_csv() } else { table.to_xlsx() }
        .map_err(|e| DashboardError::Internal(e.to_string()))?;
    let content_type = if format == "csv" {
        "text/csv; charset=utf-8"
    } else {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    };
    let name = format!("{}-{}.{format}", file.split('.').next().unwrap_or("export"), date(now()));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        bytes,
    )
        .into_response())
}

fn yes_no(lang: Lang, yes: bool) -> String {
    if yes { lang.t("是", "yes") } else { lang.t("否", "no") }.to_owned()
}

#[cfg(test)]
mod tests {
    use calamine::Reader;

    use super::*;

    #[test]
    fn csv_cells_that_would_be_formulas_get_a_quote() {
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(formula), format!("'{formula}"));
        }
        for plain in ["陈奶奶", "1-2", "a=b", "", " x"] {
            assert_eq!(csv_cell(plain), plain);
        }
        let table = Table { name: "t".into(), headers: vec!["h".into()], rows: vec![vec!["=1+1".into()]] };
        let csv = String::from_utf8(table.to_csv().expect("csv")).expect("utf-8");
        assert!(csv.ends_with("h\n'=1+1\n"), "{csv:?}");
    }

    #[test]
    fn xlsx_and_csv_carry_chinese_headers_and_rows() {
        let table = Table {
            name: "问题台账".into(),
            headers: headers(Lang::Zh, &LEDGER_COLUMNS[..3]),
            rows: vec![vec!["1".into(), "第一网格".into(), "设施维修, \"引号\"".into()]],
        };
        let xlsx = table.to_xlsx().expect("xlsx");
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).expect("readable");
        let range = book.worksheet_range("问题台账").expect("sheet");
        let rows: Vec<Vec<String>> =
            range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
        assert_eq!(rows[0], ["编号", "网格", "类别"]);
        assert_eq!(rows[1], table.rows[0]);

        let csv = table.to_csv().expect("csv");
        assert!(csv.starts_with(b"\xEF\xBB\xBF"));
        let text = String::from_utf8(csv[3..].to_vec()).expect("utf-8");
        assert_eq!(text, "编号,网格,类别\n1,第一网格,\"设施维修, \"\"引号\"\"\"\n");
    }
}
