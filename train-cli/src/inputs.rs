//! Data inputs: whatever a data path names (a CSV, plain or gzipped; a Parquet file; a
//! directory of either, or a pattern such as `logs/part-*.csv.gz`), opened as the one
//! stream of CSV text the loaders read.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use adaftr_core::data::maybe_gunzip;
use adaftr_core::data::parquet::ParquetText;
use adaftr_core::error::Error;
use adaftr_core::train::Opener;
use anyhow::{Context, Result};

use crate::files::label;

/// A data input opened for reading, as CSV text.
pub type DataReader = Box<dyn Read + Send>;

/// Bytes read from a data file at a time.
const READ_BUFFER: usize = 1 << 20;

/// Opens a data input: a CSV (plain or gzipped; the loaders tell), a `.parquet` file, or
/// several of them read in name order as one input (the header once; every file must have
/// the same): a directory of `.parquet` files or of `.csv` / `.csv.gz` files (not both), or
/// a pattern whose file name has `*` (any characters) or `?` (one), such as
/// `logs/day-*.parquet`.
pub fn open(path: &Path) -> Result<DataReader> {
    Ok(open_data(path)?)
}

/// Opens `path` afresh on every call: what streamed training reads each epoch from.
pub fn opener(path: &Path) -> Opener<DataReader> {
    let path = path.to_path_buf();
    Box::new(move || open_data(&path))
}

fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

fn is_csv(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.ends_with(".csv") || name.ends_with(".csv.gz")
}

/// The file-name pattern of `path`, if its last component has a wildcard.
fn pattern(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    name.contains(['*', '?']).then_some(name)
}

/// Whether `path` names several files: a directory, or a pattern.
fn is_several(path: &Path) -> bool {
    path.is_dir() || pattern(path).is_some()
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and `?` one.
fn matches(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, _) => name.is_empty(),
        (Some('*'), _) => matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..])),
        (Some('?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) => p == n && matches(&pattern[1..], &name[1..]),
        (Some(_), None) => false,
    }
}

/// The data files `path` names, in name order: a directory's Parquet files or its CSV
/// files, or the files a pattern matches (all Parquet, or all CSV).
fn parts(path: &Path) -> adaftr_core::Result<(Vec<PathBuf>, bool)> {
    let (dir, wanted) = match pattern(path) {
        Some(p) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            (dir.to_path_buf(), Some(p.chars().collect::<Vec<_>>()))
        }
        None => (path.to_path_buf(), None),
    };
    let io = |source| Error::Io { file: label(&dir), source };
    let mut all: Vec<PathBuf> = fs::read_dir(&dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    if let Some(w) = &wanted {
        all.retain(|p| {
            let name: Vec<char> = p.file_name().map(|n| n.to_string_lossy().chars().collect()).unwrap_or_default();
            p.is_file() && matches(w, &name)
        });
    }
    all.sort();
    let parquet: Vec<PathBuf> = all.iter().filter(|p| is_parquet(p)).cloned().collect();
    let csv: Vec<PathBuf> = all.iter().filter(|p| is_csv(p)).cloned().collect();
    let input = |reason: String| Error::Input { file: label(path), reason };
    let what = if wanted.is_some() { "a pattern that matches" } else { "a directory of" };
    if wanted.is_some() && parquet.len() + csv.len() < all.len() {
        let odd = all.iter().find(|p| !is_parquet(p) && !is_csv(p)).map(|p| label(p)).unwrap_or_default();
        return Err(input(format!("{what} {odd}, which is neither .parquet, .csv nor .csv.gz")));
    }
    match (parquet.is_empty(), csv.is_empty()) {
        (false, false) => Err(input(format!("{what} both Parquet and CSV files (keep one kind)"))),
        (true, true) if wanted.is_some() => Err(input("a pattern that matches no file".into())),
        (true, true) => Err(input("a directory without .parquet, .csv or .csv.gz files".into())),
        (false, true) => Ok((parquet, true)),
        (true, false) => Ok((csv, false)),
    }
}

