//! NDJSON files: one event per line in, one alert per line out.
//!
//! Reading never stops at a bad line: each line yields an event or an error that
//! names the line number, the field path and the reason (SPEC §9 "loses nothing").

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use fundwatch_engine::{Alert, DecodeError, Event, decode_event};

/// One input line: its 1-based number and the decoded event or the error.
#[derive(Debug)]
pub struct InputLine {
    /// 1-based line number.
    pub line_no: u64,
    /// The event, or why the line could not be read.
    pub event: Result<Event, DecodeError>,
}

/// Lines of an NDJSON file (blank lines are skipped).
pub struct NdjsonSource<R> {
    reader: R,
    line_no: u64,
    buf: Vec<u8>,
}

impl NdjsonSource<BufReader<File>> {
    /// Opens `path` (`-` for stdin is handled by the caller).
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self::new(BufReader::new(File::open(path)?)))
    }
}

impl<R: BufRead> NdjsonSource<R> {
    /// Reads from `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            line_no: 0,
            buf: Vec::with_capacity(16 * 1024),
        }
    }
}

impl<R: BufRead> Iterator for NdjsonSource<R> {
    type Item = io::Result<InputLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Err(err) => return Some(Err(err)),
                Ok(0) => return None,
                Ok(_) => {
                    self.line_no += 1;
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok(InputLine {
                        line_no: self.line_no,
                        event: decode_event(&self.buf),
                    }));
                }
            }
        }
    }
}

/// Writes alerts as NDJSON, one per line.
pub struct NdjsonSink<W: Write> {
    writer: BufWriter<W>,
}

impl NdjsonSink<File> {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(File::create(path)?))
    }

    /// Appends to `path` after cutting a torn last line left by a crash.
    pub fn append(path: &Path) -> io::Result<Self> {
        let bytes = std::fs::read(path).unwrap_or_default();
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        file.set_len(keep as u64)?;
        let mut file = file;
        std::io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
        Ok(Self::new(file))
    }
}

impl<W: Write> NdjsonSink<W> {
    /// Writes to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            writer: BufWriter::new(writer),
        }
    }

    /// Writes one alert line.
    pub fn write(&mut self, alert: &Alert) -> io::Result<()> {
        serde_json::to_writer(&mut self.writer, alert)?;
        self.writer.write_all(b"\n")
    }

    /// Flushes buffered lines.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_reported_with_their_number_and_reading_goes_on() {
        let input = b"{\"patient_dtos\": []}\n\n not json\n{\"patient_dtos\":[{\"patn_id\":\"P\",\"curr_mdtrt_id\":\"M\",\"fsi_encounter_dtos\":[{\"mdtrt_id\":\"M\"}]}]}\n";
        let lines: Vec<InputLine> = NdjsonSource::new(&input[..])
            .collect::<io::Result<_>>()
            .expect("reads");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].line_no, 1);
        assert_eq!(
            lines[0].event.as_ref().expect_err("empty patients").path,
            "patient_dtos"
        );
        assert_eq!(lines[1].line_no, 3);
        assert!(lines[1].event.is_err());
        assert_eq!(lines[2].line_no, 4);
        assert!(lines[2].event.is_ok());
    }
}
