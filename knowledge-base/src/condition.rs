//! Reading a national constraint text (限定支付范围) into a [`Condition`].
//!
//! The national lists publish each restriction as Chinese free text. Settlement
//! data carry diagnoses (ICD-10 医保版), age, sex and setting, so this module
//! extracts exactly those dimensions and marks what the data cannot decide:
//!
//! 1. **Segments.** The text is cut into alternative indications: numbered items
//!    (`1.… ；2.…`) or, without numbers, the `；`-separated clauses of the first
//!    sentence. Words before the first item (or before a `：`) are a preamble that
//!    applies to every item; sentences after the list, and an `应同时符合以下条件`
//!    list, are global conditions. Safety statements (`尚未确定…安全性`) are dropped.
//! 2. **Diagnoses.** Each segment is scanned leftmost-longest against the curated
//!    [`KeywordTable`] (`data/indication_keywords.csv`). A segment is mapped when it
//!    (or the preamble) hits at least one diagnosis keyword, hits no `BLOCK` row,
//!    and no disease word (病, 症, 癌, 瘤, 炎, 感染 …) is left outside the hits and
//!    outside parentheses. `dx_decidable` = every segment mapped. The prefixes of
//!    all segments are united: where a text says "A 伴 B" both A's and B's codes
//!    pass, which can only lose alerts, never raise a false one.
//! 3. **Age, sex, setting** per segment (numbers such as `3-12岁`, `5至12岁以下`,
//!    `12岁及以上`, `≥18周岁`, `1月龄`; `成人` = 18; `儿童` alone gives no number
//!    because the child age is a rule-pack parameter), combined over segments as a
//!    union: a bound holds only if every segment has one.
//! 4. **Evidence.** Words naming a test or biomarker, a prior therapy or failure,
//!    or a clinical assessment set `needs_evidence`; severity and stage words
//!    (中重度, 晚期, 转移性) do not, see `docs/knowledge-base.md`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

use crate::error::KbError;
use crate::model::Condition;

/// Rule class whose texts are indications (batches 12–17).
pub const CLASS_INDICATION: &str = "药品限适应症";
/// Rule class whose texts are second-line indications (batch 9).
pub const CLASS_SECOND_LINE: &str = "药品限二线使用";
/// Rule class whose texts carry child age bands (batch 1, 2026-01 update).
pub const CLASS_CHILD_LIMITED: &str = "药品限儿童使用";

/// The curated keyword table, checked in as data.
const BUILTIN_KEYWORDS: &str = include_str!("../data/indication_keywords.csv");
/// Path of the checked-in keyword table, for error messages.
const BUILTIN_KEYWORDS_PATH: &str = "knowledge-base/data/indication_keywords.csv";

/// What a keyword row does when it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeywordKind {
    /// A diagnosis: any of these ICD-10 医保版 prefixes satisfies it.
    Prefixes(Vec<String>),
    /// Recognised wording no diagnosis code can decide (prophylaxis, a procedure,
    /// an insurance type): the segment it occurs in is not decidable.
    Block,
    /// A qualifier consumed without effect (gene names, organisms, "疾病进展"), so
    /// the residual check does not mistake it for an unmapped disease.
    Ignore,
}

/// One row of the keyword table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordEntry {
    /// The wording as it appears in the national texts.
    pub keyword: String,
    /// What a match means.
    pub kind: KeywordKind,
    /// Curator's note (English or Chinese).
    pub note: String,
}

/// The keyword table: wording of the national texts → ICD-10 医保版 prefixes.
#[derive(Debug, Clone)]
pub struct KeywordTable {
    entries: Vec<KeywordEntry>,
    /// First char → entry indexes, longest keyword first.
    by_first: HashMap<char, Vec<usize>>,
}

