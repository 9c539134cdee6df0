//! Byte-level CSV reading from any `std::io::Read`.
//!
//! Core never touches the filesystem (the browser build shares it), so everything here
//! works on readers. The hot loop reuses one input buffer and one span vector: reading a
//! row allocates nothing. Lines are bounded ([`MAX_LINE_BYTES`]) so a file without
//! newlines cannot make us buffer it whole.
//!
//! Dialect: comma separated, `\n` or `\r\n` line ends, optional UTF-8 byte-order mark.
//! Fields may be wrapped in double quotes (with `""` for a literal quote, commas allowed
//! inside); a quoted field may not span lines. The formats this project reads never quote,
//! so quoted lines take a slower path that copies the unquoted text into a scratch buffer.

use std::io::{self, Read};

use flate2::read::MultiGzDecoder;

/// The longest line we accept, in bytes (without its line end).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Bytes asked from the reader per refill; large enough that per-read overhead vanishes.
const READ_CHUNK: usize = 256 * 1024;

/// A reader that decompresses gzip input and passes anything else through unchanged.
pub enum MaybeGz<R: Read> {
    Plain(io::Chain<io::Cursor<Vec<u8>>, R>),
    Gzip(Box<MultiGzDecoder<io::Chain<io::Cursor<Vec<u8>>, R>>>),
}

impl<R: Read> Read for MaybeGz<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeGz::Plain(r) => r.read(buf),
            MaybeGz::Gzip(r) => r.read(buf),
        }
    }
}

/// Sniffs the gzip magic (`1f 8b`) and wraps the reader in a multi-member gzip decoder if
/// it is there (`cat a.gz b.gz` files are common, hence multi-member). The sniffed bytes
/// are replayed, so nothing is lost for plain input.
pub fn maybe_gunzip<R: Read>(mut reader: R) -> io::Result<MaybeGz<R>> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let replay = io::Cursor::new(head[..n].to_vec()).chain(reader);
    if n == 2 && head == [0x1f, 0x8b] {
        Ok(MaybeGz::Gzip(Box::new(MultiGzDecoder::new(replay))))
    } else {
        Ok(MaybeGz::Plain(replay))
    }
}

/// Why a line could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// The line exceeded the length bound. The reader has skipped to the next line end, so
    /// reading may continue (the caller decides whether to).
    TooLong {
        line: u64,
    },
}

/// Splits a byte stream into lines, reusing one buffer.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// How far past `start` we already searched for a newline (avoids rescanning).
    scanned: usize,
    eof: bool,
    /// Dropping the remainder of an over-long line.
    discarding: bool,
    line_no: u64,
    max_line: usize,
    /// Range of the line last returned, for [`Self::last_line`].
    last: (usize, usize),
}

