//! ICD lists of the CHS-DRG tables (`ZD_INFO.dat`, `SS_INFO.dat`): one
//! `code name` per line, the name may contain spaces.

use std::path::Path;

use crate::error::KbError;
use crate::model::IcdCode;

/// Reads an ICD list.
pub(crate) fn read(path: &Path) -> Result<Vec<IcdCode>, KbError> {
    let text = std::fs::read_to_string(path).map_err(|e| KbError::io(path, e))?;
    let mut codes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match line.trim().split_once(char::is_whitespace) {
            Some((code, name)) if !name.trim().is_empty() => codes.push(IcdCode {
                code: code.to_string(),
                name: name.trim().to_string(),
            }),
            _ => {
                return Err(KbError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    text: line.to_string(),
                    problem: "expected `code name` separated by a space".into(),
                });
            }
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_code_and_name_with_spaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("SS_INFO.dat");
        std::fs::write(
            &p,
            "00.0100 头和颈部血管治疗性超声\n22.4200x005 Draf Ⅱa型手术\n\n",
        )
        .expect("write");
        let codes = read(&p).expect("read");
        assert_eq!(codes.len(), 2);
        assert_eq!(codes[1].name, "Draf Ⅱa型手术");
        std::fs::write(&p, "A00.000\n").expect("write");
        let err = read(&p)
            .expect_err("a code without a name is an error")
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
