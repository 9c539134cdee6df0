//! The shuffle stream: every row exactly once, bounded buffer, deterministic order.

use adaftr_core::data::{load_train, LoadOptions, SchemaSpec, ShuffleStream};

/// A CSV whose row r has u = r (so rows are identifiable after encoding) and x = r.
fn numbered(rows: usize) -> Vec<u8> {
    let mut s = String::from("u,x,click,conversion\n");
    for r in 0..rows {
        let click = (r % 7 == 0) as u8;
        let conversion = (r % 21 == 0) as u8;
        s.push_str(&format!("{r},{r},{click},{conversion}\n"));
    }
    s.into_bytes()
}

fn opts() -> LoadOptions {
    let spec = SchemaSpec { categorical: vec!["u".into()], numeric: vec!["x".into()], ..Default::default() };
    LoadOptions { spec: Some(spec), ..Default::default() }
}

fn drain(bytes: &[u8], capacity: usize, chunk: usize, seed: u64) -> (Vec<Vec<usize>>, usize) {
    let (schema, _, _) = load_train(bytes, "t", &opts()).unwrap();
    let mut stream = ShuffleStream::new(bytes, "t", &schema, &opts(), capacity, chunk, seed).unwrap();
    let mut chunks = Vec::new();
    while let Some(d) = stream.next_chunk().unwrap() {
        assert!(stream.buffered() <= capacity);
        let rows: Vec<usize> = d.num.iter().map(|&x| x as usize).collect();
        // Labels and ids travel with their row.
        for (i, &r) in rows.iter().enumerate() {
            assert_eq!(d.click.get(i), r % 7 == 0);
            assert_eq!(d.conversion.get(i), r % 21 == 0);
            assert_eq!(schema.categorical[0].decode(d.cat[i]), Some(r.to_string().as_str()));
        }
        chunks.push(rows);
    }
    assert_eq!(stream.report().rows, bytes.iter().filter(|&&b| b == b'\n').count() - 1);
    (chunks, stream.max_buffered())
}

#[test]
fn every_row_exactly_once_within_the_bound() {
    let bytes = numbered(1000);
    for (capacity, chunk) in [(1, 64), (10, 64), (100, 7), (5000, 128), (1000, 1000)] {
        let (chunks, max_buffered) = drain(&bytes, capacity, chunk, 3);
        assert!(max_buffered <= capacity && max_buffered == capacity.min(1000), "{capacity}: {max_buffered}");
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == chunk), "{sizes:?}");
        let mut all: Vec<usize> = chunks.concat();
        if capacity == 1 {
            assert_eq!(all, (0..1000).collect::<Vec<_>>(), "capacity 1 keeps file order");
        } else {
            assert_ne!(all, (0..1000).collect::<Vec<_>>());
        }
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }
}

#[test]
fn shuffle_is_local_to_the_buffer_and_seeded() {
    let bytes = numbered(2000);
    let (a, _) = drain(&bytes, 50, 100, 1);
    let (b, _) = drain(&bytes, 50, 100, 1);
    let (c, _) = drain(&bytes, 50, 100, 2);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Output position i can only hold rows read by then: row index < i + capacity.
    for (i, &r) in a.concat().iter().enumerate() {
        assert!(r < i + 50, "row {r} emitted at {i}");
    }
}

#[test]
fn rejects_zero_sizes() {
    let bytes = numbered(10);
    let (schema, _, _) = load_train(&bytes[..], "t", &opts()).unwrap();
    assert!(ShuffleStream::new(&bytes[..], "t", &schema, &opts(), 0, 5, 1).is_err());
    assert!(ShuffleStream::new(&bytes[..], "t", &schema, &opts(), 5, 0, 1).is_err());
    let mut s = ShuffleStream::new(&bytes[..], "t", &schema, &opts(), 5, 3, 1).unwrap();
    assert!(s.next_rows(0).is_err());
    assert_eq!(s.next_rows(8).unwrap().unwrap().len(), 8);
    // The iterator yields the rest in chunks of 3.
    let sizes: Vec<usize> = s.map(|d| d.unwrap().len()).collect();
    assert_eq!(sizes, [2]);
}