impl LineReader<io::Empty> {
    /// The lines of bytes already in memory (one chunk of a file), split in place: no
    /// buffer grows, so memory is the bytes themselves.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let end = bytes.len();
        Self { buf: bytes, end, eof: true, ..Self::new(io::empty()) }
    }
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_max_line(inner, MAX_LINE_BYTES)
    }

    pub fn with_max_line(inner: R, max_line: usize) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            discarding: false,
            line_no: 0,
            max_line: max_line.max(1),
            last: (0, 0),
        }
    }

    /// The next line without its `\n` / `\r\n` and its 1-based number, or `None` at the
    /// end of input.
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, ReadError> {
        loop {
            let pending = &self.buf[self.start + self.scanned..self.end];
            if let Some(pos) = find_newline(pending) {
                let line_start = self.start;
                let line_end = self.start + self.scanned + pos;
                self.start = line_end + 1;
                self.scanned = 0;
                self.line_no += 1;
                if self.discarding {
                    // The tail of an over-long line, already reported.
                    self.discarding = false;
                    self.line_no -= 1;
                    continue;
                }
                return self.finish_line(line_start, line_end);
            }
            self.scanned = self.end - self.start;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (s, e) = (self.start, self.end);
                self.start = self.end;
                self.scanned = 0;
                if self.discarding {
                    self.discarding = false;
                    return Ok(None);
                }
                self.line_no += 1;
                return self.finish_line(s, e);
            }
            if self.scanned > self.max_line + 1 {
                // Too long and no end in sight: drop what we hold and skip to the line end.
                let reported = !self.discarding;
                self.start = 0;
                self.end = 0;
                self.scanned = 0;
                if reported {
                    self.discarding = true;
                    self.line_no += 1;
                    return Err(ReadError::TooLong { line: self.line_no });
                }
                continue;
            }
            self.refill().map_err(ReadError::Io)?;
        }
    }

    /// Checks the length of the line `buf[start..end]` and remembers it as the last line.
    fn finish_line(&mut self, start: usize, end: usize) -> Result<Option<(u64, &[u8])>, ReadError> {
        let len = strip_cr(&self.buf[start..end]).len();
        if len > self.max_line {
            self.last = (0, 0);
            return Err(ReadError::TooLong { line: self.line_no });
        }
        self.last = (start, start + len);
        Ok(Some((self.line_no, &self.buf[start..start + len])))
    }

    /// The line last returned by [`Self::next_line`] (valid until the next call).
    pub fn last_line(&self) -> &[u8] {
        self.buf.get(self.last.0..self.last.1).unwrap_or(&[])
    }

    /// Lines read so far (blank and over-long ones included).
    pub fn lines_read(&self) -> u64 {
        self.line_no
    }

    /// The bytes read but not yet returned as lines, and the reader they came from: what
    /// follows the lines read so far. Only meaningful between lines (not while an
    /// over-long line is being skipped).
    pub fn into_rest(self) -> (Vec<u8>, R) {
        let mut buf = self.buf;
        buf.truncate(self.end);
        buf.drain(..self.start);
        (buf, self.inner)
    }

    /// Moves the partial line to the front and reads more.
    fn refill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + READ_CHUNK {
            self.buf.resize(self.end + READ_CHUNK, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

/// Position of the first `\n` (line finding is one of the passes over every input byte,
/// so it is memchr's vectorised search).
#[inline]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

/// Where a field's text lies: in the line itself, or in the scratch buffer when the line
/// needed unquoting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

/// A quoted field was not closed, or text followed its closing quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteError {
    /// 0-based index of the field.
    pub field: usize,
}

/// Splits `line` on commas into `spans` (cleared first). Returns `true` when the spans
/// index `scratch` (the line had quotes) rather than `line`.
pub fn split_fields(line: &[u8], spans: &mut Vec<Span>, scratch: &mut Vec<u8>) -> Result<bool, QuoteError> {
    spans.clear();
    let mut start = 0usize;
    for i in memchr::memchr2_iter(b',', b'"', line) {
        if line[i] == b'"' {
            return split_quoted(line, spans, scratch).map(|()| true);
        }
        spans.push(Span { start: start as u32, end: i as u32 });
        start = i + 1;
    }
    spans.push(Span { start: start as u32, end: line.len() as u32 });
    Ok(false)
}

/// Appends `v` as one field of this dialect: quoted, with its quotes doubled, when it holds
/// a comma, a quote or a line break; as it is otherwise. What [`split_fields`] reads back.
pub fn push_field(out: &mut Vec<u8>, v: &[u8]) {
    if v.iter().any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &b in v {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(v);
    }
}

/// The slow path: unquotes fields into `scratch`.
fn split_quoted(line: &[u8], spans: &mut Vec<Span>, scratch: &mut Vec<u8>) -> Result<(), QuoteError> {
    spans.clear();
    scratch.clear();
    let mut i = 0usize;
    loop {
        let field = spans.len();
        let start = scratch.len();
        if line.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match line.get(i) {
                    None => return Err(QuoteError { field }),
                    Some(b'"') if line.get(i + 1) == Some(&b'"') => {
                        scratch.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        scratch.push(b);
                        i += 1;
                    }
                }
            }
            match line.get(i) {
                None | Some(b',') => {}
                Some(_) => return Err(QuoteError { field }),
            }
        } else {
            while let Some(&b) = line.get(i) {
                if b == b',' {
                    break;
                }
                scratch.push(b);
                i += 1;
            }
        }
        spans.push(Span { start: start as u32, end: scratch.len() as u32 });
        if line.get(i) == Some(&b',') {
            i += 1;
        } else {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<String, u64>> {
        let mut r = LineReader::with_max_line(input, max);
        let mut out = Vec::new();
        loop {
            match r.next_line() {
                Ok(Some((_, l))) => out.push(Ok(String::from_utf8_lossy(l).into_owned())),
                Ok(None) => break,
                Err(ReadError::TooLong { line }) => out.push(Err(line)),
                Err(ReadError::Io(e)) => panic!("{e}"),
            }
        }
        out
    }

    #[test]
    fn splits_lines_with_any_ending() {
        let got = lines(b"a,b\r\nc\n\nlast", 100);
        assert_eq!(got, vec![Ok("a,b".into()), Ok("c".into()), Ok("".into()), Ok("last".into())]);
        assert!(lines(b"", 100).is_empty());
        assert_eq!(lines(b"x\n", 100), vec![Ok("x".to_string())]);
    }

    #[test]
    fn long_lines_are_reported_and_skipped() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 50));
        input.extend_from_slice(b"\nfine\n");
        input.extend(std::iter::repeat_n(b'y', 50));
        let got = lines(&input, 10);
        assert_eq!(got, vec![Ok("ok".into()), Err(2), Ok("fine".into()), Err(4)]);
    }

    #[test]
    fn long_lines_across_refills() {
        // Longer than one read chunk, so the too-long check fires before a newline is seen.
        let mut input = vec![b'z'; READ_CHUNK * 3];
        input.extend_from_slice(b"\nafter\n");
        let got = lines(&input, READ_CHUNK);
        assert_eq!(got, vec![Err(1), Ok("after".into())]);
        // A line of exactly the bound is fine.
        let mut input = vec![b'a'; 1000];
        input.push(b'\n');
        assert_eq!(lines(&input, 1000).len(), 1);
        assert_eq!(lines(&input, 999), vec![Err(1)]);
    }

    #[test]
    fn newline_search_matches_naive() {
        for len in 0..40 {
            for pos in 0..len {
                let mut v = vec![b'a'; len];
                v[pos] = b'\n';
                assert_eq!(find_newline(&v), Some(pos));
            }
            assert_eq!(find_newline(&vec![0xffu8; len]), None);
        }
    }

    fn fields(line: &str) -> Result<Vec<String>, QuoteError> {
        let (mut spans, mut scratch) = (Vec::new(), Vec::new());
        let quoted = split_fields(line.as_bytes(), &mut spans, &mut scratch)?;
        let text = if quoted { &scratch[..] } else { line.as_bytes() };
        Ok(spans
            .iter()
            .map(|s| String::from_utf8_lossy(&text[s.start as usize..s.end as usize]).into_owned())
            .collect())
    }

    #[test]
    fn written_fields_read_back() {
        for v in ["plain", "", "a,b", "say \"hi\"", "two\nlines", "cr\r", "\""] {
            let mut line = Vec::new();
            push_field(&mut line, v.as_bytes());
            line.extend_from_slice(b",x");
            let text = String::from_utf8(line).unwrap();
            assert_eq!(fields(&text).unwrap(), [v, "x"], "{text}");
        }
    }

    #[test]
    fn splits_fields() {
        assert_eq!(fields("a,,b").unwrap(), ["a", "", "b"]);
        assert_eq!(fields("").unwrap(), [""]);
        assert_eq!(fields("x,").unwrap(), ["x", ""]);
        assert_eq!(fields(r#""a,b",c,"say ""hi""""#).unwrap(), ["a,b", "c", r#"say "hi""#]);
        assert_eq!(fields(r#"1,"",3"#).unwrap(), ["1", "", "3"]);
        assert_eq!(fields(r#"1,"open"#), Err(QuoteError { field: 1 }));
        assert_eq!(fields(r#""a"b,c"#), Err(QuoteError { field: 0 }));
    }

    #[test]
    fn gzip_is_transparent() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello\n").unwrap();
        let mut bytes = gz.finish().unwrap();
        let mut second = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        second.write_all(b"world\n").unwrap();
        bytes.extend(second.finish().unwrap());
        let mut out = String::new();
        maybe_gunzip(&bytes[..]).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello\nworld\n");
        for plain in [&b""[..], b"a", b"\x1f", b"plain text"] {
            let mut out = Vec::new();
            maybe_gunzip(plain).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, plain);
        }
    }
}
