//! Parsing the remote script's output (pure): the last `CRYPTOCTL-RESULT` line, whose fields are
//! `key=value` with blobs as `gz:<gzip+base64>` or `b64:<base64>`, followed by `CRYPTOCTL-EXIT`
//! as the last line. Anything else in the output (a login banner, a truncated head) is ignored.

use std::{collections::BTreeMap, io::Read};

use base64::Engine as _;

/// The output did not carry a usable result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No `CRYPTOCTL-EXIT` line at the end.
    #[error("the remote script did not finish (no CRYPTOCTL-EXIT line){}", tail_hint(.0))]
    NoExit(String),
    /// No complete `CRYPTOCTL-RESULT` line.
    #[error("the remote script's result line is missing or cut off{}", tail_hint(.0))]
    NoResult(String),
    /// A blob could not be decoded.
    #[error("the remote script's result has a bad {0} field: {1}")]
    BadField(String, String),
}

fn tail_hint(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        String::new()
    } else {
        let start = t.len().saturating_sub(300);
        let start = (start..t.len())
            .find(|i| t.is_char_boundary(*i))
            .unwrap_or(t.len());
        format!(": {}", &t[start..])
    }
}

/// The fields of one result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The script's exit status.
    pub exit: i32,
    fields: BTreeMap<String, String>,
}

impl Frame {
    /// A plain field.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A numeric field.
    pub fn number(&self, key: &str) -> Option<i32> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// A flag field (`1`).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("1")
    }

    /// A blob field, decoded to text (lossy UTF-8).
    pub fn blob(&self, key: &str) -> Result<Option<String>, FrameError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let bad = |e: String| FrameError::BadField(key.to_owned(), e);
        let (gz, b64) = if let Some(b) = raw.strip_prefix("gz:") {
            (true, b)
        } else if let Some(b) = raw.strip_prefix("b64:") {
            (false, b)
        } else {
            return Err(bad("unknown encoding".into()));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| bad(e.to_string()))?;
        let bytes = if gz {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .take(16 << 20)
                .read_to_end(&mut out)
                .map_err(|e| bad(e.to_string()))?;
            out
        } else {
            bytes
        };
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// Finds the result in `stdout`.
pub fn parse(stdout: &str) -> Result<Frame, FrameError> {
    let lines: Vec<&str> = stdout
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let exit = lines
        .last()
        .and_then(|l| l.strip_prefix("CRYPTOCTL-EXIT "))
        .and_then(|n| n.trim().parse::<i32>().ok())
        .ok_or_else(|| FrameError::NoExit(stdout.to_owned()))?;
    let result = lines
        .iter()
        .rev()
        .skip(1)
        .find_map(|l| l.strip_prefix("CRYPTOCTL-RESULT "))
        .ok_or_else(|| FrameError::NoResult(stdout.to_owned()))?;
    let fields: BTreeMap<String, String> = result
        .split(' ')
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if fields.get("v").map(String::as_str) != Some("1") {
        return Err(FrameError::NoResult(stdout.to_owned()));
    }
    Ok(Frame { exit, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gz(text: &str) -> String {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        format!(
            "gz:{}",
            base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
        )
    }

    #[test]
    fn result_then_exit_last() {
        let out = format!(
            "Welcome banner\nCRYPTOCTL-RESULT v=1 action=health agent=present source=check code=2 report={}\nCRYPTOCTL-EXIT 2\n",
            gz("{\"status\":\"CRITICAL\"}")
        );
        let f = parse(&out).unwrap();
        assert_eq!(f.exit, 2);
        assert_eq!(f.get("source"), Some("check"));
        assert_eq!(f.number("code"), Some(2));
        assert_eq!(
            f.blob("report").unwrap().unwrap(),
            "{\"status\":\"CRITICAL\"}"
        );
        assert_eq!(f.blob("stderr").unwrap(), None);
    }

    #[test]
    fn plain_base64_and_crlf() {
        let out = "CRYPTOCTL-RESULT v=1 action=logs log=b64:aGVsbG8K\r\nCRYPTOCTL-EXIT 0\r\n";
        assert_eq!(parse(out).unwrap().blob("log").unwrap().unwrap(), "hello\n");
    }

    #[test]
    fn truncated_or_unfinished_output_is_an_error() {
        // run-command keeps the last 4096 bytes: a head cut inside the result line loses the marker
        let cut = "ULT v=1 action=health\nCRYPTOCTL-EXIT 0\n";
        assert!(matches!(parse(cut), Err(FrameError::NoResult(_))));
        let unfinished = "CRYPTOCTL-RESULT v=1 action=health\n";
        assert!(matches!(parse(unfinished), Err(FrameError::NoExit(_))));
        let trailing = "CRYPTOCTL-RESULT v=1\nCRYPTOCTL-EXIT 0\nmore\n";
        assert!(matches!(parse(trailing), Err(FrameError::NoExit(_))));
        assert!(parse("").is_err());
        let bad = "CRYPTOCTL-RESULT v=1 report=gz:!!!\nCRYPTOCTL-EXIT 0\n";
        assert!(parse(bad).unwrap().blob("report").is_err());
    }
}
