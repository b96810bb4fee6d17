//! The synthetic world events happen in: 统筹区, institutions, people, diagnoses.
//!
//! Everything here is fixed data or drawn from the generator's seeded RNG, so a seed
//! always produces the same institutions and the same people.

use rand::Rng;
use rand::rngs::SmallRng;

/// A 统筹区 the generator draws patients and institutions from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Area {
    /// `poolarea` (统筹区 code).
    pub poolarea: &'static str,
    /// Districts (6-digit 区划) with their names; institutions sit in these.
    pub districts: &'static [(&'static str, &'static str)],
}

/// The 统筹区 of the demo: Beijing, Shanghai, the Hunan area of the national sample
/// (with its own parameter overrides in the national pack) and Guangzhou.
pub(crate) const AREAS: [Area; 4] = [
    Area {
        poolarea: "110000",
        districts: &[
            ("110101", "东城区"),
            ("110102", "西城区"),
            ("110105", "朝阳区"),
            ("110108", "海淀区"),
        ],
    },
    Area {
        poolarea: "310000",
        districts: &[
            ("310101", "黄浦区"),
            ("310104", "徐汇区"),
            ("310105", "长宁区"),
            ("310115", "浦东新区"),
        ],
    },
    Area {
        poolarea: "430796",
        districts: &[("430796", "西洞庭")],
    },
    Area {
        poolarea: "440100",
        districts: &[
            ("440103", "荔湾区"),
            ("440104", "越秀区"),
            ("440105", "海珠区"),
            ("440106", "天河区"),
        ],
    },
];

/// A 定点医药机构: a hospital (`H…`, level 1–3) or a pharmacy (`P…`, no level).
#[derive(Debug, Clone)]
pub(crate) struct Institution {
    /// `fixmedins_code` / `medins_id`: kind letter + 6-digit 区划 + 5-digit sequence.
    pub code: String,
    /// `fixmedins_name`.
    pub name: String,
    /// `medins_admdvs`.
    pub admdvs: &'static str,
    /// 1–3 for hospitals, 0 for pharmacies (sent as `9` 未定级).
    pub level: u8,
}

impl Institution {
    /// `medins_lv` as sent.
    pub fn medins_lv(&self) -> &'static str {
        match self.level {
            1 => "1",
            2 => "2",
            3 => "3",
            _ => "9",
        }
    }

    /// `medins_type` as sent (1 医疗机构, 2 药店).
    pub fn medins_type(&self) -> &'static str {
        if self.level == 0 { "2" } else { "1" }
    }
}

/// All institutions, by area and level.
#[derive(Debug, Clone)]
pub(crate) struct Institutions {
    /// Hospitals: `[area][level - 1]` → institutions.
    hospitals: Vec<[Vec<Institution>; 3]>,
    /// Pharmacies by area.
    pharmacies: Vec<Vec<Institution>>,
}

const HOSPITAL_NAMES: [[&str; 3]; 3] = [
    ["社区卫生服务中心", "街道卫生院", "中心卫生院"],
    ["人民医院", "中医医院", "妇幼保健院"],
    ["第一人民医院", "中心医院", "医科大学附属医院"],
];

impl Institutions {
    /// Four hospitals per level in every area, and three pharmacies.
    pub fn build() -> Self {
        let mut hospitals = Vec::new();
        let mut pharmacies = Vec::new();
        for area in &AREAS {
            let mut by_level: [Vec<Institution>; 3] = Default::default();
            let mut seq = 1;
            for (level_idx, names) in HOSPITAL_NAMES.iter().enumerate() {
                for i in 0..4 {
                    let (admdvs, district) = area.districts[(i + level_idx) % area.districts.len()];
                    let name = names[i % names.len()];
                    by_level[level_idx].push(Institution {
                        code: format!("H{admdvs}{seq:05}"),
                        name: format!("{district}{name}"),
                        admdvs,
                        level: level_idx as u8 + 1,
                    });
                    seq += 1;
                }
            }
            let mut shops = Vec::new();
            for i in 0..3 {
                let (admdvs, district) = area.districts[i % area.districts.len()];
                shops.push(Institution {
                    code: format!("P{admdvs}{:05}", i + 1),
                    name: format!("{district}康民大药房第{}分店", i + 1),
                    admdvs,
                    level: 0,
                });
            }
            hospitals.push(by_level);
            pharmacies.push(shops);
        }
        Self {
            hospitals,
            pharmacies,
        }
    }

