//! Readers and writers: rudy / G-set graphs, the QUBO text format, and JSON.

use std::io::{self, BufRead, Read, Write};

use crate::limits::{MAX_INPUT_BYTES, available_memory_bytes, model_bytes, quote};
use crate::{ModelError, Qubo, QuboBuilder, QuboTerms};

/// An undirected weighted graph, as read from a rudy / G-set file.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    n: usize,
    edges: Vec<(u32, u32, f64)>,
}

impl Graph {
    /// The largest sum of absolute edge weights a graph may have: a quarter of
    /// [`Qubo::MAX_ABS_SUM`], since the Max-Cut model counts each weight four times (twice
    /// linear, twice quadratic). Every cut value is bounded by it.
    pub const MAX_ABS_WEIGHT_SUM: f64 = Qubo::MAX_ABS_SUM / 4.0;

    /// A graph on `n` vertices (0-based) from its edges `(i, j, w)`.
    ///
    /// # Errors
    ///
    /// A vertex out of range, a non-finite weight, or weights whose absolute values sum to
    /// more than [`Graph::MAX_ABS_WEIGHT_SUM`].
    pub fn new(n: usize, edges: Vec<(usize, usize, f64)>) -> Result<Graph, ModelError> {
        if n > Qubo::MAX_VARS {
            return Err(ModelError::TooManyVariables {
                n,
                max: Qubo::MAX_VARS,
            });
        }
        let mut out = Vec::with_capacity(edges.len());
        for (i, j, w) in edges {
            for v in [i, j] {
                if v >= n {
                    return Err(ModelError::IndexOutOfRange { index: v, n });
                }
            }
            if !w.is_finite() {
                return Err(ModelError::NonFinite {
                    term: format!("edge {i}-{j}"),
                    value: w,
                });
            }
            out.push((i as u32, j as u32, w));
        }
        let sum: f64 = out.iter().map(|e| e.2.abs()).sum();
        if sum > Graph::MAX_ABS_WEIGHT_SUM {
            return Err(ModelError::TooLarge {
                sum,
                max: Graph::MAX_ABS_WEIGHT_SUM,
            });
        }
        Ok(Graph { n, edges: out })
    }

    /// Number of vertices.
    pub fn num_vertices(&self) -> usize {
        self.n
    }

    /// Number of edges (as listed, self-loops included).
    pub fn num_edges(&self) -> usize {
        self.edges.len()
    }

    /// The edges `(i, j, w)`, 0-based.
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        self.edges
            .iter()
            .map(|&(i, j, w)| (i as usize, j as usize, w))
    }

    /// Sum of all edge weights.
    pub fn total_weight(&self) -> f64 {
        self.edges.iter().map(|e| e.2).sum()
    }

    /// The weight of the cut between `{i : side[i]}` and the rest.
    ///
    /// # Panics
    ///
    /// If `side.len() != num_vertices()`.
    pub fn cut_value(&self, side: &[bool]) -> f64 {
        assert_eq!(side.len(), self.n);
        self.edges
            .iter()
            .filter(|&&(i, j, _)| side[i as usize] != side[j as usize])
            .map(|e| e.2)
            .sum()
    }

    /// The Max-Cut QUBO: its energy is minus the cut weight,
    /// `E(x) = sum_{(i,j)} w_ij (2 x_i x_j - x_i - x_j)`. Self-loops never cross a cut and
    /// add nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use qorch_qubo::Graph;
    ///
    /// let triangle = Graph::new(3, vec![(0, 1, 1.0), (1, 2, 1.0), (0, 2, 1.0)]).unwrap();
    /// let q = triangle.max_cut_qubo();
    /// let side = [true, false, false];
    /// assert_eq!(q.energy(&side), -triangle.cut_value(&side));
    /// assert_eq!(triangle.cut_value(&side), 2.0);
    /// ```
    ///
    /// # Panics
    ///
    /// Never: a validated graph always gives a valid model.
    pub fn max_cut_qubo(&self) -> Qubo {
        let mut b = QuboBuilder::new(self.n);
        for &(i, j, w) in &self.edges {
            if i == j {
                continue;
            }
            b.add_linear(i as usize, -w);
            b.add_linear(j as usize, -w);
            b.add_quadratic(i as usize, j as usize, 2.0 * w);
        }
        b.build().expect("a validated graph gives a valid model")
    }
}

