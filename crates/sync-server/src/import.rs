//! Household register import from CSV or XLSX (the county's existing spreadsheets). One row
//! per resident; rows with the same grid, building, unit and room make one household. Every row
//! is checked first ([`plan`], which the dashboard shows as a preview); rejected rows are
//! reported with their line and reason. Nothing is half-imported: a household any of whose rows
//! is rejected is left out whole, and the rest are written in one transaction ([`apply`]).
//!
//! Columns (header row required, Chinese or English names):
//! `community/社区, grid/网格, building/楼栋, unit/单元, room/室, name/姓名, sex/性别,
//! birth_year/出生年份, phone/电话, tags/标签, notes/备注`. `grid` is a grid id or name; `tags`
//! are separated by `;` or `、`, in Chinese (独居老人) or English (elderly_alone).

use std::collections::BTreeMap;

use automerge::AutoCommit;
use doorstep_core::doc;
use doorstep_core::ids::{DocumentId, GridId, HouseholdId, MemberId, ResidentId};
use doorstep_core::model::{Address, NewHousehold, NewResident, ResidentTag, Sex};
use doorstep_core::time::Timestamp;
use serde::Serialize;

use crate::storage::{GridRow, Storage, StorageError};

/// One rejected row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectedRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// Why, in Chinese and English.
    pub reason: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Households created.
    pub households: usize,
    /// Residents imported.
    pub residents: usize,
    /// Rows rejected.
    pub rejected: Vec<RejectedRow>,
}

const COLUMNS: [(&str, &str); 11] = [
    ("community", "社区"),
    ("grid", "网格"),
    ("building", "楼栋"),
    ("unit", "单元"),
    ("room", "室"),
    ("name", "姓名"),
    ("sex", "性别"),
    ("birth_year", "出生年份"),
    ("phone", "电话"),
    ("tags", "标签"),
    ("notes", "备注"),
];

fn parse_sex(s: &str) -> Option<Sex> {
    match s.trim() {
        "男" | "male" | "M" | "m" => Some(Sex::Male),
        "女" | "female" | "F" | "f" => Some(Sex::Female),
        "" => Some(Sex::Unknown),
        _ => None,
    }
}

fn parse_tags(s: &str) -> Result<Vec<ResidentTag>, String> {
    s.split([';', '；', '、', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            ResidentTag::ALL
                .into_iter()
                .find(|tag| tag.as_str() == t || tag.label_zh() == t)
                .ok_or_else(|| format!("未知标签 {t:?} / unknown tag {t:?}"))
        })
        .collect()
}

type HouseholdKey = (GridId, String, String, String);

/// One row of a register file as read: its cells, or why it could not be read.
pub type RawRow = Result<Vec<String>, String>;

/// Reads a register file: XLSX (the first sheet) when it is a zip archive, CSV (UTF-8, with or
/// without a byte-order mark) otherwise. The first row is the header.
pub fn read_rows(bytes: &[u8]) -> Result<Vec<RawRow>, String> {
    if bytes.starts_with(b"PK\x03\x04") {
        use calamine::Reader;
        let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
            .map_err(|e| format!("无法读取 Excel 文件 / cannot read the XLSX file: {e}"))?;
        let range = book
            .worksheet_range_at(0)
            .ok_or_else(|| "Excel 文件没有工作表 / the XLSX file has no sheet".to_owned())?
            .map_err(|e| format!("无法读取工作表 / cannot read the sheet: {e}"))?;
        return Ok(range
            .rows()
            .map(|row| Ok(row.iter().map(|c| c.to_string().trim().to_owned()).collect()))
            .collect());
    }
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
        .map_err(|_| "文件不是 UTF-8 编码的 CSV / the file is not UTF-8 CSV".to_owned())?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    Ok(reader
        .records()
        .map(|r| {
            r.map(|record| record.iter().map(str::to_owned).collect())
                .map_err(|e| format!("无法解析此行 / unreadable row: {e}"))
        })
        .collect())
}

/// What an import would create, checked row by row, before anything is written.
#[derive(Clone, Debug, Default)]
pub struct ImportPlan {
    homes: BTreeMap<HouseholdKey, (String, Vec<NewResident>, String)>,
    /// Rows rejected, with line and reason.
    pub rejected: Vec<RejectedRow>,
}

impl ImportPlan {
    /// Households the import would create.
    pub fn households(&self) -> usize {
        self.homes.len()
    }

    /// Residents the import would create.
    pub fn residents(&self) -> usize {
        self.homes.values().map(|h| h.1.len()).sum()
    }