    /// A hospital of `level` (1–3) in `area`.
    pub fn hospital(&self, rng: &mut SmallRng, area: usize, level: u8) -> &Institution {
        let list = &self.hospitals[area][(level.clamp(1, 3) - 1) as usize];
        &list[rng.random_range(0..list.len())]
    }

    /// A pharmacy in `area`.
    pub fn pharmacy(&self, rng: &mut SmallRng, area: usize) -> &Institution {
        let list = &self.pharmacies[area];
        &list[rng.random_range(0..list.len())]
    }
}

const SURNAMES: [&str; 24] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高", "郑", "梁", "谢", "宋",
];
const GIVEN_MALE: [&str; 16] = [
    "伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "刚", "建国", "志强", "浩然",
    "子轩", "宇航",
];
const GIVEN_FEMALE: [&str; 16] = [
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀英", "桂英", "玉兰", "婷", "欣怡", "雨涵",
    "梓涵", "淑华",
];

/// A synthetic Chinese name for a person of sex `male`.
pub(crate) fn person_name(rng: &mut SmallRng, male: bool) -> String {
    let surname = SURNAMES[rng.random_range(0..SURNAMES.len())];
    let given = if male {
        GIVEN_MALE[rng.random_range(0..GIVEN_MALE.len())]
    } else {
        GIVEN_FEMALE[rng.random_range(0..GIVEN_FEMALE.len())]
    };
    format!("{surname}{given}")
}

/// Common ICD-10 医保版 2.0 diagnoses (codes and names as in `ZD_INFO.dat`) that no
/// rule class of the pack restricts: the background diagnoses of encounters.
pub(crate) const COMMON_DIAGNOSES: [(&str, &str); 30] = [
    ("I10.x00", "特发性（原发性）高血压"),
    ("E11.900", "2型糖尿病"),
    ("J06.900", "急性上呼吸道感染"),
    ("J18.900", "肺炎"),
    ("K29.700", "胃炎"),
    ("M54.500", "下背痛"),
    ("I25.100", "动脉硬化性心脏病"),
    ("N39.000", "泌尿道感染"),
    ("J44.900", "慢性阻塞性肺病"),
    ("K80.200", "胆囊结石不伴有胆囊炎"),
    ("E78.500", "高脂血症"),
    ("I63.900", "脑梗死"),
    ("J20.900", "急性支气管炎"),
    ("K21.000", "胃-食管反流性疾病伴有食管炎"),
    ("M17.900", "膝关节病"),
    ("E14.900", "糖尿病不伴有并发症"),
    ("J45.900", "哮喘"),
    ("K59.000", "便秘"),
    ("R50.900", "发热"),
    ("A09.900", "胃肠炎和结肠炎"),
    ("L20.900", "特应性皮炎"),
    ("H10.900", "结膜炎"),
    ("J02.900", "急性咽炎"),
    ("K52.900", "非感染性胃肠炎和结肠炎"),
    ("M81.900", "骨质疏松"),
    ("I50.900", "心力衰竭"),
    ("N18.900", "慢性肾脏病，未特指"),
    ("E03.900", "甲状腺功能减退症"),
    ("F32.900", "抑郁发作"),
    ("G43.900", "偏头痛"),
];

/// Indexes into [`COMMON_DIAGNOSES`] of the ones plausible for children.
pub(crate) const PEDIATRIC_DIAGNOSES: [usize; 11] = [2, 3, 12, 16, 17, 18, 19, 20, 21, 22, 23];