impl KeywordTable {
    /// Parses a table in the `keyword,icd10_prefixes,note` CSV format (`#` starts
    /// a comment line; `icd10_prefixes` is `;`-separated, or `BLOCK`, or `IGNORE`).
    pub fn parse(text: &str, origin: &Path) -> Result<Self, KbError> {
        let mut reader = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .flexible(false)
            .from_reader(text.as_bytes());
        let header_ok = reader
            .headers()
            .map(|h| h.iter().collect::<Vec<_>>() == ["keyword", "icd10_prefixes", "note"])
            .unwrap_or(false);
        if !header_ok {
            return Err(KbError::Line {
                path: origin.to_path_buf(),
                line: 1,
                text: text.lines().next().unwrap_or_default().to_string(),
                problem: "the header must be keyword,icd10_prefixes,note".into(),
            });
        }
        let mut entries: Vec<KeywordEntry> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| KbError::Line {
                path: origin.to_path_buf(),
                line: e.position().map(|p| p.line() as usize).unwrap_or(0),
                text: String::new(),
                problem: format!("not a 3-column CSV row: {e}"),
            })?;
            let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
            let bad = |problem: String| KbError::Line {
                path: origin.to_path_buf(),
                line,
                text: record.iter().collect::<Vec<_>>().join(","),
                problem,
            };
            let keyword = record.get(0).unwrap_or_default().trim().to_string();
            let prefixes = record.get(1).unwrap_or_default().trim();
            let note = record.get(2).unwrap_or_default().trim().to_string();
            if keyword.is_empty() {
                return Err(bad("empty keyword".into()));
            }
            if let Some(first) = seen.get(&keyword) {
                return Err(bad(format!(
                    "keyword {keyword:?} is already defined on line {first}"
                )));
            }
            let kind = match prefixes {
                "BLOCK" => KeywordKind::Block,
                "IGNORE" => KeywordKind::Ignore,
                "" => {
                    return Err(bad(
                        "icd10_prefixes is empty; write ICD-10 prefixes, BLOCK or IGNORE".into(),
                    ));
                }
                list => {
                    let parts: Vec<String> =
                        list.split(';').map(|p| p.trim().to_string()).collect();
                    if parts
                        .iter()
                        .any(|p| p.is_empty() || p.contains(char::is_whitespace))
                    {
                        return Err(bad(format!(
                            "bad prefix list {list:?}; expected e.g. M80;M81"
                        )));
                    }
                    KeywordKind::Prefixes(parts)
                }
            };
            seen.insert(keyword.clone(), line);
            entries.push(KeywordEntry {
                keyword,
                kind,
                note,
            });
        }
        let mut by_first: HashMap<char, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(c) = e.keyword.chars().next() {
                by_first.entry(c).or_default().push(i);
            }
        }
        for list in by_first.values_mut() {
            list.sort_by_key(|&i| std::cmp::Reverse(entries[i].keyword.chars().count()));
        }
        Ok(KeywordTable { entries, by_first })
    }

    /// The checked-in table `knowledge-base/data/indication_keywords.csv`.
    pub fn builtin() -> Result<&'static KeywordTable, KbError> {
        static BUILTIN: OnceLock<Result<KeywordTable, String>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                KeywordTable::parse(BUILTIN_KEYWORDS, Path::new(BUILTIN_KEYWORDS_PATH))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| KbError::format(BUILTIN_KEYWORDS_PATH, e))
    }

    /// All rows, in file order.
    pub fn entries(&self) -> &[KeywordEntry] {
        &self.entries
    }

    /// Leftmost-longest scan; a diagnosis hit absorbs a directly following 症/病
    /// (`骨质疏松` + `症`).
    fn scan(&self, s: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let Some(c) = s[i..].chars().next() else {
                break;
            };
            let found = self.by_first.get(&c).and_then(|list| {
                list.iter()
                    .copied()
                    .find(|&k| s[i..].starts_with(self.entries[k].keyword.as_str()))
            });
            match found {
                Some(k) => {
                    let mut end = i + self.entries[k].keyword.len();
                    if matches!(self.entries[k].kind, KeywordKind::Prefixes(_))
                        && (s[end..].starts_with('症') || s[end..].starts_with('病'))
                    {
                        end += '症'.len_utf8();
                    }
                    hits.push(Hit {
                        start: i,
                        end,
                        entry: k,
                    });
                    i = end;
                }
                None => i += c.len_utf8(),
            }
        }
        hits
    }
}

/// One keyword occurrence: byte span in the scanned text and the table row.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    entry: usize,
}

/// The diagnosis reading of one piece of text.
#[derive(Debug, Default)]
struct DxReading {
    prefixes: BTreeSet<String>,
    blocked: bool,
    /// Disease words left outside keyword hits and parentheses.
    residual: Vec<String>,
}