/// Why a file could not be read. Parse errors name the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The bytes are not text in a supported encoding.
    #[error("input is not UTF-8 or UTF-16 text")]
    Encoding,
    /// A line does not match the format.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What was wrong, and what was expected.
        message: String,
    },
    /// The file ended before everything its header announced.
    #[error("unexpected end of input: the header announces {expected} {what}, found {found}")]
    Truncated {
        /// What was being counted.
        what: &'static str,
        /// Count from the header.
        expected: usize,
        /// Count found.
        found: usize,
    },
    /// JSON that does not parse or does not describe a model.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// `serde_json`'s message.
        message: String,
    },
    /// The terms parse but do not form a valid model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The input is longer than the readers accept.
    #[error("the input is larger than the limit of {max_bytes} bytes")]
    InputTooLarge {
        /// The limit ([`MAX_INPUT_BYTES`](crate::MAX_INPUT_BYTES)).
        max_bytes: u64,
    },
    /// The model the input announces needs more memory than is available.
    #[error(
        "{n} variables and {m} terms need about {needed_bytes} bytes, more than the \
         {available_bytes} bytes of memory available"
    )]
    OutOfMemory {
        /// Variables announced.
        n: usize,
        /// Quadratic terms to be held: the header's count for JSON, and for the text
        /// formats, read as they come, what the reader was about to make room for (at most
        /// the header's count).
        m: usize,
        /// Bytes needed ([`model_bytes`](crate::model_bytes)).
        needed_bytes: u64,
        /// Bytes available (`MemAvailable`).
        available_bytes: u64,
    },
}

/// Refuses a model of `n` variables and `m` terms that needs more than `available` bytes.
fn check_memory(n: usize, m: usize, available: Option<u64>) -> Result<(), ReadError> {
    let needed_bytes = model_bytes(n, m);
    match available {
        Some(available_bytes) if needed_bytes > available_bytes => Err(ReadError::OutOfMemory {
            n,
            m,
            needed_bytes,
            available_bytes,
        }),
        _ => Ok(()),
    }
}

fn syntax(line: usize, message: impl Into<String>) -> ReadError {
    ReadError::Syntax {
        line,
        message: message.into(),
    }
}

/// Decodes UTF-8 (with or without BOM) or UTF-16 (with BOM), as G-set files come in all three.
fn decode_text(input: impl Read) -> Result<String, ReadError> {
    decode_text_capped(input, MAX_INPUT_BYTES)
}

/// [`decode_text`], reading at most `cap` bytes: one more is an error.
fn decode_text_capped(input: impl Read, cap: u64) -> Result<String, ReadError> {
    let mut raw = Vec::new();
    input.take(cap.saturating_add(1)).read_to_end(&mut raw)?;
    if raw.len() as u64 > cap {
        return Err(ReadError::InputTooLarge { max_bytes: cap });
    }
    let utf16 = |bytes: &[u8], le: bool| -> Result<String, ReadError> {
        if !bytes.len().is_multiple_of(2) {
            return Err(ReadError::Encoding);
        }
        let units = bytes.chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| ReadError::Encoding)
    };
    match raw.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => {
            String::from_utf8(rest.to_vec()).map_err(|_| ReadError::Encoding)
        }
        _ => String::from_utf8(raw).map_err(|_| ReadError::Encoding),
    }
}

/// How the text of a [`TextLines`] is encoded (from its byte-order mark).
#[derive(Clone, Copy)]
enum Encoding {
    Utf8,
    Utf16 { le: bool },
}

/// The lines of a text input, read one at a time (only the current line is held): UTF-8
/// with or without a BOM, or UTF-16 with one, as [`decode_text`] accepts, and at most `cap`
/// bytes in all (one more is [`ReadError::InputTooLarge`]). Lines end at `\n`; the readers
/// trim them, so a `\r` before it is dropped too.
struct TextLines<R> {
    input: R,
    encoding: Encoding,
    cap: u64,
    /// Bytes taken from the input so far (the BOM included).
    consumed: u64,
    /// Lines read so far: the number of the current one.
    number: usize,
    /// The bytes of the line being read (UTF-8, not checked yet).
    raw: Vec<u8>,
    /// The current line (its buffer goes back to `raw` for the next one).
    line: String,
    /// UTF-16 code units of the current line.
    units: Vec<u16>,
}

