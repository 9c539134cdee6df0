//! Parsing on every core: the input cut into line-aligned chunks, parsed on rayon's pool,
//! and handed back in file order.
//!
//! Reading (and gunzipping) stays on the calling thread. Each chunk is parsed on its own,
//! its lines numbered from 1; the caller merges the results in file order, adding the lines
//! before each chunk, while the next batch of chunks is being parsed. Where chunks are cut
//! depends on how the reader returns bytes (short reads, gzip members), so nothing a
//! caller builds may depend on it: merging in order makes the result the one a single
//! pass would give. On wasm32 rayon runs everything on the calling thread, in the same
//! order.

use std::io::{self, Read};

use rayon::prelude::*;

use super::csv::MAX_LINE_BYTES;
use crate::error::Result;

/// Bytes per chunk: thousands of rows, so that per-chunk work vanishes, while a batch of
/// chunks stays small next to the dataset being built.
const CHUNK_BYTES: usize = 1 << 20;

/// Chunks parsed per thread between merges: enough that a slow chunk does not leave a
/// thread idle at the end of a batch.
const CHUNKS_PER_THREAD: usize = 4;

/// An input cut into chunks of whole lines.
pub(crate) struct Chunks<R> {
    inner: R,
    /// The start of a line that the last chunk did not hold.
    carry: Vec<u8>,
    eof: bool,
    /// Dropping the rest of an over-long line whose start was handed out as a chunk of its
    /// own (its parser reports it).
    discarding: bool,
    /// The chunk last returned was such a line's start.
    cut: bool,
    /// A read error, returned once the whole lines read before it have been handed out.
    failed: Option<io::Error>,
}

impl<R: Read> Chunks<R> {
    /// `rest`: bytes already read from `inner` that come first (what a line reader held
    /// past the header).
    pub fn new(rest: Vec<u8>, inner: R) -> Self {
        Self { inner, carry: rest, eof: false, discarding: false, cut: false, failed: None }
    }

    /// The next chunk: whole lines, each with its line end except perhaps the last line of
    /// the input; or the first `MAX_LINE_BYTES + 2` bytes of a line too long to read,
    /// alone (see [`Self::cut_long_line`]). `None` at the end of input.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.cut = false;
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut buf = std::mem::take(&mut self.carry);
        loop {
            if self.discarding {
                match memchr::memchr(b'\n', &buf) {
                    Some(end) => {
                        buf.drain(..=end);
                        self.discarding = false;
                    }
                    None => buf.clear(),
                }
            }
            if !self.discarding {
                if self.eof {
                    return Ok((!buf.is_empty()).then_some(buf));
                }
                if buf.len() >= CHUNK_BYTES {
                    match memchr::memrchr(b'\n', &buf) {
                        Some(end) => {
                            self.carry = buf[end + 1..].to_vec();
                            buf.truncate(end + 1);
                            return Ok(Some(buf));
                        }
                        // With its `\r`, a line of MAX_LINE_BYTES takes one byte more.
                        None if buf.len() > MAX_LINE_BYTES + 1 => {
                            // Its parser needs no more to know it is too long.
                            buf.truncate(MAX_LINE_BYTES + 2);
                            buf.shrink_to_fit();
                            self.discarding = true;
                            self.cut = true;
                            return Ok(Some(buf));
                        }
                        // One long line, not yet too long: read on.
                        None => {}
                    }
                }
            } else if self.eof {
                return Ok(None);
            }
            if let Err(e) = self.fill(&mut buf) {
                // The whole lines before the failure come first, as in one pass.
                match memchr::memrchr(b'\n', &buf).filter(|_| !self.discarding) {
                    Some(end) => {
                        self.failed = Some(e);
                        buf.truncate(end + 1);
                        return Ok(Some(buf));
                    }
                    None => return Err(e),
                }
            }
        }
    }

    /// Whether the chunk last returned was the start of a line too long to read (the rest
    /// of that line is dropped by the next call).
    pub fn cut_long_line(&self) -> bool {
        self.cut
    }

    /// Appends what one read returns to `buf`; sets `eof` when it returns nothing.
    fn fill(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let old = buf.len();
        let more = CHUNK_BYTES.saturating_sub(old).max(1 << 16);
        // Exactly: doubling would hold twice the chunk (and twice the longest line).
        buf.reserve_exact(more);
        buf.resize(old + more, 0);
        loop {
            match self.inner.read(&mut buf[old..]) {
                Ok(n) => {
                    buf.truncate(old + n);
                    self.eof = n == 0;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    buf.truncate(old);
                    return Err(e);
                }
            }
        }
    }
}