fn open_data(path: &Path) -> adaftr_core::Result<DataReader> {
    let open = |p: &Path| File::open(p).map_err(|source| Error::Io { file: label(p), source });
    if is_several(path) {
        let (files, parquet) = parts(path)?;
        if parquet {
            let files = files.iter().map(|p| Ok((label(p), open(p)?))).collect::<adaftr_core::Result<Vec<_>>>()?;
            let text = ParquetText::new(files)?;
            // Row r of the whole input is line r + 2 (after the one header).
            let mut first = 2;
            let starts = text.rows_per_file().into_iter().map(|(part, rows)| {
                let start = (first, part);
                first += rows;
                start
            });
            PartLines::register(&label(path), starts.collect());
            return Ok(Box::new(text));
        }
        return Ok(Box::new(CsvParts::new(label(path), files)));
    }
    let f = open(path)?;
    if is_parquet(path) {
        return Ok(Box::new(ParquetText::new(vec![(label(path), f)])?));
    }
    Ok(Box::new(BufReader::with_capacity(READ_BUFFER, f)))
}

/// Roughly the bytes a data input takes once loaded: a CSV its size; gzip and Parquet
/// compress, so 5 and 4 times theirs.
pub fn loaded_size_estimate(path: &Path) -> Result<u64> {
    let file = |p: &Path| -> Result<u64> {
        let size = fs::metadata(p).map(|m| m.len()).with_context(|| format!("cannot open {}", p.display()))?;
        let gz = p.extension().is_some_and(|e| e == "gz");
        Ok(size.saturating_mul(if is_parquet(p) {
            4
        } else if gz {
            5
        } else {
            1
        }))
    };
    if is_several(path) {
        let (files, _) = parts(path)?;
        return files.iter().try_fold(0u64, |sum, p| Ok(sum.saturating_add(file(p)?)));
    }
    file(path)
}

/// Where the parts of each directory input opened so far begin, so that an error located
/// in the whole input (a line counted across its parts) can name the part and the line in
/// it. Registered by the readers as they reach each part; read when an error is reported.
struct PartLines;

/// Where each part of one directory input begins: (the whole input's line holding the
/// part's first row, the part's label), in order.
type Starts = Vec<(u64, String)>;

/// Per directory label, its parts' starts.
static PART_LINES: Mutex<Vec<(String, Starts)>> = Mutex::new(Vec::new());

impl PartLines {
    fn register(dir: &str, starts: Starts) {
        let mut all = PART_LINES.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(d, _)| d != dir);
        all.push((dir.to_string(), starts));
    }

    fn add(dir: &str, start: (u64, String)) {
        let mut all = PART_LINES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, starts)) = all.iter_mut().find(|(d, _)| d == dir) {
            starts.push(start);
        }
    }

    /// The part holding line `line` of the directory input `dir`, and that line's number in
    /// the part (its own header being line 1).
    fn locate(dir: &str, line: u64) -> Option<(String, u64)> {
        let all = PART_LINES.lock().unwrap_or_else(|e| e.into_inner());
        let (_, starts) = all.iter().find(|(d, _)| d == dir)?;
        let (first, part) = starts.iter().rev().find(|(first, _)| *first <= line)?;
        Some((part.clone(), line - first + 2))
    }
}

/// An error message with a directory input's location replaced by the part's file and
/// line (for an error of core's, or a skipped row's message that starts with one).
pub fn locate_in_parts(message: &str) -> String {
    // Core's form: `FILE:LINE[, column `NAME`]: REASON`.
    let Some((at, rest)) = message.split_once(": ") else { return message.to_string() };
    let (place, column) = match at.split_once(", column ") {
        Some((p, c)) => (p, Some(c)),
        None => (at, None),
    };
    let Some((dir, line)) = place.rsplit_once(':') else { return message.to_string() };
    match line.parse::<u64>().ok().and_then(|l| PartLines::locate(dir, l)) {
        Some((part, own)) => match column {
            Some(c) => format!("{part}:{own}, column {c}: {rest}"),
            None => format!("{part}:{own}: {rest}"),
        },
        None => message.to_string(),
    }
}

/// The CSV files of a directory as one: the first file's header, then every file's rows
/// (each file's header must equal the first's and is skipped).
struct CsvParts {
    dir: String,
    /// Lines handed out so far.
    lines: u64,
    left: VecDeque<PathBuf>,
    current: Option<(String, BufReader<adaftr_core::data::MaybeGz<File>>)>,
    /// The first file's header line.
    header: Option<Vec<u8>>,
    /// Bytes to hand out before reading on: the header, or a line end a file lacked.
    pending: Vec<u8>,
    pos: usize,
    /// Whether the last byte handed out ended a line (a file without a final newline must
    /// not run into the next file's first row).
    at_line_start: bool,
}

