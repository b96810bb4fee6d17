//! Message templates and evidence text.

/// `{name}` placeholders → values; unknown placeholders are left as written so a
/// rule author sees them in the case output.
pub fn fill_template(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match lookup(name) {
                    Some(value) => out.push_str(&value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

const NUMERALS: [&str; 21] = [
    "零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二", "十三",
    "十四", "十五", "十六", "十七", "十八", "十九", "二十",
];

/// `batch_07` → `第七批`; `updates_2026-01` → `2026-01更新`; other tags as they are.
pub fn batch_label(tag: &str) -> String {
    if let Some(num) = tag.strip_prefix("batch_")
        && let Ok(n) = num.parse::<usize>()
        && let Some(numeral) = NUMERALS.get(n)
    {
        return format!("第{numeral}批");
    }
    if let Some(month) = tag.strip_prefix("updates_") {
        return format!("{month}更新");
    }
    tag.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_known_and_keep_unknown_placeholders() {
        let text = fill_template(
            "{item}限{limit}使用，与患者性别({fact})不符{nope}",
            |k| match k {
                "item" => Some("左炔诺孕酮宫内节育系统".into()),
                "limit" => Some("女性".into()),
                "fact" => Some("男".into()),
                _ => None,
            },
        );
        assert_eq!(
            text,
            "左炔诺孕酮宫内节育系统限女性使用，与患者性别(男)不符{nope}"
        );
        assert_eq!(fill_template("no braces {", |_| None), "no braces {");
    }

    #[test]
    fn batch_labels_are_chinese() {
        assert_eq!(batch_label("batch_07"), "第七批");
        assert_eq!(batch_label("batch_17"), "第十七批");
        assert_eq!(batch_label("updates_2026-01"), "2026-01更新");
        assert_eq!(batch_label("local"), "local");
    }
}
