//! Household register import from CSV (the county's existing spreadsheets). One row per
//! resident; rows with the same grid, building, unit and room make one household. Every row is
//! checked; rejected rows are reported with their line and reason, and the rest are imported.
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

/// Imports households from CSV text, written by the server as member `by`.
pub fn import_csv(
    storage: &dyn Storage,
    csv_text: &str,
    by: MemberId,
    now: Timestamp,
) -> Result<ImportReport, StorageError> {
    let grids = storage.grids()?;
    let mut report = ImportReport::default();
    let mut reader =
        csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(csv_text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            report
                .rejected
                .push(RejectedRow {
                    line: 1, reason: format!("无法读取表头 / cannot read the header: {e}")
                });
            return Ok(report);
        }
    };
    let mut index = [None; 11];
    for (i, (en, zh)) in COLUMNS.iter().enumerate() {
        index[i] = headers.iter().position(|h| h == *en || h == *zh);
    }
    for (i, (en, zh)) in COLUMNS.iter().enumerate().take(6) {
        if index[i].is_none() && *en != "unit" && *en != "building" {
            report
                .rejected
                .push(RejectedRow { line: 1, reason: format!("缺少列 {zh} / missing column {en}") });
        }
    }
    if !report.rejected.is_empty() {
        return Ok(report);
    }
    let mut homes: BTreeMap<HouseholdKey, (String, Vec<NewResident>, String)> = BTreeMap::new();
    for (n, record) in reader.records().enumerate() {
        let line = n as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report
                    .rejected
                    .push(RejectedRow { line, reason: format!("无法解析此行 / unreadable row: {e}") });
                continue;
            }
        };
        let field = |i: usize| index[i].and_then(|c| record.get(c)).unwrap_or("").to_owned();
        match check_row(&grids, &field) {
            Ok((key, community, resident, notes)) => {
                let entry = homes.entry(key).or_insert_with(|| (community, Vec::new(), String::new()));
                if !notes.is_empty() && entry.2.is_empty() {
                    entry.2 = notes;
                }
                entry.1.push(resident);
            }
            Err(reason) => report.rejected.push(RejectedRow { line, reason }),
        }
    }
    let mut docs: Vec<(DocumentId, AutoCommit)> = Vec::new();
    for ((grid, building, unit, room), (community, residents, notes)) in homes {
        let id = HouseholdId::new_random();
        let new =
            NewHousehold { address: Address { community, grid, building, unit, room }, residents, notes };
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