/// Parses every chunk of `chunks` with `parse` on rayon's pool and passes the results, with
/// the chunks' bytes, to `merge` in file order. Merging a batch overlaps parsing the next.
/// Stops early when `merge` returns `false` or an error. A read error is returned (through
/// `read_error`) after every chunk before it has been merged, so an error earlier in the
/// file wins.
pub(crate) fn parse_in_order<R, T, P, M>(
    chunks: &mut Chunks<R>,
    parse: P,
    mut merge: M,
    read_error: impl FnOnce(io::Error) -> crate::error::Error,
) -> Result<()>
where
    R: Read,
    T: Send,
    P: Fn(&[u8]) -> T + Sync,
    M: FnMut(&[u8], T) -> Result<bool> + Send,
{
    let batch = CHUNKS_PER_THREAD * rayon::current_num_threads().max(1);
    let mut parsed: Vec<(Vec<u8>, T)> = Vec::new();
    let mut failed = None;
    loop {
        let mut next = Vec::with_capacity(batch);
        // A line too long to read ends the batch, and its batch is merged before reading
        // on: under `BadRows::Error` it is the error, and the rest of an endless line must
        // not be read first.
        while failed.is_none() && next.len() < batch {
            match chunks.next_chunk() {
                Ok(Some(chunk)) => {
                    next.push(chunk);
                    if chunks.cut_long_line() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => failed = Some(e),
            }
        }
        let last = next.is_empty();
        let (merged, next_parsed) = rayon::join(
            || merge_all(&mut parsed, &mut merge),
            || {
                next.into_par_iter()
                    .map(|chunk| {
                        let result = parse(&chunk);
                        (chunk, result)
                    })
                    .collect::<Vec<_>>()
            },
        );
        if !merged? {
            return Ok(());
        }
        if last {
            return failed.map_or(Ok(()), |e| Err(read_error(e)));
        }
        parsed = next_parsed;
        if chunks.cut_long_line() && !merge_all(&mut parsed, &mut merge)? {
            return Ok(());
        }
    }
}

/// Merges `parsed` in order; `false` once `merge` says to stop.
fn merge_all<T>(parsed: &mut Vec<(Vec<u8>, T)>, merge: &mut impl FnMut(&[u8], T) -> Result<bool>) -> Result<bool> {
    for (bytes, result) in parsed.drain(..) {
        if !merge(&bytes, result)? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn cut(data: &[u8], step: usize) -> Vec<Vec<u8>> {
        let mut chunks = Chunks::new(Vec::new(), Trickle { data, step });
        std::iter::from_fn(|| chunks.next_chunk().unwrap()).collect()
    }

    #[test]
    fn chunks_are_whole_lines_and_lose_nothing() {
        let line = b"12345,abc,0.5\n";
        let data: Vec<u8> = line.iter().copied().cycle().take(line.len() * 200_000 + 5).collect();
        for step in [1 << 20, 7919, CHUNK_BYTES + 3] {
            let chunks = cut(&data, step);
            assert!(chunks.len() > 2);
            for c in &chunks[..chunks.len() - 1] {
                assert_eq!(c.last(), Some(&b'\n'));
                assert!(c.len() >= CHUNK_BYTES - line.len());
            }
            assert_eq!(chunks.concat(), data);
        }
        assert!(cut(b"", 10).is_empty());
    }

    #[test]
    fn an_over_long_line_is_one_chunk_and_its_rest_is_dropped() {
        let mut data = b"a\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 3 * CHUNK_BYTES));
        data.extend_from_slice(b"\nb\n");
        let chunks = cut(&data, 1 << 16);
        // "a" and the start of the long line share the first chunk (cut at "a"'s end).
        assert_eq!(chunks[0], b"a\n");
        assert!(chunks[1].len() == MAX_LINE_BYTES + 2 && chunks[1].iter().all(|&b| b == b'x'));
        assert_eq!(chunks[2], b"b\n");
        assert_eq!(chunks.len(), 3);
        // A line of exactly the bound, with `\r\n`, is kept whole.
        let mut data = vec![b'y'; MAX_LINE_BYTES];
        data.extend_from_slice(b"\r\nz");
        assert_eq!(cut(&data, 1 << 16).concat(), data);
    }

    #[test]
    fn merges_in_order_and_reports_read_errors_last() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(b'\n');
                self.0 -= n;
                Ok(n)
            }
        }
        let total = 5 * CHUNK_BYTES + 17;
        let mut chunks = Chunks::new(Vec::new(), Failing(total));
        let mut seen = 0;
        let result = parse_in_order(
            &mut chunks,
            |c| c.len(),
            |bytes, n| {
                assert_eq!(bytes.len(), n);
                seen += n;
                Ok(true)
            },
            |e| crate::error::Error::Config(e.to_string()),
        );
        assert!(result.unwrap_err().to_string().contains("disk on fire"));
        assert_eq!(seen, total);
    }
}