fn read_dx(table: &KeywordTable, s: &str) -> DxReading {
    let mut out = DxReading::default();
    let hits = table.scan(s);
    let mut rest = String::with_capacity(s.len());
    let mut pos = 0;
    for h in &hits {
        rest.push_str(&s[pos..h.start]);
        rest.push(' ');
        pos = h.end;
        match &table.entries[h.entry].kind {
            KeywordKind::Block => out.blocked = true,
            KeywordKind::Ignore => {}
            KeywordKind::Prefixes(p) => out.prefixes.extend(p.iter().cloned()),
        }
    }
    rest.push_str(&s[pos..]);
    let rest = re(&PARENS, r"[(（\[【][^)）\]】]*[)）\]】]").replace_all(&rest, " ");
    out.residual = re(&DISEASE_WORD, DISEASE_WORD_PATTERN)
        .find_iter(&rest)
        .map(|m| m.as_str().to_string())
        .collect();
    out
}

static PARENS: OnceLock<Regex> = OnceLock::new();
static DISEASE_WORD: OnceLock<Regex> = OnceLock::new();
/// Words that name a disease; any of them left unmapped makes a segment undecidable.
const DISEASE_WORD_PATTERN: &str = "病|症|癌|瘤|炎|感染|综合征|衰竭|损伤|贫血|骨折|梗死|梗塞|阻塞|狭窄|缺乏|缺陷|不全|障碍|中毒|休克|哮喘|高血压|结石|溃疡|疼痛|烧伤|水肿|纤维化|硬化|排斥|排异|亢进|低下|呕吐|便秘|腹水|积液|血症|脓毒|败血";

/// Compiles a constant pattern of this module once.
fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are literals of this module, all exercised by the unit tests.
    cell.get_or_init(|| Regex::new(pattern).expect("constant pattern compiles"))
}

/// A constraint text cut into alternative indications.
#[derive(Debug, Default, PartialEq)]
struct Segmented {
    preamble: String,
    segments: Vec<String>,
    trailer: String,
}

/// Text normalisation for reading only (the stored text is kept verbatim): line
/// breaks removed, the Kangxi radical ⼉ (U+2F09) found in two national texts
/// read as 儿.
fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .map(|c| if c == '\u{2F09}' { '儿' } else { c })
        .collect()
}

fn segment(text: &str) -> Segmented {
    let mut kept = String::new();
    for sentence in text.split_inclusive('。') {
        if !sentence.contains("尚未确定") {
            kept.push_str(sentence);
        }
    }
    let mut t = kept.as_str();
    let mut extra = "";
    if let Some(i) = t.find("同时符合以下条件") {
        let start = if t[..i].ends_with('应') {
            i - '应'.len_utf8()
        } else {
            i
        };
        extra = &t[start..];
        t = &t[..start];
    }

    // Numbered items 1., 2., … each after a delimiter; numbering must be sequential
    // so that decimals (4.5小时, 0.05) are never taken for item marks.
    let mut marks: Vec<(usize, usize)> = Vec::new(); // (mark start, item text start)
    let mut from = 0;
    for n in 1..=ITEM_MARKS {
        let Some(m) = item_mark(n).find_at(t, from) else {
            break;
        };
        marks.push((m.start(), m.end()));
        from = m.end();
    }
    if marks.len() >= 2 {
        let preamble = t[..marks[0].0].to_string();
        let mut segments: Vec<String> = Vec::new();
        for (k, &(_, begin)) in marks.iter().enumerate() {
            let end = marks.get(k + 1).map(|m| m.0).unwrap_or(t.len());
            segments.push(t[begin..end].to_string());
        }
        let mut trailer = String::new();
        if let Some(last) = segments.last_mut()
            && let Some(k) = last.find('。')
        {
            let cut = k + '。'.len_utf8();
            trailer = last[cut..].to_string();
            last.truncate(cut);
        }
        trailer.push_str(extra);
        return Segmented {
            preamble,
            segments,
            trailer,
        };
    }

    let (first, rest) = match t.find('。') {
        Some(k) => t.split_at(k + '。'.len_utf8()),
        None => (t, ""),
    };
    let first = first
        .strip_prefix("适用于")
        .or_else(|| first.strip_prefix('限'))
        .unwrap_or(first);
    let first = first
        .strip_prefix('：')
        .or_else(|| first.strip_prefix(':'))
        .unwrap_or(first);
    let (preamble, body) = match first.find(['：', ':']) {
        Some(k) => {
            let colon = first[k..].chars().next().map(char::len_utf8).unwrap_or(1);
            (&first[..k], &first[k + colon..])
        }
        None => ("", first),
    };
    let segments = body
        .split(['；', ';'])
        .filter(|s| {
            !s.trim_matches(|c: char| c == '。' || c.is_whitespace())
                .is_empty()
        })
        .map(str::to_string)
        .collect();
    Segmented {
        preamble: preamble.to_string(),
        segments,
        trailer: format!("{rest}{extra}"),
    }
}