/// [`TextLines`] over `input`, at most [`MAX_INPUT_BYTES`] bytes.
fn text_lines(input: impl Read) -> Result<TextLines<impl BufRead>, ReadError> {
    text_lines_capped(input, MAX_INPUT_BYTES)
}

fn text_lines_capped(input: impl Read, cap: u64) -> Result<TextLines<impl BufRead>, ReadError> {
    let mut input = input.take(cap.saturating_add(1));
    // The first bytes, for the byte-order mark (reads may come short).
    let mut head = [0_u8; 3];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (encoding, bom) = match &head[..got] {
        [0xFF, 0xFE, ..] => (Encoding::Utf16 { le: true }, 2),
        [0xFE, 0xFF, ..] => (Encoding::Utf16 { le: false }, 2),
        [0xEF, 0xBB, 0xBF] => (Encoding::Utf8, 3),
        _ => (Encoding::Utf8, 0),
    };
    let rest = io::Cursor::new(head[bom..got].to_vec());
    Ok(TextLines {
        input: io::BufReader::new(rest.chain(input)),
        encoding,
        cap,
        consumed: bom as u64,
        number: 0,
        raw: Vec::new(),
        line: String::new(),
        units: Vec::new(),
    })
}

impl<R: BufRead> TextLines<R> {
    /// Reads the next line into `line`; its 1-based number, `None` at the end of the input.
    fn next_line(&mut self) -> Result<Option<usize>, ReadError> {
        self.raw = std::mem::take(&mut self.line).into_bytes();
        self.raw.clear();
        let read = match self.encoding {
            Encoding::Utf8 => self.input.read_until(b'\n', &mut self.raw)?,
            Encoding::Utf16 { le } => self.read_utf16_line(le)?,
        };
        self.consumed = self.consumed.saturating_add(read as u64);
        if self.consumed > self.cap {
            return Err(ReadError::InputTooLarge {
                max_bytes: self.cap,
            });
        }
        if read == 0 {
            return Ok(None);
        }
        if self.raw.last() == Some(&b'\n') {
            self.raw.pop();
        }
        self.number += 1;
        self.line =
            String::from_utf8(std::mem::take(&mut self.raw)).map_err(|_| ReadError::Encoding)?;
        Ok(Some(self.number))
    }

    /// Reads UTF-16 code units up to a line feed (included), decoded into `raw`; the bytes
    /// read.
    fn read_utf16_line(&mut self, le: bool) -> Result<usize, ReadError> {
        self.units.clear();
        let mut read = 0;
        loop {
            let mut pair = [0_u8; 2];
            for (k, b) in pair.iter_mut().enumerate() {
                let buf = self.input.fill_buf()?;
                let Some(&first) = buf.first() else {
                    // The end: between units, or (an odd byte count) inside one.
                    return if k == 0 {
                        self.decode_units(read)
                    } else if self.consumed.saturating_add(read as u64 + 1) > self.cap {
                        // Cut inside a unit by the cap, not by the input.
                        Err(ReadError::InputTooLarge {
                            max_bytes: self.cap,
                        })
                    } else {
                        Err(ReadError::Encoding)
                    };
                };
                *b = first;
                self.input.consume(1);
            }
            read += 2;
            let unit = if le {
                u16::from_le_bytes(pair)
            } else {
                u16::from_be_bytes(pair)
            };
            self.units.push(unit);
            if unit == u16::from(b'\n') {
                return self.decode_units(read);
            }
        }
    }

    fn decode_units(&mut self, read: usize) -> Result<usize, ReadError> {
        let text = String::from_utf16(&self.units).map_err(|_| ReadError::Encoding)?;
        self.raw.extend_from_slice(text.as_bytes());
        Ok(read)
    }

