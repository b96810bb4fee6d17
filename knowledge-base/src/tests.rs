//! Tests against the real national data in `../shared/data` (repo-relative).
//! They fail — they do not skip — when the data is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::NaiveDate;

use crate::condition::{KeywordKind, KeywordTable};
use crate::store::{ICD9_FILE, ICD10_FILE, MANIFEST_FILE, POINTS_FILE};
use crate::{
    ImportOptions, KbStore, KnowledgeBase, date_to_days, diff, import_files, import_national,
    national,
};

/// `../shared/data` relative to the repo root, or `$FUNDWATCH_DATA`.
fn data_dir() -> PathBuf {
    let dir = std::env::var_os("FUNDWATCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    assert!(
        dir.join("nhsa-batches/xlsx").is_dir() && dir.join("icd-chs/ZD_INFO.dat").is_file(),
        "the national data is missing at {} (expected nhsa-batches/ and icd-chs/ as in ../shared/data); \
         these tests check the importers against it and do not skip — set FUNDWATCH_DATA to its location",
        dir.display()
    );
    dir
}

fn xlsx(name: &str) -> PathBuf {
    data_dir().join("nhsa-batches/xlsx").join(name)
}

fn options() -> ImportOptions {
    ImportOptions {
        author: Some("test".into()),
        created_at: Some(chrono::DateTime::UNIX_EPOCH),
        ..ImportOptions::default()
    }
}

/// The engine shares one version across DataFusion threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<KnowledgeBase>();
};

/// The full national import, once per test process.
fn full() -> &'static KnowledgeBase {
    static FULL: OnceLock<KnowledgeBase> = OnceLock::new();
    FULL.get_or_init(|| match import_national(&data_dir(), &options()) {
        Ok(kb) => kb,
        Err(e) => panic!("national import failed: {e}"),
    })
}

fn day(y: i32, m: u32, d: u32) -> i32 {
    date_to_days(NaiveDate::from_ymd_opt(y, m, d).expect("valid date"))
}

fn source_rows(kb: &KnowledgeBase, file: &str) -> u32 {
    kb.manifest()
        .sources
        .iter()
        .find(|s| s.file == file)
        .unwrap_or_else(|| panic!("source {file} not in manifest"))
        .rows
}

fn class_points(kb: &KnowledgeBase, class: &str) -> u64 {
    kb.manifest()
        .counts
        .by_rule_class
        .get(class)
        .map(|c| c.points)
        .unwrap_or(0)
}