const ITEM_MARKS: usize = 20;

fn item_mark(n: usize) -> &'static Regex {
    static MARKS: OnceLock<Vec<Regex>> = OnceLock::new();
    let marks = MARKS.get_or_init(|| {
        (1..=ITEM_MARKS)
            .map(|k| {
                Regex::new(&format!(r"(?:^|[：:；;。，,\s限])\s*{k}[\.．、]"))
                    .expect("constant pattern compiles")
            })
            .collect()
    });
    &marks[(n - 1).min(ITEM_MARKS - 1)]
}

/// Age bounds in years (min, max; inclusive, completed years) named by one piece
/// of text.
fn read_ages(s: &str) -> (Option<f64>, Option<f64>) {
    static RANGE: OnceLock<Regex> = OnceLock::new();
    static MIN_YEARS: OnceLock<Regex> = OnceLock::new();
    static MIN_GE: OnceLock<Regex> = OnceLock::new();
    static MIN_MONTHS: OnceLock<Regex> = OnceLock::new();
    static MIN_DAYS: OnceLock<Regex> = OnceLock::new();
    static MAX_LE: OnceLock<Regex> = OnceLock::new();
    static MAX_LT: OnceLock<Regex> = OnceLock::new();
    static MAX_BELOW: OnceLock<Regex> = OnceLock::new();
    static ADULT: OnceLock<Regex> = OnceLock::new();
    static CHILD: OnceLock<Regex> = OnceLock::new();

    let mut mins: Vec<f64> = Vec::new();
    let mut maxs: Vec<f64> = Vec::new();
    let num = |t: &str| t.parse::<f64>().ok();

    // Ranges first ("3-12岁", "2岁至<18岁", "5至12岁以下", "1月龄至18岁"); their text
    // is removed before the one-sided patterns run.
    let range = re(
        &RANGE,
        r"(\d+(?:\.\d+)?)\s*(岁|周岁|月龄|个月)?\s*(?:至|-|－|~|～|到)\s*([<＜]\s*)?(\d+)\s*(?:岁|周岁)(以下)?",
    );
    let mut rest = String::with_capacity(s.len());
    let mut pos = 0;
    for c in range.captures_iter(s) {
        let (Some(all), Some(lo), Some(hi)) = (c.get(0), c.get(1), c.get(4)) else {
            continue;
        };
        let (Some(mut lo), Some(mut hi)) = (num(lo.as_str()), num(hi.as_str())) else {
            continue;
        };
        if matches!(c.get(2).map(|m| m.as_str()), Some("月龄" | "个月")) {
            lo /= 12.0;
        }
        if c.get(3).is_some() || c.get(5).is_some() {
            hi -= 1.0; // "<18岁" / "12岁以下": completed years ≤ 17 / 11
        }
        mins.push(lo);
        maxs.push(hi);
        rest.push_str(&s[pos..all.start()]);
        rest.push(' ');
        pos = all.end();
    }
    rest.push_str(&s[pos..]);
    let r = rest.as_str();

    for c in re(&MIN_GE, r"(?:≥|>=|大于等于)\s*(\d+)\s*(?:周岁|岁)").captures_iter(r) {
        mins.extend(c.get(1).and_then(|m| num(m.as_str())));
    }
    for c in re(
        &MIN_YEARS,
        r"(\d+)\s*(?:周岁|岁)\s*(?:及|或)?\s*(?:\d+\s*(?:周岁|岁))?\s*以上",
    )
    .captures_iter(r)
    {
        mins.extend(c.get(1).and_then(|m| num(m.as_str())));
    }
    for c in re(&MIN_MONTHS, r"(\d+)\s*(?:月龄|个月)\s*(?:及|或)?\s*以上").captures_iter(r)
    {
        mins.extend(c.get(1).and_then(|m| num(m.as_str())).map(|v| v / 12.0));
    }
    for c in re(&MIN_DAYS, r"(\d+)\s*日龄\s*(?:及|或)?\s*以上").captures_iter(r) {
        mins.extend(c.get(1).and_then(|m| num(m.as_str())).map(|v| v / 365.0));
    }
    for c in re(&MAX_LE, r"(?:≤|<=)\s*(\d+)\s*(?:周岁|岁)").captures_iter(r) {
        maxs.extend(c.get(1).and_then(|m| num(m.as_str())));
    }
    for c in re(&MAX_LT, r"[<＜]\s*(\d+)\s*(?:周岁|岁)").captures_iter(r) {
        maxs.extend(c.get(1).and_then(|m| num(m.as_str())).map(|v| v - 1.0));
    }
    for c in re(&MAX_BELOW, r"(\d+)\s*(?:周岁|岁)\s*以下").captures_iter(r) {
        maxs.extend(c.get(1).and_then(|m| num(m.as_str())).map(|v| v - 1.0));
    }
    // Adults have no upper bound ("成人和12至＜18岁青少年" → 12 and up); "成人"
    // alone means 18 and up, "成人和儿童" names no number.
    if re(&ADULT, "成人|成年").is_match(s) {
        maxs.clear();
        if mins.is_empty() && !re(&CHILD, "儿童|青少年|婴幼儿|婴儿|新生儿|小儿").is_match(s)
        {
            mins.push(18.0);
        }
    }
    let min = mins.into_iter().reduce(f64::min);
    let max = maxs.into_iter().reduce(f64::max);
    (min, max)
}