    /// The next non-empty, non-comment line, split into tokens, with its 1-based number.
    /// Comments start with `#`, `%`, or (in the QUBO format, `c_comments`) `c ` / a lone `c`.
    fn next_content(&mut self, c_comments: bool) -> Result<Option<(usize, Vec<&str>)>, ReadError> {
        loop {
            let Some(number) = self.next_line()? else {
                return Ok(None);
            };
            let line = self.line.trim();
            let is_comment = line.is_empty()
                || line.starts_with('#')
                || line.starts_with('%')
                || (c_comments
                    && (line == "c" || line.starts_with("c ") || line.starts_with("c\t")));
            if !is_comment {
                return Ok(Some((number, self.line.split_whitespace().collect())));
            }
        }
    }
}

fn parse_usize(tok: &str, line: usize, what: &str) -> Result<usize, ReadError> {
    tok.parse::<usize>().map_err(|_| {
        syntax(
            line,
            format!(
                "expected {what} (a non-negative integer), found `{}`",
                quote(tok)
            ),
        )
    })
}

fn parse_f64(tok: &str, line: usize, what: &str) -> Result<f64, ReadError> {
    let v = tok.parse::<f64>().map_err(|_| {
        syntax(
            line,
            format!("expected {what} (a number), found `{}`", quote(tok)),
        )
    })?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(syntax(
            line,
            format!("{what} `{}` is not finite", quote(tok)),
        ))
    }
}

/// Reads a rudy / G-set graph: a first line `n m`, then `m` lines `i j w` with 1-based
/// vertices (`w` may be omitted and then is 1). Blank lines and lines starting with `#` or `%`
/// are ignored; UTF-8 and UTF-16 (with BOM) are accepted.
///
/// # Errors
///
/// A [`ReadError`] naming the line: a malformed header or edge, a vertex outside `1..=n`,
/// fewer or more edges than the header announces, or weights whose absolute values sum to
/// more than [`Graph::MAX_ABS_WEIGHT_SUM`]; an input over [`MAX_INPUT_BYTES`](crate::MAX_INPUT_BYTES),
/// or a header announcing a graph that needs more memory than is available.
///
/// # Examples
///
/// ```
/// let g = qorch_qubo::read_rudy("3 2\n1 2 1\n2 3 -1\n".as_bytes()).unwrap();
/// assert_eq!((g.num_vertices(), g.num_edges()), (3, 2));
///
/// let err = qorch_qubo::read_rudy("3 1\n1 4 1\n".as_bytes()).unwrap_err();
/// assert_eq!(err.to_string(), "line 2: vertex 4 out of range 1..=3");
/// ```
pub fn read_rudy(input: impl Read) -> Result<Graph, ReadError> {
    let mut lines = text_lines(input)?;
    let (hline, header) = lines.next_content(false)?.ok_or(ReadError::Truncated {
        what: "header lines",
        expected: 1,
        found: 0,
    })?;
    if header.len() < 2 {
        return Err(syntax(hline, "expected a header `n m` (vertices, edges)"));
    }
    let n = parse_usize(header[0], hline, "the vertex count n")?;
    let m = parse_usize(header[1], hline, "the edge count m")?;
    if n > Qubo::MAX_VARS {
        return Err(syntax(
            hline,
            format!("{n} vertices exceed the maximum of {}", Qubo::MAX_VARS),
        ));
    }
    // The edges are held as they come, never reserved from the header alone: a header
    // may announce more than the input holds.
    let available = available_memory_bytes();
    check_memory(n, 0, available)?;
    let mut edges: Vec<(u32, u32, f64)> = Vec::new();
    let mut abs_sum = 0.0;
    while let Some((line, toks)) = lines.next_content(false)? {
        if edges.len() == m {
            return Err(syntax(
                line,
                format!("more edges than the {m} the header announces"),
            ));
        }
        if toks.len() < 2 || toks.len() > 3 {
            return Err(syntax(
                line,
                format!("expected an edge `i j w`, found {} fields", toks.len()),
            ));
        }
        let vertex = |tok: &str| -> Result<u32, ReadError> {
            let v = parse_usize(tok, line, "a vertex")?;
            if v == 0 || v > n {
                return Err(syntax(line, format!("vertex {v} out of range 1..={n}")));
            }
            Ok((v - 1) as u32)
        };
        let i = vertex(toks[0])?;
        let j = vertex(toks[1])?;
        let w = match toks.get(2) {
            Some(tok) => parse_f64(tok, line, "an edge weight")?,
            None => 1.0,
        };
        abs_sum += w.abs();
        if abs_sum > Graph::MAX_ABS_WEIGHT_SUM {
            return Err(syntax(
                line,
                format!(
                    "the absolute edge weights sum to more than {:e}, the bound that keeps \
                     every cut and energy finite",
                    Graph::MAX_ABS_WEIGHT_SUM
                ),
            ));
        }
        if edges.len() == edges.capacity() {
            // Doubling (from 1024), never past what the header announces.
            let more = edges.len().max(1024).min(m - edges.len());
            check_memory(n, edges.len() + more, available)?;
            edges.reserve_exact(more);
        }
        edges.push((i, j, w));
    }
    if edges.len() < m {
        return Err(ReadError::Truncated {
            what: "edges",
            expected: m,
            found: edges.len(),
        });
    }
    Ok(Graph { n, edges })
}