#[test]
fn official_counts_per_file() {
    let kb = full();
    // Batch 1: 4,398 + 6,472 + 30 + 390 = 11,290 code rows (DOMAIN §1.5).
    let b1: u32 = [
        "batch01-drug-age.xlsx",
        "batch01-drug-gender.xlsx",
        "batch01-item-age.xlsx",
        "batch01-item-gender.xlsx",
    ]
    .iter()
    .map(|f| source_rows(kb, f))
    .sum();
    assert_eq!(b1, 11_290);
    assert_eq!(source_rows(kb, "batch01-drug-age.xlsx"), 4_398);
    assert_eq!(source_rows(kb, "batch02-item-surgery-discount.xlsx"), 378);
    assert_eq!(source_rows(kb, "batch03-drug-insurance-type.xlsx"), 112);
    assert_eq!(source_rows(kb, "batch04-drug-care-setting.xlsx"), 736);
    assert_eq!(source_rows(kb, "batch05-drug-institution-level.xlsx"), 962);
    assert_eq!(source_rows(kb, "batch06-drug-payment-course.xlsx"), 1_147);
    assert_eq!(source_rows(kb, "batch07-item-duplicate-charge.xlsx"), 900);
    let b8: u32 = [
        "batch08-1-item-frequency.xlsx",
        "batch08-2-item-age.xlsx",
        "batch08-3-item-payment-course.xlsx",
        "batch08-4-item-periodic-frequency.xlsx",
    ]
    .iter()
    .map(|f| source_rows(kb, f))
    .sum();
    assert_eq!(b8, 93);

    let expected: BTreeMap<&str, u64> = [
        // batch 1 (the 儿童 split read from json/batch_01.json)
        ("药品区分性别使用", 481 + 159),
        ("医疗服务项目区分性别使用", 390),
        ("药品儿童专用", 271 + 95),
        ("药品限儿童使用", 11 + 13),
        ("医疗服务项目儿童专用", 30),
        ("手术项目未按规定折价收费", 378),
        ("药品限工伤保险", 9 + 9),
        ("药品限生育保险", 3 + 3),
        ("药品限就医方式", 35 + 41),
        ("药品限医疗机构级别", 61 + 62),
        ("药品限支付疗程", 30 + 29),
        ("医疗服务项目重复收费", 900),
        ("医疗服务项目限定频次", 67),
        ("医疗服务项目限年龄", 1),
        ("医疗服务项目限支付疗程", 11),
        ("医疗服务项目周期超频次", 14),
        ("药品限二线使用", 110),
        ("超互联网医院药品支付范围", 22),
        ("中药饮片单方使用不予支付", 116),
        ("中药饮片单复方均不予支付", 37),
        ("药品限适应症", 510),
    ]
    .into_iter()
    .collect();
    for (class, n) in &expected {
        assert_eq!(class_points(kb, class), *n, "points of {class}");
    }
    assert_eq!(kb.manifest().counts.by_rule_class.len(), expected.len());
    assert_eq!(kb.manifest().counts.points, expected.values().sum::<u64>());
    // data/README.md says 33,303 and 13,685 (`wc -l`); the files lack a final newline, so
    // the last code is not counted there. Every line is one distinct code.
    assert_eq!(kb.manifest().counts.icd10, 33_304);
    assert_eq!(kb.manifest().counts.icd9, 13_686);
    assert_eq!(kb.manifest().counts.unresolved_supersedes, 0);
    // Batch 1 drug sexes: 448 女 + 33 男.
    let sexes = kb
        .points_of_class("药品区分性别使用")
        .filter(|(_, p)| p.batch == "batch_01")
        .fold((0, 0), |(f, m), (_, p)| match p.limit_value.as_deref() {
            Some("女") => (f + 1, m),
            Some("男") => (f, m + 1),
            _ => (f, m),
        });
    assert_eq!(sexes, (448, 33));
    // Batch 7 windows: 单日 446, 单次就诊 429, 6小时 18, 同一小时 7.
    let mut windows: BTreeMap<String, u32> = BTreeMap::new();
    for (_, p) in kb.points_of_class("医疗服务项目重复收费") {
        *windows
            .entry(p.limit_value.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(windows.get("单日"), Some(&446));
    assert_eq!(windows.get("单次就诊"), Some(&429));
    assert_eq!(windows.get("6小时"), Some(&18));
    assert_eq!(windows.get("同一小时"), Some(&7));
    // Batch 6 days: 14天 ×24.
    let fourteen = kb
        .points_of_class("药品限支付疗程")
        .filter(|(_, p)| p.batch == "batch_06" && p.limit_num == Some(14.0))
        .count();
    assert_eq!(fourteen, 24);
}

#[test]
fn xlsx_points_take_json_ids_and_limits() {
    let kb = full();
    let by_id = |id: &str| {
        kb.points()
            .iter()
            .find(|p| p.kp_id == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    // 阿帕他胺片 in batch 1: JSON id, sex from the xlsx 限定对象 column.
    let p = by_id("KP-630264b3f1586762");
    assert_eq!(p.item_name, "阿帕他胺片");
    assert_eq!(p.source_file, "batch01-drug-gender.xlsx");
    assert_eq!(p.limit_value.as_deref(), Some("男"));
    assert_eq!(p.codes.len(), 3);
    // Batch 2 lists 肠粘连松解术 in four groups; each keeps its own JSON id.
    let groups: Vec<(&str, &str)> = kb
        .points_of_class("手术项目未按规定折价收费")
        .filter(|(_, p)| p.item_name == "肠粘连松解术")
        .map(|(_, p)| {
            (
                p.kp_id.as_str(),
                p.limit_value.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(groups.len(), 4);
    assert!(groups.contains(&("KP-8e7c9350a802eee8", "胃肠手术组")));
    assert!(groups.contains(&("KP-ffa43734e41f254e", "女性生殖系统手术组")));
    // Batch 7 pairs by their codes.
    let p = by_id("KP-ecc09d0c65ab6f08");
    assert_eq!(
        (p.codes[0].as_str(), p.partner_codes[0].as_str()),
        ("001103000010000", "001102000030000")
    );
    assert_eq!(p.partner_name.as_deref(), Some("急诊诊查费"));
    assert_eq!(p.limit_value.as_deref(), Some("单日"));
    // Batch 8: the frequency number and unit (天 → 日) the JSON drops.
    let p = kb
        .points_of_class("医疗服务项目限定频次")
        .find(|(_, p)| p.item_name == "硬膜外连续镇痛")
        .map(|(_, p)| p);
    let p = p.expect("硬膜外连续镇痛");
    assert_eq!(
        (p.limit_num, p.limit_value.as_deref()),
        (Some(1.0), Some("日"))
    );
    let p = kb
        .points_of_class("医疗服务项目周期超频次")
        .find(|(_, p)| p.item_name == "糖化血红蛋白测定")
        .map(|(_, p)| p);
    let p = p.expect("糖化血红蛋白测定");
    assert_eq!((p.limit_num, p.period_days), (Some(1.0), Some(15.0)));
    let p = kb
        .points_of_class("医疗服务项目限支付疗程")
        .find(|(_, p)| p.item_name == "儿童听力障碍语言训练")
        .map(|(_, p)| p);
    assert_eq!(p.expect("儿童听力障碍语言训练").limit_num, Some(365.0));
    // Every xlsx point of batches 1–8 found its JSON id.
    let derived = kb
        .points()
        .iter()
        .filter(|p| p.kp_id.starts_with("KPD-"))
        .count();
    assert_eq!(derived, 0);
    // Dates from the README.
    assert_eq!(
        by_id("KP-630264b3f1586762").effective_from,
        NaiveDate::from_ymd_opt(2025, 5, 23).expect("date")
    );
    let b12 = kb
        .points()
        .iter()
        .find(|p| p.batch == "batch_12")
        .expect("batch 12");
    assert_eq!(
        b12.effective_from,
        NaiveDate::from_ymd_opt(2026, 5, 23).expect("date")
    );
    assert_eq!(
        kb.manifest().effective_from,
        NaiveDate::from_ymd_opt(2026, 6, 29).expect("date")
    );
}

#[test]
fn supersede_links_end_old_points_and_inherit_limits() {
    let kb = full();
    let old = kb
        .points()
        .iter()
        .find(|p| p.kp_id == "KP-630264b3f1586762")
        .expect("old");
    let new = kb
        .points()
        .iter()
        .find(|p| p.kp_id == "KP-9d2200dd87d22a1a")
        .expect("new");
    assert_eq!(new.supersedes.as_deref(), Some("KP-630264b3f1586762"));
    assert_eq!(old.effective_to, NaiveDate::from_ymd_opt(2026, 1, 28));
    assert_eq!(new.effective_to, None);
    assert_eq!(
        new.limit_value.as_deref(),
        Some("男"),
        "sex inherited from the batch-1 xlsx"
    );
    let superseded: u64 = kb
        .manifest()
        .counts
        .by_rule_class
        .values()
        .map(|c| c.superseded)
        .sum();
    assert_eq!(superseded, 397);
    // Every update point has a limit: inherited, or derived from its text.
    for p in kb.points().iter().filter(|p| p.batch == "updates_2026-01") {
        assert!(
            p.limit_value.is_some(),
            "{} {} has no limit",
            p.rule_class,
            p.item_name
        );
    }
    let derived = |name: &str| {
        kb.points()
            .iter()
            .find(|p| p.batch == "updates_2026-01" && p.item_name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(
        derived("注射用黄芪多糖").limit_value.as_deref(),
        Some("住院")
    );
    assert_eq!(
        derived("布西珠单抗注射液").limit_value.as_deref(),
        Some("三级")
    );
    assert_eq!(
        derived("氘恩扎鲁胺软胶囊").limit_value.as_deref(),
        Some("男")
    );
    // 限支付疗程 days carried over from batch 6 (with the number).
    let p = kb
        .points()
        .iter()
        .find(|p| {
            p.batch == "updates_2026-01"
                && p.rule_class == "药品限支付疗程"
                && p.item_name == "注射用尤瑞克林"
        })
        .expect("注射用尤瑞克林");
    assert_eq!(
        (p.limit_value.as_deref(), p.limit_num),
        (Some("21天"), Some(21.0))
    );
}

#[test]
fn lookups_exact_prefix_and_dates() {
    let kb = full();
    let sex = kb.class_id("药品区分性别使用").expect("class");
    let code = "XL02BBA326A001010102180"; // 阿帕他胺片
    // Before batch 1: nothing in force.
    assert_eq!(kb.lookup(sex, code, day(2025, 5, 22)), None);
    // Batch 1 point until the update, then the update point.
    let r1 = kb
        .lookup(sex, code, day(2025, 5, 23))
        .expect("batch 1 in force");
    assert_eq!(kb.point(r1).kp_id, "KP-630264b3f1586762");
    assert_eq!(kb.lookup(sex, code, day(2026, 1, 27)), Some(r1));
    let r2 = kb
        .lookup(sex, code, day(2026, 1, 28))
        .expect("update in force");
    assert_eq!(kb.point(r2).kp_id, "KP-9d2200dd87d22a1a");
    // Input is trimmed.
    assert_eq!(
        kb.lookup(sex, &format!("  {code} "), day(2026, 2, 1)),
        Some(r2)
    );
    // A code of the same generic/form/spec (first 12 chars) from another maker
    // matches by prefix; exact matches win.
    let other_maker = "XL02BBA326A0XXXXXXXXXXX";
    let rp = kb
        .lookup(sex, other_maker, day(2026, 2, 1))
        .expect("prefix match");
    assert_eq!(kb.point(rp).item_name, "阿帕他胺片");
    assert!(kb.point(rp).codes.iter().all(|c| c != other_maker));
    // Unknown codes and short codes: no match.
    assert_eq!(
        kb.lookup(sex, "XZ99ZZZ999Z999999999999", day(2026, 2, 1)),
        None
    );
    assert_eq!(kb.lookup(sex, "XL02", day(2026, 2, 1)), None);
    // Service items match exactly only.
    let items = kb.class_id("医疗服务项目区分性别使用").expect("class");
    let r = kb
        .lookup(items, "002101030300000", day(2025, 6, 1))
        .expect("子宫造影");
    assert_eq!(kb.point(r).limit_value.as_deref(), Some("女"));
    assert_eq!(kb.lookup(items, "002101030300001", day(2025, 6, 1)), None);
    // A code listed in several groups (batch 2): all rows, the first is `lookup`'s.
    let groups = kb.class_id("手术项目未按规定折价收费").expect("class");
    let rows: Vec<u32> = kb
        .lookup_all(groups, "003310030080000", day(2025, 8, 1))
        .collect();
    assert_eq!(rows.len(), 4, "肠粘连松解术 is in four surgical groups");
    assert_eq!(
        kb.lookup(groups, "003310030080000", day(2025, 8, 1)),
        rows.first().copied()
    );
    assert_eq!(
        kb.lookup_all(groups, "003310030080000", day(2025, 7, 21))
            .count(),
        0
    );
    // Unknown classes have no id.
    assert_eq!(kb.class_id("不存在的规则"), None);
    assert!(kb.rule_classes().contains(&"药品限适应症".to_string()));
    assert_eq!(
        kb.icd10("A00.000"),
        Some("霍乱，由于O1群霍乱弧菌，霍乱生物型所致")
    );
}

#[test]
fn pair_lookup() {
    let kb = full();
    let dup = kb.class_id("医疗服务项目重复收费").expect("class");
    let (main, sub) = ("001103000010000", "001102000030000"); // 急诊监护费 × 急诊诊查费
    assert!(kb.in_any_pair(dup, main) && kb.in_any_pair(dup, sub));
    assert!(!kb.in_any_pair(dup, "XL02BBA326A001010102180"));
    let r = kb
        .lookup_pair(dup, main, sub, day(2025, 12, 12))
        .expect("pair in force");
    assert_eq!(kb.point(r).partner_name.as_deref(), Some("急诊诊查费"));
    assert_eq!(
        kb.lookup_pair(dup, main, sub, day(2025, 12, 11)),
        None,
        "before batch 7"
    );
    assert_eq!(
        kb.lookup_pair(dup, sub, main, day(2026, 1, 1)),
        None,
        "order matters: main, then sub"
    );
}

#[test]
fn batch8_on_top_of_1_to_7_adds_exactly_93_points() {
    let dir = data_dir();
    let xlsx_dir = dir.join("nhsa-batches/xlsx");
    let mut first: Vec<PathBuf> = Vec::new();
    let mut eighth: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&xlsx_dir).expect("xlsx dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".xlsx") {
            continue;
        }
        if name.starts_with("batch08") {
            eighth.push(path);
        } else {
            first.push(path);
        }
    }
    first.sort();
    eighth.sort();
    assert_eq!((first.len(), eighth.len()), (10, 4));
    let v7 = import_files(None, &first, &options()).expect("batches 1–7");
    let v8 = import_files(Some(&v7), &eighth, &options()).expect("batch 8 on top");
    assert_eq!(v8.manifest().base.as_deref(), Some(v7.id()));
    assert_eq!(
        v7.manifest().effective_from,
        NaiveDate::from_ymd_opt(2025, 12, 12).expect("date")
    );
    assert_eq!(
        v8.manifest().effective_from,
        NaiveDate::from_ymd_opt(2026, 1, 6).expect("date")
    );
    let d = diff(&v7, &v8);
    assert_eq!(d.added.len(), 93);
    assert!(
        d.removed.is_empty() && d.changed.is_empty(),
        "{:?}",
        d.changed.first()
    );
    assert!(
        d.added
            .iter()
            .all(|c| c.rule_class.starts_with("医疗服务项目"))
    );
    // Re-importing a file replaces its points instead of duplicating them.
    let again = import_files(Some(&v8), &eighth[..1], &options()).expect("re-import 8-1");
    assert_eq!(again.manifest().content_hash, v8.manifest().content_hash);
    // The same 93 points from the full import: same ids and content.
    let full_ids: std::collections::HashSet<&str> =
        full().points().iter().map(|p| p.kp_id.as_str()).collect();
    assert!(d.added.iter().all(|c| full_ids.contains(c.kp_id.as_str())));
}

#[test]
fn diff_reports_changed_fields() {
    let kb = full();
    let v = import_files(
        Some(kb),
        &[],
        &ImportOptions {
            effective_from: None,
            ..options()
        },
    )
    .expect("same");
    assert!(diff(kb, &v).is_empty());
    let later = import_files(
        Some(kb),
        &[xlsx("batch08-1-item-frequency.xlsx")],
        &ImportOptions {
            effective_from: NaiveDate::from_ymd_opt(2026, 2, 1),
            ..options()
        },
    )
    .expect("re-dated batch 8-1");
    let d = diff(kb, &later);
    assert_eq!(d.changed.len(), 67);
    assert!(
        d.changed
            .iter()
            .all(|c| c.fields == vec!["effective_from".to_string()])
    );
    assert!(d.added.is_empty() && d.removed.is_empty());
}

#[test]
fn save_load_round_trip_and_immutability() {
    let kb = full();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = KbStore::new(tmp.path());
    let dir = store.save(kb).expect("save");
    for f in [MANIFEST_FILE, POINTS_FILE, ICD10_FILE, ICD9_FILE] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let back = store.load(kb.id()).expect("load");
    assert_eq!(back.manifest(), kb.manifest());
    assert_eq!(back.points(), kb.points());
    assert_eq!(back.icd10_codes(), kb.icd10_codes());
    assert_eq!(back.icd9_codes(), kb.icd9_codes());
    // Same content again: fine. Different content under the same id: refused.
    assert_eq!(store.save(kb).expect("idempotent"), dir);
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).expect("manifest");
    let tampered = text.replace(&kb.manifest().content_hash, &"0".repeat(64));
    std::fs::write(&manifest_path, tampered).expect("write");
    let err = store.save(kb).expect_err("conflict").to_string();
    assert!(err.contains("immutable"), "{err}");
    let err = store.load(kb.id()).expect_err("corrupt").to_string();
    assert!(err.contains("damaged"), "{err}");
    // Listing and not-found errors.
    assert_eq!(store.list().expect("list").len(), 1);
    let err = store
        .load("kb-19700101-00000000")
        .expect_err("missing")
        .to_string();
    assert!(err.contains("national"), "{err}");
    assert!(kb.id().starts_with("kb-20260629-"));
}

#[test]
fn keyword_prefixes_exist_in_icd10() {
    let codes: Vec<String> = std::fs::read_to_string(data_dir().join("icd-chs/ZD_INFO.dat"))
        .expect("ZD_INFO.dat")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(codes.len(), 33_304);
    let table = KeywordTable::builtin().expect("table");
    let mut missing = Vec::new();
    for e in table.entries() {
        if let KeywordKind::Prefixes(prefixes) = &e.kind {
            for p in prefixes {
                if !codes.iter().any(|c| c.starts_with(p.as_str())) {
                    missing.push(format!("{} → {p}", e.keyword));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "prefixes matching no ICD-10 医保版 code: {missing:?}"
    );
}

#[test]
fn indication_conditions_are_measured() {
    let kb = full();
    let c = kb
        .manifest()
        .counts
        .by_rule_class
        .get("药品限适应症")
        .expect("class")
        .clone();
    assert_eq!(c.with_condition, 510);
    // The counts in docs/knowledge-base.md; change both together.
    assert_eq!(
        (c.dx_decidable, c.needs_evidence, c.fully_decidable),
        (451, 277, 210),
        "{c:?}"
    );
    let s = kb
        .manifest()
        .counts
        .by_rule_class
        .get("药品限二线使用")
        .expect("class")
        .clone();
    assert_eq!(s.needs_evidence, 110);
    assert_eq!(s.dx_decidable, 86);
    // Spot checks of real points.
    let find = |name: &str| {
        kb.points_of_class("药品限适应症")
            .find(|(_, p)| p.item_name == name)
            .and_then(|(_, p)| p.condition.clone())
            .unwrap_or_else(|| panic!("{name}"))
    };
    let c = find("艾地骨化醇软胶囊");
    assert!(c.dx_decidable && !c.needs_evidence);
    assert_eq!(
        (c.dx_prefixes.clone(), c.sex.as_deref()),
        (vec!["M80".to_string(), "M81".to_string()], Some("2"))
    );
    let c = find("阿加糖酶α注射用浓溶液");
    assert_eq!(c.dx_prefixes, vec!["E75.2"]);
    let c = find("注射用磷酸氟达拉滨");
    assert_eq!(c.dx_prefixes, vec!["C91.1"]);
    assert!(c.needs_evidence);
    let c = find("米非司酮片");
    assert!(!c.dx_decidable, "生育保险 alternative is not a diagnosis");
    // Every decidable prefix is a real ICD-10 category of this version.
    for (_, p) in kb.points_of_class("药品限适应症") {
        if let Some(c) = &p.condition {
            for prefix in &c.dx_prefixes {
                assert!(kb.icd10_with_prefix(prefix).next().is_some(), "{prefix}");
            }
        }
    }
}

/// The shipped national version must equal a fresh import of `../shared/data`.
/// Run with `FUNDWATCH_BLESS=1` to rewrite `knowledge-base/national/` after a
/// deliberate change (importer, keyword table, data), then rebuild.
#[test]
fn national_matches_a_fresh_import() {
    let fresh = full();
    let bless = std::env::var_os("FUNDWATCH_BLESS").is_some_and(|v| v == "1");
    let shipped = national();
    let same =
        matches!(&shipped, Ok(s) if s.manifest().content_hash == fresh.manifest().content_hash);
    if same {
        return;
    }
    if bless {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("national");
        std::fs::create_dir_all(&out).expect("national dir");
        let shipped = import_national(
            &data_dir(),
            &ImportOptions {
                author: Some("fundwatch-kb national import".into()),
                notes: Some(
                    "National batches 1–8 (official xlsx), 9–17 and the 2026-01 update (JSON), ICD-10 医保版 2.0 and ICD-9-CM-3 from ../shared/data"
                        .into(),
                ),
                ..ImportOptions::default()
            },
        )
        .expect("national import");
        crate::store::write_version(&out, &shipped).expect("write national");
        eprintln!(
            "rewrote {} as {}; rebuild to embed it",
            out.display(),
            shipped.id()
        );
        return;
    }
    match shipped {
        Ok(s) => panic!(
            "knowledge-base/national ({}, hash {}) differs from a fresh import of {} ({}, hash {}); \
             if the change is intended run `FUNDWATCH_BLESS=1 cargo test -p fundwatch-kb national_matches_a_fresh_import` and rebuild",
            s.id(),
            s.manifest().content_hash,
            data_dir().display(),
            fresh.id(),
            fresh.manifest().content_hash
        ),
        Err(e) => panic!(
            "the shipped national version cannot be loaded ({e}); run `FUNDWATCH_BLESS=1 cargo test -p fundwatch-kb national_matches_a_fresh_import` and rebuild"
        ),
    }
}

#[test]
fn errors_name_file_sheet_row_column_and_value() {
    // The batch-1 age list without json/batch_01.json next to it cannot tell
    // 药品儿童专用 from 药品限儿童使用.
    let tmp = tempfile::tempdir().expect("tempdir");
    let lone = tmp.path().join("batch01-drug-age.xlsx");
    std::fs::copy(xlsx("batch01-drug-age.xlsx"), &lone).expect("copy");
    let err = import_files(None, &[lone], &options())
        .expect_err("no companion json")
        .to_string();
    for part in [
        "batch01-drug-age.xlsx",
        "Sheet1",
        "row 2",
        "限定类型",
        "限定年龄对象",
        "json/batch_01.json",
    ] {
        assert!(err.contains(part), "{part:?} missing in: {err}");
    }
    // A JSON of batches 1–8 is refused with the reason.
    let json8 = data_dir().join("nhsa-batches/json/batch_08.json");
    let err = import_files(None, &[json8], &options())
        .expect_err("batch 8 json")
        .to_string();
    assert!(err.contains("xlsx attachments of batch 8"), "{err}");
    // A missing file names its path.
    let err = import_files(None, &[tmp.path().join("batch_12.json")], &options())
        .expect_err("missing")
        .to_string();
    assert!(err.contains("batch_12.json"), "{err}");
}