impl CsvParts {
    fn new(dir: String, files: Vec<PathBuf>) -> Self {
        PartLines::register(&dir, Vec::new());
        Self {
            dir,
            lines: 0,
            left: files.into(),
            current: None,
            header: None,
            pending: Vec::new(),
            pos: 0,
            at_line_start: true,
        }
    }

    /// Hands out `buf[..n]`, counting its lines.
    fn out(&mut self, buf: &[u8], n: usize) -> usize {
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.at_line_start = buf[n - 1] == b'\n';
        n
    }

    /// Opens the next file and reads its header; `false` after the last file.
    fn next_file(&mut self) -> io::Result<bool> {
        let Some(path) = self.left.pop_front() else { return Ok(false) };
        let name = label(&path);
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{name}: {e}"));
        let gz = maybe_gunzip(File::open(&path).map_err(named)?).map_err(named)?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, gz);
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).map_err(named)?;
        match &self.header {
            None => {
                PartLines::add(&self.dir, (2, name.clone()));
                self.header = Some(line.clone());
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                self.pending = line;
                self.pos = 0;
            }
            Some(first) if trim_end(first) == trim_end(&line) => {
                // Its first row is the next line handed out.
                let next = self.lines + 1;
                PartLines::add(&self.dir, (next, name.clone()));
            }
            Some(_) => {
                let reason = format!("{name}: its header differs from the first file's in the directory");
                return Err(io::Error::new(io::ErrorKind::InvalidData, reason));
            }
        }
        self.current = Some((name, reader));
        Ok(true)
    }
}

impl Read for CsvParts {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pos);
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(self.out(buf, n));
            }
            if let Some((name, reader)) = &mut self.current {
                let n = reader.read(buf).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
                if n > 0 {
                    return Ok(self.out(buf, n));
                }
                self.current = None;
                if !self.at_line_start {
                    (self.pending, self.pos) = (vec![b'\n'], 0);
                    continue;
                }
            }
            if !self.next_file()? {
                return Ok(0);
            }
        }
    }
}

fn trim_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names() {
        let m = |p: &str, n: &str| matches(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>());
        assert!(m("*.csv", "a.csv") && m("part-*.csv.gz", "part-0001.csv.gz") && m("?.csv", "b.csv"));
        assert!(m("*", "") && m("a*b*c", "aXbYc") && m("day-*-*.parquet", "day-1-2.parquet"));
        assert!(!m("*.csv", "a.csv.gz") && !m("?.csv", "ab.csv") && !m("a*", "ba") && !m("x", "xy"));
        assert!(pattern(Path::new("logs/part-*.csv")).is_some() && pattern(Path::new("logs/a.csv")).is_none());
    }

    #[test]
    fn a_line_of_a_parquet_directory_is_named_by_its_part() {
        use adaftr_core::data::parquet::csv_to_parquet;
        use adaftr_core::data::{LoadOptions, SchemaSpec};
        let dir = std::env::temp_dir().join(format!("adaftr-parts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let spec: SchemaSpec = serde_json::from_str(r#"{"categorical": ["u"], "numeric": ["x"]}"#).unwrap();
        let opts = LoadOptions { spec: Some(spec), ..LoadOptions::default() };
        for (name, rows) in [("a.parquet", 3), ("b.parquet", 4)] {
            let csv: String = std::iter::once("u,x,click,conversion\n".to_string())
                .chain((0..rows).map(|r| format!("v{r},{r},0,0\n")))
                .collect();
            csv_to_parquet(csv.as_bytes(), name, &opts, File::create(dir.join(name)).unwrap()).unwrap();
        }
        let mut text = String::new();
        open_data(&dir).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text.lines().count(), 1 + 3 + 4);
        let d = label(&dir);
        // Lines 2-4 are a's rows, 5-8 b's: line 6 is b's second row, its line 3.
        let b = label(&dir.join("b.parquet"));
        assert_eq!(locate_in_parts(&format!("{d}:6, column `x`: bad")), format!("{b}:3, column `x`: bad"));
        assert_eq!(locate_in_parts(&format!("{d}:4: bad")), format!("{}:4: bad", label(&dir.join("a.parquet"))));
        // Anything else is left as it is.
        assert_eq!(locate_in_parts("other.csv:6: bad"), "other.csv:6: bad");
        assert_eq!(locate_in_parts("no location"), "no location");
        fs::remove_dir_all(&dir).unwrap();
    }
}