/// Reads the QUBO text format (the format of D-Wave's qbsolv, with one extension):
///
/// ```text
/// c comment lines start with `c` (or `#`)
/// p qubo 0 <max_nodes> <n_nodes> <n_couplers>
/// <i> <i> <a_i>          n_nodes diagonal (linear) lines
/// <i> <j> <b_ij>         n_couplers off-diagonal (quadratic) lines, i != j
/// o <offset>             optional (qorch extension): a constant
/// ```
///
/// Indices are 0-based and must be below `max_nodes`, the number of variables. Entries may
/// come in any order; repeated entries add up.
///
/// # Errors
///
/// A [`ReadError`] naming the line: a missing or malformed `p` line, an index at or above
/// `max_nodes`, a bad number, or entry counts that differ from the header; a model over
/// [`Qubo::MAX_ABS_SUM`], an input over [`MAX_INPUT_BYTES`](crate::MAX_INPUT_BYTES), or a
/// header announcing a model that needs more memory than is available.
///
/// # Examples
///
/// ```
/// let q = qorch_qubo::read_qubo_text("p qubo 0 2 1 1\n0 0 -1\n0 1 2.5\n".as_bytes()).unwrap();
/// assert_eq!(q.energy(&[true, true]), 1.5);
/// ```
pub fn read_qubo_text(input: impl Read) -> Result<Qubo, ReadError> {
    let mut lines = text_lines(input)?;
    let (pline, p) = lines.next_content(true)?.ok_or(ReadError::Truncated {
        what: "`p` lines",
        expected: 1,
        found: 0,
    })?;
    if p.len() != 6 || p[0] != "p" || p[1] != "qubo" {
        return Err(syntax(
            pline,
            "expected the problem line `p qubo 0 <max_nodes> <n_nodes> <n_couplers>`",
        ));
    }
    let n = parse_usize(p[3], pline, "max_nodes")?;
    let n_nodes = parse_usize(p[4], pline, "n_nodes")?;
    let n_couplers = parse_usize(p[5], pline, "n_couplers")?;
    if n > Qubo::MAX_VARS {
        return Err(syntax(
            pline,
            format!("{n} variables exceed the maximum of {}", Qubo::MAX_VARS),
        ));
    }
    // Couplers are checked against the memory as they come (each time their count
    // doubles), never from the header alone: a header may announce more than the input
    // holds.
    let available = available_memory_bytes();
    check_memory(n, 0, available)?;
    let mut b = QuboBuilder::new(n);
    let (mut nodes, mut couplers) = (0, 0_usize);
    while let Some((line, toks)) = lines.next_content(true)? {
        if toks.first() == Some(&"o") {
            if toks.len() != 2 {
                return Err(syntax(line, "expected `o <offset>`"));
            }
            b.add_offset(parse_f64(toks[1], line, "the offset")?);
            continue;
        }
        if toks.len() != 3 {
            return Err(syntax(
                line,
                format!("expected an entry `i j value`, found {} fields", toks.len()),
            ));
        }
        let i = parse_usize(toks[0], line, "a variable index")?;
        let j = parse_usize(toks[1], line, "a variable index")?;
        for v in [i, j] {
            if v >= n {
                return Err(syntax(
                    line,
                    format!("variable {v} out of range 0..{n} (max_nodes is {n})"),
                ));
            }
        }
        let w = parse_f64(toks[2], line, "a coefficient")?;
        if i == j {
            nodes += 1;
            b.add_linear(i, w);
        } else {
            couplers += 1;
            if couplers >= 1024 && couplers.is_power_of_two() {
                check_memory(n, (2 * couplers).min(n_couplers.max(couplers)), available)?;
            }
            b.add_quadratic(i, j, w);
        }
    }
    if nodes != n_nodes {
        return Err(ReadError::Truncated {
            what: "diagonal entries",
            expected: n_nodes,
            found: nodes,
        });
    }
    if couplers != n_couplers {
        return Err(ReadError::Truncated {
            what: "couplers",
            expected: n_couplers,
            found: couplers,
        });
    }
    Ok(b.build()?)
}