/// Sex named by a piece of text: `1` 男, `2` 女.
fn read_sex(s: &str) -> Option<&'static str> {
    let female = s.contains("女性") || s.contains("妇女");
    let male = s.contains("男性") || s.contains("男子");
    match (male, female) {
        (true, false) => Some("1"),
        (false, true) => Some("2"),
        _ => None,
    }
}

/// Settings named by a piece of text.
fn read_settings(s: &str) -> BTreeSet<&'static str> {
    ["住院", "门诊", "急诊"]
        .into_iter()
        .filter(|w| s.contains(w))
        .collect()
}

/// Evidence the settlement data cannot carry, by kind (fixed order).
const EVIDENCE: [(&str, &[&str]); 3] = [
    (
        "检测结果",
        &[
            "阳性",
            "阴性",
            "突变",
            "检测",
            "检验",
            "HER2",
            "HER-2",
            "PD-L1",
            "基因",
            "融合",
            "表达",
            "野生型",
            "扩增",
            "跳变",
            "IHC",
            "ISH",
            "药敏",
            "抗体",
            "评分",
            "BMI",
            "LVEF",
            "射血分数",
            "视力",
            "功能分级",
            "心功能分级",
            "g/L",
            "IgE",
            "CPS",
            "TPS",
        ],
    ),
    (
        "既往治疗",
        &[
            "既往",
            "失败",
            "不耐受",
            "耐受",
            "耐药",
            "难治",
            "无效",
            "应答",
            "疗效不佳",
            "效果不佳",
            "控制不佳",
            "控制不良",
            "反应不佳",
            "效果欠佳",
            "疗效欠佳",
            "缓解不充分",
            "进展",
            "二线",
            "三线",
            "一线",
            "初治",
            "未接受",
            "接受过",
            "治疗后",
            "缓解后",
            "维持治疗",
            "辅助治疗",
            "复发",
        ],
    ),
    (
        "临床评估",
        &[
            "营养风险",
            "小时内",
            "首次处方",
            "专科医师",
            "禁食",
            "吞咽困难",
            "无法口服",
            "不能口服",
            "不适合口服",
            "证据",
            "体征",
            "计划接受手术",
            "择期",
            "事前审查",
            "白蛋白低于",
        ],
    ),
];

fn read_evidence(s: &str) -> Vec<&'static str> {
    EVIDENCE
        .iter()
        .filter(|(_, words)| words.iter().any(|w| s.contains(w)))
        .map(|(kind, _)| *kind)
        .collect()
}

/// Keeps prefixes sorted and drops any prefix already covered by a shorter one
/// (`C` covers `C50`).
fn tidy_prefixes(set: BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in set {
        if !out.iter().any(|q| p.starts_with(q.as_str())) {
            out.push(p);
        }
    }
    out
}

/// Reads the constraint text of a point of `rule_class` into a [`Condition`]
/// with the built-in keyword table. Returns `None` for classes that need no
/// condition (their limit is the `limit_value` column).
pub fn parse_condition(rule_class: &str, text: &str) -> Result<Option<Condition>, KbError> {
    let table = KeywordTable::builtin()?;
    Ok(parse_condition_with(table, rule_class, text))
}