    /// The households as (grid, address line, residents' names), for a preview.
    pub fn preview(&self) -> Vec<(GridId, String, Vec<String>)> {
        self.homes
            .iter()
            .map(|((grid, building, unit, room), (_, residents, _))| {
                let address = [building.as_str(), unit.as_str(), room.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                (*grid, address, residents.iter().map(|r| r.name.clone()).collect())
            })
            .collect()
    }
}

/// Checks every row of a register (header first) against the county's grids.
pub fn plan(grids: &[GridRow], rows: &[RawRow]) -> ImportPlan {
    let mut plan = ImportPlan::default();
    let headers = match rows.first() {
        Some(Ok(h)) => h.clone(),
        Some(Err(e)) => {
            plan.rejected
                .push(RejectedRow {
                    line: 1, reason: format!("无法读取表头 / cannot read the header: {e}")
                });
            return plan;
        }
        None => {
            plan.rejected.push(RejectedRow { line: 1, reason: "文件为空 / the file is empty".into() });
            return plan;
        }
    };
    let mut index = [None; 11];
    for (i, (en, zh)) in COLUMNS.iter().enumerate() {
        index[i] = headers.iter().position(|h| h == *en || h == *zh);
    }
    for (i, (en, zh)) in COLUMNS.iter().enumerate().take(6) {
        if index[i].is_none() && *en != "unit" && *en != "building" {
            plan.rejected
                .push(RejectedRow { line: 1, reason: format!("缺少列 {zh} / missing column {en}") });
        }
    }
    if !plan.rejected.is_empty() {
        return plan;
    }
    // A household is imported whole or not at all: the address as typed (grid, building, unit,
    // room) ties a rejected row to the accepted rows of the same household.
    let mut rejected_addresses: BTreeMap<[String; 4], u64> = BTreeMap::new();
    let mut accepted: Vec<(u64, [String; 4], HouseholdKey)> = Vec::new();
    for (n, record) in rows.iter().enumerate().skip(1) {
        let line = n as u64 + 1;
        let record = match record {
            Ok(r) => r,
            Err(reason) => {
                plan.rejected.push(RejectedRow { line, reason: reason.clone() });
                continue;
            }
        };
        if record.iter().all(String::is_empty) {
            continue;
        }
        let field = |i: usize| index[i].and_then(|c| record.get(c)).cloned().unwrap_or_default();
        let address = [field(1), field(2), field(3), field(4)];
        match check_row(grids, &field) {
            Ok((key, community, resident, notes)) => {
                let entry =
                    plan.homes.entry(key.clone()).or_insert_with(|| (community, Vec::new(), String::new()));
                if !notes.is_empty() && entry.2.is_empty() {
                    entry.2 = notes;
                }
                entry.1.push(resident);
                accepted.push((line, address, key));
            }
            Err(reason) => {
                rejected_addresses.entry(address).or_insert(line);
                plan.rejected.push(RejectedRow { line, reason });
            }
        }
    }
    let tainted: BTreeMap<HouseholdKey, u64> = accepted
        .iter()
        .filter(|(_, address, _)| !address[3].is_empty())
        .filter_map(|(_, address, key)| rejected_addresses.get(address).map(|bad| (key.clone(), *bad)))
        .collect();
    for (line, _, key) in &accepted {
        if let Some(bad) = tainted.get(key) {
            plan.rejected.push(RejectedRow {
                line: *line,
                reason: format!(
                    "同户第 {bad} 行有误，整户未导入 / line {bad} of the same household was rejected, so the household was not imported"
                ),
            });
        }
    }
    plan.homes.retain(|key, _| !tainted.contains_key(key));
    plan.rejected.sort_by_key(|r| r.line);
    plan
}

/// Writes a plan's households, all in one transaction (nothing half-imported), as member `by`.
pub fn apply(
    storage: &dyn Storage,
    plan: &ImportPlan,
    by: MemberId,
    now: Timestamp,
) -> Result<ImportReport, StorageError> {
    let mut report = ImportReport { rejected: plan.rejected.clone(), ..ImportReport::default() };
    let mut docs: Vec<(DocumentId, AutoCommit)> = Vec::new();
    for ((grid, building, unit, room), (community, residents, notes)) in &plan.homes {
        let id = HouseholdId::new_random();
        let new = NewHousehold {
            address: Address {
                community: community.clone(),
                grid: *grid,
                building: building.clone(),
                unit: unit.clone(),
                room: room.clone(),
            },
            residents: residents.clone(),
            notes: notes.clone(),
        };
        let ids: Vec<ResidentId> = new.residents.iter().map(|_| ResidentId::new_random()).collect();
        let mut doc = AutoCommit::new();
        // Every field was checked row by row; a failure here is a bug worth reporting as damage.
        doc::household::create(&mut doc, id, &new, &ids, by, now)
            .map_err(|e| StorageError::Damaged(e.to_string()))?;
        doc.commit();
        report.residents += new.residents.len();
        report.households += 1;
        docs.push((id.into(), doc));
    }
    storage.write_server_documents(&mut docs, now)?;
    Ok(report)
}

/// Imports households from CSV text, written by the server as member `by`.
pub fn import_csv(
    storage: &dyn Storage,
    csv_text: &str,
    by: MemberId,
    now: Timestamp,
) -> Result<ImportReport, StorageError> {
    let rows = match read_rows(csv_text.as_bytes()) {
        Ok(rows) => rows,
        Err(reason) => {
            return Ok(ImportReport {
                rejected: vec![RejectedRow { line: 1, reason }],
                ..Default::default()
            });
        }
    };
    apply(storage, &plan(&storage.grids()?, &rows), by, now)
}

fn check_row(
    grids: &[GridRow],
    field: &dyn Fn(usize) -> String,
) -> Result<(HouseholdKey, String, NewResident, String), String> {
    let community = field(0);
    if community.is_empty() {
        return Err("社区为空 / community is empty".into());
    }
    let grid_text = field(1);
    let grid = grids
        .iter()
        .find(|g| g.id.to_string() == grid_text || g.name == grid_text)
        .map(|g| g.id)
        .ok_or_else(|| format!("未知网格 {grid_text:?} / unknown grid {grid_text:?}"))?;
    let room = field(4);
    if room.is_empty() {
        return Err("门牌/室号为空 / room is empty".into());
    }
    let sex_text = field(6);
    let sex =
        parse_sex(&sex_text).ok_or_else(|| format!("性别无效 {sex_text:?} / invalid sex {sex_text:?}"))?;
    let year_text = field(7);
    let birth_year = if year_text.is_empty() {
        None
    } else {
        Some(
            year_text
                .parse::<i32>()
                .map_err(|_| format!("出生年份无效 {year_text:?} / invalid birth year {year_text:?}"))?,
        )
    };
    let resident =
        NewResident { name: field(5), sex, birth_year, phone: field(8), tags: parse_tags(&field(9))? };
    // Run the same checks the document layer applies, to report them per row.
    let mut scratch = AutoCommit::new();
    let probe = NewHousehold {
        address: Address {
            community: community.clone(),
            grid,
            building: field(2),
            unit: field(3),
            room: room.clone(),
        },
        residents: vec![resident.clone()],
        notes: field(10),
    };
    doc::household::create(
        &mut scratch,
        HouseholdId::new_random(),
        &probe,
        &[ResidentId::new_random()],
        MemberId::new_random(),
        Timestamp(0),
    )
    .map_err(|e| format!("数据无效 / invalid data: {e}"))?;
    Ok(((grid, field(2), field(3), room), community, resident, field(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grids() -> Vec<GridRow> {
        vec![GridRow {
            id: GridId::new_random(),
            name: "第一网格".into(),
            community: "幸福社区".into(),
            street: String::new(),
        }]
    }

    const HEADER: [&str; 11] =
        ["社区", "网格", "楼栋", "单元", "室", "姓名", "性别", "出生年份", "电话", "标签", "备注"];

    #[test]
    fn csv_with_a_byte_order_mark_and_xlsx_give_the_same_plan() {
        let rows = [
            ["幸福社区", "第一网格", "1栋", "1单元", "101", "陈", "女", "1950", "", "独居老人", ""],
            ["幸福社区", "第一网格", "1栋", "1单元", "101", "陈二", "男", "1952", "", "", ""],
            ["幸福社区", "第九网格", "1栋", "1单元", "102", "李", "男", "1960", "", "", ""],
        ];
        let mut csv = b"\xEF\xBB\xBF".to_vec();
        for row in std::iter::once(HEADER).chain(rows) {
            csv.extend_from_slice(row.join(",").as_bytes());
            csv.push(b'\n');
        }
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        for (r, row) in std::iter::once(HEADER).chain(rows).enumerate() {
            for (c, value) in row.iter().enumerate() {
                sheet.write_string(r as u32, c as u16, *value).expect("cell");
            }
        }
        let xlsx = book.save_to_buffer().expect("xlsx");
        let grids = grids();
        for bytes in [csv, xlsx] {
            let plan = plan(&grids, &read_rows(&bytes).expect("readable"));
            assert_eq!((plan.households(), plan.residents()), (1, 2));
            assert_eq!(plan.rejected.len(), 1);
            assert_eq!(plan.rejected[0].line, 4);
            assert!(plan.rejected[0].reason.contains("unknown grid"));
        }
    }

    #[test]
    fn a_household_with_a_rejected_row_is_left_out_whole() {
        let rows = [
            ["幸福社区", "第一网格", "1栋", "1单元", "101", "陈", "女", "1950", "", "", ""],
            ["幸福社区", "第一网格", "1栋", "1单元", "101", "陈二", "外星", "1952", "", "", ""],
            ["幸福社区", "第一网格", "1栋", "1单元", "102", "李", "男", "1960", "", "", ""],
        ];
        let csv: Vec<RawRow> = std::iter::once(HEADER)
            .chain(rows)
            .map(|r| Ok(r.iter().map(|c| (*c).to_owned()).collect()))
            .collect();
        let plan = plan(&grids(), &csv);
        assert_eq!((plan.households(), plan.residents()), (1, 1), "only 102");
        let lines: Vec<u64> = plan.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3]);
        assert!(plan.rejected[0].reason.contains("line 3 of the same household"));
    }

    #[test]
    fn a_file_that_is_neither_is_refused_whole() {
        assert!(read_rows(b"\xFF\xFE\x00garbage").is_err());
        assert!(read_rows(b"PK\x03\x04not a zip").is_err());
        let plan = plan(&grids(), &read_rows("name,phone\n陈,1\n".as_bytes()).expect("csv"));
        assert!(plan.rejected.iter().any(|r| r.line == 1 && r.reason.contains("missing column")));
        assert_eq!(plan.households(), 0);
    }
}