/// Writes `qubo` in the format read by [`read_qubo_text`].
///
/// # Errors
///
/// Any I/O error of `out`.
pub fn write_qubo_text(qubo: &Qubo, mut out: impl Write) -> io::Result<()> {
    let lin: Vec<(usize, f64)> = qubo
        .linear()
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, a)| *a != 0.0)
        .collect();
    writeln!(out, "c written by qorch")?;
    writeln!(
        out,
        "p qubo 0 {} {} {}",
        qubo.num_vars(),
        lin.len(),
        qubo.num_interactions()
    )?;
    for (i, a) in lin {
        writeln!(out, "{i} {i} {a:?}")?;
    }
    for (i, j, w) in qubo.interactions() {
        writeln!(out, "{i} {j} {w:?}")?;
    }
    if qubo.offset() != 0.0 {
        writeln!(out, "o {:?}", qubo.offset())?;
    }
    Ok(())
}

/// Reads a model in JSON (see [`QuboTerms`]).
///
/// # Errors
///
/// [`ReadError::Json`] with line and column (unknown fields are refused), or
/// [`ReadError::Model`] if the terms are invalid; an input over
/// [`MAX_INPUT_BYTES`](crate::MAX_INPUT_BYTES), or `num_vars` needing more memory than is
/// available.
///
/// # Examples
///
/// ```
/// let q = qorch_qubo::read_json(r#"{"num_vars": 2, "quadratic": [[0, 1, -1.0]]}"#.as_bytes()).unwrap();
/// assert_eq!(q.energy(&[true, true]), -1.0);
/// ```
pub fn read_json(input: impl Read) -> Result<Qubo, ReadError> {
    let text = decode_text(input)?;
    let terms: QuboTerms = serde_json::from_str(&text).map_err(|e| ReadError::Json {
        line: e.line(),
        column: e.column(),
        message: {
            // serde_json's messages quote the offending key or value whole.
            let message = e.to_string();
            if message.len() <= 3 * crate::MAX_QUOTE_CHARS {
                message
            } else {
                quote(&message)
            }
        },
    })?;
    check_memory(
        terms.num_vars,
        terms.quadratic.len(),
        available_memory_bytes(),
    )?;
    Ok(Qubo::try_from(terms)?)
}