/// [`parse_condition`] with an explicit keyword table.
pub fn parse_condition_with(
    table: &KeywordTable,
    rule_class: &str,
    text: &str,
) -> Option<Condition> {
    let diagnostic = match rule_class {
        CLASS_INDICATION | CLASS_SECOND_LINE => true,
        CLASS_CHILD_LIMITED => false,
        _ => return None,
    };
    let text = normalise(text);
    let seg = segment(&text);
    let global = format!("{}{}", seg.preamble, seg.trailer);

    // Age, sex and settings: per segment, falling back to the global text; a
    // restriction holds for the whole point only if every segment has it.
    let (g_min, g_max) = read_ages(&global);
    let g_sex = read_sex(&global);
    let g_settings = read_settings(&global);
    let pieces: Vec<&str> = if seg.segments.is_empty() {
        vec![text.as_str()]
    } else {
        seg.segments.iter().map(String::as_str).collect()
    };
    let mut mins = Vec::new();
    let mut maxs = Vec::new();
    let mut sexes = Vec::new();
    let mut settings: Vec<BTreeSet<&str>> = Vec::new();
    for piece in &pieces {
        let (min, max) = read_ages(piece);
        mins.push(min.or(g_min));
        maxs.push(max.or(g_max));
        sexes.push(read_sex(piece).or(g_sex));
        let mut s = read_settings(piece);
        s.extend(g_settings.iter().copied());
        settings.push(s);
    }
    let all = |v: &[Option<f64>], pick: fn(f64, f64) -> f64| -> Option<f64> {
        v.iter()
            .copied()
            .collect::<Option<Vec<f64>>>()?
            .into_iter()
            .reduce(pick)
    };
    let age_min_years = all(&mins, f64::min);
    let age_max_years = all(&maxs, f64::max);
    let sex = match sexes.first() {
        Some(Some(first)) if sexes.iter().all(|s| *s == Some(*first)) => Some((*first).to_string()),
        _ => None,
    };
    let settings: Vec<String> = if settings.iter().all(|s| !s.is_empty()) {
        settings
            .into_iter()
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };

    let mut condition = Condition {
        age_min_years,
        age_max_years,
        sex,
        settings,
        ..Condition::default()
    };
    if !diagnostic {
        return Some(condition);
    }

    let pre = read_dx(table, &seg.preamble);
    let mut prefixes = pre.prefixes.clone();
    let mut decidable = !seg.segments.is_empty() && !pre.blocked;
    for s in &seg.segments {
        let r = read_dx(table, s);
        let mapped = !r.blocked
            && r.residual.is_empty()
            && !(r.prefixes.is_empty() && pre.prefixes.is_empty());
        decidable &= mapped;
        prefixes.extend(r.prefixes);
    }
    condition.dx_prefixes = tidy_prefixes(prefixes);
    condition.dx_decidable = decidable && !condition.dx_prefixes.is_empty();

    let mut kinds = read_evidence(&text);
    if rule_class == CLASS_SECOND_LINE && !kinds.contains(&"既往治疗") {
        // 限二线: by definition the first-line failure is evidence (A.3).
        kinds.insert(0, "既往治疗");
        kinds.sort_by_key(|k| EVIDENCE.iter().position(|(e, _)| e == k));
    }
    condition.needs_evidence = !kinds.is_empty();
    condition.evidence_kind = (!kinds.is_empty()).then(|| kinds.join("、"));
    Some(condition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(class: &str, text: &str) -> Condition {
        match parse_condition(class, text) {
            Ok(Some(c)) => c,
            other => panic!("no condition for {text:?}: {other:?}"),
        }
    }

    #[test]
    fn builtin_table_parses_and_has_blockers_and_ignores() {
        let t = KeywordTable::builtin().expect("builtin keyword table");
        assert!(t.entries().len() > 300, "{} rows", t.entries().len());
        assert!(t.entries().iter().any(|e| e.kind == KeywordKind::Block));
        assert!(t.entries().iter().any(|e| e.kind == KeywordKind::Ignore));
    }

    #[test]
    fn child_age_bands() {
        let c = |t: &str| {
            let c = cond(CLASS_CHILD_LIMITED, t);
            (c.age_min_years, c.age_max_years)
        };
        assert_eq!(c("限2岁至11岁儿童慢性便秘。"), (Some(2.0), Some(11.0)));
        assert_eq!(
            c("限3-12岁特发性或先天性肺动脉高压患者。"),
            (Some(3.0), Some(12.0))
        );
        assert_eq!(
            c("限5至12岁以下单纯性甲型和乙型流感儿童患者。"),
            (Some(5.0), Some(11.0))
        );
        assert_eq!(
            c(
                "限3岁及3岁以上伴有症状、无法手术的丛状神经纤维瘤(PN)的I型神经纤维瘤病(NF1)儿童患者。"
            ),
            (Some(3.0), None)
        );
        assert_eq!(
            c("限6-17岁儿童和青少年的注意缺陷多动障碍(ADHD)。"),
            (Some(6.0), Some(17.0))
        );
        assert_eq!(
            c(
                "限：1.1岁至14岁儿童哮喘的预防和长期治疗；2.2岁至14岁儿童季节性过敏性鼻炎和常年性过敏性鼻炎。"
            ),
            (Some(1.0), Some(14.0))
        );
        // Only "儿童": the child age is a rule-pack parameter.
        assert_eq!(c("限儿童。"), (None, None));
        assert_eq!(c("限儿童检查、操作前的镇静、催眠。"), (None, None));
    }

    #[test]
    fn indication_ages_union_over_segments() {
        let c = cond(
            CLASS_INDICATION,
            "限成人和12至＜18岁青少年的慢性丙型肝炎病毒(HCV)感染。",
        );
        assert_eq!((c.age_min_years, c.age_max_years), (Some(12.0), None));
        let c = cond(CLASS_INDICATION, "限慢性乙型肝炎成人患者。");
        assert_eq!(c.age_min_years, Some(18.0));
        let c = cond(
            CLASS_INDICATION,
            "限：1.中危或高危的原发性骨髓纤维化(PMF)的成年患者；2.对糖皮质激素或其他系统治疗应答不充分的12岁及以上急性移植物抗宿主病(急性GVHD)患者。",
        );
        assert_eq!(c.age_min_years, Some(12.0));
        // Safety statements are not restrictions.
        let c = cond(
            CLASS_INDICATION,
            "限法布雷病(α-半乳糖苷酶A缺乏症)患者的长期酶替代治疗，适用于成人、儿童和青少年。尚未确定本品在0-6岁儿童中的安全性和有效性。",
        );
        assert_eq!((c.age_min_years, c.age_max_years), (None, None));
        assert_eq!(c.dx_prefixes, vec!["E75.2"]);
        assert!(c.dx_decidable);
        let c = cond(
            CLASS_INDICATION,
            "限治疗16日龄及以上患者的脊髓性肌萎缩症(SMA)。",
        );
        let min = c.age_min_years.expect("min age");
        assert!((min - 16.0 / 365.0).abs() < 1e-9);
        let c = cond(
            CLASS_INDICATION,
            "限对其他治疗(例如皮质类固醇、免疫球蛋白)治疗反应不佳的成人(≥18周岁)慢性原发免疫性血小板减少症(ITP)患者。",
        );
        assert_eq!(c.age_min_years, Some(18.0));
    }

    #[test]
    fn diagnosis_keywords_map_to_icd_prefixes() {
        let c = cond(CLASS_INDICATION, "限绝经后女性骨质疏松症。");
        assert_eq!(c.dx_prefixes, vec!["M80", "M81"]);
        assert!(c.dx_decidable);
        assert_eq!(c.sex.as_deref(), Some("2"));
        assert!(!c.needs_evidence);

        let c = cond(CLASS_INDICATION, "限2型糖尿病。");
        assert!(c.dx_decidable && c.dx_prefixes.contains(&"E11".to_string()));

        let c = cond(
            CLASS_INDICATION,
            "限：1.RAS基因野生型的转移性结直肠癌；2.头颈部鳞状细胞癌。",
        );
        assert!(c.dx_decidable);
        assert!(
            c.dx_prefixes.contains(&"C18".to_string())
                && c.dx_prefixes.contains(&"C11".to_string())
        );
        assert_eq!(c.evidence_kind.as_deref(), Some("检测结果"));

        // Gene names are not lymphomas.
        let c = cond(
            CLASS_INDICATION,
            "限间变性淋巴瘤激酶(ALK)阳性的局部晚期或转移性非小细胞肺癌患者。",
        );
        assert_eq!(c.dx_prefixes, vec!["C34"]);
    }

    #[test]
    fn undecidable_texts_stay_undecidable() {
        // No diagnosis at all.
        let c = cond(CLASS_SECOND_LINE, "限二线用药。");
        assert!(!c.dx_decidable && c.dx_prefixes.is_empty());
        assert!(c.needs_evidence);
        assert_eq!(c.evidence_kind.as_deref(), Some("既往治疗"));
        // A blocker: prophylaxis.
        let c = cond(CLASS_INDICATION, "限成人破伤风紧急预防。");
        assert!(!c.dx_decidable);
        // One numbered item unmapped → the whole point is undecidable.
        let c = cond(
            CLASS_INDICATION,
            "限：1.预防重症患者应激性溃疡出血；2.消化性溃疡出血。",
        );
        assert!(!c.dx_decidable);
        // An unmapped disease word left next to a mapped one.
        let c = cond(CLASS_INDICATION, "限重度炎症及感染的患者。");
        assert!(!c.dx_decidable);
        // An insurance alternative cannot be decided from diagnoses.
        let c = cond(CLASS_INDICATION, "限子宫肌瘤患者或生育保险。");
        assert!(!c.dx_decidable);
    }

    #[test]
    fn evidence_kinds() {
        let c = cond(
            CLASS_INDICATION,
            "限既往接受含铂化疗治疗失败的PD-L1表达阳性(CPS≥1)的复发或转移性宫颈癌患者。",
        );
        assert!(c.dx_decidable && c.needs_evidence);
        assert_eq!(c.evidence_kind.as_deref(), Some("检测结果、既往治疗"));
        let c = cond(
            CLASS_INDICATION,
            "限注射用阿替普酶急性心肌梗死发病12小时内、脑梗死发病3小时内的溶栓治疗。",
        );
        assert_eq!(c.evidence_kind.as_deref(), Some("临床评估"));
    }

    #[test]
    fn settings_and_preamble() {
        let c = cond(
            CLASS_INDICATION,
            "限有明确的肝硬化、重症肝炎和肝昏迷诊断证据的患者。需经营养风险筛查,明确具有营养风险,且不能经饮食或使用\"肠内营养剂\"补充足够营养的住院患者方予支付。",
        );
        assert!(c.dx_decidable);
        assert_eq!(c.settings, vec!["住院"]);
        // The preamble carries the diagnosis for items that only refine it.
        let c = cond(
            CLASS_INDICATION,
            "限治疗≥1周岁儿童及成人缺铁患者：口服铁剂治疗无效时；无法口服补铁时；临床上需要快速补充铁时。",
        );
        assert!(c.dx_decidable, "{c:?}");
        assert_eq!(c.age_min_years, Some(1.0));
    }

    #[test]
    fn segmentation_ignores_decimals_and_condition_lists() {
        let s = segment("限急性心肌梗死发病12小时内、脑梗死发病4.5小时内的溶栓治疗。");
        assert_eq!(s.segments.len(), 1);
        let s = segment(
            "限：1.糖尿病性黄斑水肿(DME)；2.新生血管性(湿性)年龄相关性黄斑变性(nAMD)。应同时符合以下条件：1.需三级综合医院眼科医师处方；2.首次处方时病眼基线矫正视力0.05-0.5。",
        );
        assert_eq!(s.segments.len(), 2, "{s:?}");
        assert!(s.trailer.starts_with("应同时符合"));
    }

    #[test]
    fn other_classes_have_no_condition() {
        assert_eq!(
            parse_condition("药品区分性别使用", "限男性。").ok(),
            Some(None)
        );
    }

    #[test]
    fn keyword_table_rejects_bad_rows() {
        let p = Path::new("t.csv");
        assert!(KeywordTable::parse("keyword,icd10_prefixes,note\n骨质疏松,,x\n", p).is_err());
        assert!(
            KeywordTable::parse(
                "keyword,icd10_prefixes,note\n骨质疏松,M80,x\n骨质疏松,M81,y\n",
                p
            )
            .is_err()
        );
        assert!(KeywordTable::parse("kw,prefix\n", p).is_err());
        let t = KeywordTable::parse(
            "keyword,icd10_prefixes,note\n# c\n骨质疏松,M80;M81,x\n预防,BLOCK,y\n",
            p,
        )
        .expect("valid table");
        assert_eq!(t.entries().len(), 2);
    }
}