/// Writes a model as JSON (see [`QuboTerms`]).
///
/// # Errors
///
/// Any I/O error of `out`.
pub fn write_json(qubo: &Qubo, out: impl Write) -> io::Result<()> {
    serde_json::to_writer(out, &QuboTerms::from(qubo)).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rudy_errors_name_the_line() {
        let cases = [
            ("", "unexpected end of input"),
            ("3\n", "line 1: expected a header"),
            ("x 2\n", "line 1: expected the vertex count n"),
            ("3 2\n1 2 1\n", "announces 2 edges, found 1"),
            ("3 1\n1 2 1\n2 3 1\n", "line 3: more edges"),
            ("3 1\n\n1 0 1\n", "line 3: vertex 0 out of range"),
            ("3 1\n1 2 abc\n", "line 2: expected an edge weight"),
            (
                "3 1\n1 2 nan\n",
                "line 2: an edge weight `nan` is not finite",
            ),
            (
                "3 1\n1 2 3 4\n",
                "line 2: expected an edge `i j w`, found 4 fields",
            ),
        ];
        for (input, want) in cases {
            let err = read_rudy(input.as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "input {input:?}: got {err:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn rudy_accepts_crlf_bom_utf16_comments_and_missing_weights() {
        let g = read_rudy("\u{feff}# c\r\n3 2\r\n1 2\r\n2 3 -2\r\n\r\n".as_bytes()).unwrap();
        assert_eq!(g.edges().collect::<Vec<_>>(), [(0, 1, 1.0), (1, 2, -2.0)]);
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "2 1\n1 2 5\n".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let g = read_rudy(utf16.as_slice()).unwrap();
        assert_eq!(g.total_weight(), 5.0);
        assert!(matches!(
            read_rudy([0xC3, 0x28].as_slice()),
            Err(ReadError::Encoding)
        ));
    }

    #[test]
    fn qubo_text_round_trip_and_errors() {
        let mut b = QuboBuilder::new(4);
        b.add_linear(0, -1.5)
            .add_quadratic(0, 3, 2.0)
            .add_quadratic(1, 2, -0.25)
            .add_offset(3.0);
        let q = b.build().unwrap();
        let mut buf = Vec::new();
        write_qubo_text(&q, &mut buf).unwrap();
        assert_eq!(read_qubo_text(buf.as_slice()).unwrap(), q);

        let cases = [
            ("0 0 1\n", "line 1: expected the problem line"),
            ("p qubo 0 2 1 0\n0 2 1\n", "line 2: variable 2 out of range"),
            ("p qubo 0 2 1 0\n", "announces 1 diagonal entries, found 0"),
            ("c x\np qubo 0 2 0 1\n0 1\n", "line 3: expected an entry"),
        ];
        for (input, want) in cases {
            let err = read_qubo_text(input.as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "input {input:?}: got {err:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn readers_stop_at_the_size_cap() {
        let err = decode_text_capped(io::repeat(b' '), 1000).unwrap_err();
        assert!(
            matches!(err, ReadError::InputTooLarge { max_bytes: 1000 }),
            "{err}"
        );
        assert_eq!(decode_text_capped(&b"1 2"[..], 3).unwrap(), "1 2");
    }

    /// `pattern` over and over, without end.
    struct Cycle(&'static [u8], usize);

    impl Read for Cycle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            for b in buf.iter_mut() {
                *b = self.0[self.1 % self.0.len()];
                self.1 += 1;
            }
            Ok(buf.len())
        }
    }

    fn all_lines(input: &[u8], cap: u64) -> Result<Vec<(usize, String)>, ReadError> {
        let mut lines = text_lines_capped(input, cap)?;
        let mut out = Vec::new();
        while let Some((n, toks)) = lines.next_content(true)? {
            out.push((n, toks.join(" ")));
        }
        Ok(out)
    }

    #[test]
    fn lines_stream_in_every_encoding_and_stop_at_the_cap() {
        let want = vec![(2, "1 2".to_owned()), (4, "3 é".to_owned())];
        let text = "c x\r\n1 2\r\n\n3 é";
        assert_eq!(all_lines(text.as_bytes(), 100).unwrap(), want);
        let bom = [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat();
        assert_eq!(all_lines(&bom, 100).unwrap(), want);
        for le in [true, false] {
            let mut utf16 = if le {
                vec![0xFF, 0xFE]
            } else {
                vec![0xFE, 0xFF]
            };
            for u in text.encode_utf16() {
                utf16.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
            }
            assert_eq!(all_lines(&utf16, 100).unwrap(), want);
            // The cap counts bytes, BOM included, wherever it falls.
            for cap in [3, 7, utf16.len() as u64 - 1] {
                let err = all_lines(&utf16, cap).unwrap_err();
                assert!(
                    matches!(err, ReadError::InputTooLarge { .. }),
                    "{cap}: {err}"
                );
            }
            assert_eq!(all_lines(&utf16, utf16.len() as u64).unwrap(), want);
            let odd = &utf16[..utf16.len() - 1];
            assert!(matches!(all_lines(odd, 100), Err(ReadError::Encoding)));
        }
        assert!(matches!(
            all_lines(&[b'1', b'\n', 0xC3, 0x28], 100),
            Err(ReadError::Encoding)
        ));
        let err = all_lines(text.as_bytes(), text.len() as u64 - 1).unwrap_err();
        assert!(matches!(err, ReadError::InputTooLarge { .. }), "{err}");
        // Endless input: a line without end, and lines without end.
        for input in [Cycle(b" ", 0), Cycle(b"\n", 0)] {
            let mut lines = text_lines_capped(input, 1000).unwrap();
            let err = loop {
                match lines.next_content(false) {
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("an endless input ended"),
                    Err(e) => break e,
                }
            };
            assert!(
                matches!(err, ReadError::InputTooLarge { max_bytes: 1000 }),
                "{err}"
            );
        }
    }

    #[test]
    fn readers_stop_at_the_first_error_without_reading_on() {
        // Endless inputs whose error shows early: answered at once, not after 1 GiB.
        let err = read_rudy(Cycle(b"3 1\n1 2 1\n", 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: more edges than the 1 the header announces"
        );
        let err = read_rudy(io::Cursor::new("3 2\n").chain(Cycle(b"1 2 1\n", 0))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 4: more edges than the 2 the header announces"
        );
        let err = read_qubo_text(Cycle(b"p qubo 0 2 1 0\n0 0 1\n", 0)).unwrap_err();
        assert!(
            err.to_string().starts_with("line 3: expected an entry"),
            "{err}"
        );
    }

    #[test]
    fn memory_is_checked_before_allocating() {
        let err = check_memory(4_000_000_000, 0, Some(16 << 30)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("256000000000 bytes"), "{msg}");
        assert!(check_memory(1000, 1000, Some(16 << 30)).is_ok());
        assert!(check_memory(usize::MAX, 0, None).is_ok());
    }

    #[test]
    fn headers_announcing_more_than_the_input_holds_allocate_nothing() {
        // 4e9 edges cannot fit in 12 bytes: the reader reserves for what the input can hold
        // and reports the shortfall.
        let err = read_rudy(
            "2 4000000000
1 2 1
"
            .as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ReadError::Truncated { found: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn weights_whose_sums_overflow_are_refused() {
        let err = read_rudy(
            "3 2
1 2 1e308
2 3 1e308
"
            .as_bytes(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2: the absolute edge weights sum"),
            "{err}"
        );
        let err = Graph::new(2, vec![(0, 1, 1e308), (0, 1, -1e308)]).unwrap_err();
        assert!(matches!(err, ModelError::TooLarge { .. }), "{err}");
        let err = read_qubo_text("p qubo 0 2 2 0\n0 0 1e308\n0 0 1e308\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("above the bound 1e100"), "{err}");
        let err =
            read_json(r#"{"num_vars": 2, "quadratic": [[0, 1, 1e200]]}"#.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ReadError::Model(ModelError::TooLarge { .. })),
            "{err}"
        );
        let err = read_json(r#"{"num_vars": 1, "offset": -1e101}"#.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ReadError::Model(ModelError::TooLarge { .. })),
            "{err}"
        );
    }

    #[test]
    fn long_tokens_are_quoted_short() {
        let long = "9".repeat(1 << 20);
        for err in [
            read_rudy(format!("3 1\n1 2 x{long}\n").as_bytes()).unwrap_err(),
            read_rudy(format!("{long} 1\n").as_bytes()).unwrap_err(),
            read_qubo_text(format!("p qubo 0 2 1 0\n0 0 {long}x\n").as_bytes()).unwrap_err(),
            read_json(format!("{{\"n{long}\": 1}}").as_bytes()).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(msg.len() < 400, "{} bytes: {}", msg.len(), &msg[..400]);
        }
    }

    #[test]
    fn json_refuses_unknown_fields() {
        let err =
            read_json(r#"{"num_vars": 2, "quadratc": [[0, 1, -1.0]]}"#.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `quadratc`"),
            "{err}"
        );
    }

    #[test]
    fn json_round_trip_and_errors() {
        let q = Qubo::from_triplets(3, [(0, 1.0)], [(0, 2, -3.0)], 0.5).unwrap();
        let mut buf = Vec::new();
        write_json(&q, &mut buf).unwrap();
        assert_eq!(read_json(buf.as_slice()).unwrap(), q);
        let err = read_json("{\"num_vars\": 2,\n \"linear\": [[5, 1.0]]}".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("variable 5 out of range"), "{err}");
        let err = read_json("{\"num_vars\": 2,\n \"linear\": [[0, }".as_bytes()).unwrap_err();
        assert!(matches!(err, ReadError::Json { line: 2, .. }), "{err}");
    }
}
